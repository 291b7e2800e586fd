package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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

// ConferenceRecoveryPolicyReconciler sets up what a ConferenceRecoveryPolicy asks for and reports it.
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
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoverypolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile resolves the policy's credentials and records the result in its conditions.
func (r *ConferenceRecoveryPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := r.Get(ctx, req.NamespacedName, &policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := policy.DeepCopy()
	defer func() {
		if perr := patchStatusIfChanged(ctx, r.Client, before, &policy, before.Status, policy.Status); perr != nil && err == nil {
			err = perr
		}
	}()
	policy.Status.ObservedGeneration = policy.Generation

	if _, err := checkCredentials(ctx, r.APIReader, r.Recorder, &policy, &policy.Status.Conditions, before.Status.Conditions); err != nil {
		return ctrl.Result{}, ignoreUnresolved(err)
	}
	meta.SetStatusCondition(&policy.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReconciled,
		Message: "Credentials resolved", ObservedGeneration: policy.Generation,
	})
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller, its index and its Secret watch.
func (r *ConferenceRecoveryPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := indexCredentialsSecret(ctx, mgr, &v1alpha1.ConferenceRecoveryPolicy{}); err != nil {
		return fmt.Errorf("index ConferenceRecoveryPolicy by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConferenceRecoveryPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("conferencerecoverypolicy")
	return watchCredentialsSecrets(b, mgr.GetClient(), &v1alpha1.ConferenceRecoveryPolicyList{}).Complete(r)
}

// checkCredentials resolves a policy's credentials and records the outcome on its conditions; a
// failure is also an Event. The returned error is set only for a failure worth retrying (the API
// server could not be read): a missing Secret is fixed by creating it, which the Secret watch notices.
func checkCredentials(ctx context.Context, reader client.Reader, rec recorder.EventRecorder, policy twilioPolicyObject, conds *[]metav1.Condition, previous []metav1.Condition) (credentials.Credentials, error) {
	creds, cerr := credentials.Resolve(ctx, reader, policy.GetNamespace(), policy.GetTwilio().CredentialsSecretRef)
	setCredentialsConditions(conds, policy.GetGeneration(), cerr)
	if cerr != nil {
		recordCredentialsFailure(rec, policy, previous, cerr)
		if cerr.Err != nil {
			return credentials.Credentials{}, cerr.Err
		}
		return credentials.Credentials{}, errCredentialsUnresolved
	}
	return creds, nil
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
		return fmt.Errorf("patch status: %w", client.IgnoreNotFound(err))
	}
	return nil
}
