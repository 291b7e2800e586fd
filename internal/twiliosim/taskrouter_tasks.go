package twiliosim

import (
	"sort"
	"strconv"
	"strings"

	"github.com/flexoperator/flex-operator/internal/expr"
)

func (s *Sim) taskOf(rq *request, ws *workspace) (*task, error) {
	t, ok := ws.tasks.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return t, nil
}

func (s *Sim) listTasks(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := ws.tasks.list()
	if statuses := rq.form["AssignmentStatus"]; len(statuses) > 0 {
		want := map[string]bool{}
		for _, v := range statuses {
			for _, st := range strings.Split(v, ",") {
				want[strings.TrimSpace(st)] = true
			}
		}
		all = filter(all, func(t *task) bool { return want[t.status] })
	}
	if v := rq.str("WorkflowSid"); v != "" {
		all = filter(all, func(t *task) bool { return t.workflow != nil && t.workflow.sid == v })
	}
	if v := rq.str("WorkflowName"); v != "" {
		all = filter(all, func(t *task) bool { return t.workflow != nil && t.workflow.name == v })
	}
	if v := rq.str("TaskQueueSid"); v != "" {
		all = filter(all, func(t *task) bool { return t.route.queue != nil && t.route.queue.sid == v })
	}
	if v := rq.str("TaskQueueName"); v != "" {
		all = filter(all, func(t *task) bool { return t.route.queue != nil && t.route.queue.name == v })
	}
	if v := rq.str("TaskChannel"); v != "" {
		all = filter(all, func(t *task) bool { return t.channel.sid == v || t.channel.unique == v })
	}
	if v := rq.str("EvaluateTaskAttributes"); v != "" {
		e, err := expr.Parse(v)
		if err != nil {
			return reply{}, errBad("EvaluateTaskAttributes: %v", err)
		}
		all = filter(all, func(t *task) bool { return e.Eval(t.attrs) })
	}
	if v := rq.str("Ordering"); v != "" {
		if err := orderTasks(all, v); err != nil {
			return reply{}, err
		}
	}
	return listPage(s, rq, "tasks", all, func(t *task) any { return s.taskJSON(ws, t) })
}

