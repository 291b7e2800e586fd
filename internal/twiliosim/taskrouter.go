package twiliosim

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/internal/expr"
)

// TaskRouter v1 REST: paths, parameters and JSON as twilio-go uses them.

func (s *Sim) taskRouterMux() *http.ServeMux {
	m := http.NewServeMux()
	h := func(pattern string, f handlerFunc) { m.HandleFunc(pattern, s.wrap(f)) }
	const ws = "/v1/Workspaces/{ws}"
	h("GET /v1/Workspaces", s.listWorkspaces)
	h("POST /v1/Workspaces", s.createWorkspaceREST)
	h("GET "+ws, s.fetchWorkspace)
	h("POST "+ws, s.updateWorkspace)
	h("DELETE "+ws, s.deleteWorkspace)
	h("GET "+ws+"/Activities", s.listActivities)
	h("POST "+ws+"/Activities", s.createActivity)
	h("GET "+ws+"/Activities/{sid}", s.fetchActivity)
	h("POST "+ws+"/Activities/{sid}", s.updateActivity)
	h("DELETE "+ws+"/Activities/{sid}", s.deleteActivity)
	h("GET "+ws+"/TaskChannels", s.listTaskChannels)
	h("POST "+ws+"/TaskChannels", s.createTaskChannel)
	h("GET "+ws+"/TaskChannels/{sid}", s.fetchTaskChannel)
	h("GET "+ws+"/Workers", s.listWorkers)
	h("POST "+ws+"/Workers", s.createWorkerREST)
	h("GET "+ws+"/Workers/{sid}", s.fetchWorker)
	h("POST "+ws+"/Workers/{sid}", s.updateWorker)
	h("DELETE "+ws+"/Workers/{sid}", s.deleteWorker)
	h("GET "+ws+"/Workers/{sid}/Channels", s.listWorkerChannels)
	h("GET "+ws+"/Workers/{sid}/Channels/{ch}", s.fetchWorkerChannel)
	h("POST "+ws+"/Workers/{sid}/Channels/{ch}", s.updateWorkerChannel)
	h("GET "+ws+"/Workers/{sid}/Reservations", s.listWorkerReservations)
	h("GET "+ws+"/Workers/{sid}/Reservations/{res}", s.fetchWorkerReservation)
	h("POST "+ws+"/Workers/{sid}/Reservations/{res}", s.updateWorkerReservation)
	h("GET "+ws+"/TaskQueues", s.listTaskQueues)
	h("POST "+ws+"/TaskQueues", s.createTaskQueueREST)
	h("GET "+ws+"/TaskQueues/{sid}", s.fetchTaskQueue)
	h("POST "+ws+"/TaskQueues/{sid}", s.updateTaskQueue)
	h("DELETE "+ws+"/TaskQueues/{sid}", s.deleteTaskQueue)
	h("GET "+ws+"/Workflows", s.listWorkflows)
	h("POST "+ws+"/Workflows", s.createWorkflowREST)
	h("GET "+ws+"/Workflows/{sid}", s.fetchWorkflow)
	h("POST "+ws+"/Workflows/{sid}", s.updateWorkflow)
	h("DELETE "+ws+"/Workflows/{sid}", s.deleteWorkflow)
	h("GET "+ws+"/Tasks", s.listTasks)
	h("POST "+ws+"/Tasks", s.createTaskREST)
	h("GET "+ws+"/Tasks/{sid}", s.fetchTask)
	h("POST "+ws+"/Tasks/{sid}", s.updateTask)
	h("DELETE "+ws+"/Tasks/{sid}", s.deleteTaskREST)
	h("GET "+ws+"/Tasks/{sid}/Reservations", s.listTaskReservations)
	h("GET "+ws+"/Tasks/{sid}/Reservations/{res}", s.fetchTaskReservation)
	h("POST "+ws+"/Tasks/{sid}/Reservations/{res}", s.updateTaskReservation)
	h("GET "+ws+"/Events", s.listEvents)
	h("GET "+ws+"/Events/{sid}", s.fetchEvent)
	return m
}

// --- rendering ---

func (s *Sim) workspaceJSON(ws *workspace) map[string]any {
	u := "/v1/Workspaces/" + ws.sid
	m := map[string]any{
		"account_sid":            s.accountSID,
		"sid":                    ws.sid,
		"friendly_name":          ws.name,
		"date_created":           trTime(ws.created),
		"date_updated":           trTime(ws.updated),
		"event_callback_url":     nullable(ws.eventCallbackURL),
		"events_filter":          nullable(ws.eventsFilterRaw),
		"multi_task_enabled":     ws.multiTask,
		"prioritize_queue_order": ws.prioritizeQueueOrder,
		"url":                    trURL(u),
		"links": map[string]any{
			"activities": trURL(u + "/Activities"), "workers": trURL(u + "/Workers"), "task_queues": trURL(u + "/TaskQueues"),
			"workflows": trURL(u + "/Workflows"), "tasks": trURL(u + "/Tasks"), "task_channels": trURL(u + "/TaskChannels"),
			"events": trURL(u + "/Events"),
		},
	}
	if a := ws.defaultActivity; a != nil {
		m["default_activity_sid"], m["default_activity_name"] = a.sid, a.name
	}
	if a := ws.timeoutActivity; a != nil {
		m["timeout_activity_sid"], m["timeout_activity_name"] = a.sid, a.name
	}
	return m
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Sim) activityJSON(ws *workspace, a *activity) map[string]any {
	u := "/v1/Workspaces/" + ws.sid + "/Activities/" + a.sid
	return map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": a.sid, "friendly_name": a.name,
		"available": a.available, "date_created": trTime(a.created), "date_updated": trTime(a.updated),
		"url": trURL(u), "links": map[string]any{"workspace": trURL("/v1/Workspaces/" + ws.sid)},
	}
}

