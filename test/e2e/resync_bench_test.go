package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/controllers"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// resyncReads records the Twilio reads the resync and the sweep make, by kind, with their times.
type resyncReads struct {
	mu sync.Mutex
	// checked is when each conference's participants were first listed after since.
	checked map[string]time.Time
	since   time.Time
	// times of each kind of read: "participants", "conference", "calls" (the sweep's list).
	times map[string][]time.Time
}

func (r *resyncReads) record(req *http.Request) {
	if req.Method != http.MethodGet {
		return
	}
	path := strings.TrimSuffix(req.URL.Path, ".json")
	kind, conference := "", ""
	switch parts := strings.Split(path, "/"); {
	case len(parts) == 7 && parts[4] == "Conferences" && parts[6] == "Participants":
		kind, conference = "participants", parts[5]
	case len(parts) == 6 && parts[4] == "Conferences":
		kind = "conference"
	case len(parts) == 5 && parts[4] == "Calls":
		kind = "calls"
	default:
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times[kind] = append(r.times[kind], now)
	if conference != "" && now.After(r.since) {
		if _, ok := r.checked[conference]; !ok {
			r.checked[conference] = now
		}
	}
}

// count returns how many reads of kind happened in [from, to).
func (r *resyncReads) count(kind string, from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.times[kind] {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// BenchmarkRestartResync100 measures the resync's reach and cost at the manager's default
// settings with 100 live calls in one account:
//   - restart-to-all-checked: after a restart, the time until every call's conference has been
//     read from Twilio, and the Twilio requests (all of the operator's, and the resync's) spent
//     meanwhile;
//   - the steady state: the resync's and the sweep's Twilio requests per second, measured over a
//     minute once every call has been read once and a resync period has passed, and scaled to
//     1,000 live calls (the per-call reads are capped by --recovery-resync-rate, so they do not
//     grow with the calls; the sweep's list grows by one request per 1,000 legs);
//   - lost-leave-repaired: an agent's page refresh whose leave callback is lost, to the recovery's
//     Pinging (the sweep bounds it by --recovery-sweep-interval plus a few round trips).
//
// The baseline is one Twilio round trip (a task fetch from the simulator) in the same run.
// Run: KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench RestartResync100 -benchtime 1x -timeout 20m
func BenchmarkRestartResync100(b *testing.B) {
	const calls = 100
	ctx := context.Background()
	previous := env.Override
	env.Override = func(o *app.Options) {
		if previous != nil {
			previous(o)
		}
		o.RecoveryResyncAfter, o.RecoveryResyncRate = controllers.DefaultResyncAfter, controllers.DefaultResyncRate
		o.RecoverySweepInterval = controllers.DefaultSweepInterval
	}
	b.Cleanup(func() {
		env.Override = previous
		_ = env.StopOperator()
		if err := env.StartOperator(); err != nil {
			b.Errorf("restart the operator with the suite's settings: %v", err)
		}
	})
	if err := env.StopOperator(); err != nil {
		b.Fatal(err)
	}
	if err := env.StartOperator(); err != nil {
		b.Fatal(err)
	}
	var agents []string
	for i := range calls {
		agents = append(agents, fmt.Sprintf("a%03d", i))
	}
	c, err := env.NewCentre(ctx, scenario.CentreOptions{Name: "resync100", Agents: agents})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitPolicyReady(ctx); err != nil {
		b.Fatal(err)
	}
	// 100 answered calls, each corrected and in Monitoring.
	answeredCalls := make([]scenario.Call, 0, calls)
	agentOf := map[string]string{}
	for i := range calls {
		placed, err := env.Sim.PlaceCall(fmt.Sprintf("+1555020%04d", i), c.WorkflowSID, nil)
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
			return t.SID == placed.TaskSID && r.Status == "pending"
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := env.Sim.Accept(res.SID); err != nil {
			b.Fatal(err)
		}
		call := scenario.Call{CustomerCallSID: placed.CallSID, TaskSID: placed.TaskSID, ReservationSID: res.SID}
		if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
			t, ok := env.Sim.Snapshot().Task(placed.TaskSID)
			call.ConferenceSID = t.ConferenceSID
			return ok && t.ConferenceSID != "", nil
		}); err != nil {
			b.Fatal(err)
		}
		answeredCalls = append(answeredCalls, call)
		agentOf[call.ConferenceSID] = res.WorkerSID
	}
	if err := scenario.Poll(ctx, 5*time.Minute, func() (bool, error) {
		for _, call := range answeredCalls {
			rec, err := c.Recovery(ctx, call.ConferenceSID)
			if err != nil || rec.Status.Phase != v1alpha1.PhaseMonitoring {
				return false, nil
			}
			if leg, ok := c.AgentLeg(call.ConferenceSID, agentOf[call.ConferenceSID]); !ok || leg.EndConferenceOnExit {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		b.Fatalf("the %d calls were not all corrected and in Monitoring: %v", calls, err)
	}
	_, roundTrips := baselines(b, c)
	roundTrip := percentile(roundTrips, 0.5)

	reads := &resyncReads{checked: map[string]time.Time{}, times: map[string][]time.Time{}}
	hook := reads.record
	effects.hook.Store(&hook)
	b.Cleanup(func() { effects.hook.Store(nil) })

	b.ResetTimer()
	if err := env.StopOperator(); err != nil {
		b.Fatal(err)
	}
	reads.mu.Lock()
	reads.since = time.Now()
	reads.mu.Unlock()
	start := reads.since
	requestsBefore, _ := env.Sim.RequestStats()
	if err := env.StartOperator(); err != nil {
		b.Fatal(err)
	}
	var allChecked time.Time
	if err := scenario.Poll(ctx, 10*time.Minute, func() (bool, error) {
		reads.mu.Lock()
		defer reads.mu.Unlock()
		for _, call := range answeredCalls {
			at, ok := reads.checked[call.ConferenceSID]
			if !ok {
				return false, nil
			}
			if at.After(allChecked) {
				allChecked = at
			}
		}
		return true, nil
	}); err != nil {
		b.Fatalf("not every call was read from Twilio after the restart: %v", err)
	}
	requestsAfter, _ := env.Sim.RequestStats()
	resyncRequests := reads.count("participants", start, allChecked.Add(time.Millisecond)) +
		reads.count("conference", start, allChecked.Add(time.Millisecond)) + reads.count("calls", start, allChecked.Add(time.Millisecond))
	toAll := allChecked.Sub(start)
	b.ReportMetric(toAll.Seconds(), "s-restart-to-all-checked")
	b.ReportMetric(float64(toAll)/float64(roundTrip), "restart-to-all-checked/round-trip")
	b.ReportMetric(float64(requestsAfter-requestsBefore), "twilio-requests-until-all-checked")
	b.ReportMetric(float64(resyncRequests), "resync-requests-until-all-checked")

	// The steady state: a minute, from one resync period after the last first check.
	window := time.Minute
	from := allChecked.Add(controllers.DefaultResyncAfter)
	time.Sleep(time.Until(from.Add(window))) // a rate is measured over a window of wall time
	perCall := reads.count("participants", from, from.Add(window)) + reads.count("conference", from, from.Add(window))
	sweep := reads.count("calls", from, from.Add(window))
	perCallRate := float64(perCall) / window.Seconds()
	sweepRate := float64(sweep) / window.Seconds()
	// At 1,000 calls: the per-call reads stay at the budget's cap; the sweep lists 2,000 legs in
	// two pages instead of one.
	legsPerPage := 1000.0
	pagesNow, pagesAt1000 := max(1, (2*calls+int(legsPerPage)-1)/int(legsPerPage)), 2
	b.ReportMetric(perCallRate, "per-call-resync-req/s@100")
	b.ReportMetric(sweepRate, "sweep-req/s@100")
	b.ReportMetric(perCallRate+sweepRate*float64(pagesAt1000)/float64(pagesNow), "resync-req/s-per-1000-calls")
	b.ReportMetric((perCallRate+sweepRate*float64(pagesAt1000)/float64(pagesNow))/twilio.DefaultRate*100, "%-of-account-budget-per-1000-calls")

	// A lost leave on a call that looks fine.
	victim := answeredCalls[0]
	leg, _ := c.AgentLeg(victim.ConferenceSID, agentOf[victim.ConferenceSID])
	env.Sim.SetFaults(twiliosim.Faults{DropCallbacks: func(f url.Values) bool {
		return f.Get("StatusCallbackEvent") == "participant-leave" && f.Get("CallSid") == leg.CallSID
	}})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	refreshed := time.Now()
	if err := env.Sim.RefreshPage(agentOf[victim.ConferenceSID]); err != nil {
		b.Fatal(err)
	}
	if err := scenario.Poll(ctx, 5*time.Minute, func() (bool, error) {
		rec, err := c.Recovery(ctx, victim.ConferenceSID)
		return err == nil && rec.Status.Phase == v1alpha1.PhasePinging, nil
	}); err != nil {
		b.Fatalf("the lost leave was not repaired: %v", err)
	}
	repaired := time.Since(refreshed)
	b.ReportMetric(repaired.Seconds(), "s-lost-leave-repaired")
	b.ReportMetric(float64(repaired)/float64(roundTrip), "lost-leave-repaired/round-trip")
	b.ReportMetric(float64(roundTrip.Microseconds())/1000, "ms-baseline-round-trip")
	b.Logf("restart → all %d checked: %s (%.0f round trips), %d Twilio requests (%d by the resync and sweep); steady state at %d calls: %.2f per-call resync req/s, %.2f sweep req/s; lost leave repaired in %s; round trip %s",
		calls, toAll, float64(toAll)/float64(roundTrip), requestsAfter-requestsBefore, resyncRequests, calls, perCallRate, sweepRate, repaired, roundTrip)
}
