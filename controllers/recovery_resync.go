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

// resyncer decides when a recovery is read again from Twilio: on the first reconcile after the
// operator started (callbacks may have been lost while it was down), and whenever the object has
// not moved for a while. Staleness is measured with this process's own monotonic clock (time.Since),
// which no test clock stops; repairs are stamped with the reconciler's clock. Resyncs are bounded
// per Twilio account by a token bucket; one that is not allowed yet waits for its turn.
type resyncer struct {
	after   time.Duration
	limit   rate.Limit
	started time.Time

	mu       sync.Mutex
	moved    map[types.NamespacedName]movement
	limiters map[string]*rate.Limiter
}

// movement is the last change of a recovery this replica saw.
type movement struct {
	resourceVersion string
	at              time.Time
}

func newResyncer(after time.Duration, perSecond float64) *resyncer {
	if after <= 0 {
		after = DefaultResyncAfter
	}
	if perSecond <= 0 {
		perSecond = DefaultResyncRate
	}
	return &resyncer{after: after, limit: rate.Limit(perSecond), started: time.Now(),
		moved: map[types.NamespacedName]movement{}, limiters: map[string]*rate.Limiter{}}
}

// due reports whether the recovery should be read from Twilio now; when it is due but the
// account's budget is spent, wait is how long until it may be.
func (r *resyncer) due(rec *v1alpha1.ConferenceRecovery, account string) (due bool, wait time.Duration) {
	if r == nil {
		return false, 0
	}
	key := client.ObjectKeyFromObject(rec)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, seen := r.moved[key]
	switch {
	case !seen:
		r.moved[key] = movement{rec.ResourceVersion, now}
		// Made before this process started: its callbacks may have been lost meanwhile.
		if !rec.CreationTimestamp.Time.Before(r.started) {
			return false, 0
		}
	case m.resourceVersion != rec.ResourceVersion:
		r.moved[key] = movement{rec.ResourceVersion, now}
		return false, 0
	case now.Sub(m.at) < r.after:
		return false, 0
	}
	limiter, ok := r.limiters[account]
	if !ok {
		limiter = rate.NewLimiter(r.limit, 1)
		r.limiters[account] = limiter
	}
	reservation := limiter.ReserveN(now, 1)
	if d := reservation.DelayFrom(now); d > 0 {
		reservation.CancelAt(now)
		return false, d
	}
	return true, 0
}

// done records that the recovery was read from Twilio at the version it now has.
func (r *resyncer) done(rec *v1alpha1.ConferenceRecovery) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moved[client.ObjectKeyFromObject(rec)] = movement{rec.ResourceVersion, time.Now()}
}

// forget drops a recovery that is finished or gone.
func (r *resyncer) forget(key types.NamespacedName) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.moved, key)
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
	snap, err := run.snapshot(ctx)
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
	conf, err := run.tc.FetchConference(ctx, conference)
	switch {
	case twilio.IsNotFound(err) || (err == nil && conf.Status == "completed"):
		snap.ConferenceEnded = true
	case err != nil:
		return snap, fmt.Errorf("resync: fetch the conference: %w", err)
	default:
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
