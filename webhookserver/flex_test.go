package webhookserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// flex sends a companion request and returns the status and body.
func (h *harness) flex(method, path, token, body string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+"/flex/"+h.ns+"/"+policyName+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFlexCompanion marks an agent's hangup graceful and reads the recovery with a Flex token:
// the mark finds the agent's leg through the task (its callback label names no worker) and
// survives the leave that follows; bad tokens, bodies and conferences are refused.
func TestFlexCompanion(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	placed, conferenceSID, agent := h.call("Voice")
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, agent.CallSID); !ok {
			return errors.New("agent leg missing")
		}
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("customer leg missing")
		}
		return nil
	})
	token := sim.IssueFlexToken(agent.WorkerSID)
	other := h.cc.Workers["bob"]
	if other == agent.WorkerSID {
		other = h.cc.Workers["alice"]
	}
	otherToken := sim.IssueFlexToken(other)

	code, body := h.flex(http.MethodGet, "/recoveries/"+conferenceSID, token, "")
	if code != http.StatusOK {
		t.Fatalf("GET recovery: %d %s", code, body)
	}
	var summary webhookserver.RecoverySummary
	if err := json.Unmarshal([]byte(body), &summary); err != nil {
		t.Fatal(err)
	}
	if summary.ConferenceSID != conferenceSID || summary.TaskSID != placed.TaskSID || summary.Phase != v1alpha1.PhaseMonitoring ||
		len(summary.Participants) != 2 || summary.CustomerCallSID != placed.CallSID {
		t.Errorf("summary = %+v", summary)
	}

	refusals := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"GET without a token", http.MethodGet, "/recoveries/" + conferenceSID, "", "", http.StatusUnauthorized},
		{"GET with a bad token", http.MethodGet, "/recoveries/" + conferenceSID, "eyJnot-a-token", "", http.StatusForbidden},
		{"GET an unknown conference", http.MethodGet, "/recoveries/" + newSID("CF"), token, "", http.StatusNotFound},
		{"GET a malformed SID", http.MethodGet, "/recoveries/CF123", token, "", http.StatusBadRequest},
		{"mark without a token", http.MethodPost, "/graceful", "", `{"conferenceSid":"` + conferenceSID + `"}`, http.StatusUnauthorized},
		{"mark with a bad token", http.MethodPost, "/graceful", "eyJnot-a-token", `{"conferenceSid":"` + conferenceSID + `"}`, http.StatusForbidden},
		{"mark with a bad body", http.MethodPost, "/graceful", token, `{"conferenceSid":42}`, http.StatusBadRequest},
		{"mark with two objects", http.MethodPost, "/graceful", token, `{"conferenceSid":"` + conferenceSID + `"}{}`, http.StatusBadRequest},
		{"mark an unknown conference", http.MethodPost, "/graceful", token, `{"conferenceSid":"` + newSID("CF") + `"}`, http.StatusNotFound},
		{"mark by a worker without a leg", http.MethodPost, "/graceful", otherToken, `{"conferenceSid":"` + conferenceSID + `"}`, http.StatusConflict},
		// Defect 4 of issue 9: the agent's leg does not carry her worker SID yet; another
		// worker's token still may not mark it, nor read the call's SIDs.
		{"mark the agent's leg with another worker's token", http.MethodPost, "/graceful", otherToken,
			`{"conferenceSid":"` + conferenceSID + `","callSid":"` + agent.CallSID + `"}`, http.StatusForbidden},
		{"mark a call that is not in the conference", http.MethodPost, "/graceful", token,
			`{"conferenceSid":"` + conferenceSID + `","callSid":"` + newSID("CA") + `"}`, http.StatusConflict},
		{"GET by a worker not on the call", http.MethodGet, "/recoveries/" + conferenceSID, otherToken, "", http.StatusNotFound},
	}
	for _, r := range refusals {
		if code, body := h.flex(r.method, r.path, r.token, r.body); code != r.want {
			t.Errorf("%s: %d %s, want %d", r.name, code, body, r.want)
		}
	}
	if rec := h.recovery(conferenceSID); len(rec.Status.Participants) != 2 ||
		slices.ContainsFunc(rec.Status.Participants, func(p v1alpha1.ParticipantStatus) bool { return p.Graceful }) {
		t.Fatalf("a refused mark was stored: %+v", rec.Status.Participants)
	}

	// The agent's own mark, with no call SID: the task tells which leg is theirs.
	code, body = h.flex(http.MethodPost, "/graceful", token, `{"conferenceSid":"`+conferenceSID+`"}`)
	if code != http.StatusOK {
		t.Fatalf("mark: %d %s", code, body)
	}
	var marked webhookserver.GracefulResponse
	if err := json.Unmarshal([]byte(body), &marked); err != nil || !slices.Equal(marked.Marked, []string{agent.CallSID}) {
		t.Errorf("mark answer %s (%v), want the leg %s", body, err, agent.CallSID)
	}
	leg, _ := participant(h.recovery(conferenceSID), agent.CallSID)
	if !leg.Graceful || leg.WorkerSID != agent.WorkerSID {
		t.Errorf("leg after the mark: %+v", leg)
	}
	// Another worker may not mark this worker's leg; the token may also travel in the body.
	if code, body := h.flex(http.MethodPost, "/graceful", "", `{"conferenceSid":"`+conferenceSID+`","callSid":"`+agent.CallSID+`","token":"`+otherToken+`"}`); code != http.StatusForbidden {
		t.Errorf("another worker's mark: %d %s, want 403", code, body)
	}
	if code, body := h.flex(http.MethodPost, "/graceful", "", `{"conferenceSid":"`+conferenceSID+`","callSid":"`+agent.CallSID+`","token":"`+token+`"}`); code != http.StatusOK {
		t.Errorf("repeated mark with the token in the body: %d %s", code, body)
	}

	// The leave that follows stays graceful.
	if err := sim.RefreshPage(agent.WorkerSID); err != nil {
		t.Fatal(err)
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		leg, _ := participant(rec, agent.CallSID)
		if leg.LeftAt == nil {
			return errors.New("leave not recorded yet")
		}
		if !leg.Graceful {
			return fmt.Errorf("the leave undid the mark: %+v", leg)
		}
		return nil
	})

	// A supervisor may read the call.
	if code, body := h.flex(http.MethodGet, "/recoveries/"+conferenceSID, sim.IssueFlexToken(other, "supervisor"), ""); code != http.StatusOK {
		t.Errorf("GET by a supervisor: %d %s", code, body)
	}

	// The identity is remembered until the token expires by the operator's clock.
	sim.Advance(twiliosim.FlexTokenLifetime + time.Minute)
	if code, _ := h.flex(http.MethodGet, "/recoveries/"+conferenceSID, token, ""); code != http.StatusForbidden {
		t.Errorf("expired token: %d, want 403", code)
	}
}

