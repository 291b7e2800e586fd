package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// activityEventTypes are the TaskRouter events the activity engine decides on: every state of a
// reservation (what work the agent holds), the task states that end or change it (the
// extended-wrap-up mark is a task attribute; a deleted task, by API or by TaskRouter's cleanup,
// ends its reservations without reservation events), the worker's own changes (a person's activity
// change to defer or correct; attribute changes that move a worker in or out of spec.workers), and
// the workspace's activities as administrators add, rename and delete them (the engine's
// catalogue: a pending activity is kept by name and its availability decides No ACD).
var activityEventTypes = []string{
	"com.twilio.taskrouter.reservation.created",
	"com.twilio.taskrouter.reservation.accepted",
	"com.twilio.taskrouter.reservation.rejected",
	"com.twilio.taskrouter.reservation.timeout",
	"com.twilio.taskrouter.reservation.canceled",
	"com.twilio.taskrouter.reservation.rescinded",
	"com.twilio.taskrouter.reservation.wrapup",
	"com.twilio.taskrouter.reservation.completed",
	"com.twilio.taskrouter.task.canceled",
	"com.twilio.taskrouter.task.completed",
	"com.twilio.taskrouter.task.wrapup",
	"com.twilio.taskrouter.task.updated",
	"com.twilio.taskrouter.task.deleted",
	"com.twilio.taskrouter.task.system-deleted",
	"com.twilio.taskrouter.worker.activity.update",
	"com.twilio.taskrouter.worker.attributes.update",
}

// catalogueEventTypes keep the engine's activity catalogue current as administrators add, rename
// and delete activities. TaskRouter emits these events (its event reference lists
// activity.created, activity.updated and activity.deleted), but whether Event Streams offers them
// could not be confirmed from Twilio's Event Streams catalog pages, so they are subscribed apart
// from the required types: if Event Streams refuses one, the policy still gets every event it
// needs, and the engine reads an activity it does not know from TaskRouter when a worker's event
// names it (catalog_read.go).
var catalogueEventTypes = []string{
	"com.twilio.taskrouter.activity.created",
	"com.twilio.taskrouter.activity.updated",
	"com.twilio.taskrouter.activity.deleted",
}

// catalogueFallback says what the engine does without catalogueEventTypes.
const catalogueFallback = "the activity engine reads an activity it does not know from TaskRouter when a worker's event names it; a rename is seen at its next restart"

// Reasons of the WorkerActivityPolicy's conditions (besides the shared ones).
const (
	reasonActivitiesResolved       = "ActivitiesResolved"
	reasonActivityNotFound         = "ActivityNotFound"
	reasonActivityAvailability     = "ActivityAvailabilityMismatch"
	reasonActivityAmbiguous        = "ActivityAmbiguous"
	reasonMultitaskingEnabled      = "MultitaskingEnabled"
	reasonMultitaskingDisabled     = "MultitaskingDisabled"
	reasonInvalidWorkersExpression = "InvalidWorkersExpression"
	reasonTaskChannelNotFound      = "TaskChannelNotFound"
)

// activitySync is one reconcile of one WorkerActivityPolicy.
type activitySync struct {
	r      *WorkerActivityPolicyReconciler
	policy *v1alpha1.WorkerActivityPolicy
	// persisted is the status read at the start of the reconcile (what the webhook server can see).
	persisted *v1alpha1.WorkerActivityPolicyStatus
	tw        twilio.Client
	// ownership is status.createdSids and what this reconcile created.
	ownership
	// setup is a problem with the spec found in Twilio that no condition of its own reports (a
	// channel that does not exist); Ready says it until the next look at Twilio.
	setup *problem
}

func newActivitySync(r *WorkerActivityPolicyReconciler, policy *v1alpha1.WorkerActivityPolicy, persisted *v1alpha1.WorkerActivityPolicyStatus) *activitySync {
	return &activitySync{r: r, policy: policy, persisted: persisted,
		ownership: newOwnership("WorkerActivityPolicy", policy, &policy.Status.CreatedSIDs, &r.memo)}
}

