package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// newActivityCentre builds a workspace with a WorkerActivityPolicy and waits until the engine has
// rebuilt its state.
func newActivityCentre(t testing.TB, o scenario.ActivityCentreOptions) *scenario.ActivityCentre {
	t.Helper()
	ctx := context.Background()
	c, err := env.NewActivityCentre(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSynced(ctx, env.Engine); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitActivity fails the test unless the worker reaches the activity with that pending activity.
func waitActivity(t *testing.T, c *scenario.ActivityCentre, worker, activity, pending string) {
	t.Helper()
	if _, err := c.WaitActivity(context.Background(), worker, activity, pending); err != nil {
		t.Fatalf("%v\n%s", err, env.Sim.Dump())
	}
}

// workerWrites counts the operator's updates of one worker at the simulator.
func workerWrites(c *scenario.ActivityCentre, worker string) int {
	return effects.countFor("worker-update", c.Worker(worker))
}

// TestActivityTaskLifecycle: accept → On a Task; wrap-up → Wrap Up; complete → Available, with
// exactly one worker update per change.
func TestActivityTaskLifecycle(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "lifecycle", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	before := workerWrites(c, "alice")
	// The hot path reads nothing from TaskRouter: the events carry what the decision needs.
	var reads atomic.Int64
	hook := func(r *http.Request) {
		if r.Method == http.MethodGet && (strings.Contains(r.URL.Path, "/Workers") || strings.Contains(r.URL.Path, "/Tasks")) &&
			strings.Contains(r.URL.Path, c.CC.WorkspaceSID) {
			reads.Add(1)
		}
	}
	effects.hook.Store(&hook)
	defer effects.hook.Store(nil)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up", "")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
	// The engine decides again on every event it gets back; none may cause a further write.
	must(t, c.WaitQuiet(ctx))
	if n := workerWrites(c, "alice") - before; n != 3 {
		t.Fatalf("%d worker updates for three changes", n)
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d TaskRouter reads of workers or tasks during the task's life", n)
	}
}

// TestActivityChatAndVoice: accepted on one channel and wrapping on the other is On a Task; the
// last task wrapping is Wrap Up.
func TestActivityChatAndVoice(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "multi", Agents: []string{"alice"}})
	ctx := context.Background()
	chat, err := c.Offer(ctx, "chat", "alice")
	must(t, err)
	must(t, env.Sim.Accept(chat.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	voice, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(voice.SID))
	must(t, env.Sim.Wrapup(voice.SID))
	must(t, env.Sim.Complete(voice.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, env.Sim.Wrapup(chat.SID))
	waitActivity(t, c, "alice", "Wrap Up", "")
	must(t, env.Sim.Complete(chat.SID))
	waitActivity(t, c, "alice", "Available", "")
}

// TestActivitySupervisorBreakWhileBusy: a supervisor sets Break while the agent is on a call (her
// page closed: nothing runs in her browser). She goes On a Task, No ACD with Break pending on her
// worker, Wrap Up, No ACD after the call, and Break once the task is completed.
func TestActivitySupervisorBreakWhileBusy(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "break", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Break"))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Break")
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up, No ACD", "Break")
	must(t, env.Sim.Complete(r.SID))
	w := c.WorkerState("alice")
	waitActivity(t, c, "alice", "Break", "")
	// The agent's other attributes are untouched.
	if w = c.WorkerState("alice"); w.Attributes["contact_uri"] != "client:alice" {
		t.Fatalf("attributes changed: %v", w.Attributes)
	}
}

// TestActivityOfflineBeforeWork: an agent offered a task who picks Offline before accepting it
// (the offer is not rejected: Flex lets her accept) gets Offline back once the work is done.
func TestActivityOfflineBeforeWork(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "offline", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Offline"))
	// A pending reservation: the engine changes nothing (and never rejects the task).
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Offline")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Offline", "")
}

// TestActivityExtendedWrapup: the agent extends her wrap-up (the task's mark): Extended Wrap Up,
// then Available once completed.
func TestActivityExtendedWrapup(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "extended", Agents: []string{"alice"}})
	ctx := context.Background()
	r, err := c.Offer(ctx, "chat", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up", "")
	must(t, env.Sim.ExtendWrapup(r.TaskSID, ""))
	waitActivity(t, c, "alice", "Extended Wrap Up", "")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
}

