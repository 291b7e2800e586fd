package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// labelledCounter reads one series of a counter vector from the operator's metrics registry.
func labelledCounter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	return series(t, name, label, value).GetCounter().GetValue()
}

// series finds one series of a metric vector in the operator's metrics registry (nil, whose
// values read 0, when there is none yet).
func series(t *testing.T, name, label, value string) *dto.Metric {
	t.Helper()
	families, err := metrics.Registry.Gather()
	must(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m
				}
			}
		}
	}
	return nil
}

// addPolicy applies a second WorkerActivityPolicy on the centre's workspace, named name, with the
// first one's spec, and waits for it to be Ready. It returns the centre as seen through it.
func addPolicy(t *testing.T, c *scenario.ActivityCentre, name string) *scenario.ActivityCentre {
	t.Helper()
	ctx := context.Background()
	var first v1alpha1.WorkerActivityPolicy
	must(t, env.Client.Get(ctx, c.Key(), &first))
	second := &v1alpha1.WorkerActivityPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: name}, Spec: first.Spec}
	must(t, env.Client.Create(ctx, second))
	other := *c
	other.Policy = name
	if _, err := other.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	must(t, other.WaitSynced(ctx, env.Engine))
	return &other
}

// onWorkerUpdate runs fn on the first update of the worker the operator sends (once), before the
// simulator processes it.
func onWorkerUpdate(t *testing.T, workerSID string, fn func(*http.Request)) {
	t.Helper()
	var once sync.Once
	hook := func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Workers/"+workerSID) {
			once.Do(func() { fn(r) })
		}
	}
	effects.hook.Store(&hook)
	t.Cleanup(func() { effects.hook.Store(nil) })
}

// warnings lists the Warning Events of a reason in the namespace.
func warnings(t *testing.T, namespace, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	must(t, env.Client.List(context.Background(), &list, client.InNamespace(namespace)))
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Type == corev1.EventTypeWarning && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// TestActivityTwoPoliciesOneWorkspace: two policies govern one workspace, so every TaskRouter
// event reaches the engine twice, through each policy's sink, and the simulator duplicates and
// reorders every delivery on top. A supervisor's Break lands between the engine's decision to put
// the agent On a Task and its write (the worker is at version 0 when she accepts, 1 after the
// Break): the stale version-0 copies of the accepted event, however late, never take the engine's
// view back, and each event is applied once per workspace.
func TestActivityTwoPoliciesOneWorkspace(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "twopolicies", Agents: []string{"alice"}})
	second := addPolicy(t, c, "second")
	ctx := context.Background()
	duplicates := labelledCounter(t, "flexoperator_activity_events_total", "outcome", "duplicate")
	env.Sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	onWorkerUpdate(t, c.Worker("alice"), func(*http.Request) {
		// The simulator does not hold its lock in the hook: this change is processed before
		// the operator's request, which then fails its If-Match.
		_ = env.Sim.SetWorkerActivity(c.Worker("alice"), "Break")
	})
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Break")
	must(t, c.WaitQuiet(ctx))
	must(t, second.WaitQuiet(ctx))
	waitActivity(t, c, "alice", "On a Task, No ACD", "Break")
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Break", "")
	must(t, c.WaitQuiet(ctx))
	must(t, second.WaitQuiet(ctx))
	waitActivity(t, c, "alice", "Break", "")
	if n := labelledCounter(t, "flexoperator_activity_events_total", "outcome", "duplicate") - duplicates; n == 0 {
		t.Fatal("no event was recognised as one the workspace's engine already had")
	}
}

// TestActivityBreakDuringWriteAllow: in mode Allow, a supervisor's Break that lands between the
// engine's decision and its write stands: the write fails its If-Match, and the read that follows
// finds a change a person made while the agent was busy. The Break's own event is held back until
// the engine has acted on that read, so the read alone must tell it.
func TestActivityBreakDuringWriteAllow(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "allowrace", Agents: []string{"alice"},
		Policy: func(s *v1alpha1.WorkerActivityPolicySpec) { s.ActivityChangeWhileBusy = v1alpha1.BusyChangeAllow }})
	ctx := context.Background()
	onWorkerUpdate(t, c.Worker("alice"), func(*http.Request) {
		_ = env.Sim.SetWorkerActivity(c.Worker("alice"), "Break")
	})
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseHeld := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseHeld()
	hold := func(body []byte) {
		if bytes.Contains(body, []byte("worker.activity.update")) && bytes.Contains(body, []byte(c.Worker("alice"))) {
			<-release
		}
	}
	effects.holdEvents.Store(&hold)
	defer effects.holdEvents.Store(nil)
	st0, _ := env.Engine.Stats(c.Key())
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		st, _ := env.Engine.Stats(c.Key())
		return st.Conflicts > st0.Conflicts && env.Engine.Idle(c.Key()), nil
	}); err != nil {
		t.Fatalf("the engine's write did not race the Break: %v", err)
	}
	releaseHeld()
	must(t, c.WaitQuiet(ctx))
	waitActivity(t, c, "alice", "Break", "")
	must(t, env.Sim.Complete(r.SID))
	must(t, c.WaitQuiet(ctx))
	waitActivity(t, c, "alice", "Break", "")
}

