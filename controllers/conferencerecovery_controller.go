package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
)

// Reasons a recovery cannot be worked on, set with its phase unchanged.
const (
	// ReasonPolicyNotFound means the ConferenceRecoveryPolicy the recovery names does not exist.
	ReasonPolicyNotFound = "PolicyNotFound"
)

// recoveryConcurrency is how many recoveries are worked on at once. A reconcile spends most of its
// time waiting on Twilio, and a busy contact centre has many calls in flight: one slow Twilio call
// must not hold up another call's endConferenceOnExit correction.
const recoveryConcurrency = 16

// unresolvedRetry is how soon a recovery whose policy or credentials are missing is looked at again
// (a policy that appears also brings its recoveries back through the watch).
const unresolvedRetry = 30 * time.Second

// ConferenceRecoveryReconciler drives a protected call through its recovery steps: it reads the
// observations the webhook server wrote into status, asks recovery.Decide for the next steps and
// performs them on Twilio, each guarded in status.actions so that a crash or a replayed event never
// repeats a side effect. It also keeps the phase label in step with status.phase, so that `kubectl
// get conferencerecoveries -l contactcenter.flexoperator.io/phase=Pinging` finds the calls in a phase.
type ConferenceRecoveryReconciler struct {
	client.Client
	// APIReader, when set, reads a recovery past the cache after a write conflict (the manager's
	// GetAPIReader). Without it the cache is polled until it has caught up.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Twilio gives the client for the recovery's policy credentials.
	Twilio *credentials.Provider
	// Now is the clock; the simulator's in tests.
	Now func() time.Time
	// ResyncAfter is how long a recovery in progress may go unchanged before its call is read
	// from Twilio's REST API (and every recovery is read once after the operator starts);
	// ResyncRate bounds those reads per Twilio account and second. Zero means the Default…
	// values.
	ResyncAfter time.Duration
	ResyncRate  float64
	// SweepInterval is how often the legs of the calls in Monitoring are checked against the
	// account's live calls (recoverySweep). Zero means DefaultSweepInterval.
	SweepInterval time.Duration

	resync *resyncer
	// written remembers the resourceVersions this controller wrote over, to tell a stale cache.
	written writeTracker
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoveries,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoveries/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile takes the recovery's next steps and records them.
func (r *ConferenceRecoveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rec v1alpha1.ConferenceRecovery
	if err := r.Get(ctx, req.NamespacedName, &rec); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.forget(req.NamespacedName)
			r.resync.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.stale(req.NamespacedName, rec.ResourceVersion) {
		// A status this controller wrote has not reached the cache yet; its watch event brings
		// the recovery back, and acting on the older copy would only meet a conflict.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if rec.Status.Phase.Terminal() {
		r.written.forget(req.NamespacedName)
		r.resync.forget(req.NamespacedName)
		return ctrl.Result{}, r.syncPhaseLabel(ctx, &rec)
	}

	var policy v1alpha1.ConferenceRecoveryPolicy
	err := r.Get(ctx, types.NamespacedName{Namespace: rec.Namespace, Name: rec.Spec.PolicyName}, &policy)
	if apierrors.IsNotFound(err) {
		return r.unresolved(ctx, &rec, ReasonPolicyNotFound, fmt.Sprintf(
			"ConferenceRecoveryPolicy %q does not exist in namespace %s; nothing is done for this call until it does.",
			rec.Spec.PolicyName, rec.Namespace))
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get policy %s: %w", rec.Spec.PolicyName, err)
	}
	creds, tc, err := r.Twilio.For(ctx, rec.Namespace, policy.Spec.Twilio)
	if err != nil {
		var cerr *credentials.Error
		if errors.As(err, &cerr) && cerr.Err == nil {
			return r.unresolved(ctx, &rec, cerr.Reason, fmt.Sprintf("Policy %s: %s", policy.Name, cerr.Message))
		}
		return ctrl.Result{}, fmt.Errorf("twilio client for policy %s: %w", policy.Name, err)
	}
	run := newRecoveryRun(r, &rec, &policy, tc)
	due, routine, wait := r.resync.due(&rec, creds.AccountSID, customerMayBeAlone(rec.Status))
	run.resyncDue, run.resyncRoutine = due, routine
	res, err := run.reconcile(ctx)
	if due && err == nil {
		r.resync.done(run.rec)
	}
	if err != nil || run.st().Phase.Terminal() {
		return res, err
	}
	// Come back when the recovery is due for a resync if nothing else brings it back first.
	next := r.resync.next()
	if wait > 0 {
		next = wait
	}
	if res.RequeueAfter == 0 || next < res.RequeueAfter {
		res.RequeueAfter = next
	}
	return res, nil
}

// unresolved records why the recovery cannot be worked on, without any side effect, and looks
// again later.
func (r *ConferenceRecoveryReconciler) unresolved(ctx context.Context, rec *v1alpha1.ConferenceRecovery, reason, message string) (ctrl.Result, error) {
	before := rec.Status.DeepCopy()
	if rec.Status.Phase == "" {
		rec.Status.Phase = v1alpha1.PhaseMonitoring
	}
	rec.Status.Reason, rec.Status.Message = reason, message
	rec.Status.ObservedGeneration = rec.Generation
	if !statusEqual(*before, rec.Status) {
		if before.Reason != reason && r.Recorder != nil {
			r.Recorder.Eventf(rec, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", message)
		}
		rv := rec.ResourceVersion
		if err := r.Status().Update(ctx, rec); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		r.written.wrote(client.ObjectKeyFromObject(rec), rv)
	}
	if err := r.syncPhaseLabel(ctx, rec); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: unresolvedRetry}, nil
}

// syncPhaseLabel labels the recovery with its phase.
func (r *ConferenceRecoveryReconciler) syncPhaseLabel(ctx context.Context, rec *v1alpha1.ConferenceRecovery) error {
	phase := rec.Status.Phase
	if phase == "" {
		phase = v1alpha1.PhaseMonitoring
	}
	if rec.Labels[v1alpha1.PhaseLabel] == string(phase) {
		return nil
	}
	before := rec.DeepCopy()
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	rec.Labels[v1alpha1.PhaseLabel] = string(phase)
	if err := r.Patch(ctx, rec, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("label phase: %w", client.IgnoreNotFound(err))
	}
	r.written.wrote(client.ObjectKeyFromObject(rec), before.ResourceVersion)
	return nil
}

func (r *ConferenceRecoveryReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the controller. A policy that appears brings back the recoveries that
// were waiting for it (found by the policy label the webhook server sets).
func (r *ConferenceRecoveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.resync = newResyncer(r.ResyncAfter, r.ResyncRate)
	if err := mgr.Add(&recoveryDiscovery{r: r}); err != nil {
		return fmt.Errorf("add the start-up discovery: %w", err)
	}
	sweep := &recoverySweep{r: r, every: r.SweepInterval, suspects: make(chan event.GenericEvent, 256)}
	if sweep.every <= 0 {
		sweep.every = DefaultSweepInterval
	}
	if err := mgr.Add(sweep); err != nil {
		return fmt.Errorf("add the sweep: %w", err)
	}
	policyCreated := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConferenceRecovery{}).
		Watches(&v1alpha1.ConferenceRecoveryPolicy{}, handler.EnqueueRequestsFromMapFunc(r.recoveriesOfPolicy),
			builder.WithPredicates(policyCreated)).
		WatchesRawSource(source.Channel(sweep.suspects, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: recoveryConcurrency}).
		Named("conferencerecovery").
		Complete(r)
}

func (r *ConferenceRecoveryReconciler) recoveriesOfPolicy(ctx context.Context, policy client.Object) []reconcile.Request {
	var list v1alpha1.ConferenceRecoveryList
	if err := r.List(ctx, &list, client.InNamespace(policy.GetNamespace()),
		client.MatchingLabels{v1alpha1.PolicyLabel: policy.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List recoveries of policy", "policy", policy.GetName())
		return nil
	}
	var out []reconcile.Request
	for _, rec := range list.Items {
		if !rec.Status.Phase.Terminal() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rec)})
		}
	}
	return out
}
