package activity

import (
	"fmt"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

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
	// Reads of a whole workspace wait behind recoveries and activity writes.
	ctx := twilio.WithPriority(r.ctx, twilio.PriorityBackground)
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
	ws := NewWorkspace(r.sid, r.policies(all))
	workers, err := tw.ListWorkers(ctx, r.sid, twilio.WorkerFilter{})
	readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(workers))))
	if err != nil {
		return err
	}
	for _, w := range workers {
		ws.PutWorker(w.SID, w.FriendlyName, w.ActivitySID, w.Version, w.Attributes)
	}
	tasks, err := tw.ListTasks(ctx, r.sid, twilio.TaskFilter{AssignmentStatus: []string{"reserved", "assigned", "wrapping"}})
	readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(tasks))))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		res, err := tw.ListReservations(ctx, r.sid, twilio.ReservationFilter{TaskSID: t.SID})
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
	if prev := r.prev; prev != nil {
		// The run this one replaced has ended: what it knew of ended work still holds.
		prev.mu.Lock()
		ws.InheritEnded(prev.ws)
		prev.mu.Unlock()
		r.prev = nil
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
