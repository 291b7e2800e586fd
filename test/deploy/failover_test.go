package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// The failover's workspace: agents playing the workload's calls, and the tasks it keeps alive
// (fewer than the agents, so that every task is offered at once).
const (
	failoverAgents  = 200
	failoverLive    = 15
	failoverLeaseID = "flex-operator-failover"
	// failoverCalls is how many calls the workload completes before the kill, and again once the
	// survivor leads.
	failoverCalls = 30
)

// TestFailoverLeaderKilledUnderTraffic runs two operator processes (the built binary, as the
// chart's Pods run it: leader election with the manager's default Lease timings, POD_IP set so the
// leader advertises where followers forward activity deliveries) on one WorkerActivityPolicy in
// Defer mode governing two hundred agents taking calls, the simulator's Event Streams deliveries
// spread over both replicas. The leader is killed with SIGKILL in the middle of the traffic,
// which goes on; deliveries that fail meanwhile (refused by the dead replica, 503 from the
// follower with no leader to forward to) are made again until a replica takes them, and counted.
// What the new leader must repair without any delivery telling it:
//   - Ada picked Break during her call before the kill: the leader deferred it (On a Task, No ACD,
//     Break pending, stored on her worker); she gets Break once her call ends;
//   - Ben picks Break during his call while no replica runs the engine: the new leader defers it;
//   - the leader's last update of an agent whose call ended (to Available) is lost with it, the
//     delivery that ended the call acknowledged and never sent again (lostWrite);
//   - a call ends while the new leader reads the workspace, after its reads saw it live, and its
//     agent then takes a break (readRace).
//
// The survivor must take the Lease, rebuild, and bring every agent to what their work, as
// TaskRouter holds it, calls for — On a Task, Wrap Up or Available, a person's choice applied once
// their calls end — with no enforcement failure.
func TestFailoverLeaderKilledUnderTraffic(t *testing.T) {
	e, kubeconfig := processEnvironment(t)
	ctx := context.Background()

	// Ada and Ben are the people whose choices must survive; the workload's agents log in once
	// Ada and Ben hold their calls, so that no workload call reaches them.
	agents := make([]string, failoverAgents)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent%03d", i)
	}
	c, err := e.NewActivityCentre(ctx, scenario.ActivityCentreOptions{Name: "failover", Agents: []string{"ada", "ben"}, Offline: agents})
	must(t, err)
	lease := types.NamespacedName{Namespace: c.Namespace, Name: failoverLeaseID}

	streams := startEventStreams(t, strings.TrimPrefix(e.WebhookURL, "http://"))
	start := func(name string) *operatorProcess {
		p := startOperatorProcess(t, name, kubeconfig,
			"--metrics-bind-address="+freeAddr(t), "--metrics-secure=false",
			"--leader-elect", "--leader-election-namespace="+c.Namespace, "--leader-election-id="+failoverLeaseID,
			"--watch-namespaces="+c.Namespace,
			"--webhook-public-url="+e.WebhookURL,
			"--twilio-base-url="+e.Sim.URL(), "--unsafe-twilio-base-url")
		streams.add(p)
		p.waitReady(t, time.Minute)
		return p
	}
	first := start("first")
	policy, err := c.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitMetric(t, first, "leader_election_master_status", nil, 1, scenario.Wait)
	leaderBefore := leaseHolder(t, e, lease)
	second := start("second")

	// Ada's and Ben's calls; Ada picks Break during hers, and the leader defers it.
	calls := map[string]twiliosim.ReservationState{}
	for range 2 {
		r, err := c.Offer(ctx, "voice", "")
		must(t, err)
		must(t, e.Sim.Accept(r.SID))
		calls[r.WorkerName] = r
	}
	for _, person := range []string{"ada", "ben"} {
		if _, ok := calls[person]; !ok {
			t.Fatalf("no call for %s: %v", person, calls)
		}
		waitWorker(t, c, person, "On a Task", "")
	}
	must(t, e.Sim.SetWorkerActivity(c.Worker("ada"), "Break"))
	waitWorker(t, c, "ada", "On a Task, No ACD", "Break")

	for _, a := range agents {
		must(t, e.Sim.SetWorkerActivity(c.Worker(a), "Available"))
	}
	wl := startWorkload(c, failoverLive)
	defer wl.end()
	// The leader's update of an agent whose call ended is lost with it; and a call ends while
	// the new leader reads the workspace, its end acknowledged meanwhile.
	workers := map[string]bool{}
	for _, a := range agents {
		workers[c.Worker(a)] = true
	}
	lost := newLostWrite(t, policy.Status.Activities.Available, workers)
	race := newReadRace(t, c, wl, streams, policy.Status.SinkSID)
	hookSim(t, lost.request, race.request)
	must(t, scenario.Poll(ctx, time.Minute, func() (bool, error) {
		st := streams.stats()
		return wl.completedCount() >= failoverCalls && st.acked[first.name] > 0 && st.acked[second.name] > 0, nil
	}))
	lost.arm()
	select {
	case <-lost.picked:
	case <-time.After(scenario.Wait):
		t.Fatal("the leader updated no agent to Available")
	}
	// The follower forwards what reaches it to the leader.
	if n := metricNow(t, second, "flexoperator_webhook_events_total", map[string]string{"outcome": "forwarded"}); n == 0 {
		t.Fatalf("the follower forwarded no event to the leader (%s)", streams.stats())
	}
	beforeKill := streams.stats()

	if !first.running() {
		t.Fatalf("the leader exited before the kill: %v", first.exitErr)
	}
	first.kill(t)
	killedAt := time.Now()
	lost.leaderKilled()
	// Ben picks Break during his call while no replica runs the engine.
	must(t, e.Sim.SetWorkerActivity(c.Worker("ben"), "Break"))

	// The survivor takes the Lease once the dead leader's expires (the defaults: 15 s).
	must(t, scenario.Poll(ctx, time.Minute, func() (bool, error) {
		holder := leaseHolder(t, e, lease)
		return holder != "" && holder != leaderBefore, nil
	}))
	tookOver := time.Since(killedAt)
	waitMetric(t, second, "leader_election_master_status", nil, 1, scenario.Wait)
	// Its engine has taken the policy and rebuilt the workspace.
	waitMetric(t, second, "flexoperator_activity_rebuild_seconds", nil, 1, scenario.Wait)
	synced := time.Since(killedAt)
	// The agent whose call ended while the new leader read the workspace takes a break.
	raced, err := race.takeBreak()
	must(t, err)
	// Ben's Break, picked while nobody enforced, is deferred by the new leader.
	waitWorker(t, c, "ben", "On a Task, No ACD", "Break")

	// The traffic goes on under the new leader; then Ada and Ben end their calls.
	atTakeover := wl.completedCount()
	must(t, scenario.Poll(ctx, time.Minute, func() (bool, error) { return wl.completedCount() >= atTakeover+failoverCalls, nil }))
	for _, person := range []string{"ada", "ben"} {
		must(t, e.Sim.Wrapup(calls[person].SID))
		must(t, e.Sim.Complete(calls[person].SID))
	}
	wl.end()

	// Every agent ends where their work, as TaskRouter holds it, says; every delivery was taken.
	var wrong []string
	err = scenario.Poll(ctx, time.Minute, func() (bool, error) {
		chose := map[string]string{c.Worker("ada"): "Break", c.Worker("ben"): "Break"}
		if raced != "" {
			chose[raced] = "Break"
		}
		wrong = misplaced(c, chose)
		return len(wrong) == 0 && streams.stats().pending == 0, nil
	})
	final := streams.stats()
	lostAgent, lostUpdates := lost.agent()
	for name, sid := range c.CC.Workers {
		if sid == lostAgent {
			lostAgent = name
		}
	}
	t.Logf("SIGKILL → Lease taken %s, → survivor's engine rebuilt %s; workload: %s; before the kill: %s; at the end: %s; lost with the leader: %d update(s) of %s to Available; read race: %s",
		tookOver.Round(time.Millisecond), synced.Round(time.Millisecond), wl, beforeKill, final, lostUpdates, lostAgent, race)
	if err != nil {
		t.Fatalf("%d agents not where their work says after the failover (%v; %s):\n%s", len(wrong), err, final, strings.Join(wrong, "\n"))
	}

	if families, err := second.metrics(); err == nil {
		t.Logf("the survivor's engine: %s", engineFigures(families))
	}

	if !first.killedBy(syscall.SIGKILL) {
		t.Errorf("the killed leader ended with %v, want killed by SIGKILL", first.exitErr)
	}
	if !second.running() {
		t.Fatalf("the survivor exited: %v", second.exitErr)
	}
	if holder := leaseHolder(t, e, lease); holder == leaderBefore || metricNow(t, second, "leader_election_master_status", nil) != 1 {
		t.Errorf("the survivor does not hold the Lease (holder %q, the killed leader was %q)", holder, leaderBefore)
	}
	if f := race.failure(); f != "" {
		t.Errorf("the read race: %s", f)
	}
	if len(wl.failures) > 0 {
		t.Errorf("the workload failed:\n%s", strings.Join(wl.failures, "\n"))
	}
	if len(final.failures) > 0 {
		t.Errorf("deliveries refused as bad input:\n%s", strings.Join(final.failures, "\n"))
	}
	// The kill did cut deliveries off, and they were made again: the window was exercised.
	if final.retried == 0 || final.refused+final.unavailable == 0 {
		t.Errorf("no delivery failed across the kill: the traffic missed the blind window (%s)", final)
	}
	if final.acked[second.name] <= beforeKill.acked[second.name] {
		t.Errorf("the survivor acknowledged no delivery after the kill (%s)", final)
	}
	if n := metricNow(t, second, "flexoperator_webhook_events_total", map[string]string{"outcome": "stored"}); n == 0 {
		t.Error("the survivor handed no event to its engine")
	}
	var evs eventsv1.EventList
	must(t, e.Client.List(ctx, &evs, client.InNamespace(c.Namespace)))
	if i := slices.IndexFunc(evs.Items, func(ev eventsv1.Event) bool {
		return ev.Type == corev1.EventTypeWarning && ev.Reason == "EnforcementFailed"
	}); i >= 0 {
		t.Errorf("EnforcementFailed announced during the failover: %s", evs.Items[i].Note)
	}
	// The survivor reports the policy Ready (its engine synced) with no failed update.
	p, err := c.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Failures != 0 {
		t.Errorf("the survivor counts %d failed worker updates", p.Status.Failures)
	}
}

