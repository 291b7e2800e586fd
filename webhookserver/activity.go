package webhookserver

import (
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/events"
)

// ActivityEngine takes the TaskRouter events of a WorkerActivityPolicy; *activity.Engine is the
// production one. Deliver returns an error when the events could not be taken; on a replica
// that does not run the engine (activity.ErrNotLeader) the delivery is forwarded to the leader,
// otherwise answered 503 so that Event Streams delivers it again.
type ActivityEngine interface {
	Deliver(policy types.NamespacedName, evs []events.TaskRouterEvent) error
}

// outcomeNotLeader: the events reached a replica that does not run the activity engine and could
// not be forwarded (a forwarded request, or no leader locator); answered 503 so that Event
// Streams delivers them again.
const outcomeNotLeader = "not_leader"

// handleActivityEvents takes an Event Streams delivery for a WorkerActivityPolicy:
// POST /twilio/{namespace}/activity/{policy}/events, signed with the policy's auth token.
//
// Multi-replica: every replica serves this route, but the engine's state lives on the leader. A
// replica that is not the leader checks the signature and forwards the delivery to the leader,
// answering Twilio with the leader's answer (activity_forward.go); when the leader cannot be
// reached it answers 503 with Retry-After without marking the events seen, and Event Streams
// delivers the batch again. No event is acknowledged by a replica that would drop it.
//
// The answer is otherwise as for the recovery route: 200 once every decodable event is with the
// engine (duplicates dropped), 400 when nothing could be decoded.
func (r *Routes) handleActivityEvents(w http.ResponseWriter, req *http.Request) {
	// A policy that does not exist is answered as a bad signature, so that an unsigned request
	// cannot tell which policies exist (as on the recovery routes).
	unknown := func() { r.refuseSignature(w, req, routeActivityEvents) }
	ns, name := req.PathValue("namespace"), req.PathValue("policy")
	if !r.knownPolicyPath(ns, name) {
		unknown()
		return
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	var policy v1alpha1.WorkerActivityPolicy
	if err := r.opts.Client.Get(req.Context(), key, &policy); err != nil {
		if apierrors.IsNotFound(err) {
			unknown()
			return
		}
		r.log.Error(err, "Read the WorkerActivityPolicy of a webhook", "policy", key.String())
		unavailable(w, "cannot read the policy")
		return
	}
	base := r.opts.PublicURL
	if policy.Spec.PublicBaseURL != "" {
		base = strings.TrimSuffix(policy.Spec.PublicBaseURL, "/")
	}
	body, tw, ok := r.verifyTwilio(w, req, routeActivityEvents, key.String(), ns, policy.Spec.Twilio, base)
	if !ok {
		return
	}
	evs, ok := r.decodeDelivery(w, routeActivityEvents, key.String(), body)
	if !ok {
		return
	}
	var fresh []events.TaskRouterEvent
	var keys []string
	for _, ev := range evs {
		typ := eventTypeLabel(ev)
		if ev.Type == events.TypeTestSink {
			if ev.SinkSID == "" {
				ev.SinkSID = policy.Status.SinkSID
			}
			if ev.SinkSID == "" {
				eventsTotal.WithLabelValues(routeActivityEvents, typ, outcomeIgnored).Inc()
				continue
			}
			r.sinks.validate(tw, ev.SinkSID, ev.TestID)
			eventsTotal.WithLabelValues(routeActivityEvents, typ, outcomeValidating).Inc()
			continue
		}
		if !ev.IsTaskRouter() {
			eventsTotal.WithLabelValues(routeActivityEvents, typ, outcomeIgnored).Inc()
			continue
		}
		// Scoped apart from a ConferenceRecoveryPolicy of the same name: each gets every event.
		dk := "activity/" + key.String() + "/" + ev.ID
		if r.dedup.Seen(dk) {
			duplicatesTotal.WithLabelValues(routeActivityEvents).Inc()
			continue
		}
		keys = append(keys, dk)
		fresh = append(fresh, ev)
	}
	if len(fresh) > 0 {
		if err := r.opts.Activity.Deliver(key, fresh); err != nil {
			for _, dk := range keys {
				r.dedup.Forget(dk)
			}
			outcome := outcomeFailed
			if errors.Is(err, activity.ErrNotLeader) {
				// Not the leader: the leader takes the delivery (activity_forward.go).
				outcome = r.forwardActivity(w, req, body, key.String())
			} else {
				unavailable(w, err.Error())
			}
			for _, ev := range fresh {
				eventsTotal.WithLabelValues(routeActivityEvents, eventTypeLabel(ev), outcome).Inc()
			}
			return
		}
		for _, ev := range fresh {
			eventsTotal.WithLabelValues(routeActivityEvents, eventTypeLabel(ev), outcomeStored).Inc()
		}
	}
	markAccepted(w, req)
	w.WriteHeader(http.StatusOK)
}
