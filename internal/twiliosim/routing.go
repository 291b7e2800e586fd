package twiliosim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/internal/expr"
)

// The routing engine. Everything here runs under s.mu.

// defaultReservationTimeout is Twilio's TaskReservationTimeout default.
const defaultReservationTimeout = 120

// finishedTaskRetention is how long Twilio keeps completed and canceled
// tasks before deleting them.
const finishedTaskRetention = 15 * time.Minute

type taskSpec struct {
	attrs          map[string]any
	priority       int
	timeout        int
	channel        *taskChannel
	workflow       *workflow
	ignoreCapacity bool
	routingTarget  string
	callSID        string
}

// createTask makes a task, enters it into its workflow and routes.
func (s *Sim) createTask(ws *workspace, spec taskSpec) *task {
	t := s.newTask(ws, spec)
	s.startTask(ws, t)
	return t
}

// newTask registers a task without routing it yet.
func (s *Sim) newTask(ws *workspace, spec taskSpec) *task {
	now := s.now()
	t := &task{
		sid:            s.newSID("WT"),
		attrs:          spec.attrs,
		attrsJSON:      mustJSON(spec.attrs),
		priority:       spec.priority,
		timeout:        spec.timeout,
		channel:        spec.channel,
		workflow:       spec.workflow,
		status:         taskPending,
		created:        now,
		updated:        now,
		ignoreCapacity: spec.ignoreCapacity,
		routingTarget:  spec.routingTarget,
		callSID:        spec.callSID,
	}
	t.route.filter = -2
	if t.workflow != nil {
		t.route.cfg = t.workflow.config
	}
	ws.tasks.put(t.sid, t)
	return t
}

// startTask announces the task, starts its TTL and routes it.
func (s *Sim) startTask(ws *workspace, t *task) {
	s.emitTR(ws, "task.created", evCtx{task: t})
	t.ttl = s.after(time.Duration(t.timeout)*time.Second, func() {
		if t.status == taskPending || t.status == taskReserved {
			s.cancelTask(ws, t, ReasonTTLExceeded)
		}
	})
	if t.workflow != nil {
		s.emitTR(ws, "workflow.entered", evCtx{task: t})
		s.selectFilter(ws, t, 0, true)
	}
	s.route(ws)
}

// selectFilter finds the first filter from index `from` whose expression the
// task matches and enters its first target; failing that, default_filter
// when allowed. It reports whether the task got a step.
func (s *Sim) selectFilter(ws *workspace, t *task, from int, allowDefault bool) bool {
	cfg := t.route.cfg
	for i := from; i < len(cfg.filters); i++ {
		if cfg.filters[i].expr.Eval(t.attrs) {
			s.enterStep(ws, t, i, 0)
			return true
		}
	}
	if allowDefault && cfg.def != nil {
		s.enterStep(ws, t, -1, 0)
		return true
	}
	return false
}

func (s *Sim) stepOf(t *task, filter, target int) *resolvedTarget {
	cfg := t.route.cfg
	if filter == -1 {
		return cfg.def
	}
	return cfg.filters[filter].targets[target]
}

// enterStep moves the task to a routing step: priority, queue, timeout.
func (s *Sim) enterStep(ws *workspace, t *task, filter, target int) {
	step := s.stepOf(t, filter, target)
	rs := &t.route
	rs.timer.cancel()
	rs.filter, rs.target, rs.step = filter, target, step
	rs.gen++
	rs.expired = false
	rs.rejected = nil
	rs.checkSkip = step.skipIf != nil
	if step.priority != nil && *step.priority != t.priority {
		t.priority = *step.priority
	}
	q, _ := ws.queues.get(step.queueSID)
	prev := rs.queue
	rs.queue = q
	extra := map[string]any{}
	if filter >= 0 {
		f := rs.cfg.filters[filter]
		extra["workflow_filter_name"] = f.name
		extra["workflow_filter_expression"] = f.exprSrc
	} else {
		extra["workflow_filter_name"] = "Default Filter"
	}
	extra["workflow_filter_target_expression"] = step.exprSrc
	s.emitTR(ws, "workflow.target-matched", evCtx{task: t, extra: extra})
	if q != nil && q != prev {
		t.queueEntered = s.now()
		if prev != nil {
			s.emitTR(ws, "task-queue.moved", evCtx{task: t, extra: map[string]any{
				"previous_task_queue_sid":  prev.sid,
				"previous_task_queue_name": prev.name,
			}})
		}
		s.emitTR(ws, "task-queue.entered", evCtx{task: t})
	}
	if filter >= 0 && step.timeout > 0 {
		gen := rs.gen
		rs.timer = s.after(time.Duration(step.timeout)*time.Second, func() {
			if rs.gen != gen || (t.status != taskPending && t.status != taskReserved) {
				return
			}
			if pendingCount(t) > 0 {
				// The offer in flight finishes first; see endReservation.
				rs.expired = true
				return
			}
			s.advanceStep(ws, t, false)
		})
	}
}

