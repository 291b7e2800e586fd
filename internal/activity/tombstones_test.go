package activity

import (
	"fmt"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// TestEndedWorkNeverComesBack: a task that ended stays ended against any late event of it, however
// long ago it ended; once the bounded memory has forgotten it, an event older than what was
// forgotten makes the engine read the worker instead of bringing the reservation back, while a
// fresh offer is applied at once.
func TestEndedWorkNeverComesBack(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ws := newTestWorkspace(testConfig())
	ws.SetMaxEnded(3)
	ws.PutWorker("WK1", "alice", sidAvailable, "0", `{}`)
	ws.PutWorker("WK2", "bob", sidAvailable, "0", `{}`)
	res := func(id, typ, worker, rsid, task string, at time.Time) events.TaskRouterEvent {
		return events.TaskRouterEvent{ID: id, Type: typ, WorkerSID: worker, ReservationSID: rsid, TaskSID: task,
			TaskChannel: "voice", Time: at}
	}
	acceptedOld := res("EZ1", "reservation.accepted", "WK1", "WR1", "WT1", t0)
	applyAll(t, ws, acceptedOld,
		events.TaskRouterEvent{ID: "EZ2", Type: "task.completed", TaskSID: "WT1", Time: t0.Add(time.Minute)})
	// A late copy while the end is remembered: the reservation stays ended, and so does one of
	// the ended task that the engine never saw (another worker's).
	applyAll(t, ws, acceptedOld, res("EZ3", "reservation.accepted", "WK2", "WR2", "WT1", t0))
	for _, w := range []string{"WK1", "WK2"} {
		if ws.Worker(w).Busy(ws.configOf(w)) {
			t.Fatalf("%s is busy with a task that ended", w)
		}
	}
	// Many tasks end later: WT1 is forgotten.
	for i := 0; i < 5; i++ {
		task := fmt.Sprintf("WTlater%d", i)
		applyAll(t, ws, events.TaskRouterEvent{ID: "EZend" + task, Type: "task.completed", TaskSID: task,
			Time: t0.Add(time.Duration(10+i) * time.Minute)})
	}
	if ws.ended.has("WT1") {
		t.Fatal("the bound on ended work does not hold")
	}
	out := applyAll(t, ws, acceptedOld)
	if len(out.Doubt) != 1 || out.Doubt[0] != "WK1" {
		t.Fatalf("outcome %+v, want WK1 read", out)
	}
	if ws.Worker("WK1").Busy(ws.configOf("WK1")) {
		t.Fatal("a redelivered event of forgotten work brought the reservation back")
	}
	// A new offer is newer than anything forgotten: applied without a read.
	out = applyAll(t, ws, res("EZ9", "reservation.created", "WK1", "WR9", "WT9", t0.Add(time.Hour)))
	if len(out.Doubt) != 0 || len(out.Touched) != 1 {
		t.Fatalf("outcome %+v, want the offer applied", out)
	}
}

// TestEndedWorkOutlivesARestart: a restarted run (a policy edited) takes over what the previous
// one remembered of ended work.
func TestEndedWorkOutlivesARestart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	old := newTestWorkspace(testConfig())
	old.PutWorker("WK1", "alice", sidAvailable, "0", `{}`)
	applyAll(t, old, events.TaskRouterEvent{ID: "EZ1", Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1",
		TaskChannel: "voice", Time: t0},
		events.TaskRouterEvent{ID: "EZ2", Type: "task.completed", TaskSID: "WT1", Time: t0.Add(time.Minute)})
	ws := newTestWorkspace(testConfig())
	ws.PutWorker("WK1", "alice", sidAvailable, "2", `{}`)
	ws.InheritEnded(old)
	applyAll(t, ws, events.TaskRouterEvent{ID: "EZ1", Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1",
		TaskChannel: "voice", Time: t0})
	if ws.Worker("WK1").Busy(ws.configOf("WK1")) {
		t.Fatal("after a restart, a late event of an ended task brought its reservation back")
	}
}
