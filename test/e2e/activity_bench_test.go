package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// liftTwilioRate restarts the operator without its client-side Twilio rate limit (the account's
// real limit is a deployment setting, --twilio-rate) and restores it after.
func liftTwilioRate(b *testing.B) {
	env.Override = func(o *app.Options) { o.TwilioRate = -1 }
	if err := env.StopOperator(); err != nil {
		b.Fatal(err)
	}
	if err := env.StartOperator(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		env.Override = nil
		_ = env.StopOperator()
		_ = env.StartOperator()
	})
}

func agentNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("agent-%05d", i)
	}
	return out
}

// reservationEvent is an Event Streams delivery of one reservation event for a worker.
func reservationEvent(c *scenario.ActivityCentre, typ, workerSID string, n int, at time.Time) []byte {
	id := fmt.Sprintf("%032x", n)
	body, _ := json.Marshal([]any{map[string]any{
		"specversion": "1.0", "type": "com.twilio.taskrouter." + typ, "id": "EZ" + id,
		"source": "/v1/Workspaces/" + c.CC.WorkspaceSID, "time": at.Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"payload": map[string]any{
			"sid": "EV" + id, "eventtype": typ, "account_sid": env.Sim.AccountSID(),
			"workspace_sid": c.CC.WorkspaceSID, "timestamp": at.UnixMilli(),
			"task_sid": "WT" + workerSID[2:], "task_channel_unique_name": "voice", "task_attributes": "{}",
			"reservation_sid": "WR" + workerSID[2:], "worker_sid": workerSID,
		}},
	}})
	return body
}

// BenchmarkActivityEventToWrite measures, on the wall clock, a reservation event delivered to the
// webhook → the engine's worker update reaching the simulator, with events sent at 200 per
// second over 1,000 workers (each accepts, then completes: one write per event), and one
// simulator round trip (a worker fetch) as the baseline in the same run.
// Run: KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench ActivityEventToWrite -benchtime 1x
func BenchmarkActivityEventToWrite(b *testing.B) {
	liftTwilioRate(b)
	ctx := context.Background()
	const workers, rate = 1000, 200
	c := newActivityCentre(b, scenario.ActivityCentreOptions{Name: "bench-latency", Agents: agentNames(workers)})
	sids := make([]string, workers)
	index := map[string]int{}
	for i, n := range agentNames(workers) {
		sids[i] = c.Worker(n)
		index[sids[i]] = i
	}
	// Baseline: one simulator round trip.
	var base []time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := c.Twilio.FetchWorker(ctx, c.CC.WorkspaceSID, sids[i]); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}

	var mu sync.Mutex
	writes := make([][]time.Time, workers)
	hook := func(r *http.Request) {
		if r.Method != http.MethodPost || !workerUpdatePath.MatchString(r.URL.Path) {
			return
		}
		sid := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		now := time.Now()
		mu.Lock()
		if i, ok := index[sid]; ok {
			writes[i] = append(writes[i], now)
		}
		mu.Unlock()
	}
	effects.hook.Store(&hook)
	defer effects.hook.Store(nil)

	path := fmt.Sprintf(activity.EventsPathFormat, c.Namespace, c.Policy)
	rounds := 2 * b.N
	sent := make([][]time.Time, workers)
	for i := range sent {
		sent[i] = make([]time.Time, rounds)
	}
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	b.ResetTimer()
	for n := 0; n < rounds*workers; n++ {
		<-tick.C
		w, round := n%workers, n/workers
		typ := "reservation.accepted"
		if round%2 == 1 {
			typ = "reservation.completed"
		}
		body := reservationEvent(c, typ, sids[w], n, env.Sim.Now().Add(time.Duration(round)*time.Second))
		signed := events.BodySHA256URL(env.WebhookURL+path, body)
		sent[w][round] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, signed, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Twilio-Signature", events.SignJSON(env.Sim.AuthToken(), signed))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("webhook answered %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	err := scenario.Poll(ctx, 2*time.Minute, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		for i := range writes {
			if len(writes[i]) < rounds {
				return false, nil
			}
		}
		return true, nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal("not every event led to its write:", err)
	}
	var lat []time.Duration
	mu.Lock()
	for i := range writes {
		for r := 0; r < rounds; r++ {
			lat = append(lat, writes[i][r].Sub(sent[i][r]))
		}
	}
	extra := 0
	for i := range writes {
		extra += len(writes[i]) - rounds
	}
	mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(lat, 0.5)), "event-to-write-p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "event-to-write-p99-ms")
	b.ReportMetric(ms(percentile(base, 0.5)), "sim-roundtrip-p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99))/ms(percentile(base, 0.5)), "p99/roundtrip")
	b.ReportMetric(float64(extra), "extra-writes")
}

// BenchmarkActivityRebuild15000 measures the engine's start-up on a workspace of 15,000 governed
// workers, 2,000 of them on a task: the time from the operator's start to the state rebuilt, the
// Twilio requests it cost (reads of the workspace), and the Go heap and process RSS once held.
// The simulator runs in the same process; its own memory is in the RSS, not in the heap delta
// (measured with the simulator already populated).
// Run: KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench ActivityRebuild15000 -benchtime 1x
func BenchmarkActivityRebuild15000(b *testing.B) {
	liftTwilioRate(b)
	ctx := context.Background()
	const workers, busy = 15000, 2000
	c := newActivityCentre(b, scenario.ActivityCentreOptions{Name: "bench-rebuild", Agents: agentNames(workers)})
	for i := 0; i < busy; i++ {
		if _, err := c.CreateTask(ctx, "voice", ""); err != nil {
			b.Fatal(err)
		}
	}
	accepted := 0
	for _, r := range c.Reservations() {
		if r.Status == "pending" {
			if err := env.Sim.Accept(r.SID); err != nil {
				b.Fatal(err)
			}
			accepted++
		}
	}
	if accepted != busy {
		b.Fatalf("%d reservations accepted, want %d", accepted, busy)
	}
	if err := scenario.Poll(ctx, 2*time.Minute, func() (bool, error) {
		st, ok := env.Engine.Stats(c.Key())
		return ok && st.Busy == busy, nil
	}); err != nil {
		b.Fatal("the engine does not see the busy workers:", err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := env.StopOperator(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var reads sync.Map
		var count int64
		var cmu sync.Mutex
		hook := func(r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, c.CC.WorkspaceSID) {
				cmu.Lock()
				count++
				cmu.Unlock()
				reads.Store(r.URL.Path, true)
			}
		}
		effects.hook.Store(&hook)
		b.StartTimer()
		start := time.Now()
		if err := env.StartOperator(); err != nil {
			b.Fatal(err)
		}
		if err := scenario.Poll(ctx, 5*time.Minute, func() (bool, error) {
			st, ok := env.Engine.Stats(c.Key())
			return ok && st.Synced && st.Busy == busy && st.WorkersGoverned == workers, nil
		}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		effects.hook.Store(nil)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		cmu.Lock()
		b.ReportMetric(took.Seconds(), "rebuild-s")
		b.ReportMetric(float64(count), "twilio-reads")
		cmu.Unlock()
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heap-delta-MiB")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(rssMiB(), "rss-MiB")
	}
}

// rssMiB is the process's resident set size from /proc (0 where there is none).
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
