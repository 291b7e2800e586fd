package twiliosim

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxEventLog bounds the per-workspace event history served at
// /v1/Workspaces/{WS}/Events.
const maxEventLog = 10000

// trEvent is one TaskRouter event as recorded and delivered.
type trEvent struct {
	sid          string
	eventType    string
	description  string
	at           time.Time
	resourceType string
	resourceSID  string
	resourceURI  string
	payload      map[string]any
}

// evCtx says what an event is about.
type evCtx struct {
	task   *task
	res    *reservation
	worker *worker
	extra  map[string]any
	// resourceType/resourceSID override the inferred resource.
	resourceType, resourceSID, resourceURI string
}

// emitTR records a TaskRouter event and hands it to every subscribed sink
// and to the workspace's legacy EventCallbackUrl. s.mu must be held.
func (s *Sim) emitTR(ws *workspace, eventType string, c evCtx) {
	now := s.now()
	ev := &trEvent{sid: s.newSID("EV"), eventType: eventType, at: now}
	p := map[string]any{
		"sid":            ev.sid,
		"eventtype":      eventType,
		"account_sid":    s.accountSID,
		"workspace_sid":  ws.sid,
		"workspace_name": ws.name,
		"timestamp":      now.Format("2006-01-02T15:04:05.000Z"),
	}
	w := c.worker
	if w == nil && c.res != nil {
		w = c.res.worker
	}
	base := "/v1/Workspaces/" + ws.sid
	switch {
	case c.res != nil:
		ev.resourceType, ev.resourceSID = "reservation", c.res.sid
		ev.resourceURI = base + "/Tasks/" + c.res.task.sid + "/Reservations/" + c.res.sid
	case c.task != nil:
		ev.resourceType, ev.resourceSID = "task", c.task.sid
		ev.resourceURI = base + "/Tasks/" + c.task.sid
	case w != nil:
		ev.resourceType, ev.resourceSID = "worker", w.sid
		ev.resourceURI = base + "/Workers/" + w.sid
	default:
		ev.resourceType, ev.resourceSID, ev.resourceURI = "workspace", ws.sid, base
	}
	if c.resourceType != "" {
		ev.resourceType, ev.resourceSID, ev.resourceURI = c.resourceType, c.resourceSID, c.resourceURI
	}
	if t := c.task; t != nil {
		s.taskFields(p, t)
	}
	if r := c.res; r != nil {
		p["reservation_sid"] = r.sid
		p["reservation_version"] = r.version
	}
	if w != nil {
		s.workerFields(p, w)
	}
	for k, v := range c.extra {
		p[k] = v
	}
	ev.description = describeEvent(eventType, ev.resourceType, ev.resourceSID, w)
	p["event_description"] = ev.description
	p["resource_type"] = ev.resourceType
	p["resource_sid"] = ev.resourceSID
	ev.payload = p
	ws.events = append(ws.events, ev)
	if len(ws.events) > maxEventLog {
		ws.events = ws.events[len(ws.events)-maxEventLog:]
	}
	s.fanOut(ws, ev)
}

func describeEvent(eventType, resType, resSID string, w *worker) string {
	verb := eventType[strings.LastIndex(eventType, ".")+1:]
	d := fmt.Sprintf("%s %s %s", strings.ToUpper(resType[:1])+resType[1:], resSID, verb)
	if resType == "reservation" && w != nil {
		d += " for Worker " + w.sid
	}
	return d
}

func (s *Sim) taskFields(p map[string]any, t *task) {
	p["task_sid"] = t.sid
	p["task_attributes"] = t.attrsJSON
	p["task_age"] = int(s.now().Sub(t.created) / time.Second)
	p["task_date_created"] = trTime(t.created)
	p["task_priority"] = t.priority
	p["task_assignment_status"] = t.status
	p["task_version"] = t.version
	p["task_timeout"] = t.timeout
	p["task_channel_sid"] = t.channel.sid
	p["task_channel_unique_name"] = t.channel.unique
	if t.status == taskCanceled {
		p["task_canceled_reason"] = t.reason
		p["reason"] = t.reason
	}
	if t.status == taskCompleted {
		p["task_completed_reason"] = t.reason
		p["reason"] = t.reason
	}
	if t.workflow != nil {
		p["workflow_sid"] = t.workflow.sid
		p["workflow_name"] = t.workflow.name
	}
	if q := t.route.queue; q != nil {
		p["task_queue_sid"] = q.sid
		p["task_queue_name"] = q.name
		p["task_queue_target_expression"] = q.targetWorkers
		p["task_queue_entered_date"] = trTime(t.queueEntered)
		p["task_age_in_queue"] = int(s.now().Sub(t.queueEntered) / time.Second)
	}
}

func (s *Sim) workerFields(p map[string]any, w *worker) {
	p["worker_sid"] = w.sid
	p["worker_name"] = w.name
	p["worker_attributes"] = w.attrsJSON
	p["worker_version"] = w.version
	if w.activity != nil {
		p["worker_activity_sid"] = w.activity.sid
		p["worker_activity_name"] = w.activity.name
		p["worker_available"] = w.activity.available
	}
}

// Event Streams type prefix for TaskRouter events.
const taskRouterTypePrefix = "com.twilio.taskrouter."

