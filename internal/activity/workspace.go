package activity

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
)

// Policy is one WorkerActivityPolicy as the engine runs it.
type Policy struct {
	Key types.NamespacedName
	// Created orders policies of a workspace: the older governs a worker both select.
	Created time.Time
	// Workers selects the governed workers.
	Workers *expr.Expr
	Config  *Config
	// Observe decides and reports but never writes.
	Observe bool
	// Generation is the policy object's metadata.generation this was made from.
	Generation int64
}

// older reports whether p governs before q: creation time, then name.
func (p *Policy) older(q *Policy) bool {
	if !p.Created.Equal(q.Created) {
		return p.Created.Before(q.Created)
	}
	if p.Key.Namespace != q.Key.Namespace {
		return p.Key.Namespace < q.Key.Namespace
	}
	return p.Key.Name < q.Key.Name
}

// Workspace is the engine's synchronous core for one TaskRouter workspace: every worker's state,
// which policy governs each, and the application of events. It does no I/O and is not safe for
// concurrent use (the runner holds a lock around it).
type Workspace struct {
	SID      string
	policies []*Policy
	workers  map[string]*Worker
	// governor is the policy governing each governed worker; overlap counts, per worker, the
	// other policies that select it.
	governor map[string]*Policy
	overlap  map[string][]*Policy
	// tasks indexes which workers hold a reservation of a task.
	tasks map[string]map[string]struct{}
	// ended remembers the tasks and reservations that ended (tombstones.go).
	ended *ended
	// marks is the newest extended-wrap-up mark seen per task, whatever order events came in.
	marks map[string]taskMark
	// seq counts the inputs applied (events and reads), to tell what changed since a read began.
	seq uint64
	// catalog is the workspace's activities, shared with every policy's Config.
	catalog *Catalog
}

// NewWorkspace returns an empty workspace governed by policies (any order).
func NewWorkspace(sid string, policies []*Policy) *Workspace {
	ps := append([]*Policy(nil), policies...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].older(ps[j]) })
	return &Workspace{
		SID: sid, policies: ps,
		workers:  map[string]*Worker{},
		governor: map[string]*Policy{},
		overlap:  map[string][]*Policy{},
		tasks:    map[string]map[string]struct{}{},
		ended:    newEnded(DefaultMaxEnded),
		marks:    map[string]taskMark{},
		catalog:  sharedCatalog(ps),
	}
}

// taskMark is what the newest event of a task said of its attributes, kept as the attributes
// themselves: policies of one workspace may name different mark attributes, so whether the task is
// marked is asked per worker (extended), not decided once for all.
type taskMark struct {
	// attributes are the task's attributes at version; events without a task version add to the
	// list rather than replace it (nothing orders them), so a mark once seen is not lost to a
	// reordered unversioned event. Bounded by maxUnversionedMarks.
	attributes []string
	version    events.Version
	// workerVersion is the worker version the event that set the mark carried: a reservation's
	// late event that takes the mark over moved the work then, not at its own worker version.
	workerVersion events.Version
}

// maxUnversionedMarks bounds the attributes remembered for a task whose events carry no version.
const maxUnversionedMarks = 4

// extended reports whether the task carries the mark attr.
func (m taskMark) extended(attr string) bool {
	for _, a := range m.attributes {
		if HasTrue(a, attr) {
			return true
		}
	}
	return false
}

// mark records what an event says of its task's attributes and returns the newest known. Task
// versions count from 0: an event carrying version 0 is ordered like any other.
func (ws *Workspace) mark(ev events.TaskRouterEvent) taskMark {
	m, ok := ws.marks[ev.TaskSID]
	unversioned := !ev.TaskVersion.Known && !m.version.Known
	if ev.TaskAttributes != "" && (!ok || ev.TaskVersion.Newer(m.version) || unversioned) {
		next := taskMark{attributes: []string{ev.TaskAttributes}, version: ev.TaskVersion, workerVersion: ev.WorkerVersion}
		if !ev.TaskVersion.Known {
			keep := m.attributes
			if len(keep) >= maxUnversionedMarks {
				keep = keep[len(keep)-maxUnversionedMarks+1:]
			}
			next.attributes = append(append([]string(nil), keep...), ev.TaskAttributes)
		}
		m = next
		ws.marks[ev.TaskSID] = m
	}
	return m
}

