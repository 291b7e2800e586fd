package activity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/flexoperator/flex-operator/internal/twilio"
)

// reread reads one worker, its live reservations and their tasks: when in doubt, and for a worker
// the engine does not know yet (one with an event while the workspace is rebuilt, after a
// failover; one created since). These reads are on the activity engine's hot path and go at its
// priority. The events kept for the worker are applied after the read.
func (r *run) reread(sid string) error {
	r.mu.Lock()
	ctx := r.activityContext(sid)
	tw := r.tw
	since := r.ws.Seq()
	attr := r.ws.extendedAttr(sid)
	r.mu.Unlock()
	w, err := tw.FetchWorker(ctx, r.sid, sid)
	readsTotal.WithLabelValues("doubt").Inc()
	if twilio.IsNotFound(err) {
		r.mu.Lock()
		r.ws.RemoveWorker(sid)
		r.replayAwaited(sid)
		delete(r.since, sid)
		r.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	res, err := tw.ListReservations(ctx, r.sid, twilio.ReservationFilter{WorkerSID: sid})
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
		t, err := tw.FetchTask(ctx, r.sid, rv.TaskSID)
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
	r.ws.ReadWorker(w.SID, w.FriendlyName, w.ActivitySID, w.Version, w.Attributes, live, since)
	r.replayAwaited(sid)
	r.mu.Unlock()
	return nil
}

// decide decides one worker and writes the decision. It reports false when the worker must be
// tried again later (the write failed).
func (r *run) decide(sid string) bool {
	if !r.knowActivities(sid) {
		return false
	}
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
	wctx := twilio.WithCoalesceKey(r.activityContext(sid), sid)
	if u.ActivitySID == nil && u.Attributes == nil {
		r.mu.Unlock()
		return true
	}
	r.ws.Writing(sid, d)
	r.mu.Unlock()
	decisionsTotal.WithLabelValues(d.Rule, mode).Inc()
	// An activity write yields to recovery in the account's Twilio budget, and replaces this
	// worker's older write if that one still waits for a token (twilio.ErrSuperseded).
	got, err := r.client().UpdateWorker(wctx, r.sid, sid, u)
	if errors.Is(err, twilio.ErrSuperseded) {
		// A newer decision for this worker took this write's place unsent: not a failure, and
		// nothing to retry (the newer write records its own outcome). Only this write's own
		// in-flight mark goes.
		r.mu.Lock()
		r.ws.WriteFailed(sid, d)
		r.mu.Unlock()
		writesTotal.WithLabelValues("superseded").Inc()
		return true
	}
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
	r.ws.WriteFailed(sid, d)
	r.mu.Unlock()
	switch {
	case r.stopping():
		// The run is being replaced or the engine stops: the request was cut short on purpose,
		// and the next run reads the worker afresh. Not a failure.
		writesTotal.WithLabelValues("canceled").Inc()
		return true
	case twilio.IsVersionConflict(err):
		// The worker changed under us: read it again and decide again (a change of activity the
		// read finds is a person's: PutWorker).
		writesTotal.WithLabelValues("conflict").Inc()
		c.conflicts.Add(1)
		r.mu.Lock()
		r.readFirst(sid)
		r.mu.Unlock()
		return true
	case twilio.IsNotFound(err):
		writesTotal.WithLabelValues("not_found").Inc()
		r.mu.Lock()
		r.readFirst(sid)
		r.mu.Unlock()
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
		r.retryLater(sid)
		return false
	}
}

// activityContext is the context of a worker's Twilio requests: activity enforcement's priority,
// queued by when the worker's first event not handled yet was received (twilio.WithOrder), so
// that the several requests of one worker's handling keep their place. The caller holds r.mu.
func (r *run) activityContext(sid string) context.Context {
	return twilio.WithOrder(twilio.WithPriority(r.ctx, twilio.PriorityActivity), r.since[sid])
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
