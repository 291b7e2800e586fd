package activity

import (
	"fmt"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// TestEventBufferKeepsWhatEventsCanStillTell: a burst of events of one worker (a sink's backlog
// delivered twice, a supervisor toggling the activity, a reservation's whole life, reordered) is
// kept as one entry per thing it is about, and each entry is the one a read cannot make redundant:
// the furthest status of the reservation, the newest version of the worker.
func TestEventBufferKeepsWhatEventsCanStillTell(t *testing.T) {
	b := newEventBuffer(maxPerWorker)
	at := time.Unix(100, 0)
	n := 0
	add := func(ev events.TaskRouterEvent) {
		n++
		ev.ID = fmt.Sprintf("EZ%d", n)
		ev.WorkerSID = "WK1"
		b.add(ev, at)
	}
	for i := 0; i < 2; i++ { // delivered twice
		add(events.TaskRouterEvent{Type: "reservation.completed", ReservationSID: "WR1", TaskSID: "WT1"})
		add(events.TaskRouterEvent{Type: "reservation.accepted", ReservationSID: "WR1", TaskSID: "WT1"})
		add(events.TaskRouterEvent{Type: "reservation.created", ReservationSID: "WR1", TaskSID: "WT1"})
		add(events.TaskRouterEvent{Type: "reservation.accepted", ReservationSID: "WR2", TaskSID: "WT2"})
	}
	for v := int64(1); v <= 200; v++ {
		add(events.TaskRouterEvent{Type: "worker.activity.update", WorkerVersion: events.VersionOf(v), WorkerActivitySID: "WAbreak"})
	}
	// A late copy of an older version comes after the newest.
	add(events.TaskRouterEvent{Type: "worker.activity.update", WorkerVersion: events.VersionOf(7), WorkerActivitySID: "WAavailable"})
	if b.len() != 3 {
		t.Fatalf("%d events kept of %d, want 3 (one per reservation, one for the worker's activity)", b.len(), n)
	}
	want := map[string]string{"RWR1": "reservation.completed", "RWR2": "reservation.accepted", "WWK1/worker.activity.update": "worker.activity.update"}
	for key, typ := range want {
		e := b.byKey[key]
		if e == nil || e.ev.Type != typ {
			t.Fatalf("kept for %s: %+v, want a %s", key, e, typ)
		}
	}
	if v := b.byKey["WWK1/worker.activity.update"].ev.WorkerVersion; v.N != 200 {
		t.Fatalf("worker event kept at version %d, want the newest, 200", v.N)
	}
}

// TestEventBufferIsBounded: events about ever new things (a backlog of distinct tasks) never hold
// more than the bound; the oldest go first.
func TestEventBufferIsBounded(t *testing.T) {
	b := newEventBuffer(10)
	for i := 0; i < 1000; i++ {
		b.add(events.TaskRouterEvent{ID: fmt.Sprint(i), Type: "task.completed", TaskSID: fmt.Sprintf("WT%d", i)}, time.Unix(int64(i), 0))
	}
	if b.len() != 10 || len(b.byKey) != 10 || b.dropped != 990 {
		t.Fatalf("held %d (%d keys), dropped %d; want 10, 10, 990", b.len(), len(b.byKey), b.dropped)
	}
	if first := b.order[0].ev.TaskSID; first != "WT990" {
		t.Fatalf("oldest kept %s, want WT990", first)
	}
}
