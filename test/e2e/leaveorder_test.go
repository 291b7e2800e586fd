package e2e

import (
	"context"
	"testing"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// Issue 17, defect 4: during a warm transfer alice hangs up (Flex removes her leg through the API:
// graceful) and, in the same second, bob's page dies (non-graceful). The simulator's clock stands
// still, so both leaves carry the same whole-second timestamp; only their sequence numbers say
// that bob's came last. The customer, now alone, is recovered to bob.
func TestTwoAgentsLeaveInTheSameSecond(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "samesecond", Agents: []string{"alice", "bob"}})
	ctx := context.Background()
	call := answerWhileAway(t, c, "alice", "bob")
	transfer, err := env.Sim.WarmTransfer(c.Worker("alice"), c.Worker("bob"))
	must(t, err)
	must(t, env.Sim.Accept(transfer))
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "bob joined", func(rec *v1alpha1.ConferenceRecovery) bool {
		return agentsConnected(rec) == 2
	})
	must(t, err)

	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	bobLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("bob"))

	must(t, env.Sim.Hangup(c.Worker("alice")))
	// With two parties left Flex sets endConferenceOnExit on bob's leg; the operator resets it
	// (no time passes), then bob's page dies.
	answered(t, c, call, "bob")
	must(t, env.Sim.RefreshPage(c.Worker("bob")))

	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	if d := rec.Status.Disconnect; d == nil || d.WorkerSID != c.Worker("bob") {
		t.Fatalf("disconnect = %+v, want bob's", d)
	}
	// The premise: the two leaves are in one second, the graceful one first.
	var alice, bob *v1alpha1.ParticipantStatus
	for i, p := range rec.Status.Participants {
		switch p.CallSID {
		case aliceLeg.CallSID:
			alice = &rec.Status.Participants[i]
		case bobLeg.CallSID:
			bob = &rec.Status.Participants[i]
		}
	}
	if alice == nil || bob == nil || alice.LeftAt == nil || bob.LeftAt == nil {
		t.Fatalf("legs not recorded: %+v", rec.Status.Participants)
	}
	if !alice.LeftAt.Equal(bob.LeftAt) || !alice.Graceful || bob.Graceful || alice.LeftSequenceNumber >= bob.LeftSequenceNumber {
		t.Fatalf("not the case under test: alice %+v, bob %+v", *alice, *bob)
	}

	must(t, env.Sim.Accept(pingReservation(t, c, "bob").SID))
	must(t, env.Sim.Accept(reconnectReservation(t, c, "bob").SID))
	rec = waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if rc := rec.Status.Reconnect; rc.Fallback || rc.WorkerSID != c.Worker("bob") {
		t.Errorf("reconnect = %+v, want bob without fallback", rc)
	}
}
