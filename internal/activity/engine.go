package activity

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/expr"
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
	// tombstoneTTL is how long an ended task's reservations are remembered against late events.
	tombstoneTTL = 10 * time.Minute
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
			for sid, r := range e.runs {
				r.stop()
				delete(e.runs, sid)
			}
			e.byPolicy = map[types.NamespacedName]*run{}
			e.mu.Unlock()
			return nil
		case <-e.kick:
		case <-t.C:
		}
		e.syncPolicies(ctx)
	}
}

// policyReady reports whether a policy can run: its activities resolved.
func policyReady(p *v1alpha1.WorkerActivityPolicy) bool {
	if p.DeletionTimestamp != nil || !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionActivitiesResolved) {
		return false
	}
	a := p.Status.Activities
	return a.Available != "" && a.OnATask != "" && a.OnATaskNoAcd != "" && a.Wrapup != "" && a.WrapupNoAcd != "" && a.ExtendedWrapup != ""
}

// fingerprint is what, when it changes, makes a workspace's state be rebuilt.
func fingerprint(ps []v1alpha1.WorkerActivityPolicy) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s/%s/%s/%d/%s/%v;", p.Namespace, p.Name, p.UID, p.Generation, p.CreationTimestamp.UTC().Format(time.RFC3339), p.Status.Activities)
	}
	return b.String()
}

// syncPolicies starts, restarts and stops workspace runs to match the ready policies.
func (e *Engine) syncPolicies(ctx context.Context) {
	var list v1alpha1.WorkerActivityPolicyList
	if err := e.opts.Reader.List(ctx, &list); err != nil {
		e.log.Error(err, "List WorkerActivityPolicies")
		return
	}
	byWS := map[string][]v1alpha1.WorkerActivityPolicy{}
	for _, p := range list.Items {
		if policyReady(&p) {
			byWS[p.Spec.Twilio.WorkspaceSID] = append(byWS[p.Spec.Twilio.WorkspaceSID], p)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for sid, r := range e.runs {
		if _, ok := byWS[sid]; !ok {
			e.log.Info("No ready policy governs the workspace any more; releasing its workers", "workspace", sid)
			r.stop()
			delete(e.runs, sid)
		}
	}
	for sid, ps := range byWS {
		sort.Slice(ps, func(i, j int) bool {
			return ps[i].Namespace+"/"+ps[i].Name < ps[j].Namespace+"/"+ps[j].Name
		})
		fp := fingerprint(ps)
		if r, ok := e.runs[sid]; ok && r.fingerprint == fp {
			continue
		} else if ok {
			r.stop()
		}
		r := e.newRun(ctx, sid, fp, ps)
		e.runs[sid] = r
	}
	e.byPolicy = map[types.NamespacedName]*run{}
	for _, r := range e.runs {
		for key := range r.objects {
			e.byPolicy[key] = r
		}
	}
}

func (e *Engine) countersOf(key types.NamespacedName) *counters {
	c := e.counters[key]
	if c == nil {
		c = &counters{}
		e.counters[key] = c
	}
	return c
}

// Deliver hands TaskRouter events received for a policy to the engine. It returns ErrNotLeader
// on a replica that does not run the engine. Events for a policy the engine does not run (its
// activities not resolved yet) are dropped on purpose: when it starts, the engine rebuilds its
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
	if evs = r.ofWorkspace(evs); len(evs) > 0 {
		r.deliver(evs, time.Now())
	}
	return nil
}

// Idle reports whether the engine has nothing queued or in flight for the policy's workspace
// (tests and benchmarks wait for it; retries scheduled after a failure count as queued).
func (e *Engine) Idle(policy types.NamespacedName) bool {
	e.mu.Lock()
	r := e.byPolicy[policy]
	e.mu.Unlock()
	if r == nil {
		return true
	}
	r.mu.Lock()
	buffered := len(r.buffer)
	r.mu.Unlock()
	return buffered == 0 && r.queue.Len() == 0 && r.busy.Load() == 0
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
				st.WorkersGoverned, st.Busy, st.PendingChanges, st.Overlapping = r.ws.Stats(p)
			}
		}
	}
	return st, true
}

