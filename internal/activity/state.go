package activity

import (
	"strconv"
	"strings"

	"github.com/flexoperator/flex-operator/internal/events"
)

// ResStatus is where a reservation stands. Statuses only move forward (TaskRouter never takes a
// reservation back), which is how late and reordered events are recognised and dropped.
type ResStatus uint8

// Reservation statuses, in the order TaskRouter moves through them.
const (
	ResUnknown ResStatus = iota
	ResPending
	ResAccepted
	ResWrapping
	// ResEnded covers completed, rejected, timeout, canceled and rescinded: nothing to hold.
	ResEnded
)

// ParseResStatus maps a TaskRouter reservation status ("wrapup" is what the Instant Query index
// says for "wrapping").
func ParseResStatus(s string) ResStatus {
	switch strings.ToLower(s) {
	case "pending":
		return ResPending
	case "accepted":
		return ResAccepted
	case "wrapping", "wrapup":
		return ResWrapping
	case "completed", "rejected", "timeout", "canceled", "rescinded":
		return ResEnded
	}
	return ResUnknown
}

// String is the TaskRouter spelling.
func (s ResStatus) String() string {
	switch s {
	case ResPending:
		return "pending"
	case ResAccepted:
		return "accepted"
	case ResWrapping:
		return "wrapping"
	case ResEnded:
		return "ended"
	}
	return "unknown"
}

// Reservation is what the engine keeps of one of a worker's reservations.
type Reservation struct {
	TaskSID string
	// Channel is the task channel's unique name.
	Channel string
	Status  ResStatus
	// Extended is true when the task carries the extended-wrap-up mark.
	Extended bool
	// TaskVersion is the task version Extended was read at (not Known after a read from the REST
	// API, which does not say).
	TaskVersion events.Version
	// touched is the workspace's input sequence number when this reservation last changed.
	touched uint64
}

// Worker is the engine's state of one governed worker.
type Worker struct {
	SID  string
	Name string
	// ActivitySID is the worker's current activity.
	ActivitySID string
	// Version is the worker's version as TaskRouter counts it (events' worker_version, the ETag of
	// a read or an update); -1 when unknown.
	Version int64
	// ETag is the worker's ETag as last read, sent as If-Match.
	ETag string
	// Attributes is the worker's attributes JSON, exactly as TaskRouter stores it.
	Attributes string
	// Pending is the pending activity's friendly name as stored in Attributes ("" for none).
	Pending string
	// Requested, when not nil, is the pending activity a person's change just asked for (""
	// clears it), to be written with the next decision.
	Requested *string
	// RequestedSID is the activity a person's change asked for while the catalogue did not know
	// it yet (created after the catalogue was read, its event not here yet): the pending
	// attribute holds a name, never a SID, so the request waits as a SID until the activity is
	// read and becomes Requested then (Workspace.MissingActivities).
	RequestedSID string
	// requests counts the person's changes seen, so that a write clears only the request it
	// was decided with.
	requests uint64
	// inFlight are the activities of the engine's own updates of the worker that are on their way
	// ("" for one that sets only attributes), one entry per update: an event showing one of them
	// before the answer arrives is the engine's own change, not a person's. Each update removes
	// its own entry when it ends, so one ending never makes another's echo look like a person.
	inFlight []string
	// unattributed is the version at which a read (a rebuild, a read of a worker the engine did
	// not know) found the worker's activity without knowing who set it; -1 when none. The
	// worker.activity.update event of that version, replayed or late, then says it was a change
	// a person made.
	unattributed int64
	// Allowed is set when a person's change while busy stands (mode Allow) until the work changes.
	Allowed bool
	// allowedAt is the worker version of the change Allowed stands for, and workAt the newest
	// worker version an event that changed the work carried (-1 when none): events of the work
	// and of the worker arrive in any order, and their versions tell which came first.
	allowedAt, workAt int64
	// Reservations by SID; ended ones stay as tombstones so that a late event cannot revive them.
	Reservations map[string]*Reservation
}

// NewWorker returns the state of a worker read from TaskRouter.
func NewWorker(sid, name, activitySID, etag, attributes, pendingAttr string) *Worker {
	w := &Worker{SID: sid, Name: name, Reservations: map[string]*Reservation{}, unattributed: -1, workAt: -1}
	w.SetRead(activitySID, etag, attributes, pendingAttr)
	return w
}

// SetRead records the worker as just read from (or written to) TaskRouter.
func (w *Worker) SetRead(activitySID, etag, attributes, pendingAttr string) {
	w.ActivitySID = activitySID
	w.ETag = etag
	w.Version = ParseETag(etag)
	w.Attributes = attributes
	w.Pending = PendingFromAttributes(attributes, pendingAttr)
}

