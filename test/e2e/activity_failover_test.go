package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// holdReads holds the operator's GETs of exactly path at the simulator until the test ends (or the
// operator gives up on the request), and counts them.
func holdReads(t *testing.T, path string) (held *atomic.Int64, release func()) {
	t.Helper()
	held = &atomic.Int64{}
	released := make(chan struct{})
	hook := func(r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == path {
			held.Add(1)
			select {
			case <-released:
			case <-r.Context().Done():
			}
		}
	}
	effects.hook.Store(&hook)
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			effects.hook.Store(nil)
			close(released)
		}
	}
	t.Cleanup(release)
	return held, release
}

// gauge reads one series of a gauge vector from the operator's metrics registry.
func gauge(t *testing.T, name, label, value string) float64 {
	t.Helper()
	return series(t, name, label, value).GetGauge().GetValue()
}

// TestActivityNewLeaderEnforcesBeforeItsRebuildEnds: a new leader (the operator restarted) reads
// the whole workspace in the background, and here that read never ends: TaskRouter's list of live
// tasks is held. Meanwhile an agent accepts a call, and a supervisor then puts her on Break: she
// is put On a Task at once and the Break is kept as her pending activity, all before the picture
// of the workspace is complete (the engine reads just her). An agent whose call ended while no
// operator ran, with no event since, is put right once the picture is complete.
func TestActivityNewLeaderEnforcesBeforeItsRebuildEnds(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "failover", Agents: []string{"bob"}, Offline: []string{"alice", "carol"}})
	ctx := context.Background()
	rb, err := c.Offer(ctx, "voice", "bob")
	must(t, err)
	must(t, env.Sim.Accept(rb.SID))
	waitActivity(t, c, "bob", "On a Task", "")
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Available"))
	ra, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, c.WaitQuiet(ctx))
	must(t, env.StopOperator())
	held, release := holdReads(t, "/v1/Workspaces/"+c.CC.WorkspaceSID+"/Tasks")
	// Bob's call ends while no operator runs; its events are delivered to the new leader, which
	// still has to find him busy before they mean anything: the simulator is told to forget them.
	must(t, env.Sim.Complete(rb.SID))
	must(t, env.StartOperator())
	must(t, env.Sim.Accept(ra.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Break"))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Break")
	st, ok := env.Engine.Stats(c.Key())
	if !ok || st.Synced {
		t.Fatalf("stats %+v: the picture is complete though TaskRouter's list of live tasks is held", st)
	}
	if held.Load() == 0 {
		t.Fatal("the new leader never asked for the workspace's live tasks: the test held nothing")
	}
	release()
	must(t, c.WaitSynced(ctx, env.Engine))
	waitActivity(t, c, "bob", "Available", "")
	must(t, env.Sim.Complete(ra.SID))
	waitActivity(t, c, "alice", "Break", "")
	must(t, c.WaitQuiet(ctx))
	if st, _ := env.Engine.Stats(c.Key()); st.WorkersGoverned != 3 || st.Failures != 0 {
		t.Fatalf("stats %+v, want 3 workers governed and no failure", st)
	}
}

// TestActivityPolicyEditReadsNothing: a policy of a busy workspace is edited (its channels: voice
// calls now count). The engine governs the workers again with the new spec, from what it knows:
// the agent on a voice call is put On a Task, and nothing of the workspace is read from TaskRouter
// again (no list of workers, tasks or reservations, no worker fetched); no failure is counted.
func TestActivityPolicyEditReadsNothing(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "editnoread", Agents: []string{"alice"}, Offline: []string{"bob"},
		Policy: func(s *v1alpha1.WorkerActivityPolicySpec) { s.Channels = []string{"chat"} }})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	must(t, c.WaitQuiet(ctx))
	waitActivity(t, c, "alice", "Available", "")
	st0, _ := env.Engine.Stats(c.Key())
	var reads atomic.Int64
	var first atomic.Value
	prefix := "/v1/Workspaces/" + c.CC.WorkspaceSID + "/"
	hook := func(r *http.Request) {
		// The policy's reconciler checks the channels the spec names (TaskChannels): that is not a
		// read of the workers' state.
		if r.Method == http.MethodGet && (strings.HasPrefix(r.URL.Path, prefix+"Workers") || strings.HasPrefix(r.URL.Path, prefix+"Tasks")) {
			if reads.Add(1) == 1 {
				first.Store(r.URL.String())
			}
		}
	}
	effects.hook.Store(&hook)
	defer effects.hook.Store(nil)
	var p v1alpha1.WorkerActivityPolicy
	must(t, env.Client.Get(ctx, c.Key(), &p))
	p.Spec.Channels = []string{"chat", "voice"}
	must(t, env.Client.Update(ctx, &p))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, c.WaitQuiet(ctx))
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d reads of the workspace's workers, tasks or reservations after a policy edit (first: %v), want none", n, first.Load())
	}
	if st, _ := env.Engine.Stats(c.Key()); st.Failures != st0.Failures || !st.Synced || st.WorkersGoverned != 2 {
		t.Fatalf("stats %+v after the edit (before %+v): want no failure, synced, 2 workers governed", st, st0)
	}
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
}