func (s *Sim) taskChannelJSON(ws *workspace, c *taskChannel) map[string]any {
	return map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": c.sid, "friendly_name": c.name,
		"unique_name": c.unique, "channel_optimized_routing": c.optimized,
		"date_created": trTime(c.created), "date_updated": trTime(c.updated),
		"url": trURL("/v1/Workspaces/" + ws.sid + "/TaskChannels/" + c.sid),
	}
}

func (s *Sim) workerJSON(ws *workspace, w *worker) map[string]any {
	u := "/v1/Workspaces/" + ws.sid + "/Workers/" + w.sid
	m := map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": w.sid, "friendly_name": w.name,
		"attributes": w.attrsJSON, "date_created": trTime(w.created), "date_updated": trTime(w.updated),
		"date_status_changed": trTime(w.statusChanged), "url": trURL(u),
		"links": map[string]any{"channels": trURL(u + "/Channels"), "reservations": trURL(u + "/Reservations")},
	}
	if a := w.activity; a != nil {
		m["activity_sid"], m["activity_name"], m["available"] = a.sid, a.name, a.available
	}
	return m
}

func (s *Sim) workerChannelJSON(ws *workspace, w *worker, wc *workerChannel) map[string]any {
	assigned := 0
	for _, r := range w.live {
		if r.task.channel == wc.channel && r.status != resPending {
			assigned++
		}
	}
	pct := 0
	if wc.capacity > 0 {
		used := 0
		for _, r := range w.live {
			if r.task.channel == wc.channel {
				used++
			}
		}
		pct = max(0, (wc.capacity-used)*100/wc.capacity)
	}
	return map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "worker_sid": w.sid, "sid": wc.sid,
		"task_channel_sid": wc.channel.sid, "task_channel_unique_name": wc.channel.unique,
		"configured_capacity": wc.capacity, "available": wc.available, "assigned_tasks": assigned,
		"available_capacity_percentage": pct,
		"date_created":                  trTime(wc.created), "date_updated": trTime(wc.updated),
		"url": trURL("/v1/Workspaces/" + ws.sid + "/Workers/" + w.sid + "/Channels/" + wc.sid),
	}
}

func (s *Sim) taskQueueJSON(ws *workspace, q *taskQueue) map[string]any {
	m := map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": q.sid, "friendly_name": q.name,
		"target_workers": q.targetWorkers, "max_reserved_workers": q.maxReserved, "task_order": q.taskOrder,
		"date_created": trTime(q.created), "date_updated": trTime(q.updated),
		"url": trURL("/v1/Workspaces/" + ws.sid + "/TaskQueues/" + q.sid),
	}
	if a := q.reservationAct; a != nil {
		m["reservation_activity_sid"], m["reservation_activity_name"] = a.sid, a.name
	}
	if a := q.assignmentAct; a != nil {
		m["assignment_activity_sid"], m["assignment_activity_name"] = a.sid, a.name
	}
	return m
}

func (s *Sim) workflowJSON(ws *workspace, wf *workflow) map[string]any {
	return map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": wf.sid, "friendly_name": wf.name,
		"configuration": wf.configuration, "document_content_type": "application/json",
		"task_reservation_timeout": wf.reservationTimeout, "assignment_callback_url": nullable(wf.assignmentCallbackURL),
		"fallback_assignment_callback_url": nullable(wf.fallbackURL),
		"date_created":                     trTime(wf.created), "date_updated": trTime(wf.updated),
		"url": trURL("/v1/Workspaces/" + ws.sid + "/Workflows/" + wf.sid),
	}
}