// syncTwilio checks the workspace, resolves the activities and ensures the Event Streams sink, and
// returns when to look at Twilio again.
func (s *activitySync) syncTwilio(ctx context.Context) time.Duration {
	wait := resyncInterval
	if p := s.checkWorkspace(ctx); p != nil {
		s.activitiesFailed(ctx, p)
		return p.retry
	}
	if p := s.resolveActivities(ctx); p != nil {
		s.activitiesFailed(ctx, p)
		wait = soonest(wait, p.retry)
	} else {
		s.setCondition(v1alpha1.ConditionActivitiesResolved, true, reasonActivitiesResolved,
			fmt.Sprintf("The six activities exist in workspace %s with the right availability", s.policy.Spec.Twilio.WorkspaceSID))
	}
	if p := s.checkChannels(ctx); p != nil {
		s.setup = p
		wait = soonest(wait, p.retry)
	}
	e := s.eventStream()
	s.policy.Status.WebhookURL = e.url
	o := e.reconcile(ctx, enabled(s.policy.Spec.EventStream.Managed))
	s.setCondition(v1alpha1.ConditionEventStreamReady, o.ready, o.reason, o.message)
	return soonest(wait, o.retry)
}

// activitiesFailed records a problem with the workspace or its activities on ActivitiesResolved. A
// Twilio outage does not stop the engine, which runs a policy only while ActivitiesResolved is
// True: activities resolved for this generation stay resolved, the outage is logged and the look
// repeated soon.
func (s *activitySync) activitiesFailed(ctx context.Context, p *problem) {
	c := meta.FindStatusCondition(s.policy.Status.Conditions, v1alpha1.ConditionActivitiesResolved)
	if p.reason == reasonTwilioUnavailable && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == s.policy.Generation {
		ctrl.LoggerFrom(ctx).Info("Twilio unavailable; keeping the resolved activities", "problem", p.message)
		return
	}
	s.setCondition(v1alpha1.ConditionActivitiesResolved, false, p.reason, p.message)
	old := meta.FindStatusCondition(s.persisted.Conditions, v1alpha1.ConditionActivitiesResolved)
	if old == nil || old.Status != metav1.ConditionFalse || old.Message != p.message {
		s.event(true, p.reason, "ResolveActivities", "%s", p.message)
	}
}

// checkWorkspace reads the workspace and sets MultitaskingEnabled.
func (s *activitySync) checkWorkspace(ctx context.Context) *problem {
	ws, err := s.tw.FetchWorkspace(ctx, s.policy.Spec.Twilio.WorkspaceSID)
	if err != nil {
		return s.workspaceProblem("read workspace "+s.policy.Spec.Twilio.WorkspaceSID, err)
	}
	if ws.MultiTaskEnabled {
		s.setCondition(v1alpha1.ConditionMultitaskingEnabled, true, reasonMultitaskingEnabled,
			fmt.Sprintf("Workspace %s is multi-tasking: only this policy changes activities for the work agents hold", ws.SID))
		return nil
	}
	msg := fmt.Sprintf("Workspace %s (%s) is not multi-tasking: TaskRouter itself moves workers to the reservation and assignment "+
		"activities of its workflows and queues (ReservationActivitySid, AssignmentActivitySid), and this policy would fight it. "+
		"Enable multitasking on the workspace (Flex workspaces are multi-tasking by default)", ws.SID, ws.FriendlyName)
	old := meta.FindStatusCondition(s.persisted.Conditions, v1alpha1.ConditionMultitaskingEnabled)
	if old == nil || old.Status != metav1.ConditionFalse {
		s.event(true, reasonMultitaskingDisabled, "CheckWorkspace", "%s", msg)
	}
	s.setCondition(v1alpha1.ConditionMultitaskingEnabled, false, reasonMultitaskingDisabled, msg)
	return nil
}

