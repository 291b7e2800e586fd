package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

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
	reasonTwilioUnavailable            = "TwilioUnavailable"
	reasonTwilioError                  = "TwilioError"
	reasonTwilioAuthFailed             = "TwilioAuthenticationFailed"
	reasonWorkspaceNotFound            = "WorkspaceNotFound"
	reasonWorkflowNotFound             = "WorkflowNotFound"
	reasonInvalidWorkflowConfiguration = "InvalidWorkflowConfiguration"
	reasonPingQueueNotFound            = "PingQueueNotFound"
	reasonPingWorkflowNotFound         = "PingWorkflowNotFound"
	reasonFilterMissing                = "FilterMissing"
)

// policySync is one reconcile of one policy: the policy being changed, its status as persisted when
// the reconcile started, and the Twilio client.
type policySync struct {
	r      *ConferenceRecoveryPolicyReconciler
	policy *v1alpha1.ConferenceRecoveryPolicy
	// persisted is the status read at the start of the reconcile (what the webhook server can see).
	persisted *v1alpha1.ConferenceRecoveryPolicyStatus
	tw        twilio.Client
	// ownership is status.createdSids and what this reconcile created.
	ownership

	// filtersAddedNow are the filters this reconcile added: if its status write meets a newer
	// policy, they are carried over onto it, as ownership's createdNow is.
	filtersAddedNow []string
}

func newPolicySync(r *ConferenceRecoveryPolicyReconciler, policy *v1alpha1.ConferenceRecoveryPolicy, persisted *v1alpha1.ConferenceRecoveryPolicyStatus) *policySync {
	return &policySync{r: r, policy: policy, persisted: persisted,
		ownership: newOwnership("ConferenceRecoveryPolicy", policy, &policy.Status.CreatedSIDs, &r.memo)}
}

// writeStatus writes the status (writeOwnedStatus), carrying the objects and filters this
// reconcile added over onto a newer policy.
func (s *policySync) writeStatus(ctx context.Context, before *v1alpha1.ConferenceRecoveryPolicy) (requeue bool, err error) {
	var carry func(client.Object)
	if len(s.createdNow) > 0 || len(s.filtersAddedNow) > 0 {
		carry = func(o client.Object) {
			current := o.(*v1alpha1.ConferenceRecoveryPolicy)
			s.carryCreated(&current.Status.CreatedSIDs)
			for _, sid := range s.filtersAddedNow {
				i := slices.IndexFunc(current.Status.ProtectedWorkflows, func(e v1alpha1.ProtectedWorkflowStatus) bool { return e.SID == sid })
				if i < 0 {
					current.Status.ProtectedWorkflows = append(current.Status.ProtectedWorkflows, v1alpha1.ProtectedWorkflowStatus{SID: sid})
					i = len(current.Status.ProtectedWorkflows) - 1
				}
				current.Status.ProtectedWorkflows[i].FilterInstalled = true
				current.Status.ProtectedWorkflows[i].FilterAdded = true
			}
		}
	}
	return writeOwnedStatus(ctx, s.r.Client, s.r.APIReader, before, s.policy,
		!equality.Semantic.DeepEqual(before.Status, s.policy.Status), carry)
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
	if reason, message, ok := allTrue(s.policy.Status.Conditions, v1alpha1.ConditionTaskRouterConfigured, v1alpha1.ConditionEventStreamReady); !ok {
		s.setCondition(v1alpha1.ConditionReady, false, reason, message)
		return
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
	recordEvent(s.r.Recorder, s.policy, warning, reason, action, format, args...)
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
