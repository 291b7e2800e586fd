package webhookserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// TestFlexCheck is the companion's start-up check: an agent's token is accepted and named, a
// missing, made-up or revoked token is refused (the plugin then warns the agent), and nothing is
// written.
func TestFlexCheck(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	worker := h.cc.Workers["alice"]
	code, body := h.flex(http.MethodGet, "/check", sim.IssueFlexToken(worker), "")
	if code != http.StatusOK {
		t.Fatalf("check with alice's token: %d %s", code, body)
	}
	var got webhookserver.CheckResponse
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Policy != policyName || got.WorkerSID != worker || got.Privileged {
		t.Errorf("check = %+v, want policy %s, worker %s, not privileged", got, policyName, worker)
	}
	if code, body := h.flex(http.MethodGet, "/check", sim.IssueFlexToken(worker, "supervisor"), ""); code != http.StatusOK {
		t.Errorf("check with a supervisor's token: %d %s", code, body)
	}
	revoked := sim.IssueFlexToken(worker)
	sim.RevokeFlexToken(revoked)
	for name, token := range map[string]string{"no token": "", "made-up token": "not-a-flex-token", "revoked token": revoked} {
		want := http.StatusForbidden
		if token == "" {
			want = http.StatusUnauthorized
		}
		if code, body := h.flex(http.MethodGet, "/check", token, ""); code != want {
			t.Errorf("check with %s: %d %s, want %d", name, code, body, want)
		}
	}
}

// TestGracefulMarksCounted: every graceful mark is counted by outcome, so that refused and failed
// marks (deliberate hang-ups that will be taken for outages) can be alerted on.
func TestGracefulMarksCounted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, conferenceSID, agent := h.call("Voice")
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, agent.CallSID); !ok {
			return errors.New("agent leg missing")
		}
		return nil
	})
	before := map[string]float64{}
	for _, o := range []string{"marked", "refused", "invalid", "nothing_to_mark"} {
		before[o] = webhookserver.GracefulMarksTotal(o)
	}
	mark := fmt.Sprintf(`{"conferenceSid": %q, "callSid": %q}`, conferenceSID, agent.CallSID)
	for _, tc := range []struct {
		token, body string
		want        int
	}{
		{"not-a-flex-token", mark, http.StatusForbidden},
		{sim.IssueFlexToken(agent.WorkerSID), `{"conferenceSid": "CF1"}`, http.StatusBadRequest},
		{sim.IssueFlexToken(agent.WorkerSID), fmt.Sprintf(`{"conferenceSid": "CF%032x"}`, 7), http.StatusNotFound},
		{sim.IssueFlexToken(agent.WorkerSID), mark, http.StatusOK},
	} {
		if code, body := h.flex(http.MethodPost, "/graceful", tc.token, tc.body); code != tc.want {
			t.Fatalf("mark %s: %d %s, want %d", tc.body, code, body, tc.want)
		}
	}
	for outcome, want := range map[string]float64{"marked": 1, "refused": 1, "invalid": 1, "nothing_to_mark": 1} {
		if got := webhookserver.GracefulMarksTotal(outcome) - before[outcome]; got != want {
			t.Errorf("graceful marks %s: +%v, want +%v", outcome, got, want)
		}
	}
}