// TestKnownFlexTokenIsServedFromAnAddressThatFailed: agents of one office reach the operator
// from one NAT address. One of them sending made-up tokens spends that address's failure budget:
// its unknown tokens then get 429 without a word to Twilio, but a token already known to be
// valid is still served, so the other agents' graceful marks and recovery reads go on.
func TestKnownFlexTokenIsServedFromAnAddressThatFailed(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, routes: func(o *webhookserver.RoutesOptions) {
		o.AuthFailureRate, o.AuthFailureBurst = 0.001, 3
	}})
	path := "/recoveries/" + newSID("CF")
	fromOffice := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.base+"/flex/"+h.ns+"/"+policyName+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", "192.0.2.50")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	alice := sim.IssueFlexToken(h.cc.Workers["alice"])
	if got := fromOffice(alice); got != http.StatusNotFound {
		t.Fatalf("alice's token: %d, want 404 (checked, no such recovery)", got)
	}
	for i, want := range []int{http.StatusForbidden, http.StatusForbidden, http.StatusForbidden, http.StatusTooManyRequests} {
		if got := fromOffice(fmt.Sprintf("eyJoffice%d", i)); got != want {
			t.Errorf("made-up token %d: %d, want %d", i, got, want)
		}
	}
	if got := fromOffice(alice); got != http.StatusNotFound {
		t.Errorf("alice's known token from the office after its budget was spent: %d, want 404", got)
	}
	if got := fromOffice("eyJofficeLater"); got != http.StatusTooManyRequests {
		t.Errorf("an unknown token from the office after its budget was spent: %d, want 429", got)
	}
}

// TestFlexTokenValidationIsRateLimited checks that made-up tokens cannot spend the account's
// Twilio budget: beyond the burst, unknown tokens get 429 without being sent to Twilio.
func TestFlexTokenValidationIsRateLimited(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, routes: func(o *webhookserver.RoutesOptions) {
		o.FlexTokenRate, o.FlexTokenBurst = 0.001, 20
	}})
	path := "/recoveries/" + newSID("CF")
	// One client: five unknown tokens are checked with Twilio, the sixth is not.
	for i, want := range []int{http.StatusForbidden, http.StatusForbidden, http.StatusForbidden, http.StatusForbidden, http.StatusForbidden, http.StatusTooManyRequests} {
		if code, body := h.flex(http.MethodGet, path, fmt.Sprintf("eyJmadeup%d", i), ""); code != want {
			t.Errorf("token %d: %d %s, want %d", i, code, body, want)
		}
	}
	// A token already answered is not asked about again, so it is not limited.
	if code, _ := h.flex(http.MethodGet, path, "eyJmadeup0", ""); code != http.StatusForbidden {
		t.Errorf("known bad token: %d, want 403", code)
	}
	// Defect 7 of issue 9: one client's made-up tokens spend its own budget only; an agent
	// elsewhere still has her token checked.
	req, _ := http.NewRequest(http.MethodGet, h.base+"/flex/"+h.ns+"/"+policyName+path, nil)
	req.Header.Set("Authorization", "Bearer "+sim.IssueFlexToken(h.cc.Workers["alice"]))
	req.Header.Set("X-Forwarded-For", "192.0.2.44")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another client's valid token: %d, want 404 (checked, no such recovery)", resp.StatusCode)
	}
	// CORS preflight.
	code, _ := h.flex(http.MethodOptions, "/graceful", "", "")
	if code != http.StatusNoContent {
		t.Errorf("preflight: %d, want 204", code)
	}
}
