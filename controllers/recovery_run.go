package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// errRedecide says the status changed under a step before its side effect (a write conflict with
// the webhook server): nothing was done, and the next step must be decided on the fresh status.
var errRedecide = errors.New("recovery changed before the step; deciding again")

const (
	// maxStepsPerReconcile bounds one reconcile; a whole recovery takes about a dozen steps, spread
	// over several reconciles as the observations arrive.
	maxStepsPerReconcile = 32
	// maxConflictRetries bounds the re-read and re-apply of one status write.
	maxConflictRetries = 5
	// cacheCatchUp bounds the wait for the cache to show a write that conflicted.
	cacheCatchUp = 5 * time.Second
)

// recoveryRun is one reconcile of one recovery. rec holds the latest copy of the object, whose
// status is the working copy: steps change it, and save writes it.
type recoveryRun struct {
	r      *ConferenceRecoveryReconciler
	rec    *v1alpha1.ConferenceRecovery
	policy *v1alpha1.ConferenceRecoveryPolicy
	tc     twilio.Client
	log    logr.Logger
	// saved is the status as last read from or written to the API server.
	saved v1alpha1.ConferenceRecoveryStatus

	// original is the original task as last read or written in this reconcile (with its ETag),
	// and pingAttrs the ping task's attributes once known: later steps reuse them instead of
	// asking Twilio again.
	original  *twilio.Task
	pingAttrs map[string]any
	// resyncDue asks for the call to be read from Twilio before deciding (see resyncer);
	// resyncRoutine says it is only the periodic read of a call that is plainly fine.
	resyncDue, resyncRoutine bool
}

func newRecoveryRun(r *ConferenceRecoveryReconciler, rec *v1alpha1.ConferenceRecovery, policy *v1alpha1.ConferenceRecoveryPolicy, tc twilio.Client) *recoveryRun {
	return &recoveryRun{r: r, rec: rec, policy: policy, tc: tc, saved: *rec.Status.DeepCopy(),
		log: logr.Discard()}
}

func (run *recoveryRun) spec() v1alpha1.ConferenceRecoverySpec { return run.rec.Spec }
func (run *recoveryRun) st() *v1alpha1.ConferenceRecoveryStatus {
	return &run.rec.Status
}
func (run *recoveryRun) workspace() string { return run.policy.Spec.Twilio.WorkspaceSID }

// reconcile resolves what a crash left Pending, then takes the decided steps one at a time,
// deciding again after each, until none is left.
func (run *recoveryRun) reconcile(ctx context.Context) (ctrl.Result, error) {
	run.log = ctrl.LoggerFrom(ctx).WithValues("conference", run.spec().ConferenceSID)
	if err := run.resolvePending(ctx); err != nil {
		return run.stop(ctx, recovery.Decision{}, err)
	}
	if run.resyncDue {
		if err := run.resync(ctx); err != nil {
			return run.stop(ctx, recovery.Decision{}, err)
		}
	}
	var d recovery.Decision
	for step := 0; ; step++ {
		if step == maxStepsPerReconcile {
			return run.stop(ctx, d, fmt.Errorf("recovery did not settle within %d steps", step))
		}
		d = recovery.Decide(*run.st(), run.policy.Spec, run.r.now())
		if d.Disconnect != nil {
			if err := run.enrichDisconnect(ctx, d.Disconnect); err != nil {
				return run.stop(ctx, recovery.Decision{}, err)
			}
			run.st().Disconnect = d.Disconnect
			run.event(corev1.EventTypeWarning, recovery.ReasonAgentDisconnected, "Detect",
				"Agent %s (leg %s) dropped out of the call: %s", orUnknown(d.Disconnect.WorkerSID), d.Disconnect.CallSID, orUnknown(d.Disconnect.Reason))
			continue
		}
		if !d.Phase.Terminal() {
			run.setPhase(d)
		}
		if d.EndIncident && len(d.Actions) == 0 {
			run.endIncident()
			continue
		}
		if len(d.Actions) == 0 {
			break
		}
		err := run.execute(ctx, d.Actions[0])
		if errors.Is(err, errRedecide) {
			continue
		}
		if err != nil {
			return run.stop(ctx, d, err)
		}
	}
	run.setPhase(d)
	if err := run.persist(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: d.RecheckAfter}, nil
}

