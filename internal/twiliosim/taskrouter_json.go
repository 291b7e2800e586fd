package twiliosim

import (
	"time"
)

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
