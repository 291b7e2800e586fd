package activity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// ErrNotLeader is what Deliver returns on a replica that does not run the engine. The webhook
// then forwards the delivery to the leader's advertised address (leader.go), or answers 503 so
// that Event Streams delivers the events again; an event is never acknowledged by a replica that
// would drop it.
var ErrNotLeader = errors.New("the activity engine runs on the leader replica only")

// CredentialsProvider gives a policy's Twilio client; *credentials.Provider is the production one.
type CredentialsProvider interface {
	For(ctx context.Context, namespace string, spec v1alpha1.TwilioSpec) (credentials.Credentials, twilio.Client, error)
}

// Defaults of Options.
const (
	// DefaultConcurrency is how many workers of one workspace are decided and written at once.
	DefaultConcurrency = 16
	// DefaultResync is how often the policy set is compared with the cache even without a change
	// notification (a credentials Secret fixed, an activity restored in Twilio).
	DefaultResync = 30 * time.Second
	// workspaceDedupSize is how many recent event ids are remembered per workspace, to apply an
	// event once however many policies' sinks deliver it and however often.
	workspaceDedupSize = 100_000
)

// Options configure an Engine. Reader, Credentials and Recorder are required.
type Options struct {
	// Reader lists WorkerActivityPolicies, normally from the manager's cache.
	Reader client.Reader
	// Informers, when set, notifies the engine of policy changes at once (the manager's cache).
	Informers   cache.Informers
	Credentials CredentialsProvider
	Recorder    recorder.EventRecorder
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Concurrency per workspace; zero means DefaultConcurrency.
	Concurrency int
	// Resync; zero means DefaultResync.
	Resync time.Duration
}

// Engine is the activity engine: a leader-only manager Runnable that keeps every governed worker's
// activity in step with their work. It implements StatsSource.
type Engine struct {
	opts   Options
	log    logr.Logger
	leader atomic.Bool
	kick   chan struct{}

	mu sync.Mutex
	// runs by workspace SID; byPolicy maps each running policy to its workspace's run.
	runs     map[string]*run
	byPolicy map[types.NamespacedName]*run
	counters map[types.NamespacedName]*counters
	// retired are runs stopped without a successor (no ready policy left on their workspace),
	// by workspace, until their goroutines end: a run started for the workspace meanwhile waits
	// for them.
	retired map[string]*run
	// seen are the recent event ids of each workspace: every policy of a workspace receives every
	// event through its own sink, and each event is applied once (ids by workspace SID).
	seen map[string]*events.Dedup
}

// counters are a policy's running totals.
type counters struct {
	enforcements, conflicts, failures atomic.Int64
	lastEvent                         atomic.Int64 // unix nanoseconds
	mu                                sync.Mutex
	lastError                         string
}

func (c *counters) setError(msg string) {
	c.mu.Lock()
	c.lastError = msg
	c.mu.Unlock()
}

