package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// The Event Streams sink and subscription that bring TaskRouter events to the webhook server, for
// both policy kinds.
//
// Every policy has its own sink, delivering to its own webhook path, even when a
// ConferenceRecoveryPolicy and a WorkerActivityPolicy watch the same workspace, rather than one sink
// shared by the two:
//   - the path says which policy's auth token checks the signature and whose state an event
//     updates; a shared sink would need a route that fans events out to policies of both kinds;
//   - each policy comes and goes on its own: deleting one must not cut the other's events, and a
//     shared sink would need its two finalizers to count references across kinds;
//   - the two may name different credentials Secrets (different API keys, even different
//     accounts), and a sink belongs to one account;
//   - they need different events (recovery: task-queue.entered, task.created; activity: worker
//     activity and attribute updates, every reservation state), so each subscription delivers only
//     what its policy reads.
// The cost is that an event both need (reservation.accepted, for instance) is delivered twice, once
// to each path, which is well within Event Streams' limits.

// sinkRetestInterval: a sink still not active this long after its test event was asked for gets
// another one (the first may have been refused, say while the webhook server was starting).
const sinkRetestInterval = 30 * time.Second

// Reasons of the EventStreamReady condition (besides the Twilio ones of twilioProblem).
const (
	reasonNotManaged     = "NotManaged"
	reasonNoPublicURL    = "NoPublicURL"
	reasonSinkValidating = "SinkValidating"
	reasonSinkFailed     = "SinkFailed"
	reasonSubscribed     = "Subscribed"
)

// eventStream is one policy's sink and subscription, for one reconcile.
type eventStream struct {
	tw twilio.Client
	*ownership
	// owner names the policy in Twilio descriptions ("flex-operator ns/name").
	owner string
	// url is the sink's destination, "" when no public URL is known; path is the same without
	// the base, for messages.
	url, path string
	// types are the event types the policy needs.
	types []string
	// optional are event types the policy uses when Event Streams offers them (subscribeOptional);
	// without them it falls back on what optionalNote says.
	optional     []string
	optionalNote string
	// unsubscribed are the optional types the subscription lacks after this reconcile.
	unsubscribed []string
	batch        bool
	// sinkSID and subscriptionSID point at the policy's status fields.
	sinkSID, subscriptionSID *string
	// persistedSinkSID is the sink in the status as persisted when the reconcile started: the
	// webhook server validates a sink's test event only once it finds the sink there.
	persistedSinkSID string
	// waitingSince is when the policy started waiting for its sink to become active (the
	// condition's last transition), to back off the checks.
	waitingSince time.Time
	event        func(warning bool, reason, action, format string, args ...any)
}

// streamOutcome is the EventStreamReady condition the setup arrived at, and when to look again.
type streamOutcome struct {
	ready           bool
	reason, message string
	retry           time.Duration
}

func problemOutcome(p *problem) streamOutcome {
	return streamOutcome{reason: p.reason, message: p.message, retry: p.retry}
}

// reconcile ensures the sink and its subscription (or, unmanaged, removes what the operator
// created) and says where things stand.
func (e *eventStream) reconcile(ctx context.Context, managed bool) streamOutcome {
	if !managed {
		if p := e.teardown(ctx); p != nil {
			return problemOutcome(p)
		}
		*e.sinkSID, *e.subscriptionSID = "", ""
		where := e.url
		if where == "" {
			where = "{public base URL}" + e.path
		}
		return streamOutcome{ready: true, reason: reasonNotManaged,
			message: "Not managed (spec.eventStream.managed is false): deliver the TaskRouter events " + strings.Join(e.types, ", ") + optionalText(e.optional) + " to " + where}
	}
	if e.url == "" {
		return streamOutcome{reason: reasonNoPublicURL,
			message: "No public URL for the webhook server: set spec.publicBaseUrl on the policy, or start the manager with --webhook-public-url, to the address at which Twilio reaches the webhook server"}
	}
	sink, p := e.ensureSink(ctx)
	if p != nil {
		return problemOutcome(p)
	}
	*e.sinkSID = sink.SID
	if sink.Status != "active" {
		// Twilio subscribes only an active sink: validated by the webhook server on its test event.
		return e.waitForSink(ctx, sink)
	}
	sub, p := e.ensureSubscription(ctx, sink.SID)
	if p != nil {
		return problemOutcome(p)
	}
	*e.subscriptionSID = sub
	msg := fmt.Sprintf("Sink %s delivers %d TaskRouter event types to %s (subscription %s)", sink.SID,
		len(e.types)+len(e.optional)-len(e.unsubscribed), e.url, sub)
	if len(e.unsubscribed) > 0 {
		msg += fmt.Sprintf("; not subscribed to %s (Event Streams refused them, or the subscription is not the operator's): %s",
			strings.Join(e.unsubscribed, ", "), e.optionalNote)
	}
	return streamOutcome{ready: true, reason: reasonSubscribed, message: msg}
}

