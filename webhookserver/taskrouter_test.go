package webhookserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// subscribedTypes are the event types the policy controller subscribes its sink to.
var subscribedTypes = []string{
	"com.twilio.taskrouter.task.created", "com.twilio.taskrouter.task.canceled", "com.twilio.taskrouter.task.completed",
	"com.twilio.taskrouter.task-queue.entered", "com.twilio.taskrouter.reservation.accepted",
	"com.twilio.taskrouter.reservation.rejected", "com.twilio.taskrouter.reservation.timeout",
	"com.twilio.taskrouter.reservation.wrapup", "com.twilio.taskrouter.reservation.completed",
}

// newSink creates an Event Streams webhook sink to the policy's events route, not yet active; it
// is deleted when the test ends.
func (h *harness) newSink(batch bool) twilio.Sink {
	h.t.Helper()
	sink, err := h.twilio.CreateSink(context.Background(), twilio.SinkCreate{Description: h.t.Name(), Destination: h.url("events"), BatchEvents: batch})
	if err != nil {
		h.t.Fatalf("create sink: %v", err)
	}
	h.t.Cleanup(func() { _ = h.twilio.DeleteSink(context.Background(), sink.SID) })
	return sink
}

// sink creates an Event Streams webhook sink to the policy's events route, made active without a
// test event (TestSinkTestEventIsValidated covers that) and subscribed to the recovery's event
// types.
func (h *harness) sink(batch bool) twilio.Sink {
	h.t.Helper()
	sink := h.newSink(batch)
	if err := sim.ActivateSink(sink.SID); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.twilio.CreateSubscription(context.Background(), twilio.SubscriptionCreate{SinkSID: sink.SID, Description: h.t.Name(), Types: subscribedTypes}); err != nil {
		h.t.Fatalf("create subscription: %v", err)
	}
	return sink
}

// TestSinkTestEventIsValidated has Twilio test the sink: the webhook validates the test event
// with the policy's client, which makes the sink active.
func TestSinkTestEventIsValidated(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	sink := h.newSink(true)
	if _, err := h.twilio.TestSink(context.Background(), sink.SID); err != nil {
		t.Fatalf("test sink: %v", err)
	}
	eventually(t, 15*time.Second, func() error {
		sinks, err := h.twilio.ListSinks(context.Background())
		if err != nil {
			return err
		}
		for _, s := range sinks {
			if s.SID == sink.SID && s.Status == "active" {
				return nil
			}
		}
		return fmt.Errorf("sink %s is not active", sink.SID)
	})
}

