package activity

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

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
	// queue holds workers by SID, one key per worker: the workqueue hands a key to one goroutine
	// at a time, so one worker is never read, decided or written by two at once.
	queue workqueue.TypedRateLimitingInterface[string]
	// busy counts workers being decided or written right now.
	busy atomic.Int32
	// prev is the workspace's run this one replaces: it is stopped, and this one starts only once
	// its goroutines have ended (no two runs write one worker), taking over its tombstones.
	prev *run

	// polMu serialises the application of policy changes (update); next is the newest set of
	// policy objects not applied yet, under nextMu (update is called with the engine's lock held,
	// which must not wait for mu).
	polMu  sync.Mutex
	nextMu sync.Mutex
	next   map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy

	mu sync.Mutex
	// tw is the Twilio client of the workspace's oldest policy; twSpec is what it was made from.
	tw     twilio.Client
	twSpec credentialsOf
	// ws is the workspace's state, nil until its activities are read (the first thing a run
	// does). Workers are added to it as they are read: on demand, one worker at a time, for those
	// with events; in the background, by the rebuild, for the rest.
	ws *Workspace
	// synced is true once the rebuild has given a complete picture of the workspace.
	synced bool
	// early holds the events received before ws exists.
	early *eventBuffer
	// waiting holds, per worker the engine does not know yet, the events received for it until
	// it has been read.
	waiting map[string]*eventBuffer
	// buffered counts the events in early and waiting.
	buffered int
	// freshTasks are the tasks events have named while the rebuild runs: what it read of them
	// may be older than the events, so a worker it found holding one is read again instead.
	freshTasks map[string]bool
	// since is when the first not yet handled event of each worker was received.
	since map[string]time.Time
	// observed is the last decision reported per worker in Observe mode (reported once).
	observed map[string]Decision
	// activityReads shares one read among workers waiting for the same unknown activity.
	activityReads activityReads
	// needRead are the workers to read from TaskRouter before deciding them again (a 412, a
	// worker not known, an event that cannot be placed); state, not a queue key of its own.
	needRead map[string]bool
	// retrying are the workers whose retry after a failure is scheduled but not yet due.
	retrying map[string]bool
}

// credentialsOf names the policy whose Twilio credentials a run uses, and their reference.
type credentialsOf struct {
	namespace string
	spec      v1alpha1.TwilioSpec
}

// newRun starts a run of the workspace; prev, when not nil, is the run it replaces (stopped by the
// caller), which it waits for before it reads anything.
func (e *Engine) newRun(parent context.Context, sid, fp string, ps []v1alpha1.WorkerActivityPolicy, prev *run) *run {
	ctx, cancel := context.WithCancel(parent)
	r := &run{
		e: e, sid: sid, fingerprint: fp, ctx: ctx, cancel: cancel, prev: prev,
		objects:    map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy{},
		queue:      workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second)),
		since:      map[string]time.Time{},
		observed:   map[string]Decision{},
		needRead:   map[string]bool{},
		retrying:   map[string]bool{},
		early:      newEventBuffer(maxEarly),
		waiting:    map[string]*eventBuffer{},
		freshTasks: map[string]bool{},
	}
	for i := range ps {
		p := ps[i]
		r.objects[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = &p
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		if prev != nil {
			prev.stop()
			prev.wait()
		}
		r.start()
	}()
	go func() {
		// Once the run has ended, what it still held is no longer buffered anywhere.
		<-ctx.Done()
		r.wait()
		r.mu.Lock()
		bufferedEvents.WithLabelValues(sid).Sub(float64(r.buffered))
		r.buffered = 0
		r.mu.Unlock()
	}()
	return r
}

// stop asks the run to end: its context is cancelled and its queue shut down. It does not wait.
func (r *run) stop() {
	r.cancel()
	r.queue.ShutDown()
}

// wait returns once every goroutine of the run has ended (the run it replaced included).
func (r *run) wait() { r.done.Wait() }

// stopping reports whether the run was asked to end: a failure then is the run's own doing, not
// Twilio's, and is neither counted nor announced.
func (r *run) stopping() bool { return r.ctx.Err() != nil }

func (r *run) log() logr.Logger { return r.e.log.WithValues("workspace", r.sid) }

// start reads the workspace's activities (retrying while Twilio cannot answer), starts deciding
// workers at once (each worker with an event is read on its own, at activity enforcement's
// priority), then reads the rest of the workspace in the background (rebuild).
func (r *run) start() {
	if !r.retry("Read the workspace's activities", r.readCatalog) {
		return
	}
	for i := 0; i < r.e.opts.Concurrency; i++ {
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			for r.processNext() {
			}
		}()
	}
	r.rebuild()
}

