package webhookserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
)

// TestReconnectRefusalRecorded: the agent a reconnect task is routed to rejecting its offer, or
// letting it time out, is recorded on the recovery (the controller then routes the customer to
// anyone at once); another agent's refusal, and a later one, change nothing.
func TestReconnectRefusalRecorded(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	placed, err := sim.PlaceCall("+15550007778", h.cc.Workflows["Voice"], nil)
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
	alice, bob := h.cc.Workers["alice"], h.cc.Workers["bob"]
	// The controller's enqueue routed the customer back to alice.
	eventually(t, 10*time.Second, func() error {
		rec := h.recovery(conferenceSID)
		enqueued := metav1.NewTime(sim.Now().Truncate(time.Second))
		rec.Status.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: alice, EnqueuedAt: &enqueued}
		return k8sClient.Status().Update(context.Background(), rec)
	})

	t0 := sim.Now().Truncate(time.Second)
	reconnectTask := newSID("WT")
	attrs := incidentAttrs(recovery.TaskRoleReconnect, conferenceSID, agentLeg, map[string]any{"targetWorkerSid": alice})
	post := func(batch ...any) {
		t.Helper()
		if got := h.postSignedJSON("events", mustJSON(t, batch)); got != http.StatusOK {
			t.Fatalf("events: status %d", got)
		}
	}
	post(h.taskEvent("reservation.rejected", reconnectTask, bob, t0.Add(time.Second), attrs, ""))
	if rc := h.recovery(conferenceSID).Status.Reconnect; rc.TargetRefusedAt != nil {
		t.Fatalf("another agent's refusal recorded: %+v", rc)
	}
	post(h.taskEvent("reservation.timeout", reconnectTask, alice, t0.Add(2*time.Second), attrs, ""),
		h.taskEvent("reservation.rejected", reconnectTask, alice, t0.Add(3*time.Second), attrs, ""))
	rc := h.recovery(conferenceSID).Status.Reconnect
	if rc.TargetRefusedAt == nil || !rc.TargetRefusedAt.Time.Equal(t0.Add(2*time.Second)) || rc.TargetRefusal != "timeout" || rc.TaskSID != reconnectTask {
		t.Errorf("reconnect = %+v, want alice's timeout at %s on %s (the first refusal)", rc, t0.Add(2*time.Second), reconnectTask)
	}
}