// TestActivityPolicyEditDuringWrite: a policy of a busy workspace is edited while the engine's
// write of a worker is on its way. The engine takes the new spec without stopping anything: the
// write is not cut short, the edit is applied while it is held, and once it lands nothing is
// counted as a failure or announced with an EnforcementFailed Warning; the agent ends where the
// decision says.
func TestActivityPolicyEditDuringWrite(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "editrun", Agents: []string{"alice"}})
	ctx := context.Background()
	inFlight := make(chan struct{})
	released := make(chan struct{})
	var release sync.Once
	defer release.Do(func() { close(released) })
	onWorkerUpdate(t, c.Worker("alice"), func(r *http.Request) {
		close(inFlight)
		select {
		case <-r.Context().Done():
		case <-released:
		}
	})
	st0, _ := env.Engine.Stats(c.Key())
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	select {
	case <-inFlight:
	case <-ctx.Done():
	}
	var p v1alpha1.WorkerActivityPolicy
	must(t, env.Client.Get(ctx, c.Key(), &p))
	p.Spec.ExtendedWrapupAttribute = "needsMoreTime"
	must(t, env.Client.Update(ctx, &p))
	if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		st, _ := env.Engine.Stats(c.Key())
		return st.Generation == p.Generation, nil
	}); err != nil {
		t.Fatalf("the engine never ran generation %d of the policy: %v", p.Generation, err)
	}
	release.Do(func() { close(released) })
	waitActivity(t, c, "alice", "On a Task", "")
	must(t, c.WaitSynced(ctx, env.Engine))
	must(t, c.WaitQuiet(ctx))
	if st, _ := env.Engine.Stats(c.Key()); st.Failures != st0.Failures {
		t.Fatalf("%d failures counted around a policy edit (last error %q)", st.Failures-st0.Failures, st.LastError)
	}
	if w := warnings(t, c.Namespace, "EnforcementFailed"); len(w) > 0 {
		t.Fatalf("EnforcementFailed announced around a policy edit: %s", w[0].Note)
	}
	must(t, env.Sim.Complete(r.SID))
	waitActivity(t, c, "alice", "Available", "")
}

// TestActivityNotIdleWhileRetryScheduled: TaskRouter refuses the engine's write several times; from
// the first refusal until the write lands, the engine never reports itself idle, though between
// attempts nothing is queued or in flight (the retry waits out its backoff).
func TestActivityNotIdleWhileRetryScheduled(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "retryidle", Agents: []string{"alice"}})
	ctx := context.Background()
	st0, _ := env.Engine.Stats(c.Key())
	env.Sim.SetFaults(twiliosim.Faults{FailNext: 6, FailStatus: http.StatusBadRequest,
		FailPathPrefix: "/v1/Workspaces/" + c.CC.WorkspaceSID + "/Workers/" + c.Worker("alice")})
	defer env.Sim.SetFaults(twiliosim.Faults{})
	r, err := c.Offer(ctx, "voice", "alice")
	must(t, err)
	must(t, env.Sim.Accept(r.SID))
	idleSamples := 0
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		st, _ := env.Engine.Stats(c.Key())
		idle := env.Engine.Idle(c.Key())
		// Read after Idle: a write that had not landed now had not landed when Idle answered.
		if c.WorkerState("alice").Activity == "On a Task" {
			return true, nil
		}
		if st.Failures > st0.Failures && idle {
			idleSamples++
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Sim.Dump())
	}
	if idleSamples > 0 {
		t.Fatalf("the engine reported itself idle %d times while a retry of a refused write was scheduled", idleSamples)
	}
	if st, _ := env.Engine.Stats(c.Key()); st.Failures-st0.Failures < 2 {
		t.Fatalf("only %d refusals: the test did not exercise a scheduled retry", st.Failures-st0.Failures)
	}
}