// TestActivityObserve: in Observe mode the engine writes nothing and records an Event naming the
// activity it would set.
func TestActivityObserve(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "observe", Agents: []string{"alice"},
		Policy: func(s *v1alpha1.WorkerActivityPolicySpec) { s.Mode = v1alpha1.ModeObserve }})
	ctx := context.Background()
	before := workerWrites(c, "alice")
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(c.Namespace)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == "WouldSetActivity" && strings.Contains(e.Note, `"On a Task"`) {
				return true, nil
			}
		}
		return false, nil
	})
	must(t, err)
	must(t, c.WaitQuiet(ctx))
	if st, _ := env.Engine.Stats(c.Key()); st.Enforcements < 1 {
		t.Fatalf("the would-be change is not counted: %+v", st)
	}
	if n := workerWrites(c, "alice") - before; n != 0 {
		t.Fatalf("Observe mode wrote %d worker updates", n)
	}
	if w := c.WorkerState("alice"); w.Activity != "Available" {
		t.Fatalf("Observe mode changed the activity to %q", w.Activity)
	}
}

// TestActivityOperatorRestart: the operator stops while an agent is on a call and her task is
// wrapped and completed meanwhile; once it is back it rebuilds its state from TaskRouter and puts
// her Available, and a busy agent is left On a Task.
func TestActivityOperatorRestart(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "restart", Agents: []string{"alice", "bob"}})
	ctx := context.Background()
	ra, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(ra.SID))
	rb, err := c.Offer(ctx, "voice", "bob")
	must(t, err)
	must(t, env.Sim.Accept(rb.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	waitActivity(t, c, "bob", "On a Task", "")
	must(t, env.StopOperator())
	must(t, env.Sim.Complete(ra.SID))
	bobWrites := workerWrites(c, "bob")
	must(t, env.StartOperator())
	must(t, c.WaitSynced(ctx, env.Engine))
	waitActivity(t, c, "alice", "Available", "")
	must(t, c.WaitQuiet(ctx))
	if n := workerWrites(c, "bob") - bobWrites; n != 0 {
		t.Fatalf("bob, busy throughout, got %d updates after the restart", n)
	}
	must(t, env.Sim.Complete(rb.SID))
	waitActivity(t, c, "bob", "Available", "")
}

// TestActivityConcurrentWriter: a supervisor's change lands between the engine's decision and its
// write; the write is refused (412), and the engine reads the worker again and decides with the
// supervisor's choice.
func TestActivityConcurrentWriter(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "race", Agents: []string{"alice"}})
	ctx := context.Background()
	var once sync.Once
	hook := func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Workers/"+c.Worker("alice")) {
			// The simulator does not hold its lock in the hook: this change is processed
			// before the operator's request.
			once.Do(func() { _ = env.Sim.SetWorkerActivity(c.Worker("alice"), "Break") })
		}
	}
	effects.hook.Store(&hook)
	defer effects.hook.Store(nil)
	st0, _ := env.Engine.Stats(c.Key())
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Break")
	if st, _ := env.Engine.Stats(c.Key()); st.Conflicts <= st0.Conflicts {
		t.Fatalf("no conflict counted: %+v", st)
	}
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Break", "")
}

// TestActivityDuplicatedReorderedAndFailingTwilio: every webhook delivered twice and out of order,
// and bursts of 429 and 503 from TaskRouter: the agent still ends where the decision says.
func TestActivityDuplicatedReorderedAndFailingTwilio(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "faults", Agents: []string{"alice"}})
	ctx := context.Background()
	env.Sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	r, err := c.Offer(ctx, "chat", "alice")
	must(t, err)
	env.Sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true,
		FailNext: 3, FailStatus: http.StatusTooManyRequests, FailPathPrefix: "/v1/Workspaces/" + c.CC.WorkspaceSID + "/Workers"})
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task", "")
	env.Sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true,
		FailNext: 3, FailStatus: http.StatusServiceUnavailable, FailPathPrefix: "/v1/Workspaces/" + c.CC.WorkspaceSID + "/Workers"})
	must(t, env.Sim.Wrapup(r.SID))
	waitActivity(t, c, "alice", "Wrap Up", "")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
}
