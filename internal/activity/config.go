package activity

import (
	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// Defaults for policy fields left empty (the CRD defaults them too; these keep the engine total).
const (
	DefaultPendingActivityAttribute = "pendingActivity"
	DefaultExtendedWrapupAttribute  = "extendedWrapup"
)

// Activity is a TaskRouter activity as the engine knows it.
type Activity struct {
	SID  string
	Name string
	// Available says whether a worker in it can take tasks.
	Available bool
}

// Config is what one policy asks of the decision: its resolved activities, the channels that count
// and what to do with a person's change while the agent is busy.
type Config struct {
	Available, OnATask, OnATaskNoAcd, Wrapup, WrapupNoAcd, ExtendedWrapup Activity
	// Activities is every activity of the workspace (the six above included), shared by the
	// workspace's policies and kept current while the engine runs: a pending activity is found
	// here by name, and the availability of the current activity is read here.
	Activities *Catalog
	// Channels are the task channel unique names whose reservations count; empty means all.
	Channels map[string]bool
	// BusyChange is Defer or Allow.
	BusyChange v1alpha1.BusyChangePolicy
	// PendingAttribute is the worker attribute holding the pending activity's friendly name.
	PendingAttribute string
	// ExtendedWrapupAttribute is the task attribute that, set to true, marks an extended wrap-up.
	ExtendedWrapupAttribute string
}

// NewConfig builds the Config of a policy whose status.activities are resolved; all lists every
// activity of the workspace. ok is false when one of the six SIDs is not among them (not resolved
// yet, or deleted in Twilio since).
func NewConfig(spec v1alpha1.WorkerActivityPolicySpec, resolved v1alpha1.ResolvedActivities, all []Activity) (*Config, bool) {
	return NewConfigOn(spec, resolved, NewCatalog(all))
}

// NewConfigOn is NewConfig over a catalogue the workspace's policies share.
func NewConfigOn(spec v1alpha1.WorkerActivityPolicySpec, resolved v1alpha1.ResolvedActivities, activities *Catalog) (*Config, bool) {
	c := &Config{
		Activities:              activities,
		Channels:                map[string]bool{},
		BusyChange:              spec.ActivityChangeWhileBusy,
		PendingAttribute:        spec.PendingActivityAttribute,
		ExtendedWrapupAttribute: spec.ExtendedWrapupAttribute,
	}
	if c.BusyChange == "" {
		c.BusyChange = v1alpha1.BusyChangeDefer
	}
	if c.PendingAttribute == "" {
		c.PendingAttribute = DefaultPendingActivityAttribute
	}
	if c.ExtendedWrapupAttribute == "" {
		c.ExtendedWrapupAttribute = DefaultExtendedWrapupAttribute
	}
	for _, ch := range spec.Channels {
		c.Channels[ch] = true
	}
	ok := true
	pick := func(sid string) Activity {
		a, found := activities.Get(sid)
		if !found {
			ok = false
		}
		return a
	}
	c.Available = pick(resolved.Available)
	c.OnATask = pick(resolved.OnATask)
	c.OnATaskNoAcd = pick(resolved.OnATaskNoAcd)
	c.Wrapup = pick(resolved.Wrapup)
	c.WrapupNoAcd = pick(resolved.WrapupNoAcd)
	c.ExtendedWrapup = pick(resolved.ExtendedWrapup)
	return c, ok
}

// IsSystem reports whether the activity is one the engine sets and a person may not choose: On a
// Task, Wrap Up, their No ACD variants and Extended Wrap Up (Available is not one).
func (c *Config) IsSystem(sid string) bool {
	if sid == "" {
		return false
	}
	switch sid {
	case c.OnATask.SID, c.OnATaskNoAcd.SID, c.Wrapup.SID, c.WrapupNoAcd.SID, c.ExtendedWrapup.SID:
		return true
	}
	return false
}

// ByName finds an activity by friendly name, without regard to case as Flex compares them (a name
// an activity had before a rename still finds it).
func (c *Config) ByName(name string) (Activity, bool) { return c.Activities.ByName(name) }

// Counts reports whether reservations of the channel count for this policy.
func (c *Config) Counts(channel string) bool {
	return len(c.Channels) == 0 || c.Channels[channel]
}

// name is the friendly name of an activity SID for logs and reports, or the SID when unknown. It
// never feeds the pending attribute, which holds names only (Worker.RequestedSID).
func (c *Config) name(sid string) string {
	if a, ok := c.Activities.Get(sid); ok {
		return a.Name
	}
	return sid
}
