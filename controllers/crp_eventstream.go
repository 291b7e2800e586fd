package controllers

import (
	"cmp"
	"context"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// subscribedEventTypes are the TaskRouter events the webhook server needs for conference recovery:
// the ping and reconnect tasks' lifecycle (seed 001 subscribed only reservation.accepted,
// task.canceled and task-queue.entered; the rest lets a recovery see a reconnect task rejected,
// timed out or done).
var subscribedEventTypes = []string{
	"com.twilio.taskrouter.task.created",
	"com.twilio.taskrouter.task.canceled",
	"com.twilio.taskrouter.task.completed",
	"com.twilio.taskrouter.task-queue.entered",
	"com.twilio.taskrouter.reservation.accepted",
	"com.twilio.taskrouter.reservation.rejected",
	"com.twilio.taskrouter.reservation.timeout",
	"com.twilio.taskrouter.reservation.wrapup",
	"com.twilio.taskrouter.reservation.completed",
}

// eventsPath is the policy's Event Streams path on the webhook server.
func (s *policySync) eventsPath() string {
	return "/twilio/" + s.policy.Namespace + "/" + s.policy.Name + "/events"
}

// eventStream is the policy's sink and subscription for this reconcile.
func (s *policySync) eventStream() *eventStream {
	st := &s.policy.Status
	e := &eventStream{
		tw: s.tw, ownership: &s.ownership,
		owner: s.policy.Namespace + "/" + s.policy.Name,
		path:  s.eventsPath(),
		types: subscribedEventTypes, batch: enabled(s.policy.Spec.EventStream.BatchEvents),
		sinkSID: &st.SinkSID, subscriptionSID: &st.SubscriptionSID,
		persistedSinkSID: s.persisted.SinkSID,
		event:            s.event,
	}
	e.url = webhookURL(cmp.Or(s.policy.Spec.PublicBaseURL, s.r.PublicURL), e.path)
	e.waitingSince = sinkWaitingSince(st.Conditions)
	return e
}

// reconcileEventStream ensures the webhook sink and its subscription, sets EventStreamReady and
// returns when to look again.
func (s *policySync) reconcileEventStream(ctx context.Context) time.Duration {
	e := s.eventStream()
	s.policy.Status.WebhookURL = e.url
	o := e.reconcile(ctx, enabled(s.policy.Spec.EventStream.Managed))
	s.setCondition(v1alpha1.ConditionEventStreamReady, o.ready, o.reason, o.message)
	return o.retry
}
