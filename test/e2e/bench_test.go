package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// sideEffects records the operator's Twilio side effects that the simulator processed (the hook
// runs after injected faults), with their wall-clock time: benchmarks time them, tests count them.
type sideEffects struct {
	mu    sync.Mutex
	times map[string][]time.Time
	paths map[string][]string
	// hook, when set, sees every request first (a test playing a concurrent writer).
	hook atomic.Pointer[func(*http.Request)]
	// cut, when set, fails the conference callbacks it returns true for before they reach the
	// operator, as a connection reset between Twilio and the operator does.
	cut atomic.Pointer[func(url.Values) bool]
	// holdEvents, when set, sees the body of every Event Streams delivery before it leaves; a
	// test blocks in it to hold deliveries back (the simulator's queue of that sink waits).
	holdEvents atomic.Pointer[func(body []byte)]
}

func (s *sideEffects) record(r *http.Request) {
	if h := s.hook.Load(); h != nil {
		(*h)(r)
	}
	if r.Method != http.MethodPost {
		return
	}
	var kind string
	switch {
	case workerUpdatePath.MatchString(r.URL.Path):
		kind = "worker-update"
	case strings.Contains(r.URL.Path, "/Participants/") && r.Form.Get("EndConferenceOnExit") == "false":
		kind = "correction"
	case strings.HasSuffix(r.URL.Path, "/Tasks") && strings.Contains(r.Form.Get("Attributes"), "disconnectedConferenceSid"):
		kind = "ping"
	case strings.Contains(r.URL.Path, "/Calls/") && strings.Contains(r.Form.Get("Twiml"), "<Enqueue"):
		kind = "enqueue"
	case strings.Contains(r.URL.Path, "/Calls/") && strings.Contains(r.Form.Get("Twiml"), "<Conference"):
		kind = "redial"
	default:
		return
	}
	s.mu.Lock()
	s.times[kind] = append(s.times[kind], time.Now())
	s.paths[kind] = append(s.paths[kind], r.URL.Path)
	s.mu.Unlock()
}

// callbackTimer is the simulator's webhook client, which records when a conference callback the
// benchmarks time leaves for the operator ("reset-sent": Flex's endConferenceOnExit=true on an
// agent leg; "leave-sent": an agent leg's participant-leave), so that latencies can be measured
// from the operator's receipt rather than from the simulated action. It also cuts the callbacks a
// test chose (sideEffects.cut) before they reach the operator.
func callbackTimer(s *sideEffects) *http.Client {
	return &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if hold := s.holdEvents.Load(); hold != nil && req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				(*hold)(body)
			}
			if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				body, err := io.ReadAll(req.Body)
				if err != nil {
					return nil, err
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				form, _ := url.ParseQuery(string(body))
				if cut := s.cut.Load(); cut != nil && (*cut)(form) {
					return nil, errConnectionCut
				}
				agent := strings.HasPrefix(form.Get("ParticipantLabel"), "worker")
				kind := ""
				switch ev := form.Get("StatusCallbackEvent"); {
				case agent && (ev == "participant-join" || ev == "participant-modify") && form.Get("EndConferenceOnExit") == "true":
					kind = "reset-sent"
				case agent && ev == "participant-leave":
					kind = "leave-sent"
				}
				if kind != "" {
					s.mu.Lock()
					s.times[kind] = append(s.times[kind], time.Now())
					s.paths[kind] = append(s.paths[kind], form.Get("ConferenceSid"))
					s.mu.Unlock()
				}
			}
			return http.DefaultTransport.RoundTrip(req)
		}),
	}
}

// errConnectionCut is the simulator's failure to reach the operator for a callback sideEffects.cut
// chose.
var errConnectionCut = errors.New("connection reset by peer (cut by the test)")

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitNext waits until a side effect of kind has happened more than n times and returns the time
// of the (n+1)th.
func (s *sideEffects) waitNext(kind string, n int) (time.Time, error) {
	var at time.Time
	err := scenario.Poll(context.Background(), scenario.Wait, func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.times[kind]) > n {
			at = s.times[kind][n]
			return true, nil
		}
		return false, nil
	})
	return at, err
}

// countFor counts the side effects of kind whose request path contains sid.
func (s *sideEffects) countFor(kind, sid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.paths[kind] {
		if strings.Contains(p, sid) {
			n++
		}
	}
	return n
}

func (s *sideEffects) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times[kind])
}

// workerUpdatePath is a worker's own resource (an activity or attributes update).
var workerUpdatePath = regexp.MustCompile(`/Workspaces/WS[0-9a-f]+/Workers/WK[0-9a-f]+$`)