func (s *Sim) taskJSON(ws *workspace, t *task) map[string]any {
	m := map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": t.sid, "attributes": t.attrsJSON,
		"assignment_status": t.status, "priority": t.priority, "timeout": t.timeout,
		"age":          int(s.now().Sub(t.created) / time.Second),
		"date_created": trTime(t.created), "date_updated": trTime(t.updated),
		"task_channel_sid": t.channel.sid, "task_channel_unique_name": t.channel.unique,
		"reason": nullable(t.reason), "ignore_capacity": t.ignoreCapacity, "routing_target": nullable(t.routingTarget),
		"addons": "{}",
		"url":    trURL("/v1/Workspaces/" + ws.sid + "/Tasks/" + t.sid),
		"links":  map[string]any{"reservations": trURL("/v1/Workspaces/" + ws.sid + "/Tasks/" + t.sid + "/Reservations")},
	}
	if t.workflow != nil {
		m["workflow_sid"], m["workflow_friendly_name"] = t.workflow.sid, t.workflow.name
	}
	if q := t.route.queue; q != nil {
		m["task_queue_sid"], m["task_queue_friendly_name"] = q.sid, q.name
		m["task_queue_entered_date"] = trTime(t.queueEntered)
	}
	return m
}

func (s *Sim) reservationJSON(ws *workspace, r *reservation) map[string]any {
	return map[string]any{
		"account_sid": s.accountSID, "workspace_sid": ws.sid, "sid": r.sid, "task_sid": r.task.sid,
		"worker_sid": r.worker.sid, "worker_name": r.worker.name, "reservation_status": r.status,
		"date_created": trTime(r.created), "date_updated": trTime(r.updated),
		"url": trURL("/v1/Workspaces/" + ws.sid + "/Tasks/" + r.task.sid + "/Reservations/" + r.sid),
		"links": map[string]any{
			"task":   trURL("/v1/Workspaces/" + ws.sid + "/Tasks/" + r.task.sid),
			"worker": trURL("/v1/Workspaces/" + ws.sid + "/Workers/" + r.worker.sid),
		},
	}
}

// --- lookups ---