// Policies returns the policies, oldest first.
func (ws *Workspace) Policies() []*Policy { return ws.policies }

// Worker returns a worker's state, or nil.
func (ws *Workspace) Worker(sid string) *Worker { return ws.workers[sid] }

// Governor returns the policy governing a worker, or nil.
func (ws *Workspace) Governor(sid string) *Policy { return ws.governor[sid] }

// WorkerSIDs lists every known worker.
func (ws *Workspace) WorkerSIDs() []string {
	out := make([]string, 0, len(ws.workers))
	for sid := range ws.workers {
		out = append(out, sid)
	}
	return out
}

// PutWorker records a worker as read from TaskRouter, replacing what was known of it but its
// reservations (read separately with PutReservation), and works out who governs it. The read must
// not be older than what is known.
//
// A read is not only a fact: when it finds another activity than the one known (a read after a 412,
// when the engine's write lost to someone else's), a person made that change, and it is handled
// as one (Defer: the newest choice becomes the pending activity; Allow: it stands). A worker not
// known before (a rebuild) has no earlier activity to compare with; the worker.activity.update
// event of the version read, if it is replayed or arrives late, then says the change was a
// person's (observe).
func (ws *Workspace) PutWorker(sid, name, activitySID, etag, attributes string) *Worker {
	w := ws.workers[sid]
	if w == nil {
		w = NewWorker(sid, name, activitySID, etag, attributes, DefaultPendingActivityAttribute)
		w.unattributed = w.Version
		ws.workers[sid] = w
		ws.govern(w)
		return w
	}
	before := w.ActivitySID
	w.Name = name
	w.SetRead(activitySID, etag, attributes, DefaultPendingActivityAttribute)
	w.unattributed = -1
	ws.govern(w)
	if activitySID != before && activitySID != "" && !w.ownWrite(activitySID) {
		ws.personChanged(w)
	}
	return w
}

// Seq is the input sequence number: take it before reading a worker's reservations from
// TaskRouter and pass it to SetReservations.
func (ws *Workspace) Seq() uint64 { return ws.seq }

// SetReservations records a worker's live reservations as read from TaskRouter, the read having
// begun at sequence number since. Statuses only move forward, so an event applied meanwhile is
// never undone; a known reservation missing from the read has ended, unless an event touched it
// after the read began (it may be newer than the read). Ended reservations stay as tombstones.
//
// It reports whether the work changed.
func (ws *Workspace) SetReservations(workerSID string, live map[string]Reservation, since uint64) (changed bool) {
	w := ws.workers[workerSID]
	if w == nil {
		return false
	}
	ws.seq++
	for sid, r := range w.Reservations {
		if _, ok := live[sid]; ok || r.touched > since || r.Status == ResEnded {
			continue
		}
		r.Status, r.touched = ResEnded, ws.seq
		w.Allowed = false
		changed = true
	}
	for sid, r := range live {
		_, known := w.Reservations[sid]
		if w.ApplyReservation(sid, r) || !known {
			changed = true
		}
		w.Reservations[sid].touched = ws.seq
		ws.index(r.TaskSID, workerSID)
	}
	return changed
}