// orderTasks sorts by "DateCreated:asc,Priority:desc" and the like.
func orderTasks(all []*task, ordering string) error {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	for _, part := range strings.Split(ordering, ",") {
		field, dir, _ := strings.Cut(strings.TrimSpace(part), ":")
		if field != "DateCreated" && field != "Priority" {
			return errBad("Ordering field %q must be DateCreated or Priority", field)
		}
		if dir != "" && dir != "asc" && dir != "desc" {
			return errBad("Ordering direction %q must be asc or desc", dir)
		}
		keys = append(keys, key{field, dir == "desc"})
	}
	sort.SliceStable(all, func(i, j int) bool {
		for _, k := range keys {
			c := 0
			switch k.field {
			case "DateCreated":
				c = all[i].created.Compare(all[j].created)
			case "Priority":
				c = all[i].priority - all[j].priority
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	return nil
}

func (s *Sim) createTaskREST(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	spec := taskSpec{timeout: 86400}
	if spec.attrs, err = parseAttributes(rq.str("Attributes")); err != nil {
		return reply{}, errBad("Attributes must be a JSON object: %v", err)
	}
	if p, err := rq.optInt("Priority", 0, 2147483647); err != nil {
		return reply{}, err
	} else if p != nil {
		spec.priority = *p
	}
	if v, err := rq.optInt("Timeout", 1, 1209600); err != nil {
		return reply{}, err
	} else if v != nil {
		spec.timeout = *v
	}
	chRef := rq.str("TaskChannel")
	if chRef == "" {
		chRef = "default"
	}
	var okCh bool
	if spec.channel, okCh = ws.channelByRef(chRef); !okCh {
		return reply{}, errBad("TaskChannel %q is not a task channel of this workspace", chRef)
	}
	if v := rq.str("TaskQueueSid"); v != "" {
		return reply{}, errBad("TaskQueueSid is not modelled by the simulator; give a WorkflowSid")
	}
	if v := rq.str("WorkflowSid"); v != "" {
		wf, ok := ws.workflows.get(v)
		if !ok {
			return reply{}, errBad("WorkflowSid %s is not a workflow of this workspace", v)
		}
		spec.workflow = wf
	} else if ws.workflows.len() == 1 {
		spec.workflow = ws.workflows.list()[0]
	} else {
		return reply{}, errBad("WorkflowSid is required when the workspace has %d workflows", ws.workflows.len())
	}
	if ic, err := rq.optBool("IgnoreCapacity"); err != nil {
		return reply{}, err
	} else if ic != nil {
		spec.ignoreCapacity = *ic
	}
	spec.routingTarget = rq.str("RoutingTarget")
	t := s.createTask(ws, spec)
	return reply{status: 201, body: s.taskJSON(ws, t), etag: strconv.Itoa(t.version)}, nil
}

func (s *Sim) fetchTask(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	t, err := s.taskOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return withETag(s.taskJSON(ws, t), t.version)
}

func (s *Sim) updateTask(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	t, err := s.taskOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if err := rq.ifMatch(t.version, "Task"); err != nil {
		return reply{}, err
	}
	var attrs map[string]any
	if rq.has("Attributes") {
		if attrs, err = parseAttributes(rq.str("Attributes")); err != nil {
			return reply{}, errBad("Attributes must be a JSON object: %v", err)
		}
	}
	prio, err := rq.optInt("Priority", 0, 2147483647)
	if err != nil {
		return reply{}, err
	}
	var ch *taskChannel
	if v := rq.str("TaskChannel"); v != "" {
		c, ok := ws.channelByRef(v)
		if !ok {
			return reply{}, errBad("TaskChannel %q is not a task channel of this workspace", v)
		}
		ch = c
	}
	status := rq.str("AssignmentStatus")
	switch status {
	case "":
	case taskCanceled:
		if t.status != taskPending && t.status != taskReserved {
			return reply{}, errBad("task %s is %s; only a pending or reserved task can be canceled", t.sid, t.status)
		}
	case taskCompleted:
		if t.status != taskAssigned && t.status != taskWrapping {
			return reply{}, errBad("task %s is %s; only an assigned or wrapping task can be completed", t.sid, t.status)
		}
	case taskWrapping:
		if t.status != taskAssigned {
			return reply{}, errBad("task %s is %s; only an assigned task can move to wrapping", t.sid, t.status)
		}
	default:
		return reply{}, errBad("AssignmentStatus %q cannot be set through the API", status)
	}
	if (t.status == taskCompleted || t.status == taskCanceled) && (attrs != nil || prio != nil || ch != nil) {
		return reply{}, errBad("task %s is %s and cannot be changed", t.sid, t.status)
	}
	changed := false
	if attrs != nil {
		s.updateTaskAttributes(ws, t, attrs)
		changed = true
	}
	if prio != nil && *prio != t.priority {
		t.priority = *prio
		changed = true
	}
	if ch != nil && ch != t.channel {
		t.channel = ch
		changed = true
	}
	if changed {
		t.version++
		t.updated = s.now()
		s.emitTR(ws, "task.updated", evCtx{task: t})
	}
	reason := rq.str("Reason")
	switch status {
	case taskCanceled:
		if reason == "" {
			reason = "canceled via API"
		}
		s.cancelTask(ws, t, reason)
	case taskCompleted:
		if reason == "" {
			reason = "completed via API"
		}
		s.completeTask(ws, t, reason)
	case taskWrapping:
		s.wrapTask(ws, t)
	}
	s.route(ws)
	return withETag(s.taskJSON(ws, t), t.version)
}

func (s *Sim) deleteTaskREST(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	t, err := s.taskOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if err := rq.ifMatch(t.version, "Task"); err != nil {
		return reply{}, err
	}
	s.deleteTask(ws, t)
	s.route(ws)
	return noContent()
}