// advanceStep moves the task past its current step after a timeout or a
// skip: the next target, else the next matching filter, else (after a skip)
// default_filter, else the workflow times out and the task is canceled.
func (s *Sim) advanceStep(ws *workspace, t *task, skipped bool) {
	rs := &t.route
	if rs.filter == -1 {
		return // default_filter waits until the TTL
	}
	if rs.filter >= 0 {
		f := rs.cfg.filters[rs.filter]
		if rs.target+1 < len(f.targets) {
			s.enterStep(ws, t, rs.filter, rs.target+1)
			return
		}
		if s.selectFilter(ws, t, rs.filter+1, skipped) {
			return
		}
	}
	rs.timer.cancel()
	s.emitTR(ws, "workflow.timeout", evCtx{task: t})
	s.cancelTask(ws, t, ReasonWorkflowTimeout)
}

func pendingCount(t *task) int {
	n := 0
	for _, r := range t.reservations {
		if r.status == resPending {
			n++
		}
	}
	return n
}

func countStatus(t *task, statuses ...string) int {
	n := 0
	for _, r := range t.reservations {
		for _, st := range statuses {
			if r.status == st {
				n++
			}
		}
	}
	return n
}

// routeAll routes every workspace.
func (s *Sim) routeAll() {
	for _, ws := range s.workspaces.list() {
		s.route(ws)
	}
}

// route offers waiting tasks to workers until nothing more can be matched:
// tasks by priority then time in queue, workers longest idle first (round
// robin) unless the step has order_by. After each reservation it starts
// over, so capacity is always given to the most urgent task first.
func (s *Sim) route(ws *workspace) {
	for guard := 0; guard < 100000; guard++ {
		tasks := s.routable(ws)
		progressed := false
		for _, t := range tasks {
			maxRes := 1
			if q := t.route.queue; q != nil && q.maxReserved > 0 {
				maxRes = q.maxReserved
			}
			if pendingCount(t) >= maxRes {
				continue
			}
			if cands := s.candidates(ws, t, true); len(cands) > 0 {
				s.reserve(ws, t, cands[0])
				progressed = true
				break
			}
		}
		if progressed {
			continue
		}
		for _, t := range tasks {
			rs := &t.route
			if !rs.checkSkip {
				continue
			}
			rs.checkSkip = false
			if pendingCount(t) > 0 || rs.step == nil || rs.step.skipIf == nil {
				continue
			}
			if rs.step.skipIf.Eval(s.skipEnv(ws, t)) {
				s.emitTR(ws, "workflow.skipped", evCtx{task: t})
				s.advanceStep(ws, t, true)
				progressed = true
				break
			}
		}
		if !progressed {
			return
		}
	}
}

// routable lists tasks waiting in a queue, most urgent first.
func (s *Sim) routable(ws *workspace) []*task {
	var out []*task
	for _, t := range ws.tasks.list() {
		if (t.status == taskPending || t.status == taskReserved) && t.route.queue != nil {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		if a.route.queue == b.route.queue && a.route.queue.taskOrder == "LIFO" {
			return a.queueEntered.After(b.queueEntered)
		}
		return a.queueEntered.Before(b.queueEntered)
	})
	return out
}

func workerEnv(w *worker) map[string]any {
	var activitySID, activityName string
	if w.activity != nil {
		activitySID, activityName = w.activity.sid, w.activity.name
	}
	return expr.WorkerEnv(w.attrs, w.sid, w.name, activitySID, activityName)
}

// eligible says whether a worker belongs to the task's current step,
// ignoring availability and capacity.
func (s *Sim) eligible(t *task, w *worker) bool {
	rs := &t.route
	q := rs.queue
	if q == nil || !q.matches(w) {
		return false
	}
	step := rs.step
	if step == nil {
		return true
	}
	if step.knownSID != "" && taskAttrRef(t.attrs, step.knownSID) != w.sid {
		return false
	}
	if step.knownName != "" && taskAttrRef(t.attrs, step.knownName) != w.name {
		return false
	}
	if step.expr != nil && !step.expr.Eval(map[string]any{"task": t.attrs, "worker": workerEnv(w)}) {
		return false
	}
	return true
}

