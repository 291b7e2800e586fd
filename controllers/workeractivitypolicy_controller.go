package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// defaultStatsInterval is how often a policy's status aggregates are refreshed from the engine.
const defaultStatsInterval = 5 * time.Second

// WorkerActivityPolicyReconciler sets up what the activity engine needs for a WorkerActivityPolicy
// and reports what the engine does. It resolves the six activity names to SIDs (creating missing
// ones when asked, and deleting only those with the policy), checks that the workspace is
// multi-tasking, and keeps the policy's Event Streams sink and subscription. Every few seconds it
// copies the engine's aggregates into status; those refreshes cost no Twilio call: Twilio is looked
// at when the spec or the credentials change, after a problem's retry delay, and every
// resyncInterval.
type WorkerActivityPolicyReconciler struct {
	client.Client
	// APIReader reads Secrets uncached.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Twilio gives the client for the policy's credentials.
	Twilio *credentials.Provider
	// PublicURL is the webhook server's default public base URL (--webhook-public-url); a
	// policy's spec.publicBaseUrl overrides it.
	PublicURL string
	// Stats gives the activity engine's aggregates. Nil means the engine does not run in this
	// manager: no aggregates are written and Ready says so.
	Stats activity.StatsSource
	// StatsInterval is how often aggregates are refreshed; zero means 5 s.
	StatsInterval time.Duration

	memo twilioMemo
	// synced remembers, per policy, the last look at Twilio (twilioLook).
	synced sync.Map
}

// twilioLook is the last time a policy was checked against Twilio: for which object, generation and
// client (a new client means the credentials changed), and when to look again.
type twilioLook struct {
	uid        types.UID
	generation int64
	client     twilio.Client
	next       time.Time
	// setup is the problem that look found with the spec, reported by Ready until the next look.
	setup *problem
}

// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=contactcenter.flexoperator.io,resources=workeractivitypolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile sets up, or on deletion tears down, what the policy needs in Twilio, and reports it and
// the engine's aggregates in the policy's status.
func (r *WorkerActivityPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	var policy v1alpha1.WorkerActivityPolicy
	if err := r.Get(ctx, req.NamespacedName, &policy); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.synced.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !policy.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &policy)
	}
	if requeue, err := addFinalizer(ctx, r.Client, &policy); err != nil || requeue {
		return ctrl.Result{RequeueAfter: time.Second}, client.IgnoreNotFound(err)
	}
	before := policy.DeepCopy()
	s := newActivitySync(r, &policy, &before.Status)
	statsWait := time.Duration(0)
	if r.Stats != nil {
		statsWait = r.statsInterval()
	}
	twilioWait := time.Duration(0)
	defer func() {
		requeue, perr := s.writeStatus(ctx, before)
		if perr != nil && err == nil {
			err = perr
		}
		if requeue {
			// What was found in Twilio did not reach the policy: look again.
			r.synced.Delete(req.NamespacedName)
			twilioWait = time.Second
		}
		if err == nil {
			result = ctrl.Result{RequeueAfter: soonest(twilioWait, statsWait)}
		}
	}()
	policy.Status.ObservedGeneration = policy.Generation

	s.tw, err = policyClient(ctx, r.Twilio, r.Recorder, &policy, &policy.Status.Conditions, before.Status.Conditions)
	if err != nil {
		// The Secret watch brings the policy back once the Secret is fixed.
		r.synced.Delete(req.NamespacedName)
		statsWait = 0
		return ctrl.Result{}, ignoreUnresolved(err)
	}
	now := time.Now()
	if last, ok := r.synced.Load(req.NamespacedName); ok && r.upToDate(last.(twilioLook), &policy, s.tw, now) {
		twilioWait = last.(twilioLook).next.Sub(now)
		s.setup = last.(twilioLook).setup
	} else {
		twilioWait = s.syncTwilio(ctx)
		r.synced.Store(req.NamespacedName, twilioLook{uid: policy.UID, generation: policy.Generation, client: s.tw, next: now.Add(twilioWait), setup: s.setup})
	}
	s.setReady(s.applyStats(ctx))
	return ctrl.Result{}, nil
}

// upToDate says whether the last look at Twilio still holds for the policy.
func (r *WorkerActivityPolicyReconciler) upToDate(last twilioLook, policy *v1alpha1.WorkerActivityPolicy, tw twilio.Client, now time.Time) bool {
	return last.uid == policy.UID && last.generation == policy.Generation && last.client == tw && now.Before(last.next)
}

func (r *WorkerActivityPolicyReconciler) statsInterval() time.Duration {
	if r.StatsInterval > 0 {
		return r.StatsInterval
	}
	return defaultStatsInterval
}

// SetupWithManager registers the controller, its index and its Secret watch. It keeps
// controller-runtime's single worker: two policies on one workspace must never both find an
// activity missing and create it twice.
func (r *WorkerActivityPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := indexCredentialsSecret(ctx, mgr, &v1alpha1.WorkerActivityPolicy{}); err != nil {
		return fmt.Errorf("index WorkerActivityPolicy by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		// Generation changes only: the controller's own status writes must not wake it. Deletion
		// bumps the generation, so the finalizer still runs.
		For(&v1alpha1.WorkerActivityPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("workeractivitypolicy")
	return watchCredentialsSecrets(b, mgr.GetClient(), &v1alpha1.WorkerActivityPolicyList{}).Complete(r)
}
