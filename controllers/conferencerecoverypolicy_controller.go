package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
)

// ConferenceRecoveryPolicyReconciler makes the manual Twilio setup of conference recovery (seed 001's
// README) declarative: the Recovery Ping queue and workflow, the "Direct to an Agent" filter on each
// protected workflow, and the Event Streams sink and subscription that bring TaskRouter events to the
// webhook server. It adopts what already exists by name, records what it created, and its finalizer
// undoes only that. A second, light controller (conferenceRecoveryRetention) counts the policy's
// ConferenceRecovery objects and deletes finished ones past retention, so that a recovery's frequent
// status changes never cost Twilio calls.
type ConferenceRecoveryPolicyReconciler struct {
	client.Client
	// APIReader reads Secrets uncached.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Twilio gives the client for the policy's credentials.
	Twilio *credentials.Provider
	// Now is the clock (retention of finished recoveries); the simulator's in tests.
	Now func() time.Time
	// PublicURL is the webhook server's default public base URL (--webhook-public-url); a
	// policy's spec.publicBaseUrl overrides it.
	PublicURL string

	memo twilioMemo
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoveries,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile sets up, or on deletion tears down, the Twilio objects the policy asks for and reports
// them in its status.
func (r *ConferenceRecoveryPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := r.Get(ctx, req.NamespacedName, &policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !policy.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &policy)
	}
	if requeue, err := addFinalizer(ctx, r.Client, &policy); err != nil || requeue {
		return ctrl.Result{RequeueAfter: time.Second}, client.IgnoreNotFound(err)
	}
	before := policy.DeepCopy()
	s := newPolicySync(r, &policy, &before.Status)
	defer func() {
		requeue, perr := s.writeStatus(ctx, before)
		if perr != nil && err == nil {
			err = perr
		}
		if requeue && err == nil {
			result = ctrl.Result{RequeueAfter: time.Second}
		}
	}()
	policy.Status.ObservedGeneration = policy.Generation

	s.tw, err = policyClient(ctx, r.Twilio, r.Recorder, &policy, &policy.Status.Conditions, before.Status.Conditions)
	if err != nil {
		return ctrl.Result{}, ignoreUnresolved(err)
	}
	trWait := s.reconcileTaskRouter(ctx)
	esWait := s.reconcileEventStream(ctx)
	s.setReady()
	return ctrl.Result{RequeueAfter: soonest(trWait, esWait)}, nil
}

// SetupWithManager registers the controller, its index and its Secret watch, and the light
// controller that keeps the policy's recovery counts and deletes expired recoveries. The controller
// keeps controller-runtime's single worker: two policies on one workspace must never both find the
// Recovery Ping queue missing and create it twice.
func (r *ConferenceRecoveryPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if err := indexCredentialsSecret(ctx, mgr, &v1alpha1.ConferenceRecoveryPolicy{}); err != nil {
		return fmt.Errorf("index ConferenceRecoveryPolicy by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		// Generation changes only: the controller's own status writes must not wake it. Deletion
		// bumps the generation, so the finalizer still runs.
		For(&v1alpha1.ConferenceRecoveryPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("conferencerecoverypolicy")
	if err := watchCredentialsSecrets(b, mgr.GetClient(), &v1alpha1.ConferenceRecoveryPolicyList{}).Complete(r); err != nil {
		return err
	}
	return (&conferenceRecoveryRetention{Client: mgr.GetClient(), Now: r.Now}).setupWithManager(mgr)
}

func ignoreUnresolved(err error) error {
	if errors.Is(err, errCredentialsUnresolved) {
		return nil
	}
	return err
}

// errCredentialsUnresolved stops a reconcile whose credentials are not usable; it is not returned
// to controller-runtime (the Secret watch brings the policy back).
var errCredentialsUnresolved = errors.New("credentials unresolved")

// recordCredentialsFailure emits a Warning event when the credentials condition turns bad or
// changes reason, not on every reconcile.
func recordCredentialsFailure(rec recorder.EventRecorder, obj client.Object, previous []metav1.Condition, cerr *credentials.Error) {
	if rec == nil {
		return
	}
	old := meta.FindStatusCondition(previous, v1alpha1.ConditionCredentialsResolved)
	if old != nil && old.Status == metav1.ConditionFalse && old.Reason == cerr.Reason && old.Message == cerr.Message {
		return
	}
	rec.Eventf(obj, nil, corev1.EventTypeWarning, cerr.Reason, "ResolveCredentials", "%s", cerr.Message)
}

// patchStatusIfChanged writes the status once, as a merge patch against the object read at the
// start of the reconcile, and only when it changed.
func patchStatusIfChanged(ctx context.Context, c client.Client, before, after client.Object, oldStatus, newStatus any) error {
	if equality.Semantic.DeepEqual(oldStatus, newStatus) {
		return nil
	}
	if err := c.Status().Patch(ctx, after, client.MergeFrom(before)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile: nothing left to report on
		}
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}
