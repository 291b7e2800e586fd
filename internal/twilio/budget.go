package twilio

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ErrSuperseded is returned by a request that was still waiting for its share of Twilio's budget
// when a newer request with the same coalescing key (WithCoalesceKey) arrived: the newer one took
// its place in the queue and the older one was never sent.
var ErrSuperseded = errors.New("twilio: superseded by a newer request with the same key")

type coalesceKey struct{}

// WithCoalesceKey returns a context whose Twilio requests replace an older request with the same
// key that still waits in the same budget's queue: the older one fails with ErrSuperseded, the
// newer one takes its place in the queue (its arrival, and the more urgent of the two
// priorities). Under overload this keeps one request per key
// queued (a worker's newest decision) instead of a growing backlog of stale ones. A request
// already sent is never affected. An empty key coalesces nothing.
func WithCoalesceKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, coalesceKey{}, key)
}

func coalesceKeyOf(ctx context.Context) string {
	k, _ := ctx.Value(coalesceKey{}).(string)
	return k
}

// waiter is one request waiting for a token.
type waiter struct {
	priority Priority
	// order is when the request's cause arrived (WithOrder), or the request itself (wall clock).
	order time.Time
	seq   uint64
	key   string
	since time.Time
	// ready receives exactly one value: nil when granted, ErrSuperseded when replaced.
	ready chan error
	// index is the waiter's place in the heap, -1 once it has left it.
	index int
}

// waiters orders the queue: most urgent priority first, then the oldest cause (WithOrder), then
// first come first served.
type waiters []*waiter

func (q waiters) Len() int { return len(q) }
func (q waiters) Less(i, j int) bool {
	if q[i].priority != q[j].priority {
		return q[i].priority < q[j].priority
	}
	if !q[i].order.Equal(q[j].order) {
		return q[i].order.Before(q[j].order)
	}
	return q[i].seq < q[j].seq
}
func (q waiters) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waiters) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}

// budget is one token bucket of Twilio requests (one resource class of one account or workspace)
// with a priority queue in front of it: a token always goes to the most urgent waiter, so a
// request never waits behind a less urgent one queued earlier. A 429 with Retry-After pauses the
// whole budget until then.
type budget struct {
	class Class

	mu    sync.Mutex
	now   func() time.Time
	rate  float64 // tokens per second; +Inf means no limit
	burst float64
	// tokens were available at last; they refill at rate up to burst.
	tokens float64
	last   time.Time
	// pausedUntil[p] is the end of the latest Retry-After that applies to priority p; no token
	// goes to a request of priority p before it. A 429 pauses its own priority and every less
	// urgent one, so it is non-decreasing in p.
	pausedUntil [PriorityBackground + 1]time.Time
	queue       waiters
	byKey       map[string]*waiter
	seq         uint64
	timer       *time.Timer
	timerAt     time.Time
}

func newBudget(class Class, l Limit, now func() time.Time) *budget {
	b := &budget{class: class, now: now, byKey: map[string]*waiter{}, last: now()}
	b.setLimitLocked(l)
	b.tokens = b.burst
	return b
}

// setLimit applies a new rate and burst, keeping the tokens already earned.
func (b *budget) setLimit(l Limit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked(b.now())
	b.setLimitLocked(l)
	b.tokens = min(b.tokens, b.burst)
	b.dispatchLocked()
}

func (b *budget) setLimitLocked(l Limit) {
	if l.Rate < 0 {
		b.rate, b.burst = math.Inf(1), math.Inf(1)
		return
	}
	b.rate, b.burst = l.Rate, float64(max(l.Burst, 1))
}