func (s *Sim) wsOf(rq *request) (*workspace, error) {
	ws, ok := s.workspaces.get(rq.path("ws"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return ws, nil
}

func (ws *workspace) channelByRef(ref string) (*taskChannel, bool) {
	if c, ok := ws.channels.get(ref); ok {
		return c, true
	}
	for _, c := range ws.channels.list() {
		if c.unique == ref {
			return c, true
		}
	}
	return nil, false
}

func (ws *workspace) activityByName(name string) (*activity, bool) {
	for _, a := range ws.activities.list() {
		if a.name == name {
			return a, true
		}
	}
	return nil, false
}

func (ws *workspace) workerByName(name string) (*worker, bool) {
	for _, w := range ws.workers.list() {
		if w.name == name {
			return w, true
		}
	}
	return nil, false
}

// --- workspaces ---

// newWorkspace creates a workspace the way Flex provisions one: activities
// Offline (default and timeout), Available, Unavailable, Break; task
// channels default, voice and chat; multitasking on.
func (s *Sim) newWorkspace(name string) *workspace {
	now := s.now()
	ws := &workspace{
		sid: s.newSID("WS"), name: name, created: now, updated: now,
		multiTask: true, prioritizeQueueOrder: "FIFO",
		activities: newOrdered[*activity](), channels: newOrdered[*taskChannel](),
		workers: newOrdered[*worker](), queues: newOrdered[*taskQueue](), workflows: newOrdered[*workflow](),
		tasks: newOrdered[*task](), reservations: newOrdered[*reservation](),
	}
	for _, a := range []struct {
		name  string
		avail bool
	}{{"Offline", false}, {"Available", true}, {"Unavailable", false}, {"Break", false}} {
		act := &activity{sid: s.newSID("WA"), name: a.name, available: a.avail, created: now, updated: now}
		ws.activities.put(act.sid, act)
	}
	ws.defaultActivity, _ = ws.activityByName("Offline")
	ws.timeoutActivity = ws.defaultActivity
	for _, c := range []struct{ unique, name string }{{"default", "Default"}, {"voice", "Voice"}, {"chat", "Chat"}} {
		ch := &taskChannel{sid: s.newSID("TC"), name: c.name, unique: c.unique, created: now, updated: now}
		ws.channels.put(ch.sid, ch)
	}
	s.workspaces.put(ws.sid, ws)
	return ws
}

func (s *Sim) listWorkspaces(rq *request) (reply, error) {
	all := s.workspaces.list()
	if n := rq.str("FriendlyName"); n != "" {
		all = filter(all, func(ws *workspace) bool { return ws.name == n })
	}
	return listPage(s, rq, "workspaces", all, func(ws *workspace) any { return s.workspaceJSON(ws) })
}

func (s *Sim) createWorkspaceREST(rq *request) (reply, error) {
	name := rq.str("FriendlyName")
	if name == "" {
		return reply{}, errBad("FriendlyName is required")
	}
	ws := s.newWorkspace(name)
	if err := s.applyWorkspaceForm(rq, ws); err != nil {
		s.workspaces.del(ws.sid)
		return reply{}, err
	}
	return created(s.workspaceJSON(ws))
}

func (s *Sim) fetchWorkspace(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.workspaceJSON(ws))
}

func (s *Sim) updateWorkspace(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	if err := s.applyWorkspaceForm(rq, ws); err != nil {
		return reply{}, err
	}
	return okJSON(s.workspaceJSON(ws))
}

func (s *Sim) applyWorkspaceForm(rq *request, ws *workspace) error {
	multi, err := rq.optBool("MultiTaskEnabled")
	if err != nil {
		return err
	}
	var def, timeout *activity
	for key, dst := range map[string]**activity{"DefaultActivitySid": &def, "TimeoutActivitySid": &timeout} {
		if sid := rq.str(key); sid != "" {
			a, ok := ws.activities.get(sid)
			if !ok {
				return errBad("%s %s is not an activity of this workspace", key, sid)
			}
			*dst = a
		}
	}
	if u := rq.optStr("EventCallbackUrl"); u != nil && *u != "" {
		if err := checkURL(*u); err != nil {
			return errBad("EventCallbackUrl: %v", err)
		}
	}
	if order := rq.str("PrioritizeQueueOrder"); order != "" && order != "FIFO" && order != "LIFO" {
		return errBad("PrioritizeQueueOrder must be FIFO or LIFO")
	}
	if n := rq.str("FriendlyName"); n != "" {
		ws.name = n
	}
	if u := rq.optStr("EventCallbackUrl"); u != nil {
		ws.eventCallbackURL = *u
	}
	if f := rq.optStr("EventsFilter"); f != nil {
		ws.eventsFilterRaw = *f
		ws.eventsFilter = nil
		if strings.TrimSpace(*f) != "" {
			ws.eventsFilter = map[string]bool{}
			for _, e := range strings.Split(*f, ",") {
				ws.eventsFilter[strings.TrimSpace(e)] = true
			}
		}
	}
	if multi != nil {
		ws.multiTask = *multi
	}
	if def != nil {
		ws.defaultActivity = def
	}
	if timeout != nil {
		ws.timeoutActivity = timeout
	}
	if order := rq.str("PrioritizeQueueOrder"); order != "" {
		ws.prioritizeQueueOrder = order
	}
	ws.updated = s.now()
	s.route(ws)
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errBad("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

func (s *Sim) deleteWorkspace(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	for _, t := range ws.tasks.list() {
		t.ttl.cancel()
		t.route.timer.cancel()
		for _, r := range t.reservations {
			r.timer.cancel()
		}
	}
	s.workspaces.del(ws.sid)
	return noContent()
}

// --- activities ---

func (s *Sim) listActivities(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := ws.activities.list()
	if n := rq.str("FriendlyName"); n != "" {
		all = filter(all, func(a *activity) bool { return a.name == n })
	}
	if av, err := rq.optBool("Available"); err != nil {
		return reply{}, err
	} else if av != nil {
		all = filter(all, func(a *activity) bool { return a.available == *av })
	}
	return listPage(s, rq, "activities", all, func(a *activity) any { return s.activityJSON(ws, a) })
}

func (s *Sim) createActivity(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	name := rq.str("FriendlyName")
	if name == "" {
		return reply{}, errBad("FriendlyName is required")
	}
	if _, dup := ws.activityByName(name); dup {
		return reply{}, errBad("an activity named %q already exists", name)
	}
	av, err := rq.optBool("Available")
	if err != nil {
		return reply{}, err
	}
	a := s.addActivity(ws, name, av != nil && *av)
	return created(s.activityJSON(ws, a))
}

func (s *Sim) addActivity(ws *workspace, name string, available bool) *activity {
	now := s.now()
	a := &activity{sid: s.newSID("WA"), name: name, available: available, created: now, updated: now}
	ws.activities.put(a.sid, a)
	s.emitTR(ws, "activity.created", evCtx{resourceType: "activity", resourceSID: a.sid,
		resourceURI: "/v1/Workspaces/" + ws.sid + "/Activities/" + a.sid,
		extra:       map[string]any{"activity_sid": a.sid, "activity_name": a.name, "activity_available": a.available}})
	return a
}

func (s *Sim) activityOf(rq *request, ws *workspace) (*activity, error) {
	a, ok := ws.activities.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return a, nil
}

func (s *Sim) fetchActivity(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	a, err := s.activityOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.activityJSON(ws, a))
}

func (s *Sim) updateActivity(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	a, err := s.activityOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if n := rq.str("FriendlyName"); n != "" && n != a.name {
		if _, dup := ws.activityByName(n); dup {
			return reply{}, errBad("an activity named %q already exists", n)
		}
		a.name = n
		a.updated = s.now()
	}
	return okJSON(s.activityJSON(ws, a))
}

func (s *Sim) deleteActivity(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	a, err := s.activityOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if a == ws.defaultActivity || a == ws.timeoutActivity {
		return reply{}, errBad("activity %s is the workspace's default or timeout activity", a.sid)
	}
	for _, w := range ws.workers.list() {
		if w.activity == a {
			return reply{}, errBad("activity %s has workers in it", a.sid)
		}
	}
	ws.activities.del(a.sid)
	return noContent()
}

// --- task channels ---

func (s *Sim) listTaskChannels(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	return listPage(s, rq, "channels", ws.channels.list(), func(c *taskChannel) any { return s.taskChannelJSON(ws, c) })
}

func (s *Sim) createTaskChannel(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	name, unique := rq.str("FriendlyName"), rq.str("UniqueName")
	if name == "" || unique == "" {
		return reply{}, errBad("FriendlyName and UniqueName are required")
	}
	if _, dup := ws.channelByRef(unique); dup {
		return reply{}, errBad("a task channel with unique name %q already exists", unique)
	}
	opt, err := rq.optBool("ChannelOptimizedRouting")
	if err != nil {
		return reply{}, err
	}
	now := s.now()
	c := &taskChannel{sid: s.newSID("TC"), name: name, unique: unique, optimized: opt != nil && *opt, created: now, updated: now}
	ws.channels.put(c.sid, c)
	for _, w := range ws.workers.list() {
		w.channels.put(c.sid, &workerChannel{sid: s.newSID("WC"), channel: c, capacity: 1, available: true, created: now, updated: now})
	}
	return created(s.taskChannelJSON(ws, c))
}

func (s *Sim) fetchTaskChannel(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	c, ok := ws.channelByRef(rq.path("sid"))
	if !ok {
		return reply{}, errNotFound(rq.r.URL.Path)
	}
	return okJSON(s.taskChannelJSON(ws, c))
}

// --- workers ---

// newWorker adds a worker with one channel per task channel (capacity 1
// unless capacity says otherwise).
func (s *Sim) newWorker(ws *workspace, name string, attrs map[string]any, act *activity, capacity map[string]int) *worker {
	now := s.now()
	ws.workerSeq++
	w := &worker{
		sid: s.newSID("WK"), name: name, attrs: attrs, attrsJSON: mustJSON(attrs), activity: act,
		created: now, updated: now, statusChanged: now, seq: ws.workerSeq,
		channels: newOrdered[*workerChannel](), live: map[string]*reservation{},
	}
	for _, c := range ws.channels.list() {
		cp := 1
		if v, ok := capacity[c.unique]; ok {
			cp = v
		}
		w.channels.put(c.sid, &workerChannel{sid: s.newSID("WC"), channel: c, capacity: cp, available: true, created: now, updated: now})
	}
	ws.workers.put(w.sid, w)
	s.emitTR(ws, "worker.created", evCtx{worker: w})
	return w
}

func (s *Sim) listWorkers(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := ws.workers.list()
	if v := rq.str("ActivitySid"); v != "" {
		all = filter(all, func(w *worker) bool { return w.activity != nil && w.activity.sid == v })
	}
	if v := rq.str("ActivityName"); v != "" {
		all = filter(all, func(w *worker) bool { return w.activity != nil && w.activity.name == v })
	}
	if av, err := rq.optBool("Available"); err != nil {
		return reply{}, err
	} else if av != nil {
		all = filter(all, func(w *worker) bool { return w.activity != nil && w.activity.available == *av })
	}
	if v := rq.str("FriendlyName"); v != "" {
		all = filter(all, func(w *worker) bool { return w.name == v })
	}
	if v := rq.str("TargetWorkersExpression"); v != "" {
		e, err := expr.Parse(v)
		if err != nil {
			return reply{}, errBad("TargetWorkersExpression: %v", err)
		}
		// TaskRouter evaluates the expression over the attributes and the worker's built-in
		// fields (sid, friendly_name, activity_sid, activity_name).
		all = filter(all, func(w *worker) bool { return e.Eval(workerEnv(w)) })
	}
	var queue *taskQueue
	if v := rq.str("TaskQueueSid"); v != "" {
		q, ok := ws.queues.get(v)
		if !ok {
			return reply{}, errBad("TaskQueueSid %s is not a queue of this workspace", v)
		}
		queue = q
	}
	if v := rq.str("TaskQueueName"); v != "" {
		for _, q := range ws.queues.list() {
			if q.name == v {
				queue = q
			}
		}
		if queue == nil {
			return okJSON(map[string]any{"workers": []any{}, "meta": map[string]any{"key": "workers"}})
		}
	}
	if queue != nil {
		all = filter(all, queue.matches)
	}
	return listPage(s, rq, "workers", all, func(w *worker) any { return s.workerJSON(ws, w) })
}

func (s *Sim) createWorkerREST(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	name := rq.str("FriendlyName")
	if name == "" {
		return reply{}, errBad("FriendlyName is required")
	}
	if _, dup := ws.workerByName(name); dup {
		return reply{}, errBad("a worker named %q already exists", name)
	}
	attrs, err := parseAttributes(rq.str("Attributes"))
	if err != nil {
		return reply{}, errBad("Attributes must be a JSON object: %v", err)
	}
	act := ws.defaultActivity
	if v := rq.str("ActivitySid"); v != "" {
		a, ok := ws.activities.get(v)
		if !ok {
			return reply{}, errBad("ActivitySid %s is not an activity of this workspace", v)
		}
		act = a
	}
	w := s.newWorker(ws, name, attrs, act, nil)
	s.route(ws)
	return reply{status: 201, body: s.workerJSON(ws, w), etag: strconv.Itoa(w.version)}, nil
}

func (s *Sim) workerOf(rq *request, ws *workspace) (*worker, error) {
	w, ok := ws.workers.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return w, nil
}

func (s *Sim) fetchWorker(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return withETag(s.workerJSON(ws, w), w.version)
}

func (s *Sim) updateWorker(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if err := rq.ifMatch(w.version, "Worker"); err != nil {
		return reply{}, err
	}
	var act *activity
	if v := rq.str("ActivitySid"); v != "" {
		a, ok := ws.activities.get(v)
		if !ok {
			return reply{}, errBad("ActivitySid %s is not an activity of this workspace", v)
		}
		act = a
	}
	var attrs map[string]any
	if rq.has("Attributes") {
		if attrs, err = parseAttributes(rq.str("Attributes")); err != nil {
			return reply{}, errBad("Attributes must be a JSON object: %v", err)
		}
	}
	reject, err := rq.optBool("RejectPendingReservations")
	if err != nil {
		return reply{}, err
	}
	if reject != nil && *reject && (act == nil || act.available) {
		return reply{}, errBad("RejectPendingReservations is only valid with an unavailable ActivitySid")
	}
	name := rq.str("FriendlyName")
	if name != "" && name != w.name {
		if _, dup := ws.workerByName(name); dup {
			return reply{}, errBad("a worker named %q already exists", name)
		}
	}
	s.applyWorkerUpdate(ws, w, act, attrs, name, reject != nil && *reject)
	return withETag(s.workerJSON(ws, w), w.version)
}

// applyWorkerUpdate changes a worker and emits the matching events.
func (s *Sim) applyWorkerUpdate(ws *workspace, w *worker, act *activity, attrs map[string]any, name string, reject bool) {
	now := s.now()
	if name != "" && name != w.name {
		w.name = name
		w.version++
		w.updated = now
	}
	if attrs != nil {
		w.attrs = attrs
		w.attrsJSON = mustJSON(attrs)
		w.version++
		w.updated = now
		s.emitTR(ws, "worker.attributes.update", evCtx{worker: w})
	}
	if act != nil {
		s.setWorkerActivity(ws, w, act, reject)
	}
	s.route(ws)
}

func (s *Sim) deleteWorker(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	if len(w.live) > 0 {
		return reply{}, errBad("worker %s still holds reservations", w.sid)
	}
	s.emitTR(ws, "worker.deleted", evCtx{worker: w})
	ws.workers.del(w.sid)
	return noContent()
}

func (s *Sim) workerChannelOf(rq *request, w *worker) (*workerChannel, error) {
	ref := rq.path("ch")
	if wc, ok := w.channels.get(ref); ok {
		return wc, nil
	}
	for _, wc := range w.channels.list() {
		if wc.sid == ref || wc.channel.unique == ref {
			return wc, nil
		}
	}
	return nil, errNotFound(rq.r.URL.Path)
}

func (s *Sim) listWorkerChannels(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return listPage(s, rq, "channels", w.channels.list(), func(wc *workerChannel) any { return s.workerChannelJSON(ws, w, wc) })
}

func (s *Sim) fetchWorkerChannel(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	wc, err := s.workerChannelOf(rq, w)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.workerChannelJSON(ws, w, wc))
}

func (s *Sim) updateWorkerChannel(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	wc, err := s.workerChannelOf(rq, w)
	if err != nil {
		return reply{}, err
	}
	capacity, err := rq.optInt("Capacity", 0, 50)
	if err != nil {
		return reply{}, err
	}
	avail, err := rq.optBool("Available")
	if err != nil {
		return reply{}, err
	}
	s.setWorkerChannel(ws, w, wc, capacity, avail)
	return okJSON(s.workerChannelJSON(ws, w, wc))
}

func (s *Sim) setWorkerChannel(ws *workspace, w *worker, wc *workerChannel, capacity *int, avail *bool) {
	now := s.now()
	if capacity != nil && *capacity != wc.capacity {
		prev := wc.capacity
		wc.capacity = *capacity
		wc.updated = now
		w.version++
		s.emitTR(ws, "worker.capacity.update", evCtx{worker: w, extra: s.channelFields(w, wc, map[string]any{"worker_channel_previous_capacity": prev})})
	}
	if avail != nil && *avail != wc.available {
		wc.available = *avail
		wc.updated = now
		w.version++
		s.emitTR(ws, "worker.channel.availability.update", evCtx{worker: w, extra: s.channelFields(w, wc, nil)})
	}
	s.route(ws)
}

func (s *Sim) channelFields(w *worker, wc *workerChannel, extra map[string]any) map[string]any {
	used := 0
	for _, r := range w.live {
		if r.task.channel == wc.channel {
			used++
		}
	}
	m := map[string]any{
		"task_channel_sid": wc.channel.sid, "task_channel_unique_name": wc.channel.unique,
		"worker_channel_capacity": wc.capacity, "worker_channel_available": wc.available,
		"worker_channel_available_capacity": max(0, wc.capacity-used), "worker_channel_task_count": used,
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// --- reservations ---

func reservationFilter(rq *request, all []*reservation) []*reservation {
	if v := rq.str("ReservationStatus"); v != "" {
		all = filter(all, func(r *reservation) bool { return r.status == v })
	}
	if v := rq.str("WorkerSid"); v != "" {
		all = filter(all, func(r *reservation) bool { return r.worker.sid == v })
	}
	return all
}

func (s *Sim) listWorkerReservations(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	all := filter(ws.reservations.list(), func(r *reservation) bool { return r.worker == w })
	return listPage(s, rq, "reservations", reservationFilter(rq, all), func(r *reservation) any { return s.reservationJSON(ws, r) })
}

func (s *Sim) listTaskReservations(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	t, err := s.taskOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return listPage(s, rq, "reservations", reservationFilter(rq, t.reservations), func(r *reservation) any { return s.reservationJSON(ws, r) })
}

func (s *Sim) reservationOf(rq *request, ws *workspace, belongs func(*reservation) bool) (*reservation, error) {
	r, ok := ws.reservations.get(rq.path("res"))
	if !ok || !belongs(r) {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return r, nil
}

func (s *Sim) fetchWorkerReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.worker.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return withETag(s.reservationJSON(ws, r), r.version)
}

func (s *Sim) fetchTaskReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.task.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return withETag(s.reservationJSON(ws, r), r.version)
}

func (s *Sim) updateWorkerReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.worker.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return s.updateReservation(rq, ws, r)
}

func (s *Sim) updateTaskReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.task.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return s.updateReservation(rq, ws, r)
}

