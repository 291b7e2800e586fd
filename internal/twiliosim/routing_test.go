package twiliosim_test

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

func attrsJSON(t *testing.T, m map[string]any) string {
	t.Helper()
	if m == nil {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func createTask(t *testing.T, c twilio.Client, ws, wf string, attrs map[string]any, opts ...func(*twilio.TaskCreate)) twilio.Task {
	t.Helper()
	tc := twilio.TaskCreate{WorkflowSID: wf, Attributes: attrsJSON(t, attrs)}
	for _, o := range opts {
		o(&tc)
	}
	task, err := c.CreateTask(ctxT(t), ws, tc)
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	return task
}

func withPriority(p int) func(*twilio.TaskCreate) {
	return func(tc *twilio.TaskCreate) { tc.Priority = &p }
}
func withTTL(s int) func(*twilio.TaskCreate) { return func(tc *twilio.TaskCreate) { tc.Timeout = &s } }
func onChannel(ch string) func(*twilio.TaskCreate) {
	return func(tc *twilio.TaskCreate) { tc.TaskChannel = ch }
}

// reservedWorkers names the workers holding a live reservation of the task.
func reservedWorkers(t *testing.T, c twilio.Client, cc *twiliosim.ContactCentre, task string) []string {
	t.Helper()
	names := map[string]string{}
	for n, sid := range cc.Workers {
		names[sid] = n
	}
	var out []string
	for _, r := range reservationsOf(t, c, cc.WorkspaceSID, task) {
		if r.Status == "pending" || r.Status == "accepted" {
			out = append(out, names[r.WorkerSID])
		}
	}
	sort.Strings(out)
	return out
}

func TestRouting(t *testing.T) {
	skilled := func(name string, skills ...string) twiliosim.WorkerSpec {
		return twiliosim.WorkerSpec{Name: name, Attributes: map[string]any{"skills": skills}}
	}
	// The configuration shared by the cases: a known-worker filter, a sales
	// filter with a 15 s first step limited to gold agents and a second step
	// for the whole queue, and a default filter.
	config := map[string]any{"task_routing": map[string]any{
		"filters": []any{
			map[string]any{"filter_friendly_name": "Known", "expression": "agent_sid != null",
				"targets": []any{map[string]any{"queue": "Everyone", "known_worker_sid": "task.agent_sid"}}},
			map[string]any{"filter_friendly_name": "Sales", "expression": `type == "sales"`,
				"targets": []any{
					map[string]any{"queue": "Sales", "expression": "worker.level == 3", "timeout": 15},
					map[string]any{"timeout": 30},
				}},
		},
		"default_filter": map[string]any{"queue": "Support"},
	}}
	spec := twiliosim.ContactCentreSpec{
		Workers: []twiliosim.WorkerSpec{
			skilled("ann", "sales"), skilled("bob", "support"), skilled("cat", "sales"),
		},
		Queues: []twiliosim.QueueSpec{
			{Name: "Everyone", TargetWorkers: "1==1"},
			{Name: "Sales", TargetWorkers: `skills HAS "sales"`},
			{Name: "Support", TargetWorkers: `skills HAS "support"`},
		},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Main", Configuration: config}},
	}

	t.Run("known worker reaches that worker only", func(t *testing.T) {
		s, c := start(t, twiliosim.Options{})
		cc := build(t, s, spec)
		task := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Main"], map[string]any{"agent_sid": cc.Workers["cat"]})
		if diff := cmp.Diff([]string{"cat"}, reservedWorkers(t, c, cc, task.SID)); diff != "" {
			t.Errorf("reserved (-want +got):\n%s", diff)
		}
		// cat rejects: nobody else may get it, the task waits.
		r := onlyPending(t, c, cc.WorkspaceSID, task.SID)
		if _, err := c.UpdateReservation(ctxT(t), cc.WorkspaceSID, task.SID, r.SID, twilio.ReservationUpdate{Status: ptr("rejected")}); err != nil {
			t.Fatal(err)
		}
		if got := reservedWorkers(t, c, cc, task.SID); len(got) != 0 {
			t.Errorf("after rejection the task went to %v; known-worker routing must not offer it to others", got)
		}
	})

	t.Run("target timeout moves to the next target", func(t *testing.T) {
		s, c := start(t, twiliosim.Options{})
		cc := build(t, s, spec) // no worker has level 3
		task := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Main"], map[string]any{"type": "sales"})
		if got := reservedWorkers(t, c, cc, task.SID); len(got) != 0 {
			t.Fatalf("reserved %v in the first step, which matches nobody", got)
		}
		s.Advance(14 * time.Second)
		if got := reservedWorkers(t, c, cc, task.SID); len(got) != 0 {
			t.Fatalf("reserved %v before the step timeout", got)
		}
		s.Advance(time.Second)
		if diff := cmp.Diff([]string{"ann"}, reservedWorkers(t, c, cc, task.SID)); diff != "" {
			t.Errorf("reserved after the timeout (-want +got):\n%s", diff)
		}
	})

	t.Run("last target timeout cancels the task", func(t *testing.T) {
		s, c := start(t, twiliosim.Options{})
		cc := build(t, s, spec)
		for _, w := range []string{"ann", "cat"} {
			if err := s.SetWorkerActivity(cc.Workers[w], "Offline"); err != nil {
				t.Fatal(err)
			}
		}
		task := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Main"], map[string]any{"type": "sales"})
		s.Advance(45 * time.Second)
		got, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, task.SID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AssignmentStatus != "canceled" || got.Reason != twiliosim.ReasonWorkflowTimeout {
			t.Errorf("task is %s (%q), want canceled (%q)", got.AssignmentStatus, got.Reason, twiliosim.ReasonWorkflowTimeout)
		}
	})

	t.Run("default filter", func(t *testing.T) {
		s, c := start(t, twiliosim.Options{})
		cc := build(t, s, spec)
		task := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Main"], map[string]any{"type": "billing"})
		if diff := cmp.Diff([]string{"bob"}, reservedWorkers(t, c, cc, task.SID)); diff != "" {
			t.Errorf("reserved (-want +got):\n%s", diff)
		}
		got, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, task.SID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TaskQueueSID != cc.Queues["Support"] || got.AssignmentStatus != "reserved" {
			t.Errorf("task in queue %s status %s, want %s reserved", got.TaskQueueSID, got.AssignmentStatus, cc.Queues["Support"])
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestPriorityOrder(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Activity: "Offline"}))
	ws, wf := cc.WorkspaceSID, cc.Workflows["Voice"]
	low := createTask(t, c, ws, wf, map[string]any{"n": "low"}, withPriority(1))
	high := createTask(t, c, ws, wf, map[string]any{"n": "high"}, withPriority(50))
	mid := createTask(t, c, ws, wf, map[string]any{"n": "mid"}, withPriority(10))
	if _, err := c.UpdateWorker(ctxT(t), ws, cc.Workers["ann"], twilio.WorkerUpdate{ActivitySID: ptr(cc.Activities["Available"])}); err != nil {
		t.Fatal(err)
	}
	order := []string{}
	for range 3 {
		var pending []twilio.Reservation
		var task string
		for _, tk := range []twilio.Task{low, high, mid} {
			for _, r := range reservationsOf(t, c, ws, tk.SID) {
				if r.Status == "pending" {
					pending = append(pending, r)
					task = tk.SID
				}
			}
		}
		if len(pending) != 1 {
			t.Fatalf("%d pending reservations for one worker of capacity 1", len(pending))
		}
		order = append(order, task)
		if err := s.Accept(pending[0].SID); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(pending[0].SID); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{high.SID, mid.SID, low.SID}, order); diff != "" {
		t.Errorf("service order (-want +got):\n%s", diff)
	}
}

func TestCapacityAndActivity(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(
		twiliosim.WorkerSpec{Name: "ann", Capacity: map[string]int{"chat": 2}},
		twiliosim.WorkerSpec{Name: "bob", Activity: "Break"},
	))
	ws, wf := cc.WorkspaceSID, cc.Workflows["Voice"]
	v1 := createTask(t, c, ws, wf, nil, onChannel("voice"))
	v2 := createTask(t, c, ws, wf, nil, onChannel("voice"))
	c1 := createTask(t, c, ws, wf, nil, onChannel("chat"))
	c2 := createTask(t, c, ws, wf, nil, onChannel("chat"))
	c3 := createTask(t, c, ws, wf, nil, onChannel("chat"))
	got := map[string][]string{}
	for name, task := range map[string]twilio.Task{"v1": v1, "v2": v2, "c1": c1, "c2": c2, "c3": c3} {
		got[name] = reservedWorkers(t, c, cc, task.SID)
	}
	want := map[string][]string{"v1": {"ann"}, "v2": nil, "c1": {"ann"}, "c2": {"ann"}, "c3": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("voice capacity 1, chat 2, bob on Break (-want +got):\n%s", diff)
	}
	// bob becomes available: he takes the waiting voice task (the oldest).
	if err := s.SetWorkerActivity(cc.Workers["bob"], "Available"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bob"}, reservedWorkers(t, c, cc, v2.SID)); diff != "" {
		t.Errorf("v2 after bob is available (-want +got):\n%s", diff)
	}
}

func TestReservationLifecycle(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}, twiliosim.WorkerSpec{Name: "bob"}))
	ws, wf := cc.WorkspaceSID, cc.Workflows["Voice"]

	t.Run("timeout moves the worker to the timeout activity and re-offers", func(t *testing.T) {
		task := createTask(t, c, ws, wf, nil)
		first := onlyPending(t, c, ws, task.SID)
		s.Advance(119 * time.Second)
		if r, err := c.FetchReservation(ctxT(t), ws, task.SID, first.SID); err != nil || r.Status != "pending" {
			t.Fatalf("before the timeout: %+v, %v", r, err)
		}
		s.Advance(time.Second)
		r, err := c.FetchReservation(ctxT(t), ws, task.SID, first.SID)
		if err != nil || r.Status != "timeout" {
			t.Fatalf("after 120s: %+v, %v", r, err)
		}
		w, err := c.FetchWorker(ctxT(t), ws, first.WorkerSID)
		if err != nil || w.ActivityName != "Offline" {
			t.Errorf("worker who let the offer time out is %q (%v), want Offline", w.ActivityName, err)
		}
		next := onlyPending(t, c, ws, task.SID)
		if next.WorkerSID == first.WorkerSID {
			t.Errorf("re-offered to the same (offline) worker")
		}
		if err := s.SetWorkerActivity(first.WorkerSID, "Available"); err != nil {
			t.Fatal(err)
		}
		if err := s.Accept(next.SID); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(next.SID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rejection offers the task to the next worker", func(t *testing.T) {
		task := createTask(t, c, ws, wf, nil)
		first := onlyPending(t, c, ws, task.SID)
		if _, err := c.UpdateReservation(ctxT(t), ws, task.SID, first.SID, twilio.ReservationUpdate{Status: ptr("rejected")}); err != nil {
			t.Fatal(err)
		}
		next := onlyPending(t, c, ws, task.SID)
		if next.WorkerSID == first.WorkerSID {
			t.Errorf("after rejection the task went back to %s", first.WorkerSID)
		}
		if _, err := c.UpdateReservation(ctxT(t), ws, task.SID, next.SID, twilio.ReservationUpdate{Status: ptr("accepted")}); err != nil {
			t.Fatal(err)
		}
		got, err := c.FetchTask(ctxT(t), ws, task.SID)
		if err != nil || got.AssignmentStatus != "assigned" {
			t.Errorf("task after accept: %+v, %v", got, err)
		}
	})
}

