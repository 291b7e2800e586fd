package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// finalize removes what the operator added in Twilio for a deleted policy — its subscription and
// sink, and the activities it created — then releases the policy (policyCleanup). Activities it
// found and adopted are left alone.
func (r *WorkerActivityPolicyReconciler) finalize(ctx context.Context, policy *v1alpha1.WorkerActivityPolicy) (ctrl.Result, error) {
	r.synced.Delete(client.ObjectKeyFromObject(policy))
	if !controllerutil.ContainsFinalizer(policy, policyFinalizer) {
		return ctrl.Result{}, nil
	}
	before := policy.DeepCopy()
	s := newActivitySync(r, policy, &before.Status)
	cleanup := &policyCleanup{
		client: r.Client, twilio: r.Twilio, policy: policy, deleted: policy.DeletionTimestamp.Time,
		teardown: func(tw twilio.Client) []*problem {
			s.tw = tw
			return s.teardown(ctx)
		},
		leftInTwilio: func() string { return cmp.Or(strings.Join(policy.Status.CreatedSIDs, ", "), "nothing") },
		cleaning:     func(message string) { s.setCondition(v1alpha1.ConditionReady, false, reasonCleaningUp, message) },
		event:        s.event,
		writeStatus:  func() (bool, error) { return s.writeStatus(ctx, before) },
	}
	return cleanup.finalize(ctx)
}

// teardown deletes the subscription and sink, then the activities the operator created. An
// activity another policy of the workspace has resolved is handed over to it rather than deleted;
// Twilio refuses to delete one that workers are still in, which is retried until cleanupTimeout.
func (s *activitySync) teardown(ctx context.Context) []*problem {
	var problems []*problem
	if p := s.eventStream().teardown(ctx); p != nil {
		problems = append(problems, p)
	}
	others, err := s.otherPoliciesOfWorkspace(ctx)
	if err != nil {
		return append(problems, &problem{reason: reasonCleaningUp, message: err.Error(), retry: twilioRetryInterval})
	}
	var deleted []string
	defer func() {
		// One Event: the recorder folds Events of one reason and action into a series.
		if len(deleted) > 0 {
			s.event(false, "Deleted", "DeleteActivity", "Deleted activities %s", strings.Join(deleted, ", "))
		}
	}()
	for _, sid := range s.createdWithPrefix("WA") {
		if other := usingActivity(others, sid); other != "" {
			s.event(false, "HandedOver", "Cleanup", "Left activity %s in Twilio: policy %s uses it too", sid, other)
			s.forget(sid)
			continue
		}
		if err := s.tw.DeleteActivity(ctx, s.policy.Spec.Twilio.WorkspaceSID, sid); err != nil {
			problems = append(problems, twilioProblem("delete activity "+sid, err))
			continue
		}
		s.forget(sid)
		deleted = append(deleted, sid)
	}
	return problems
}

// otherPoliciesOfWorkspace lists the other WorkerActivityPolicies on the policy's workspace that
// are not being deleted.
func (s *activitySync) otherPoliciesOfWorkspace(ctx context.Context) ([]v1alpha1.WorkerActivityPolicy, error) {
	var list v1alpha1.WorkerActivityPolicyList
	if err := s.r.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list the other policies: %w", err)
	}
	return slices.DeleteFunc(list.Items, func(p v1alpha1.WorkerActivityPolicy) bool {
		return p.UID == s.policy.UID || !p.DeletionTimestamp.IsZero() || p.Spec.Twilio.WorkspaceSID != s.policy.Spec.Twilio.WorkspaceSID
	}), nil
}

// usingActivity names a policy that has resolved the activity sid, or "".
func usingActivity(policies []v1alpha1.WorkerActivityPolicy, sid string) string {
	for _, p := range policies {
		a := p.Status.Activities
		if slices.Contains([]string{a.Available, a.OnATask, a.OnATaskNoAcd, a.Wrapup, a.WrapupNoAcd, a.ExtendedWrapup}, sid) {
			return p.Namespace + "/" + p.Name
		}
	}
	return ""
}
