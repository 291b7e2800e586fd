package activity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
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
	// activityReads shares one read among workers waiting for the same unknown activity.
	activityReads activityReads
	// needRead are the workers to read from TaskRouter before deciding them again (a 412, a
	// worker not known, an event that cannot be placed); state, not a queue key of its own.
	needRead map[string]bool
	// retrying are the workers whose retry after a failure is scheduled but not yet due.
	retrying map[string]bool
}

type bufferedEvent struct {
	ev events.TaskRouterEvent
	at time.Time
}

// newRun starts a run of the workspace; prev, when not nil, is the run it replaces (stopped by the
// caller), which it waits for before it reads anything.
func (e *Engine) newRun(parent context.Context, sid, fp string, ps []v1alpha1.WorkerActivityPolicy, prev *run) *run {
	ctx, cancel := context.WithCancel(parent)
	r := &run{
		e: e, sid: sid, fingerprint: fp, ctx: ctx, cancel: cancel, prev: prev,
		objects:  map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy{},
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second)),
		since:    map[string]time.Time{},
		observed: map[string]Decision{},
		needRead: map[string]bool{},
		retrying: map[string]bool{},
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

// start rebuilds the state (retrying while Twilio cannot answer), then decides every governed
// worker and processes the queue.
func (r *run) start() {
	backoff := time.Second
	for {
		err := r.rebuild()
		if err == nil {
			break
		}
		if r.stopping() {
			return
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
}

// policies builds the runnable policies from the objects and the workspace's activities; a policy
// whose activities or expression do not check out is reported and left out.
func (r *run) policies(acts []Activity) []*Policy {
	var out []*Policy
	activities := NewCatalog(acts)
	for key, obj := range r.objects {
		cfg, ok := NewConfigOn(obj.Spec, obj.Status.Activities, activities)
		if !ok {
			msg := "an activity in status.activities no longer exists in the workspace"
			r.log().Info("Policy not run: "+msg, "policy", key.String())
			badInputTotal.WithLabelValues("activity").Inc()
			r.e.mu.Lock()
			r.e.countersOf(key).setError(msg)
			r.e.mu.Unlock()
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
			Observe: obj.Spec.Mode == v1alpha1.ModeObserve,
		})
	}
	return out
}

func (r *run) countersFor(key types.NamespacedName) *counters {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return r.e.countersOf(key)
}
