package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
)

// WorkerActivityPolicyReconciler checks a WorkerActivityPolicy and reports it.
type WorkerActivityPolicyReconciler struct {
	client.Client
	// APIReader reads Secrets uncached.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Stats gives the activity engine's aggregates for status; nil when the engine is not wired.
	Stats activity.StatsSource
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile resolves the policy's credentials and records the result in its conditions.
func (r *WorkerActivityPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var policy v1alpha1.WorkerActivityPolicy
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
func (r *WorkerActivityPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := indexCredentialsSecret(ctx, mgr, &v1alpha1.WorkerActivityPolicy{}); err != nil {
		return fmt.Errorf("index WorkerActivityPolicy by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.WorkerActivityPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("workeractivitypolicy")
	return watchCredentialsSecrets(b, mgr.GetClient(), &v1alpha1.WorkerActivityPolicyList{}).Complete(r)
}
