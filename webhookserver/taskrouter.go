package webhookserver

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// handleEvents takes an Event Streams delivery: POST /twilio/{namespace}/{policy}/events.
//
// Every event of a batch is handled (the seed read only the first), in TaskRouter's time order.
// The answer is:
//   - 200 when every event that could be decoded was stored, acknowledged as a duplicate or of no
//     interest, even if some events of the batch could not be decoded: those are counted
//     (outcome "malformed") and logged. They would fail the same way on every retry, and a retry
//     of the batch would only hold up the sink (Event Streams throttles a sink that answers 5xx);
//   - 400 when no event at all could be decoded (not JSON, not CloudEvents): nothing to keep;
//   - 503 when any decodable event could not be stored. Event Streams then redelivers the whole
//     batch; the events already stored are dropped as duplicates, the rest are processed.
func (r *Routes) handleEvents(w http.ResponseWriter, req *http.Request) {
	tr, ok := r.authenticateTwilio(w, req, routeEvents)
	if !ok {
		return
	}
	evs, ok := r.decodeDelivery(w, routeEvents, tr.policyKey(), tr.body)
	if !ok {
		return
	}
	if !r.processTaskRouterEvents(req.Context(), routeEvents, tr, evs) {
		unavailable(w, "could not store every event")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// decodeDelivery decodes an Event Streams delivery (one CloudEvent or a batch) sorted by event
// time. Undecodable events are counted and logged; when none decodes the answer is 400 and ok is
// false, otherwise the decodable ones go on.
func (r *Routes) decodeDelivery(w http.ResponseWriter, route, policyKey string, body []byte) ([]events.TaskRouterEvent, bool) {
	evs, err := events.ParseEventStreams(body)
	if err != nil {
		bad := countEventErrors(err)
		eventsTotal.WithLabelValues(route, "other", outcomeMalformed).Add(float64(bad))
		r.log.Info("Dropped undecodable Event Streams events", "policy", policyKey,
			"malformed", bad, "decoded", len(evs), "error", err.Error())
		if len(evs) == 0 {
			http.Error(w, "no decodable CloudEvent in the body", http.StatusBadRequest)
			return nil, false
		}
	}
	slices.SortStableFunc(evs, func(a, b events.TaskRouterEvent) int { return a.Time.Compare(b.Time) })
	return evs, true
}

// countEventErrors counts the events a ParseEventStreams error reports (at least one).
func countEventErrors(err error) int {
	n := 0
	var walk func(error)
	walk = func(e error) {
		if _, ok := e.(*events.EventError); ok {
			n++
			return
		}
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range joined.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return max(n, 1)
}

// handleTaskRouter takes a workspace's legacy EventCallbackUrl callback:
// POST /twilio/{namespace}/{policy}/taskrouter. TaskRouter documents 204 as the answer.
func (r *Routes) handleTaskRouter(w http.ResponseWriter, req *http.Request) {
	tr, ok := r.authenticateTwilio(w, req, routeTaskRouter)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(tr.body))
	var ev events.TaskRouterEvent
	if err == nil {
		ev, err = events.ParseLegacyEvent(form)
	}
	if err != nil {
		// Signed but undecodable: no event type, workspace or time to act on. Legacy callbacks
		// are sent once whatever the answer, and this one could never be processed.
		eventsTotal.WithLabelValues(routeTaskRouter, "other", outcomeMalformed).Inc()
		r.log.Info("Refused a malformed TaskRouter callback", "policy", tr.policyKey(), "error", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !r.processTaskRouterEvents(req.Context(), routeTaskRouter, tr, []events.TaskRouterEvent{ev}) {
		unavailable(w, "could not store the event")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNoContent)
}

// processTaskRouterEvents records the events that concern a recovery and reports whether all of
// them were stored. Each recovery's writer applies its events in the order given; events for
// different recoveries are written concurrently.
func (r *Routes) processTaskRouterEvents(ctx context.Context, route string, tr *twilioRequest, evs []events.TaskRouterEvent) bool {
	receivedAt := r.opts.Now()
	ctx, cancel := r.handlingContext(ctx)
	defer cancel()
	type submitted struct {
		op       *op
		dedupKey string
		ev       events.TaskRouterEvent
	}
	var waiting []submitted
	for _, ev := range evs {
		typ := eventTypeLabel(ev)
		// A sink test event is not deduplicated: Twilio gives every test the account SID as its
		// id. Validating twice is harmless, and the validator drops a test already in hand.
		if ev.Type == events.TypeTestSink {
			sinkSID := ev.SinkSID
			if sinkSID == "" {
				sinkSID = tr.policy.Status.SinkSID
			}
			if sinkSID == "" {
				r.log.Info("Sink test event for a sink this policy does not know; ignored", "policy", tr.policyKey())
				eventsTotal.WithLabelValues(route, typ, outcomeIgnored).Inc()
				continue
			}
			// Validation must wait until this answer is sent: Twilio only accepts it for a test
			// event the sink has acknowledged.
			r.sinks.validate(tr.twilio, sinkSID, ev.TestID)
			eventsTotal.WithLabelValues(route, typ, outcomeValidating).Inc()
			continue
		}
		dedupKey := tr.dedupKey(ev.ID)
		if r.dedup.Seen(dedupKey) {
			duplicatesTotal.WithLabelValues(route).Inc()
			continue
		}
		conferenceSID, mutate := recoveryMutation(tr.policy, ev, receivedAt)
		if mutate == nil {
			eventsTotal.WithLabelValues(route, typ, outcomeIgnored).Inc()
			continue
		}
		o := r.store.submit(recoveryKey(tr.policy.Namespace, conferenceSID), &op{mutate: mutate})
		waiting = append(waiting, submitted{op: o, dedupKey: dedupKey, ev: ev})
	}
	ok := true
	for _, s := range waiting {
		res := s.op.wait(ctx)
		typ := eventTypeLabel(s.ev)
		if res.err != nil {
			ok = false
			r.dedup.Forget(s.dedupKey)
			eventsTotal.WithLabelValues(route, typ, outcomeFailed).Inc()
			r.log.Error(res.err, "Could not store a TaskRouter event; answering 503 so it is retried",
				"policy", tr.policyKey(), "event", s.ev.ID, "type", s.ev.Type, "task", s.ev.TaskSID)
			continue
		}
		eventsTotal.WithLabelValues(route, typ, res.outcome).Inc()
	}
	return ok
}

// eventTypeLabel is the "type" label of an event: TaskRouter's short name, or "other" for the
// types this package does not map (their names are not bounded).
func eventTypeLabel(ev events.TaskRouterEvent) string {
	if ev.IsTaskRouter() || ev.Type == events.TypeTestSink {
		return ev.Type
	}
	return "other"
}

// recoveryMutation returns the recovery (by conference SID) a TaskRouter event concerns and the
// change it makes, or a nil change when the event is of no interest to recovery. Ping and reconnect
// tasks are recognised by their recovery marker (recovery.MarkerAttribute), which names the
// conference and the dropped leg of the incident; a ping must also be on the policy's Recovery Ping
// workflow when that is known. Events of a task that belongs to another incident than the
// recovery's current one (an earlier drop of the same call, a task whose attributes were copied)
// change nothing.
func recoveryMutation(policy *v1alpha1.ConferenceRecoveryPolicy, ev events.TaskRouterEvent, receivedAt time.Time) (string, func(*v1alpha1.ConferenceRecovery) (bool, error)) {
	if !ev.IsTaskRouter() || ev.TaskSID == "" {
		return "", nil
	}
	switch ev.Type {
	case "task.created", "task.canceled", "task-queue.entered", "reservation.accepted", "reservation.rejected", "reservation.timeout":
	default:
		return "", nil
	}
	attrs, _ := recovery.ParseTaskAttributes(ev.TaskAttributes)
	marker := attrs.Marker
	pingWorkflow := policy.Status.PingWorkflowSID
	var apply func(*v1alpha1.ConferenceRecoveryStatus, events.TaskRouterEvent, metav1.Time, metav1.MicroTime) bool
	switch {
	case marker.Role == recovery.TaskRolePing && (pingWorkflow == "" || ev.WorkflowSID == "" || ev.WorkflowSID == pingWorkflow):
		apply = pingEvent
	case marker.Role == recovery.TaskRoleReconnect && (pingWorkflow == "" || ev.WorkflowSID != pingWorkflow):
		apply = reconnectEvent
	default:
		return "", nil
	}
	at := metav1.NewTime(ev.Time.UTC().Truncate(time.Second))
	observed := metav1.NewMicroTime(receivedAt)
	policyName := policy.Name
	return marker.ConferenceSID, func(rec *v1alpha1.ConferenceRecovery) (bool, error) {
		// The original task is never the ping or the reconnect task, whatever its attributes
		// were given; and a recovery belongs to one policy (two policies may share a workspace).
		if rec.Spec.PolicyName != policyName || ev.TaskSID == rec.Spec.TaskSID {
			return false, nil
		}
		// Only the current incident's tasks count: a recovery that went back to watching after
		// an agent returned, or a later drop of the same call, ignores an earlier incident's.
		d := rec.Status.Disconnect
		if d == nil || !marker.Matches(rec.Spec.ConferenceSID, d.CallSID) {
			return false, errStale
		}
		return apply(&rec.Status, ev, at, observed), nil
	}
}

// pingEvent records what a Recovery Ping task's event says: the agent took it (Accepted), its TTL
// ran out (TimedOut) or it was canceled otherwise. Only the first outcome counts, and events of
// another ping task than the one recorded are ignored.
func pingEvent(st *v1alpha1.ConferenceRecoveryStatus, ev events.TaskRouterEvent, at metav1.Time, _ metav1.MicroTime) bool {
	ping := st.Ping
	if ping == nil {
		ping = &v1alpha1.PingStatus{}
	}
	if ping.TaskSID != "" && ping.TaskSID != ev.TaskSID {
		return false
	}
	changed := false
	if ping.TaskSID == "" {
		ping.TaskSID, changed = ev.TaskSID, true
	}
	if ping.Outcome == "" {
		switch ev.Type {
		case "reservation.accepted":
			ping.Outcome, ping.ResolvedAt, changed = v1alpha1.PingAccepted, &at, true
		case "task.canceled":
			ping.Outcome = v1alpha1.PingCanceled
			if strings.Contains(strings.ToLower(ev.Reason), "ttl") {
				ping.Outcome = v1alpha1.PingTimedOut
			}
			ping.ResolvedAt, changed = &at, true
		}
	}
	if changed {
		st.Ping = ping
	}
	return changed
}

// reconnectEvent records what the reconnect task's event says: its SID, when it entered a queue,
// who accepted it and when, that it was canceled before anyone did, or that the agent it was
// routed to rejected its offer or let it time out.
func reconnectEvent(st *v1alpha1.ConferenceRecoveryStatus, ev events.TaskRouterEvent, at metav1.Time, observed metav1.MicroTime) bool {
	rc := st.Reconnect
	if rc == nil {
		rc = &v1alpha1.ReconnectStatus{}
	}
	if rc.TaskSID != "" && rc.TaskSID != ev.TaskSID {
		return false
	}
	changed := false
	if rc.TaskSID == "" {
		rc.TaskSID, changed = ev.TaskSID, true
	}
	switch ev.Type {
	case "task-queue.entered":
		if rc.QueuedAt == nil {
			rc.QueuedAt, changed = &at, true
		}
	case "reservation.accepted":
		if rc.AcceptedAt == nil && ev.WorkerSID != "" {
			rc.WorkerSID, rc.AcceptedAt, changed = ev.WorkerSID, &at, true
			if !observed.IsZero() {
				rc.AcceptedObservedAt = &observed
			}
		}
	case "task.canceled":
		if rc.AcceptedAt == nil && rc.CanceledAt == nil {
			rc.CanceledAt, rc.CancelReason, changed = &at, ev.Reason, true
		}
	case "reservation.rejected", "reservation.timeout":
		// Only the agent the task was routed to refusing it matters: the controller then routes
		// the customer to anyone at once instead of waiting out the bound.
		if rc.AcceptedAt == nil && rc.ReroutedAt == nil && rc.TargetRefusedAt == nil && !rc.Fallback &&
			rc.TargetWorkerSID != "" && ev.WorkerSID == rc.TargetWorkerSID {
			rc.TargetRefusedAt, rc.TargetRefusal, changed = &at, strings.TrimPrefix(ev.Type, "reservation."), true
		}
	}
	if changed {
		st.Reconnect = rc
	}
	return changed
}

// sinkValidator confirms Event Streams sink test events back to Twilio, which moves the sink to
// active. It runs after the test event was answered, retrying while Twilio has not yet registered
// the delivery.
type sinkValidator struct {
	log      logr.Logger
	mu       sync.Mutex
	inflight map[string]bool
	// backoff is the first wait before validating and between attempts (doubled each time).
	backoff time.Duration
}

// maxSinkValidations bounds the validations running at once (a sink is tested rarely).
const maxSinkValidations = 32

func newSinkValidator(log logr.Logger) *sinkValidator {
	return &sinkValidator{log: log, inflight: map[string]bool{}, backoff: 100 * time.Millisecond}
}

func (v *sinkValidator) validate(tw twilio.Client, sinkSID, testID string) {
	key := sinkSID + "/" + testID
	v.mu.Lock()
	if v.inflight[key] || len(v.inflight) >= maxSinkValidations {
		v.mu.Unlock()
		return
	}
	v.inflight[key] = true
	v.mu.Unlock()
	go func() {
		defer func() {
			v.mu.Lock()
			delete(v.inflight, key)
			v.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wait := v.backoff
		var err error
		for attempt := 0; attempt < 8; attempt++ {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
			if err = tw.ValidateSink(ctx, sinkSID, testID); err == nil {
				v.log.Info("Validated the Event Streams sink", "sink", sinkSID)
				return
			}
			wait = min(2*wait, 5*time.Second)
		}
		v.log.Error(err, "Could not validate the Event Streams sink", "sink", sinkSID)
	}()
}
