package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// finalize removes what the operator added in Twilio for a deleted policy — its subscription and
// sink, the "Direct to an Agent" filter it put on protected workflows (the rest of each workflow
// byte for byte), and the workflow and queues it created — then releases the policy (policyCleanup).
func (r *ConferenceRecoveryPolicyReconciler) finalize(ctx context.Context, policy *v1alpha1.ConferenceRecoveryPolicy) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(policy, policyFinalizer) {
		return ctrl.Result{}, nil
	}
	before := policy.DeepCopy()
	s := newPolicySync(r, policy, &before.Status)
	cleanup := &policyCleanup{
		client: r.Client, twilio: r.Twilio, policy: policy, deleted: policy.DeletionTimestamp.Time,
		teardown: func(tw twilio.Client) []*problem {
			s.tw = tw
			return s.teardown(ctx)
		},
		leftInTwilio: func() string { return leftInTwilio(policy) },
		cleaning:     func(message string) { s.setCondition(v1alpha1.ConditionReady, false, reasonCleaningUp, message) },
		event:        s.event,
		writeStatus:  func() (bool, error) { return s.writeStatus(ctx, before) },
	}
	return cleanup.finalize(ctx)
}

// teardown removes what the operator added, in an order Twilio accepts: subscriptions before sinks,
// filters before the queue they target, workflows before queues. Every step that can go ahead is
// taken even when another failed, so a retry has less to do.
func (s *policySync) teardown(ctx context.Context) []*problem {
	var problems []*problem
	if p := s.eventStream().teardown(ctx); p != nil {
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