// ReadWorker records a worker and its live reservations as read from TaskRouter, the read having
// begun at sequence number since (take Seq before reading). The worker's read is taken unless it
// is older than what is known. A change of activity the read finds is a person's (PutWorker),
// handled knowing the work as read. When the same read also finds the work changed, nothing says
// which came first; the change is then taken as made before the work moved, so in mode Allow it
// does not stand but becomes the pending activity: the person's choice is kept either way, and the
// engine never holds a worker out of the activity the work calls for on a guess.
func (ws *Workspace) ReadWorker(sid, name, activitySID, etag, attributes string, live map[string]Reservation, since uint64) {
	known := ws.workers[sid]
	if known == nil {
		ws.PutWorker(sid, name, activitySID, etag, attributes)
		ws.SetReservations(sid, live, since)
		return
	}
	moved := ws.SetReservations(sid, live, since)
	v := ParseETag(etag)
	if v >= 0 && known.Version >= 0 && v < known.Version {
		return
	}
	if moved && v >= 0 {
		known.workAt = max(known.workAt, v)
	}
	ws.PutWorker(sid, name, activitySID, etag, attributes)
}

// PutReservation records a reservation read from TaskRouter.
func (ws *Workspace) PutReservation(workerSID, sid string, r Reservation) {
	w := ws.workers[workerSID]
	if w == nil {
		return
	}
	ws.seq++
	w.ApplyReservation(sid, r)
	w.Reservations[sid].touched = ws.seq
	ws.index(r.TaskSID, workerSID)
}

// RemoveWorker forgets a worker (deleted in TaskRouter).
func (ws *Workspace) RemoveWorker(sid string) {
	if w := ws.workers[sid]; w != nil {
		for _, r := range w.Reservations {
			ws.unindex(r.TaskSID, sid)
		}
	}
	delete(ws.workers, sid)
	delete(ws.governor, sid)
	delete(ws.overlap, sid)
}

// govern works out which policy governs w: the oldest whose workers expression selects it. Each
// policy's config reads the pending attribute it names.
func (ws *Workspace) govern(w *Worker) {
	env := map[string]any{}
	if w.Attributes != "" {
		_ = json.Unmarshal([]byte(w.Attributes), &env)
		if env == nil {
			env = map[string]any{}
		}
	}
	// TaskRouter's built-in worker fields, unless an attribute of the same name hides them.
	// (activity_sid and activity_name are left out on purpose: governance must not change with
	// the activities the engine itself sets.)
	if _, ok := env["sid"]; !ok {
		env["sid"] = w.SID
	}
	if _, ok := env["friendly_name"]; !ok {
		env["friendly_name"] = w.Name
	}
	var gov *Policy
	var over []*Policy
	for _, p := range ws.policies {
		if p.Workers == nil || !p.Workers.Eval(env) {
			continue
		}
		if gov == nil {
			gov = p
		} else {
			over = append(over, p)
		}
	}
	if gov == nil {
		delete(ws.governor, w.SID)
	} else {
		ws.governor[w.SID] = gov
		if gov.Config != nil && gov.Config.PendingAttribute != DefaultPendingActivityAttribute {
			w.Pending = PendingFromAttributes(w.Attributes, gov.Config.PendingAttribute)
		}
	}
	if len(over) == 0 {
		delete(ws.overlap, w.SID)
	} else {
		ws.overlap[w.SID] = over
	}
}

func (ws *Workspace) index(taskSID, workerSID string) {
	if taskSID == "" {
		return
	}
	m := ws.tasks[taskSID]
	if m == nil {
		m = map[string]struct{}{}
		ws.tasks[taskSID] = m
	}
	m[workerSID] = struct{}{}
}

func (ws *Workspace) unindex(taskSID, workerSID string) {
	if m := ws.tasks[taskSID]; m != nil {
		delete(m, workerSID)
		if len(m) == 0 {
			delete(ws.tasks, taskSID)
		}
	}
}

// Outcome is what applying one event did.
type Outcome struct {
	// Touched are the workers whose state changed: decide them again.
	Touched []string
	// Unknown are workers the event names that the engine does not know: read them.
	Unknown []string
	// Doubt are workers the event says something of that cannot be placed against what is known
	// (no version to order it by): read them.
	Doubt []string
	// Ignored is true when the event is of no interest (another type, nothing new).
	Ignored bool
}