func (b *budget) refillLocked(now time.Time) {
	if math.IsInf(b.rate, 1) {
		b.tokens, b.last = b.burst, now
		return
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// needLocked is how many tokens must be in the bucket for a request of priority p to take one.
// A less urgent class leaves some behind (its headroom): under overload activity writes and
// background reads then keep the bucket a few tokens above empty, so a recovery arriving finds
// one at once instead of waiting for the next refill. The sustained rate is unchanged; only the
// level the bucket hovers at is, which also leaves Twilio's own bucket a margin for jitter.
func (b *budget) needLocked(p Priority) float64 {
	if math.IsInf(b.rate, 1) || p <= PriorityRecovery {
		return 1
	}
	headroom := max(1, math.Floor(b.burst/8))
	if p >= PriorityBackground {
		headroom = max(2, math.Floor(b.burst/4))
	}
	return 1 + min(headroom, b.burst-1)
}

// earliestGrantLocked is the first instant a request of priority p could be granted, ignoring
// other waiters.
func (b *budget) earliestGrantLocked(now time.Time, p Priority) time.Time {
	at := now
	if until := b.pausedUntil[clampPriority(p)]; until.After(at) {
		at = until
	}
	if need := b.needLocked(p); b.tokens < need && !math.IsInf(b.rate, 1) {
		from := b.last
		if from.Before(now) {
			from = now
		}
		next := from.Add(time.Duration((need - b.tokens) / b.rate * float64(time.Second)))
		if next.After(at) {
			at = next
		}
	}
	return at
}

// acquire waits for a token for one request. It returns ErrSuperseded when a newer request
// with the same key took its place, and an error wrapping ctx's when ctx ends first or when
// even the earliest possible grant falls after ctx's deadline.
func (b *budget) acquire(ctx context.Context, priority Priority, key string) error {
	b.mu.Lock()
	now := b.now()
	b.refillLocked(now)
	if len(b.queue) == 0 && !now.Before(b.pausedUntil[clampPriority(priority)]) && b.tokens >= b.needLocked(priority) {
		b.tokens--
		b.mu.Unlock()
		observeGrant(b.class, priority, 0)
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && b.earliestGrantLocked(now, priority).After(dl) {
		b.mu.Unlock()
		return fmt.Errorf("wait for %s budget would exceed the context deadline: %w", b.class, context.DeadlineExceeded)
	}
	b.seq++
	w := &waiter{priority: priority, order: orderOf(ctx, time.Now()), seq: b.seq, key: key, since: now, ready: make(chan error, 1)}
	if key != "" {
		if older, ok := b.byKey[key]; ok && older.index >= 0 {
			b.removeLocked(older)
			// Counted before the older request is told, so that whoever sees it superseded also
			// sees it counted.
			budgetCoalesced.WithLabelValues(string(b.class), older.priority.String()).Inc()
			older.ready <- ErrSuperseded
			// The newer request takes the older one's place: a worker whose decisions keep
			// changing under overload must not go back to the end of the queue each time.
			w.seq = older.seq
			w.priority = min(w.priority, older.priority)
			if older.order.Before(w.order) {
				w.order = older.order
			}
		}
		b.byKey[key] = w
	}
	heap.Push(&b.queue, w)
	budgetQueued.WithLabelValues(string(b.class), w.priority.String()).Inc()
	b.dispatchLocked()
	b.mu.Unlock()

	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.index >= 0 {
		b.removeLocked(w)
		return ctx.Err()
	}
	// Granted or superseded as ctx ended: a token granted but not used goes back.
	if err := <-w.ready; err == nil {
		b.tokens = min(b.burst, b.tokens+1)
		b.dispatchLocked()
	}
	return ctx.Err()
}

// grantObserver, when set, sees every grant's exact wait (the benchmark's percentiles; the
// histogram only has buckets).
var grantObserver atomic.Pointer[func(Class, Priority, time.Duration)]

func observeGrant(class Class, priority Priority, wait time.Duration) {
	labels := []string{string(class), priority.String()}
	budgetGranted.WithLabelValues(labels...).Inc()
	budgetWait.WithLabelValues(labels...).Observe(wait.Seconds())
	if f := grantObserver.Load(); f != nil {
		(*f)(class, priority, wait)
	}
}

// removeLocked takes w out of the queue without granting it.
func (b *budget) removeLocked(w *waiter) {
	heap.Remove(&b.queue, w.index)
	b.forgetKeyLocked(w)
	budgetQueued.WithLabelValues(string(b.class), w.priority.String()).Dec()
}

func (b *budget) forgetKeyLocked(w *waiter) {
	if w.key != "" && b.byKey[w.key] == w {
		delete(b.byKey, w.key)
	}
}

// dispatchLocked grants the tokens available to the most urgent waiters and arms the timer for
// the next grant.
func (b *budget) dispatchLocked() {
	now := b.now()
	b.refillLocked(now)
	// Headroom and pauses grow as urgency falls, so when the most urgent waiter must wait, all
	// must.
	for len(b.queue) > 0 && b.tokens >= b.needLocked(b.queue[0].priority) &&
		!now.Before(b.pausedUntil[clampPriority(b.queue[0].priority)]) {
		w := heap.Pop(&b.queue).(*waiter)
		b.forgetKeyLocked(w)
		b.tokens--
		budgetQueued.WithLabelValues(string(b.class), w.priority.String()).Dec()
		observeGrant(b.class, w.priority, now.Sub(w.since))
		w.ready <- nil
	}
	if len(b.queue) > 0 {
		b.armLocked(b.earliestGrantLocked(now, b.queue[0].priority), now)
	}
}

// armLocked makes sure dispatch runs again at the latest at at.
func (b *budget) armLocked(at, now time.Time) {
	if b.timer != nil && !b.timerAt.After(at) && b.timerAt.After(now) {
		return
	}
	d := max(at.Sub(now), 0)
	if b.timer == nil {
		b.timer = time.AfterFunc(d, b.onTimer)
	} else {
		b.timer.Reset(d)
	}
	b.timerAt = at
}

func (b *budget) onTimer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timerAt = time.Time{}
	b.dispatchLocked()
}

// maxPause caps one pause: a Retry-After of hours (a proxy's answer, a bad header) must not hold
// conference recovery that long; past the cap a request that still earns a 429 pauses again.
const maxPause = time.Minute

// pause stops grants until now+d (at most maxPause) to requests of priority and every less urgent
// one: Twilio said (429 with Retry-After) that the class is over its limit, and they would earn
// another 429. A more urgent request still goes: a recovery must not wait out a pause that
// activity writes earned (if it is throttled too, its own 429 pauses everything). When a pause
// of every priority ends one token is available, then the bucket refills at its rate: a burst
// right after a 429 would only be throttled again.
func (b *budget) pause(d time.Duration, priority Priority) {
	if d <= 0 {
		return
	}
	d = min(d, maxPause)
	priority = clampPriority(priority)
	b.mu.Lock()
	defer b.mu.Unlock()
	until := b.now().Add(d)
	extended := false
	for p := priority; p <= PriorityBackground; p++ {
		if until.After(b.pausedUntil[p]) {
			b.pausedUntil[p], extended = until, true
		}
	}
	if !extended {
		return
	}
	if priority == PriorityRecovery && !math.IsInf(b.rate, 1) {
		b.tokens, b.last = 1, until
	}
	budgetPauses.WithLabelValues(string(b.class), priority.String()).Inc()
	b.dispatchLocked()
}

// clampPriority maps an unknown priority to the least urgent one.
func clampPriority(p Priority) Priority {
	return max(PriorityRecovery, min(p, PriorityBackground))
}

// queued reports how many requests wait, for tests.
func (b *budget) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}
