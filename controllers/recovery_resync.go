package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// Defaults of the resync with Twilio's REST API.
const (
	// DefaultResyncAfter is how long a recovery in progress may go without any change before its
	// call is read from Twilio: Twilio does not retry conference status callbacks, so a lost leave,
	// join or conference-end is only ever noticed this way.
	DefaultResyncAfter = time.Minute
	// DefaultResyncRate bounds resyncs per Twilio account and second (each costs two to four
	// requests), well under the account's shared 20 requests/s for the steps that matter more.
	DefaultResyncRate = 1.0
)

// resyncer decides when a recovery is read again from Twilio: once after this process started or
// gained leadership (callbacks may have been lost meanwhile), and whenever the object has not moved
// for a while. Staleness is measured with this process's own monotonic clock (time.Since), which no
// test clock stops; repairs are stamped with the reconciler's clock.
//
// A check is owed until it has been done: asking the per-account budget and being told to wait
// neither records the recovery as checked nor makes it look unchanged, and the place in the
// budget's queue it was given is kept, so that the recoveries of one account are read one after
// the other at the budget's pace rather than one of them now and the rest a resync period later.
// A recovery whose customer may be alone (an incident in progress) does not queue behind calls
// that are plainly fine: it is read without waiting for the budget (there are few of them, and
// each is read at most once per period).
type resyncer struct {
	after time.Duration
	limit rate.Limit

	mu       sync.Mutex
	started  time.Time
	checks   map[types.NamespacedName]*resyncCheck
	limiters map[string]*rate.Limiter
}

// resyncCheck is what this replica knows of one recovery's resyncs.
type resyncCheck struct {
	// resourceVersion and movedAt are the last change of the recovery this replica saw.
	resourceVersion string
	movedAt         time.Time
	// owed says the recovery was made before this process started or took the lead, and has not
	// been read from Twilio since; suspect says the sweep found one of its legs ended.
	owed, suspect bool
	// turn is the place in the account's budget the recovery was given while it waited for it,
	// and grantedAt when that place comes; nil when it holds none.
	turn      *rate.Reservation
	grantedAt time.Time
}

func newResyncer(after time.Duration, perSecond float64) *resyncer {
	if after <= 0 {
		after = DefaultResyncAfter
	}
	if perSecond <= 0 {
		perSecond = DefaultResyncRate
	}
	return &resyncer{after: after, limit: rate.Limit(perSecond), started: time.Now(),
		checks: map[types.NamespacedName]*resyncCheck{}, limiters: map[string]*rate.Limiter{}}
}

// begin starts a new term (this process took the lead): every recovery made before now is owed a
// check, including those a reconcile already saw before the term began.
func (r *resyncer) begin() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = time.Now()
	for key, c := range r.checks {
		if c.turn != nil {
			c.turn.Cancel()
		}
		delete(r.checks, key)
	}
}

// due reports whether the recovery should be read from Twilio now; when it should be but the
// account's budget puts it later, wait is how long until its turn. urgent says the customer may be
// alone, which skips the budget's queue. routine says the read is only the periodic one of a call
// that is plainly fine, which may go at background priority.
func (r *resyncer) due(rec *v1alpha1.ConferenceRecovery, account string, urgent bool) (due, routine bool, wait time.Duration) {
	if r == nil {
		return false, false, 0
	}
	key := client.ObjectKeyFromObject(rec)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	c, seen := r.checks[key]
	switch {
	case !seen:
		// Made before this process started (or took the lead): its callbacks may have been lost.
		c = &resyncCheck{resourceVersion: rec.ResourceVersion, movedAt: now, owed: rec.CreationTimestamp.Time.Before(r.started)}
		r.checks[key] = c
	case c.resourceVersion != rec.ResourceVersion:
		// Moved: the staleness period starts again, but a check still owed stays owed (an event
		// that arrived after a restart says nothing about the ones lost before it).
		c.resourceVersion, c.movedAt = rec.ResourceVersion, now
	}
	if !c.owed && !c.suspect && now.Sub(c.movedAt) < r.after {
		return false, false, 0
	}
	routine = !urgent && !c.owed && !c.suspect
	if urgent || c.suspect {
		return true, false, 0
	}
	if c.turn != nil {
		if wait := c.grantedAt.Sub(now); wait > 0 {
			return false, routine, wait
		}
		return true, routine, 0
	}
	limiter, ok := r.limiters[account]
	if !ok {
		limiter = rate.NewLimiter(r.limit, 1)
		r.limiters[account] = limiter
	}
	turn := limiter.ReserveN(now, 1)
	wait = turn.DelayFrom(now)
	if wait <= 0 {
		return true, routine, 0
	}
	// Keep the place: coming back after wait, the recovery is read without asking again.
	c.turn, c.grantedAt = turn, now.Add(wait)
	return false, routine, wait
}

// customerMayBeAlone says the recovery is in an incident: an agent dropped, and until the
// recovery ends the customer may have no one on the line.
func customerMayBeAlone(st v1alpha1.ConferenceRecoveryStatus) bool {
	return st.Disconnect != nil || (st.Phase != "" && st.Phase != v1alpha1.PhaseMonitoring)
}

// suspect marks a recovery the sweep found with a leg that has ended: it is read at once.
func (r *resyncer) suspect(key types.NamespacedName) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.checks[key]
	if !ok {
		c = &resyncCheck{movedAt: time.Now()}
		r.checks[key] = c
	}
	c.suspect = true
}

