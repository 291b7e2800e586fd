package controllers

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/recorder"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
)

// ConferenceRecoveryReconciler drives a protected call through its recovery steps. So far it keeps
// the phase label in step with status.phase, so that `kubectl get conferencerecoveries -l
// contactcenter.flexoperator.io/phase=Pinging` finds the calls in a phase.
type ConferenceRecoveryReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	// Twilio gives the client for the recovery's policy credentials.
	Twilio *credentials.Provider
	// Now is the clock; the simulator's in tests.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoveries,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=conferencerecoveries/status,verbs=get;update;patch

// Reconcile labels the recovery with its phase.
func (r *ConferenceRecoveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rec v1alpha1.ConferenceRecovery
	if err := r.Get(ctx, req.NamespacedName, &rec); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	phase := rec.Status.Phase
	if phase == "" {
		phase = v1alpha1.PhaseMonitoring
	}
	if rec.Labels[v1alpha1.PhaseLabel] == string(phase) {
		return ctrl.Result{}, nil
	}
	before := rec.DeepCopy()
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	rec.Labels[v1alpha1.PhaseLabel] = string(phase)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, &rec, client.MergeFrom(before)))
}

// SetupWithManager registers the controller.
func (r *ConferenceRecoveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConferenceRecovery{}).
		Named("conferencerecovery").
		Complete(r)
}
