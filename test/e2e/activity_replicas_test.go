package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// TestActivityEventOnFollower runs a second manager beside the operator, one that is not the
// leader (another holder keeps its Lease). The webhook runs on both, the engine on the leader
// only: an event the follower receives is answered 503 and changes nothing (Event Streams
// retries it), and the same delivery reaching the leader takes effect.
func TestActivityEventOnFollower(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "replicas", Agents: []string{"alice"}})
	ctx := context.Background()
	now := metav1.NewMicroTime(time.Now())
	holder, duration := "another-replica", int32(3600)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: "follower-test"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration,
			AcquireTime: &now, RenewTime: &now},
	}
	must(t, env.Client.Create(ctx, lease))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	_ = l.Close()
	var followerEngine *activity.Engine
	mgr, err := app.NewManager(ctx, env.Config, app.Options{
		MetricsAddress: "0", ProbeAddress: "0", WebhookBindAddress: addr,
		// Behind one Service, both replicas are reached at the same public URL.
		WebhookPublicURL: env.WebhookURL, TwilioBaseURL: env.Sim.URL(), Now: env.Sim.Now,
		LeaderElection: true, LeaderElectionID: "follower-test", LeaderElectionNS: c.Namespace,
		Restartable: true, GracefulShutdownTime: 5 * time.Second,
		Engine: func(e *activity.Engine) { followerEngine = e },
	})
	must(t, err)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		stop()
		<-done
	}()

	path := fmt.Sprintf(activity.EventsPathFormat, c.Namespace, c.Policy)
	at := env.Sim.Now()
	body, err := json.Marshal([]any{map[string]any{
		"specversion": "1.0", "type": "com.twilio.taskrouter.reservation.accepted", "id": "EZ" + strings.Repeat("7", 32),
		"source": "/v1/Workspaces/" + c.CC.WorkspaceSID, "time": at.Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"payload": map[string]any{
			"sid": "EV" + strings.Repeat("7", 32), "eventtype": "reservation.accepted", "account_sid": env.Sim.AccountSID(),
			"workspace_sid": c.CC.WorkspaceSID, "timestamp": at.UnixMilli(),
			"task_sid": "WT" + strings.Repeat("7", 32), "task_channel_unique_name": "voice", "task_attributes": "{}",
			"reservation_sid": "WR" + strings.Repeat("7", 32), "worker_sid": c.Worker("alice"),
		}},
	}})
	must(t, err)
	signed := events.BodySHA256URL(env.WebhookURL+path, body)
	post := func(base string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+strings.TrimPrefix(signed, env.WebhookURL), strings.NewReader(string(body)))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Twilio-Signature", events.SignJSON(env.Sim.AuthToken(), signed))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, ""
		}
		defer func() { _ = resp.Body.Close() }()
		text, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(text)
	}
	// The follower's webhook serves once its cache has synced (503 before that too); then it
	// answers 503 because it does not run the engine, never 200.
	var code int
	var text string
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		code, text = post("http://" + addr)
		if code == http.StatusOK {
			return false, fmt.Errorf("the follower acknowledged the event")
		}
		return code == http.StatusServiceUnavailable && strings.Contains(text, "leader"), nil
	})
	if err != nil {
		t.Fatalf("follower: %v (last answer %d %q)", err, code, text)
	}
	if followerEngine == nil || followerEngine.Leader() {
		t.Fatal("the second manager runs the engine")
	}
	if w := c.WorkerState("alice"); w.Activity != "Available" {
		t.Fatalf("an event refused by the follower changed alice to %q", w.Activity)
	}
	// Event Streams retries; this time the delivery reaches the leader.
	if code, text := post(env.WebhookURL); code != http.StatusOK {
		t.Fatalf("the leader answered %d %q", code, text)
	}
	waitActivity(t, c, "alice", "On a Task", "")
}
