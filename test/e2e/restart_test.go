package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/controllers"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// withDefaultResync runs the operator, from its next start until the test ends, with the
// manager's default resync settings instead of the suite's 2 s, and restarts it with the suite's
// settings afterwards.
func withDefaultResync(t *testing.T) {
	t.Helper()
	previous := env.Override
	env.Override = func(o *app.Options) {
		if previous != nil {
			previous(o)
		}
		o.RecoveryResyncAfter, o.RecoveryResyncRate = controllers.DefaultResyncAfter, controllers.DefaultResyncRate
	}
	t.Cleanup(func() {
		env.Override = previous
		if err := env.StopOperator(); err != nil {
			t.Errorf("stop the operator: %v", err)
		}
		if err := env.StartOperator(); err != nil {
			t.Errorf("start the operator with the suite's settings: %v", err)
		}
	})
}

// inFlight is one call of the restart test: what happens to it while no operator runs, and what
// the restarted operator must have made of it.
type inFlight struct {
	name  string
	agent string
	call  scenario.Call
	// phase is where the recovery stands when the operator stops.
	phase v1alpha1.RecoveryPhase
	// whileDown is what happens to the call meanwhile.
	whileDown func(t *testing.T, c *scenario.Centre, f *inFlight)
	// acted says the restarted operator has acted on it.
	acted func(c *scenario.Centre, f *inFlight, rec *v1alpha1.ConferenceRecovery) bool
}

