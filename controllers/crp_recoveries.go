package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// defaultRetention applies to a policy stored before spec.retention had a default.
const defaultRetention = 24 * time.Hour

// conferenceRecoveryRetention is the light side of a ConferenceRecoveryPolicy: it counts the
// policy's ConferenceRecovery objects by outcome into status.recoveries and deletes finished ones
// older than spec.retention. It is its own controller so that the stream of recovery updates never
// sets off the Twilio side of the policy.
type conferenceRecoveryRetention struct {
	client.Client
	// Now is the clock finishedAt is compared with (the simulator's in tests).
	Now func() time.Time
}

func (r *conferenceRecoveryRetention) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("conferencerecoverypolicy-recoveries").
		For(&v1alpha1.ConferenceRecoveryPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.ConferenceRecovery{}, handler.EnqueueRequestsFromMapFunc(recoveryPolicy),
			builder.WithPredicates(recoveryOutcomeChanged())).
		Complete(r)
}

// recoveryPolicy maps a recovery to its policy, named by the policy label.
func recoveryPolicy(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[v1alpha1.PolicyLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// recoveryOutcomeChanged passes what can change a count or a deletion time: creation, deletion, and
// updates of the labels (the policy label, the phase label…), the phase or finishedAt. Participant
// and task observations, by far the most frequent updates, pass nothing.
func recoveryOutcomeChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			before, ok1 := e.ObjectOld.(*v1alpha1.ConferenceRecovery)
			after, ok2 := e.ObjectNew.(*v1alpha1.ConferenceRecovery)
			if !ok1 || !ok2 {
				return true
			}
			return !maps.Equal(before.Labels, after.Labels) ||
				before.Status.Phase != after.Status.Phase ||
				!before.Status.FinishedAt.Equal(after.Status.FinishedAt) ||
				!before.DeletionTimestamp.Equal(after.DeletionTimestamp)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// Reconcile deletes the policy's expired recoveries, writes the counts, and comes back when the next
// finished recovery expires.
func (r *conferenceRecoveryRetention) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := r.Get(ctx, req.NamespacedName, &policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var list v1alpha1.ConferenceRecoveryList
	if err := r.List(ctx, &list, client.InNamespace(policy.Namespace), client.MatchingLabels{v1alpha1.PolicyLabel: policy.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list recoveries: %w", err)
	}
	retention := defaultRetention
	if policy.Spec.Retention != nil {
		retention = policy.Spec.Retention.Duration
	}
	plan := planRetention(list.Items, retention, r.Now())
	log := ctrl.LoggerFrom(ctx)
	for _, rec := range plan.expired {
		uid := rec.UID
		if err := r.Delete(ctx, rec, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete expired recovery %s: %w", rec.Name, err)
		}
		log.Info("Deleted a finished recovery past retention", "recovery", rec.Name, "phase", rec.Status.Phase,
			"finishedAt", rec.Status.FinishedAt.Time, "retention", retention)
	}
	before := policy.DeepCopy()
	policy.Status.Recoveries = plan.counts
	if err := patchStatusIfChanged(ctx, r.Client, before, &policy, before.Status.Recoveries, policy.Status.Recoveries); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: plan.nextExpiry}, nil
}

// retentionPlan is what planRetention decided.
type retentionPlan struct {
	// counts are of the recoveries that stay.
	counts v1alpha1.RecoveryCounts
	// expired are finished recoveries whose finishedAt + retention has passed.
	expired []*v1alpha1.ConferenceRecovery
	// nextExpiry is how long until the next finished recovery expires (zero: none is finished).
	nextExpiry time.Duration
}

// planRetention sorts a policy's recoveries into counts by outcome (InProgress for every phase
// that is not terminal) and those due for deletion. Recoveries already being deleted are left out.
func planRetention(items []v1alpha1.ConferenceRecovery, retention time.Duration, now time.Time) retentionPlan {
	var plan retentionPlan
	for i := range items {
		rec := &items[i]
		if !rec.DeletionTimestamp.IsZero() {
			continue
		}
		if rec.Status.FinishedAt != nil {
			due := rec.Status.FinishedAt.Add(retention)
			if due.Before(now) {
				plan.expired = append(plan.expired, rec)
				continue
			}
			// Come back just after it is due (strictly past finishedAt + retention).
			if wait := due.Sub(now) + time.Second; plan.nextExpiry == 0 || wait < plan.nextExpiry {
				plan.nextExpiry = wait
			}
		}
		switch rec.Status.Phase {
		case v1alpha1.PhaseRecovered:
			plan.counts.Recovered++
		case v1alpha1.PhaseAbandoned:
			plan.counts.Abandoned++
		case v1alpha1.PhaseFailed:
			plan.counts.Failed++
		case v1alpha1.PhaseEnded:
			plan.counts.Ended++
		default:
			plan.counts.InProgress++
		}
	}
	return plan
}