// reservationStatusOf maps a reservation event type to the status it leaves the reservation in.
func reservationStatusOf(eventType string) ResStatus {
	switch strings.TrimPrefix(eventType, "reservation.") {
	case "created":
		return ResPending
	case "accepted":
		return ResAccepted
	case "wrapup":
		return ResWrapping
	case "completed", "rejected", "timeout", "canceled", "rescinded":
		return ResEnded
	}
	return ResUnknown
}

// Apply records one TaskRouter event at time now. An event of another workspace, or one lacking
// the SIDs its type needs, is an error and changes nothing.
func (ws *Workspace) Apply(ev events.TaskRouterEvent, now time.Time) (Outcome, error) {
	var out Outcome
	if ev.WorkspaceSID != "" && ev.WorkspaceSID != ws.SID {
		return out, fmt.Errorf("event %s is for workspace %s, not %s", ev.ID, ev.WorkspaceSID, ws.SID)
	}
	typ := ev.Type
	switch {
	case strings.HasPrefix(typ, "reservation."):
		st := reservationStatusOf(typ)
		if st == ResUnknown {
			out.Ignored = true
			return out, nil
		}
		if ev.WorkerSID == "" || ev.ReservationSID == "" {
			return out, fmt.Errorf("%s event %s lacks the worker or reservation SID", typ, ev.ID)
		}
		w := ws.workers[ev.WorkerSID]
		if w == nil {
			out.Unknown = append(out.Unknown, ev.WorkerSID)
			return out, nil
		}
		at := eventTime(ev, now)
		if ws.ended.has(ev.TaskSID) || ws.ended.has(ev.ReservationSID) {
			// A late event of work that is over: it records (or keeps) a tombstone only.
			st = ResEnded
		} else if _, known := w.Reservations[ev.ReservationSID]; !known && st != ResEnded && ws.ended.beforeHorizon(at) {
			// Older than work already forgotten: it may be of forgotten work. Read the worker.
			out.Doubt = append(out.Doubt, w.SID)
			return out, nil
		}
		if st == ResEnded {
			ws.endReservation(w.SID, ev.ReservationSID, at)
		}
		// The worker fields first: a change of activity they show was made before this
		// reservation moved, so whether the worker was busy then is asked of the work known
		// before it (an agent who picked Available while only offered a task was not busy).
		seen, doubt := ws.observe(w, ev)
		ws.seq++
		mk := ws.mark(ev)
		allowed := w.Allowed
		prev, known := w.Reservations[ev.ReservationSID]
		wasExtended := known && prev.Extended
		changed := w.ApplyReservation(ev.ReservationSID, Reservation{
			TaskSID: ev.TaskSID, Channel: ev.TaskChannel, Status: st,
			Extended: mk.extended(ws.extendedAttr(w.SID)), TaskVersion: mk.version,
		})
		if changed || !known {
			// A reservation first seen ended moved the work too (its offer's event is late).
			w.workMoved(movedAt(ev, mk, wasExtended != w.Reservations[ev.ReservationSID].Extended), allowed)
		}
		w.Reservations[ev.ReservationSID].touched = ws.seq
		ws.index(ev.TaskSID, w.SID)
		if seen {
			changed = true
		}
		if changed {
			out.Touched = append(out.Touched, w.SID)
		}
		if doubt {
			out.Doubt = append(out.Doubt, w.SID)
		}
	case strings.HasPrefix(typ, "task."):
		if ev.TaskSID == "" {
			return out, fmt.Errorf("%s event %s lacks the task SID", typ, ev.ID)
		}
		var st ResStatus
		switch typ {
		case "task.completed", "task.canceled", "task.deleted", "task.system-deleted":
			st = ResEnded
			defer ws.endTask(ev.TaskSID, eventTime(ev, now))
		case "task.wrapup":
			st = ResWrapping
		case "task.updated":
		default:
			out.Ignored = true
			return out, nil
		}
		mk := ws.mark(ev)
		for wsid := range ws.tasks[ev.TaskSID] {
			w := ws.workers[wsid]
			if w == nil {
				continue
			}
			changed := false
			for rsid, r := range w.Reservations {
				if r.TaskSID != ev.TaskSID {
					continue
				}
				upd := Reservation{TaskSID: r.TaskSID, Channel: r.Channel, Status: r.Status,
					Extended: mk.extended(ws.extendedAttr(wsid)), TaskVersion: mk.version}
				switch {
				case st == ResEnded:
					upd.Status = ResEnded
				case st == ResWrapping && r.Status == ResAccepted:
					upd.Status = ResWrapping
				}
				ws.seq++
				allowed := w.Allowed
				if w.ApplyReservation(rsid, upd) {
					changed = true
					r.touched = ws.seq
					w.workMoved(ev.WorkerVersion, allowed)
				}
			}
			if changed {
				out.Touched = append(out.Touched, wsid)
			}
		}
		out.Ignored = len(out.Touched) == 0
	case strings.HasPrefix(typ, "activity."):
		return ws.applyActivity(ev)
	case typ == "worker.deleted":
		if ws.workers[ev.WorkerSID] == nil {
			out.Ignored = true
			return out, nil
		}
		ws.RemoveWorker(ev.WorkerSID)
	case strings.HasPrefix(typ, "worker."):
		if ev.WorkerSID == "" {
			return out, fmt.Errorf("%s event %s lacks the worker SID", typ, ev.ID)
		}
		w := ws.workers[ev.WorkerSID]
		if w == nil {
			out.Unknown = append(out.Unknown, ev.WorkerSID)
			return out, nil
		}
		switch changed, doubt := ws.observe(w, ev); {
		case changed:
			out.Touched = append(out.Touched, w.SID)
		case doubt:
			out.Doubt = append(out.Doubt, w.SID)
		default:
			out.Ignored = true
		}
	default:
		out.Ignored = true
	}
	return out, nil
}

