package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// Issue 17, defect 3: alice answers the Recovery Ping, so the customer is routed back to her, and
// then her browser dies for good (she shows Offline). Once the policy's bound runs out (the ping's
// 15 s TTL; the simulator's clock is advanced, never slept through) the customer is routed to any
// agent on the original workflow at the reconnect priority, bob takes the call, and the status and
// an Event say what happened.
func TestReconnectNotTakenGoesToTheFallback(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "notaken", Agents: []string{"alice", "bob"}})
	call := answerWhileAway(t, c, "alice", "bob")
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	rec, err := c.WaitRecovery(context.Background(), call.ConferenceSID, "reconnect routed to alice", func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Status.Reconnect != nil && r.Status.Reconnect.EnqueuedAt != nil && r.Status.Reconnect.TaskSID != ""
	})
	if err != nil {
		t.Fatalf("%v\nstatus: %+v", err, statusOf(rec))
	}
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Offline"))

	// Nothing happens before the bound: the task still waits for alice.
	env.Sim.Advance(14 * time.Second)
	if task, _ := env.Sim.Snapshot().Task(rec.Status.Reconnect.TaskSID); task.Attributes["targetWorkerSid"] != c.Worker("alice") {
		t.Fatalf("reconnect task rerouted before the bound: %v", task.Attributes)
	}
	env.Sim.Advance(2 * time.Second)
	r := reconnectReservation(t, c, "bob")
	assertRerouted(t, c, call, r, "did not take the reconnect within 15s")
}

// The agent rejects the reconnect offer: the customer goes to the fallback at once, without
// waiting out the bound (the clock does not move).
func TestReconnectRejectedGoesToTheFallback(t *testing.T) {
	c := newCentre(t, scenario.CentreOptions{Name: "rejected", Agents: []string{"alice", "bob"}})
	call := answerWhileAway(t, c, "alice", "bob")
	must(t, env.Sim.RefreshPage(c.Worker("alice")))
	must(t, env.Sim.Accept(pingReservation(t, c, "alice").SID))
	offer := reconnectReservation(t, c, "alice")
	must(t, env.Sim.SetWorkerActivity(c.Worker("alice"), "Offline"))
	must(t, env.Sim.Reject(offer.SID))
	r := reconnectReservation(t, c, "bob")
	assertRerouted(t, c, call, r, "rejected the reconnect")
}

// assertRerouted checks a reconnect rerouted to bob (offered r): the task no longer targets anyone
// and keeps the reconnect priority, the status and an Event say why (want), and bob taking the
// call recovers it.
func assertRerouted(t *testing.T, c *scenario.Centre, call scenario.Call, r twiliosim.ReservationState, want string) {
	t.Helper()
	ctx := context.Background()
	task, _ := env.Sim.Snapshot().Task(r.TaskSID)
	if _, targeted := task.Attributes["targetWorkerSid"]; targeted || task.Priority != 1000 {
		t.Errorf("rerouted task: priority %d, attributes %v; want 1000 and no target", task.Priority, task.Attributes)
	}
	rec, err := c.WaitRecovery(ctx, call.ConferenceSID, "reroute in status", func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Status.Reason == recovery.ReasonReconnectRerouted
	})
	if err != nil {
		t.Fatalf("%v\nstatus: %+v", err, statusOf(rec))
	}
	if !strings.Contains(rec.Status.Message, want) || !strings.Contains(rec.Status.Message, "any agent") {
		t.Errorf("status message %q does not say %q and where the customer went", rec.Status.Message, want)
	}
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(c.Namespace)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Reason == recovery.ReasonReconnectRerouted && e.Type == "Warning" && strings.Contains(e.Note, want) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s Event: %v", recovery.ReasonReconnectRerouted, err)
	}
	must(t, env.Sim.Accept(r.SID))
	rec = waitPhase(t, c, call.ConferenceSID, v1alpha1.PhaseRecovered)
	rc := rec.Status.Reconnect
	if rc.WorkerSID != c.Worker("bob") || rc.ReroutedAt == nil || !strings.Contains(rc.RerouteReason, want) {
		t.Errorf("reconnect = %+v, want taken by bob after a reroute (%s)", rc, want)
	}
	if n := countTasks(c, scenario.IsReconnectTask); n != 1 {
		t.Errorf("reconnect tasks = %d, want the one, rerouted", n)
	}
}