// Defect 1 of issue 17: after a restart every recovery in flight in the account is checked against
// Twilio promptly, at the manager's default resync settings, not one of them at once and the rest a
// resync period (a minute) later. Ten calls, one account, each in its own state when the operator
// stops; while no operator runs, something moves each of them on and its callbacks are lost. The
// restarted operator must act on every one well within the default resync period.
func TestRestartChecksEveryRecoveryPromptly(t *testing.T) {
	unreachableAtTimes(t)
	withDefaultResync(t)
	ctx := context.Background()
	var agents []string
	for i := range 10 {
		agents = append(agents, fmt.Sprintf("agent%d", i))
	}
	c := newCentre(t, scenario.CentreOptions{Name: "restart10", Agents: agents, Offline: []string{"sam"}})
	pinging := func(c *scenario.Centre, f *inFlight, rec *v1alpha1.ConferenceRecovery) bool {
		return rec.Status.Phase == v1alpha1.PhasePinging && rec.Status.Ping != nil && rec.Status.Ping.TaskSID != ""
	}
	ended := func(phase v1alpha1.RecoveryPhase) func(*scenario.Centre, *inFlight, *v1alpha1.ConferenceRecovery) bool {
		return func(_ *scenario.Centre, _ *inFlight, rec *v1alpha1.ConferenceRecovery) bool {
			return rec.Status.Phase == phase
		}
	}
	refresh := func(t *testing.T, c *scenario.Centre, f *inFlight) { must(t, env.Sim.RefreshPage(c.Worker(f.agent))) }
	customerHangsUp := func(t *testing.T, c *scenario.Centre, f *inFlight) {
		must(t, env.Sim.CustomerHangup(f.call.CustomerCallSID))
	}
	calls := []*inFlight{
		{name: "refreshed while down", phase: v1alpha1.PhaseMonitoring, whileDown: refresh, acted: pinging},
		{name: "refreshed while down, second", phase: v1alpha1.PhaseMonitoring, whileDown: refresh, acted: pinging},
		{name: "refreshed while down, third", phase: v1alpha1.PhaseMonitoring, whileDown: refresh, acted: pinging},
		{name: "customer hung up while down", phase: v1alpha1.PhaseMonitoring, whileDown: customerHangsUp,
			acted: ended(v1alpha1.PhaseEnded)},
		{name: "supervisor joined while down", phase: v1alpha1.PhaseMonitoring,
			whileDown: func(t *testing.T, c *scenario.Centre, f *inFlight) {
				_, err := env.Sim.Monitor(c.Worker("sam"), f.call.ConferenceSID)
				must(t, err)
				if leg, _ := c.AgentLeg(f.call.ConferenceSID, c.Worker(f.agent)); !leg.EndConferenceOnExit {
					t.Fatal("the simulated Flex did not reset endConferenceOnExit at the supervisor's join")
				}
			},
			acted: func(c *scenario.Centre, f *inFlight, rec *v1alpha1.ConferenceRecovery) bool {
				leg, ok := c.AgentLeg(f.call.ConferenceSID, c.Worker(f.agent))
				return ok && !leg.EndConferenceOnExit
			}},
		{name: "leave recorded, crashed before the ping", phase: v1alpha1.PhaseDisconnected,
			whileDown: func(t *testing.T, c *scenario.Centre, f *inFlight) {
				leg, ok := c.AgentLeg(f.call.ConferenceSID, c.Worker(f.agent))
				if !ok {
					t.Fatalf("%s has no leg in %s", f.agent, f.call.ConferenceSID)
				}
				must(t, env.Sim.RefreshPage(c.Worker(f.agent)))
				// Another replica's webhook server recorded the leave; the leader had recorded the
				// disconnect and stopped before its next step.
				crashState(t, c, f, leg.CallSID)
			},
			acted: pinging},
		{name: "ping accepted while down", phase: v1alpha1.PhasePinging,
			whileDown: func(t *testing.T, c *scenario.Centre, f *inFlight) {
				must(t, env.Sim.Accept(pingReservation(t, c, f.agent).SID))
			},
			acted: func(_ *scenario.Centre, _ *inFlight, rec *v1alpha1.ConferenceRecovery) bool {
				return rec.Status.Phase == v1alpha1.PhaseReconnecting && rec.Status.Reconnect != nil && rec.Status.Reconnect.EnqueuedAt != nil
			}},
		{name: "customer hung up while pinging", phase: v1alpha1.PhasePinging, whileDown: customerHangsUp,
			acted: ended(v1alpha1.PhaseAbandoned)},
		{name: "reconnect accepted while down", phase: v1alpha1.PhaseReconnecting,
			whileDown: func(t *testing.T, c *scenario.Centre, f *inFlight) {
				must(t, env.Sim.Accept(reconnectReservation(t, c, f.agent).SID))
			},
			acted: ended(v1alpha1.PhaseRecovered)},
		{name: "customer hung up while queued for the reconnect", phase: v1alpha1.PhaseReconnecting, whileDown: customerHangsUp,
			acted: ended(v1alpha1.PhaseAbandoned)},
	}
	// Every call is answered first, each by its own agent (the others still to answer are offline
	// until their turn), so that no later call lands on an agent freed by a recovery.
	for i, f := range calls {
		f.agent = agents[i]
		f.call = answerWhileAway(t, c, f.agent, agents[i+1:]...)
	}
	for _, f := range calls {
		switch f.phase {
		case v1alpha1.PhasePinging, v1alpha1.PhaseReconnecting:
			must(t, env.Sim.RefreshPage(c.Worker(f.agent)))
			pingReservation(t, c, f.agent)
			waitPhase(t, c, f.call.ConferenceSID, v1alpha1.PhasePinging)
		}
		if f.phase == v1alpha1.PhaseReconnecting {
			must(t, env.Sim.Accept(pingReservation(t, c, f.agent).SID))
			reconnectReservation(t, c, f.agent)
			waitPhase(t, c, f.call.ConferenceSID, v1alpha1.PhaseReconnecting)
		}
	}
	// Nothing is left moving: every recovery stands in its phase, written by the operator.
	for _, f := range calls {
		want := f.phase
		if want == v1alpha1.PhaseDisconnected {
			want = v1alpha1.PhaseMonitoring
		}
		waitPhase(t, c, f.call.ConferenceSID, want)
	}

	// The operator stops; every conference callback sent meanwhile is lost, as Twilio sends each
	// once (dropped rather than refused, so newCentre's check of refusals stays meaningful).
	dropCallbacks(t, func(url.Values) bool { return true })
	must(t, env.StopOperator())
	for _, f := range calls {
		f.whileDown(t, c, f)
	}
	env.Sim.SetFaults(twiliosim.Faults{})
	must(t, env.StartOperator())

	// One deadline for all (scenario.Wait, half the default resync period): each is acted on
	// promptly, in whatever order the operator takes them.
	pending := map[string]*inFlight{}
	for _, f := range calls {
		pending[f.name] = f
	}
	last := map[string]string{}
	err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		for name, f := range pending {
			rec, err := c.Recovery(ctx, f.call.ConferenceSID)
			if err != nil {
				return false, err
			}
			if f.acted(c, f, rec) {
				delete(pending, name)
				continue
			}
			last[name] = fmt.Sprintf("%s/%s", rec.Status.Phase, rec.Status.Reason)
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		var stuck []string
		for name := range pending {
			stuck = append(stuck, fmt.Sprintf("%q (%s)", name, last[name]))
		}
		t.Fatalf("not acted on within %s of the restart: %s", scenario.Wait, strings.Join(stuck, ", "))
	}
	// Each incident made one ping task, never two.
	for _, f := range calls {
		pings := c.Tasks(func(task twiliosim.TaskState) bool {
			return scenario.IsPingTask(task) && scenario.RecoversConference(task, f.call.ConferenceSID)
		})
		want := 0
		if needsPing(f) {
			want = 1
		}
		if len(pings) != want {
			t.Errorf("%s: %d ping tasks, want %d", f.name, len(pings), want)
		}
	}
}

// needsPing says whether the call's story includes a Recovery Ping.
func needsPing(f *inFlight) bool {
	switch f.name {
	case "customer hung up while down", "supervisor joined while down":
		return false
	}
	return true
}