// updateReservation applies ReservationStatus or an Instruction, then the
// optional WorkerActivitySid, as TaskRouter does.
func (s *Sim) updateReservation(rq *request, ws *workspace, r *reservation) (reply, error) {
	if err := rq.ifMatch(r.version, "Reservation"); err != nil {
		return reply{}, err
	}
	var act *activity
	if v := rq.str("WorkerActivitySid"); v != "" {
		a, ok := ws.activities.get(v)
		if !ok {
			return reply{}, errBad("WorkerActivitySid %s is not an activity of this workspace", v)
		}
		act = a
	}
	status, instruction := rq.str("ReservationStatus"), rq.str("Instruction")
	var opErr error
	switch {
	case instruction == "conference":
		opts, err := conferenceInstruction(rq)
		if err != nil {
			return reply{}, err
		}
		opErr = s.flexAccept(ws, r, opts)
	case instruction != "":
		return reply{}, errBad("Instruction %q is not modelled by the simulator (only conference)", instruction)
	case status == resAccepted:
		opErr = s.acceptReservation(ws, r)
	case status == resRejected:
		if r.status != resPending {
			opErr = errBad("reservation %s is %s, not pending", r.sid, r.status)
		} else {
			s.endReservation(ws, r, resRejected)
		}
	case status == resWrapping:
		opErr = s.wrapReservation(ws, r)
	case status == resCompleted:
		opErr = s.completeReservation(ws, r)
	case status != "":
		return reply{}, errBad("ReservationStatus %q cannot be set through the API", status)
	}
	if opErr != nil {
		return reply{}, asBad(opErr)
	}
	if act != nil {
		s.setWorkerActivity(ws, r.worker, act, false)
	}
	s.route(ws)
	return withETag(s.reservationJSON(ws, r), r.version)
}

