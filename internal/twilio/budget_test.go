package twilio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// manualClock is a clock that moves only when the test says.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// kick grants what the budget's clock allows now, as its timer would once due.
func (b *budget) kick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dispatchLocked()
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// grant is what one waiter got back.
type grant struct {
	name string
	err  error
}

// queueUp starts one acquire and waits until it is queued, so arrival order is the order of calls.
func queueUp(t *testing.T, ctx context.Context, b *budget, name string, p Priority, key string, out chan<- grant) {
	t.Helper()
	before := b.queued()
	go func() { out <- grant{name, b.acquire(ctx, p, key)} }()
	waitFor(t, name+" queued", func() bool { return b.queued() == before+1 })
}

func receive(t *testing.T, out <-chan grant) grant {
	t.Helper()
	select {
	case g := <-out:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no waiter was answered")
		return grant{}
	}
}

// TestBudgetGrantsTheMostUrgentWaiterFirst queues a background read, then many activity
// writes, then a recovery request, on an exhausted budget: each token goes to the most urgent
// waiter, the recovery first although it came last, then activity in arrival order, the
// background read last.
func TestBudgetGrantsTheMostUrgentWaiterFirst(t *testing.T) {
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBudget(ClassTaskRouter, Limit{Rate: 20, Burst: 1}, clock.now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.acquire(ctx, PriorityActivity, ""); err != nil {
		t.Fatalf("the burst's token: %v", err)
	}
	out := make(chan grant, 64)
	queueUp(t, ctx, b, "background", PriorityBackground, "", out)
	const writes = 30
	for i := range writes {
		queueUp(t, ctx, b, fmt.Sprintf("activity-%02d", i), PriorityActivity, "", out)
	}
	queueUp(t, ctx, b, "recovery", PriorityRecovery, "", out)

	var order []string
	for range writes + 2 {
		// One token at a time (1/20 s), so the order of grants is the order of answers.
		clock.advance(50 * time.Millisecond)
		b.kick()
		g := receive(t, out)
		if g.err != nil {
			t.Fatalf("%s: %v", g.name, g.err)
		}
		order = append(order, g.name)
	}
	want := []string{"recovery"}
	for i := range writes {
		want = append(want, fmt.Sprintf("activity-%02d", i))
	}
	want = append(want, "background")
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("grant order (-want +got):\n%s", diff)
	}
}

// TestBudgetNewerRequestWithTheSameKeyReplacesTheQueuedOne: a worker's newer decision takes the
// place of its older write still waiting, its turn included; the older one ends with
// ErrSuperseded, unsent, and is counted; other keys are untouched.
func TestBudgetNewerRequestWithTheSameKeyReplacesTheQueuedOne(t *testing.T) {
	clock, b, ctx := exhaustedBudget(t)
	coalesced := budgetCoalesced.WithLabelValues(string(ClassTaskRouter), "activity")
	before := testutil.ToFloat64(coalesced)

	out := make(chan grant, 4)
	queueUp(t, ctx, b, "WK1 first", PriorityActivity, "WK1", out)
	queueUp(t, ctx, b, "WK2", PriorityActivity, "WK2", out)
	go func() { out <- grant{"WK1 newer", b.acquire(ctx, PriorityActivity, "WK1")} }()
	g := receive(t, out)
	if g.name != "WK1 first" || !errors.Is(g.err, ErrSuperseded) {
		t.Fatalf("%s answered %v, want WK1 first superseded", g.name, g.err)
	}
	if got := testutil.ToFloat64(coalesced) - before; got != 1 {
		t.Errorf("coalesced counter rose by %v, want 1", got)
	}
	// Still two queued: WK1's newer request in the older one's place, then WK2.
	waitFor(t, "the newer request queued", func() bool { return b.queued() == 2 })
	expectGrants(t, clock, b, out, "WK1 newer", "WK2")
}

// TestBudgetOrdersByTheRequestsCause: among requests of one priority, one whose cause came first
// (WithOrder: the event a worker's read and write act on) goes before requests that arrived
// before it but whose causes came later, so a worker's second request does not wait behind the
// first requests of every worker whose event came after its own.
func TestBudgetOrdersByTheRequestsCause(t *testing.T) {
	clock, b, ctx := exhaustedBudget(t)
	// Causes a second ago: earlier than the arrival of a request without an order.
	first := time.Now().Add(-time.Second)
	out := make(chan grant, 8)
	for i := 2; i <= 4; i++ {
		queueUp(t, WithOrder(ctx, first.Add(time.Duration(i)*time.Millisecond)), b, fmt.Sprintf("worker %d's read", i), PriorityActivity, "", out)
	}
	queueUp(t, ctx, b, "no order", PriorityActivity, "", out)
	queueUp(t, WithOrder(ctx, first.Add(time.Millisecond)), b, "worker 1's second read", PriorityActivity, "", out)
	queueUp(t, WithOrder(ctx, first), b, "a background read", PriorityBackground, "", out)
	expectGrants(t, clock, b, out, "worker 1's second read", "worker 2's read", "worker 3's read", "worker 4's read", "no order", "a background read")
}

