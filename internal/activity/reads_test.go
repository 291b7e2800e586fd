package activity

import (
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

func allow(s *v1alpha1.WorkerActivityPolicySpec) {
	s.ActivityChangeWhileBusy = v1alpha1.BusyChangeAllow
}

// accepted is the event of WK1's voice reservation WR1 accepted, the worker at version v in activity.
func accepted(v int64, activity string) events.TaskRouterEvent {
	return events.TaskRouterEvent{ID: "EZacc", Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1",
		TaskChannel: "voice", WorkerVersion: events.VersionOf(v), WorkerActivitySID: activity, WorkerAttributes: `{}`}
}

// reread plays the engine's read after a 412: the live reservations, then the worker.
func rereadWorker(ws *Workspace, activity, etag, attrs string, live map[string]Reservation) {
	ws.ReadWorker("WK1", "alice", activity, etag, attrs, live, ws.Seq())
}

// TestConflictReadFindsAPersonsChange: the engine's write loses (412) to a supervisor's change;
// the read that follows finds the new activity, and it is handled as the change a person made.
func TestConflictReadFindsAPersonsChange(t *testing.T) {
	voice := map[string]Reservation{"WR1": {TaskSID: "WT1", Channel: "voice", Status: ResAccepted}}
	t.Run("Allow: a Break that raced the write stands", func(t *testing.T) {
		ws := newTestWorkspace(testConfig(allow))
		ws.PutWorker("WK1", "alice", sidAvailable, "1", `{}`)
		applyAll(t, ws, accepted(1, sidAvailable))
		_, d := ws.Decide("WK1")
		ws.Writing("WK1", d)
		ws.WriteFailed("WK1", d) // 412: the supervisor set Break at version 2 first
		rereadWorker(ws, sidBreak, "2", `{}`, voice)
		if _, d := ws.Decide("WK1"); d.Changes() || d.Rule != RuleAllowed {
			t.Fatalf("decision %+v, want Break to stand (rule %s)", d, RuleAllowed)
		}
		// Its event arriving after the read changes nothing.
		applyAll(t, ws, events.TaskRouterEvent{ID: "EZbrk", Type: "worker.activity.update", WorkerVersion: events.VersionOf(2),
			WorkerActivitySID: sidBreak, WorkerAttributes: `{}`})
		if _, d := ws.Decide("WK1"); d.Changes() {
			t.Fatalf("decision %+v after the late event, want none", d)
		}
	})
	t.Run("Defer: the newest choice becomes the pending one", func(t *testing.T) {
		ws := newTestWorkspace(testConfig())
		pendingBreak := `{"pendingActivity":"Break"}`
		ws.PutWorker("WK1", "alice", sidWrapupNo, "4", pendingBreak)
		wrapping := map[string]Reservation{"WR1": {TaskSID: "WT1", Channel: "voice", Status: ResWrapping}}
		ws.SetReservations("WK1", wrapping, ws.Seq())
		applyAll(t, ws, events.TaskRouterEvent{ID: "EZupd", Type: "task.updated", TaskSID: "WT1",
			TaskVersion: events.VersionOf(3), TaskAttributes: `{"extendedWrapup":true}`})
		_, d := ws.Decide("WK1")
		if d.ActivitySID != sidExtended {
			t.Fatalf("decision %+v, want Extended Wrap Up", d)
		}
		ws.Writing("WK1", d)
		ws.WriteFailed("WK1", d) // 412: the supervisor set Offline at version 5 first
		rereadWorker(ws, sidOffline, "5", pendingBreak, wrapping)
		_, d = ws.Decide("WK1")
		if !d.SetPending || d.Pending != "Offline" {
			t.Fatalf("decision %+v, want Offline, the supervisor's newest choice, as the pending activity", d)
		}
	})
}

// TestReplayAfterRebuildFindsAPersonsChange: a supervisor's Break lands while the workspace is
// rebuilt; the rebuild reads it, and the event of that change, replayed after the read, says a
// person made it (Allow: it stands). Its duplicate changes nothing more.
func TestReplayAfterRebuildFindsAPersonsChange(t *testing.T) {
	ws := newTestWorkspace(testConfig(allow))
	ws.PutWorker("WK1", "alice", sidBreak, "5", `{}`)
	ws.PutReservation("WK1", "WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResAccepted})
	brk := events.TaskRouterEvent{ID: "EZbrk", Type: "worker.activity.update", WorkerVersion: events.VersionOf(5),
		WorkerActivitySID: sidBreak, WorkerAttributes: `{}`}
	if out := applyAll(t, ws, brk); len(out.Touched) != 1 {
		t.Fatalf("outcome %+v, want WK1 decided again", out)
	}
	if _, d := ws.Decide("WK1"); d.Changes() || d.Rule != RuleAllowed {
		t.Fatalf("decision %+v, want Break to stand", d)
	}
	before := ws.Worker("WK1").requests
	applyAll(t, ws, brk)
	if ws.Worker("WK1").requests != before {
		t.Fatal("a duplicate of the replayed event counted as a second change")
	}
	// A reservation event at the version read says nothing of who changed the activity.
	ws2 := newTestWorkspace(testConfig(allow))
	ws2.PutWorker("WK1", "alice", sidBreak, "5", `{}`)
	ws2.PutReservation("WK1", "WR1", Reservation{TaskSID: "WT1", Channel: "voice", Status: ResAccepted})
	applyAll(t, ws2, accepted(5, sidBreak))
	if _, d := ws2.Decide("WK1"); d.ActivitySID != sidOnATaskNo {
		t.Fatalf("decision %+v, want On a Task, No ACD", d)
	}
}