// readCatalog reads the workspace's activities, one request at activity enforcement's priority
// (nothing can be decided without them), and makes the workspace's state, which the events
// received meanwhile are then applied to.
func (r *run) readCatalog() error {
	r.mu.Lock()
	first := r.oldest()
	r.mu.Unlock()
	ctx := twilio.WithPriority(r.ctx, twilio.PriorityActivity)
	_, tw, err := r.e.opts.Credentials.For(ctx, first.Namespace, first.Spec.Twilio)
	if err != nil {
		return fmt.Errorf("credentials of %s/%s: %w", first.Namespace, first.Name, err)
	}
	acts, err := tw.ListActivities(ctx, r.sid)
	readsTotal.WithLabelValues("rebuild").Inc()
	if err != nil {
		return err
	}
	all := make([]Activity, 0, len(acts))
	for _, a := range acts {
		all = append(all, Activity{SID: a.SID, Name: a.FriendlyName, Available: a.Available})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tw, r.twSpec = tw, credentialsOf{namespace: first.Namespace, spec: first.Spec.Twilio}
	ws := NewWorkspace(r.sid, r.policies(NewCatalog(all)))
	if prev := r.prev; prev != nil {
		// The run this one replaced has ended: what it knew of ended work still holds.
		prev.mu.Lock()
		if prev.ws != nil {
			ws.InheritEnded(prev.ws)
		}
		prev.mu.Unlock()
		r.prev = nil
	}
	r.ws = ws
	early := r.early
	r.early = nil
	r.addBuffered(-early.len())
	for _, b := range early.order {
		r.applyLocked(b.ev, b.at)
	}
	r.log().Info("Read the workspace's activities; enforcing workers as their events come", "activities", len(all),
		"bufferedEvents", early.len())
	return nil
}

// retry calls fn until it succeeds, with a growing backoff, recording each failure on the
// policies. It reports false when the run was stopped first.
func (r *run) retry(what string, fn func() error) bool {
	backoff := time.Second
	for {
		err := fn()
		if err == nil {
			return true
		}
		if r.stopping() {
			return false
		}
		r.log().Error(err, what+"; retrying", "after", backoff)
		r.mu.Lock()
		keys := make([]types.NamespacedName, 0, len(r.objects))
		for key := range r.objects {
			keys = append(keys, key)
		}
		r.mu.Unlock()
		for _, key := range keys {
			r.countersFor(key).setError(err.Error())
		}
		select {
		case <-r.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// oldest is the oldest policy object of the run, whose credentials it uses. The caller holds r.mu.
func (r *run) oldest() *v1alpha1.WorkerActivityPolicy {
	var first *v1alpha1.WorkerActivityPolicy
	for _, obj := range r.objects {
		if first == nil || obj.CreationTimestamp.Before(&first.CreationTimestamp) ||
			(obj.CreationTimestamp.Equal(&first.CreationTimestamp) && obj.Namespace+"/"+obj.Name < first.Namespace+"/"+first.Name) {
			first = obj
		}
	}
	return first
}

// client is the run's Twilio client.
func (r *run) client() twilio.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tw
}

// policies builds the runnable policies from the objects and the workspace's activities; a policy
// whose activities or expression do not check out is reported and left out.
func (r *run) policies(activities *Catalog) []*Policy {
	var out []*Policy
	for key, obj := range r.objects {
		cfg, ok := NewConfigOn(obj.Spec, obj.Status.Activities, activities)
		if !ok {
			msg := "an activity in status.activities no longer exists in the workspace"
			r.log().Info("Policy not run: "+msg, "policy", key.String())
			badInputTotal.WithLabelValues("activity").Inc()
			r.countersFor(key).setError(msg)
			continue
		}
		ex, err := WorkersExpression(obj.Spec.Workers)
		if err != nil {
			r.log().Info("Policy not run: its workers expression is refused", "policy", key.String(), "error", err.Error())
			badInputTotal.WithLabelValues("policy").Inc()
			continue
		}
		out = append(out, &Policy{
			Key: key, Created: obj.CreationTimestamp.Time, Workers: ex, Config: cfg,
			Observe: obj.Spec.Mode == v1alpha1.ModeObserve, Generation: obj.Generation,
		})
	}
	return out
}

func (r *run) countersFor(key types.NamespacedName) *counters {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return r.e.countersOf(key)
}
