package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// BenchmarkActivityForwardHop measures, on the wall clock, how long Event Streams waits for the
// answer to an activity delivery sent to the leader directly (the baseline) and sent to a
// follower that forwards it to the leader, interleaved in the same run; the difference is the
// forward hop (the follower's own policy read, signature check and decode, plus one in-cluster
// HTTP round trip). The events are task updates the engine takes and ignores, so no worker write
// competes for the machine.
// Run: KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench ActivityForwardHop -benchtime 2000x
func BenchmarkActivityForwardHop(b *testing.B) {
	ctx := context.Background()
	c := newActivityCentre(b, scenario.ActivityCentreOptions{Name: "bench-forward", Agents: []string{"alice"}})
	f := startFollower(b, scenario.LeaderElectionNS, scenario.LeaderElectionID)
	path := fmt.Sprintf(activity.EventsPathFormat, c.Namespace, c.Policy)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	n := 0
	post := func(base string) (time.Duration, int) {
		n++
		id := fmt.Sprintf("%032x", time.Now().UnixNano()+int64(n))
		at := env.Sim.Now()
		body, _ := json.Marshal([]any{map[string]any{
			"specversion": "1.0", "type": "com.twilio.taskrouter.task.updated", "id": "EZ" + id,
			"source": "/v1/Workspaces/" + c.CC.WorkspaceSID, "time": at.Format(time.RFC3339Nano), "datacontenttype": "application/json",
			"data": map[string]any{"payload": map[string]any{
				"sid": "EV" + id, "eventtype": "task.updated", "account_sid": env.Sim.AccountSID(),
				"workspace_sid": c.CC.WorkspaceSID, "timestamp": at.UnixMilli(),
				"task_sid": "WT" + id, "task_channel_unique_name": "voice", "task_attributes": "{}",
			}},
		}})
		signed := events.BodySHA256URL(env.WebhookURL+path, body)
		req, _ := http.NewRequest(http.MethodPost, base+strings.TrimPrefix(signed, env.WebhookURL), strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Twilio-Signature", events.SignJSON(env.Sim.AuthToken(), signed))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return time.Since(start), 0 // not listening yet; the callers check the code
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return time.Since(start), resp.StatusCode
	}
	// Until the follower's cache has synced and it has read the leader's address.
	err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		_, code := post(f.addr)
		return code == http.StatusOK, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Warm both paths' connections.
	for i := 0; i < 50; i++ {
		post(env.WebhookURL)
		post(f.addr)
	}
	b.ResetTimer()
	direct := make([]time.Duration, 0, b.N)
	forwarded := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		d, code := post(env.WebhookURL)
		if code != http.StatusOK {
			b.Fatalf("direct delivery answered %d", code)
		}
		direct = append(direct, d)
		d, code = post(f.addr)
		if code != http.StatusOK {
			b.Fatalf("forwarded delivery answered %d", code)
		}
		forwarded = append(forwarded, d)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(direct, 0.5)), "direct-p50-ms")
	b.ReportMetric(ms(percentile(direct, 0.99)), "direct-p99-ms")
	b.ReportMetric(ms(percentile(forwarded, 0.5)), "forwarded-p50-ms")
	b.ReportMetric(ms(percentile(forwarded, 0.99)), "forwarded-p99-ms")
	b.ReportMetric(ms(percentile(forwarded, 0.5)-percentile(direct, 0.5)), "hop-p50-ms")
	b.ReportMetric(ms(percentile(forwarded, 0.99)-percentile(direct, 0.99)), "hop-p99-ms")
	b.ReportMetric(float64(percentile(forwarded, 0.5))/float64(percentile(direct, 0.5)), "forwarded/direct-p50")
}
