package activity

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// policyReady reports whether a policy can run: its activities resolved.
func policyReady(p *v1alpha1.WorkerActivityPolicy) bool {
	if p.DeletionTimestamp != nil || !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionActivitiesResolved) {
		return false
	}
	a := p.Status.Activities
	return a.Available != "" && a.OnATask != "" && a.OnATaskNoAcd != "" && a.Wrapup != "" && a.WrapupNoAcd != "" && a.ExtendedWrapup != ""
}

// fingerprint is what, when it changes, makes a workspace's run take its policies again
// (run.update): nothing of the workers is read again.
func fingerprint(ps []v1alpha1.WorkerActivityPolicy) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s/%s/%s/%d/%s/%v;", p.Namespace, p.Name, p.UID, p.Generation, p.CreationTimestamp.UTC().Format(time.RFC3339), p.Status.Activities)
	}
	return b.String()
}

// syncPolicies starts and stops workspace runs to match the ready policies, and hands a running
// workspace's run its policies when they changed. A workspace is read from TaskRouter when a run
// starts (the first ready policy of the workspace, a new leader); a policy created, edited or
// deleted on a workspace already run changes who governs whom and how, not what is known of the
// workers.
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
			e.retire(sid, r)
		}
	}
	e.byPolicy = map[types.NamespacedName]*run{}
	for sid, ps := range byWS {
		sort.Slice(ps, func(i, j int) bool {
			return ps[i].Namespace+"/"+ps[i].Name < ps[j].Namespace+"/"+ps[j].Name
		})
		fp := fingerprint(ps)
		r, ok := e.runs[sid]
		switch {
		case ok && r.fingerprint != fp:
			r.fingerprint = fp
			r.update(ps)
		case !ok:
			prev := e.retired[sid]
			delete(e.retired, sid)
			// The new run starts once the one it replaces has ended; it keeps the events
			// delivered meanwhile. Waiting here would hold the engine's lock, which the old run's
			// goroutines take to count what they do.
			r = e.newRun(ctx, sid, fp, ps, prev)
			e.runs[sid] = r
		}
		for _, p := range ps {
			e.byPolicy[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = r
		}
	}
}

// retire keeps a stopped run until its goroutines have ended, for a successor to wait for. The
// caller holds e.mu.
func (e *Engine) retire(sid string, r *run) {
	e.retired[sid] = r
	go func() {
		r.wait()
		e.mu.Lock()
		if e.retired[sid] == r {
			delete(e.retired, sid)
		}
		e.mu.Unlock()
	}()
}

// forceUpdate makes the next policy sync hand the run its policies again (a policy change that
// could not be applied: an activity it names could not be read).
func (e *Engine) forceUpdate(r *run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[r.sid] == r {
		r.fingerprint = ""
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