func (q *taskQueue) matches(w *worker) bool {
	if q.targetExpr == nil {
		return false // an empty target_workers holds tasks until moved
	}
	return q.targetExpr.Eval(w.attrs)
}

// hasCapacity says whether the worker can take one more task of the task's
// channel now.
func (s *Sim) hasCapacity(ws *workspace, w *worker, t *task) bool {
	wc, ok := w.channels.get(t.channel.sid)
	if !ok || !wc.available {
		return false
	}
	if t.ignoreCapacity {
		return true
	}
	if !ws.multiTask {
		return len(w.live) == 0
	}
	used := 0
	for _, r := range w.live {
		if r.task.channel == t.channel {
			used++
		}
	}
	return used < wc.capacity
}

// candidates lists workers who may be offered the task now, best first.
func (s *Sim) candidates(ws *workspace, t *task, needAvailable bool) []*worker {
	var out []*worker
	for _, w := range ws.workers.list() {
		if needAvailable && (w.activity == nil || !w.activity.available) {
			continue
		}
		if t.route.rejected[w.sid] {
			continue
		}
		holds := false
		for _, r := range t.reservations {
			if r.worker == w && r.live() {
				holds = true
				break
			}
		}
		if holds || !s.eligible(t, w) {
			continue
		}
		if needAvailable && !s.hasCapacity(ws, w, t) {
			continue
		}
		out = append(out, w)
	}
	var order []orderClause
	if t.route.step != nil {
		order = t.route.step.orderBy
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, c := range order {
			if r := compareOrder(a, b, c); r != 0 {
				return r < 0
			}
		}
		if !a.lastReserved.Equal(b.lastReserved) {
			return a.lastReserved.Before(b.lastReserved)
		}
		return a.seq < b.seq
	})
	return out
}

// compareOrder orders two workers by one order_by clause: workers missing
// the attribute come last whatever the direction, as Twilio documents.
func compareOrder(a, b *worker, c orderClause) int {
	av, aok := lookupPath(a.attrs, c.path)
	bv, bok := lookupPath(b.attrs, c.path)
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return 1
	case !bok:
		return -1
	}
	r := 0
	af, aNum := av.(float64)
	bf, bNum := bv.(float64)
	switch {
	case aNum && bNum:
		if af < bf {
			r = -1
		} else if af > bf {
			r = 1
		}
	default:
		r = strings.Compare(fmt.Sprint(av), fmt.Sprint(bv))
	}
	if c.desc {
		r = -r
	}
	return r
}

// skipEnv counts the workers of the current step for skip_if:
// workers.available, workers.unavailable and workers.<activity SID>.
func (s *Sim) skipEnv(ws *workspace, t *task) map[string]any {
	counts := map[string]any{}
	avail, unavail := 0, 0
	for _, w := range ws.workers.list() {
		if !s.eligible(t, w) {
			continue
		}
		if w.activity != nil && w.activity.available {
			avail++
		} else {
			unavail++
		}
		if w.activity != nil {
			n, _ := counts[w.activity.sid].(int)
			counts[w.activity.sid] = n + 1
		}
	}
	counts["available"] = avail
	counts["unavailable"] = unavail
	return map[string]any{"workers": counts}
}

// reserve offers the task to the worker.
func (s *Sim) reserve(ws *workspace, t *task, w *worker) *reservation {
	now := s.now()
	r := &reservation{sid: s.newSID("WR"), task: t, worker: w, status: resPending, created: now, updated: now}
	ws.reservations.put(r.sid, r)
	t.reservations = append(t.reservations, r)
	w.live[r.sid] = r
	w.lastReserved = now
	if t.status == taskPending {
		t.status = taskReserved
		t.version++
		t.updated = now
	}
	t.route.checkSkip = false
	timeout := defaultReservationTimeout
	if t.workflow != nil && t.workflow.reservationTimeout > 0 {
		timeout = t.workflow.reservationTimeout
	}
	r.timer = s.after(time.Duration(timeout)*time.Second, func() {
		if r.status != resPending {
			return
		}
		s.endReservation(ws, r, resTimeout)
		// Twilio moves a worker who let an offer time out to the
		// workspace's timeout activity, so they stop receiving offers.
		if ws.timeoutActivity != nil {
			s.setWorkerActivity(ws, w, ws.timeoutActivity, false)
		}
	})
	s.emitTR(ws, "reservation.created", evCtx{task: t, res: r})
	return r
}