// done records that the recovery was read from Twilio at the version it now has.
func (r *resyncer) done(rec *v1alpha1.ConferenceRecovery) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[client.ObjectKeyFromObject(rec)] = &resyncCheck{resourceVersion: rec.ResourceVersion, movedAt: time.Now()}
}

// forget drops a recovery that is finished or gone, giving back a place it held in the budget.
func (r *resyncer) forget(key types.NamespacedName) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.checks[key]; ok && c.turn != nil {
		c.turn.Cancel()
	}
	delete(r.checks, key)
}

// next is how long until a recovery that does not move is due for a resync.
func (r *resyncer) next() time.Duration {
	if r == nil {
		return 0
	}
	return r.after
}

// resync reads the call from Twilio and repairs the recovery's observations with what callbacks
// never reported (recovery.ApplySnapshot), writing the repair at once so that the steps decided
// next see it. A conflict re-reads the object and applies the same snapshot again.
func (run *recoveryRun) resync(ctx context.Context) error {
	reads := ctx
	if run.resyncRoutine {
		// The periodic read of a call that is plainly fine waits behind recovery and activity
		// work; a check owed since a restart, or of an incident, goes at recovery priority.
		reads = twilio.WithPriority(ctx, twilio.PriorityBackground)
	}
	snap, err := run.snapshot(reads)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if !recovery.ApplySnapshot(run.st(), snap) {
			return nil
		}
		err := run.update(ctx)
		if err == nil {
			recoveryResyncRepairsTotal.Inc()
			run.log.Info("Repaired the recovery from Twilio's REST API", "phase", run.st().Phase)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == maxConflictRetries {
			return fmt.Errorf("write the resync's repair: %w", err)
		}
		if err := run.refresh(ctx); err != nil {
			return err
		}
	}
}

// snapshot reads what the resync needs: the conference and its live legs, and the incident's
// tasks when their outcome is still unknown.
func (run *recoveryRun) snapshot(ctx context.Context) (recovery.Snapshot, error) {
	snap := recovery.Snapshot{At: run.r.now()}
	conference := run.spec().ConferenceSID
	// The legs first: a conference with a leg connected is live, and one request says so. Only
	// an empty or missing list asks whether the conference has ended (Twilio lists no leg of a
	// completed conference).
	parts, err := run.tc.ListParticipants(ctx, conference)
	if err != nil && !twilio.IsNotFound(err) {
		return snap, fmt.Errorf("resync: list the participants: %w", err)
	}
	for _, p := range parts {
		if p.Status == "complete" || p.Status == "failed" {
			continue
		}
		snap.Participants = append(snap.Participants, recovery.LiveLeg{CallSID: p.CallSID, Label: p.Label,
			Coaching: p.Coaching, EndConferenceOnExit: p.EndConferenceOnExit})
	}
	if len(snap.Participants) == 0 {
		conf, err := run.tc.FetchConference(ctx, conference)
		switch {
		case twilio.IsNotFound(err) || (err == nil && conf.Status == "completed"):
			snap.ConferenceEnded = true
		case err != nil:
			return snap, fmt.Errorf("resync: fetch the conference: %w", err)
		}
	}
	st := run.st()
	if p := st.Ping; p != nil && p.TaskSID != "" && p.Outcome == "" {
		if snap.Ping, err = run.taskSnapshot(ctx, p.TaskSID, false); err != nil {
			return snap, err
		}
	}
	rc := st.Reconnect
	if rc != nil && rc.EnqueuedAt != nil && (rc.AcceptedAt == nil && rc.CanceledAt == nil || rc.AcceptedAt != nil && rc.ConferenceSID == "") {
		sid := rc.TaskSID
		if sid == "" {
			tasks, err := run.tc.ListTasks(ctx, run.workspace(), twilio.TaskFilter{
				EvaluateTaskAttributes: recovery.IncidentMarker(recovery.TaskRoleReconnect, run.spec(), *st).Expression()})
			if err != nil {
				return snap, fmt.Errorf("resync: look up the reconnect task: %w", err)
			}
			if len(tasks) > 0 {
				sid = tasks[0].SID
			}
		}
		if sid != "" {
			if snap.Reconnect, err = run.taskSnapshot(ctx, sid, true); err != nil {
				return snap, err
			}
		}
	}
	return snap, nil
}

// taskSnapshot reads a task; for a reconnect task that an agent took, also who took it.
func (run *recoveryRun) taskSnapshot(ctx context.Context, taskSID string, reconnect bool) (*recovery.TaskSnapshot, error) {
	task, err := run.tc.FetchTask(ctx, run.workspace(), taskSID)
	if twilio.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resync: fetch task %s: %w", taskSID, err)
	}
	ts := &recovery.TaskSnapshot{SID: task.SID, AssignmentStatus: task.AssignmentStatus, Reason: task.Reason}
	if !reconnect {
		return ts, nil
	}
	attrs, _ := recovery.ParseTaskAttributes(task.Attributes)
	ts.ConferenceSID = attrs.ConferenceSID
	switch task.AssignmentStatus {
	case "assigned", "wrapping", "completed":
		list, err := run.tc.ListReservations(ctx, run.workspace(), twilio.ReservationFilter{TaskSID: task.SID})
		if err != nil {
			return nil, fmt.Errorf("resync: list the reservations of %s: %w", task.SID, err)
		}
		for _, r := range list {
			if r.Status == "accepted" || r.Status == "wrapping" || r.Status == "completed" {
				ts.WorkerSID = r.WorkerSID
			}
		}
	}
	return ts, nil
}
