// Package e2e tests the whole system: a real kube-apiserver and etcd, the Twilio simulator (a real
// HTTP server reached by the real twilio-go client) and the operator's manager as main.go builds
// it, with calls played through the simulated Flex and the operator reached only through its
// webhook server and the Kubernetes API.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// env is shared by every test; each test builds its own namespace, workspace and policy.
var env *scenario.Env

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
		os.Exit(1)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	var err error
	env, err = scenario.Start(scenario.Options{
		CRDDir: filepath.Join("..", "..", "config", "crd", "bases"),
		// The clock stands still unless a test advances it; Event Streams deliveries that fail (the
		// operator being restarted) are retried long enough to outlast a restart. Conference
		// callbacks are sent once, as Twilio sends them.
		Sim: twiliosim.Options{DeliveryMaxAttempts: 400, DeliveryMaxBackoff: 100 * time.Millisecond,
			RequestHook: effects.record, HTTPClient: callbackTimer(effects)},
		// Recoveries that do not move are read from Twilio after 2 s instead of a minute, so that
		// the tests of lost callbacks do not wait long.
		Manager: func(o *app.Options) { o.RecoveryResyncAfter, o.RecoveryResyncRate = 2*time.Second, 50 },
		// The operator reaches the API server through operatorAPI, which refuses nothing until a
		// test arms it.
		OperatorConfig: operatorAPI.config,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

// newCentre builds a contact centre for one test and waits for its policy to be ready.
func newCentre(t *testing.T, o scenario.CentreOptions) *scenario.Centre {
	t.Helper()
	ctx := context.Background()
	c, err := env.NewCentre(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPolicyReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Twilio sends each conference callback once: one the operator refused is a call it may
	// recover late or never. No test may pass with one, and only a test that takes the operator
	// out of reach on purpose (unreachableAtTimes) may lose those sent meanwhile.
	t.Cleanup(func() {
		st := env.Sim.Deliveries().Destination("callback:" + c.ConferenceCallbackURL())
		if answered := st.Refused - st.Unreachable; answered > 0 {
			t.Errorf("the operator refused %d conference callbacks (last answer %d %s), which Twilio never sends again",
				answered, st.LastStatus, st.LastError)
		}
		if _, onPurpose := unreachable.Load(t.Name()); st.Unreachable > 0 && !onPurpose {
			t.Errorf("%d conference callbacks could not reach the operator (%s), and Twilio never sends them again",
				st.Unreachable, st.LastError)
		}
	})
	return c
}

// unreachable holds the names of the tests that take the operator out of Twilio's reach on
// purpose (stopped, or the connection cut).
var unreachable sync.Map

// unreachableAtTimes lets the test lose the conference callbacks sent while the operator cannot be
// reached; newCentre's check of callbacks the operator answered with a refusal still applies.
func unreachableAtTimes(t *testing.T) { unreachable.Store(t.Name(), true) }

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pingReservation waits for the Recovery Ping reservation offered to worker.
func pingReservation(t *testing.T, c *scenario.Centre, worker string) twiliosim.ReservationState {
	t.Helper()
	r, err := c.WaitReservation(context.Background(), func(task twiliosim.TaskState, r twiliosim.ReservationState) bool {
		return scenario.IsPingTask(task) && r.WorkerSID == c.Worker(worker) && r.Status == "pending"
	})
	if err != nil {
		t.Fatalf("no Recovery Ping reservation for %s: %v\n%s", worker, err, env.Sim.Dump())
	}
	return r
}

// reconnectReservation waits for the reconnect task's reservation offered to worker.
func reconnectReservation(t *testing.T, c *scenario.Centre, worker string) twiliosim.ReservationState {
	t.Helper()
	r, err := c.WaitReservation(context.Background(), func(task twiliosim.TaskState, r twiliosim.ReservationState) bool {
		return scenario.IsReconnectTask(task) && r.WorkerSID == c.Worker(worker) && r.Status == "pending"
	})
	if err != nil {
		t.Fatalf("no reconnect reservation for %s: %v\n%s", worker, err, env.Sim.Dump())
	}
	return r
}

// waitPhase waits for the recovery of conferenceSID to reach phase.
func waitPhase(t *testing.T, c *scenario.Centre, conferenceSID string, phase v1alpha1.RecoveryPhase) *v1alpha1.ConferenceRecovery {
	t.Helper()
	rec, err := c.WaitPhase(context.Background(), conferenceSID, phase)
	if err != nil {
		t.Fatalf("%v\nstatus: %+v", err, statusOf(rec))
	}
	return rec
}

func statusOf(rec *v1alpha1.ConferenceRecovery) any {
	if rec == nil {
		return nil
	}
	return rec.Status
}

// answered waits until the conference's recovery exists and Flex's endConferenceOnExit reset of
// the agent's leg has been corrected.
func answered(t *testing.T, c *scenario.Centre, call scenario.Call, agent string) {
	t.Helper()
	_, err := c.WaitRecovery(context.Background(), call.ConferenceSID, "endConferenceOnExit corrected", func(*v1alpha1.ConferenceRecovery) bool {
		leg, ok := c.AgentLeg(call.ConferenceSID, c.Worker(agent))
		return ok && !leg.EndConferenceOnExit
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Sim.Dump())
	}
}

// countTasks counts the workspace's tasks that match.
func countTasks(c *scenario.Centre, match func(twiliosim.TaskState) bool) int {
	return len(c.Tasks(match))
}

// answerWhileAway has agent answer a call while the other workers are busy elsewhere (so the call
// cannot go to them), waits for the endConferenceOnExit correction, then makes the others
// available again.
func answerWhileAway(t *testing.T, c *scenario.Centre, agent string, others ...string) scenario.Call {
	t.Helper()
	for _, o := range others {
		must(t, env.Sim.SetWorkerActivity(c.Worker(o), "Offline"))
	}
	call, err := c.Answer(context.Background(), agent)
	must(t, err)
	answered(t, c, call, agent)
	for _, o := range others {
		must(t, env.Sim.SetWorkerActivity(c.Worker(o), "Available"))
	}
	return call
}