// endIncident closes a recovery whose customer has an agent again: the disconnect, the ping, the
// reconnect and the steps taken for them are cleared (the endConferenceOnExit corrections stay),
// so the call is watched as before and a later drop starts a recovery of its own. What happened
// is kept in the object's Events.
func (run *recoveryRun) endIncident() {
	st := run.st()
	worker := ""
	if st.Disconnect != nil {
		worker = st.Disconnect.WorkerSID
	}
	run.event(corev1.EventTypeNormal, recovery.ReasonAgentReturned, "Recover",
		"An agent is connected again; the recovery after %s's drop stopped.", orUnknown(worker))
	st.Disconnect, st.Ping, st.Reconnect = nil, nil, nil
	st.Timings = v1alpha1.RecoveryTimings{}
	st.Actions = slices.DeleteFunc(st.Actions, func(a v1alpha1.RecoveryAction) bool {
		_, correction := recovery.IsCorrection(a.Name)
		return !correction
	})
}

// stop ends a reconcile whose step could not be completed: what was done is saved so that it is
// not done again, and the error decides when to try again (a server's Retry-After is honoured
// with a nil error, since controller-runtime ignores RequeueAfter next to an error).
func (run *recoveryRun) stop(ctx context.Context, d recovery.Decision, stepErr error) (ctrl.Result, error) {
	if d.Phase != "" && !d.Phase.Terminal() {
		run.setPhase(d)
	}
	if err := run.persist(ctx); err != nil {
		run.log.Error(err, "Save the steps taken before the failure")
	}
	if after := twilio.RetryAfter(stepErr); after > 0 {
		run.log.Info("Twilio asked to retry later", "after", after, "error", stepErr.Error())
		return ctrl.Result{RequeueAfter: after}, nil
	}
	return ctrl.Result{}, stepErr
}

// setPhase sets the phase of a decision; a terminal phase also stamps FinishedAt. A terminal phase
// already in status is final, whoever set it.
func (run *recoveryRun) setPhase(d recovery.Decision) {
	st := run.st()
	if st.Phase.Terminal() {
		return
	}
	st.Phase, st.Reason, st.Message = d.Phase, d.Reason, d.Message
	if st.Phase.Terminal() && st.FinishedAt == nil {
		now := metav1.NewTime(run.r.now())
		st.FinishedAt = &now
	}
}

// persist completes the summary fields and writes the status and the phase label, if they changed.
func (run *recoveryRun) persist(ctx context.Context) error {
	st := run.st()
	st.ObservedGeneration = run.rec.Generation
	recovery.SetConditions(st, run.rec.Generation, run.r.now())
	st.Timings.CustomerWithoutAgent = recovery.CustomerWithoutAgent(*st)
	if err := run.save(ctx); err != nil {
		return err
	}
	return run.r.syncPhaseLabel(ctx, run.rec)
}

// save writes the working status against the resourceVersion it was read at. On a conflict (the
// webhook server wrote an observation meanwhile) it reads the object again, puts the controller's
// fields on the fresh status and tries again: what a step produced is never dropped.
func (run *recoveryRun) save(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if statusEqual(run.saved, *run.st()) {
			return nil
		}
		err := run.update(ctx)
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == maxConflictRetries {
			return fmt.Errorf("write status: %w", err)
		}
		if err := run.refresh(ctx); err != nil {
			return err
		}
	}
}

// update is one Status().Update; it tracks the version written over and announces a new phase.
func (run *recoveryRun) update(ctx context.Context) error {
	before, previous := run.rec.ResourceVersion, run.saved.Phase
	if err := run.r.Status().Update(ctx, run.rec); err != nil {
		return err
	}
	run.r.written.wrote(client.ObjectKeyFromObject(run.rec), before)
	run.saved = *run.st().DeepCopy()
	// A new call starting in Monitoring is not news; every later phase is.
	if phase := run.st().Phase; phase != previous && phase != "" && (previous != "" || phase != v1alpha1.PhaseMonitoring) {
		kind := corev1.EventTypeNormal
		if phase == v1alpha1.PhaseFailed || phase == v1alpha1.PhaseAbandoned {
			kind = corev1.EventTypeWarning
		}
		run.event(kind, run.st().Reason, "Phase", "%s: %s", phase, run.st().Message)
		observePhase(*run.st())
		run.log.Info("Recovery phase", "phase", phase, "reason", run.st().Reason)
	}
	return nil
}

