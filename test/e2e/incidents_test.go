package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// The tests of this file play the orders of events, repeats and outages of issue 9: each failed on
// the code before it.

// recoverAgain plays one recovery of a call that is in conferenceSID with agent: her page
// refreshes, she takes the ping (or, when fallback names another agent, she is gone and that agent
// takes the customer after the ping's TTL), and the customer ends up in a new conference. It
// returns the recovered call as it now stands.
func recoverAgain(t *testing.T, c *scenario.Centre, call scenario.Call, agent, fallback string) scenario.Call {
	t.Helper()
	must(t, env.Sim.RefreshPage(c.Worker(agent)))
	taker := agent
	if fallback == "" {
		must(t, env.Sim.Accept(pingReservation(t, c, agent).SID))
	} else {
		must(t, env.Sim.SetWorkerActivity(c.Worker(agent), "Offline"))
		waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
		env.Sim.Advance(16 * time.Second) // past the ping's 15 s TTL
		taker = fallback
	}
	must(t, env.Sim.Accept(reconnectReservation(t, c, taker).SID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	rc := rec.Status.Reconnect
	if rc.WorkerSID != c.Worker(taker) || rc.ConferenceSID == "" || rc.ConferenceSID == call.ConferenceSID {
		t.Fatalf("recovery of %s: reconnect %+v, want %s in a new conference", call.ConferenceSID, rc, taker)
	}
	if fallback != "" && (!rc.Fallback || rec.Status.Ping.Outcome != v1alpha1.PingTimedOut) {
		t.Errorf("recovery of %s: reconnect %+v, ping %+v; want a fallback after the TTL", call.ConferenceSID, rc, rec.Status.Ping)
	}
	next := scenario.Call{CustomerCallSID: call.CustomerCallSID, TaskSID: rc.TaskSID, ConferenceSID: rc.ConferenceSID}
	// The new conference is protected too: its recovery exists and Flex's reset is corrected.
	answered(t, c, next, taker)
	return next
}

// Defect 1: a call whose agent drops twice (and then a third time) is recovered every time: by
// the same agent twice, then by another agent after the ping's TTL. Each recovery makes its own
// ping and reconnect task, and nothing of an earlier incident is taken for a later one.
func TestCallRecoveredTwiceInARow(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "twice", Agents: []string{"alice", "bob"}})
	first := answerWhileAway(t, c, "alice", "bob")
	must(t, env.Sim.SetWorkerActivity(c.Worker("bob"), "Offline")) // the first two are alice's
	second := recoverAgain(t, c, first, "alice", "")
	third := recoverAgain(t, c, second, "alice", "")
	must(t, env.Sim.SetWorkerActivity(c.Worker("bob"), "Available"))
	fourth := recoverAgain(t, c, third, "alice", "bob")

	for _, conf := range []string{first.ConferenceSID, second.ConferenceSID, third.ConferenceSID} {
		pings := c.Tasks(func(task twiliosim.TaskState) bool {
			return scenario.IsPingTask(task) && scenario.RecoversConference(task, conf)
		})
		reconnects := c.Tasks(func(task twiliosim.TaskState) bool {
			return scenario.IsReconnectTask(task) && scenario.RecoversConference(task, conf)
		})
		if len(pings) != 1 || len(reconnects) != 1 {
			t.Errorf("conference %s: %d ping and %d reconnect tasks, want one of each", conf, len(pings), len(reconnects))
		}
		for _, p := range pings {
			if _, inherited := p.Attributes["targetWorkerSid"]; inherited || p.Attributes["isReconnect"] != nil {
				t.Errorf("ping %s carries a reconnect task's attributes: %v", p.SID, p.Attributes)
			}
		}
	}
	if n := effects.countFor("enqueue", first.CustomerCallSID); n != 3 {
		t.Errorf("enqueue redirects of the customer = %d, want one per recovery (3)", n)
	}
	cust, _ := env.Sim.Snapshot().Call(first.CustomerCallSID)
	if cust.Status != "in-progress" || cust.ConferenceSID != fourth.ConferenceSID {
		t.Errorf("customer call %s in %s, want in-progress in %s", cust.Status, cust.ConferenceSID, fourth.ConferenceSID)
	}
}

// holdCallbacks holds back the conference callbacks match accepts until the returned release is
// called (a callback delayed behind later ones: a retry, another replica's slower answer).
func holdCallbacks(t *testing.T, match func(url.Values) bool) (release func()) {
	t.Helper()
	env.Sim.SetFaults(twiliosim.Faults{HoldCallbacks: match})
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		env.Sim.SetFaults(twiliosim.Faults{})
		env.Sim.ReleaseHeldCallbacks()
	}
	t.Cleanup(release)
	return release
}

