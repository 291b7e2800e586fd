package activity

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

func TestGovernance(t *testing.T) {
	cfg := testConfig()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	support := &Policy{Key: types.NamespacedName{Namespace: "a", Name: "support"}, Created: t0.Add(time.Hour),
		Workers: expr.MustParse(`skills HAS "support"`), Config: cfg}
	everyone := &Policy{Key: types.NamespacedName{Namespace: "a", Name: "everyone"}, Created: t0,
		Workers: expr.MustParse(`1==1`), Config: cfg}
	sales := &Policy{Key: types.NamespacedName{Namespace: "a", Name: "sales"}, Created: t0.Add(time.Hour),
		Workers: expr.MustParse(`skills HAS "sales"`), Config: cfg}
	// A tie on creation time is broken by name: "sales" before "support".
	ws := NewWorkspace("WStest", []*Policy{support, sales, everyone})
	if got := ws.Policies(); got[0] != everyone || got[1] != sales || got[2] != support {
		t.Fatalf("order: %v %v %v", got[0].Key, got[1].Key, got[2].Key)
	}
	ws.PutWorker("WK1", "alice", sidAvailable, "1", `{"skills":["support"]}`)
	ws.PutWorker("WK2", "bob", sidAvailable, "1", `{"skills":["none"]}`)
	if ws.Governor("WK1") != everyone || ws.Governor("WK2") != everyone {
		t.Fatal("the oldest policy does not govern")
	}
	if _, _, _, over := ws.Stats(support); over != 1 {
		t.Fatalf("support overlaps %d workers, want 1", over)
	}
	if g, _, _, _ := ws.Stats(everyone); g != 2 {
		t.Fatalf("everyone governs %d", g)
	}

	// Without the catch-all, a worker whose attributes stop matching is released.
	ws = NewWorkspace("WStest", []*Policy{support})
	ws.PutWorker("WK1", "alice", sidAvailable, "1", `{"skills":["support"]}`)
	if ws.Governor("WK1") != support {
		t.Fatal("not governed")
	}
	out, err := ws.Apply(events.TaskRouterEvent{ID: "EZ1", Type: "worker.attributes.update", WorkspaceSID: "WStest",
		WorkerSID: "WK1", WorkerVersion: events.VersionOf(2), WorkerActivitySID: sidAvailable, WorkerAttributes: `{"skills":[]}`}, t0)
	if err != nil || len(out.Touched) != 1 {
		t.Fatalf("attributes update: %+v %v", out, err)
	}
	if ws.Governor("WK1") != nil {
		t.Fatal("a worker that no longer matches is still governed")
	}
	if p, d := ws.Decide("WK1"); p != nil || d.Changes() {
		t.Fatalf("a released worker is decided: %+v", d)
	}
	// Built-in fields can select workers.
	byName := &Policy{Key: types.NamespacedName{Name: "byname"}, Workers: expr.MustParse(`friendly_name == "alice"`), Config: cfg}
	ws = NewWorkspace("WStest", []*Policy{byName})
	ws.PutWorker("WK1", "alice", sidAvailable, "1", `{}`)
	if ws.Governor("WK1") != byName {
		t.Fatal("friendly_name does not select")
	}
}

