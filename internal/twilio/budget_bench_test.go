package twilio

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

func percentileOf(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkRecoveryUnderActivityOverload measures, on the wall clock, the operator's Twilio
// budget under overload: a simulator that limits the account to 20 requests/s (429 with
// Retry-After past it), the operator's TaskRouter budget at its default (20/s, burst 40),
// activity writes offered at 200/s over 1,000 workers (each worker's write tagged with its SID,
// so a newer one replaces the older still queued), and recovery requests in the same workspace
// at 2/s. It reports the recovery requests' wait in the operator's queue (p50, p99, max), the
// activity lag (from a decision being offered to a write carrying it or a newer one of the same
// worker landing; the queue drains after the offer stops), the writes coalesced, the 429s
// received, and as the baseline one round trip to an unlimited simulator in the same run.
// Run: go test ./internal/twilio -run '^$' -bench RecoveryUnderActivityOverload -benchtime 1x
func BenchmarkRecoveryUnderActivityOverload(b *testing.B) {
	const (
		workers      = 1000
		offerRate    = 200 // activity writes per second
		recoveryRate = 2   // recovery requests per second
		offerFor     = 20 * time.Second
		twilioLimit  = 20
	)
	ctx := context.Background()
	spec := twiliosim.ContactCentreSpec{}
	for i := range workers {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: fmt.Sprintf("agent-%04d", i)})
	}

	// Baseline: one round trip to a simulator with no limit.
	free := twiliosim.New(twiliosim.Options{Clock: twiliosim.WallClock})
	if err := free.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = free.Close() }()
	freeCC, err := free.BuildContactCentre(twiliosim.ContactCentreSpec{Workers: spec.Workers[:1]})
	if err != nil {
		b.Fatal(err)
	}
	freeClient, err := New(Config{AccountSID: free.AccountSID(), AuthToken: free.AuthToken(), BaseURL: free.URL(), Rate: -1})
	if err != nil {
		b.Fatal(err)
	}
	var base []time.Duration
	for range 200 {
		start := time.Now()
		if _, err := freeClient.FetchWorker(ctx, freeCC.WorkspaceSID, freeCC.Workers["agent-0000"]); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
	}

	sim := twiliosim.New(twiliosim.Options{Clock: twiliosim.WallClock, RateLimit: twilioLimit, RateBurst: 2 * twilioLimit})
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sim.Close() }()
	cc, err := sim.BuildContactCentre(spec)
	if err != nil {
		b.Fatal(err)
	}
	// The operator's defaults, with the retries the manager uses.
	c, err := New(Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL()})
	if err != nil {
		b.Fatal(err)
	}
	sids := make([]string, workers)
	for i := range sids {
		sids[i] = cc.Workers[fmt.Sprintf("agent-%04d", i)]
	}
	activities := []string{cc.Activities["Break"], cc.Activities["Available"]}

	var mu sync.Mutex
	var recoveryWaits []time.Duration
	observer := func(class Class, p Priority, wait time.Duration) {
		if class == ClassTaskRouter && p == PriorityRecovery {
			mu.Lock()
			recoveryWaits = append(recoveryWaits, wait)
			mu.Unlock()
		}
	}
	grantObserver.Store(&observer)
	defer grantObserver.Store(nil)

	// offered[w] are the instants decisions for worker w were offered, in order; landed[w][i] is
	// when a write carrying decision i or a newer one landed.
	offered := make([][]time.Time, workers)
	landed := make([][]time.Time, workers)
	var coalesced, failed, ok atomic.Int64
	var wg sync.WaitGroup
	write := func(w, n int) {
		defer wg.Done()
		wctx := WithCoalesceKey(WithPriority(ctx, PriorityActivity), sids[w])
		act := activities[n%2]
		_, err := c.UpdateWorker(wctx, cc.WorkspaceSID, sids[w], WorkerUpdate{ActivitySID: &act})
		at := time.Now()
		switch {
		case errors.Is(err, ErrSuperseded):
			coalesced.Add(1)
			return
		case err != nil:
			failed.Add(1)
			return
		}
		ok.Add(1)
		mu.Lock()
		for i := len(landed[w]); i <= n; i++ {
			landed[w] = append(landed[w], at)
		}
		mu.Unlock()
	}
	budget := budgets.byAccount[sim.AccountSID()].get(ClassTaskRouter, cc.WorkspaceSID)
	maxQueued := 0

	b.ResetTimer()
	stop := time.Now().Add(offerFor)
	offerTick := time.NewTicker(time.Second / offerRate)
	recoveryTick := time.NewTicker(time.Second / recoveryRate)
	var recoveryErrs atomic.Int64
	for n := 0; time.Now().Before(stop); {
		select {
		case <-offerTick.C:
			w := n % workers
			round := n / workers
			mu.Lock()
			offered[w] = append(offered[w], time.Now())
			mu.Unlock()
			wg.Add(1)
			go write(w, round)
			n++
			maxQueued = max(maxQueued, budget.queued())
		case <-recoveryTick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A recovery's TaskRouter read in the same workspace (priority: the default).
				if _, err := c.FetchWorkspace(ctx, cc.WorkspaceSID); err != nil {
					recoveryErrs.Add(1)
				}
			}()
		}
	}
	offerTick.Stop()
	recoveryTick.Stop()
	wg.Wait()
	b.StopTimer()

	var lag []time.Duration
	unapplied := 0
	mu.Lock()
	for w := range offered {
		for i, at := range offered[w] {
			if i < len(landed[w]) {
				lag = append(lag, landed[w][i].Sub(at))
			} else {
				unapplied++
			}
		}
	}
	waits := append([]time.Duration(nil), recoveryWaits...)
	mu.Unlock()
	requests, throttled := sim.RequestStats()

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rt := percentileOf(base, 0.5)
	b.ReportMetric(ms(rt), "roundtrip-p50-ms")
	b.ReportMetric(ms(percentileOf(waits, 0.5)), "recovery-wait-p50-ms")
	b.ReportMetric(ms(percentileOf(waits, 0.99)), "recovery-wait-p99-ms")
	b.ReportMetric(ms(percentileOf(waits, 1)), "recovery-wait-max-ms")
	b.ReportMetric(ms(percentileOf(waits, 0.99))/ms(rt), "recovery-wait-p99/roundtrip")
	b.ReportMetric(float64(len(waits)), "recovery-grants")
	b.ReportMetric(float64(recoveryErrs.Load()), "recovery-errors")
	b.ReportMetric(percentileOf(lag, 0.5).Seconds(), "activity-lag-p50-s")
	b.ReportMetric(percentileOf(lag, 0.99).Seconds(), "activity-lag-p99-s")
	b.ReportMetric(float64(ok.Load()), "writes-landed")
	b.ReportMetric(float64(coalesced.Load()), "writes-coalesced")
	b.ReportMetric(float64(failed.Load()), "writes-failed")
	b.ReportMetric(float64(unapplied), "decisions-unapplied")
	b.ReportMetric(float64(maxQueued), "max-queued")
	b.ReportMetric(float64(requests), "sim-requests")
	b.ReportMetric(float64(throttled), "sim-429s")
}
