package activity

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

const sidLunch = "WAlunch"

// catalogWorkspace is a workspace of one policy with alice on a voice call (accepted).
func catalogWorkspace(t *testing.T) (*Workspace, time.Time) {
	t.Helper()
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: testConfig()}})
	ws.PutWorker("WK1", "alice", sidOnATask, "1", `{}`)
	ws.PutReservation("WK1", "WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResAccepted})
	return ws, time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
}

func activityEvent(typ, name string, available *bool, at time.Time) events.TaskRouterEvent {
	return events.TaskRouterEvent{ID: "EZ" + typ + name + at.String(), Type: typ, WorkspaceSID: "WStest", Time: at,
		ActivitySID: sidLunch, ActivityName: name, ActivityAvailable: available}
}

func applyEvent(t *testing.T, ws *Workspace, ev events.TaskRouterEvent, at time.Time) Outcome {
	t.Helper()
	out, err := ws.Apply(ev, at)
	if err != nil {
		t.Fatalf("%s: %v", ev.Type, err)
	}
	return out
}

// pickLunch is the agent (or a supervisor) choosing Lunch while alice is on the call.
func pickLunch(version int64) events.TaskRouterEvent {
	return events.TaskRouterEvent{ID: "EZpick", Type: "worker.activity.update", WorkspaceSID: "WStest",
		WorkerSID: "WK1", WorkerVersion: events.VersionOf(version), WorkerActivitySID: sidLunch}
}

func wantDecision(t *testing.T, ws *Workspace, activity, pending string) {
	t.Helper()
	_, d := ws.Decide("WK1")
	if d.ActivitySID != activity || !d.SetPending || d.Pending != pending {
		t.Fatalf("decision %+v, want activity %q and pending %q", d, activity, pending)
	}
}

// TestCatalogCreatedMidDay: an unavailable "Lunch" created after the catalogue was read and picked
// during a call is deferred by name with On a Task, No ACD, and applied when the work is done (not
// stored as its SID, taken for available, and dropped).
func TestCatalogCreatedMidDay(t *testing.T) {
	ws, t0 := catalogWorkspace(t)
	no := false
	if out := applyEvent(t, ws, activityEvent("activity.created", "Lunch", &no, t0), t0); out.Ignored {
		t.Fatal("activity.created ignored")
	}
	applyEvent(t, ws, pickLunch(2), t0)
	if m := ws.MissingActivities("WK1"); len(m) != 0 {
		t.Fatalf("missing %v after activity.created", m)
	}
	wantDecision(t, ws, sidOnATaskNo, "Lunch")
	ws.Written("WK1", Decision{ActivitySID: sidOnATaskNo, SetPending: true, Pending: "Lunch", requests: ws.Worker("WK1").requests},
		sidOnATaskNo, "3", `{"pendingActivity":"Lunch"}`)
	applyEvent(t, ws, events.TaskRouterEvent{ID: "EZdone", Type: "task.completed", WorkspaceSID: "WStest", TaskSID: "WT1"}, t0)
	wantDecision(t, ws, sidLunch, "")
}

// TestCatalogUnknownActivityIsRead: the worker's event names an activity the catalogue does not
// know (its activity.created not here yet): no name is invented; the decision waits for one read of
// the activity, then defers it by name.
func TestCatalogUnknownActivityIsRead(t *testing.T) {
	ws, t0 := catalogWorkspace(t)
	applyEvent(t, ws, pickLunch(2), t0)
	w := ws.Worker("WK1")
	if w.EffectivePending() != "" || w.Requested != nil || w.RequestedSID != sidLunch {
		t.Fatalf("request before the activity is known: requested %v, SID %q", w.Requested, w.RequestedSID)
	}
	if m := ws.MissingActivities("WK1"); len(m) != 1 || m[0] != sidLunch {
		t.Fatalf("missing %v, want [%s]", m, sidLunch)
	}
	if touched := ws.PutActivity(Activity{SID: sidLunch, Name: "Lunch"}); len(touched) != 1 || touched[0] != "WK1" {
		t.Fatalf("PutActivity touched %v", touched)
	}
	if m := ws.MissingActivities("WK1"); len(m) != 0 {
		t.Fatalf("missing %v after the read", m)
	}
	wantDecision(t, ws, sidOnATaskNo, "Lunch")
	// The late activity.created changes nothing.
	no := false
	if out := applyEvent(t, ws, activityEvent("activity.created", "Lunch", &no, t0), t0); !out.Ignored {
		t.Fatalf("late activity.created: %+v", out)
	}

	// An activity read and not found (deleted meanwhile) drops the request: nothing to give back.
	ws, _ = catalogWorkspace(t)
	applyEvent(t, ws, pickLunch(2), t0)
	ws.ActivityGone(sidLunch)
	if w := ws.Worker("WK1"); w.RequestedSID != "" || w.Requested != nil {
		t.Fatalf("request for a deleted activity kept: %v %q", w.Requested, w.RequestedSID)
	}
	if m := ws.MissingActivities("WK1"); len(m) != 0 {
		t.Fatalf("a deleted activity is read again: %v", m)
	}
}