// effects is fed by the simulator's request hook (TestMain).
var effects = &sideEffects{times: map[string][]time.Time{}, paths: map[string][]string{}}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkReaction measures, per call, on the wall clock: Flex's endConferenceOnExit reset (the
// agent accepting, which makes Flex set the flag) → the operator's correction request reaching
// Twilio; and the agent's page refresh (the leave callback) → the Recovery Ping task created.
// Each is reported end to end (from the simulated action) and operator-side (from the moment the
// simulator sends the callback to the operator; every reset here is the conference's first agent
// event, so the task fetch that decides protection is included). The baselines of the same run are
// one status write of a ConferenceRecovery (a merge patch, straight to the API server) and one
// Twilio call (a task fetch from the simulator through the real client).
// Run: make envtest && KUBEBUILDER_ASSETS=… go test ./test/e2e -run '^$' -bench Reaction -benchtime 40x
func BenchmarkReaction(b *testing.B) {
	ctx := context.Background()
	c, err := env.NewCentre(ctx, scenario.CentreOptions{Name: "bench", Agents: []string{"alice"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitPolicyReady(ctx); err != nil {
		b.Fatal(err)
	}
	var corrections, pings, correctionsOp, pingsOp []time.Duration
	requestsBefore, _ := env.Sim.RequestStats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		placed, err := env.Sim.PlaceCall(fmt.Sprintf("+1555010%04d", i), c.WorkflowSID, nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
			return t.SID == placed.TaskSID && r.Status == "pending"
		})
		if err != nil {
			b.Fatal(err)
		}
		n, sent := effects.count("correction"), effects.count("reset-sent")
		start := time.Now()
		if err := env.Sim.Accept(r.SID); err != nil {
			b.Fatal(err)
		}
		at, err := effects.waitNext("correction", n)
		if err != nil {
			b.Fatal("no correction:", err)
		}
		received, err := effects.waitNext("reset-sent", sent)
		if err != nil {
			b.Fatal("no reset callback:", err)
		}
		corrections = append(corrections, at.Sub(start))
		correctionsOp = append(correctionsOp, at.Sub(received))

		n, sent = effects.count("ping"), effects.count("leave-sent")
		start = time.Now()
		if err := env.Sim.RefreshPage(c.Worker("alice")); err != nil {
			b.Fatal(err)
		}
		at, err = effects.waitNext("ping", n)
		if err != nil {
			b.Fatal("no ping:", err)
		}
		received, err = effects.waitNext("leave-sent", sent)
		if err != nil {
			b.Fatal("no leave callback:", err)
		}
		pings = append(pings, at.Sub(start))
		pingsOp = append(pingsOp, at.Sub(received))

		// End the call: the customer hangs up, the ping is answered by nobody.
		if err := env.Sim.CustomerHangup(placed.CallSID); err != nil {
			b.Fatal(err)
		}
		task, _ := env.Sim.Snapshot().Task(placed.TaskSID)
		if _, err := c.WaitPhase(ctx, task.ConferenceSID, v1alpha1.PhaseAbandoned); err != nil {
			b.Fatal(err)
		}
		// Free alice for the next call.
		for _, res := range c.Tasks(func(t twiliosim.TaskState) bool { return t.Status == "wrapping" || t.Status == "assigned" }) {
			for _, rr := range env.Sim.Snapshot().Reservations(res.SID) {
				if rr.Status == "wrapping" || rr.Status == "accepted" {
					_ = env.Sim.Complete(rr.SID)
				}
			}
		}
		for _, p := range c.Tasks(scenario.IsPingTask) {
			for _, rr := range env.Sim.Snapshot().Reservations(p.SID) {
				if rr.Status == "pending" {
					_ = env.Sim.Reject(rr.SID)
				}
			}
		}
		env.Sim.Advance(20 * time.Second)
	}
	b.StopTimer()
	requestsAfter, _ := env.Sim.RequestStats()
	writes, calls := baselines(b, c)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(corrections, 0.5)), "correction-p50-ms")
	b.ReportMetric(ms(percentile(corrections, 0.99)), "correction-p99-ms")
	b.ReportMetric(ms(percentile(correctionsOp, 0.5)), "correction-operator-p50-ms")
	b.ReportMetric(ms(percentile(correctionsOp, 0.99)), "correction-operator-p99-ms")
	b.ReportMetric(ms(percentile(pings, 0.5)), "leave-to-ping-p50-ms")
	b.ReportMetric(ms(percentile(pings, 0.99)), "leave-to-ping-p99-ms")
	b.ReportMetric(ms(percentile(pingsOp, 0.5)), "leave-to-ping-operator-p50-ms")
	b.ReportMetric(ms(percentile(pingsOp, 0.99)), "leave-to-ping-operator-p99-ms")
	b.ReportMetric(ms(percentile(writes, 0.5)), "baseline-status-write-p50-ms")
	b.ReportMetric(ms(percentile(calls, 0.5)), "baseline-twilio-call-p50-ms")
	b.ReportMetric(ms(percentile(writes, 0.99)), "baseline-status-write-p99-ms")
	b.ReportMetric(ms(percentile(calls, 0.99)), "baseline-twilio-call-p99-ms")
	b.ReportMetric(float64(requestsAfter-requestsBefore)/float64(b.N), "twilio-requests/call")
	b.ReportMetric(0, "ns/op")
}