// Defect 2: Flex's endConferenceOnExit reset of the agent's leg, delivered after a later callback
// of another leg, is still corrected.
func TestLateResetAfterAnotherLegIsCorrected(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "latereset", Agents: []string{"alice"}, Offline: []string{"sam"}})
	ctx := context.Background()
	release := holdCallbacks(t, func(f url.Values) bool {
		return f.Get("StatusCallbackEvent") == "participant-modify" && f.Get("EndConferenceOnExit") == "true" &&
			strings.HasPrefix(f.Get("ParticipantLabel"), "worker")
	})
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	// A supervisor starts monitoring: a callback of another leg, later than the held reset.
	supervisor, err := env.Sim.Monitor(c.Worker("sam"), call.ConferenceSID)
	must(t, err)
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "supervisor seen", func(r *v1alpha1.ConferenceRecovery) bool {
		for _, p := range r.Status.Participants {
			if p.CallSID == supervisor {
				return true
			}
		}
		return false
	})
	must(t, err)
	if leg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice")); !leg.EndConferenceOnExit {
		t.Fatalf("the agent's leg is not reset yet; the test needs Flex's reset held back: %+v", leg)
	}
	release()
	answered(t, c, call, "alice")
	// And the call survives a refresh.
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	if cust, _ := env.Sim.Snapshot().Call(call.CustomerCallSID); cust.Status != "in-progress" {
		t.Errorf("customer call is %s after the refresh, want in-progress", cust.Status)
	}
}

// Defect 3: during a warm transfer, alice's leave is delivered before bob's join. The recovery that
// starts on the leave stops when the join arrives: the ping is withdrawn, the customer is taken
// off hold and never redirected out of the conference that holds bob.
func TestWarmTransferLeaveBeforeJoin(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "leavefirst", Agents: []string{"alice", "bob"}})
	ctx := context.Background()
	call := answerWhileAway(t, c, "alice", "bob")
	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	// Every callback about bob's leg (and the other agent legs' Flex changes) waits.
	release := holdCallbacks(t, func(f url.Values) bool {
		return f.Get("ConferenceSid") == call.ConferenceSID && strings.HasPrefix(f.Get("ParticipantLabel"), "worker") &&
			f.Get("CallSid") != aliceLeg.CallSID
	})
	transfer, err := env.Sim.WarmTransfer(c.Worker("alice"), c.Worker("bob"))
	must(t, err)
	must(t, env.Sim.Accept(transfer))
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	// Seen alone, alice's leave starts a recovery.
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
	release()
	rec, err := c.WaitRecovery(ctx, call.ConferenceSID, "recovery stopped for bob", func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Status.Phase == v1alpha1.PhaseMonitoring && r.Status.Disconnect == nil && agentsConnected(r) == 1
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Sim.Dump())
	}
	if n := effects.countFor("enqueue", call.CustomerCallSID); n != 0 {
		t.Errorf("the customer was redirected %d times out of a conference holding bob", n)
	}
	for _, p := range c.Tasks(scenario.IsPingTask) {
		if p.Status != "canceled" && p.Status != "completed" {
			t.Errorf("ping %s is still %s", p.SID, p.Status)
		}
	}
	conf, _ := env.Sim.Snapshot().Conference(call.ConferenceSID)
	for _, p := range conf.Participants {
		if p.CallSID == call.CustomerCallSID && p.Hold {
			t.Errorf("the customer is still on hold with bob in the call")
		}
	}
	if rec.Status.Ping != nil || len(rec.Status.Actions) > 2 {
		t.Errorf("the closed incident left ping %+v and actions %+v", rec.Status.Ping, rec.Status.Actions)
	}
	// The call goes on as any other: bob's hang-up ends it normally.
	must(t, env.Sim.Hangup(c.Worker("bob")))
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseEnded)
}

// Defect 4: a Flex token of another worker cannot mark the agent's leg graceful (which would
// suppress her recovery), cannot pull a call of the account into the conference, and cannot read
// the call's SIDs; the agent's refresh is then recovered as usual.
func TestGracefulMarkByAnotherWorkerIsRefused(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "othermark", Agents: []string{"alice", "bob"}})
	ctx := context.Background()
	call := answerWhileAway(t, c, "alice", "bob")
	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	bobToken := env.Sim.IssueFlexToken(c.Worker("bob"), "agent")
	markURL := fmt.Sprintf("%s/flex/%s/%s/graceful", env.WebhookURL, c.Namespace, c.Policy)
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"alice's leg by its call SID": {`{"conferenceSid":"` + call.ConferenceSID + `","callSid":"` + aliceLeg.CallSID + `"}`, http.StatusForbidden},
		"bob's own legs":              {`{"conferenceSid":"` + call.ConferenceSID + `"}`, http.StatusConflict},
		"a call not in the conference": {`{"conferenceSid":"` + call.ConferenceSID + `","callSid":"CA` + strings.Repeat("e", 32) + `"}`,
			http.StatusConflict},
	} {
		if code := postJSON(t, markURL, bobToken, []byte(tc.body)); code != tc.want {
			t.Errorf("%s: %d, want %d", name, code, tc.want)
		}
	}
	readURL := fmt.Sprintf("%s/flex/%s/%s/recoveries/%s", env.WebhookURL, c.Namespace, c.Policy, call.ConferenceSID)
	req, _ := http.NewRequest(http.MethodGet, readURL, nil)
	req.Header.Set("Authorization", "Bearer "+bobToken)
	if code := do(t, req); code != http.StatusNotFound {
		t.Errorf("bob reads alice's call: %d, want 404", code)
	}
	rec, err := c.Recovery(ctx, call.ConferenceSID)
	must(t, err)
	for _, p := range rec.Status.Participants {
		if p.Graceful || (p.CallSID != aliceLeg.CallSID && p.CallSID != call.CustomerCallSID) {
			t.Errorf("a refused mark changed the legs: %+v", rec.Status.Participants)
		}
	}
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	pingReservation(t, c, "alice")
	waitPhase(t, c, call.ConferenceSID, v1alpha1.PhasePinging)
}

