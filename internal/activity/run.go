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
	// activityReads shares one read among workers waiting for the same unknown activity.
	activityReads activityReads
}

type bufferedEvent struct {
	ev events.TaskRouterEvent
	at time.Time
}

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
