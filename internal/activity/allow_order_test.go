package activity

import (
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

// allowWorkspace is a workspace governed in mode Allow, with one worker at version 1.
func allowWorkspace() (*Workspace, *Config) {
	cfg := testConfig(allow)
	ws := NewWorkspace("WStest", []*Policy{{Key: types.NamespacedName{Name: "p"}, Workers: expr.MustParse("1==1"), Config: cfg}})
	ws.PutWorker("WKtest", "alice", sidAvailable, "1", `{}`)
	return ws, cfg
}

func resEvent(n int, typ, rsid string, activity string, workerV, taskV int64, taskAttrs string) events.TaskRouterEvent {
	return events.TaskRouterEvent{
		ID: "EZ" + strconv.Itoa(n), Type: typ, WorkspaceSID: "WStest", WorkerSID: "WKtest",
		WorkerActivitySID: activity, WorkerAttributes: `{}`, WorkerVersion: events.VersionOf(workerV),
		Time: time.Unix(int64(n), 0), ReservationSID: rsid, TaskSID: "WT" + rsid, TaskChannel: "voice",
		TaskVersion: events.VersionOf(taskV), TaskAttributes: taskAttrs,
	}
}

func applyInOrder(t *testing.T, ws *Workspace, evs ...events.TaskRouterEvent) {
	t.Helper()
	for _, ev := range evs {
		if _, err := ws.Apply(ev, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
}

// A rejection that arrives before its offer still ends a person's allowed change made before it.
func TestAllowedEndsOnRejectionBeforeOffer(t *testing.T) {
	ws, _ := allowWorkspace()
	applyInOrder(t, ws,
		resEvent(1, "reservation.created", "WR0", sidAvailable, 1, 1, `{}`),
		resEvent(2, "reservation.accepted", "WR0", sidAvailable, 1, 2, `{}`),
		resEvent(3, "reservation.created", "WR1", sidAvailable, 1, 1, `{}`),
	)
	person := resEvent(4, "worker.activity.update", "", sidBreak, 2, 0, "")
	person.ReservationSID, person.TaskSID, person.TaskChannel, person.TaskVersion = "", "", "", events.Version{}
	// WR2 was offered before the person's change, rejected after it; the rejection comes first.
	applyInOrder(t, ws, person,
		resEvent(6, "reservation.rejected", "WR2", sidBreak, 2, 2, `{}`),
		resEvent(5, "reservation.created", "WR2", sidAvailable, 1, 1, `{}`))
	if w := ws.Worker("WKtest"); w.Allowed {
		t.Fatal("the person's change still stands after the work changed")
	}
}

// An extended wrap-up marked after a person's change ends it, even when the mark reaches the
// engine before the reservation it is of, and that reservation's events are older than the change.
func TestAllowedEndsOnExtendedMarkBeforeReservation(t *testing.T) {
	ws, _ := allowWorkspace()
	ext := `{"extendedWrapup":true}`
	applyInOrder(t, ws,
		resEvent(1, "reservation.created", "WR0", sidAvailable, 1, 1, `{}`),
		resEvent(2, "reservation.accepted", "WR0", sidAvailable, 1, 2, `{}`),
	)
	person := resEvent(5, "worker.activity.update", "", sidBreak, 2, 0, "")
	person.ReservationSID, person.TaskSID, person.TaskChannel, person.TaskVersion = "", "", "", events.Version{}
	applyInOrder(t, ws, person,
		// WR1 was offered, accepted and wrapped before the change, marked extended after it.
		resEvent(6, "task.updated", "WR1", sidBreak, 2, 4, ext),
		resEvent(3, "reservation.created", "WR1", sidAvailable, 1, 1, `{}`),
		resEvent(4, "reservation.accepted", "WR1", sidAvailable, 1, 2, `{}`),
		resEvent(4, "reservation.wrapup", "WR1", sidAvailable, 1, 3, `{}`))
	if w := ws.Worker("WKtest"); w.Allowed {
		t.Fatal("the person's change still stands after the work changed")
	}
}
