package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// subscribedEventTypes are the TaskRouter events the webhook server needs: the ping and reconnect
// tasks' lifecycle (seed 001 subscribed only reservation.accepted, task.canceled and
// task-queue.entered; the rest lets a recovery see a reconnect task rejected, timed out or done).
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

// sinkRetestInterval: a sink still not active this long after its test event was asked for gets
// another one (the first may have been refused, say while the webhook server was starting).
const sinkRetestInterval = 30 * time.Second

// eventsURL is the sink destination for the policy, or "" when no public base URL is known.
func (s *policySync) eventsURL() string {
	base := strings.TrimRight(orDefault(s.policy.Spec.PublicBaseURL, s.r.PublicURL), "/")
	if base == "" {
		return ""
	}
	return base + "/twilio/" + s.policy.Namespace + "/" + s.policy.Name + "/events"
}

// reconcileEventStream ensures the webhook sink and its subscription, sets EventStreamReady and
// returns when to look again.
func (s *policySync) reconcileEventStream(ctx context.Context) time.Duration {
	st := &s.policy.Status
	url := s.eventsURL()
	st.WebhookURL = url
	if !enabled(s.policy.Spec.Management.EventStream) || !enabled(s.policy.Spec.EventStream.Managed) {
		if p := s.teardownEventStream(ctx); p != nil {
			s.setCondition(v1alpha1.ConditionEventStreamReady, false, p.reason, p.message)
			return p.retry
		}
		st.SinkSID, st.SubscriptionSID = "", ""
		msg := "Not managed (spec.management.eventStream is false): deliver the TaskRouter events " + strings.Join(subscribedEventTypes, ", ")
		if url != "" {
			msg += " to " + url
		} else {
			msg += " to {public base URL}/twilio/" + s.policy.Namespace + "/" + s.policy.Name + "/events"
		}
		s.setCondition(v1alpha1.ConditionEventStreamReady, true, reasonNotManaged, msg)
		return 0
	}
	if url == "" {
		s.setCondition(v1alpha1.ConditionEventStreamReady, false, reasonNoPublicURL,
			"No public URL for the webhook server: set spec.publicBaseUrl on the policy, or start the manager with --webhook-public-url, to the address at which Twilio reaches the webhook server")
		return 0
	}
	sink, p := s.ensureSink(ctx, url)
	if p != nil {
		s.setCondition(v1alpha1.ConditionEventStreamReady, false, p.reason, p.message)
		return p.retry
	}
	st.SinkSID = sink.SID
	if sink.Status != "active" {
		return s.waitForSink(ctx, sink)
	}
	sub, p := s.ensureSubscription(ctx, sink.SID)
	if p != nil {
		s.setCondition(v1alpha1.ConditionEventStreamReady, false, p.reason, p.message)
		return p.retry
	}
	st.SubscriptionSID = sub
	s.setCondition(v1alpha1.ConditionEventStreamReady, true, reasonSubscribed,
		fmt.Sprintf("Sink %s delivers %d TaskRouter event types to %s (subscription %s)", sink.SID, len(subscribedEventTypes), url, sub))
	return 0
}

// ensureSink finds the policy's sink — the one recorded, else any with the destination — or creates it.
func (s *policySync) ensureSink(ctx context.Context, url string) (twilio.Sink, *problem) {
	st := &s.policy.Status
	sinks, err := s.tw.ListSinks(ctx)
	if err != nil {
		return twilio.Sink{}, twilioProblem("list Event Streams sinks", err)
	}
	if st.SinkSID != "" {
		i := slices.IndexFunc(sinks, func(k twilio.Sink) bool { return k.SID == st.SinkSID })
		switch {
		case i >= 0 && sinks[i].Destination == url:
			return sinks[i], nil
		case i >= 0:
			// The public URL changed: the old sink delivers where nobody listens for this policy.
			if p := s.teardownEventStream(ctx); p != nil {
				return twilio.Sink{}, p
			}
		default:
			// Deleted behind the operator's back; its subscription went with it.
			s.forget(st.SinkSID)
			s.forget(st.SubscriptionSID)
		}
		st.SinkSID, st.SubscriptionSID = "", ""
	}
	key := s.pendingKey("sink", url)
	if i := slices.IndexFunc(sinks, func(k twilio.Sink) bool { return k.Destination == url }); i >= 0 {
		if _, ok := s.r.pending.LoadAndDelete(key); ok {
			s.markCreated(sinks[i].SID)
		}
		return sinks[i], nil
	}
	sink, err := s.tw.CreateSink(ctx, twilio.SinkCreate{
		Description: "flex-operator " + s.policy.Namespace + "/" + s.policy.Name,
		Destination: url,
		BatchEvents: enabled(s.policy.Spec.EventStream.BatchEvents),
	})
	if err != nil {
		return twilio.Sink{}, s.createFailed(key, "create Event Streams sink for "+url, err)
	}
	s.markCreated(sink.SID)
	s.event(false, "Created", "CreateSink", "Created Event Streams sink %s delivering to %s", sink.SID, url)
	return sink, nil
}