// ensureSink finds the policy's sink — the one recorded, else any with the destination — or creates it.
func (e *eventStream) ensureSink(ctx context.Context) (twilio.Sink, *problem) {
	sinks, err := e.tw.ListSinks(ctx)
	if err != nil {
		return twilio.Sink{}, twilioProblem("list Event Streams sinks", err)
	}
	if *e.sinkSID != "" {
		i := slices.IndexFunc(sinks, func(k twilio.Sink) bool { return k.SID == *e.sinkSID })
		switch {
		case i >= 0 && sinks[i].Destination == e.url:
			return sinks[i], nil
		case i >= 0:
			// The public URL changed: the old sink delivers where nobody listens for this policy.
			if p := e.teardown(ctx); p != nil {
				return twilio.Sink{}, p
			}
		default:
			// Deleted behind the operator's back; its subscription went with it.
			e.forget(*e.sinkSID)
			e.forget(*e.subscriptionSID)
		}
		*e.sinkSID, *e.subscriptionSID = "", ""
	}
	key := e.pendingKey("sink", e.url)
	if i := slices.IndexFunc(sinks, func(k twilio.Sink) bool { return k.Destination == e.url }); i >= 0 {
		if e.wasPending(key) {
			e.markCreated(sinks[i].SID)
		}
		return sinks[i], nil
	}
	sink, err := e.tw.CreateSink(ctx, twilio.SinkCreate{Description: "flex-operator " + e.owner, Destination: e.url, BatchEvents: e.batch})
	if err != nil {
		e.rememberIfUnknown(key, err)
		return twilio.Sink{}, twilioProblem("create Event Streams sink for "+e.url, err)
	}
	e.markCreated(sink.SID)
	e.event(false, "Created", "CreateSink", "Created Event Streams sink %s delivering to %s", sink.SID, e.url)
	return sink, nil
}

// waitForSink asks for the sink's test event and waits for it to become active: the webhook server
// validates the sink when the test event arrives. The test is asked for only once the sink's SID is
// in the persisted status, which is where the webhook server looks it up.
func (e *eventStream) waitForSink(ctx context.Context, sink twilio.Sink) streamOutcome {
	reason := reasonSinkValidating
	if sink.Status == "failed" {
		reason = reasonSinkFailed
	}
	if e.persistedSinkSID != sink.SID {
		return streamOutcome{reason: reason, retry: time.Second,
			message: fmt.Sprintf("Sink %s (%s) for %s: asking Twilio for its test event next", sink.SID, sink.Status, sink.Destination)}
	}
	last, tested := e.memo.sinkTests.Load(sink.SID)
	if !tested || time.Since(last.(time.Time)) > sinkRetestInterval {
		if _, err := e.tw.TestSink(ctx, sink.SID); err != nil {
			return problemOutcome(twilioProblem("test Event Streams sink "+sink.SID, err))
		}
		e.memo.sinkTests.Store(sink.SID, time.Now())
	}
	// Back off with the time already spent waiting: 1 s at first, at most 30 s.
	wait := time.Second
	if !e.waitingSince.IsZero() {
		wait = min(max(time.Since(e.waitingSince)/4, time.Second), sinkRetestInterval)
	}
	return streamOutcome{reason: reason, retry: wait,
		message: fmt.Sprintf("Sink %s is %s: waiting for the webhook server at %s to receive its test event and validate it", sink.SID, sink.Status, sink.Destination)}
}

// ensureSubscription makes sure the sink is subscribed to every type the policy needs and returns
// the subscription recorded for the policy. Types other subscriptions of an adopted sink already
// cover are not subscribed twice (Event Streams would deliver them twice).
func (e *eventStream) ensureSubscription(ctx context.Context, sinkSID string) (string, *problem) {
	subs, err := e.tw.ListSubscriptions(ctx, sinkSID)
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
	for _, t := range e.types {
		if !covered[t] {
			missing = append(missing, t)
		}
	}
	i := slices.IndexFunc(subs, func(sub twilio.Subscription) bool { return sub.SID == *e.subscriptionSID })
	if i < 0 {
		e.forget(*e.subscriptionSID)
		*e.subscriptionSID = ""
	}
	description := "flex-operator " + e.owner + " TaskRouter events"
	key := e.pendingKey("subscription", sinkSID)
	if e.wasPending(key) && i < 0 {
		// A create whose answer was lost: if it happened, the subscription carries our description.
		if i = slices.IndexFunc(subs, func(sub twilio.Subscription) bool { return sub.Description == description }); i >= 0 {
			e.markCreated(subs[i].SID)
		}
	}
	switch {
	case len(missing) == 0 && i >= 0:
		return e.subscribeOptional(ctx, subs[i].SID, covered)
	case len(missing) == 0:
		// Adopt the subscription that covers most of what is needed.
		best, most := 0, -1
		for j, sub := range subs {
			n := 0
			for _, t := range sub.Types {
				if slices.Contains(e.types, t) {
					n++
				}
			}
			if n > most {
				best, most = j, n
			}
		}
		return e.subscribeOptional(ctx, subs[best].SID, covered)
	case i >= 0 && e.created(subs[i].SID):
		for _, t := range missing {
			if err := e.tw.AddSubscribedEvent(ctx, subs[i].SID, t); err != nil {
				return "", twilioProblem(fmt.Sprintf("subscribe %s to %s", subs[i].SID, t), err)
			}
		}
		e.event(false, "UpdatedSubscription", "UpdateSubscription", "Added %s to subscription %s", strings.Join(missing, ", "), subs[i].SID)
		return e.subscribeOptional(ctx, subs[i].SID, covered)
	}
	sub, err := e.tw.CreateSubscription(ctx, twilio.SubscriptionCreate{SinkSID: sinkSID, Description: description, Types: missing})
	if err != nil {
		e.rememberIfUnknown(key, err)
		return "", twilioProblem("subscribe sink "+sinkSID+" to TaskRouter events", err)
	}
	e.markCreated(sub.SID)
	e.event(false, "Created", "CreateSubscription", "Created subscription %s of sink %s to %s", sub.SID, sinkSID, strings.Join(missing, ", "))
	return e.subscribeOptional(ctx, sub.SID, covered)
}

