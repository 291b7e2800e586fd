package activity

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// update hands the run a changed set of its workspace's policies (one created, edited or deleted).
// The run keeps its state: the policies are applied in the background (applyPolicies), without
// reading the workspace again. The caller holds the engine's lock, so update only records them.
func (r *run) update(ps []v1alpha1.WorkerActivityPolicy) {
	objs := map[types.NamespacedName]*v1alpha1.WorkerActivityPolicy{}
	for i := range ps {
		p := ps[i]
		objs[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = &p
	}
	r.nextMu.Lock()
	r.next = objs
	r.nextMu.Unlock()
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		r.applyPolicies()
	}()
}

// applyPolicies applies the newest policies handed to the run: the activities they name that the
// catalogue does not know are read (one request each, at activity enforcement's priority), the
// Twilio client follows the oldest policy's credentials, and every worker is governed again and
// decided again. Until the workspace's activities are read the run has no state to change, and
// it builds the state with the newest policies.
func (r *run) applyPolicies() {
	r.polMu.Lock()
	defer r.polMu.Unlock()
	r.nextMu.Lock()
	objs := r.next
	r.next = nil
	r.nextMu.Unlock()
	if objs == nil || r.stopping() {
		return
	}
	r.mu.Lock()
	r.objects = objs
	ws, tw, used := r.ws, r.tw, r.twSpec
	first := r.oldest()
	var missing []string
	if ws != nil {
		for _, obj := range objs {
			a := obj.Status.Activities
			for _, sid := range []string{a.Available, a.OnATask, a.OnATaskNoAcd, a.Wrapup, a.WrapupNoAcd, a.ExtendedWrapup} {
				if sid != "" && !ws.Catalog().Known(sid) {
					missing = append(missing, sid)
				}
			}
		}
	}
	r.mu.Unlock()
	if ws == nil {
		return
	}
	ctx := twilio.WithPriority(r.ctx, twilio.PriorityActivity)
	want := credentialsOf{namespace: first.Namespace, spec: first.Spec.Twilio}
	if want != used {
		_, c, err := r.e.opts.Credentials.For(ctx, first.Namespace, first.Spec.Twilio)
		if err != nil {
			r.log().Error(err, "Credentials of the workspace's oldest policy; keeping the ones in use", "policy", first.Namespace+"/"+first.Name)
			r.countersFor(types.NamespacedName{Namespace: first.Namespace, Name: first.Name}).setError(err.Error())
			r.e.forceUpdate(r)
		} else {
			tw, used = c, want
		}
	}
	for _, sid := range missing {
		a, err := tw.FetchActivity(ctx, r.sid, sid)
		readsTotal.WithLabelValues("activity").Inc()
		if err != nil {
			if !twilio.IsNotFound(err) && !r.stopping() {
				r.log().Error(err, "Read an activity a policy names; the policy change is applied again at the next sync", "activity", sid)
				r.e.forceUpdate(r)
			}
			continue
		}
		r.mu.Lock()
		r.ws.PutActivity(Activity{SID: a.SID, Name: a.FriendlyName, Available: a.Available})
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping() {
		return
	}
	r.tw, r.twSpec = tw, used
	touched := r.ws.SetPolicies(r.policies(r.ws.Catalog()))
	for _, sid := range touched {
		r.queue.Add(sid)
	}
	r.log().Info("The workspace's policies changed; governed its workers again without reading them", "policies", len(objs),
		"workers", len(touched))
}