// begin records a step as Pending before its side effect, so that a crash between the two leaves a
// trace the next reconcile resolves by looking the result up. It returns errRedecide when the
// recovery changed meanwhile: the step is then not taken, and the fresh status decides again.
func (run *recoveryRun) begin(ctx context.Context, name string) error {
	run.setAction(name, v1alpha1.ActionPending, "", "")
	err := run.update(ctx)
	if err == nil {
		return nil
	}
	run.dropAction(name)
	if apierrors.IsConflict(err) {
		if err := run.refresh(ctx); err != nil {
			return err
		}
		return errRedecide
	}
	return fmt.Errorf("record %s as pending: %w", name, err)
}

// refresh reads the object again after a conflict and carries the controller's fields over.
func (run *recoveryRun) refresh(ctx context.Context) error {
	key := client.ObjectKeyFromObject(run.rec)
	var fresh v1alpha1.ConferenceRecovery
	if run.r.APIReader != nil {
		if err := run.r.APIReader.Get(ctx, key, &fresh); err != nil {
			return fmt.Errorf("read recovery again: %w", err)
		}
	} else {
		// The cache has the object at the version that conflicted or older; wait for the newer one.
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, cacheCatchUp, true, func(ctx context.Context) (bool, error) {
			if err := run.r.Get(ctx, key, &fresh); err != nil {
				return false, err
			}
			return fresh.ResourceVersion != run.rec.ResourceVersion && !run.r.written.stale(key, fresh.ResourceVersion), nil
		})
		if err != nil {
			return fmt.Errorf("read recovery again: %w", err)
		}
	}
	server := fresh.Status.DeepCopy()
	mergeOwned(&fresh.Status, *run.st())
	if server.Phase.Terminal() {
		// Finished meanwhile by someone else (a person with kubectl, another tool): keep their
		// verdict and add only the records of what this reconcile did on Twilio.
		fresh.Status.Phase, fresh.Status.Reason, fresh.Status.Message = server.Phase, server.Reason, server.Message
		fresh.Status.FinishedAt, fresh.Status.Conditions, fresh.Status.Timings = server.FinishedAt, server.Conditions, server.Timings
	}
	run.saved = *server
	run.rec = &fresh
	return nil
}

// setAction records a step's state in the working status.
func (run *recoveryRun) setAction(name string, state v1alpha1.ActionState, sid, message string) {
	a := v1alpha1.RecoveryAction{Name: name, State: state, SID: sid, Message: message, At: metav1.NewTime(run.r.now())}
	st := run.st()
	for i := range st.Actions {
		if st.Actions[i].Name == name {
			st.Actions[i] = a
			return
		}
	}
	st.Actions = append(st.Actions, a)
}

func (run *recoveryRun) dropAction(name string) {
	st := run.st()
	for i := range st.Actions {
		if st.Actions[i].Name == name {
			st.Actions = append(st.Actions[:i], st.Actions[i+1:]...)
			return
		}
	}
}

// done, skipped and failed record how a step ended, with an Event.
func (run *recoveryRun) done(name, sid, format string, args ...any) {
	run.setAction(name, v1alpha1.ActionDone, sid, "")
	recoveryStepsTotal.WithLabelValues(stepKind(name), string(v1alpha1.ActionDone)).Inc()
	run.event(corev1.EventTypeNormal, "StepDone", name, format, args...)
	run.log.V(1).Info("Step done", "step", name, "sid", sid)
}

func (run *recoveryRun) skipped(name, sid, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	run.setAction(name, v1alpha1.ActionSkipped, sid, msg)
	recoveryStepsTotal.WithLabelValues(stepKind(name), string(v1alpha1.ActionSkipped)).Inc()
	run.event(corev1.EventTypeNormal, "StepSkipped", name, "%s", msg)
	run.log.Info("Step skipped", "step", name, "why", msg)
}

func (run *recoveryRun) failed(name, sid string, err error) {
	run.setAction(name, v1alpha1.ActionFailed, sid, err.Error())
	recoveryStepsTotal.WithLabelValues(stepKind(name), string(v1alpha1.ActionFailed)).Inc()
	run.event(corev1.EventTypeWarning, "StepFailed", name, "%s failed: %v", name, err)
	run.log.Info("Step failed", "step", name, "error", err.Error())
}

func (run *recoveryRun) event(kind, reason, action, format string, args ...any) {
	if run.r.Recorder == nil {
		return
	}
	run.r.Recorder.Eventf(run.rec, nil, kind, reason, action, format, args...)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