// exhaustedBudget is a budget of one request a second on a manual clock whose only token is
// spent: every request from now on queues.
func exhaustedBudget(t *testing.T) (*manualClock, *budget, context.Context) {
	t.Helper()
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBudget(ClassTaskRouter, Limit{Rate: 1, Burst: 1}, clock.now)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.acquire(ctx, PriorityActivity, ""); err != nil {
		t.Fatal(err)
	}
	return clock, b, ctx
}

// expectGrants lets one token in a second on the manual clock and checks the waiters are granted
// in the order given, each without error.
func expectGrants(t *testing.T, clock *manualClock, b *budget, out <-chan grant, want ...string) {
	t.Helper()
	var order []string
	for range want {
		clock.advance(time.Second)
		b.kick()
		g := receive(t, out)
		if g.err != nil {
			t.Fatalf("%s: %v", g.name, g.err)
		}
		order = append(order, g.name)
	}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("grant order (-want +got):\n%s", diff)
	}
}

// TestBudgetCancelledWaiterLeavesTheQueue: a caller that gives up neither keeps its place nor
// consumes a token; an acquire whose earliest grant is past its deadline fails at once.
func TestBudgetCancelledWaiterLeavesTheQueue(t *testing.T) {
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBudget(ClassVoice, Limit{Rate: 1, Burst: 1}, clock.now)
	if err := b.acquire(context.Background(), PriorityRecovery, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan grant, 1)
	queueUp(t, ctx, b, "gives up", PriorityRecovery, "", out)
	cancel()
	if g := receive(t, out); !errors.Is(g.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", g.err)
	}
	if n := b.queued(); n != 0 {
		t.Fatalf("%d still queued", n)
	}
	short, cancelShort := context.WithDeadline(context.Background(), clock.now().Add(100*time.Millisecond))
	defer cancelShort()
	if err := b.acquire(short, PriorityRecovery, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait past the deadline: %v, want DeadlineExceeded at once", err)
	}
	clock.advance(time.Second)
	if err := b.acquire(context.Background(), PriorityRecovery, ""); err != nil {
		t.Fatalf("the token refilled after a second: %v", err)
	}
}