// dropCallbacks loses the conference callbacks match accepts, as Twilio loses a callback it never
// retries, until the test ends.
func dropCallbacks(t *testing.T, match func(url.Values) bool) {
	t.Helper()
	env.Sim.SetFaults(twiliosim.Faults{DropCallbacks: match})
	t.Cleanup(func() { env.Sim.SetFaults(twiliosim.Faults{}) })
}

// Defect 5: the agent's leave is lost, and so is every callback of the new conference (its join
// too). The resync reads the call from Twilio, starts the recovery, finds the new conference and
// finishes it.
func TestLostCallbacksRepairedByTheResync(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "lost", Agents: []string{"alice"}})
	call := answerWhileAway(t, c, "alice")
	aliceLeg, _ := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
	dropCallbacks(t, func(f url.Values) bool {
		return f.Get("ConferenceSid") != call.ConferenceSID ||
			f.Get("StatusCallbackEvent") == "participant-leave" && f.Get("CallSid") == aliceLeg.CallSID
	})
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	must(t, env.Sim.Accept(reconnectReservation(t, c, "alice").SID))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if rec.Status.Disconnect == nil || rec.Status.Disconnect.CallSID != aliceLeg.CallSID {
		t.Errorf("disconnect %+v, want alice's leg", rec.Status.Disconnect)
	}
	if rc := rec.Status.Reconnect; rc.ConferenceSID == "" {
		t.Errorf("the new conference was not found: %+v", rc)
	}
}

// Defect 5: a call whose every callback after the answer is lost (the leaves and the
// conference-end) still ends: its recovery reaches Ended, so it is counted and garbage-collected.
func TestLostConferenceEndRepairedByTheResync(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "lostend", Agents: []string{"alice"}})
	call := answerWhileAway(t, c, "alice")
	dropCallbacks(t, func(f url.Values) bool { return f.Get("ConferenceSid") == call.ConferenceSID })
	must(t, env.Sim.Hangup(c.Worker("alice")))
	rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseEnded)
	if rec.Status.FinishedAt == nil || rec.Status.Disconnect != nil {
		t.Errorf("ended recovery: finishedAt %v, disconnect %+v", rec.Status.FinishedAt, rec.Status.Disconnect)
	}
}

// A restart during a burst of callbacks loses nothing: while the operator is down, three agents'
// pages refresh and every callback about it is lost (Twilio does not retry conference callbacks;
// they are dropped rather than refused, so that newCentre's check of refusals stays meaningful).
// The resync at start-up reads the three calls from Twilio and recovers each of them, once.
func TestRestartDuringABurstLosesNothing(t *testing.T) {
	// Callbacks still on their way when the operator stops (Flex's answer to its last correction,
	// say) find no one listening.
	unreachableAtTimes(t)
	agents := []string{"alice", "bob", "carol"}
	c := newCentre(t, scenario.CentreOptions{Name: "burst", Agents: agents})
	calls := map[string]scenario.Call{}
	for i, agent := range agents {
		calls[agent] = answerWhileAway(t, c, agent, agents[i+1:]...)
		// The agents still to answer are offline until their turn; those who answered are busy.
	}
	confs := map[string]bool{}
	for _, call := range calls {
		confs[call.ConferenceSID] = true
	}
	must(t, env.StopOperator())
	dropCallbacks(t, func(f url.Values) bool { return confs[f.Get("ConferenceSid")] })
	for _, agent := range agents {
		must(t, env.Sim.RefreshPage(c.Worker(agent)))
	}
	env.Sim.SetFaults(twiliosim.Faults{})
	must(t, env.StartOperator())
	for _, agent := range agents {
		must(t, env.Sim.Accept(pingReservation(t, c, agent).SID))
		must(t, env.Sim.Accept(reconnectReservation(t, c, agent).SID))
	}
	for agent, call := range calls {
		rec := waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
		if rec.Status.Reconnect.WorkerSID != c.Worker(agent) {
			t.Errorf("%s's call was recovered by %s", agent, rec.Status.Reconnect.WorkerSID)
		}
		pings := c.Tasks(func(task twiliosim.TaskState) bool {
			return scenario.IsPingTask(task) && scenario.RecoversConference(task, call.ConferenceSID)
		})
		if len(pings) != 1 {
			t.Errorf("%s's call: %d ping tasks, want 1", agent, len(pings))
		}
	}
}
