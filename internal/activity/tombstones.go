package activity

import "time"

// DefaultMaxEnded bounds the ended tasks and reservations a workspace remembers. It is sized for a
// large centre: at 8,000 live tasks handled in five minutes each (about 27 tasks and a few more
// reservations ending a second), it covers the last half hour or so of ends, while the memory stays
// a few megabytes whatever the traffic.
const DefaultMaxEnded = 50_000

// ended remembers the tasks and reservations that ended, so that a late or redelivered event of
// one of them (a sink's backlog after an outage) never brings back work that is over: an agent
// would be stuck On a Task until the next rebuild.
//
// The memory is bounded by count, not by a clock: the oldest ends are forgotten first once max is
// reached. What is forgotten is not trusted blindly either: horizon is TaskRouter's time of the
// newest end forgotten, and an event older than it that names a reservation the engine does not
// know could be of forgotten work, so the worker is read from TaskRouter rather than the event
// applied (Workspace.Apply). A fresh event of new work is always newer than the horizon and costs
// no read. Comparing TaskRouter's own event times with each other keeps the rule free of clock
// skew between the operator and Twilio.
type ended struct {
	// at is TaskRouter's time of each end, by task (WT…) or reservation (WR…) SID; worker names
	// the worker of an ended reservation, to drop its tombstone when it is forgotten.
	at     map[string]time.Time
	worker map[string]string
	// order lists the SIDs in at, oldest end first.
	order   []string
	max     int
	horizon time.Time
}

func newEnded(max int) *ended {
	return &ended{at: map[string]time.Time{}, worker: map[string]string{}, max: max}
}

// has reports whether sid (a task or a reservation) is remembered as ended.
func (e *ended) has(sid string) bool {
	_, ok := e.at[sid]
	return ok
}

// add remembers that sid ended at (TaskRouter's time); workerSID is set for a reservation. It
// returns the SIDs forgotten to make room, with the worker of each reservation among them.
func (e *ended) add(sid, workerSID string, at time.Time) (forgotten map[string]string) {
	if sid == "" || e.has(sid) {
		return nil
	}
	e.at[sid] = at
	if workerSID != "" {
		e.worker[sid] = workerSID
	}
	e.order = append(e.order, sid)
	for len(e.order) > e.max {
		old := e.order[0]
		e.order = e.order[1:]
		if t := e.at[old]; t.After(e.horizon) {
			e.horizon = t
		}
		if forgotten == nil {
			forgotten = map[string]string{}
		}
		forgotten[old] = e.worker[old]
		delete(e.at, old)
		delete(e.worker, old)
	}
	return forgotten
}

// beforeHorizon reports whether an event at t may be older than work already forgotten.
func (e *ended) beforeHorizon(t time.Time) bool {
	return !e.horizon.IsZero() && !t.After(e.horizon)
}

// endTask records that a task ended at (TaskRouter's time) and drops the tombstones of the work
// forgotten to make room.
func (ws *Workspace) endTask(taskSID string, at time.Time) {
	ws.forget(ws.ended.add(taskSID, "", at))
}

// endReservation records that a worker's reservation ended at (TaskRouter's time).
func (ws *Workspace) endReservation(workerSID, reservationSID string, at time.Time) {
	ws.forget(ws.ended.add(reservationSID, workerSID, at))
}

// forget drops what the workspace keeps of ended tasks and reservations no longer remembered.
func (ws *Workspace) forget(sids map[string]string) {
	for sid, workerSID := range sids {
		if workerSID != "" {
			if w := ws.workers[workerSID]; w != nil {
				if r := w.Reservations[sid]; r != nil && r.Status == ResEnded {
					delete(w.Reservations, sid)
				}
			}
			continue
		}
		delete(ws.marks, sid)
		for wsid := range ws.tasks[sid] {
			if w := ws.workers[wsid]; w != nil {
				w.Prune(func(t string) bool { return t != sid })
			}
		}
		delete(ws.tasks, sid)
	}
}

// InheritEnded takes over what prev (the workspace's state before a restart of its run, no longer
// used) remembers of ended work, so that a restart does not open a window for late events.
func (ws *Workspace) InheritEnded(prev *Workspace) {
	if prev == nil || prev.ended == nil {
		return
	}
	e := prev.ended
	e.max = ws.ended.max
	for len(e.order) > e.max {
		old := e.order[0]
		e.order = e.order[1:]
		if t := e.at[old]; t.After(e.horizon) {
			e.horizon = t
		}
		delete(e.at, old)
		delete(e.worker, old)
	}
	ws.ended = e
}

// SetMaxEnded sets how many ended tasks and reservations are remembered (DefaultMaxEnded when
// not set); tests make it small.
func (ws *Workspace) SetMaxEnded(n int) {
	if n > 0 {
		ws.ended.max = n
	}
}
