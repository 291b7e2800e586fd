package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// policyFinalizer holds a ConferenceRecoveryPolicy until what the operator added in Twilio is removed.
const policyFinalizer = "contactcenter.flexoperator.io/cleanup"

// How often things are looked at again.
const (
	// resyncInterval: a configured policy is checked against Twilio this often, so that a filter
	// someone removed in the Console, or a sink someone deleted, comes back.
	resyncInterval = 10 * time.Minute
	// twilioRecheckInterval: a problem only fixable in Twilio (a protected workflow that does not
	// exist) is looked at again this often, since no Kubernetes change announces the fix.
	twilioRecheckInterval = time.Minute
	// twilioRetryInterval: a 429, 5xx or connection failure is retried after this, unless Twilio
	// said how long to wait.
	twilioRetryInterval = 5 * time.Second
)

// Reasons of the TaskRouterConfigured, EventStreamReady and Ready conditions.
const (
	reasonConfigured                   = "Configured"
	reasonNotManaged                   = "NotManaged"
	reasonTwilioUnavailable            = "TwilioUnavailable"
	reasonTwilioError                  = "TwilioError"
	reasonTwilioAuthFailed             = "TwilioAuthenticationFailed"
	reasonWorkspaceNotFound            = "WorkspaceNotFound"
	reasonWorkflowNotFound             = "WorkflowNotFound"
	reasonInvalidWorkflowConfiguration = "InvalidWorkflowConfiguration"
	reasonPingQueueNotFound            = "PingQueueNotFound"
	reasonPingWorkflowNotFound         = "PingWorkflowNotFound"
	reasonFilterMissing                = "FilterMissing"
	reasonNoPublicURL                  = "NoPublicURL"
	reasonSinkValidating               = "SinkValidating"
	reasonSinkFailed                   = "SinkFailed"
	reasonSubscribed                   = "Subscribed"
)

// policySync is one reconcile of one policy: the policy being changed, its status as persisted when
// the reconcile started, and the Twilio client.
type policySync struct {
	r      *ConferenceRecoveryPolicyReconciler
	policy *v1alpha1.ConferenceRecoveryPolicy
	// persisted is the status read at the start of the reconcile (what the webhook server can see).
	persisted *v1alpha1.ConferenceRecoveryPolicyStatus
	tw        twilio.Client

	// createdNow and filtersAddedNow are what this reconcile added in Twilio: if its status write
	// meets a newer policy, they are carried over onto it, so no record of ownership is lost.
	createdNow      []string
	filtersAddedNow []string
}

// writeStatus writes the status, if it changed, as a merge patch that carries the resourceVersion
// read at the start. A reconcile that worked from a stale copy (the cache had not yet seen the
// previous reconcile's write) then gets a conflict instead of overwriting what that reconcile
// recorded; the objects and filters this one added are recorded on the current policy instead,
// and requeue asks for a fresh look.
func (s *policySync) writeStatus(ctx context.Context, before *v1alpha1.ConferenceRecoveryPolicy) (requeue bool, err error) {
	if equality.Semantic.DeepEqual(before.Status, s.policy.Status) {
		return false, nil
	}
	err = s.r.Status().Patch(ctx, s.policy, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case err == nil || apierrors.IsNotFound(err):
		return false, nil
	case !apierrors.IsConflict(err):
		return false, fmt.Errorf("patch status: %w", err)
	case len(s.createdNow) == 0 && len(s.filtersAddedNow) == 0:
		return true, nil
	}
	var current v1alpha1.ConferenceRecoveryPolicy
	if err := s.r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.policy), &current); err != nil {
		return false, fmt.Errorf("re-read the policy to record what was created: %w", client.IgnoreNotFound(err))
	}
	base := current.DeepCopy()
	for _, sid := range s.createdNow {
		if !slices.Contains(current.Status.CreatedSIDs, sid) {
			current.Status.CreatedSIDs = append(current.Status.CreatedSIDs, sid)
		}
	}
	for _, sid := range s.filtersAddedNow {
		i := slices.IndexFunc(current.Status.ProtectedWorkflows, func(e v1alpha1.ProtectedWorkflowStatus) bool { return e.SID == sid })
		if i < 0 {
			current.Status.ProtectedWorkflows = append(current.Status.ProtectedWorkflows, v1alpha1.ProtectedWorkflowStatus{SID: sid})
			i = len(current.Status.ProtectedWorkflows) - 1
		}
		current.Status.ProtectedWorkflows[i].FilterInstalled = true
		current.Status.ProtectedWorkflows[i].FilterAdded = true
	}
	if err := s.r.Status().Patch(ctx, &current, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("record what was created on the current policy: %w", err)
	}
	return true, nil
}

// problem is what stopped one part of the setup: a condition reason and message, and when to look
// again (zero: on the next change or resync).
type problem struct {
	reason, message string
	retry           time.Duration
}

