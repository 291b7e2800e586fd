package activity

import (
	"time"

	"github.com/flexoperator/flex-operator/internal/events"
)

// deliver applies events (or buffers them while the state is rebuilt).
func (r *run) deliver(evs []events.TaskRouterEvent, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.synced {
		for _, ev := range evs {
			r.buffer = append(r.buffer, bufferedEvent{ev: ev, at: at})
		}
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

func (r *run) applyLocked(ev events.TaskRouterEvent, at time.Time) {
	out, err := r.ws.Apply(ev, r.e.opts.Now())
	if err != nil {
		eventsTotal.WithLabelValues("bad").Inc()
		badInputTotal.WithLabelValues("event").Inc()
		r.log().Info("Ignored a TaskRouter event the engine cannot use", "event", ev.ID, "type", ev.Type, "error", err.Error())
		return
	}
	for _, sid := range out.Unknown {
		eventsTotal.WithLabelValues("unknown_worker").Inc()
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