// ParseETag reads TaskRouter's worker version out of an ETag ("3", "\"3\"", W/"3"); -1 when it is
// not a number.
func ParseETag(etag string) int64 {
	s := strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	s = strings.Trim(s, "\"")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Counted returns how many live reservations on the policy's channels are pending, accepted and
// wrapping, and whether any wrapping one is extended.
func (w *Worker) Counted(c *Config) (pending, accepted, wrapping int, extended bool) {
	for _, r := range w.Reservations {
		if !c.Counts(r.Channel) {
			continue
		}
		switch r.Status {
		case ResPending:
			pending++
		case ResAccepted:
			accepted++
		case ResWrapping:
			wrapping++
			extended = extended || r.Extended
		}
	}
	return
}

// Busy reports whether the worker holds an accepted or wrapping reservation that counts.
func (w *Worker) Busy(c *Config) bool {
	_, a, wr, _ := w.Counted(c)
	return a+wr > 0
}

// ApplyReservation records a reservation event or read. It reports whether anything changed: an
// older status than the one known (a late or reordered event) changes nothing.
func (w *Worker) ApplyReservation(sid string, r Reservation) bool {
	old, ok := w.Reservations[sid]
	if !ok {
		cp := r
		w.Reservations[sid] = &cp
		// New work, or the end of work whose earlier events are still on their way (a rejection
		// can arrive before the offer): either way the work changed, and a change a person was
		// allowed to make no longer stands (the caller's workMoved gives it back when the event
		// is older than that change). An ended one first seen is still no change to decide on.
		w.Allowed = false
		return r.Status != ResEnded
	}
	changed := false
	if r.Status > old.Status {
		old.Status = r.Status
		changed = true
	}
	if old.Channel == "" && r.Channel != "" {
		old.Channel = r.Channel
	}
	if old.TaskSID == "" {
		old.TaskSID = r.TaskSID
	}
	// The extended-wrap-up mark: a newer task version says what it is; without one to order by,
	// the mark only ever gets set (the Flex companion never takes it back).
	switch {
	case r.TaskVersion.Newer(old.TaskVersion):
		if r.Extended != old.Extended {
			changed = true
		}
		old.Extended, old.TaskVersion = r.Extended, r.TaskVersion
	case !r.TaskVersion.Known && r.Extended && !old.Extended:
		old.Extended = true
		changed = true
	}
	if changed {
		// The work changed: a change a person was allowed to make no longer stands.
		w.Allowed = false
	}
	return changed
}

// Prune drops ended reservations of tasks for which keep reports false (tombstones are needed only
// while late events for them can still arrive).
func (w *Worker) Prune(keep func(taskSID string) bool) {
	for sid, r := range w.Reservations {
		if r.Status == ResEnded && !keep(r.TaskSID) {
			delete(w.Reservations, sid)
		}
	}
}

// ObserveWorker records what an event says of the worker at version: the activity and attributes
// TaskRouter had then. Events older than what is known change nothing. It returns whether the
// activity changed: a change the engine did not make (its own writes advance Version first).
//
// version must be known (>= 0): an event without one cannot be ordered against what is known, and
// taking its activity while keeping the ETag would let a write based on a stale view pass If-Match
// (the caller reads the worker instead).
func (w *Worker) ObserveWorker(c *Config, version int64, activitySID, attributes string, hasAttributes bool) (activityChanged bool) {
	if version < 0 || (w.Version >= 0 && version <= w.Version) {
		return false
	}
	w.Version = version
	// The ETag is no longer the current one: the next write re-reads on 412 if the format
	// differs, and in the simulator and TaskRouter alike it is the version number.
	w.ETag = strconv.FormatInt(version, 10)
	w.unattributed = -1
	if hasAttributes {
		w.Attributes = attributes
		w.Pending = PendingFromAttributes(attributes, c.PendingAttribute)
	}
	if activitySID != "" && activitySID != w.ActivitySID {
		w.ActivitySID = activitySID
		return true
	}
	return false
}

// PersonChanged handles a change of activity the engine did not make (an agent, a supervisor, an
// API call, TaskRouter's timeout activity). While the worker is busy, a change to a non-system
// activity becomes the pending activity (Defer) or stands (Allow); otherwise, and for a change to a
// system activity, nothing is recorded and the decision corrects what needs correcting. A change
// while not busy clears a pending activity: the person's latest choice wins.
func (w *Worker) PersonChanged(c *Config) {
	w.requests++
	system := c.IsSystem(w.ActivitySID)
	if !w.Busy(c) {
		if !system && w.ActivitySID != "" {
			empty := ""
			w.Requested, w.RequestedSID = &empty, ""
		}
		return
	}
	if system {
		return
	}
	if c.BusyChange == "Allow" {
		// Unless the work already moved after the change (its event came first): then the
		// change no longer stands, as if the events had come in order.
		if w.Version < 0 || w.workAt < w.Version {
			w.Allowed, w.allowedAt = true, w.Version
		}
		return
	}
	req := ""
	// Available is where the worker goes anyway once the work is done: nothing to keep.
	if w.ActivitySID != c.Available.SID {
		a, ok := c.Activities.Get(w.ActivitySID)
		if !ok {
			w.Requested, w.RequestedSID = nil, w.ActivitySID
			return
		}
		req = a.Name
	}
	w.Requested, w.RequestedSID = &req, ""
}

// writing records an update of the engine on its way that sets activitySID.
func (w *Worker) writing(activitySID string) { w.inFlight = append(w.inFlight, activitySID) }

// writeEnded records that one update setting activitySID ended, whatever its outcome.
func (w *Worker) writeEnded(activitySID string) {
	for i, a := range w.inFlight {
		if a == activitySID {
			w.inFlight = append(w.inFlight[:i], w.inFlight[i+1:]...)
			return
		}
	}
}

// ownWrite reports whether activitySID is what an update of the engine on its way sets.
func (w *Worker) ownWrite(activitySID string) bool {
	if activitySID == "" {
		return false
	}
	for _, a := range w.inFlight {
		if a == activitySID {
			return true
		}
	}
	return false
}

// workMoved records that an event at worker version v (Known false when it carried none) changed
// the work; wasAllowed is Allowed before it. A change of the work made before the person's change
// that stands (a late event) does not take it back.
func (w *Worker) workMoved(v events.Version, wasAllowed bool) {
	if !v.Known {
		return
	}
	if wasAllowed && v.N < w.allowedAt {
		w.Allowed = true
	}
	w.workAt = max(w.workAt, v.N)
}

// EffectivePending is the pending activity the decision works with.
func (w *Worker) EffectivePending() string {
	if w.Requested != nil {
		return *w.Requested
	}
	return w.Pending
}