// waitForSink asks for the sink's test event and waits for it to become active: the webhook server
// validates the sink when the test event arrives. The test is asked for only once the sink's SID is
// in the persisted status, which is where the webhook server looks it up.
func (s *policySync) waitForSink(ctx context.Context, sink twilio.Sink) time.Duration {
	reason := reasonSinkValidating
	if sink.Status == "failed" {
		reason = reasonSinkFailed
	}
	if s.persisted.SinkSID != sink.SID {
		s.setCondition(v1alpha1.ConditionEventStreamReady, false, reason,
			fmt.Sprintf("Sink %s (%s) for %s: asking Twilio for its test event next", sink.SID, sink.Status, sink.Destination))
		return time.Second
	}
	last, tested := s.r.sinkTests.Load(sink.SID)
	if !tested || time.Since(last.(time.Time)) > sinkRetestInterval {
		if _, err := s.tw.TestSink(ctx, sink.SID); err != nil {
			p := twilioProblem("test Event Streams sink "+sink.SID, err)
			s.setCondition(v1alpha1.ConditionEventStreamReady, false, p.reason, p.message)
			return p.retry
		}
		s.r.sinkTests.Store(sink.SID, time.Now())
	}
	s.setCondition(v1alpha1.ConditionEventStreamReady, false, reason,
		fmt.Sprintf("Sink %s is %s: waiting for the webhook server at %s to receive its test event and validate it", sink.SID, sink.Status, sink.Destination))
	// Back off with the time already spent waiting: 1 s at first, at most 30 s.
	wait := time.Second
	if c := meta.FindStatusCondition(s.policy.Status.Conditions, v1alpha1.ConditionEventStreamReady); c != nil {
		wait = min(max(time.Since(c.LastTransitionTime.Time)/4, time.Second), sinkRetestInterval)
	}
	return wait
}

// ensureSubscription makes sure the sink is subscribed to every type the webhook server needs and
// returns the subscription recorded for the policy. Types other subscriptions of an adopted sink
// already cover are not subscribed twice (Event Streams would deliver them twice).
func (s *policySync) ensureSubscription(ctx context.Context, sinkSID string) (string, *problem) {
	st := &s.policy.Status
	subs, err := s.tw.ListSubscriptions(ctx, sinkSID)
	if err != nil {
		return "", twilioProblem("list the subscriptions of sink "+sinkSID, err)
	}
	covered := map[string]bool{}
	for _, sub := range subs {
		for _, t := range sub.Types {
			covered[t] = true
		}
	}
	var missing []string
	for _, t := range subscribedEventTypes {
		if !covered[t] {
			missing = append(missing, t)
		}
	}
	i := slices.IndexFunc(subs, func(sub twilio.Subscription) bool { return sub.SID == st.SubscriptionSID })
	if i < 0 {
		s.forget(st.SubscriptionSID)
		st.SubscriptionSID = ""
	}
	description := "flex-operator " + s.policy.Namespace + "/" + s.policy.Name + " TaskRouter events"
	key := s.pendingKey("subscription", sinkSID)
	if _, ok := s.r.pending.LoadAndDelete(key); ok && i < 0 {
		// A create whose answer was lost: if it happened, the subscription carries our description.
		if i = slices.IndexFunc(subs, func(sub twilio.Subscription) bool { return sub.Description == description }); i >= 0 {
			s.markCreated(subs[i].SID)
		}
	}
	switch {
	case len(missing) == 0 && i >= 0:
		return subs[i].SID, nil
	case len(missing) == 0:
		// Adopt the subscription that covers most of what is needed.
		best, most := 0, -1
		for j, sub := range subs {
			n := 0
			for _, t := range sub.Types {
				if slices.Contains(subscribedEventTypes, t) {
					n++
				}
			}
			if n > most {
				best, most = j, n
			}
		}
		return subs[best].SID, nil
	case i >= 0 && s.created(subs[i].SID):
		for _, t := range missing {
			if err := s.tw.AddSubscribedEvent(ctx, subs[i].SID, t); err != nil {
				return "", twilioProblem(fmt.Sprintf("subscribe %s to %s", subs[i].SID, t), err)
			}
		}
		s.event(false, "UpdatedSubscription", "UpdateSubscription", "Added %s to subscription %s", strings.Join(missing, ", "), subs[i].SID)
		return subs[i].SID, nil
	}
	sub, err := s.tw.CreateSubscription(ctx, twilio.SubscriptionCreate{
		SinkSID:     sinkSID,
		Description: description,
		Types:       missing,
	})
	if err != nil {
		return "", s.createFailed(key, "subscribe sink "+sinkSID+" to TaskRouter events", err)
	}
	s.markCreated(sub.SID)
	s.event(false, "Created", "CreateSubscription", "Created subscription %s of sink %s to %s", sub.SID, sinkSID, strings.Join(missing, ", "))
	return sub.SID, nil
}

// teardownEventStream deletes the subscriptions, then the sinks, the operator created.
func (s *policySync) teardownEventStream(ctx context.Context) *problem {
	for _, sid := range s.createdWithPrefix("DF") {
		if err := s.tw.DeleteSubscription(ctx, sid); err != nil {
			return twilioProblem("delete subscription "+sid, err)
		}
		s.forget(sid)
		s.event(false, "Deleted", "DeleteSubscription", "Deleted subscription %s", sid)
	}
	for _, sid := range s.createdWithPrefix("DG") {
		if err := s.tw.DeleteSink(ctx, sid); err != nil {
			return twilioProblem("delete Event Streams sink "+sid, err)
		}
		s.forget(sid)
		s.r.sinkTests.Delete(sid)
		s.event(false, "Deleted", "DeleteSink", "Deleted Event Streams sink %s", sid)
	}
	return nil
}