// cloudEvent renders a TaskRouter event as the CloudEvent Event Streams
// sends, at the subscription's schema version.
func (s *Sim) cloudEvent(ev *trEvent, schemaVersion int) map[string]any {
	ts := ev.at.Format("2006-01-02T15:04:05.000Z")
	return map[string]any{
		"specversion":     "1.0",
		"type":            taskRouterTypePrefix + ev.eventType,
		"source":          ev.resourceURI,
		"id":              "EZ" + ev.sid[2:],
		"dataschema":      fmt.Sprintf("https://events-schemas.twilio.com/TaskRouter.WDSEvent/%d", schemaVersion),
		"datacontenttype": "application/json",
		"time":            ts,
		"data": map[string]any{
			"sid":                   ev.sid,
			"name":                  ev.eventType,
			"account_sid":           s.accountSID,
			"account_friendly_name": "Simulated Account",
			"timestamp":             ts,
			"level":                 "INFO",
			"group":                 "TaskRouter",
			"product_name":          "TaskRouter",
			"publisher":             "TaskRouter",
			"publisher_metadata":    "{}",
			"payload_type":          "application/json",
			"payload":               ev.payload,
		},
	}
}

// legacyForm renders a TaskRouter event as the form Twilio POSTs to a
// workspace's EventCallbackUrl: the payload's snake_case fields in
// CamelCase, Timestamp in epoch seconds.
func (s *Sim) legacyForm(ev *trEvent) url.Values {
	f := url.Values{}
	for k, v := range ev.payload {
		switch k {
		case "eventtype", "timestamp", "sid":
			continue
		}
		f.Set(camel(k), fmt.Sprint(v))
	}
	f.Set("EventType", ev.eventType)
	f.Set("Sid", ev.sid)
	f.Set("Timestamp", strconv.FormatInt(ev.at.Unix(), 10))
	f.Set("TimestampMs", strconv.FormatInt(ev.at.UnixMilli(), 10))
	f.Set("ResourceType", strings.ToUpper(ev.resourceType[:1])+ev.resourceType[1:])
	return f
}

func camel(snake string) string {
	parts := strings.Split(snake, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// fanOut queues the event for every sink subscribed to its type and for the
// legacy callback.
func (s *Sim) fanOut(ws *workspace, ev *trEvent) {
	typ := taskRouterTypePrefix + ev.eventType
	for _, sk := range s.sinks.list() {
		version := 0
		for _, sub := range s.subs.list() {
			if sub.sinkSID != sk.sid {
				continue
			}
			if v, ok := sub.types[typ]; ok && v > version {
				version = v
			}
		}
		if version == 0 {
			continue
		}
		s.deliver.enqueue(sinkKey(sk.sid), destination{url: sk.destination, kind: kindJSON, batch: sk.batch, retry: true},
			item{event: s.cloudEvent(ev, version), eventID: "EZ" + ev.sid[2:]})
	}
	if ws.eventCallbackURL != "" && (ws.eventsFilter == nil || ws.eventsFilter[ev.eventType]) {
		// Legacy callbacks are tried once: "If a webhook fails for any
		// reason … that event is lost".
		s.deliver.enqueue("legacy:"+ws.eventCallbackURL, destination{url: ws.eventCallbackURL, kind: kindForm},
			item{form: s.legacyForm(ev)})
	}
}

// eventJSON renders a recorded event as the TaskRouter Events resource.
func (s *Sim) eventJSON(ws *workspace, ev *trEvent) map[string]any {
	return map[string]any{
		"sid":               ev.sid,
		"account_sid":       s.accountSID,
		"workspace_sid":     ws.sid,
		"actor_sid":         ws.sid,
		"actor_type":        "workspace",
		"actor_url":         trURL("/v1/Workspaces/" + ws.sid),
		"description":       ev.description,
		"event_data":        ev.payload,
		"event_date":        trTime(ev.at),
		"event_date_ms":     ev.at.UnixMilli(),
		"event_type":        ev.eventType,
		"resource_sid":      ev.resourceSID,
		"resource_type":     strings.ToUpper(ev.resourceType[:1]) + ev.resourceType[1:],
		"resource_url":      trURL(ev.resourceURI),
		"source":            "twilio",
		"source_ip_address": "127.0.0.1",
		"url":               trURL("/v1/Workspaces/" + ws.sid + "/Events/" + ev.sid),
	}
}

// knownEventTypes is the Event Streams catalog the simulator accepts in
// subscriptions; subscribing to anything else is a 400, as on Twilio.
var knownEventTypes = func() map[string]bool {
	m := map[string]bool{}
	add := func(prefix string, names ...string) {
		for _, n := range names {
			m[prefix+n] = true
		}
	}
	add(taskRouterTypePrefix+"activity.", "created", "updated", "deleted")
	add(taskRouterTypePrefix+"task.", "created", "updated", "canceled", "completed", "deleted", "system-deleted", "wrapup",
		"transfer-initiated", "transfer-completed", "transfer-failed", "transfer-canceled", "transfer-attempt-failed")
	add(taskRouterTypePrefix+"reservation.", "created", "accepted", "rejected", "timeout", "canceled", "rescinded", "completed", "failed", "wrapup")
	add(taskRouterTypePrefix+"worker.", "created", "deleted", "activity.update", "attributes.update", "capacity.update", "channel.availability.update")
	add(taskRouterTypePrefix+"task-queue.", "created", "deleted", "entered", "moved", "timeout", "expression-updated")
	add(taskRouterTypePrefix+"workflow.", "entered", "rejected", "skipped", "target-matched", "timeout")
	add("com.twilio.apiusage.taskrouter.", "ratelimits")
	add("com.twilio.voice.status-callback.conference.", "updated", "participant.updated")
	add("com.twilio.voice.api-request.conference-participant.", "created", "modified", "deleted")
	return m
}()

// knownEventTypeList is knownEventTypes sorted, for error messages.
func knownEventTypeList() []string {
	out := make([]string, 0, len(knownEventTypes))
	for k := range knownEventTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
