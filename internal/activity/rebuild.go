package activity

import (
	"sync"
	"time"

	"github.com/flexoperator/flex-operator/internal/twilio"
)

// rebuildParallelism is how many reads of a task's reservations a rebuild has on their way at
// once. The account's Twilio budget paces them (at background priority, behind recovery and
// activity enforcement); running several at once keeps the budget busy rather than waiting one
// round trip per task.
const rebuildParallelism = 8

// rebuild reads the workspace from TaskRouter in the background, at the lowest priority of the
// account's Twilio budget: its workers (pages of 1,000), its tasks that hold workers (pages of
// 1,000) and the reservations of each of those tasks, several at once. The calls grow with pages
// and live tasks, never with workers × tasks. Each read is retried until it succeeds or the run
// stops, so a failure costs that read, not the rebuild.
//
// Meanwhile the engine enforces every worker with an event: such a worker is read on its own
// (processNext) and is newer than anything the rebuild read. When the reads are done, the rebuild
// adds the workers the engine does not know yet; one it found holding a task an event has named
// since is read again instead (its read of the task may be older than the event).
func (r *run) rebuild() {
	start := time.Now()
	ctx := twilio.WithPriority(r.ctx, twilio.PriorityBackground)
	tw := r.client()
	var workers []twilio.Worker
	if !r.retry("Read the workspace's workers", func() (err error) {
		workers, err = tw.ListWorkers(ctx, r.sid, twilio.WorkerFilter{})
		readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(workers))))
		return err
	}) {
		return
	}
	var tasks []twilio.Task
	if !r.retry("Read the workspace's live tasks", func() (err error) {
		tasks, err = tw.ListTasks(ctx, r.sid, twilio.TaskFilter{AssignmentStatus: []string{"reserved", "assigned", "wrapping"}})
		readsTotal.WithLabelValues("rebuild").Add(float64(pages(len(tasks))))
		return err
	}) {
		return
	}
	reservations := make([][]twilio.Reservation, len(tasks))
	next := make(chan int)
	var wg sync.WaitGroup
	for i := 0; i < rebuildParallelism; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r.retry("Read a live task's reservations", func() error {
					res, err := tw.ListReservations(ctx, r.sid, twilio.ReservationFilter{TaskSID: tasks[i].SID})
					readsTotal.WithLabelValues("rebuild").Inc()
					if twilio.IsNotFound(err) {
						return nil
					}
					reservations[i] = res
					return err
				})
			}
		}()
	}
	for i := range tasks {
		if r.stopping() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if r.stopping() {
		return
	}
	taken, reread := r.merge(workers, tasks, reservations)
	rebuildSeconds.Observe(time.Since(start).Seconds())
	r.log().Info("Read the whole workspace; the picture is complete", "workers", len(workers), "fromRebuild", taken,
		"readAgain", reread, "liveTasks", len(tasks), "took", time.Since(start).String())
}

// heldTask is a live reservation the rebuild read, with its task's attributes.
type heldTask struct {
	sid        string
	res        Reservation
	attributes string
}

// merge adds what the rebuild read of the workers the engine does not know yet, and marks the
// picture complete. It returns how many workers it took from the rebuild and how many it asked to
// be read again.
func (r *run) merge(workers []twilio.Worker, tasks []twilio.Task, reservations [][]twilio.Reservation) (taken, reread int) {
	held := map[string][]heldTask{}
	for i, t := range tasks {
		for _, rv := range reservations[i] {
			st := ParseResStatus(rv.Status)
			if st == ResUnknown || st == ResEnded {
				continue
			}
			held[rv.WorkerSID] = append(held[rv.WorkerSID], heldTask{sid: rv.SID, attributes: t.Attributes,
				res: Reservation{TaskSID: t.SID, Channel: t.TaskChannelUniqueName, Status: st}})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.ws
	for _, w := range workers {
		if ws.Worker(w.SID) != nil || r.waiting[w.SID] != nil || r.needRead[w.SID] {
			// Read on its own since, or about to be: newer than what the rebuild read.
			continue
		}
		stale := false
		for _, h := range held[w.SID] {
			if r.freshTasks[h.res.TaskSID] || ws.ended.has(h.res.TaskSID) || ws.ended.has(h.sid) {
				stale = true
			}
		}
		if stale {
			r.readFirst(w.SID)
			reread++
			continue
		}
		ws.PutWorker(w.SID, w.FriendlyName, w.ActivitySID, w.Version, w.Attributes)
		for _, h := range held[w.SID] {
			h.res.Extended = HasTrue(h.attributes, ws.extendedAttr(w.SID))
			ws.PutReservation(w.SID, h.sid, h.res)
		}
		taken++
		if ws.Governor(w.SID) != nil {
			r.queue.Add(w.SID)
		}
	}
	r.synced = true
	r.freshTasks = nil
	return taken, reread
}

// pages is how many list pages n items took (at least one request).
func pages(n int) int { return max(1, (n+999)/1000) }