// movedAt is the worker version at which a reservation event moved the work: its own, or, when
// the change is the extended-wrap-up mark taken from a newer task event (one that came before the
// reservation was known), the newer of its own and that event's.
func movedAt(ev events.TaskRouterEvent, mk taskMark, markChanged bool) events.Version {
	v := ev.WorkerVersion
	if markChanged && mk.version.Newer(ev.TaskVersion) && mk.workerVersion.Newer(v) {
		return mk.workerVersion
	}
	return v
}

// extendedAttr is the task attribute marking an extended wrap-up for the worker's policy.
func (ws *Workspace) extendedAttr(workerSID string) string {
	if p := ws.governor[workerSID]; p != nil && p.Config != nil && p.Config.ExtendedWrapupAttribute != "" {
		return p.Config.ExtendedWrapupAttribute
	}
	return DefaultExtendedWrapupAttribute
}

// observe records the worker fields an event carries. It reports whether the worker changed in a
// way the decision must see (a change of activity the engine did not make, or of attributes), and
// whether the event disagrees with what is known without a version to say which is newer (the
// worker must then be read: taking it would make the engine's view disagree with its ETag).
//
// Versions are compared as what they are: a worker is created at version 0, so an event carrying
// worker_version 0 is older than the Break a supervisor set at version 1, never "unversioned".
func (ws *Workspace) observe(w *Worker, ev events.TaskRouterEvent) (changed, doubt bool) {
	if ev.WorkerActivitySID == "" && ev.WorkerAttributes == "" {
		return false, false
	}
	if !ev.WorkerVersion.Known {
		differs := (ev.WorkerActivitySID != "" && ev.WorkerActivitySID != w.ActivitySID) ||
			(ev.WorkerAttributes != "" && ev.WorkerAttributes != w.Attributes)
		return false, differs
	}
	version := ev.WorkerVersion.N
	if version == w.Version && version == w.unattributed && ev.Type == "worker.activity.update" &&
		ev.WorkerActivitySID == w.ActivitySID {
		// The event of the change a read found: a person's (the engine's own writes are answered
		// with their version, which clears unattributed before their echo can arrive).
		w.unattributed = -1
		return ws.personChanged(w), false
	}
	cfg := ws.configOf(w.SID)
	beforeAttrs, beforeGov := w.Attributes, ws.governor[w.SID]
	activityChanged := w.ObserveWorker(cfg, version, ev.WorkerActivitySID, ev.WorkerAttributes, ev.WorkerAttributes != "")
	changed = activityChanged
	if w.Attributes != beforeAttrs {
		ws.govern(w)
		changed = true
	}
	if activityChanged && !w.ownWrite(ev.WorkerActivitySID) {
		ws.personChanged(w)
	}
	return changed || ws.governor[w.SID] != beforeGov, false
}