func asBad(err error) error {
	if _, isAPI := err.(*apiError); isAPI {
		return err
	}
	return errBad("%v", err)
}

// --- task queues ---

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

// --- workflows ---

func (s *Sim) listWorkflows(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := ws.workflows.list()
	if v := rq.str("FriendlyName"); v != "" {
		all = filter(all, func(wf *workflow) bool { return wf.name == v })
	}
	return listPage(s, rq, "workflows", all, func(wf *workflow) any { return s.workflowJSON(ws, wf) })
}

func (s *Sim) parseConfig(ws *workspace, raw string) (*routingConfig, error) {
	cfg, err := parseRoutingConfig(raw, func(sid string) bool { _, ok := ws.queues.get(sid); return ok })
	if err != nil {
		return nil, errBad("Configuration: %v", err)
	}
	return cfg, nil
}

func (s *Sim) addWorkflow(ws *workspace, name, configuration string, reservationTimeout int, callback, fallback string) (*workflow, error) {
	cfg, err := s.parseConfig(ws, configuration)
	if err != nil {
		return nil, err
	}
	if reservationTimeout == 0 {
		reservationTimeout = defaultReservationTimeout
	}
	now := s.now()
	wf := &workflow{sid: s.newSID("WW"), name: name, configuration: configuration, config: cfg,
		reservationTimeout: reservationTimeout, assignmentCallbackURL: callback, fallbackURL: fallback, created: now, updated: now}
	ws.workflows.put(wf.sid, wf)
	return wf, nil
}

