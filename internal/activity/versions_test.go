package activity

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

// newTestWorkspace is a workspace governed by one catch-all policy with cfg.
func newTestWorkspace(cfg *Config) *Workspace {
	return NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}})
}

// applyAll applies events of worker WK1 in order, failing the test on an error.
func applyAll(t *testing.T, ws *Workspace, evs ...events.TaskRouterEvent) Outcome {
	t.Helper()
	var last Outcome
	for _, ev := range evs {
		ev.WorkspaceSID = "WStest"
		if ev.WorkerSID == "" && ev.Type != "task.completed" && ev.Type != "task.updated" {
			ev.WorkerSID = "WK1"
		}
		out, err := ws.Apply(ev, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("apply %s %s: %v", ev.ID, ev.Type, err)
		}
		last = out
	}
	return last
}

// TestVersionZeroIsAVersion: a worker is created at version 0. The reservation.accepted event
// carrying worker_version 0 that arrives after the supervisor's Break (version 1) is older than
// the Break, not "unversioned": the engine keeps Break (and its ETag), and decides On a Task, No ACD
// with Break pending, with reordered delivery, with a duplicated burst, and with the event applied
// once per policy of the workspace.
func TestVersionZeroIsAVersion(t *testing.T) {
	created := events.TaskRouterEvent{ID: "EZ1", Type: "reservation.created", ReservationSID: "WR1", TaskSID: "WT1",
		TaskChannel: "voice", WorkerVersion: events.VersionOf(0), WorkerActivitySID: sidAvailable, WorkerAttributes: `{}`}
	accepted := created
	accepted.ID, accepted.Type = "EZ2", "reservation.accepted"
	brk := events.TaskRouterEvent{ID: "EZ3", Type: "worker.activity.update", WorkerVersion: events.VersionOf(1),
		WorkerActivitySID: sidBreak, WorkerAttributes: `{}`}
	for _, tt := range []struct {
		name  string
		order []events.TaskRouterEvent
	}{
		{"reordered", []events.TaskRouterEvent{created, brk, accepted}},
		{"duplicated burst", []events.TaskRouterEvent{created, accepted, brk, created, accepted, brk, accepted}},
		{"one copy per policy", []events.TaskRouterEvent{created, created, brk, brk, accepted, accepted}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws := newTestWorkspace(testConfig())
			ws.PutWorker("WK1", "alice", sidAvailable, "0", `{}`)
			applyAll(t, ws, tt.order...)
			w := ws.Worker("WK1")
			if w.ActivitySID != sidBreak || w.ETag != "1" {
				t.Fatalf("the engine's view is %s at ETag %s, want Break at 1", w.ActivitySID, w.ETag)
			}
			if _, d := ws.Decide("WK1"); d.ActivitySID != sidOnATaskNo || !d.SetPending || d.Pending != "Break" {
				t.Fatalf("decision %+v, want On a Task, No ACD with Break pending", d)
			}
		})
	}
}

// TestUnversionedWorkerEventIsRead: an event without a worker version cannot be ordered against
// what is known. Taking its activity would make the engine's view disagree with its ETag (the next
// If-Match write would pass on a stale view); the worker is read instead, and nothing changes.
func TestUnversionedWorkerEventIsRead(t *testing.T) {
	ws := newTestWorkspace(testConfig())
	ws.PutWorker("WK1", "alice", sidBreak, "3", `{}`)
	out := applyAll(t, ws, events.TaskRouterEvent{ID: "EZ1", Type: "worker.activity.update",
		WorkerActivitySID: sidAvailable, WorkerAttributes: `{}`})
	if len(out.Doubt) != 1 || out.Doubt[0] != "WK1" || len(out.Touched) != 0 {
		t.Fatalf("outcome %+v, want WK1 to be read", out)
	}
	if w := ws.Worker("WK1"); w.ActivitySID != sidBreak || w.ETag != "3" {
		t.Fatalf("an unversioned event changed the worker: %s at %s", w.ActivitySID, w.ETag)
	}
	// One that agrees with what is known needs no read.
	out = applyAll(t, ws, events.TaskRouterEvent{ID: "EZ2", Type: "worker.activity.update",
		WorkerActivitySID: sidBreak, WorkerAttributes: `{}`})
	if len(out.Doubt) != 0 || !out.Ignored {
		t.Fatalf("outcome %+v, want nothing to do", out)
	}
}

// TestTaskVersionZero: a task's version 0 orders before its version 1 whatever the delivery order:
// the mark set at version 1 is not taken back by the version-0 event arriving late.
func TestTaskVersionZero(t *testing.T) {
	ws := newTestWorkspace(testConfig())
	ws.PutWorker("WK1", "alice", sidAvailable, "0", `{}`)
	wrap := events.TaskRouterEvent{ID: "EZ1", Type: "reservation.wrapup", ReservationSID: "WR1", TaskSID: "WT1", TaskChannel: "voice",
		TaskVersion: events.VersionOf(1), TaskAttributes: `{"extendedWrapup":true}`}
	accepted := events.TaskRouterEvent{ID: "EZ2", Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1", TaskChannel: "voice",
		TaskVersion: events.VersionOf(0), TaskAttributes: `{}`}
	applyAll(t, ws, wrap, accepted)
	if _, d := ws.Decide("WK1"); d.ActivitySID != sidExtended {
		t.Fatalf("decision %s (%s), want Extended Wrap Up", d.ActivityName, d.Rule)
	}
}

// TestOwnEchoWithTwoWritesInFlight: the engine's updates in flight are counted per update, so that
// one ending does not make the echo of another look like a person's change.
func TestOwnEchoWithTwoWritesInFlight(t *testing.T) {
	ws := newTestWorkspace(testConfig())
	ws.PutWorker("WK1", "alice", sidOffline, "1", `{"pendingActivity":"Break"}`)
	_, d := ws.Decide("WK1")
	if d.ActivitySID != sidBreak {
		t.Fatalf("decision %+v, want Break", d)
	}
	retry := d
	ws.Writing("WK1", d)
	ws.Writing("WK1", retry)
	ws.WriteFailed("WK1", retry)
	applyAll(t, ws, events.TaskRouterEvent{ID: "EZ1", Type: "worker.activity.update", WorkerVersion: events.VersionOf(2),
		WorkerActivitySID: sidBreak, WorkerAttributes: `{"pendingActivity":"Break"}`})
	if w := ws.Worker("WK1"); w.Requested != nil || w.requests != 0 {
		t.Fatalf("the echo of the engine's own update was taken for a person's change (requested %v)", w.Requested)
	}
}