func (s *Sim) setResStatus(r *reservation, status string) {
	r.status = status
	r.version++
	r.updated = s.now()
	if !r.live() {
		delete(r.worker.live, r.sid)
		r.timer.cancel()
	}
}

// endReservation closes a pending reservation without assignment:
// rejected, timeout, canceled or rescinded.
func (s *Sim) endReservation(ws *workspace, r *reservation, status string) {
	if r.status != resPending {
		return
	}
	s.setResStatus(r, status)
	t := r.task
	s.emitTR(ws, "reservation."+status, evCtx{task: t, res: r})
	if status == resRejected {
		if t.route.rejected == nil {
			t.route.rejected = map[string]bool{}
		}
		t.route.rejected[r.worker.sid] = true
	}
	if t.status == taskReserved && pendingCount(t) == 0 {
		t.status = taskPending
		t.version++
		t.updated = s.now()
		if t.route.expired {
			s.advanceStep(ws, t, false)
		}
	}
}

// acceptReservation assigns the task to the reservation's worker and
// rescinds the task's other offers.
func (s *Sim) acceptReservation(ws *workspace, r *reservation) error {
	if r.status != resPending {
		return fmt.Errorf("reservation %s is %s, not pending", r.sid, r.status)
	}
	t := r.task
	s.setResStatus(r, resAccepted)
	r.timer.cancel()
	if t.status == taskPending || t.status == taskReserved {
		t.status = taskAssigned
		t.version++
		t.updated = s.now()
		t.route.timer.cancel()
		t.ttl.cancel()
	}
	s.emitTR(ws, "reservation.accepted", evCtx{task: t, res: r})
	for _, other := range t.reservations {
		if other != r && other.status == resPending {
			s.endReservation(ws, other, resRescinded)
		}
	}
	if t.transferInitiated {
		t.transferInitiated = false
		s.emitTR(ws, "task.transfer-completed", evCtx{task: t, res: r})
	}
	return nil
}

// wrapReservation moves an accepted reservation to wrapping; the task wraps
// when no one is still on it.
func (s *Sim) wrapReservation(ws *workspace, r *reservation) error {
	if r.status != resAccepted {
		return fmt.Errorf("reservation %s is %s, not accepted", r.sid, r.status)
	}
	s.setResStatus(r, resWrapping)
	t := r.task
	s.emitTR(ws, "reservation.wrapup", evCtx{task: t, res: r})
	if t.status == taskAssigned && countStatus(t, resAccepted) == 0 {
		t.status = taskWrapping
		t.version++
		t.updated = s.now()
		s.emitTR(ws, "task.wrapup", evCtx{task: t})
	}
	return nil
}

// completeReservation frees the worker's capacity; the task completes when
// no reservation is accepted or wrapping any more.
func (s *Sim) completeReservation(ws *workspace, r *reservation) error {
	if r.status != resAccepted && r.status != resWrapping {
		return fmt.Errorf("reservation %s is %s, not accepted or wrapping", r.sid, r.status)
	}
	s.setResStatus(r, resCompleted)
	t := r.task
	s.emitTR(ws, "reservation.completed", evCtx{task: t, res: r})
	if (t.status == taskAssigned || t.status == taskWrapping) && countStatus(t, resAccepted, resWrapping) == 0 {
		s.finishTask(ws, t, taskCompleted, "reservation completed")
	}
	return nil
}

// cancelTask cancels a task that is not assigned yet.
func (s *Sim) cancelTask(ws *workspace, t *task, reason string) {
	if t.status != taskPending && t.status != taskReserved {
		return
	}
	for _, r := range t.reservations {
		if r.status == resPending {
			s.endReservationQuiet(ws, r, resCanceled)
		}
	}
	s.finishTask(ws, t, taskCanceled, reason)
}

// endReservationQuiet cancels a pending reservation without touching the
// task's routing (the task is ending).
func (s *Sim) endReservationQuiet(ws *workspace, r *reservation, status string) {
	s.setResStatus(r, status)
	s.emitTR(ws, "reservation."+status, evCtx{task: r.task, res: r})
}

// completeTask completes an assigned or wrapping task and its reservations.
func (s *Sim) completeTask(ws *workspace, t *task, reason string) {
	for _, r := range t.reservations {
		if r.status == resAccepted || r.status == resWrapping {
			s.setResStatus(r, resCompleted)
			s.emitTR(ws, "reservation.completed", evCtx{task: t, res: r})
		}
	}
	s.finishTask(ws, t, taskCompleted, reason)
}