func TestTaskTTLCancel(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Activity: "Offline"}))
	rc := newReceiver(t, s.AuthToken(), nil)
	sink, err := c.CreateSink(ctxT(t), twilio.SinkCreate{Description: "ops", Destination: rc.url("/events"), BatchEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ActivateSink(sink.SID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctxT(t), twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "ops",
		Types: []string{"com.twilio.taskrouter.task.canceled"}}); err != nil {
		t.Fatal(err)
	}
	ping := createTask(t, c, cc.WorkspaceSID, cc.Workflows["Voice"], map[string]any{"ping": true}, withTTL(15), withPriority(1000))
	s.Advance(14 * time.Second)
	if got, _ := c.FetchTask(ctxT(t), cc.WorkspaceSID, ping.SID); got.AssignmentStatus != "pending" {
		t.Fatalf("before the TTL the task is %s", got.AssignmentStatus)
	}
	s.Advance(time.Second)
	got, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, ping.SID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AssignmentStatus != "canceled" || got.Reason != "Task TTL Exceeded" {
		t.Errorf("task is %s (%q), want canceled (Task TTL Exceeded)", got.AssignmentStatus, got.Reason)
	}
	waitDelivered(t, s)
	_, events, _, _ := rc.snapshot()
	if len(events) != 1 {
		t.Fatalf("got %d events, want one task.canceled", len(events))
	}
	p := payloadOf(events[0])
	if events[0]["type"] != "com.twilio.taskrouter.task.canceled" || p["task_sid"] != ping.SID || p["task_canceled_reason"] != "Task TTL Exceeded" {
		t.Errorf("event %v payload %v", events[0]["type"], p)
	}
	// Twilio deletes finished tasks after a while.
	s.Advance(15 * time.Minute)
	if _, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, ping.SID); !twilio.IsNotFound(err) {
		t.Errorf("fetch 15 minutes after cancel: %v, want not found", err)
	}
}

