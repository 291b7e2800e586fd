package activity

import (
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// deliver applies events; before the workspace's activities are read it keeps them (coalesced)
// for then.
func (r *run) deliver(evs []events.TaskRouterEvent, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ws == nil {
		n := 0
		for _, ev := range evs {
			n += r.early.add(ev, at)
		}
		r.addBuffered(n)
		eventsTotal.WithLabelValues("buffered").Add(float64(len(evs)))
		return
	}
	for _, ev := range evs {
		r.applyLocked(ev, at)
	}
}

// ofWorkspace keeps the events of the run's workspace. Event Streams subscriptions are
// account-wide: a policy's sink receives every workspace's TaskRouter events, and those of other
// workspaces are expected, not bad input.
func (r *run) ofWorkspace(evs []events.TaskRouterEvent) []events.TaskRouterEvent {
	out := evs[:0:0]
	for _, ev := range evs {
		if ev.WorkspaceSID == "" || ev.WorkspaceSID == r.sid {
			out = append(out, ev)
		}
	}
	if n := len(evs) - len(out); n > 0 {
		eventsTotal.WithLabelValues("other_workspace").Add(float64(n))
	}
	return out
}

// applyLocked applies one event to the workspace's state. An event of a worker the engine does
// not know is kept for the worker, who is read from TaskRouter first. The caller holds r.mu.
func (r *run) applyLocked(ev events.TaskRouterEvent, at time.Time) {
	if !r.synced && ev.TaskSID != "" {
		r.freshTasks[ev.TaskSID] = true
	}
	out, err := r.ws.Apply(ev, r.e.opts.Now())
	if err != nil {
		eventsTotal.WithLabelValues("bad").Inc()
		badInputTotal.WithLabelValues("event").Inc()
		r.log().Info("Ignored a TaskRouter event the engine cannot use", "event", ev.ID, "type", ev.Type, "error", err.Error())
		return
	}
	for _, sid := range out.Unknown {
		eventsTotal.WithLabelValues("unknown_worker").Inc()
		r.await(sid, ev, at)
		r.readFirst(sid)
	}
	for _, sid := range out.Doubt {
		eventsTotal.WithLabelValues("doubt").Inc()
		r.readFirst(sid)
	}
	if out.Ignored && len(out.Unknown) == 0 {
		eventsTotal.WithLabelValues("ignored").Inc()
		return
	}
	eventsTotal.WithLabelValues("applied").Inc()
	for _, sid := range out.Touched {
		if _, ok := r.since[sid]; !ok {
			r.since[sid] = at
		}
		r.queue.Add(sid)
	}
}

// await keeps an event of a worker the engine does not know until the worker has been read. The
// caller holds r.mu.
func (r *run) await(workerSID string, ev events.TaskRouterEvent, at time.Time) {
	b := r.waiting[workerSID]
	if b == nil {
		b = newEventBuffer(maxPerWorker)
		r.waiting[workerSID] = b
	}
	r.addBuffered(b.add(ev, at))
	if _, ok := r.since[workerSID]; !ok {
		r.since[workerSID] = at
	}
}

// replayAwaited applies the events kept for a worker just read. An event received before the read
// began that would bring back a reservation the read did not find live is not applied: the read is
// newer, and the reservation's end is on its way (or was missed). The caller holds r.mu.
func (r *run) replayAwaited(workerSID string) {
	b := r.waiting[workerSID]
	if b == nil {
		return
	}
	delete(r.waiting, workerSID)
	r.addBuffered(-b.len())
	w := r.ws.Worker(workerSID)
	if w == nil {
		// Deleted in TaskRouter: nothing to apply to.
		return
	}
	for _, e := range b.order {
		if e.beforeRead && strings.HasPrefix(e.ev.Type, "reservation.") && reservationStatusOf(e.ev.Type) != ResEnded &&
			w.Reservations[e.ev.ReservationSID] == nil {
			eventsTotal.WithLabelValues("older_than_read").Inc()
			continue
		}
		r.applyLocked(e.ev, e.at)
	}
}

// addBuffered counts n more (or fewer) buffered events. The caller holds r.mu. A stopped run
// counts nothing more: it takes what it counted off the gauge once its goroutines have ended.
func (r *run) addBuffered(n int) {
	if n == 0 || r.stopping() {
		return
	}
	r.buffered += n
	bufferedEvents.WithLabelValues(r.sid).Add(float64(n))
}