// run is the engine working on one workspace: its state, its queue of workers to decide, and the
// goroutines that decide and write.
type run struct {
	e           *Engine
	sid         string
	fingerprint string
	objects     map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy
	ctx         context.Context
	cancel      context.CancelFunc
	done        sync.WaitGroup
	queue       workqueue.TypedRateLimitingInterface[string]
	// busy counts workers being decided or written right now.
	busy atomic.Int32

	mu     sync.Mutex
	tw     twilio.Client
	ws     *Workspace
	synced bool
	// buffer holds events received while the state is being rebuilt; they are applied after it.
	buffer []bufferedEvent
	// since is when the first not yet handled event of each worker was received.
	since map[string]time.Time
	// observed is the last decision reported per worker in Observe mode (reported once).
	observed map[string]Decision
}

type bufferedEvent struct {
	ev events.TaskRouterEvent
	at time.Time
}

// reread marks a queue key asking for the worker to be read from TaskRouter first.
const rereadPrefix = "?"

func (e *Engine) newRun(parent context.Context, sid, fp string, ps []v1alpha1.WorkerActivityPolicy) *run {
	ctx, cancel := context.WithCancel(parent)
	r := &run{
		e: e, sid: sid, fingerprint: fp, ctx: ctx, cancel: cancel,
		objects:  map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy{},
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second)),
		since:    map[string]time.Time{},
		observed: map[string]Decision{},
	}
	for i := range ps {
		p := ps[i]
		r.objects[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = &p
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.start()
	}()
	return r
}

func (r *run) stop() {
	r.cancel()
	r.queue.ShutDown()
}

func (r *run) log() logr.Logger { return r.e.log.WithValues("workspace", r.sid) }

// start rebuilds the state (retrying while Twilio cannot answer), then decides every governed
// worker and processes the queue.
func (r *run) start() {
	backoff := time.Second
	for {
		err := r.rebuild()
		if err == nil {
			break
		}
		r.log().Error(err, "Rebuild the workspace's worker state; retrying", "after", backoff)
		for key := range r.objects {
			r.e.mu.Lock()
			r.e.countersOf(key).setError(err.Error())
			r.e.mu.Unlock()
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
	for i := 0; i < r.e.opts.Concurrency; i++ {
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			for r.processNext() {
			}
		}()
	}
	// Drop tombstones of long-ended tasks now and then.
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			r.ws.Prune(r.e.opts.Now().Add(-tombstoneTTL))
			r.mu.Unlock()
		}
	}
}

// policies builds the runnable policies from the objects and the workspace's activities; a policy
// whose activities or expression do not check out is reported and left out.
func (r *run) policies(acts []Activity) []*Policy {
	var out []*Policy
	for key, obj := range r.objects {
		cfg, ok := NewConfig(obj.Spec, obj.Status.Activities, acts)
		if !ok {
			msg := "an activity in status.activities no longer exists in the workspace"
			r.log().Info("Policy not run: "+msg, "policy", key.String())
			badInputTotal.WithLabelValues("activity").Inc()
			r.e.mu.Lock()
			r.e.countersOf(key).setError(msg)
			r.e.mu.Unlock()
			continue
		}
		src := obj.Spec.Workers
		if src == "" {
			src = "1==1"
		}
		ex, err := expr.Parse(src)
		if err != nil {
			r.log().Info("Policy not run: its workers expression does not parse", "policy", key.String(), "error", err.Error())
			badInputTotal.WithLabelValues("policy").Inc()
			continue
		}
		out = append(out, &Policy{
			Key: key, Created: obj.CreationTimestamp.Time, Workers: ex, Config: cfg,
			Observe: obj.Spec.Mode == v1alpha1.ModeObserve,
		})
	}
	return out
}

