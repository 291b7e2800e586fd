package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// flow is a recovery played step by step: between every two steps `between` runs (a restart of
// the operator, a burst of faults).
type flow struct {
	t       *testing.T
	c       *scenario.Centre
	agent   string
	between func(step string)
	// parties adds a third party and a coaching supervisor to the call before the refresh.
	parties bool

	call          scenario.Call
	thirdParty    string
	supervisorLeg string
}

func (f *flow) step(name string) {
	if f.between != nil {
		f.between(name)
	}
}

// run plays: answer, (parties), refresh, ping accepted, reconnect accepted, Recovered.
func (f *flow) run() *v1alpha1.ConferenceRecovery {
	t, c := f.t, f.c
	ctx := context.Background()
	var err error
	f.call, err = c.Answer(ctx, f.agent)
	must(t, err)
	answered(t, c, f.call, f.agent)
	f.step("answered")
	if f.parties {
		f.thirdParty, err = env.Sim.DialThirdParty(f.call.ConferenceSID, "+15557770001")
		must(t, err)
		f.supervisorLeg, err = env.Sim.Monitor(c.Worker("sam"), f.call.ConferenceSID)
		must(t, err)
		f.step("parties")
	}
	must(t, env.Sim.RefreshPage(c.Worker(f.agent)))
	f.step("refreshed")
	ping := pingReservation(t, c, f.agent)
	f.step("pinging")
	must(t, env.Sim.Accept(ping.SID))
	f.step("ping-accepted")
	reconnect := reconnectReservation(t, c, f.agent)
	f.step("reconnect-offered")
	must(t, env.Sim.Accept(reconnect.SID))
	f.step("reconnect-accepted")
	return waitPhase(t, c, f.call.ConferenceSID, v1alpha1.PhaseRecovered)
}

// assertOnce checks that the flow made exactly one ping task, one reconnect task and (with
// parties) one redial of the third party and none of the supervisor.
func (f *flow) assertOnce(rec *v1alpha1.ConferenceRecovery) {
	t, c := f.t, f.c
	if n := countTasks(c, scenario.IsPingTask); n != 1 {
		t.Errorf("ping tasks = %d, want 1", n)
	}
	if n := countTasks(c, scenario.IsReconnectTask); n != 1 {
		t.Errorf("reconnect tasks = %d, want 1", n)
	}
	rc := rec.Status.Reconnect
	if rc == nil || rc.ConferenceSID == "" {
		t.Fatalf("no new conference in status: %+v", rec.Status)
	}
	conf, ok := env.Sim.Snapshot().Conference(rc.ConferenceSID)
	if !ok {
		t.Fatalf("new conference %s not in the simulator", rc.ConferenceSID)
	}
	// Each side effect reached Twilio once (the simulator's request hook counts what it processed).
	if n := effects.countFor("enqueue", f.call.CustomerCallSID); n != 1 {
		t.Errorf("enqueue redirects of the customer's call = %d, want 1", n)
	}
	if f.parties {
		if n := effects.countFor("redial", f.thirdParty); n != 1 {
			t.Errorf("redials of the third party = %d, want 1", n)
		}
		if n := effects.countFor("redial", f.supervisorLeg); n != 0 {
			t.Errorf("redials of the coaching supervisor = %d, want 0", n)
		}
	}
	third, super := 0, 0
	for _, p := range conf.Participants {
		switch p.CallSID {
		case f.thirdParty:
			third++
		case f.supervisorLeg:
			super++
		}
	}
	if f.parties && (third != 1 || super != 0) {
		t.Errorf("new conference has the third party %d times and the supervisor %d times, want 1 and 0: %+v", third, super, conf.Participants)
	}
	for _, a := range rec.Status.Actions {
		if a.State != v1alpha1.ActionDone && a.State != v1alpha1.ActionSkipped {
			t.Errorf("action %s is %s (%s)", a.Name, a.State, a.Message)
		}
	}
}