func (s *Sim) createWorkflowREST(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	name, conf := rq.str("FriendlyName"), rq.str("Configuration")
	if name == "" || conf == "" {
		return reply{}, errBad("FriendlyName and Configuration are required")
	}
	timeout, err := rq.optInt("TaskReservationTimeout", 1, 86400)
	if err != nil {
		return reply{}, err
	}
	rt := 0
	if timeout != nil {
		rt = *timeout
	}
	wf, err := s.addWorkflow(ws, name, conf, rt, rq.str("AssignmentCallbackUrl"), rq.str("FallbackAssignmentCallbackUrl"))
	if err != nil {
		return reply{}, err
	}
	return created(s.workflowJSON(ws, wf))
}

func (s *Sim) workflowOf(rq *request, ws *workspace) (*workflow, error) {
	wf, ok := ws.workflows.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return wf, nil
}

func (s *Sim) fetchWorkflow(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	wf, err := s.workflowOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.workflowJSON(ws, wf))
}

func (s *Sim) updateWorkflow(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	wf, err := s.workflowOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	timeout, err := rq.optInt("TaskReservationTimeout", 1, 86400)
	if err != nil {
		return reply{}, err
	}
	reEval, err := rq.optBool("ReEvaluateTasks")
	if err != nil {
		return reply{}, err
	}
	var cfg *routingConfig
	if rq.has("Configuration") {
		if cfg, err = s.parseConfig(ws, rq.str("Configuration")); err != nil {
			return reply{}, err
		}
	}
	if cfg != nil {
		wf.configuration, wf.config = rq.str("Configuration"), cfg
	}
	if n := rq.str("FriendlyName"); n != "" {
		wf.name = n
	}
	if timeout != nil {
		wf.reservationTimeout = *timeout
	}
	if v := rq.optStr("AssignmentCallbackUrl"); v != nil {
		wf.assignmentCallbackURL = *v
	}
	if v := rq.optStr("FallbackAssignmentCallbackUrl"); v != nil {
		wf.fallbackURL = *v
	}
	wf.updated = s.now()
	if reEval != nil && *reEval {
		for _, t := range ws.tasks.list() {
			if t.workflow == wf {
				s.reroute(ws, t)
			}
		}
	}
	s.route(ws)
	return okJSON(s.workflowJSON(ws, wf))
}