// wrapTask moves an assigned task and its accepted reservations to wrapping.
func (s *Sim) wrapTask(ws *workspace, t *task) {
	for _, r := range t.reservations {
		if r.status == resAccepted {
			s.setResStatus(r, resWrapping)
			s.emitTR(ws, "reservation.wrapup", evCtx{task: t, res: r})
		}
	}
	t.status = taskWrapping
	t.version++
	t.updated = s.now()
	s.emitTR(ws, "task.wrapup", evCtx{task: t})
}

// finishTask ends a task (completed or canceled), stops its timers, frees a
// call waiting for it and schedules its deletion as Twilio does.
func (s *Sim) finishTask(ws *workspace, t *task, status, reason string) {
	t.status = status
	t.reason = reason
	t.version++
	t.updated = s.now()
	t.ttl.cancel()
	t.route.timer.cancel()
	if status == taskCanceled {
		s.emitTR(ws, "task.canceled", evCtx{task: t})
	} else {
		s.emitTR(ws, "task.completed", evCtx{task: t})
	}
	s.taskEnded(t)
	s.after(finishedTaskRetention, func() {
		if _, ok := ws.tasks.get(t.sid); ok {
			s.emitTR(ws, "task.system-deleted", evCtx{task: t})
			s.removeTask(ws, t)
		}
	})
}

func (s *Sim) removeTask(ws *workspace, t *task) {
	t.ttl.cancel()
	t.route.timer.cancel()
	for _, r := range t.reservations {
		delete(r.worker.live, r.sid)
		r.timer.cancel()
		ws.reservations.del(r.sid)
	}
	ws.tasks.del(t.sid)
}

// deleteTask is DELETE on a task. A pending reservation is canceled first, as when its task is
// canceled. An accepted or wrapping reservation has no status to move to (TaskRouter cancels only
// pending ones): it goes with the task, and task.deleted is the only event that says the worker's
// work is gone.
func (s *Sim) deleteTask(ws *workspace, t *task) {
	for _, r := range t.reservations {
		switch {
		case r.status == resPending:
			s.endReservationQuiet(ws, r, resCanceled)
		case r.live():
			delete(r.worker.live, r.sid)
			r.timer.cancel()
		}
	}
	if t.status != taskCompleted && t.status != taskCanceled {
		t.status = taskCanceled
		t.reason = "task deleted"
		s.taskEnded(t)
	}
	s.emitTR(ws, "task.deleted", evCtx{task: t})
	s.removeTask(ws, t)
}

// updateTaskAttributes replaces the attributes; a task still waiting is
// evaluated against its workflow again, as Twilio does.
func (s *Sim) updateTaskAttributes(ws *workspace, t *task, attrs map[string]any) {
	t.attrs = attrs
	t.attrsJSON = mustJSON(attrs)
	s.reroute(ws, t)
}

// reroute evaluates a waiting task against its workflow's current
// configuration from the top (attributes changed, or ReEvaluateTasks).
func (s *Sim) reroute(ws *workspace, t *task) {
	if t.status == taskPending && t.workflow != nil && pendingCount(t) == 0 {
		t.route.timer.cancel()
		prevQueue := t.route.queue
		t.route = routeState{filter: -2, queue: prevQueue, gen: t.route.gen + 1, cfg: t.workflow.config}
		s.selectFilter(ws, t, 0, true)
	}
}

// setWorkerActivity changes a worker's activity, optionally rejecting its
// pending offers (only when the new activity is unavailable).
func (s *Sim) setWorkerActivity(ws *workspace, w *worker, a *activity, rejectPending bool) {
	if a == w.activity {
		return
	}
	now := s.now()
	prev, prevSince := w.activity, w.statusChanged
	w.activity = a
	w.statusChanged = now
	w.updated = now
	w.version++
	extra := map[string]any{
		"worker_time_in_previous_activity":    int(now.Sub(prevSince) / time.Second),
		"worker_time_in_previous_activity_ms": int(now.Sub(prevSince) / time.Millisecond),
	}
	if prev != nil {
		extra["worker_previous_activity_sid"] = prev.sid
		extra["worker_previous_activity_name"] = prev.name
	}
	s.emitTR(ws, "worker.activity.update", evCtx{worker: w, extra: extra})
	if rejectPending && !a.available {
		for _, r := range liveOf(w) {
			if r.status == resPending {
				s.endReservation(ws, r, resRejected)
			}
		}
	}
}

// liveOf lists a worker's live reservations in creation order.
func liveOf(w *worker) []*reservation {
	out := make([]*reservation, 0, len(w.live))
	for _, r := range w.live {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].sid < out[j].sid
	})
	return out
}