// Scenario 1: the agent's page refreshes, she accepts the ping, the customer is routed back to her,
// the third party is dialled into the new conference (the coaching supervisor is not): Recovered.
func TestRefreshRecoveredBySameAgent(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "refresh", Agents: []string{"alice"}, Offline: []string{"sam"}})
	f := &flow{t: t, c: c, agent: "alice", parties: true}
	rec := f.run()
	f.assertOnce(rec)

	st := rec.Status
	if st.Reconnect.Fallback || st.Reconnect.WorkerSID != c.Worker("alice") {
		t.Errorf("reconnect = %+v, want alice without fallback", st.Reconnect)
	}
	if st.Disconnect == nil || st.Disconnect.WorkerSID != c.Worker("alice") || st.Disconnect.Reason != "participant_hung_up" {
		t.Errorf("disconnect = %+v", st.Disconnect)
	}
	if st.Ping == nil || st.Ping.Outcome != v1alpha1.PingAccepted {
		t.Errorf("ping = %+v", st.Ping)
	}
	// The customer heard the announcement in the original conference.
	old, _ := env.Sim.Snapshot().Conference(f.call.ConferenceSID)
	if len(old.Announcements) != 1 {
		t.Errorf("announcements in the original conference = %v, want one", old.Announcements)
	}
	// The original reservation was completed, and only once the reconnect task was queued.
	if st.Reconnect.QueuedAt == nil || st.Reconnect.OriginalReservationCompletedAt == nil {
		t.Fatalf("reconnect timings missing: %+v", st.Reconnect)
	}
	if st.Reconnect.OriginalReservationCompletedAt.Before(st.Reconnect.QueuedAt) {
		t.Errorf("original reservation completed at %s, before the reconnect task was queued at %s",
			st.Reconnect.OriginalReservationCompletedAt, st.Reconnect.QueuedAt)
	}
	for _, r := range env.Sim.Snapshot().Reservations(f.call.TaskSID) {
		if r.SID == f.call.ReservationSID && r.Status != "completed" {
			t.Errorf("original reservation is %s, want completed", r.Status)
		}
	}
	orig, _ := env.Sim.Snapshot().Task(f.call.TaskSID)
	conv, _ := orig.Attributes["conversations"].(map[string]any)
	if conv["followed_by"] != "Reconnect Agent" || orig.Attributes["disconnectedTime"] == nil || orig.Attributes["wasPingSuccessful"] != true {
		t.Errorf("original task attributes not marked: %v", orig.Attributes)
	}
	if st.Timings.CustomerWithoutAgent == nil || st.Timings.DetectionToPing == nil || st.FinishedAt == nil {
		t.Errorf("timings/finishedAt missing: %+v finishedAt=%v", st.Timings, st.FinishedAt)
	}
	if rec.Labels[v1alpha1.PhaseLabel] != string(v1alpha1.PhaseRecovered) {
		// The label follows the phase, possibly a moment later.
		_, err := c.WaitRecovery(context.Background(), f.call.ConferenceSID, "phase label", func(r *v1alpha1.ConferenceRecovery) bool {
			return r.Labels[v1alpha1.PhaseLabel] == string(v1alpha1.PhaseRecovered)
		})
		must(t, err)
	}
}

// Scenario 2: the agent never comes back; after the ping's TTL the customer goes to the original
// workflow at the elevated priority and another agent takes the call.
func TestPingTimeoutFallsBackToAnotherAgent(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "fallback", Agents: []string{"alice", "bob"}})
	call := answerWhileAway(t, c, "alice", "bob")

	// alice's browser dies and does not come back: Flex shows her Offline.
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Offline"))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	env.Sim.Advance(16 * time.Second) // past the ping's 15 s TTL

	r := reconnectReservation(t, c, "bob")
	task, _ := env.Sim.Snapshot().Task(r.TaskSID)
	if task.Priority != 1000 {
		t.Errorf("fallback reconnect priority = %d, want the policy's 1000", task.Priority)
	}
	if _, targeted := task.Attributes["targetWorkerSid"]; targeted {
		t.Errorf("fallback reconnect task targets a worker: %v", task.Attributes)
	}
	must(t, env.Sim.Accept(r.SID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if !rec.Status.Reconnect.Fallback || rec.Status.Reconnect.WorkerSID != c.Worker("bob") {
		t.Errorf("reconnect = %+v, want a fallback taken by bob", rec.Status.Reconnect)
	}
	if rec.Status.Ping.Outcome != v1alpha1.PingTimedOut {
		t.Errorf("ping outcome = %s, want TimedOut", rec.Status.Ping.Outcome)
	}
}

// Scenario 3: the customer hangs up while the agent is being pinged: Abandoned, no enqueue.
func TestCustomerHangsUpWhilePinging(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "abandon", Agents: []string{"alice"}})
	ctx := context.Background()
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	answered(t, c, call, "alice")
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	pingReservation(t, c, "alice")
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	must(t, env.Sim.CustomerHangup(call.CustomerCallSID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseAbandoned)
	if n := countTasks(c, scenario.IsReconnectTask); n != 0 {
		t.Errorf("reconnect tasks = %d after the customer left, want 0", n)
	}
	for _, a := range rec.Status.Actions {
		if a.Name == "EnqueueReconnect" {
			t.Errorf("an enqueue was recorded: %+v", a)
		}
	}
}