func TestIfMatchStaleVersion(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann", Attributes: map[string]any{"v": 1}}))
	ws, wk := cc.WorkspaceSID, cc.Workers["ann"]
	read, err := c.FetchWorker(ctxT(t), ws, wk)
	if err != nil {
		t.Fatal(err)
	}
	if read.Version == "" {
		t.Fatal("FetchWorker returned no version (ETag)")
	}
	// Someone else changes the worker after our read.
	if _, err := c.UpdateWorker(ctxT(t), ws, wk, twilio.WorkerUpdate{Attributes: ptr(`{"v":2}`), IfMatch: read.Version}); err != nil {
		t.Fatalf("update at the current version: %v", err)
	}
	_, err = c.UpdateWorker(ctxT(t), ws, wk, twilio.WorkerUpdate{ActivitySID: ptr(cc.Activities["Break"]), Attributes: ptr(`{"v":3}`), IfMatch: read.Version})
	if !twilio.IsVersionConflict(err) {
		t.Fatalf("update at a stale version: %v, want 412", err)
	}
	now, err := c.FetchWorker(ctxT(t), ws, wk)
	if err != nil {
		t.Fatal(err)
	}
	if now.Attributes != `{"v":2}` || now.ActivityName != "Available" {
		t.Errorf("after the refused update: attributes %s activity %s, want {\"v\":2} Available", now.Attributes, now.ActivityName)
	}
	// Tasks honour If-Match too.
	task := createTask(t, c, ws, cc.Workflows["Voice"], nil)
	fresh, err := c.FetchTask(ctxT(t), ws, task.SID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTask(ctxT(t), ws, task.SID, twilio.TaskUpdate{Priority: ptr(5), IfMatch: fresh.Version}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTask(ctxT(t), ws, task.SID, twilio.TaskUpdate{Priority: ptr(9), IfMatch: fresh.Version}); !twilio.IsVersionConflict(err) {
		t.Errorf("task update at a stale version: %v, want 412", err)
	}
}

func TestRateLimitBurstCompletes(t *testing.T) {
	s, c := start(t, twiliosim.Options{RateLimit: 20, RateBurst: 20})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
	throttledBefore := countTwilioMetric(t, "flexoperator_twilio_requests_total", "status", "429")
	retriesBefore := countTwilioMetric(t, "flexoperator_twilio_retries_total", "reason", "429")
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.FetchWorker(ctxT(t), cc.WorkspaceSID, cc.Workers["ann"])
			errs <- err
		}()
	}
	// The simulator's clock is frozen, so the bucket cannot refill while the burst is sent: past
	// the burst every request is throttled whatever the machine's speed. Once some are, a second
	// of simulated time lets the client's retries through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, throttled := s.RequestStats(); throttled > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no request of the burst was throttled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Advance(10 * time.Second)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("request in the burst failed: %v", err)
		}
	}
	requests, throttled := s.RequestStats()
	if throttled == 0 || requests != n+throttled {
		t.Errorf("requests %d, throttled %d: want some throttled and every one retried", requests, throttled)
	}
	// The client's metrics saw every 429 and counted a retry for each.
	if got := countTwilioMetric(t, "flexoperator_twilio_requests_total", "status", "429") - throttledBefore; got != float64(throttled) {
		t.Errorf("metrics counted %v answers 429, the simulator sent %d", got, throttled)
	}
	if got := countTwilioMetric(t, "flexoperator_twilio_retries_total", "reason", "429") - retriesBefore; got != float64(throttled) {
		t.Errorf("metrics counted %v retries after 429, want %d", got, throttled)
	}
}

