package activity

import (
	"fmt"
	"strings"

	"github.com/flexoperator/flex-operator/internal/events"
)

// sharedCatalog makes the policies of one workspace share one catalogue: the first policy's, with
// whatever the others' hold that it lacks (in production they already share it).
func sharedCatalog(ps []*Policy) *Catalog {
	var shared *Catalog
	for _, p := range ps {
		if p.Config == nil || p.Config.Activities == nil {
			continue
		}
		if shared == nil {
			shared = p.Config.Activities
			continue
		}
		if p.Config.Activities != shared {
			shared.adopt(p.Config.Activities)
			p.Config.Activities = shared
		}
	}
	if shared == nil {
		shared = NewCatalog(nil)
	}
	return shared
}

// Catalog returns the workspace's activities.
func (ws *Workspace) Catalog() *Catalog { return ws.catalog }

// applyActivity records an activity.created, activity.updated or activity.deleted event. An event
// of an activity the catalogue does not know that lacks its name or availability is left for the
// read a decision makes when it meets the activity (MissingActivities).
func (ws *Workspace) applyActivity(ev events.TaskRouterEvent) (Outcome, error) {
	var out Outcome
	if ev.ActivitySID == "" {
		return out, fmt.Errorf("%s event %s lacks the activity SID", ev.Type, ev.ID)
	}
	switch ev.Type {
	case "activity.created", "activity.updated":
		a := Activity{SID: ev.ActivitySID, Name: ev.ActivityName}
		known, ok := ws.catalog.Get(ev.ActivitySID)
		switch {
		case ev.ActivityAvailable != nil:
			a.Available = *ev.ActivityAvailable
		case ok:
			// TaskRouter never changes an activity's availability after creation.
			a.Available = known.Available
		default:
			out.Ignored = true
			return out, nil
		}
		if a.Name == "" {
			if !ok {
				out.Ignored = true
				return out, nil
			}
			a.Name = known.Name
		}
		changed := false
		if ev.Type == "activity.created" {
			changed = ws.catalog.Created(a, ev.Time)
		} else {
			changed = ws.catalog.Updated(a, ev.Time)
		}
		out.Touched = ws.settleRequests(ev.ActivitySID)
		if changed && ok && known.Name != a.Name {
			out.Touched = append(out.Touched, ws.renamePending(known.Name, a.Name)...)
		}
		out.Ignored = !changed && len(out.Touched) == 0
	case "activity.deleted":
		if !ws.catalog.Known(ev.ActivitySID) || ws.catalog.gone[ev.ActivitySID] {
			ws.catalog.Remove(ev.ActivitySID)
			out.Ignored = true
			return out, nil
		}
		ws.catalog.Remove(ev.ActivitySID)
		out.Touched = ws.settleRequests(ev.ActivitySID)
	default:
		out.Ignored = true
	}
	return out, nil
}

// renamePending follows a rename in the pending activities held under the old name: the next
// decision writes the new name into the worker's pending attribute (what Flex shows, and what a
// rebuild finds after a restart, when the catalogue no longer knows the old name). Until then the
// old name still finds the activity (Catalog.ByName).
func (ws *Workspace) renamePending(oldName, newName string) []string {
	var touched []string
	for sid, w := range ws.workers {
		if w.EffectivePending() == "" || !strings.EqualFold(w.EffectivePending(), oldName) {
			continue
		}
		name := newName
		w.Requested = &name
		touched = append(touched, sid)
	}
	return touched
}

// MissingActivities lists the activities a worker's decision needs that the catalogue does not
// know (its current activity, the activity a person's change asked for): the runner reads each
// from TaskRouter (PutActivity, or ActivityGone when it is not found) before deciding. A request
// whose activity has become known is settled on the way.
func (ws *Workspace) MissingActivities(workerSID string) []string {
	w := ws.workers[workerSID]
	if w == nil {
		return nil
	}
	var out []string
	if w.ActivitySID != "" && !ws.catalog.Known(w.ActivitySID) {
		out = append(out, w.ActivitySID)
	}
	if w.RequestedSID != "" {
		switch {
		case ws.catalog.Known(w.RequestedSID):
			ws.settle(w)
		case w.RequestedSID != w.ActivitySID:
			out = append(out, w.RequestedSID)
		}
	}
	return out
}

// PutActivity records an activity read from TaskRouter and returns the workers whose request for it
// it settled (decide them again).
func (ws *Workspace) PutActivity(a Activity) []string {
	ws.catalog.Put(a)
	return ws.settleRequests(a.SID)
}

// ActivityGone records that an activity read from TaskRouter does not exist (deleted) and returns
// the workers whose request for it was dropped.
func (ws *Workspace) ActivityGone(sid string) []string {
	ws.catalog.Remove(sid)
	return ws.settleRequests(sid)
}

// settleRequests settles the requests waiting for the activity's name.
func (ws *Workspace) settleRequests(activitySID string) []string {
	var touched []string
	for sid, w := range ws.workers {
		if w.RequestedSID == activitySID && ws.settle(w) {
			touched = append(touched, sid)
		}
	}
	return touched
}

// settle turns a request waiting as a SID into the activity's name once the catalogue knows it,
// or drops it when the activity was deleted (there is nothing left to give back). It reports
// whether the request was settled.
func (ws *Workspace) settle(w *Worker) bool {
	if w.RequestedSID == "" || !ws.catalog.Known(w.RequestedSID) {
		return false
	}
	a, ok := ws.catalog.Get(w.RequestedSID)
	w.RequestedSID = ""
	if !ok {
		return true
	}
	name := a.Name
	if p := ws.governor[w.SID]; p != nil && p.Config != nil && a.SID == p.Config.Available.SID {
		name = ""
	}
	w.Requested = &name
	return true
}
