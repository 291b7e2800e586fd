package activity

import (
	"strings"
	"time"
)

// Catalog is the activities of one workspace, shared by every policy of it. Administrators add,
// rename and delete activities while the engine runs, so the catalogue is kept current from
// TaskRouter's activity events (activity.created, activity.updated, activity.deleted) and, for an
// activity met by SID before its event, from one read of that activity; never by a rebuild. It is
// not safe for concurrent use (the runner's lock guards it, as it guards the Workspace).
type Catalog struct {
	bySID map[string]Activity
	// former maps the earlier names of renamed activities (lower case) to their SID: a pending
	// activity stored under the old name still finds its activity.
	former map[string]string
	// gone are activities deleted in TaskRouter (by event, or read and not found). SIDs are never
	// reused, so a late created or updated event cannot bring one back.
	gone map[string]bool
	// at is the time of the newest activity event applied per SID: Event Streams delivers out of
	// order, and an older rename must not undo a newer one.
	at map[string]time.Time
}

// NewCatalog returns a catalogue of the activities as listed from TaskRouter.
func NewCatalog(all []Activity) *Catalog {
	c := &Catalog{bySID: make(map[string]Activity, len(all)), former: map[string]string{}, gone: map[string]bool{},
		at: map[string]time.Time{}}
	for _, a := range all {
		c.bySID[a.SID] = a
	}
	return c
}

// Get returns the activity with that SID.
func (c *Catalog) Get(sid string) (Activity, bool) {
	a, ok := c.bySID[sid]
	return a, ok && sid != ""
}

// Known reports whether the catalogue can say anything of the SID: it holds the activity, or knows
// it was deleted. An unknown SID is worth one read from TaskRouter.
func (c *Catalog) Known(sid string) bool {
	_, ok := c.bySID[sid]
	return ok || c.gone[sid]
}

// ByName finds an activity by friendly name, without regard to case as Flex compares them; a
// current name first, then a name an activity had before it was renamed.
func (c *Catalog) ByName(name string) (Activity, bool) {
	for _, a := range c.bySID {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	if sid, ok := c.former[strings.ToLower(name)]; ok {
		return c.Get(sid)
	}
	return Activity{}, false
}

// Put records an activity as read from TaskRouter or as an activity.updated event tells it. It
// reports whether anything changed. An activity known to be deleted stays deleted.
func (c *Catalog) Put(a Activity) bool {
	if a.SID == "" || c.gone[a.SID] {
		return false
	}
	old, ok := c.bySID[a.SID]
	if ok && old == a {
		return false
	}
	if ok && old.Name != a.Name && old.Name != "" {
		c.former[strings.ToLower(old.Name)] = a.SID
	}
	// The name is the activity's own again (renamed back, or a new activity took it).
	delete(c.former, strings.ToLower(a.Name))
	c.bySID[a.SID] = a
	return true
}

// Created records an activity.created event of time at. Creation is an activity's first state:
// when the catalogue already holds the activity (read, or updated by an event that overtook this
// one), what it holds is as new or newer and stays.
func (c *Catalog) Created(a Activity, at time.Time) bool {
	if _, ok := c.bySID[a.SID]; ok {
		return false
	}
	c.at[a.SID] = at
	return c.Put(a)
}

// Updated records an activity.updated event of time at; one older than an event already applied
// to the activity changes nothing.
func (c *Catalog) Updated(a Activity, at time.Time) bool {
	if last, ok := c.at[a.SID]; ok && at.Before(last) {
		return false
	}
	c.at[a.SID] = at
	return c.Put(a)
}

// Remove records that the activity was deleted.
func (c *Catalog) Remove(sid string) {
	if sid == "" {
		return
	}
	delete(c.bySID, sid)
	delete(c.at, sid)
	for name, s := range c.former {
		if s == sid {
			delete(c.former, name)
		}
	}
	c.gone[sid] = true
}

// adopt takes in the activities of other that c lacks (policies built apart, as in tests).
func (c *Catalog) adopt(other *Catalog) {
	for sid, a := range other.bySID {
		if !c.Known(sid) {
			c.bySID[sid] = a
		}
	}
}