// misplaced lists the workers whose activity or pending activity is not what their work, as the
// simulator holds it, calls for in Defer mode: On a Task with a call accepted, else Wrap Up with
// one wrapping, else Available, and nothing pending. A person who chose an (unavailable)
// activity, in chose by worker SID, is in it once idle, and while busy in the No ACD variant
// with the choice pending.
func misplaced(c *scenario.ActivityCentre, chose map[string]string) []string {
	ws := c.Workspace()
	work := map[string]string{}
	for _, r := range ws.Reservations {
		switch {
		case r.Status == "accepted":
			work[r.WorkerSID] = "On a Task"
		case r.Status == "wrapping" && work[r.WorkerSID] == "":
			work[r.WorkerSID] = "Wrap Up"
		case r.Status == "pending":
			work[r.WorkerSID] = "an offer pending"
		}
	}
	var wrong []string
	for _, w := range ws.Workers {
		want, wantPending := work[w.SID], ""
		chosen, chose := chose[w.SID]
		switch {
		case want == "" && chose:
			want = chosen
		case want == "":
			want = "Available"
		case chose:
			want, wantPending = want+", No ACD", chosen
		}
		pending, _ := w.Attributes[activity.DefaultPendingActivityAttribute].(string)
		if w.Activity != want || pending != wantPending {
			wrong = append(wrong, fmt.Sprintf("%s: %q pending %q, work says %q pending %q", w.Name, w.Activity, pending, want, wantPending))
		}
	}
	slices.Sort(wrong)
	return wrong
}