func (p *problem) Error() string { return p.message }

// twilioProblem classifies a Twilio error for a condition. what says what was being done.
func twilioProblem(what string, err error) *problem {
	cause := err.Error()
	var ae *twilio.APIError
	if errors.As(err, &ae) {
		// The client's own wrapping repeats what; Twilio's answer is what matters.
		cause = ae.Error()
	}
	switch {
	case twilio.IsRetryable(err):
		wait := twilio.RetryAfter(err)
		if wait <= 0 {
			wait = twilioRetryInterval
		}
		return &problem{reason: reasonTwilioUnavailable, message: fmt.Sprintf("%s: %s (retrying)", what, cause), retry: wait}
	case ae != nil && (ae.Status == 401 || ae.Status == 403):
		return &problem{reason: reasonTwilioAuthFailed, retry: resyncInterval,
			message: fmt.Sprintf("Twilio rejected the credentials in the Secret (%s): check accountSid, authToken and the API key", cause)}
	default:
		return &problem{reason: reasonTwilioError, message: fmt.Sprintf("%s: %s", what, cause), retry: resyncInterval}
	}
}

// summarize joins the problems' messages, each once, and finds the soonest retry.
func summarize(problems []*problem, wait time.Duration) (string, time.Duration) {
	var messages []string
	for _, p := range problems {
		if !slices.Contains(messages, p.message) {
			messages = append(messages, p.message)
		}
		wait = soonest(wait, p.retry)
	}
	return strings.Join(messages, "; "), wait
}

// setCondition sets one of the policy's conditions for its current generation.
func (s *policySync) setCondition(typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&s.policy.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: s.policy.Generation,
	})
}

// setReady sums up TaskRouterConfigured and EventStreamReady (credentials were resolved, or the
// reconcile would not have got here).
func (s *policySync) setReady() {
	for _, typ := range []string{v1alpha1.ConditionTaskRouterConfigured, v1alpha1.ConditionEventStreamReady} {
		c := meta.FindStatusCondition(s.policy.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			reason, message := "Unknown", typ+" has not been evaluated"
			if c != nil {
				reason, message = c.Reason, c.Message
			}
			s.setCondition(v1alpha1.ConditionReady, false, reason, message)
			return
		}
	}
	st := s.policy.Status
	msg := fmt.Sprintf("Protecting %d workflow(s)", len(s.policy.Spec.ProtectedWorkflowSIDs))
	if st.PingWorkflowSID != "" {
		msg += "; Recovery Ping workflow " + st.PingWorkflowSID
	}
	if st.WebhookURL != "" {
		msg += "; events delivered to " + st.WebhookURL
	}
	s.setCondition(v1alpha1.ConditionReady, true, v1alpha1.ReasonReconciled, msg)
}

// event records a Kubernetes Event on the policy.
func (s *policySync) event(warning bool, reason, action, format string, args ...any) {
	recordPolicyEvent(s.r, s.policy, warning, reason, action, format, args...)
}

func recordPolicyEvent(r *ConferenceRecoveryPolicyReconciler, policy *v1alpha1.ConferenceRecoveryPolicy, warning bool, reason, action, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(policy, nil, typ, reason, action, format, args...)
}

// created reports whether the operator created the Twilio object sid.
func (s *policySync) created(sid string) bool {
	return sid != "" && slices.Contains(s.policy.Status.CreatedSIDs, sid)
}

// markCreated records that the operator created sid.
func (s *policySync) markCreated(sid string) {
	if !s.created(sid) {
		s.policy.Status.CreatedSIDs = append(s.policy.Status.CreatedSIDs, sid)
	}
	s.createdNow = append(s.createdNow, sid)
}

// forget drops sid from the objects the operator created (deleted, or handed over).
func (s *policySync) forget(sid string) {
	s.policy.Status.CreatedSIDs = slices.DeleteFunc(s.policy.Status.CreatedSIDs, func(c string) bool { return c == sid })
}

// createdWithPrefix lists the created objects of one kind (WQ, WW, DG, DF).
func (s *policySync) createdWithPrefix(prefix string) []string {
	var out []string
	for _, sid := range s.policy.Status.CreatedSIDs {
		if strings.HasPrefix(sid, prefix) {
			out = append(out, sid)
		}
	}
	return out
}

// pendingKey names a create whose outcome is unknown, per policy and object.
func (s *policySync) pendingKey(kind, name string) string {
	return s.policy.Namespace + "/" + s.policy.Name + "/" + kind + "/" + name
}

// soonest is the shortest non-zero wait, or zero.
func soonest(waits ...time.Duration) time.Duration {
	var out time.Duration
	for _, w := range waits {
		if w > 0 && (out == 0 || w < out) {
			out = w
		}
	}
	return out
}