// TestCatalogRenameAndReorder: a rename is taken from activity.updated; a pending activity stored
// under the old name still finds it; an older rename delivered late does not undo a newer one; a
// deleted activity is not brought back by a late event.
func TestCatalogRenameAndReorder(t *testing.T) {
	ws, t0 := catalogWorkspace(t)
	no := false
	applyEvent(t, ws, activityEvent("activity.created", "Lunch", &no, t0), t0)
	applyEvent(t, ws, pickLunch(2), t0)
	ws.Written("WK1", Decision{ActivitySID: sidOnATaskNo, SetPending: true, Pending: "Lunch", requests: ws.Worker("WK1").requests},
		sidOnATaskNo, "3", `{"pendingActivity":"Lunch"}`)
	if out := applyEvent(t, ws, activityEvent("activity.updated", "Meal", nil, t0.Add(2*time.Second)), t0); len(out.Touched) != 1 {
		t.Fatalf("rename touched %v, want the worker holding the old name", out.Touched)
	}
	if a, ok := ws.Catalog().ByName("Meal"); !ok || a.SID != sidLunch || a.Available {
		t.Fatalf("renamed activity: %+v %v", a, ok)
	}
	// The pending attribute follows the rename (what Flex shows; what a restart finds).
	if _, d := ws.Decide("WK1"); d.ActivitySID != "" || !d.SetPending || d.Pending != "Meal" {
		t.Fatalf("decision after the rename: %+v", d)
	}
	// Until that write lands, the old name still finds the activity.
	if a, ok := ws.Catalog().ByName("lunch"); !ok || a.SID != sidLunch {
		t.Fatalf("the old name: %+v %v", a, ok)
	}
	// An older rename, delivered late.
	applyEvent(t, ws, activityEvent("activity.updated", "Snack", &no, t0.Add(time.Second)), t0)
	if _, ok := ws.Catalog().ByName("Snack"); ok {
		t.Fatal("an older rename undid a newer one")
	}
	applyEvent(t, ws, events.TaskRouterEvent{ID: "EZdone", Type: "task.completed", WorkspaceSID: "WStest", TaskSID: "WT1"}, t0)
	wantDecision(t, ws, sidLunch, "")
	// Had the rename's write not landed, the attribute's old name still applies the activity.
	ws.Worker("WK1").Requested = nil
	wantDecision(t, ws, sidLunch, "")

	applyEvent(t, ws, activityEvent("activity.deleted", "Meal", &no, t0.Add(3*time.Second)), t0)
	applyEvent(t, ws, activityEvent("activity.updated", "Meal", &no, t0.Add(4*time.Second)), t0)
	if _, ok := ws.Catalog().ByName("Meal"); ok {
		t.Fatal("a late event brought a deleted activity back")
	}
	if _, ok := ws.Catalog().ByName("Lunch"); ok {
		t.Fatal("a deleted activity's former name still finds it")
	}
}

// TestCatalogSharedByPolicies: two policies of one workspace see one catalogue.
func TestCatalogSharedByPolicies(t *testing.T) {
	a := &Policy{Key: types.NamespacedName{Name: "a"}, Workers: expr.MustParse(`skills HAS "a"`), Config: testConfig()}
	b := &Policy{Key: types.NamespacedName{Name: "b"}, Workers: expr.MustParse(`skills HAS "b"`), Config: testConfig()}
	ws := NewWorkspace("WStest", []*Policy{a, b})
	no := false
	applyEvent(t, ws, activityEvent("activity.created", "Lunch", &no, time.Now()), time.Now())
	for _, p := range []*Policy{a, b} {
		if _, ok := p.Config.ByName("Lunch"); !ok {
			t.Fatalf("policy %s does not see the new activity", p.Key.Name)
		}
	}
}

func TestCatalogBadInput(t *testing.T) {
	ws, t0 := catalogWorkspace(t)
	ev := activityEvent("activity.created", "Lunch", nil, t0)
	ev.ActivitySID = ""
	if _, err := ws.Apply(ev, t0); err == nil {
		t.Fatal("an activity event without its SID is accepted")
	}
	if _, ok := ws.Catalog().ByName("Lunch"); ok {
		t.Fatal("a refused event changed the catalogue")
	}
	// Without availability, a new activity is not guessed at: the decision reads it.
	if out := applyEvent(t, ws, activityEvent("activity.created", "Lunch", nil, t0), t0); !out.Ignored {
		t.Fatalf("%+v", out)
	}
	if ws.Catalog().Known(sidLunch) {
		t.Fatal("an activity of unknown availability entered the catalogue")
	}
}
