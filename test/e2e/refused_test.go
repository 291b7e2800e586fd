package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// Twilio sends each conference callback once, whatever happens to it. The tests of this file fail
// the delivery of the callback that starts a recovery, the agent's leave, and check that the call
// is recovered all the same, with the simulator delivering every callback once.

// The leave callback never reaches the operator (the connection is cut, as during a network blip
// or a load balancer's restart): the operator cannot know, and the resync, reading the conference
// from Twilio's REST API once the recovery has stood still for --recovery-resync-after, finds the
// agent gone and recovers the call.
func TestRefusedLeaveRecoveredByTheResync(t *testing.T) {
	unreachableAtTimes(t)
	c := newCentre(t, scenario.CentreOptions{Name: "cutleave", Agents: []string{"alice"}})
	call := answerWhileAway(t, c, "alice")
	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	var cuts atomic.Int32
	cut := func(f url.Values) bool {
		if f.Get("ConferenceSid") == call.ConferenceSID && f.Get("StatusCallbackEvent") == "participant-leave" &&
			f.Get("CallSid") == aliceLeg.CallSID {
			cuts.Add(1)
			return true
		}
		return false
	}
	effects.cut.Store(&cut)
	t.Cleanup(func() { effects.cut.Store(nil) })
	before := env.Sim.Deliveries().Destination("callback:" + c.ConferenceCallbackURL())

	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	must(t, env.Sim.Accept(reconnectReservation(t, c, "alice").SID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if d := rec.Status.Disconnect; d == nil || d.CallSID != aliceLeg.CallSID {
		t.Errorf("disconnect %+v, want alice's leg %s", d, aliceLeg.CallSID)
	}
	// The leave was tried once and refused; nothing was sent twice.
	after := env.Sim.Deliveries().Destination("callback:" + c.ConferenceCallbackURL())
	if n := cuts.Load(); n != 1 {
		t.Errorf("the leave was sent %d times, want once", n)
	}
	if lost, retries := after.Unreachable-before.Unreachable, after.Retries-before.Retries; lost != 1 || retries != 0 {
		t.Errorf("callbacks lost %d and retried %d during the recovery, want 1 and 0", lost, retries)
	}
}

// The leave reaches the operator while the API server refuses to store it (503, twice): the
// webhook server tries again in-process, so the callback is answered 200 (newCentre's check) and
// the recovery starts from it, with nothing sent twice.
func TestAPIServerFailureOnLeaveOutlastedInProcess(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "apileave", Agents: []string{"alice"}})
	call := answerWhileAway(t, c, "alice")
	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	statusPath := "/namespaces/" + c.Namespace + "/conferencerecoveries/" + strings.ToLower(call.ConferenceSID) + "/status"
	// The first writes that record alice's leave can only be the webhook server's: the controller
	// learns of the leave from the written status.
	operatorAPI.arm(2, func(method, path string, body []byte) bool {
		return method == http.MethodPut && strings.HasSuffix(path, statusPath) && recordsLeave(body, aliceLeg.CallSID)
	})
	t.Cleanup(func() { operatorAPI.disarm() })
	retriesBefore := counterValue(t, "flexoperator_webhook_store_retries_total")
	before := env.Sim.Deliveries().Destination("callback:" + c.ConferenceCallbackURL())

	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	must(t, env.Sim.Accept(reconnectReservation(t, c, "alice").SID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if d := rec.Status.Disconnect; d == nil || d.CallSID != aliceLeg.CallSID {
		t.Errorf("disconnect %+v, want alice's leg %s", d, aliceLeg.CallSID)
	}
	if n := operatorAPI.disarm(); n != 2 {
		t.Fatalf("the API server refused %d writes of the leave, want 2: the test proves nothing", n)
	}
	if got := counterValue(t, "flexoperator_webhook_store_retries_total") - retriesBefore; got < 2 {
		t.Errorf("the webhook server tried the leave again %v times, want at least 2", got)
	}
	after := env.Sim.Deliveries().Destination("callback:" + c.ConferenceCallbackURL())
	if after.Retries != before.Retries || after.Refused != before.Refused {
		t.Errorf("callbacks retried %d and refused %d during the recovery, want none",
			after.Retries-before.Retries, after.Refused-before.Refused)
	}
}

// recordsLeave reports whether a ConferenceRecovery body shows the leg as having left.
func recordsLeave(body []byte, callSID string) bool {
	var rec v1alpha1.ConferenceRecovery
	if json.Unmarshal(body, &rec) != nil {
		return false
	}
	for _, p := range rec.Status.Participants {
		if p.CallSID == callSID && p.LeftAt != nil {
			return true
		}
	}
	return false
}

// counterValue reads a counter without labels from the operator's metrics registry (the operator
// runs in this process).
func counterValue(t *testing.T, name string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	must(t, err)
	for _, f := range families {
		if f.GetName() == name {
			total := 0.0
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
			return total
		}
	}
	return 0
}