// TestPingAndReconnectEventsUpdateTheRecovery runs a recovery's TaskRouter side through the
// simulator with a batching sink: the ping task's acceptance, the reconnect task's queueing and
// acceptance, and the new conference, all recorded on the original call's recovery.
func TestPingAndReconnectEventsUpdateTheRecovery(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	sink := h.sink(true)
	ctx := context.Background()
	placed, conferenceSID, agent := h.call("Voice")
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, agent.CallSID); !ok {
			return errors.New("agent leg missing")
		}
		return nil
	})

	// The Recovery Ping, as the controller creates it, accepted by the agent.
	h.disconnect(conferenceSID, agent.CallSID)
	pingAttrs, _ := json.Marshal(incidentAttrs(recovery.TaskRolePing, conferenceSID, agent.CallSID, map[string]any{
		"disconnectedWorkerSid": agent.WorkerSID, "disconnectedTaskSid": placed.TaskSID}))
	ttl := 15
	ping, err := h.twilio.CreateTask(ctx, h.cc.WorkspaceSID, twilio.TaskCreate{WorkflowSID: h.cc.Workflows["Ping"],
		TaskChannel: "default", Attributes: string(pingAttrs), Timeout: &ttl})
	if err != nil {
		t.Fatalf("create ping task: %v", err)
	}
	h.accept(ping.SID)
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if p := rec.Status.Ping; p == nil || p.TaskSID != ping.SID || p.Outcome != v1alpha1.PingAccepted || p.ResolvedAt == nil {
			return fmt.Errorf("ping = %+v", rec.Status.Ping)
		}
		return nil
	})

	// The customer is redirected into a reconnect task on the original workflow.
	twiml, err := recovery.BuildEnqueueTwiML(h.cc.Workflows["Voice"], 1000,
		recovery.ReconnectTaskAttributes(map[string]any{"disconnectedConferenceSid": conferenceSID, "disconnectedWorkerSid": agent.WorkerSID},
			recovery.Marker{ConferenceSID: conferenceSID, DisconnectedCallSID: agent.CallSID}, placed.TaskSID, agent.WorkerSID, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.twilio.RedirectCall(ctx, placed.CallSID, twiml); err != nil {
		t.Fatalf("redirect: %v", err)
	}
	customer, _ := sim.Snapshot().Call(placed.CallSID)
	reconnectTask := customer.QueueTaskSID
	if reconnectTask == "" {
		t.Fatalf("the customer is not queued:\n%s", sim.Dump())
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if rc := rec.Status.Reconnect; rc == nil || rc.TaskSID != reconnectTask || rc.QueuedAt == nil {
			return fmt.Errorf("reconnect = %+v", rec.Status.Reconnect)
		}
		return nil
	})
	reconnected := h.accept(reconnectTask)
	newTask, _ := sim.Snapshot().Task(reconnectTask)
	newConference := newTask.ConferenceSID
	old := h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		rc := rec.Status.Reconnect
		if rc.WorkerSID != reconnected.WorkerSID || rc.AcceptedAt == nil || rc.ConferenceSID != newConference {
			return fmt.Errorf("reconnect = %+v, want worker %s and conference %s", rc, reconnected.WorkerSID, newConference)
		}
		return nil
	})
	if old.Status.Reconnect.CanceledAt != nil {
		t.Errorf("reconnect marked canceled: %+v", old.Status.Reconnect)
	}
	// The new conference is on the protected workflow too, so it has its own recovery.
	h.waitRecovery(newConference, func(rec *v1alpha1.ConferenceRecovery) error {
		if rec.Spec.TaskSID != reconnectTask {
			return fmt.Errorf("new recovery's task %s, want %s", rec.Spec.TaskSID, reconnectTask)
		}
		return nil
	})
	h.waitDelivered("sink:" + sink.SID)
	batches := 0
	for _, d := range sim.DeliveryLog() {
		if d.Key == "sink:"+sink.SID && d.Items > 1 {
			batches++
		}
	}
	t.Logf("%d deliveries to the sink carried more than one event", batches)
}