// checkChannels makes sure every channel in spec.channels is a task channel of the workspace: a
// misspelt one would silently count nothing.
func (s *activitySync) checkChannels(ctx context.Context) *problem {
	if len(s.policy.Spec.Channels) == 0 {
		return nil
	}
	channels, err := s.tw.ListTaskChannels(ctx, s.policy.Spec.Twilio.WorkspaceSID)
	if err != nil {
		if twilio.IsRetryable(err) {
			return nil // looked at again on the next resync; the engine is not held up for it
		}
		return s.workspaceProblem("list the task channels of workspace "+s.policy.Spec.Twilio.WorkspaceSID, err)
	}
	var known, missing []string
	for _, c := range channels {
		known = append(known, c.UniqueName)
	}
	for _, name := range s.policy.Spec.Channels {
		if !slices.Contains(known, name) {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(known)
	p := &problem{reason: reasonTaskChannelNotFound, retry: twilioRecheckInterval,
		message: fmt.Sprintf("spec.channels: %s not a task channel of workspace %s (its channels: %s); reservations on it would never count",
			strings.Join(missing, ", "), s.policy.Spec.Twilio.WorkspaceSID, strings.Join(known, ", "))}
	old := meta.FindStatusCondition(s.persisted.Conditions, v1alpha1.ConditionReady)
	if old == nil || old.Reason != p.reason || old.Message != p.message {
		s.event(true, p.reason, "CheckChannels", "%s", p.message)
	}
	return p
}

// workspaceProblem classifies a Twilio error met while reading the workspace's objects.
func (s *activitySync) workspaceProblem(what string, err error) *problem {
	if twilio.IsNotFound(err) {
		return &problem{reason: reasonWorkspaceNotFound, retry: twilioRecheckInterval,
			message: fmt.Sprintf("%s: workspace %s not found in account %s", what, s.policy.Spec.Twilio.WorkspaceSID, s.tw.AccountSID())}
	}
	return twilioProblem(what, err)
}

// eventStream is the policy's sink and subscription for this reconcile.
func (s *activitySync) eventStream() *eventStream {
	st := &s.policy.Status
	e := &eventStream{
		tw: s.tw, ownership: &s.ownership,
		owner: "activity " + s.policy.Namespace + "/" + s.policy.Name,
		path:  fmt.Sprintf(activity.EventsPathFormat, s.policy.Namespace, s.policy.Name),
		types: activityEventTypes, optional: catalogueEventTypes, optionalNote: catalogueFallback,
		batch:   enabled(s.policy.Spec.EventStream.BatchEvents),
		sinkSID: &st.SinkSID, subscriptionSID: &st.SubscriptionSID,
		persistedSinkSID: s.persisted.SinkSID,
		waitingSince:     sinkWaitingSince(st.Conditions),
		event:            s.event,
	}
	e.url = webhookURL(cmp.Or(s.policy.Spec.PublicBaseURL, s.r.PublicURL), e.path)
	return e
}

// writeStatus writes the status (writeOwnedStatus), carrying what this reconcile created over onto
// a newer policy.
func (s *activitySync) writeStatus(ctx context.Context, before *v1alpha1.WorkerActivityPolicy) (requeue bool, err error) {
	var carry func(client.Object)
	if len(s.createdNow) > 0 {
		carry = func(o client.Object) {
			s.carryCreated(&o.(*v1alpha1.WorkerActivityPolicy).Status.CreatedSIDs)
		}
	}
	return writeOwnedStatus(ctx, s.r.Client, s.r.APIReader, before, s.policy,
		!equality.Semantic.DeepEqual(before.Status, s.policy.Status), carry)
}

// setCondition sets one of the policy's conditions for its current generation.
func (s *activitySync) setCondition(typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	s.setConditionStatus(typ, status, reason, message)
}

func (s *activitySync) setConditionStatus(typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.policy.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: s.policy.Generation,
	})
}

// event records a Kubernetes Event on the policy.
func (s *activitySync) event(warning bool, reason, action, format string, args ...any) {
	recordEvent(s.r.Recorder, s.policy, warning, reason, action, format, args...)
}
