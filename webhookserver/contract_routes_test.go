package webhookserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// TestPluginContractRoutes plays the plugin's part of a call against the real routes: Flex accepts
// the reservation with the conference options the plugin sets (through the real twilio-go client,
// to the simulator, which then calls the URL the plugin built), the operator's route accepts the
// signed callbacks and starts monitoring the conference; then the plugin's graceful mark, exactly
// as the contract describes it, is accepted and marks the agent's leg.
func TestPluginContractRoutes(t *testing.T) {
	c := readPluginContract(t)
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	ctx := context.Background()

	callbackURL := h.base + fill(t, routePath(t, c.ConferenceCallback.Route, http.MethodPost),
		map[string]string{"namespace": h.ns, "policy": policyName})
	if c.ConferenceCallback.ConferenceOptions["url"] != "conferenceStatusCallback" ||
		c.ConferenceCallback.ConferenceOptions["events"] != "conferenceStatusCallbackEvent" {
		t.Fatalf("conference options %v: Flex passes conferenceStatusCallback and conferenceStatusCallbackEvent to the reservation's conference instruction", c.ConferenceCallback.ConferenceOptions)
	}
	// Flex sends the events as the one string the plugin sets.
	events := strings.Join(c.ConferenceCallback.Events, c.ConferenceCallback.EventSeparator)

	placed, err := sim.PlaceCall("+15550001111", h.cc.Workflows["Voice"], map[string]any{"type": "inbound"})
	if err != nil {
		t.Fatal(err)
	}
	var res string
	eventually(t, 10*time.Second, func() error {
		for _, r := range sim.Snapshot().Reservations(placed.TaskSID) {
			if r.Status == "pending" {
				res = r.SID
				return nil
			}
		}
		return errors.New("no pending reservation yet")
	})
	conference := "conference"
	if _, err := h.twilio.UpdateReservation(ctx, h.cc.WorkspaceSID, placed.TaskSID, res, twilio.ReservationUpdate{
		Instruction:                   &conference,
		ConferenceStatusCallback:      &callbackURL,
		ConferenceStatusCallbackEvent: []string{events},
	}); err != nil {
		t.Fatalf("accept with the plugin's conference options: %v", err)
	}
	task, ok := sim.Snapshot().Task(placed.TaskSID)
	if !ok || task.ConferenceSID == "" {
		t.Fatalf("no conference after the accept:\n%s", sim.Dump())
	}
	var agent string
	for _, r := range sim.Snapshot().Reservations(placed.TaskSID) {
		if r.SID == res {
			agent = r.WorkerSID
		}
	}
	var agentCall string
	h.waitRecovery(task.ConferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("the customer's join has not been recorded")
		}
		i := slices.IndexFunc(rec.Status.Participants, func(p v1alpha1.ParticipantStatus) bool { return p.Role == v1alpha1.RoleAgent })
		if i < 0 {
			return errors.New("the agent's join has not been recorded")
		}
		agentCall = rec.Status.Participants[i].CallSID
		return nil
	})

	// The graceful mark, built from the contract with the agent's Flex token.
	values := map[string]string{
		"namespace": h.ns, "policy": policyName, "token": sim.IssueFlexToken(agent),
		"conferenceSid": task.ConferenceSID, "callSid": agentCall,
	}
	body := map[string]string{}
	for k, v := range c.Graceful.Body {
		body[k] = fill(t, v, values)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.base+fill(t, routePath(t, c.Graceful.Route, http.MethodPost), values), strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Graceful.Headers {
		req.Header.Set(k, fill(t, v, values))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var marked webhookserver.GracefulResponse
	if resp.StatusCode != c.Graceful.OKStatus {
		t.Fatalf("graceful mark: %d, the plugin expects %d", resp.StatusCode, c.Graceful.OKStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(&marked); err != nil || !slices.Equal(marked.Marked, []string{agentCall}) {
		t.Errorf("graceful answer %+v (%v), want the leg %s marked", marked, err, agentCall)
	}
	if leg, _ := participant(h.recovery(task.ConferenceSID), agentCall); !leg.Graceful {
		t.Errorf("the agent's leg is not graceful after the mark: %+v", leg)
	}
}