// crashState writes what a restart finds when the agent's leave was recorded (by another
// replica's webhook server) and the leader recorded the disconnect, then stopped before creating
// the ping.
func crashState(t *testing.T, c *scenario.Centre, f *inFlight, agentLeg string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		rec, err := c.Recovery(ctx, f.call.ConferenceSID)
		if err != nil {
			return err
		}
		now := metav1.NewTime(env.Sim.Now().UTC().Truncate(1e9))
		for i := range rec.Status.Participants {
			if p := &rec.Status.Participants[i]; p.CallSID == agentLeg {
				p.LeftAt, p.LeaveReason = &now, "participant_hung_up"
			}
		}
		rec.Status.Disconnect = &v1alpha1.DisconnectStatus{WorkerSID: c.Worker(f.agent), WorkerName: f.agent, CallSID: agentLeg,
			ReservationSID: f.call.ReservationSID, Reason: "participant_hung_up", At: now}
		rec.Status.Phase = v1alpha1.PhaseDisconnected
		return env.Client.Status().Update(ctx, rec)
	})
	must(t, err)
}

// Defect 2 of issue 17: a call answered while no operator ran is protected once it starts. Its
// callbacks went nowhere, so no recovery exists and Flex's endConferenceOnExit=true stays on the
// agent's leg: the start-up discovery finds the live conference, creates its recovery and the
// leg is corrected, so that the agent's page refresh keeps the customer, who is recovered.
func TestCallAnsweredWhileDownIsProtected(t *testing.T) {
	unreachableAtTimes(t)
	ctx := context.Background()
	c := newCentre(t, scenario.CentreOptions{Name: "answered-down", Agents: []string{"alice"}})
	dropCallbacks(t, func(url.Values) bool { return true })
	must(t, env.StopOperator())
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	if leg, ok := c.AgentLeg(call.ConferenceSID, c.Worker("alice")); !ok || !leg.EndConferenceOnExit {
		t.Fatalf("the simulated Flex did not leave endConferenceOnExit on the agent's leg: %+v", leg)
	}
	env.Sim.SetFaults(twiliosim.Faults{})
	must(t, env.StartOperator())

	answered(t, c, call, "alice")
	rec, err := c.Recovery(ctx, call.ConferenceSID)
	must(t, err)
	if rec.Spec.TaskSID != call.TaskSID || rec.Spec.WorkflowSID != c.WorkflowSID || rec.Status.CustomerCallSID != call.CustomerCallSID {
		t.Errorf("discovered recovery spec %+v, customer %s; want task %s on %s, customer %s", rec.Spec,
			rec.Status.CustomerCallSID, call.TaskSID, c.WorkflowSID, call.CustomerCallSID)
	}
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	if p, ok := c.AgentLeg(call.ConferenceSID, c.Worker("alice")); ok {
		t.Fatalf("alice's leg is still in the conference after her refresh: %+v", p)
	}
	if conf, ok := env.Sim.Snapshot().Conference(call.ConferenceSID); !ok || conf.Status == "completed" {
		t.Fatal("the refresh ended the conference: the customer was hung up on")
	}
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	must(t, env.Sim.Accept(reconnectReservation(t, c, "alice").SID))
	rec = waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	conf, ok := env.Sim.Snapshot().Conference(rec.Status.Reconnect.ConferenceSID)
	if !ok {
		t.Fatalf("new conference %s not in the simulator", rec.Status.Reconnect.ConferenceSID)
	}
	if !slices.ContainsFunc(conf.Participants, func(p twiliosim.ParticipantState) bool { return p.CallSID == call.CustomerCallSID }) {
		t.Errorf("the customer is not in the new conference: %+v", conf.Participants)
	}
}

// Defect 6 of issue 17: a lost agent leave on a call that looked fine is repaired within the
// sweep's interval, at the manager's default settings, not after a resync period (a minute, or
// far longer once the per-account resync budget is shared by a thousand calls).
func TestLostLeaveFoundByTheSweep(t *testing.T) {
	withDefaultResync(t)
	must(t, env.StopOperator())
	must(t, env.StartOperator())
	c := newCentre(t, scenario.CentreOptions{Name: "sweep", Agents: []string{"alice"}})
	call := answerWhileAway(t, c, "alice")
	leg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	dropCallbacks(t, func(f url.Values) bool {
		return f.Get("StatusCallbackEvent") == "participant-leave" && f.Get("CallSid") == leg.CallSID
	})
	suspectsBefore := counterValue(t, "flexoperator_recovery_sweep_suspects_total")
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	if rec.Status.Disconnect == nil || rec.Status.Disconnect.CallSID != leg.CallSID {
		t.Errorf("disconnect %+v, want alice's leg %s", rec.Status.Disconnect, leg.CallSID)
	}
	if counterValue(t, "flexoperator_recovery_sweep_suspects_total") <= suspectsBefore {
		t.Error("the sweep did not count the suspect recovery")
	}
}