func (s *Sim) deleteWorkflow(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	wf, err := s.workflowOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	for _, t := range ws.tasks.list() {
		if t.workflow == wf && (t.status == taskPending || t.status == taskReserved) {
			return reply{}, errBad("workflow %s still routes task %s", wf.sid, t.sid)
		}
	}
	ws.workflows.del(wf.sid)
	return noContent()
}

// --- tasks ---

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

// --- events ---

func (s *Sim) listEvents(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	minutes := 15
	if m, err := rq.optInt("Minutes", 1, 43200); err != nil {
		return reply{}, err
	} else if m != nil {
		minutes = *m
	}
	since := s.now().Add(-time.Duration(minutes) * time.Minute)
	until := time.Time{}
	for key, dst := range map[string]*time.Time{"StartDate": &since, "EndDate": &until} {
		if v := rq.str(key); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return reply{}, errBad("%s must be an ISO 8601 date-time: %v", key, err)
			}
			*dst = t
		}
	}
	match := map[string]string{
		"task_sid": rq.str("TaskSid"), "worker_sid": rq.str("WorkerSid"), "reservation_sid": rq.str("ReservationSid"),
		"task_queue_sid": rq.str("TaskQueueSid"), "workflow_sid": rq.str("WorkflowSid"), "task_channel_unique_name": rq.str("TaskChannel"),
	}
	evType, sid := rq.str("EventType"), rq.str("Sid")
	var all []*trEvent
	for i := len(ws.events) - 1; i >= 0; i-- {
		ev := ws.events[i]
		if ev.at.Before(since) || (!until.IsZero() && ev.at.After(until)) {
			continue
		}
		if evType != "" && ev.eventType != evType || sid != "" && ev.sid != sid {
			continue
		}
		keep := true
		for k, want := range match {
			if want != "" && ev.payload[k] != want {
				keep = false
			}
		}
		if keep {
			all = append(all, ev)
		}
	}
	return listPage(s, rq, "events", all, func(ev *trEvent) any { return s.eventJSON(ws, ev) })
}

func (s *Sim) fetchEvent(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	for _, ev := range ws.events {
		if ev.sid == rq.path("sid") {
			return okJSON(s.eventJSON(ws, ev))
		}
	}
	return reply{}, errNotFound(rq.r.URL.Path)
}

func filter[T any](all []T, keep func(T) bool) []T {
	out := make([]T, 0, len(all))
	for _, x := range all {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