func TestApplyBadInput(t *testing.T) {
	cfg := testConfig()
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}})
	ws.PutWorker("WK1", "alice", sidAvailable, "1", `{}`)
	now := time.Now()
	for _, ev := range []events.TaskRouterEvent{
		{ID: "EZ1", Type: "reservation.accepted", WorkspaceSID: "WSother", WorkerSID: "WK1", ReservationSID: "WR1"},
		{ID: "EZ2", Type: "reservation.accepted", WorkspaceSID: "WStest", ReservationSID: "WR1"},
		{ID: "EZ3", Type: "task.completed", WorkspaceSID: "WStest"},
		{ID: "EZ4", Type: "worker.activity.update", WorkspaceSID: "WStest"},
	} {
		if _, err := ws.Apply(ev, now); err == nil {
			t.Errorf("%s: no error", ev.ID)
		}
	}
	if w := ws.Worker("WK1"); len(w.Reservations) != 0 || w.ActivitySID != sidAvailable {
		t.Fatalf("bad events changed the worker: %+v", w)
	}
	out, err := ws.Apply(events.TaskRouterEvent{ID: "EZ5", Type: "reservation.created", WorkspaceSID: "WStest",
		WorkerSID: "WKunknown", ReservationSID: "WR9"}, now)
	if err != nil || len(out.Unknown) != 1 || out.Unknown[0] != "WKunknown" {
		t.Fatalf("unknown worker: %+v %v", out, err)
	}
	out, err = ws.Apply(events.TaskRouterEvent{ID: "EZ6", Type: "task-queue.entered", WorkspaceSID: "WStest"}, now)
	if err != nil || !out.Ignored {
		t.Fatalf("an event of no interest: %+v %v", out, err)
	}
	// A task event reaches every worker holding the task.
	ws.PutWorker("WK2", "bob", sidAvailable, "1", `{}`)
	for _, w := range []string{"WK1", "WK2"} {
		if _, err := ws.Apply(events.TaskRouterEvent{ID: "EZ" + w, Type: "reservation.accepted", WorkspaceSID: "WStest",
			WorkerSID: w, ReservationSID: "WR" + w, TaskSID: "WTshared", TaskChannel: "voice"}, now); err != nil {
			t.Fatal(err)
		}
	}
	out, err = ws.Apply(events.TaskRouterEvent{ID: "EZ7", Type: "task.completed", WorkspaceSID: "WStest", TaskSID: "WTshared"}, now)
	if err != nil || len(out.Touched) != 2 {
		t.Fatalf("task completed: %+v %v", out, err)
	}
	if len(ws.Worker("WK1").Reservations) != 1 {
		t.Fatal("no tombstone for the ended task's reservation")
	}
}

// TestOwnEchoBeforeAnswer: the events of the engine's own update (attributes first, then the
// activity) arrive before the answer to the request; they are not a person's change, and nothing
// more is written.
func TestOwnEchoBeforeAnswer(t *testing.T) {
	cfg := testConfig()
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}})
	ws.PutWorker("WK1", "alice", sidAvailable, "1", `{}`)
	now := time.Now()
	apply := func(ev events.TaskRouterEvent) {
		t.Helper()
		ev.WorkspaceSID, ev.WorkerSID = "WStest", "WK1"
		if _, err := ws.Apply(ev, now); err != nil {
			t.Fatal(err)
		}
	}
	apply(events.TaskRouterEvent{ID: "1", Type: "reservation.created", ReservationSID: "WR1", TaskSID: "WT1", TaskChannel: "voice",
		WorkerVersion: events.VersionOf(1), WorkerActivitySID: sidAvailable, WorkerAttributes: `{}`})
	// Offline while only offered: not busy, so it stands.
	apply(events.TaskRouterEvent{ID: "2", Type: "worker.activity.update", WorkerVersion: events.VersionOf(2), WorkerActivitySID: sidOffline, WorkerAttributes: `{}`})
	apply(events.TaskRouterEvent{ID: "3", Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1", TaskChannel: "voice",
		WorkerVersion: events.VersionOf(2), WorkerActivitySID: sidOffline, WorkerAttributes: `{}`})
	_, d := ws.Decide("WK1")
	if d.ActivitySID != sidOnATaskNo || !d.SetPending || d.Pending != "Offline" {
		t.Fatalf("decision %+v", d)
	}
	ws.Writing("WK1", d)
	attrs := `{"pendingActivity":"Offline"}`
	apply(events.TaskRouterEvent{ID: "4", Type: "worker.attributes.update", WorkerVersion: events.VersionOf(3), WorkerActivitySID: sidOffline, WorkerAttributes: attrs})
	apply(events.TaskRouterEvent{ID: "5", Type: "worker.activity.update", WorkerVersion: events.VersionOf(4), WorkerActivitySID: sidOnATaskNo, WorkerAttributes: attrs})
	ws.Written("WK1", d, sidOnATaskNo, "4", attrs)
	if _, again := ws.Decide("WK1"); again.Changes() {
		t.Fatalf("the engine's own echo led to another write: %+v", again)
	}
}