// Scenario 5: during a warm transfer one of the two agents' pages refreshes: the other agent is
// still there, so no recovery starts.
func TestWarmTransferRefreshIsNotRecovered(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "warm", Agents: []string{"alice", "bob"}})
	ctx := context.Background()
	call := answerWhileAway(t, c, "alice", "bob")
	// The simulated Flex reserves bob for the same task at once; he accepts.
	transfer, err := env.Sim.WarmTransfer(c.Worker("alice"), c.Worker("bob"))
	must(t, err)
	must(t, env.Sim.Accept(transfer))
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "bob joined", func(rec *v1alpha1.ConferenceRecovery) bool {
		return agentsConnected(rec) == 2
	})
	must(t, err)
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	rec, err := c.WaitRecovery(ctx, call.ConferenceSID, "alice's leave observed", func(rec *v1alpha1.ConferenceRecovery) bool {
		return agentsConnected(rec) == 1 && rec.Status.Phase == v1alpha1.PhaseMonitoring
	})
	must(t, err)
	if rec.Status.Disconnect != nil {
		t.Errorf("a disconnect was recorded during a warm transfer: %+v", rec.Status.Disconnect)
	}
	// bob hangs up normally: the call ends with no incident and no ping was ever made.
	must(t, env.Sim.Hangup(c.Worker("bob")))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseEnded)
	if n := countTasks(c, scenario.IsPingTask); n != 0 {
		t.Errorf("ping tasks = %d, want 0", n)
	}
}

func agentsConnected(rec *v1alpha1.ConferenceRecovery) int {
	n := 0
	for _, p := range rec.Status.Participants {
		if p.Role == v1alpha1.RoleAgent && !p.Coaching && p.LeftAt == nil {
			n++
		}
	}
	return n
}

// Scenario 6: every webhook delivered twice and out of order: still exactly one of each side effect.
func TestDuplicatedAndReorderedEvents(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "dup", Agents: []string{"alice"}, Offline: []string{"sam"}})
	env.Sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	f := &flow{t: t, c: c, agent: "alice", parties: true}
	f.assertOnce(f.run())
}

// Scenario 7: the operator is stopped and restarted between every two steps of the flow. The
// callbacks of a step still on their way when it stops are lost, as they are with Twilio; the
// resync every recovery gets at start-up reads the call from Twilio instead.
func TestOperatorRestartAtEveryStep(t *testing.T) {
	unreachableAtTimes(t)
	c := newCentre(t, scenario.CentreOptions{Name: "restart", Agents: []string{"alice"}, Offline: []string{"sam"}})
	restarts := 0
	f := &flow{t: t, c: c, agent: "alice", parties: true, between: func(step string) {
		if err := env.StopOperator(); err != nil {
			t.Fatalf("stop the operator after %s: %v", step, err)
		}
		if err := env.StartOperator(); err != nil {
			t.Fatalf("restart the operator after %s: %v", step, err)
		}
		restarts++
	}}
	f.assertOnce(f.run())
	if restarts < 6 {
		t.Errorf("restarted %d times, want one per step", restarts)
	}
}

// Scenario 8: Twilio answers 429 and 5xx in bursts before every step: the flow completes and
// nothing is duplicated.
func TestTwilioErrorBursts(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "faults", Agents: []string{"alice"}, Offline: []string{"sam"}})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	codes := []int{429, 503, 500}
	i := 0
	f := &flow{t: t, c: c, agent: "alice", parties: true, between: func(string) {
		env.Sim.SetFaults(twiliosim.Faults{FailNext: 3, FailStatus: codes[i%len(codes)]})
		i++
	}}
	f.assertOnce(f.run())
}
