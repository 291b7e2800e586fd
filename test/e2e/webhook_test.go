package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// Scenario 4a: the Flex companion marks the agent's hang-up as graceful before her leg leaves:
// no recovery, and the call ends normally.
func TestCompanionGracefulMark(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "graceful", Agents: []string{"alice"}})
	ctx := context.Background()
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	answered(t, c, call, "alice")

	body, _ := json.Marshal(map[string]string{"conferenceSid": call.ConferenceSID})
	markURL := fmt.Sprintf("%s/flex/%s/%s/graceful", env.WebhookURL, c.Namespace, c.Policy)
	// A made-up token is refused and marks nothing.
	if code := postJSON(t, markURL, "not-a-flex-token", body); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("graceful mark with a bad token: %d, want 401 or 403", code)
	}
	token := env.Sim.IssueFlexToken(c.Worker("alice"), "agent")
	if code := postJSON(t, markURL, token, body); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("graceful mark: %d", code)
	}
	// The leg then drops the way a refresh would; the mark makes it graceful.
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	rec, err := c.WaitRecovery(ctx, call.ConferenceSID, "alice's graceful leave", func(r *v1alpha1.ConferenceRecovery) bool {
		return agentsConnected(r) == 0 && r.Status.Phase == v1alpha1.PhaseMonitoring
	})
	must(t, err)
	if rec.Status.Disconnect != nil {
		t.Errorf("a marked leave started a recovery: %+v", rec.Status.Disconnect)
	}
	must(t, env.Sim.CustomerHangup(call.CustomerCallSID))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseEnded)
	if n := countTasks(c, scenario.IsPingTask); n != 0 {
		t.Errorf("ping tasks = %d, want 0", n)
	}
}

// Scenario 4b: the agent presses Hang Up: Flex ends the conference through the API, a graceful
// reason: Ended, no ping.
func TestHangUpThroughTheAPIEndsTheCall(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "hangup", Agents: []string{"alice"}})
	ctx := context.Background()
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	answered(t, c, call, "alice")
	must(t, env.Sim.Hangup(c.Worker("alice")))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseEnded)
	if rec.Status.Disconnect != nil || countTasks(c, scenario.IsPingTask) != 0 {
		t.Errorf("a graceful hang-up started a recovery: %+v", rec.Status)
	}
}

// Scenario 9: requests without a valid signature get 403 and change nothing; an oversized body
// gets 413.
func TestWebhookRejectsForgedAndOversizedRequests(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "forged", Agents: []string{"alice"}})
	ctx := context.Background()
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	answered(t, c, call, "alice")
	before, err := c.Recovery(ctx, call.ConferenceSID)
	must(t, err)
	agentLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))

	// A forged "the agent left" for the real conference, and a forged first event of a new one.
	leave := url.Values{
		"AccountSid": {env.Sim.AccountSID()}, "ConferenceSid": {call.ConferenceSID}, "FriendlyName": {call.TaskSID},
		"StatusCallbackEvent": {"participant-leave"}, "CallSid": {agentLeg.CallSID}, "SequenceNumber": {"999"},
		"Timestamp": {"Mon, 23 Nov 2026 10:00:00 +0000"}, "ParticipantLabel": {"worker"}, "ReasonParticipantLeft": {"participant_hung_up"},
	}
	other := url.Values{}
	for k, v := range leave {
		other[k] = v
	}
	other.Set("ConferenceSid", "CF"+strings.Repeat("ab", 16))
	target := c.ConferenceCallbackURL()
	for name, tc := range map[string]struct {
		form url.Values
		sig  string
	}{
		"missing signature":        {leave, ""},
		"signature of another key": {leave, events.SignForm(strings.Repeat("0", 32), target, leave)},
		"signature of another URL": {leave, events.SignForm(env.Sim.AuthToken(), target+"?x=1", leave)},
		"new conference, unsigned": {other, ""},
	} {
		req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(tc.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.sig != "" {
			req.Header.Set("X-Twilio-Signature", tc.sig)
		}
		if code := do(t, req); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if _, err := c.Recovery(ctx, "CF"+strings.Repeat("ab", 16)); err == nil {
		t.Errorf("a forged event created a ConferenceRecovery")
	}

	// Oversized: well over the 1 MiB cap, correctly signed.
	big := url.Values{}
	for k, v := range leave {
		big[k] = v
	}
	big.Set("Padding", strings.Repeat("x", 2<<20))
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(big.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", events.SignForm(env.Sim.AuthToken(), target, big))
	if code := do(t, req); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", code)
	}
	// Event Streams route: an unsigned batch is refused too.
	evURL := fmt.Sprintf("%s/twilio/%s/%s/events", env.WebhookURL, c.Namespace, c.Policy)
	req, _ = http.NewRequest(http.MethodPost, evURL, bytes.NewReader([]byte(`[]`)))
	req.Header.Set("Content-Type", "application/json")
	if code := do(t, req); code != http.StatusForbidden {
		t.Errorf("unsigned Event Streams batch: %d, want 403", code)
	}

	after, err := c.Recovery(ctx, call.ConferenceSID)
	must(t, err)
	if after.Status.Phase != v1alpha1.PhaseMonitoring || agentsConnected(after) != 1 || after.Status.LastSequenceNumber == 999 {
		t.Errorf("forged requests changed the recovery: before %+v, after %+v", before.Status, after.Status)
	}
	if n := countTasks(c, scenario.IsPingTask); n != 0 {
		t.Errorf("ping tasks = %d, want 0", n)
	}
}

// Scenario 10: Flex resets endConferenceOnExit to true whenever two or fewer parties remain; the
// operator sets it back every time, and that is what keeps the customer on the line when the
// agent's page refreshes.
func TestEndConferenceOnExitResetCorrectedEveryTime(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "eoe", Agents: []string{"alice"}})
	ctx := context.Background()
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	answered(t, c, call, "alice")
	// A third party joins (Flex sets the flag false with three) and leaves (Flex sets it true again).
	third, err := env.Sim.DialThirdParty(call.ConferenceSID, "+15557770002")
	must(t, err)
	must(t, env.Sim.CustomerHangup(third))
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "third party left", func(r *v1alpha1.ConferenceRecovery) bool {
		for _, p := range r.Status.Participants {
			if p.CallSID == third {
				return p.LeftAt != nil
			}
		}
		return false
	})
	must(t, err)
	answered(t, c, call, "alice")
	// Each reset got its own correction request to Twilio, made on receipt of the callback by the
	// webhook server, which records the leg as corrected: the controller has nothing left to do.
	if n := effects.countFor("correction", call.ConferenceSID); n < 2 {
		t.Errorf("correction requests for the conference = %d, want one per Flex reset (2)", n)
	}
	rec, err := c.Recovery(ctx, call.ConferenceSID)
	must(t, err)
	agentLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	for _, p := range rec.Status.Participants {
		if p.CallSID == agentLeg.CallSID && p.EndConferenceOnExit {
			t.Errorf("the agent's leg shows endConferenceOnExit true in status after the corrections: %+v", p)
		}
	}
	for _, a := range rec.Status.Actions {
		if strings.HasPrefix(a.Name, "EndConferenceOnExit/") && a.State == v1alpha1.ActionPending {
			t.Errorf("a correction is still pending: %+v", a)
		}
	}
	// The refresh: the customer's call survives it and the recovery starts.
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	cust, _ := env.Sim.Snapshot().Call(call.CustomerCallSID)
	if cust.Status != "in-progress" {
		t.Errorf("customer call is %s after the agent's refresh, want in-progress", cust.Status)
	}
}

func postJSON(t *testing.T, target, token string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
