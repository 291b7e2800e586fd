package e2e

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/scenario"
)

// BenchmarkActivityFailover15000 measures a change of leader on a workspace of 15,000 governed
// workers, 8,000 of them on a call, with the operator's default Twilio budget (20 TaskRouter
// requests a second per workspace, burst 40). The new leader starts; at once one agent accepts a
// new call, and 50 calls end. Reported:
//   - lease-to-first-write: from the engine starting as leader to its worker update of the agent
//     who accepted (the first correct write for a worker with a fresh event);
//   - lease-to-complete: to a complete picture of the workspace (Synced, every busy worker seen);
//   - reads: the Twilio reads of the workspace it spent, and how many were one worker's reads;
//   - the Go heap's peak during the failover, and its growth over the heap before the start;
//   - one simulator round trip (a worker fetch), the baseline in the same run.
//
// Nothing is lost: at the end every one of the 15,000 workers is where its work puts it.
// Run: KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench ActivityFailover15000 -benchtime 1x -timeout 40m
func BenchmarkActivityFailover15000(b *testing.B) { benchmarkFailover(b, 15000, 8000) }

// BenchmarkActivityFailover1500 is the same at a tenth of the size (1,500 workers, 800 on a call).
func BenchmarkActivityFailover1500(b *testing.B) { benchmarkFailover(b, 1500, 800) }

func benchmarkFailover(b *testing.B, workers, busy int) {
	liftTwilioRate(b)
	ctx := context.Background()
	const ending = 50
	c := newActivityCentre(b, scenario.ActivityCentreOptions{Name: fmt.Sprintf("bench-failover-%d", workers), Agents: agentNames(workers)})
	for i := 0; i < busy; i++ {
		if _, err := c.CreateTask(ctx, "voice", ""); err != nil {
			b.Fatal(err)
		}
	}
	var calls []string
	for _, r := range c.Reservations() {
		if r.Status == "pending" {
			if err := env.Sim.Accept(r.SID); err != nil {
				b.Fatal(err)
			}
			calls = append(calls, r.SID)
		}
	}
	if len(calls) != busy {
		b.Fatalf("%d reservations accepted, want %d", len(calls), busy)
	}
	// The call the fresh event is about: offered before the change of leader, accepted after.
	fresh, err := c.Offer(ctx, "voice", "")
	if err != nil {
		b.Fatal(err)
	}
	if err := scenario.Poll(ctx, 5*time.Minute, func() (bool, error) {
		st, ok := env.Engine.Stats(c.Key())
		return ok && int(st.Busy) == busy, nil
	}); err != nil {
		b.Fatal("the engine does not see the busy workers:", err)
	}
	if err := c.WaitQuietWithin(ctx, 30*time.Minute); err != nil {
		b.Fatal(err)
	}
	var base []time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := c.Twilio.FetchWorker(ctx, c.CC.WorkspaceSID, fresh.WorkerSID); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}

	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		if err := env.StopOperator(); err != nil {
			b.Fatal(err)
		}
		env.Override = nil // the operator's default Twilio budget from here
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var reads, workerReads atomic.Int64
		var firstWrite atomic.Int64
		prefix := "/v1/Workspaces/" + c.CC.WorkspaceSID + "/"
		hook := func(r *http.Request) {
			switch {
			case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, prefix):
				reads.Add(1)
				if r.URL.Path == prefix+"Workers/"+fresh.WorkerSID {
					workerReads.Add(1)
				}
			case r.Method == http.MethodPost && r.URL.Path == prefix+"Workers/"+fresh.WorkerSID:
				firstWrite.CompareAndSwap(0, time.Now().UnixNano())
			}
		}
		effects.hook.Store(&hook)
		var peak atomic.Uint64
		stopSampling := make(chan struct{})
		var sampling sync.WaitGroup
		sampling.Add(1)
		go func() {
			defer sampling.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stopSampling:
					return
				case <-t.C:
				}
			}
		}()
		b.StartTimer()
		if err := env.StartOperator(); err != nil {
			b.Fatal(err)
		}
		if err := scenario.Poll(ctx, time.Minute, func() (bool, error) { return env.Engine.Leader(), nil }); err != nil {
			b.Fatal("no leader:", err)
		}
		lease := time.Now()
		if err := env.Sim.Accept(fresh.SID); err != nil {
			b.Fatal(err)
		}
		for _, sid := range calls[:ending] {
			if err := env.Sim.Complete(sid); err != nil {
				b.Fatal(err)
			}
		}
		if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) { return firstWrite.Load() != 0, nil }); err != nil {
			b.Fatal("no write of the worker with a fresh event:", err)
		}
		if err := scenario.Poll(ctx, 30*time.Minute, func() (bool, error) {
			st, ok := env.Engine.Stats(c.Key())
			return ok && st.Synced && int(st.Busy) == busy-ending+1 && int(st.WorkersGoverned) == workers, nil
		}); err != nil {
			st, _ := env.Engine.Stats(c.Key())
			b.Fatalf("no complete picture: %v (stats %+v)", err, st)
		}
		complete := time.Since(lease)
		b.StopTimer()
		close(stopSampling)
		sampling.Wait()
		effects.hook.Store(nil)
		if err := c.WaitQuietWithin(ctx, 30*time.Minute); err != nil {
			b.Fatal(err)
		}
		// Nothing lost: every worker is where its work puts it.
		onCall := map[string]bool{fresh.WorkerSID: true}
		for _, r := range c.Reservations() {
			if r.Status == "accepted" {
				onCall[r.WorkerSID] = true
			}
		}
		wrong := 0
		all := c.Workers()
		if len(all) != workers {
			b.Fatalf("%d workers in the workspace, want %d", len(all), workers)
		}
		for _, w := range all {
			want := "Available"
			if onCall[w.SID] {
				want = "On a Task"
			}
			if w.Activity != want {
				wrong++
				if wrong <= 5 {
					b.Errorf("%s (%s) is %q, want %q", w.Name, w.SID, w.Activity, want)
				}
			}
		}
		if wrong > 0 {
			b.Fatalf("%d workers not where their work puts them", wrong)
		}
		first := time.Duration(firstWrite.Load() - lease.UnixNano())
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(first), "lease-to-first-write-ms")
		b.ReportMetric(complete.Seconds(), "lease-to-complete-s")
		b.ReportMetric(float64(reads.Load()), "twilio-reads")
		b.ReportMetric(float64(workerReads.Load()), "fresh-worker-reads")
		b.ReportMetric(ms(percentile(base, 0.5)), "sim-roundtrip-p50-ms")
		b.ReportMetric(ms(first)/ms(percentile(base, 0.5)), "first-write/roundtrip")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(int64(peak.Load())-int64(before.HeapInuse))/(1<<20), "peak-heap-growth-MiB")
	}
}