// rebuild reads the workspace from TaskRouter: its activities (one page), its workers (pages of
// 1,000), its tasks that hold workers (pages of 1,000) and the reservations of each of those
// tasks. The calls grow with pages and live tasks, never with workers × tasks.
func (r *run) rebuild() error {
	start := time.Now()
	// Events buffered before this attempt are in what it is about to read; only those arriving
	// while it reads must be replayed after. This also bounds the buffer across failed attempts.
	r.mu.Lock()
	r.buffer = nil
	r.mu.Unlock()
	var first *v1alpha1.WorkerActivityPolicy
	for _, obj := range r.objects {
		if first == nil || obj.CreationTimestamp.Before(&first.CreationTimestamp) {
			first = obj
		}
	}
	_, tw, err := r.e.opts.Credentials.For(r.ctx, first.Namespace, first.Spec.Twilio)
	if err != nil {
		return fmt.Errorf("credentials of %s/%s: %w", first.Namespace, first.Name, err)
	}
	acts, err := tw.ListActivities(r.ctx, r.sid)
	readsTotal.WithLabelValues("rebuild").Inc()
	if err != nil {
		return err
	}
	all := make([]Activity, 0, len(acts))
	for _, a := range acts {
		all = append(all, Activity{SID: a.SID, Name: a.FriendlyName, Available: a.Available})
	}
	ws := NewWorkspace(r.sid, r.policies(all))
	workers, err := tw.ListWorkers(r.ctx, r.sid, twilio.WorkerFilter{})
	readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(workers))))
	if err != nil {
		return err
	}
	for _, w := range workers {
		ws.PutWorker(w.SID, w.FriendlyName, w.ActivitySID, w.Version, w.Attributes)
	}
	tasks, err := tw.ListTasks(r.ctx, r.sid, twilio.TaskFilter{AssignmentStatus: []string{"reserved", "assigned", "wrapping"}})
	readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(tasks))))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		res, err := tw.ListReservations(r.ctx, r.sid, twilio.ReservationFilter{TaskSID: t.SID})
		readsTotal.WithLabelValues("rebuild").Inc()
		if err != nil {
			if twilio.IsNotFound(err) {
				continue
			}
			return err
		}
		for _, rv := range res {
			st := ParseResStatus(rv.Status)
			if st == ResUnknown || st == ResEnded {
				continue
			}
			ws.PutReservation(rv.WorkerSID, rv.SID, Reservation{
				TaskSID: t.SID, Channel: t.TaskChannelUniqueName, Status: st,
				Extended: HasTrue(t.Attributes, ws.extendedAttr(rv.WorkerSID)),
			})
		}
	}
	r.mu.Lock()
	r.tw, r.ws, r.synced = tw, ws, true
	buffered := r.buffer
	r.buffer = nil
	for _, b := range buffered {
		r.applyLocked(b.ev, b.at)
	}
	governed := 0
	for _, sid := range ws.WorkerSIDs() {
		if ws.Governor(sid) != nil {
			governed++
			r.queue.Add(sid)
		}
	}
	r.mu.Unlock()
	rebuildSeconds.Observe(time.Since(start).Seconds())
	r.log().Info("Rebuilt the workspace's worker state", "workers", len(workers), "governed", governed,
		"liveTasks", len(tasks), "replayedEvents", len(buffered), "took", time.Since(start).String())
	return nil
}

// pages is how many list pages n items took (at least one request).
func pages(n int) int { return max(1, (n+999)/1000) }

// deliver applies events (or buffers them while the state is rebuilt).
func (r *run) deliver(evs []events.TaskRouterEvent, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.synced {
		for _, ev := range evs {
			r.buffer = append(r.buffer, bufferedEvent{ev: ev, at: at})
		}
		eventsTotal.WithLabelValues("buffered").Add(float64(len(evs)))
		return
	}
	for _, ev := range evs {
		r.applyLocked(ev, at)
	}
}