// waitWorker fails the test unless the worker reaches the activity with that pending activity.
func waitWorker(t *testing.T, c *scenario.ActivityCentre, name, activityName, pending string) {
	t.Helper()
	if _, err := c.WaitActivity(context.Background(), name, activityName, pending); err != nil {
		t.Fatal(err)
	}
}

// metricNow is the value of a metric of a running process (metricValue).
func metricNow(t *testing.T, p *operatorProcess, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := p.metrics()
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	return metricValue(families, name, labels)
}

// waitMetric waits until a metric of a process reaches at least want.
func waitMetric(t *testing.T, p *operatorProcess, name string, labels map[string]string, want float64, timeout time.Duration) {
	t.Helper()
	var have float64
	err := scenario.Poll(context.Background(), timeout, func() (bool, error) {
		families, err := p.metrics()
		if err != nil {
			return false, nil
		}
		have = metricValue(families, name, labels)
		return have >= want, nil
	})
	if err != nil {
		t.Fatalf("%s's %s%v is %v, want at least %v: %v", p.name, name, labels, have, want, err)
	}
}

// engineFigures summarises the activity engine's counters of a process: events by outcome,
// TaskRouter reads by reason, worker updates by outcome.
func engineFigures(families map[string]*dto.MetricFamily) string {
	var parts []string
	for _, name := range []string{"flexoperator_activity_events_total", "flexoperator_activity_twilio_reads_total", "flexoperator_activity_writes_total"} {
		var series []string
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				series = append(series, fmt.Sprintf("%s=%v", l.GetValue(), m.GetCounter().GetValue()))
			}
		}
		slices.Sort(series)
		parts = append(parts, strings.TrimPrefix(name, "flexoperator_activity_")+" "+strings.Join(series, " "))
	}
	return strings.Join(parts, "; ")
}
