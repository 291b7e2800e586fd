package twiliosim

import (
	"strings"

	"github.com/flexoperator/flex-operator/internal/expr"
)

func (s *Sim) listTaskQueues(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := ws.queues.list()
	if v := rq.str("FriendlyName"); v != "" {
		all = filter(all, func(q *taskQueue) bool { return q.name == v })
	}
	if v := rq.str("EvaluateWorkerAttributes"); v != "" {
		attrs, err := parseAttributes(v)
		if err != nil {
			return reply{}, errBad("EvaluateWorkerAttributes must be a JSON object: %v", err)
		}
		all = filter(all, func(q *taskQueue) bool { return q.targetExpr != nil && q.targetExpr.Eval(attrs) })
	}
	if v := rq.str("WorkerSid"); v != "" {
		w, ok := ws.workers.get(v)
		if !ok {
			return reply{}, errBad("WorkerSid %s is not a worker of this workspace", v)
		}
		all = filter(all, func(q *taskQueue) bool { return q.matches(w) })
	}
	return listPage(s, rq, "task_queues", all, func(q *taskQueue) any { return s.taskQueueJSON(ws, q) })
}

type queueSpec struct {
	name, target   string
	maxReserved    int
	order          string
	reservationAct *activity
	assignmentAct  *activity
}

func (s *Sim) queueForm(rq *request, ws *workspace, q *taskQueue) (queueSpec, error) {
	spec := queueSpec{name: rq.str("FriendlyName"), target: "1==1", maxReserved: 1, order: "FIFO"}
	if q != nil {
		spec = queueSpec{name: q.name, target: q.targetWorkers, maxReserved: q.maxReserved, order: q.taskOrder,
			reservationAct: q.reservationAct, assignmentAct: q.assignmentAct}
		if n := rq.str("FriendlyName"); n != "" {
			spec.name = n
		}
	}
	if spec.name == "" {
		return spec, errBad("FriendlyName is required")
	}
	if v := rq.optStr("TargetWorkers"); v != nil {
		spec.target = *v
	}
	mr, err := rq.optInt("MaxReservedWorkers", 1, 50)
	if err != nil {
		return spec, err
	}
	if mr != nil {
		spec.maxReserved = *mr
	}
	if v := rq.str("TaskOrder"); v != "" {
		if v != "FIFO" && v != "LIFO" {
			return spec, errBad("TaskOrder must be FIFO or LIFO")
		}
		spec.order = v
	}
	for key, dst := range map[string]**activity{"ReservationActivitySid": &spec.reservationAct, "AssignmentActivitySid": &spec.assignmentAct} {
		if v := rq.str(key); v != "" {
			a, ok := ws.activities.get(v)
			if !ok {
				return spec, errBad("%s %s is not an activity of this workspace", key, v)
			}
			*dst = a
		}
	}
	return spec, nil
}

func (s *Sim) addQueue(ws *workspace, spec queueSpec) (*taskQueue, error) {
	var e *expr.Expr
	if strings.TrimSpace(spec.target) != "" {
		var err error
		if e, err = expr.Parse(spec.target); err != nil {
			return nil, errBad("TargetWorkers: %v", err)
		}
	}
	now := s.now()
	q := &taskQueue{sid: s.newSID("WQ"), name: spec.name, targetWorkers: spec.target, targetExpr: e,
		maxReserved: spec.maxReserved, taskOrder: spec.order, reservationAct: spec.reservationAct,
		assignmentAct: spec.assignmentAct, created: now, updated: now}
	if q.maxReserved == 0 {
		q.maxReserved = 1
	}
	if q.taskOrder == "" {
		q.taskOrder = "FIFO"
	}
	ws.queues.put(q.sid, q)
	s.emitTR(ws, "task-queue.created", evCtx{resourceType: "taskqueue", resourceSID: q.sid,
		resourceURI: "/v1/Workspaces/" + ws.sid + "/TaskQueues/" + q.sid,
		extra:       map[string]any{"task_queue_sid": q.sid, "task_queue_name": q.name, "task_queue_target_expression": q.targetWorkers}})
	return q, nil
}

func (s *Sim) createTaskQueueREST(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	spec, err := s.queueForm(rq, ws, nil)
	if err != nil {
		return reply{}, err
	}
	q, err := s.addQueue(ws, spec)
	if err != nil {
		return reply{}, err
	}
	return created(s.taskQueueJSON(ws, q))
}

func (s *Sim) queueOf(rq *request, ws *workspace) (*taskQueue, error) {
	q, ok := ws.queues.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return q, nil
}

func (s *Sim) fetchTaskQueue(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	q, err := s.queueOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.taskQueueJSON(ws, q))
}

func (s *Sim) updateTaskQueue(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	q, err := s.queueOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	spec, err := s.queueForm(rq, ws, q)
	if err != nil {
		return reply{}, err
	}
	var e *expr.Expr
	if strings.TrimSpace(spec.target) != "" {
		if e, err = expr.Parse(spec.target); err != nil {
			return reply{}, errBad("TargetWorkers: %v", err)
		}
	}
	changed := spec.target != q.targetWorkers
	q.name, q.targetWorkers, q.targetExpr = spec.name, spec.target, e
	q.maxReserved, q.taskOrder, q.reservationAct, q.assignmentAct = spec.maxReserved, spec.order, spec.reservationAct, spec.assignmentAct
	q.updated = s.now()
	if changed {
		s.emitTR(ws, "task-queue.expression-updated", evCtx{resourceType: "taskqueue", resourceSID: q.sid,
			resourceURI: "/v1/Workspaces/" + ws.sid + "/TaskQueues/" + q.sid,
			extra:       map[string]any{"task_queue_sid": q.sid, "task_queue_name": q.name, "task_queue_target_expression": q.targetWorkers}})
	}
	s.route(ws)
	return okJSON(s.taskQueueJSON(ws, q))
}

func (s *Sim) deleteTaskQueue(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	q, err := s.queueOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	for _, wf := range ws.workflows.list() {
		if strings.Contains(wf.configuration, q.sid) {
			return reply{}, errBad("task queue %s is used by workflow %s", q.sid, wf.sid)
		}
	}
	for _, t := range ws.tasks.list() {
		if t.route.queue == q && (t.status == taskPending || t.status == taskReserved) {
			return reply{}, errBad("task queue %s still holds task %s", q.sid, t.sid)
		}
	}
	ws.queues.del(q.sid)
	return noContent()
}