// countTwilioMetric sums a counter of the client's metrics over the series whose label has the value.
func countTwilioMetric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func TestPagination(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	spec := voiceCentre()
	for i := range 120 {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: "agent" + string(rune('a'+i/26)) + string(rune('a'+i%26))})
	}
	cc := build(t, s, spec)
	got, err := c.ListWorkers(ctxT(t), cc.WorkspaceSID, twilio.WorkerFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 120 {
		t.Errorf("listed %d workers over pages, want 120", len(got))
	}
	avail, err := c.ListWorkers(ctxT(t), cc.WorkspaceSID, twilio.WorkerFilter{Available: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(avail) != 120 {
		t.Errorf("listed %d available workers, want 120", len(avail))
	}
}

func TestNotFoundAndValidation(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(twiliosim.WorkerSpec{Name: "ann"}))
	if _, err := c.FetchTask(ctxT(t), cc.WorkspaceSID, "WT00000000000000000000000000000000"); !twilio.IsNotFound(err) {
		t.Errorf("unknown task: %v, want not found", err)
	}
	if _, err := c.FetchConference(ctxT(t), "CF00000000000000000000000000000000"); !twilio.IsNotFound(err) {
		t.Errorf("unknown conference: %v, want not found", err)
	}
	if _, err := c.CreateTask(ctxT(t), cc.WorkspaceSID, twilio.TaskCreate{WorkflowSID: cc.Workflows["Voice"], Attributes: "[1]"}); !twilio.IsTerminal(err) {
		t.Errorf("task with array attributes: %v, want a 400", err)
	}
	bad := `{"task_routing":{"filters":[{"expression":"a ==","targets":[{"queue":"` + cc.Queues["Everyone"] + `"}]}]}}`
	if _, err := c.UpdateWorkflowConfiguration(ctxT(t), cc.WorkspaceSID, cc.Workflows["Voice"], bad); !twilio.IsTerminal(err) {
		t.Errorf("workflow with a bad expression: %v, want a 400", err)
	}
	wf, err := c.FetchWorkflow(ctxT(t), cc.WorkspaceSID, cc.Workflows["Voice"])
	if err != nil || wf.Configuration == bad {
		t.Errorf("refused configuration was stored: %v", err)
	}
}

// TestListWorkersBuiltInFields: TargetWorkersExpression sees a worker's built-in fields (sid,
// friendly_name, activity_sid, activity_name) beside its attributes, as TaskRouter's does.
func TestListWorkersBuiltInFields(t *testing.T) {
	s, c := start(t, twiliosim.Options{})
	cc := build(t, s, voiceCentre(
		twiliosim.WorkerSpec{Name: "ann", Activity: "Offline", Attributes: map[string]any{"skills": []any{"voice"}}},
		twiliosim.WorkerSpec{Name: "bob", Attributes: map[string]any{"skills": []any{"chat"}, "friendly_name": "not bob"}},
	))
	ann, bob := cc.Workers["ann"], cc.Workers["bob"]
	cases := []struct {
		expression string
		want       []string
	}{
		{"activity_name == 'Offline'", []string{ann}},
		{"activity_sid == '" + cc.Activities["Available"] + "'", []string{bob}},
		{"sid IN ['" + bob + "']", []string{bob}},
		{"friendly_name == 'bob'", []string{bob}}, // the built-in field hides the attribute of that name
		{"friendly_name == 'ann' OR skills HAS 'chat'", []string{ann, bob}},
		{"skills HAS 'voice' AND activity_name != 'Available'", []string{ann}},
	}
	for _, tc := range cases {
		workers, err := c.ListWorkers(ctxT(t), cc.WorkspaceSID, twilio.WorkerFilter{TargetWorkersExpression: tc.expression})
		if err != nil {
			t.Fatalf("%s: %v", tc.expression, err)
		}
		var got []string
		for _, w := range workers {
			got = append(got, w.SID)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: workers %v, want %v", tc.expression, got, want)
		}
	}
}