// TestExtendedMarkPerPolicy: two policies of one workspace name different extended-wrap-up
// attributes; a task carrying one policy's mark extends the wrap-up of that policy's worker only,
// whichever worker's event the engine saw the attributes on first.
func TestExtendedMarkPerPolicy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sales := &Policy{Key: types.NamespacedName{Name: "sales"}, Created: t0,
		Workers: expr.MustParse(`team == "sales"`), Config: testConfig()}
	care := &Policy{Key: types.NamespacedName{Name: "care"}, Created: t0.Add(time.Hour),
		Workers: expr.MustParse(`team == "care"`), Config: testConfig(func(s *v1alpha1.WorkerActivityPolicySpec) {
			s.ExtendedWrapupAttribute = "needsMoreTime"
		})}
	if sales.Config.ExtendedWrapupAttribute != DefaultExtendedWrapupAttribute || care.Config.ExtendedWrapupAttribute != "needsMoreTime" {
		t.Fatalf("config marks: %q %q", sales.Config.ExtendedWrapupAttribute, care.Config.ExtendedWrapupAttribute)
	}
	ws := NewWorkspace("WStest", []*Policy{sales, care})
	ws.PutWorker("WKsales", "sam", sidAvailable, "1", `{"team":"sales"}`)
	ws.PutWorker("WKcare", "cat", sidAvailable, "1", `{"team":"care"}`)
	for _, w := range []string{"WKsales", "WKcare"} {
		for i, typ := range []string{"reservation.accepted", "reservation.wrapup"} {
			if _, err := ws.Apply(events.TaskRouterEvent{ID: "EZ" + w + typ, Type: typ, WorkspaceSID: "WStest",
				WorkerSID: w, ReservationSID: "WR" + w, TaskSID: "WTshared", TaskChannel: "voice",
				TaskVersion: events.VersionOf(int64(i + 1)), TaskAttributes: `{"needsMoreTime":true}`}, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, d := ws.Decide("WKcare"); d.ActivitySID != sidExtended {
		t.Errorf("care's worker: %s (%s), want Extended Wrap Up: her policy's mark is set", d.ActivityName, d.Rule)
	}
	if _, d := ws.Decide("WKsales"); d.ActivitySID != sidWrapup {
		t.Errorf("sales' worker: %s (%s), want Wrap Up: her policy's mark (extendedWrapup) is not set", d.ActivityName, d.Rule)
	}
	// The default mark arriving later extends sales' worker too, and care's stays extended only
	// while its own mark holds.
	if _, err := ws.Apply(events.TaskRouterEvent{ID: "EZupd", Type: "task.updated", WorkspaceSID: "WStest",
		TaskSID: "WTshared", TaskVersion: events.VersionOf(3), TaskAttributes: `{"extendedWrapup":true}`}, t0); err != nil {
		t.Fatal(err)
	}
	if _, d := ws.Decide("WKsales"); d.ActivitySID != sidExtended {
		t.Errorf("sales' worker after the default mark: %s (%s), want Extended Wrap Up", d.ActivityName, d.Rule)
	}
	if _, d := ws.Decide("WKcare"); d.ActivitySID != sidWrapup {
		t.Errorf("care's worker after her mark was removed: %s (%s), want Wrap Up", d.ActivityName, d.Rule)
	}
}

// TestSetPoliciesKeepsTheWorkersWork: a policy edited on a busy workspace (here: its channels)
// changes how the workers are decided, never what is known of them; nothing is read again.
func TestSetPoliciesKeepsTheWorkersWork(t *testing.T) {
	chatOnly := testConfig(func(s *v1alpha1.WorkerActivityPolicySpec) { s.Channels = []string{"chat"} })
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: chatOnly}})
	ws.PutWorker("WK1", "alice", sidAvailable, "3", `{}`)
	ws.PutReservation("WK1", "WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResAccepted})
	if _, d := ws.Decide("WK1"); d.Changes() {
		t.Fatalf("decision %+v on a voice call under a chat-only policy, want none", d)
	}
	both := testConfig(func(s *v1alpha1.WorkerActivityPolicySpec) { s.Channels = []string{"chat", "voice"} })
	touched := ws.SetPolicies([]*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: both}})
	if len(touched) != 1 || touched[0] != "WK1" {
		t.Fatalf("touched %v, want WK1 decided again", touched)
	}
	if _, d := ws.Decide("WK1"); d.ActivitySID != sidOnATask {
		t.Fatalf("decision %+v after the edit, want On a Task", d)
	}
	if both.Activities != ws.Catalog() {
		t.Fatal("the edited policy does not share the workspace's catalogue")
	}
	// A policy that no longer selects the worker leaves it alone.
	ws.SetPolicies([]*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==2"), Config: both}})
	if p, _ := ws.Decide("WK1"); p != nil {
		t.Fatalf("WK1 governed by %v after its policy stopped selecting it", p.Key)
	}
}