// optionalText names the optional types for a message, or says nothing when there are none.
func optionalText(optional []string) string {
	if len(optional) == 0 {
		return ""
	}
	return " (and, where Event Streams offers them, " + strings.Join(optional, ", ") + ")"
}

// refusedTypeTTL is how long an optional event type Event Streams refused for a subscription is
// not asked for again.
const refusedTypeTTL = time.Hour

// refusedTypes remembers, by subscription SID and type, when Event Streams refused an optional
// type, so that each reconcile does not ask again.
var refusedTypes sync.Map

// subscribeOptional adds to the subscription, one type at a time, the optional event types it
// lacks. A subscription the operator did not create is left as it is. A type Event Streams refuses
// (a 4xx other than 429: the account's catalog does not offer it) is left out, said once in an
// Event and in the condition's message, and asked for again after refusedTypeTTL; the required
// types are not affected, since they are subscribed before and apart.
func (e *eventStream) subscribeOptional(ctx context.Context, sid string, covered map[string]bool) (string, *problem) {
	e.unsubscribed = nil
	for _, t := range e.optional {
		if covered[t] {
			continue
		}
		key := sid + "/" + t
		if at, ok := refusedTypes.Load(key); !e.created(sid) || (ok && time.Since(at.(time.Time)) < refusedTypeTTL) {
			e.unsubscribed = append(e.unsubscribed, t)
			continue
		}
		err := e.tw.AddSubscribedEvent(ctx, sid, t)
		switch {
		case err == nil:
			refusedTypes.Delete(key)
			e.event(false, "UpdatedSubscription", "UpdateSubscription", "Added %s to subscription %s", t, sid)
		case twilio.IsTerminal(err):
			refusedTypes.Store(key, time.Now())
			e.unsubscribed = append(e.unsubscribed, t)
			e.event(true, "EventTypeNotOffered", "UpdateSubscription", "Event Streams refused %s for subscription %s (%v): %s", t, sid, err, e.optionalNote)
		default:
			return "", twilioProblem(fmt.Sprintf("subscribe %s to %s", sid, t), err)
		}
	}
	return sid, nil
}

// teardown deletes the subscriptions, then the sinks, the operator created for the policy.
func (e *eventStream) teardown(ctx context.Context) *problem {
	for _, sid := range e.createdWithPrefix("DF") {
		if err := e.tw.DeleteSubscription(ctx, sid); err != nil {
			return twilioProblem("delete subscription "+sid, err)
		}
		e.forget(sid)
		e.event(false, "Deleted", "DeleteSubscription", "Deleted subscription %s", sid)
	}
	for _, sid := range e.createdWithPrefix("DG") {
		if err := e.tw.DeleteSink(ctx, sid); err != nil {
			return twilioProblem("delete Event Streams sink "+sid, err)
		}
		e.forget(sid)
		e.memo.sinkTests.Delete(sid)
		e.event(false, "Deleted", "DeleteSink", "Deleted Event Streams sink %s", sid)
	}
	return nil
}

// sinkWaitingSince is when a policy's EventStreamReady condition started waiting for its sink to be
// validated, or zero when it is not waiting.
func sinkWaitingSince(conditions []metav1.Condition) time.Time {
	c := meta.FindStatusCondition(conditions, v1alpha1.ConditionEventStreamReady)
	if c == nil || c.Status == metav1.ConditionTrue || (c.Reason != reasonSinkValidating && c.Reason != reasonSinkFailed) {
		return time.Time{}
	}
	return c.LastTransitionTime.Time
}

// webhookURL joins a public base URL and a path, or gives "" when there is no base.
func webhookURL(base, path string) string {
	base = strings.TrimRight(base, "/")
	if base == "" {
		return ""
	}
	return base + path
}
