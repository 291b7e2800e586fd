package activity

// Rules name which row of the decision applied (a metric label and log field).
const (
	RulePendingReservation = "PendingReservation"
	RuleAllowed            = "ChangeAllowedWhileBusy"
	RuleAccepted           = "Accepted"
	RuleExtendedWrapup     = "ExtendedWrapup"
	RuleWrapping           = "Wrapping"
	RulePendingActivity    = "PendingActivity"
	RuleUnknownPending     = "UnknownPendingActivity"
	RuleIdle               = "IdleInSystemActivity"
	RuleNothing            = "NothingToDo"
)

// Decision is what the engine should do to a worker: set its activity, write its pending activity,
// both or neither.
type Decision struct {
	// Rule is the row of the decision that applied.
	Rule string
	// ActivitySID is the activity to set; empty to leave it.
	ActivitySID string
	// ActivityName is its friendly name, for reports.
	ActivityName string
	// SetPending says the pending activity attribute must be written with Pending ("" removes it).
	SetPending bool
	Pending    string
	// requests is the worker's count of person's changes the decision was made with.
	requests uint64
}

// Changes reports whether the decision writes anything.
func (d Decision) Changes() bool { return d.ActivitySID != "" || d.SetPending }

// Decide is the activity the worker should be in, in the seed's order without the browser's
// selected task:
//
//  1. a pending reservation on a counted channel → no change (the engine never rejects a
//     customer's task, so it never sets RejectPendingReservations);
//  2. a person's change while busy that mode Allow lets stand → no change until the work changes;
//  3. any accepted → On a Task (its No ACD variant when the current or pending activity is
//     unavailable);
//  4. else any wrapping → Extended Wrap Up when a wrapping task carries the mark, else Wrap Up (No
//     ACD likewise);
//  5. else a pending activity → set it and clear it (one unknown in the workspace is cleared, and
//     the worker goes to Available if in a system activity);
//  6. else in a system activity → Available;
//  7. else nothing.
//
// Leaving a non-system activity other than Available for a system one stores it as the pending
// activity, so the worker gets it back once the work is done (an agent who picked Offline before
// being handed an outbound or transferred task).
func Decide(c *Config, w *Worker) Decision {
	pending, accepted, wrapping, extended := w.Counted(c)
	if pending > 0 {
		return Decision{Rule: RulePendingReservation}
	}
	if w.Allowed && accepted+wrapping > 0 {
		return Decision{Rule: RuleAllowed}
	}
	want := w.EffectivePending()
	cur, curKnown := c.Activities.Get(w.ActivitySID)
	noACD := curKnown && !cur.Available
	if want != "" {
		if p, ok := c.ByName(want); ok && !p.Available {
			noACD = true
		}
	}
	var target Activity
	rule := RuleNothing
	switch {
	case accepted > 0:
		target, rule = c.OnATask, RuleAccepted
		if noACD {
			target = c.OnATaskNoAcd
		}
	case wrapping > 0:
		target, rule = c.Wrapup, RuleWrapping
		if noACD {
			target = c.WrapupNoAcd
		}
		if extended {
			target, rule = c.ExtendedWrapup, RuleExtendedWrapup
		}
	case want != "":
		if p, ok := c.ByName(want); ok {
			target, rule = p, RulePendingActivity
		} else {
			rule = RuleUnknownPending
			if c.IsSystem(w.ActivitySID) {
				target = c.Available
			}
		}
		want = ""
	case c.IsSystem(w.ActivitySID):
		target, rule = c.Available, RuleIdle
	}
	if target.SID != "" && c.IsSystem(target.SID) && !c.IsSystem(w.ActivitySID) &&
		curKnown && w.ActivitySID != c.Available.SID && want == "" {
		// Leaving a person's activity for a system one: keep it to give back.
		want = cur.Name
	}
	d := Decision{Rule: rule, requests: w.requests}
	if target.SID != "" && target.SID != w.ActivitySID {
		d.ActivitySID, d.ActivityName = target.SID, target.Name
	}
	if want != w.Pending {
		d.SetPending, d.Pending = true, want
	}
	return d
}