// taskEvent is an Event Streams TaskRouter CloudEvent of the harness's workspace.
func (h *harness) taskEvent(eventType, taskSID, workerSID string, at time.Time, attrs map[string]any, reason string) map[string]any {
	attrsJSON, _ := json.Marshal(attrs)
	payload := map[string]any{
		"sid": newSID("EV"), "eventtype": eventType, "account_sid": sim.AccountSID(), "workspace_sid": h.cc.WorkspaceSID,
		"timestamp": at.UnixMilli(), "task_sid": taskSID, "task_attributes": string(attrsJSON),
		"task_channel_unique_name": "default",
	}
	if workerSID != "" {
		payload["worker_sid"], payload["reservation_sid"] = workerSID, newSID("WR")
	}
	if reason != "" {
		payload["task_canceled_reason"] = reason
	}
	return map[string]any{
		"specversion": "1.0", "type": "com.twilio.taskrouter." + eventType, "id": newSID("EZ"),
		"source": "/v1/Workspaces/" + h.cc.WorkspaceSID + "/Tasks/" + taskSID, "time": at.UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"data":            map[string]any{"account_sid": sim.AccountSID(), "timestamp": at.UTC().Format(time.RFC3339Nano), "payload": payload},
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEventStreamsBatch posts batches directly: every good event of a batch is processed, in time
// order, even beside an undecodable one; duplicates are dropped; a batch that cannot be stored is
// answered 503 and processed when sent again.
func TestEventStreamsBatch(t *testing.T) {
	var failing atomic.Bool
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, wrapClient: failingWrites(failing.Load)})
	placed, err := sim.PlaceCall("+15550007777", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	if got := h.postSignedForm("conference", conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")); got != http.StatusOK {
		t.Fatalf("conference callback: %d", got)
	}
	h.waitRecovery(conferenceSID, func(*v1alpha1.ConferenceRecovery) error { return nil })
	agentLeg := newSID("CA")
	h.disconnect(conferenceSID, agentLeg)

	t0 := sim.Now().Truncate(time.Second)
	pingTask, reconnectTask, otherPing := newSID("WT"), newSID("WT"), newSID("WT")
	pingAttrs := incidentAttrs(recovery.TaskRolePing, conferenceSID, agentLeg, map[string]any{"disconnectedWorkerSid": h.cc.Workers["alice"]})
	reconnectAttrs := incidentAttrs(recovery.TaskRoleReconnect, conferenceSID, agentLeg, map[string]any{"isReconnect": true})
	worker := h.cc.Workers["alice"]
	batch := []any{
		// Newest first: the handler sorts by time.
		h.taskEvent("task.canceled", pingTask, "", t0.Add(5*time.Second), pingAttrs, "Task TTL Exceeded"),
		h.taskEvent("reservation.accepted", pingTask, worker, t0.Add(2*time.Second), pingAttrs, ""),
		map[string]any{"id": newSID("EZ"), "data": map[string]any{}}, // no type: undecodable
		h.taskEvent("task-queue.entered", reconnectTask, "", t0.Add(3*time.Second), reconnectAttrs, ""),
		h.taskEvent("task.created", pingTask, "", t0.Add(time.Second), pingAttrs, ""),
		h.taskEvent("reservation.accepted", otherPing, worker, t0.Add(4*time.Second), pingAttrs, ""),   // another ping task
		h.taskEvent("task.canceled", placed.TaskSID, "", t0.Add(4*time.Second), pingAttrs, "whatever"), // the original task
		h.taskEvent("task.created", newSID("WT"), "", t0, map[string]any{"type": "inbound"}, ""),       // of no interest
	}
	body := mustJSON(t, batch)
	malformedBefore := webhookserver.EventsTotal("events", "other", "malformed")
	if got := h.postSignedJSON("events", body); got != http.StatusOK {
		t.Fatalf("batch: status %d, want 200", got)
	}
	if got := webhookserver.EventsTotal("events", "other", "malformed") - malformedBefore; got != 1 {
		t.Errorf("malformed events counted %v, want 1", got)
	}
	rec := h.recovery(conferenceSID)
	ping := rec.Status.Ping
	if ping == nil || ping.TaskSID != pingTask || ping.Outcome != v1alpha1.PingAccepted || ping.ResolvedAt == nil || !ping.ResolvedAt.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("ping = %+v, want accepted at %s (the first outcome; the later TTL cancel ignored)", ping, t0.Add(2*time.Second))
	}
	rc := rec.Status.Reconnect
	if rc == nil || rc.TaskSID != reconnectTask || rc.QueuedAt == nil || !rc.QueuedAt.Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("reconnect = %+v", rc)
	}

	dupsBefore := webhookserver.DuplicatesTotal("events")
	if got := h.postSignedJSON("events", body); got != http.StatusOK {
		t.Fatalf("redelivered batch: status %d, want 200", got)
	}
	if got := webhookserver.DuplicatesTotal("events") - dupsBefore; got != 7 {
		t.Errorf("duplicates counted %v, want 7", got)
	}
	if again := h.recovery(conferenceSID); again.ResourceVersion != rec.ResourceVersion {
		t.Errorf("a redelivered batch was written")
	}

	if got := h.postSignedJSON("events", `[{"id":"EZ1"},{"type":"x"}]`); got != http.StatusBadRequest {
		t.Errorf("batch of undecodable events: status %d, want 400", got)
	}
	if got := h.postSignedJSON("events", `not json`); got != http.StatusBadRequest {
		t.Errorf("not JSON: status %d, want 400", got)
	}

	// The store fails: 503 and nothing kept; the redelivery is processed.
	accepted := mustJSON(t, []any{
		h.taskEvent("reservation.accepted", reconnectTask, worker, t0.Add(6*time.Second), reconnectAttrs, ""),
		h.taskEvent("task.canceled", reconnectTask, "", t0.Add(7*time.Second), reconnectAttrs, "hangup"),
	})
	failing.Store(true)
	if got := h.postSignedJSON("events", accepted); got != http.StatusServiceUnavailable {
		t.Fatalf("while the store fails: status %d, want 503", got)
	}
	failing.Store(false)
	if rc := h.recovery(conferenceSID).Status.Reconnect; rc.AcceptedAt != nil {
		t.Fatalf("stored although the write failed: %+v", rc)
	}
	if got := h.postSignedJSON("events", accepted); got != http.StatusOK {
		t.Fatalf("redelivery: status %d, want 200", got)
	}
	rc = h.recovery(conferenceSID).Status.Reconnect
	if rc.WorkerSID != worker || rc.AcceptedAt == nil || rc.CanceledAt != nil {
		t.Errorf("reconnect = %+v, want accepted by %s and not canceled (canceled after acceptance)", rc, worker)
	}

	// An event for a conference without a recovery is acknowledged.
	orphan := mustJSON(t, h.taskEvent("reservation.accepted", newSID("WT"), worker, t0, map[string]any{"disconnectedConferenceSid": newSID("CF")}, ""))
	if got := h.postSignedJSON("events", orphan); got != http.StatusOK {
		t.Errorf("event of a conference without recovery: status %d, want 200", got)
	}
}

