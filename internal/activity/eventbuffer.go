package activity

import (
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// Buffers of events the engine cannot apply yet: those received before the workspace's activities
// are read (the first thing a run does), and, per worker, those of a worker the engine does not
// know until it has read that worker from TaskRouter. A new leader of a busy centre receives
// hundreds of events a second while it reads; a buffer that kept every one would grow with the
// traffic and the length of the read. These keep what an event can still tell after a read that
// is newer than it, coalesced by what the event is about, so that their size follows the work
// that is live (a reservation, a task, a worker, an activity), not the number of events:
//
//   - a reservation's events: the furthest status only (statuses only move forward), so a late
//     "accepted" never hides the "completed" received before it;
//   - a worker's, a task's or an activity's events of one type: the newest by version (the
//     latest received when the events carry none).
//
// maxPerWorker and maxEarly bound them outright. Dropping the oldest entry past the bound loses
// nothing the engine needs: every worker an event names is read from TaskRouter after the event
// was received, and the read is newer than the event.
const (
	// maxPerWorker bounds the events kept for one worker awaiting its read.
	maxPerWorker = 64
	// maxEarly bounds the events kept before the workspace's activities are read.
	maxEarly = 100_000
)

// eventBuffer is a coalescing buffer of events in the order they were first received.
type eventBuffer struct {
	order []*bufferedEvent
	byKey map[string]*bufferedEvent
	max   int
	// dropped counts the entries dropped past max.
	dropped int
}

// bufferedEvent is an event kept for later, with when it was received.
type bufferedEvent struct {
	ev events.TaskRouterEvent
	at time.Time
	// beforeRead is set once a read of the event's worker has begun: what the read finds is
	// newer than the event.
	beforeRead bool
}

func newEventBuffer(max int) *eventBuffer {
	return &eventBuffer{byKey: map[string]*bufferedEvent{}, max: max}
}

// len is how many events the buffer holds.
func (b *eventBuffer) len() int {
	if b == nil {
		return 0
	}
	return len(b.order)
}

// add keeps ev, received at at, replacing the entry it supersedes. It returns the change in the
// number of entries (1 for a new one, 0 when coalesced or when the oldest made room).
func (b *eventBuffer) add(ev events.TaskRouterEvent, at time.Time) int {
	key := coalesceKey(ev)
	if old, ok := b.byKey[key]; ok && key != "" {
		if supersedes(ev, old.ev) {
			old.ev, old.beforeRead = ev, false
		}
		return 0
	}
	e := &bufferedEvent{ev: ev, at: at}
	b.order = append(b.order, e)
	if key != "" {
		b.byKey[key] = e
	}
	if len(b.order) <= b.max {
		return 1
	}
	oldest := b.order[0]
	b.order[0] = nil
	b.order = b.order[1:]
	if k := coalesceKey(oldest.ev); k != "" && b.byKey[k] == oldest {
		delete(b.byKey, k)
	}
	b.dropped++
	return 0
}

// readBegins marks every event held as received before a read of its worker began.
func (b *eventBuffer) readBegins() {
	if b == nil {
		return
	}
	for _, e := range b.order {
		e.beforeRead = true
	}
}

// coalesceKey is what an event is about: events with the same key are coalesced. An event of a
// type the engine does not use has no key (it is kept as it is; the engine ignores it anyway).
func coalesceKey(ev events.TaskRouterEvent) string {
	typ := ev.Type
	switch {
	case strings.HasPrefix(typ, "reservation."):
		if ev.ReservationSID == "" {
			return ""
		}
		return "R" + ev.ReservationSID
	case strings.HasPrefix(typ, "worker."):
		return "W" + ev.WorkerSID + "/" + typ
	case strings.HasPrefix(typ, "task."):
		return "T" + ev.TaskSID + "/" + typ
	case strings.HasPrefix(typ, "activity."):
		return "A" + ev.ActivitySID + "/" + typ
	}
	return ""
}

// supersedes reports whether ev, received after old (same key), replaces it.
func supersedes(ev, old events.TaskRouterEvent) bool {
	if strings.HasPrefix(ev.Type, "reservation.") {
		// ResStatus values are in the order TaskRouter moves through them.
		return reservationStatusOf(ev.Type) >= reservationStatusOf(old.Type)
	}
	var v, o events.Version
	switch {
	case strings.HasPrefix(ev.Type, "task."):
		v, o = ev.TaskVersion, old.TaskVersion
	default:
		v, o = ev.WorkerVersion, old.WorkerVersion
	}
	if v.Known && o.Known {
		return v.N >= o.N
	}
	return true
}