// New returns an Engine; add it to the manager with mgr.Add.
func New(o Options) (*Engine, error) {
	if o.Reader == nil || o.Credentials == nil || o.Recorder == nil {
		return nil, errors.New("the activity engine needs a Reader, Credentials and a Recorder")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	return &Engine{
		opts: o, log: ctrl.Log.WithName("activity"), kick: make(chan struct{}, 1),
		runs: map[string]*run{}, byPolicy: map[types.NamespacedName]*run{}, counters: map[types.NamespacedName]*counters{},
		retired: map[string]*run{}, seen: map[string]*events.Dedup{},
	}, nil
}

// NeedLeaderElection makes the engine run on the leader only: its state is in memory, and two
// engines writing the same workers would fight.
func (e *Engine) NeedLeaderElection() bool { return true }

// Leader reports whether this replica runs the engine.
func (e *Engine) Leader() bool { return e.leader.Load() }

// Kick asks the engine to compare its policies with the cache now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Start runs the engine until ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	e.leader.Store(true)
	defer e.leader.Store(false)
	e.log.Info("Activity engine started (leader)")
	if e.opts.Informers != nil {
		inf, err := e.opts.Informers.GetInformer(ctx, &v1alpha1.WorkerActivityPolicy{})
		if err != nil {
			return fmt.Errorf("watch WorkerActivityPolicies: %w", err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { e.Kick() },
			UpdateFunc: func(any, any) { e.Kick() },
			DeleteFunc: func(any) { e.Kick() },
		})
		if err != nil {
			return fmt.Errorf("watch WorkerActivityPolicies: %w", err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
	}
	t := time.NewTicker(e.opts.Resync)
	defer t.Stop()
	e.syncPolicies(ctx)
	for {
		select {
		case <-ctx.Done():
			e.mu.Lock()
			var all []*run
			for sid, r := range e.runs {
				r.stop()
				all = append(all, r)
				delete(e.runs, sid)
			}
			for sid, r := range e.retired {
				all = append(all, r)
				delete(e.retired, sid)
			}
			e.byPolicy = map[types.NamespacedName]*run{}
			e.mu.Unlock()
			// The runs call back into the engine (counters): wait without holding its lock.
			for _, r := range all {
				r.wait()
			}
			return nil
		case <-e.kick:
		case <-t.C:
		}
		e.syncPolicies(ctx)
	}
}

// Deliver hands TaskRouter events received for a policy to the engine. It returns ErrNotLeader
// on a replica that does not run the engine. Events for a policy the engine does not run (its
// activities not resolved yet) are dropped on purpose: when it starts, the engine reads its
// state from TaskRouter, which already holds what they said.
func (e *Engine) Deliver(policy types.NamespacedName, evs []events.TaskRouterEvent) error {
	if !e.leader.Load() {
		return ErrNotLeader
	}
	now := e.opts.Now()
	e.mu.Lock()
	r := e.byPolicy[policy]
	c := e.countersOf(policy)
	e.mu.Unlock()
	c.lastEvent.Store(now.UnixNano())
	if r == nil {
		eventsTotal.WithLabelValues("no_policy").Add(float64(len(evs)))
		return nil
	}
	if evs = e.fresh(r.sid, r.ofWorkspace(evs)); len(evs) > 0 {
		r.deliver(evs, time.Now())
	}
	return nil
}

// fresh drops the events the workspace's engine has already taken: the same event delivered
// again, or delivered through the sink of another policy of the workspace.
func (e *Engine) fresh(workspaceSID string, evs []events.TaskRouterEvent) []events.TaskRouterEvent {
	e.mu.Lock()
	seen := e.seen[workspaceSID]
	if seen == nil {
		seen = events.NewDedup(workspaceDedupSize)
		e.seen[workspaceSID] = seen
	}
	e.mu.Unlock()
	out := evs[:0:0]
	for _, ev := range evs {
		if ev.ID != "" && seen.Seen(ev.ID) {
			eventsTotal.WithLabelValues("duplicate").Inc()
			continue
		}
		out = append(out, ev)
	}
	return out
}

// Idle reports whether the engine has nothing queued or in flight for the policy's workspace
// (tests and benchmarks wait for it). A rebuild not finished, events kept for a read, a read asked
// for, a policy change not applied yet and a retry scheduled after a failure but not yet due all
// count as work to do.
func (e *Engine) Idle(policy types.NamespacedName) bool {
	e.mu.Lock()
	r := e.byPolicy[policy]
	e.mu.Unlock()
	if r == nil {
		return true
	}
	r.nextMu.Lock()
	pending := r.next != nil
	r.nextMu.Unlock()
	r.mu.Lock()
	pending = pending || !r.synced || r.buffered > 0 || len(r.retrying) > 0 || len(r.needRead) > 0
	r.mu.Unlock()
	return !pending && r.queue.Len() == 0 && r.busy.Load() == 0
}

// Stats implements StatsSource.
func (e *Engine) Stats(policy types.NamespacedName) (PolicyStats, bool) {
	if !e.leader.Load() {
		return PolicyStats{}, false
	}
	e.mu.Lock()
	r := e.byPolicy[policy]
	c := e.countersOf(policy)
	e.mu.Unlock()
	st := PolicyStats{
		Enforcements: c.enforcements.Load(), Conflicts: c.conflicts.Load(), Failures: c.failures.Load(),
	}
	if ns := c.lastEvent.Load(); ns != 0 {
		st.LastEventTime = time.Unix(0, ns)
	}
	c.mu.Lock()
	st.LastError = c.lastError
	c.mu.Unlock()
	if r == nil {
		return st, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Synced = r.synced
	if r.ws != nil {
		for _, p := range r.ws.Policies() {
			if p.Key == policy {
				st.Generation = p.Generation
				st.WorkersGoverned, st.Busy, st.PendingChanges, st.Overlapping = r.ws.Stats(p)
			}
		}
	}
	return st, true
}