// personChanged records that a person set the worker's current activity; it reports whether the
// worker is governed (and so must be decided again).
func (ws *Workspace) personChanged(w *Worker) bool {
	p := ws.governor[w.SID]
	if p == nil || p.Config == nil {
		return false
	}
	w.PersonChanged(p.Config)
	return true
}

// configOf is the governing policy's config, or a default one for reading attributes.
func (ws *Workspace) configOf(workerSID string) *Config {
	if p := ws.governor[workerSID]; p != nil && p.Config != nil {
		return p.Config
	}
	return &Config{PendingAttribute: DefaultPendingActivityAttribute}
}

// Decide returns the governing policy of a worker and its decision; a nil policy when no policy
// governs it (it is left alone).
func (ws *Workspace) Decide(workerSID string) (*Policy, Decision) {
	w := ws.workers[workerSID]
	p := ws.governor[workerSID]
	if w == nil || p == nil || p.Config == nil {
		return nil, Decision{Rule: RuleNothing}
	}
	return p, Decide(p.Config, w)
}

// Writing records that the engine is sending d to TaskRouter: until Written or WriteFailed, an
// event showing d's activity is recognised as the engine's own (its echo can arrive before the
// answer to the request).
func (ws *Workspace) Writing(workerSID string, d Decision) {
	if w := ws.workers[workerSID]; w != nil {
		w.writing(d.ActivitySID)
	}
}

// WriteFailed records that the write of d did not happen.
func (ws *Workspace) WriteFailed(workerSID string, d Decision) {
	if w := ws.workers[workerSID]; w != nil {
		w.writeEnded(d.ActivitySID)
	}
}

// Written records a successful write of d: the worker as TaskRouter returned it. A response older
// than what events already told is not taken over them.
func (ws *Workspace) Written(workerSID string, d Decision, activitySID, etag, attributes string) {
	w := ws.workers[workerSID]
	if w == nil {
		return
	}
	w.writeEnded(d.ActivitySID)
	// The request written is done with; one a person made while the write was on its way stays.
	if w.requests == d.requests {
		w.Requested = nil
	}
	v := ParseETag(etag)
	if v >= 0 && w.Version >= 0 && v <= w.Version {
		return
	}
	w.unattributed = -1
	before := w.Attributes
	w.SetRead(activitySID, etag, attributes, ws.configOf(workerSID).PendingAttribute)
	if w.Attributes != before {
		ws.govern(w)
	}
}

// eventTime is TaskRouter's time of an event, or now for one without (events the parser produced
// always have one).
func eventTime(ev events.TaskRouterEvent, now time.Time) time.Time {
	if ev.Time.IsZero() {
		return now
	}
	return ev.Time
}

// Stats are one policy's aggregates over the workspace.
func (ws *Workspace) Stats(p *Policy) (governed, busy, pending, overlapping int32) {
	for sid, g := range ws.governor {
		if g != p {
			continue
		}
		governed++
		w := ws.workers[sid]
		if w.Busy(p.Config) {
			busy++
		}
		if w.EffectivePending() != "" {
			pending++
		}
	}
	for _, over := range ws.overlap {
		for _, o := range over {
			if o == p {
				overlapping++
			}
		}
	}
	return
}