// ofWorkspace keeps the events of the run's workspace. Event Streams subscriptions are
// account-wide: a policy's sink receives every workspace's TaskRouter events, and those of other
// workspaces are expected, not bad input.
func (r *run) ofWorkspace(evs []events.TaskRouterEvent) []events.TaskRouterEvent {
	out := evs[:0:0]
	for _, ev := range evs {
		if ev.WorkspaceSID == "" || ev.WorkspaceSID == r.sid {
			out = append(out, ev)
		}
	}
	if n := len(evs) - len(out); n > 0 {
		eventsTotal.WithLabelValues("other_workspace").Add(float64(n))
	}
	return out
}

func (r *run) applyLocked(ev events.TaskRouterEvent, at time.Time) {
	out, err := r.ws.Apply(ev, r.e.opts.Now())
	if err != nil {
		eventsTotal.WithLabelValues("bad").Inc()
		badInputTotal.WithLabelValues("event").Inc()
		r.log().Info("Ignored a TaskRouter event the engine cannot use", "event", ev.ID, "type", ev.Type, "error", err.Error())
		return
	}
	for _, sid := range out.Unknown {
		eventsTotal.WithLabelValues("unknown_worker").Inc()
		r.queue.Add(rereadPrefix + sid)
	}
	if out.Ignored && len(out.Unknown) == 0 {
		eventsTotal.WithLabelValues("ignored").Inc()
		return
	}
	eventsTotal.WithLabelValues("applied").Inc()
	for _, sid := range out.Touched {
		if _, ok := r.since[sid]; !ok {
			r.since[sid] = at
		}
		r.queue.Add(sid)
	}
}

func (r *run) processNext() bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	r.busy.Add(1)
	defer r.busy.Add(-1)
	defer r.queue.Done(key)
	sid := key
	if strings.HasPrefix(key, rereadPrefix) {
		sid = strings.TrimPrefix(key, rereadPrefix)
		if err := r.reread(sid); err != nil {
			r.log().Error(err, "Read a worker from TaskRouter", "worker", sid)
			r.queue.AddRateLimited(key)
			return true
		}
		r.queue.Forget(key)
	}
	if r.decide(sid) {
		r.queue.Forget(key)
	}
	return true
}