// baselines times, in the same run, 40 status writes of one of the centre's recoveries and 40
// Twilio calls (a task fetch through the real client from the simulator).
func baselines(b *testing.B, c *scenario.Centre) (writes, calls []time.Duration) {
	ctx := context.Background()
	var list v1alpha1.ConferenceRecoveryList
	if err := env.Client.List(ctx, &list, client.InNamespace(c.Namespace)); err != nil || len(list.Items) == 0 {
		b.Fatalf("no recovery to write: %v", err)
	}
	rec := &list.Items[0]
	tc, err := twilio.New(twilio.Config{AccountSID: env.Sim.AccountSID(), AuthToken: env.Sim.AuthToken(), BaseURL: env.Sim.URL()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		start := time.Now()
		patch := fmt.Sprintf(`{"status":{"lastSequenceNumber":%d}}`, 1_000_000+i)
		if err := env.Client.Status().Patch(ctx, rec, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			b.Fatal(err)
		}
		writes = append(writes, time.Since(start))
		start = time.Now()
		if _, err := tc.FetchTask(ctx, c.CC.WorkspaceSID, rec.Spec.TaskSID); err != nil {
			b.Fatal(err)
		}
		calls = append(calls, time.Since(start))
	}
	return writes, calls
}

// BenchmarkAPICallsPerRecovery counts the Twilio REST requests the operator makes for one full
// recovery (answer, refresh, ping accepted, reconnect accepted, Recovered).
// Run: go test ./test/e2e -run '^$' -bench APICalls -benchtime 5x
func BenchmarkAPICallsPerRecovery(b *testing.B) {
	ctx := context.Background()
	total := 0
	for i := 0; i < b.N; i++ {
		c, err := env.NewCentre(ctx, scenario.CentreOptions{Name: "calls", Agents: []string{"alice"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitPolicyReady(ctx); err != nil {
			b.Fatal(err)
		}
		before, _ := env.Sim.RequestStats()
		call, err := c.Answer(ctx, "alice")
		if err != nil {
			b.Fatal(err)
		}
		// The refresh comes after Flex's endConferenceOnExit reset has been corrected.
		if _, err := c.WaitRecovery(ctx, call.ConferenceSID, "corrected", func(*v1alpha1.ConferenceRecovery) bool {
			leg, ok := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
			return ok && !leg.EndConferenceOnExit
		}); err != nil {
			b.Fatal(err)
		}
		if err := env.Sim.RefreshPage(c.Worker("alice")); err != nil {
			b.Fatal(err)
		}
		for _, kind := range []func(twiliosim.TaskState) bool{scenario.IsPingTask, scenario.IsReconnectTask} {
			r, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
				return kind(t) && r.Status == "pending"
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := env.Sim.Accept(r.SID); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.WaitPhase(ctx, call.ConferenceSID, v1alpha1.PhaseRecovered); err != nil {
			b.Fatal(err)
		}
		after, _ := env.Sim.RequestStats()
		total += after - before
	}
	b.ReportMetric(float64(total)/float64(b.N), "twilio-requests/recovery")
}

// BenchmarkMemory5000Recoveries measures the heap the process holds once the operator has cached
// and reconciled 5,000 ConferenceRecovery objects with realistic status (the test process also
// holds the simulator and the test client; the delta over the baseline is the operator's share).
// Run: go test ./test/e2e -run '^$' -bench Memory -benchtime 1x -timeout 30m
func BenchmarkMemory5000Recoveries(b *testing.B) {
	const n = 5000
	ctx := context.Background()
	c, err := env.NewCentre(ctx, scenario.CentreOptions{Name: "mem", Agents: []string{"alice"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitPolicyReady(ctx); err != nil {
		b.Fatal(err)
	}
	base := heapInUse()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := createFinishedRecovery(ctx, c, i); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	// Wait until the operator has seen them all: the policy counts them.
	err = scenario.Poll(ctx, 10*time.Minute, func() (bool, error) {
		var p v1alpha1.ConferenceRecoveryPolicy
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Policy}, &p); err != nil {
			return false, err
		}
		return p.Status.Recoveries.Recovered >= n, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	after := heapInUse()
	b.ReportMetric(float64(after)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(after-base)/(1<<20), "delta-MiB")
	b.ReportMetric(float64(after-base)/n, "bytes/recovery")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// createFinishedRecovery creates a Recovered ConferenceRecovery with a status the size of a real one.
func createFinishedRecovery(ctx context.Context, c *scenario.Centre, i int) error {
	sid := fmt.Sprintf("CF%032x", 0xbe000000+i)
	now := metav1.NewTime(env.Sim.Now())
	rec := &v1alpha1.ConferenceRecovery{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: strings.ToLower(sid),
			Labels: map[string]string{v1alpha1.PolicyLabel: c.Policy}},
		Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: c.Policy, ConferenceSID: sid,
			TaskSID: fmt.Sprintf("WT%032x", i), WorkflowSID: c.WorkflowSID},
	}
	if err := env.Client.Create(ctx, rec); err != nil {
		return err
	}
	legs := []v1alpha1.ParticipantStatus{
		{CallSID: fmt.Sprintf("CA%032x", 3*i), Label: "customer", Role: v1alpha1.RoleCustomer, JoinedAt: &now, LeftAt: &now, LeaveReason: "participant_updated_via_api", Graceful: true},
		{CallSID: fmt.Sprintf("CA%032x", 3*i+1), Label: "worker", Role: v1alpha1.RoleAgent, WorkerSID: c.Worker("alice"), JoinedAt: &now, LeftAt: &now, LeaveReason: "participant_hung_up"},
		{CallSID: fmt.Sprintf("CA%032x", 3*i+2), Label: "external", Role: v1alpha1.RoleThirdParty, JoinedAt: &now, LeftAt: &now, LeaveReason: "participant_updated_via_api", Graceful: true},
	}
	rec.Status = v1alpha1.ConferenceRecoveryStatus{
		Phase: v1alpha1.PhaseRecovered, Reason: "Recovered", Message: "The customer is back with agent " + c.Worker("alice") + ".",
		CustomerCallSID: legs[0].CallSID, LastSequenceNumber: 14, Participants: legs,
		Disconnect: &v1alpha1.DisconnectStatus{WorkerSID: c.Worker("alice"), WorkerName: "alice", CallSID: legs[1].CallSID,
			ReservationSID: fmt.Sprintf("WR%032x", i), Reason: "participant_hung_up", At: now},
		Ping: &v1alpha1.PingStatus{TaskSID: fmt.Sprintf("WT%032x", 0xa0000000+i), CreatedAt: &now, Outcome: v1alpha1.PingAccepted, ResolvedAt: &now},
		Reconnect: &v1alpha1.ReconnectStatus{TargetWorkerSID: c.Worker("alice"), EnqueuedAt: &now, TaskSID: fmt.Sprintf("WT%032x", 0xb0000000+i),
			QueuedAt: &now, OriginalReservationCompletedAt: &now, WorkerSID: c.Worker("alice"), AcceptedAt: &now, ConferenceSID: fmt.Sprintf("CF%032x", 0xc0000000+i)},
		Timings:    v1alpha1.RecoveryTimings{CustomerWithoutAgent: &metav1.Duration{Duration: 9 * time.Second}, DetectionToPing: &metav1.Duration{Duration: 40 * time.Millisecond}},
		FinishedAt: &now,
	}
	for _, name := range []string{"Announce", "HoldCustomer", "MarkOriginalTask", "CreatePingTask", "CompletePingTask", "MarkPingSuccessful", "EnqueueReconnect", "CompleteOriginalReservation"} {
		rec.Status.Actions = append(rec.Status.Actions, v1alpha1.RecoveryAction{Name: name, State: v1alpha1.ActionDone, SID: "WT00000000000000000000000000000000", At: now})
	}
	status := rec.Status
	// The operator writes the new object's status too; retry on its conflicts.
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(rec), rec); err != nil {
			return err
		}
		rec.Status = status
		return env.Client.Status().Update(ctx, rec)
	})
}