// TestActivityEventsKeptWhileTwilioIsDownStayBounded: a new leader cannot read the workspace's
// activities (TaskRouter's answer is held), so it can apply nothing. Meanwhile a supervisor flips
// two agents' activities a hundred times each and an agent accepts a call: the engine keeps what
// those events can still tell, a few entries, not hundreds. Once TaskRouter answers, everyone ends
// where the last change and the work put them.
func TestActivityEventsKeptWhileTwilioIsDownStayBounded(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "bounded", Agents: []string{"carol"}, Offline: []string{"alice", "bob"}})
	ctx := context.Background()
	rc, err := c.Offer(ctx, "voice", "carol")
	must(t, err)
	must(t, c.WaitQuiet(ctx))
	must(t, env.StopOperator())
	held, release := holdReads(t, "/v1/Workspaces/"+c.CC.WorkspaceSID+"/Activities")
	must(t, env.StartOperator())
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) { return held.Load() > 0, nil }); err != nil {
		t.Fatal("the new leader never read the workspace's activities:", err)
	}
	accepted := labelledCounter(t, "flexoperator_activity_events_total", "outcome", "buffered")
	const flips = 100
	for i := 0; i < flips; i++ {
		for _, name := range []string{"alice", "bob"} {
			activity := "Break"
			if i%2 == 1 {
				activity = "Offline"
			}
			must(t, env.Sim.SetWorkerActivity(c.Worker(name), activity))
		}
	}
	must(t, env.Sim.Accept(rc.SID))
	ws := c.CC.WorkspaceSID
	peak := 0.0
	// Every event reached the engine (counted as buffered), and it holds a few.
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		peak = max(peak, gauge(t, "flexoperator_activity_buffered_events", "workspace", ws))
		return labelledCounter(t, "flexoperator_activity_events_total", "outcome", "buffered")-accepted >= 2*flips+1, nil
	}); err != nil {
		t.Fatalf("the engine did not receive the %d events: %v (buffered %v, no_policy %v, duplicate %v)", 2*flips+1, err,
			labelledCounter(t, "flexoperator_activity_events_total", "outcome", "buffered")-accepted,
			labelledCounter(t, "flexoperator_activity_events_total", "outcome", "no_policy"),
			labelledCounter(t, "flexoperator_activity_events_total", "outcome", "duplicate"))
	}
	peak = max(peak, gauge(t, "flexoperator_activity_buffered_events", "workspace", ws))
	if peak == 0 || peak > 10 {
		t.Fatalf("%v events held for %d received about 3 workers, want a few (one per worker and thing)", peak, 2*flips+1)
	}
	release()
	must(t, c.WaitSynced(ctx, env.Engine))
	waitActivity(t, c, "carol", "On a Task", "")
	waitActivity(t, c, "alice", "Offline", "")
	waitActivity(t, c, "bob", "Offline", "")
	must(t, c.WaitQuiet(ctx))
	if n := gauge(t, "flexoperator_activity_buffered_events", "workspace", ws); n != 0 {
		t.Fatalf("%v events still held once everything was read", n)
	}
}

// TestActivityRebuildReadsAgainAWorkerWhoseTaskMoved: a new leader's background read of the
// workspace reads a wrapping task, then (held here) its reservations; meanwhile the task is marked
// for an extended wrap-up, an event about the task alone. What the rebuild read of the task is
// older than that event, so the agent is read again rather than taken from the rebuild, and ends
// in Extended Wrap Up.
func TestActivityRebuildReadsAgainAWorkerWhoseTaskMoved(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "rebuildfresh", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "chat", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up", "")
	must(t, c.WaitQuiet(ctx))
	must(t, env.StopOperator())
	held, release := holdReads(t, "/v1/Workspaces/"+c.CC.WorkspaceSID+"/Tasks/"+r.TaskSID+"/Reservations")
	must(t, env.StartOperator())
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) { return held.Load() > 0, nil }); err != nil {
		t.Fatal("the new leader never read the wrapping task's reservations:", err)
	}
	updated := labelledCounter(t, "flexoperator_activity_events_total", "outcome", "ignored")
	must(t, env.Sim.ExtendWrapup(r.TaskSID, ""))
	// The task's event reached the engine, which knew no worker holding the task yet.
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		return labelledCounter(t, "flexoperator_activity_events_total", "outcome", "ignored") > updated, nil
	}); err != nil {
		t.Fatal("the task's event never reached the engine:", err)
	}
	release()
	must(t, c.WaitSynced(ctx, env.Engine))
	waitActivity(t, c, "alice", "Extended Wrap Up", "")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
}