// TestRetryAfterPausesTheBudgetAgainstTheSimulator: the simulator limits the account to one
// request per second, the operator's budget allows three at once. An activity write that earns a
// 429 hands back its Retry-After (no retries left) and holds every activity write after it in the
// operator's queue, unsent; a recovery still goes (a dropped call does not wait out a pause that
// activity earned), and its own 429 holds everything, recovery included, until the simulator's
// clock passes Retry-After. Then the recovery goes first and succeeds.
func TestRetryAfterPausesTheBudgetAgainstTheSimulator(t *testing.T) {
	sim := twiliosim.New(twiliosim.Options{RateLimit: 1, RateBurst: 1})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	cc, err := sim.BuildContactCentre(twiliosim.ContactCentreSpec{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), Rate: 1, Burst: 3},
		withBudgetClock(sim.Now), WithRetry(-1, time.Millisecond, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	activity := WithPriority(ctx, PriorityActivity)
	ws := cc.WorkspaceSID
	if _, err := c.ListActivities(ctx, ws); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if _, err = c.ListActivities(activity, ws); RetryAfter(err) != time.Second {
		t.Fatalf("activity request: %v, want a 429 with Retry-After 1s", err)
	}
	b := budgets.byAccount[sim.AccountSID()].get(ClassTaskRouter, ws)
	stats := func(wantRequests, wantThrottled int) {
		t.Helper()
		if requests, throttled := sim.RequestStats(); requests != wantRequests || throttled != wantThrottled {
			t.Fatalf("simulator saw %d requests, %d throttled; want %d and %d", requests, throttled, wantRequests, wantThrottled)
		}
	}

	heldActivity := make(chan error, 1)
	go func() {
		_, err := c.ListActivities(activity, ws)
		heldActivity <- err
	}()
	waitFor(t, "the activity request held", func() bool { return b.queued() == 1 })
	stats(2, 1)
	if _, err := c.ListActivities(ctx, ws); RetryAfter(err) != time.Second {
		t.Fatalf("recovery during the activity pause: %v, want it sent and throttled by the simulator", err)
	}
	stats(3, 2)

	heldRecovery := make(chan error, 1)
	go func() {
		_, err := c.ListActivities(ctx, ws)
		heldRecovery <- err
	}()
	waitFor(t, "the recovery request held", func() bool { return b.queued() == 2 })
	stats(3, 2)
	sim.Advance(999 * time.Millisecond)
	b.kick()
	if n := b.queued(); n != 2 {
		t.Fatalf("granted before Retry-After ended: %d queued", n)
	}
	sim.Advance(time.Millisecond)
	b.kick()
	select {
	case err := <-heldRecovery:
		if err != nil {
			t.Fatalf("recovery after Retry-After: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the held recovery never went")
	}
	stats(4, 2)
	// The activity write waits until the bucket holds a token beyond the one it leaves for
	// recovery: two seconds later on the simulator's clock.
	if n := b.queued(); n != 1 {
		t.Fatalf("%d queued, want the activity write", n)
	}
	sim.Advance(time.Second)
	b.kick()
	if n := b.queued(); n != 1 {
		t.Fatalf("the activity write took recovery's headroom: %d queued", n)
	}
	sim.Advance(time.Second)
	b.kick()
	if err := <-heldActivity; err != nil {
		t.Fatalf("activity after the pause: %v", err)
	}
	stats(5, 2)
}

// TestClientCoalescesAWorkersQueuedWrite: through the whole client, a worker update tagged with
// a key is replaced by a newer one with the same key while both wait for the workspace's budget;
// the older never reaches Twilio, and its error says so and is not worth retrying.
func TestClientCoalescesAWorkersQueuedWrite(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return reply{status: 200, body: workerJSON} }
	acct := uniqueAccount()
	c, _ := newTestClient(t, f, Config{AccountSID: acct, Rate: 1.0 / 86400, Burst: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.FetchWorker(ctx, "WS1", "WK0"); err != nil {
		t.Fatal(err)
	}
	b := budgets.byAccount[acct].get(ClassTaskRouter, "WS1")
	activity := WithCoalesceKey(WithPriority(ctx, PriorityActivity), "WK1")
	name := "Break"
	older := make(chan error, 1)
	go func() {
		_, err := c.UpdateWorker(activity, "WS1", "WK1", WorkerUpdate{ActivitySID: &name})
		older <- err
	}()
	waitFor(t, "the older write queued", func() bool { return b.queued() == 1 })
	newer := make(chan error, 1)
	go func() {
		_, err := c.UpdateWorker(activity, "WS1", "WK1", WorkerUpdate{ActivitySID: &name})
		newer <- err
	}()
	select {
	case err := <-older:
		if !errors.Is(err, ErrSuperseded) || IsRetryable(err) {
			t.Fatalf("older write: %v (retryable %v), want ErrSuperseded, not retryable", err, IsRetryable(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the older write was not replaced")
	}
	if n := b.queued(); n != 1 {
		t.Errorf("%d queued, want the newer write alone", n)
	}
	if got := len(f.requests()); got != 1 {
		t.Errorf("fake saw %d requests, want only the first", got)
	}
	cancel()
	if err := <-newer; !errors.Is(err, context.Canceled) {
		t.Errorf("newer write after cancel: %v", err)
	}
}

// TestBudgetMetricsAreRegistered checks that the manager's /metrics serves the budget's
// metrics once a request has gone through a budget.
func TestBudgetMetricsAreRegistered(t *testing.T) {
	clock := &manualClock{t: time.Now()}
	b := newBudget(ClassOther, Limit{Rate: 1, Burst: 1}, clock.now)
	if err := b.acquire(context.Background(), PriorityBackground, ""); err != nil {
		t.Fatal(err)
	}
	b.pause(time.Second, PriorityBackground)
	budgetQueued.WithLabelValues(string(ClassOther), "background").Add(0)
	budgetCoalesced.WithLabelValues(string(ClassOther), "background").Add(0)
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		found[f.GetName()] = true
	}
	for _, name := range []string{
		"flexoperator_twilio_budget_wait_seconds", "flexoperator_twilio_budget_queued",
		"flexoperator_twilio_budget_granted_total", "flexoperator_twilio_budget_coalesced_total",
		"flexoperator_twilio_budget_pauses_total",
	} {
		if !found[name] {
			t.Errorf("%s is not registered", name)
		}
	}
}

// TestBudgetKeepsHeadroomForRecovery: at the default limits, activity writes alone cannot empty
// the bucket, background reads stop earlier still, so a recovery arriving while both are queued
// is granted without waiting for a refill.
func TestBudgetKeepsHeadroomForRecovery(t *testing.T) {
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := limitsOf(Config{}).TaskRouter
	if l != (Limit{Rate: 20, Burst: 40}) {
		t.Fatalf("default TaskRouter limit = %+v, want 20/s burst 40", l)
	}
	b := newBudget(ClassTaskRouter, l, clock.now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	granted := 0
	for ; granted < 40; granted++ {
		short, cancelShort := context.WithDeadline(ctx, clock.now())
		err := b.acquire(short, PriorityBackground, "")
		cancelShort()
		if err != nil {
			break
		}
	}
	if granted != 30 {
		t.Errorf("background took %d tokens of 40 at once, want 30 (10 left for activity and recovery)", granted)
	}
	out := make(chan grant, 4)
	for ; granted < 40; granted++ {
		short, cancelShort := context.WithDeadline(ctx, clock.now())
		err := b.acquire(short, PriorityActivity, "")
		cancelShort()
		if err != nil {
			break
		}
	}
	if granted != 35 {
		t.Errorf("background and activity took %d tokens of 40 at once, want 35 (5 left for recovery)", granted)
	}
	queueUp(t, ctx, b, "background", PriorityBackground, "", out)
	queueUp(t, ctx, b, "activity", PriorityActivity, "", out)
	if err := b.acquire(ctx, PriorityRecovery, ""); err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if n := b.queued(); n != 2 {
		t.Errorf("%d queued, want the activity write and the background read still waiting", n)
	}
}
