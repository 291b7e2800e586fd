package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
)

// cleanupTimeout bounds how long a deleted policy waits for a Twilio that keeps refusing or failing:
// after it, what is left is reported in a Warning event and the policy is let go.
const cleanupTimeout = 10 * time.Minute

// reasonCleaningUp is Ready's reason while a deleted policy's Twilio objects are being removed.
const reasonCleaningUp = "CleaningUp"

// finalize removes what the operator added in Twilio for a deleted policy — its subscription and
// sink, the "Direct to an Agent" filter it put on protected workflows (the rest of each workflow
// byte for byte), and the workflow and queues it created — then releases the policy. Objects it
// adopted are left alone. Without usable credentials nothing can be removed: the policy is released
// with a Warning event naming what was left, rather than blocking its deletion forever.
func (r *ConferenceRecoveryPolicyReconciler) finalize(ctx context.Context, policy *v1alpha1.ConferenceRecoveryPolicy) (result ctrl.Result, err error) {
	if !controllerutil.ContainsFinalizer(policy, policyFinalizer) {
		return ctrl.Result{}, nil
	}
	before := policy.DeepCopy()
	s := &policySync{r: r, policy: policy, persisted: &before.Status}
	released := false
	defer func() {
		if released {
			return
		}
		requeue, perr := s.writeStatus(ctx, before)
		if perr != nil && err == nil {
			err = perr
		}
		if requeue && err == nil {
			result = ctrl.Result{RequeueAfter: time.Second}
		}
	}()

	_, s.tw, err = r.Twilio.For(ctx, policy.Namespace, policy.Spec.Twilio)
	var cerr *credentials.Error
	if errors.As(err, &cerr) {
		recordPolicyEvent(r, policy, true, "CleanupSkipped", "Cleanup",
			"Cannot reach Twilio to clean up (%s); left in Twilio: %s", cerr.Message, leftInTwilio(policy))
		released = true
		return ctrl.Result{}, r.release(ctx, policy)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("resolve credentials: %w", err)
	}
	problems := s.teardown(ctx)
	if len(problems) == 0 {
		released = true
		if err := r.release(ctx, policy); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil // all is removed; only the write was stale
			}
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, nil
	}
	message, wait := summarize(problems, cleanupTimeout)
	authFailed := slices.ContainsFunc(problems, func(p *problem) bool { return p.reason == reasonTwilioAuthFailed })
	if authFailed || time.Since(policy.DeletionTimestamp.Time) > cleanupTimeout {
		recordPolicyEvent(r, policy, true, "CleanupIncomplete", "Cleanup",
			"Gave up cleaning up (%s); left in Twilio: %s", message, leftInTwilio(policy))
		released = true
		return ctrl.Result{}, r.release(ctx, policy)
	}
	s.setCondition(v1alpha1.ConditionReady, false, reasonCleaningUp, "Removing what the operator added in Twilio: "+message)
	return ctrl.Result{RequeueAfter: min(wait, twilioRecheckInterval)}, nil
}

// teardown removes what the operator added, in an order Twilio accepts: subscriptions before sinks,
// filters before the queue they target, workflows before queues. Every step that can go ahead is
// taken even when another failed, so a retry has less to do.
func (s *policySync) teardown(ctx context.Context) []*problem {
	var problems []*problem
	if p := s.teardownEventStream(ctx); p != nil {
		problems = append(problems, p)
	}
	others, err := s.otherPolicies(ctx)
	if err != nil {
		return append(problems, &problem{reason: reasonCleaningUp, message: err.Error(), retry: twilioRetryInterval})
	}
	filtersRemoved := true
	for i := range s.policy.Status.ProtectedWorkflows {
		e := &s.policy.Status.ProtectedWorkflows[i]
		if !e.FilterAdded {
			continue
		}
		if other := others.protecting(e.SID); other != "" {
			// Another policy still relies on the filter: leave it to that policy.
			s.event(false, "HandedOver", "Cleanup", "Left the %q filter on workflow %s: policy %s protects it too", directToAgentFilterName, e.SID, other)
			e.FilterAdded = false
			continue
		}
		if p := s.removeFilter(ctx, e.SID); p != nil {
			problems = append(problems, p)
			filtersRemoved = false
			continue
		}
		e.FilterAdded, e.FilterInstalled = false, false
	}
	for _, sid := range append(s.createdWithPrefix("WW"), s.createdWithPrefix("WQ")...) {
		if other := others.using(sid); other != "" {
			s.event(false, "HandedOver", "Cleanup", "Left %s in Twilio: policy %s uses it too", sid, other)
			s.forget(sid)
		}
	}
	workflowsDeleted := true
	for _, sid := range s.createdWithPrefix("WW") {
		if p := s.deleteCreatedTaskRouterObject(ctx, sid); p != nil {
			problems = append(problems, p)
			workflowsDeleted = false
		}
	}
	if filtersRemoved && workflowsDeleted {
		for _, sid := range s.createdWithPrefix("WQ") {
			if p := s.deleteCreatedTaskRouterObject(ctx, sid); p != nil {
				problems = append(problems, p)
			}
		}
	}
	return problems
}

// release removes the finalizer, with a patch that carries the resourceVersion: on a stale copy it
// fails rather than dropping a finalizer another controller added meanwhile.
func (r *ConferenceRecoveryPolicyReconciler) release(ctx context.Context, policy *v1alpha1.ConferenceRecoveryPolicy) error {
	unchanged := policy.DeepCopy()
	controllerutil.RemoveFinalizer(policy, policyFinalizer)
	if err := r.Patch(ctx, policy, client.MergeFromWithOptions(unchanged, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// policyUsers are the other ConferenceRecoveryPolicies of the cluster, to tell whether one of them
// relies on a Twilio object this policy is about to remove (two policies on one workspace share the
// Recovery Ping workflow by name and may protect the same workflow).
type policyUsers []v1alpha1.ConferenceRecoveryPolicy

func (s *policySync) otherPolicies(ctx context.Context) (policyUsers, error) {
	var list v1alpha1.ConferenceRecoveryPolicyList
	if err := s.r.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list the other policies: %w", err)
	}
	var out policyUsers
	for _, p := range list.Items {
		if p.UID != s.policy.UID && p.DeletionTimestamp.IsZero() && p.Spec.Twilio.WorkspaceSID == s.policy.Spec.Twilio.WorkspaceSID {
			out = append(out, p)
		}
	}
	return out, nil
}

// protecting names a policy that protects the workflow, or "".
func (u policyUsers) protecting(workflowSID string) string {
	for _, p := range u {
		if slices.Contains(p.Spec.ProtectedWorkflowSIDs, workflowSID) {
			return p.Namespace + "/" + p.Name
		}
	}
	return ""
}

// using names a policy whose ping queue, ping workflow or reconnect queue is sid, or "".
func (u policyUsers) using(sid string) string {
	for _, p := range u {
		if slices.Contains([]string{p.Status.PingQueueSID, p.Status.PingWorkflowSID, p.Status.ReconnectQueueSID}, sid) {
			return p.Namespace + "/" + p.Name
		}
	}
	return ""
}

// leftInTwilio lists what the operator added and could not remove.
func leftInTwilio(policy *v1alpha1.ConferenceRecoveryPolicy) string {
	var left []string
	left = append(left, policy.Status.CreatedSIDs...)
	for _, e := range policy.Status.ProtectedWorkflows {
		if e.FilterAdded {
			left = append(left, fmt.Sprintf("the %q filter on workflow %s", directToAgentFilterName, e.SID))
		}
	}
	if len(left) == 0 {
		return "nothing"
	}
	return strings.Join(left, ", ")
}