// TestLegacyTaskRouterCallbacks uses the workspace's legacy EventCallbackUrl: the ping task's TTL
// runs out (the simulator's clock is advanced) and the recovery records TimedOut.
func TestLegacyTaskRouterCallbacks(t *testing.T) {
	h := newHarness(t, harnessOptions{legacyCallbacks: true})
	placed, conferenceSID, agent := h.call("Voice")
	h.waitRecovery(conferenceSID, func(*v1alpha1.ConferenceRecovery) error { return nil })
	h.disconnect(conferenceSID, agent.CallSID)
	pingAttrs, _ := json.Marshal(incidentAttrs(recovery.TaskRolePing, conferenceSID, agent.CallSID, map[string]any{
		"disconnectedWorkerSid": agent.WorkerSID, "disconnectedTaskSid": placed.TaskSID}))
	ttl := 15
	ping, err := h.twilio.CreateTask(context.Background(), h.cc.WorkspaceSID, twilio.TaskCreate{
		WorkflowSID: h.cc.Workflows["Nowhere"], TaskChannel: "default", Attributes: string(pingAttrs), Timeout: &ttl})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Duration(ttl+1) * time.Second)
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if p := rec.Status.Ping; p == nil || p.TaskSID != ping.SID || p.Outcome != v1alpha1.PingTimedOut {
			return fmt.Errorf("ping = %+v", rec.Status.Ping)
		}
		return nil
	})
	h.waitDelivered("legacy:" + h.url("taskrouter"))

	// A legacy callback that does not decode is refused; a redelivered one is acknowledged.
	if got := h.postSignedForm("taskrouter", url.Values{"EventType": {"task.created"}}); got != http.StatusBadRequest {
		t.Errorf("undecodable legacy callback: status %d, want 400", got)
	}
	form := url.Values{"Sid": {newSID("EV")}, "EventType": {"task.created"}, "WorkspaceSid": {h.cc.WorkspaceSID},
		"Timestamp": {strconv.FormatInt(sim.Now().Unix(), 10)}, "TaskSid": {newSID("WT")}, "TaskAttributes": {"{}"}}
	for range 2 {
		if got := h.postSignedForm("taskrouter", form); got != http.StatusNoContent {
			t.Errorf("legacy callback: status %d, want 204", got)
		}
	}
}