// reread reads one worker, its live reservations and their tasks (when in doubt).
func (r *run) reread(sid string) error {
	r.mu.Lock()
	since := r.ws.Seq()
	attr := r.ws.extendedAttr(sid)
	r.mu.Unlock()
	w, err := r.tw.FetchWorker(r.ctx, r.sid, sid)
	readsTotal.WithLabelValues("doubt").Inc()
	if twilio.IsNotFound(err) {
		r.mu.Lock()
		r.ws.RemoveWorker(sid)
		r.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	res, err := r.tw.ListReservations(r.ctx, r.sid, twilio.ReservationFilter{WorkerSID: sid})
	readsTotal.WithLabelValues("doubt").Inc()
	if err != nil {
		return err
	}
	live := map[string]Reservation{}
	for _, rv := range res {
		st := ParseResStatus(rv.Status)
		if st == ResUnknown || st == ResEnded {
			continue
		}
		t, err := r.tw.FetchTask(r.ctx, r.sid, rv.TaskSID)
		readsTotal.WithLabelValues("doubt").Inc()
		if twilio.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		live[rv.SID] = Reservation{TaskSID: t.SID, Channel: t.TaskChannelUniqueName, Status: st,
			Extended: HasTrue(t.Attributes, attr)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if known := r.ws.Worker(sid); known == nil || ParseETag(w.Version) < 0 || known.Version < 0 || ParseETag(w.Version) >= known.Version {
		r.ws.PutWorker(w.SID, w.FriendlyName, w.ActivitySID, w.Version, w.Attributes)
	}
	r.ws.SetReservations(sid, live, since)
	return nil
}

// decide decides one worker and writes the decision. It reports false when the worker must be
// tried again later (the write failed).
func (r *run) decide(sid string) bool {
	r.mu.Lock()
	p, d := r.ws.Decide(sid)
	w := r.ws.Worker(sid)
	if p == nil || !d.Changes() {
		delete(r.since, sid)
		delete(r.observed, sid)
		r.mu.Unlock()
		return true
	}
	mode := "Enforce"
	if p.Observe {
		mode = "Observe"
	}
	obj := r.objects[p.Key]
	c := r.countersFor(p.Key)
	if p.Observe {
		delete(r.since, sid)
		if prev, ok := r.observed[sid]; ok && prev == d {
			r.mu.Unlock()
			return true
		}
		r.observed[sid] = d
		r.mu.Unlock()
		decisionsTotal.WithLabelValues(d.Rule, mode).Inc()
		c.enforcements.Add(1)
		r.e.opts.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "WouldSetActivity", "Observe",
			"Worker %s (%s): would %s (rule %s)", w.Name, sid, describe(d), d.Rule)
		return true
	}
	u := twilio.WorkerUpdate{IfMatch: w.ETag}
	if d.ActivitySID != "" {
		u.ActivitySID = &d.ActivitySID
	}
	if d.SetPending {
		attrs, err := SetStringAttribute(w.Attributes, p.Config.PendingAttribute, d.Pending, d.Pending == "")
		if err != nil {
			badInputTotal.WithLabelValues("attributes").Inc()
			r.log().Info("Cannot write the pending activity: the worker's attributes are not a JSON object", "worker", sid, "error", err.Error())
		} else {
			u.Attributes = &attrs
		}
	}
	since, hasSince := r.since[sid]
	if u.ActivitySID == nil && u.Attributes == nil {
		r.mu.Unlock()
		return true
	}
	r.ws.Writing(sid, d)
	r.mu.Unlock()
	decisionsTotal.WithLabelValues(d.Rule, mode).Inc()
	got, err := r.tw.UpdateWorker(r.ctx, r.sid, sid, u)
	if err == nil {
		writesTotal.WithLabelValues("ok").Inc()
		c.enforcements.Add(1)
		if hasSince {
			eventToWriteSeconds.Observe(time.Since(since).Seconds())
		}
		r.mu.Lock()
		r.ws.Written(sid, d, got.ActivitySID, got.Version, got.Attributes)
		delete(r.since, sid)
		r.mu.Unlock()
		r.log().V(1).Info("Set the worker's activity", "worker", sid, "change", describe(d), "rule", d.Rule)
		return true
	}
	r.mu.Lock()
	r.ws.WriteFailed(sid)
	r.mu.Unlock()
	switch {
	case twilio.IsVersionConflict(err):
		// The worker changed under us: read it again and decide again.
		writesTotal.WithLabelValues("conflict").Inc()
		c.conflicts.Add(1)
		r.queue.Add(rereadPrefix + sid)
		return true
	case twilio.IsNotFound(err):
		writesTotal.WithLabelValues("not_found").Inc()
		r.queue.Add(rereadPrefix + sid)
		return true
	default:
		writesTotal.WithLabelValues("error").Inc()
		c.failures.Add(1)
		c.setError(err.Error())
		r.log().Error(err, "Set the worker's activity; will retry", "worker", sid, "change", describe(d))
		if obj != nil {
			r.e.opts.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "EnforcementFailed", "SetActivity",
				"Worker %s (%s): could not %s: %v", w.Name, sid, describe(d), err)
		}
		r.queue.AddRateLimited(sid)
		return false
	}
}

func (r *run) countersFor(key types.NamespacedName) *counters {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return r.e.countersOf(key)
}

// describe says what a decision does, for Events and logs.
func describe(d Decision) string {
	var parts []string
	if d.ActivitySID != "" {
		parts = append(parts, fmt.Sprintf("set activity %q", d.ActivityName))
	}
	if d.SetPending {
		if d.Pending == "" {
			parts = append(parts, "clear the pending activity")
		} else {
			parts = append(parts, fmt.Sprintf("keep %q as the pending activity", d.Pending))
		}
	}
	return strings.Join(parts, " and ")
}
