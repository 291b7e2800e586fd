package twiliosim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The control API: build a contact centre, inspect state, and (over HTTP
// under /sim/) everything the Go methods do.

// ActivitySpec is an activity to add beside Flex's defaults (Offline,
// Available, Unavailable, Break).
type ActivitySpec struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
}

// WorkerSpec is an agent: attributes (skills, contact_uri…), the activity
// they start in (a name; empty means Available) and per-channel capacity by
// channel unique name (default 1 each).
type WorkerSpec struct {
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes,omitempty"`
	Activity   string         `json:"activity,omitempty"`
	Capacity   map[string]int `json:"capacity,omitempty"`
}

// QueueSpec is a task queue; TargetWorkers empty means "1==1".
type QueueSpec struct {
	Name               string `json:"name"`
	TargetWorkers      string `json:"target_workers,omitempty"`
	MaxReservedWorkers int    `json:"max_reserved_workers,omitempty"`
	TaskOrder          string `json:"task_order,omitempty"`
}

// WorkflowSpec is a workflow. Configuration is the workflow JSON (a string
// or an object); a "queue" value naming a queue of this spec by friendly
// name is replaced by that queue's SID, so specs can be written by hand.
type WorkflowSpec struct {
	Name               string `json:"name"`
	Configuration      any    `json:"configuration"`
	ReservationTimeout int    `json:"reservation_timeout,omitempty"`
}

// ContactCentreSpec describes a whole contact centre: one workspace with
// Flex's defaults plus what is listed.
type ContactCentreSpec struct {
	Name             string         `json:"name"`
	MultiTask        *bool          `json:"multi_task,omitempty"`
	EventCallbackURL string         `json:"event_callback_url,omitempty"`
	Activities       []ActivitySpec `json:"activities,omitempty"`
	Workers          []WorkerSpec   `json:"workers,omitempty"`
	Queues           []QueueSpec    `json:"queues,omitempty"`
	Workflows        []WorkflowSpec `json:"workflows,omitempty"`
}

// ContactCentre is what BuildContactCentre made, SIDs by friendly name
// (channels by unique name).
type ContactCentre struct {
	WorkspaceSID string            `json:"workspace_sid"`
	Activities   map[string]string `json:"activities"`
	Channels     map[string]string `json:"channels"`
	Workers      map[string]string `json:"workers"`
	Queues       map[string]string `json:"queues"`
	Workflows    map[string]string `json:"workflows"`
}

// BuildContactCentre creates a workspace as Flex provisions it and adds the
// spec's activities, workers, queues and workflows. Nothing is created
// when the spec is invalid.
func (s *Sim) BuildContactCentre(spec ContactCentreSpec) (*ContactCentre, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("twiliosim: contact centre: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := spec.Name
	if name == "" {
		name = "Flex Task Assignment"
	}
	ws := s.newWorkspace(name)
	cc, err := s.fillContactCentre(ws, spec)
	if err != nil {
		s.workspaces.del(ws.sid)
		return nil, fmt.Errorf("twiliosim: contact centre: %w", err)
	}
	s.route(ws)
	return cc, nil
}

func (spec ContactCentreSpec) validate() error {
	seen := map[string]bool{}
	for _, w := range spec.Workers {
		if w.Name == "" {
			return errors.New("every worker needs a name")
		}
		if seen[w.Name] {
			return fmt.Errorf("worker %q is listed twice", w.Name)
		}
		seen[w.Name] = true
		for ch, c := range w.Capacity {
			if c < 0 || c > 50 {
				return fmt.Errorf("worker %q: capacity %d on %q must be 0–50", w.Name, c, ch)
			}
		}
	}
	for _, q := range spec.Queues {
		if q.Name == "" {
			return errors.New("every queue needs a name")
		}
	}
	for _, wf := range spec.Workflows {
		if wf.Name == "" || wf.Configuration == nil {
			return errors.New("every workflow needs a name and a configuration")
		}
	}
	return nil
}

func (s *Sim) fillContactCentre(ws *workspace, spec ContactCentreSpec) (*ContactCentre, error) {
	cc := &ContactCentre{WorkspaceSID: ws.sid, Activities: map[string]string{}, Channels: map[string]string{},
		Workers: map[string]string{}, Queues: map[string]string{}, Workflows: map[string]string{}}
	if spec.MultiTask != nil {
		ws.multiTask = *spec.MultiTask
	}
	if spec.EventCallbackURL != "" {
		if err := checkURL(spec.EventCallbackURL); err != nil {
			return nil, fmt.Errorf("event callback URL: %w", err)
		}
		ws.eventCallbackURL = spec.EventCallbackURL
	}
	for _, a := range spec.Activities {
		if _, dup := ws.activityByName(a.Name); dup || a.Name == "" {
			return nil, fmt.Errorf("activity %q is empty or already exists", a.Name)
		}
		s.addActivity(ws, a.Name, a.Available)
	}
	for _, a := range ws.activities.list() {
		cc.Activities[a.name] = a.sid
	}
	for _, c := range ws.channels.list() {
		cc.Channels[c.unique] = c.sid
	}
	for _, q := range spec.Queues {
		qs := queueSpec{name: q.Name, target: q.TargetWorkers, maxReserved: q.MaxReservedWorkers, order: q.TaskOrder}
		if qs.target == "" {
			qs.target = "1==1"
		}
		tq, err := s.addQueue(ws, qs)
		if err != nil {
			return nil, fmt.Errorf("queue %q: %w", q.Name, err)
		}
		cc.Queues[q.Name] = tq.sid
	}
	for _, w := range spec.Workers {
		actName := w.Activity
		if actName == "" {
			actName = "Available"
		}
		act, ok := ws.activityByName(actName)
		if !ok {
			return nil, fmt.Errorf("worker %q: no activity named %q", w.Name, actName)
		}
		for ch := range w.Capacity {
			if _, ok := ws.channelByRef(ch); !ok {
				return nil, fmt.Errorf("worker %q: no task channel %q", w.Name, ch)
			}
		}
		attrs, err := parseAttributes(mustJSON(w.Attributes))
		if err != nil && w.Attributes != nil {
			return nil, fmt.Errorf("worker %q: attributes: %w", w.Name, err)
		}
		wk := s.newWorker(ws, w.Name, attrs, act, w.Capacity)
		cc.Workers[w.Name] = wk.sid
	}
	for _, wf := range spec.Workflows {
		conf, err := resolveQueueNames(wf.Configuration, cc.Queues)
		if err != nil {
			return nil, fmt.Errorf("workflow %q: %w", wf.Name, err)
		}
		w, err := s.addWorkflow(ws, wf.Name, conf, wf.ReservationTimeout, "", "")
		if err != nil {
			return nil, fmt.Errorf("workflow %q: %w", wf.Name, err)
		}
		cc.Workflows[wf.Name] = w.sid
	}
	return cc, nil
}

// resolveQueueNames turns a configuration (string or object) into JSON
// with "queue" values that name a queue replaced by its SID.
func resolveQueueNames(conf any, queues map[string]string) (string, error) {
	var doc any
	switch c := conf.(type) {
	case string:
		if err := json.Unmarshal([]byte(c), &doc); err != nil {
			return "", fmt.Errorf("configuration is not JSON: %w", err)
		}
	case json.RawMessage:
		if err := json.Unmarshal(c, &doc); err != nil {
			return "", fmt.Errorf("configuration is not JSON: %w", err)
		}
	default:
		if err := json.Unmarshal([]byte(mustJSON(c)), &doc); err != nil {
			return "", fmt.Errorf("configuration is not JSON: %w", err)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if name, ok := val.(string); ok && k == "queue" {
					if sid, ok := queues[name]; ok {
						x[k] = sid
					}
					continue
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return mustJSON(doc), nil
}

// --- state snapshot ---

// State is a snapshot of the simulator for tests and debugging.
type State struct {
	Now         time.Time         `json:"now"`
	Workspaces  []WorkspaceState  `json:"workspaces"`
	Calls       []CallState       `json:"calls"`
	Conferences []ConferenceState `json:"conferences"`
	Sinks       []SinkState       `json:"sinks"`
	Deliveries  DeliveryStats     `json:"deliveries"`
}

// WorkspaceState is one workspace in a State.
type WorkspaceState struct {
	SID          string             `json:"sid"`
	Name         string             `json:"name"`
	Workers      []WorkerState      `json:"workers"`
	Queues       []QueueState       `json:"queues"`
	Workflows    []WorkflowState    `json:"workflows"`
	Tasks        []TaskState        `json:"tasks"`
	Reservations []ReservationState `json:"reservations"`
}

// WorkerState is one worker; Channels is keyed by channel unique name.
type WorkerState struct {
	SID        string                  `json:"sid"`
	Name       string                  `json:"name"`
	Activity   string                  `json:"activity"`
	Available  bool                    `json:"available"`
	Version    int                     `json:"version"`
	Attributes map[string]any          `json:"attributes"`
	Channels   map[string]ChannelState `json:"channels"`
}

// ChannelState is a worker's capacity on one channel; Used counts pending,
// accepted and wrapping reservations.
type ChannelState struct {
	Capacity  int  `json:"capacity"`
	Available bool `json:"available"`
	Used      int  `json:"used"`
}

// QueueState is one task queue.
type QueueState struct {
	SID           string `json:"sid"`
	Name          string `json:"name"`
	TargetWorkers string `json:"target_workers"`
}

// WorkflowState is one workflow.
type WorkflowState struct {
	SID           string `json:"sid"`
	Name          string `json:"name"`
	Configuration string `json:"configuration"`
}

// TaskState is one task; Step names its routing step ("filter[0].target[1]",
// "default_filter" or "").
type TaskState struct {
	SID           string         `json:"sid"`
	Status        string         `json:"status"`
	Reason        string         `json:"reason,omitempty"`
	Priority      int            `json:"priority"`
	Channel       string         `json:"channel"`
	Workflow      string         `json:"workflow,omitempty"`
	Queue         string         `json:"queue,omitempty"`
	Step          string         `json:"step,omitempty"`
	Version       int            `json:"version"`
	Attributes    map[string]any `json:"attributes"`
	CallSID       string         `json:"call_sid,omitempty"`
	ConferenceSID string         `json:"conference_sid,omitempty"`
}

// ReservationState is one reservation.
type ReservationState struct {
	SID        string `json:"sid"`
	TaskSID    string `json:"task_sid"`
	WorkerSID  string `json:"worker_sid"`
	WorkerName string `json:"worker_name"`
	Status     string `json:"status"`
	Version    int    `json:"version"`
	// CallSID is the agent's conference leg when Flex made one.
	CallSID string `json:"call_sid,omitempty"`
}

// CallState is one call; QueueTaskSID is set while it waits in <Enqueue>,
// ConferenceSID while it is in a conference.
type CallState struct {
	SID           string `json:"sid"`
	From          string `json:"from"`
	To            string `json:"to"`
	Direction     string `json:"direction"`
	Status        string `json:"status"`
	QueueTaskSID  string `json:"queue_task_sid,omitempty"`
	ConferenceSID string `json:"conference_sid,omitempty"`
	WorkerSID     string `json:"worker_sid,omitempty"`
}

// ConferenceState is one conference with its live participants.
type ConferenceState struct {
	SID         string `json:"sid"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	ReasonEnded string `json:"reason_ended,omitempty"`
	Flex        bool   `json:"flex"`
	TaskSID     string `json:"task_sid,omitempty"`
	CallbackURL string `json:"callback_url,omitempty"`
	Sequence    int    `json:"sequence"`
	// Announcements are the AnnounceUrl values played to the conference, in order.
	Announcements []string           `json:"announcements,omitempty"`
	Participants  []ParticipantState `json:"participants"`
}

// ParticipantState is one live conference leg.
type ParticipantState struct {
	CallSID             string `json:"call_sid"`
	Label               string `json:"label,omitempty"`
	Role                string `json:"role,omitempty"`
	WorkerSID           string `json:"worker_sid,omitempty"`
	Coaching            bool   `json:"coaching"`
	EndConferenceOnExit bool   `json:"end_conference_on_exit"`
	Muted               bool   `json:"muted"`
	Hold                bool   `json:"hold"`
}

// SinkState is one Event Streams sink with its subscribed types.
type SinkState struct {
	SID         string   `json:"sid"`
	Destination string   `json:"destination"`
	Status      string   `json:"status"`
	Batch       bool     `json:"batch"`
	Types       []string `json:"types"`
}

// Snapshot copies the simulator's state.
func (s *Sim) Snapshot() State {
	s.mu.Lock()
	st := State{Now: s.now()}
	for _, ws := range s.workspaces.list() {
		st.Workspaces = append(st.Workspaces, s.workspaceState(ws))
	}
	for _, c := range s.calls.list() {
		cs := CallState{SID: c.sid, From: c.from, To: c.to, Direction: c.direction, Status: c.status, WorkerSID: c.workerSID}
		if c.queueTask != nil {
			cs.QueueTaskSID = c.queueTask.sid
		}
		if c.part != nil {
			cs.ConferenceSID = c.part.conf.sid
		}
		st.Calls = append(st.Calls, cs)
	}
	for _, conf := range s.confs.list() {
		st.Conferences = append(st.Conferences, conferenceState(conf))
	}
	for _, sk := range s.sinks.list() {
		ss := SinkState{SID: sk.sid, Destination: sk.destination, Status: sk.status, Batch: sk.batch}
		for _, sub := range s.subs.list() {
			if sub.sinkSID == sk.sid {
				for t := range sub.types {
					ss.Types = append(ss.Types, t)
				}
			}
		}
		sort.Strings(ss.Types)
		st.Sinks = append(st.Sinks, ss)
	}
	s.mu.Unlock()
	st.Deliveries = s.deliver.stats()
	return st
}

func conferenceState(conf *conference) ConferenceState {
	cs := ConferenceState{SID: conf.sid, Name: conf.name, Status: conf.status, ReasonEnded: conf.reasonEnded,
		Flex: conf.flex, TaskSID: conf.taskSID, CallbackURL: conf.callbackURL, Sequence: conf.seq,
		Announcements: append([]string(nil), conf.announcements...), Participants: []ParticipantState{}}
	for _, p := range conf.parts {
		cs.Participants = append(cs.Participants, ParticipantState{CallSID: p.call.sid, Label: p.label, Role: p.role,
			WorkerSID: p.workerSID, Coaching: p.coaching, EndConferenceOnExit: p.endOnExit, Muted: p.muted, Hold: p.hold})
	}
	return cs
}

func (s *Sim) workspaceState(ws *workspace) WorkspaceState {
	out := WorkspaceState{SID: ws.sid, Name: ws.name}
	for _, w := range ws.workers.list() {
		wst := WorkerState{SID: w.sid, Name: w.name, Version: w.version, Attributes: copyMap(w.attrs), Channels: map[string]ChannelState{}}
		if w.activity != nil {
			wst.Activity, wst.Available = w.activity.name, w.activity.available
		}
		for _, wc := range w.channels.list() {
			used := 0
			for _, r := range w.live {
				if r.task.channel == wc.channel {
					used++
				}
			}
			wst.Channels[wc.channel.unique] = ChannelState{Capacity: wc.capacity, Available: wc.available, Used: used}
		}
		out.Workers = append(out.Workers, wst)
	}
	for _, q := range ws.queues.list() {
		out.Queues = append(out.Queues, QueueState{SID: q.sid, Name: q.name, TargetWorkers: q.targetWorkers})
	}
	for _, wf := range ws.workflows.list() {
		out.Workflows = append(out.Workflows, WorkflowState{SID: wf.sid, Name: wf.name, Configuration: wf.configuration})
	}
	for _, t := range ws.tasks.list() {
		ts := TaskState{SID: t.sid, Status: t.status, Reason: t.reason, Priority: t.priority, Channel: t.channel.unique,
			Version: t.version, Attributes: copyMap(t.attrs), CallSID: t.callSID, ConferenceSID: t.conferenceSID}
		if t.workflow != nil {
			ts.Workflow = t.workflow.sid
		}
		if t.route.queue != nil {
			ts.Queue = t.route.queue.sid
		}
		switch {
		case t.route.filter == -1:
			ts.Step = "default_filter"
		case t.route.filter >= 0:
			ts.Step = fmt.Sprintf("filter[%d].target[%d]", t.route.filter, t.route.target)
		}
		out.Tasks = append(out.Tasks, ts)
	}
	for _, r := range ws.reservations.list() {
		out.Reservations = append(out.Reservations, ReservationState{SID: r.sid, TaskSID: r.task.sid, WorkerSID: r.worker.sid,
			WorkerName: r.worker.name, Status: r.status, Version: r.version, CallSID: r.callSID})
	}
	return out
}

// Task finds a task in the snapshot.
func (st State) Task(sid string) (TaskState, bool) {
	for _, ws := range st.Workspaces {
		for _, t := range ws.Tasks {
			if t.SID == sid {
				return t, true
			}
		}
	}
	return TaskState{}, false
}

// Worker finds a worker in the snapshot.
func (st State) Worker(sid string) (WorkerState, bool) {
	for _, ws := range st.Workspaces {
		for _, w := range ws.Workers {
			if w.SID == sid {
				return w, true
			}
		}
	}
	return WorkerState{}, false
}

// Reservations lists the reservations of a task, oldest first.
func (st State) Reservations(taskSID string) []ReservationState {
	var out []ReservationState
	for _, ws := range st.Workspaces {
		for _, r := range ws.Reservations {
			if r.TaskSID == taskSID {
				out = append(out, r)
			}
		}
	}
	return out
}

// Conference finds a conference in the snapshot.
func (st State) Conference(sid string) (ConferenceState, bool) {
	for _, c := range st.Conferences {
		if c.SID == sid {
			return c, true
		}
	}
	return ConferenceState{}, false
}

// Call finds a call in the snapshot.
func (st State) Call(sid string) (CallState, bool) {
	for _, c := range st.Calls {
		if c.SID == sid {
			return c, true
		}
	}
	return CallState{}, false
}

// Dump renders the state as indented JSON, for a test log.
func (s *Sim) Dump() string {
	b, err := json.MarshalIndent(s.Snapshot(), "", "  ")
	if err != nil {
		return "twiliosim: dump: " + err.Error()
	}
	return string(b)
}

// --- HTTP control API ---

// faultsJSON is Faults over HTTP, durations in milliseconds.
type faultsJSON struct {
	LatencyMS           int    `json:"latency_ms"`
	FailNext            int    `json:"fail_next"`
	FailStatus          int    `json:"fail_status"`
	FailPathPrefix      string `json:"fail_path_prefix"`
	RetryAfterMS        int    `json:"retry_after_ms"`
	DuplicateDeliveries bool   `json:"duplicate_deliveries"`
	ReorderDeliveries   bool   `json:"reorder_deliveries"`
	// RetryConferenceCallbacks is the opt-in redelivery of failed conference callbacks.
	RetryConferenceCallbacks bool `json:"retry_conference_callbacks"`
}

func (s *Sim) controlMux() *http.ServeMux {
	m := http.NewServeMux()
	h := func(pattern string, f func(r *http.Request) (any, error)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := f(r)
			if err != nil {
				status := http.StatusBadRequest
				if errors.Is(err, ErrNotFound) {
					status = http.StatusNotFound
				}
				writeJSON(w, status, map[string]any{"error": err.Error()})
				return
			}
			if out == nil {
				out = map[string]any{"ok": true}
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	h("GET /sim/state", func(*http.Request) (any, error) { return s.Snapshot(), nil })
	h("GET /sim/deliveries", func(*http.Request) (any, error) { return s.Deliveries(), nil })
	h("GET /sim/deliveries/log", func(*http.Request) (any, error) { return s.DeliveryLog(), nil })
	h("POST /sim/contact-centre", func(r *http.Request) (any, error) {
		var spec ContactCentreSpec
		if err := decodeBody(r, &spec); err != nil {
			return nil, err
		}
		return s.BuildContactCentre(spec)
	})
	h("POST /sim/calls", func(r *http.Request) (any, error) {
		var body struct {
			From        string         `json:"from"`
			WorkflowSID string         `json:"workflow_sid"`
			Attributes  map[string]any `json:"attributes"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return s.PlaceCall(body.From, body.WorkflowSID, body.Attributes)
	})
	h("POST /sim/calls/{sid}/hangup", func(r *http.Request) (any, error) { return nil, s.CustomerHangup(r.PathValue("sid")) })
	for action, f := range map[string]func(string) error{"accept": s.Accept, "reject": s.Reject, "wrapup": s.Wrapup, "complete": s.Complete} {
		h("POST /sim/reservations/{sid}/"+action, func(r *http.Request) (any, error) { return nil, f(r.PathValue("sid")) })
	}
	h("POST /sim/workers/{sid}/refresh", func(r *http.Request) (any, error) { return nil, s.RefreshPage(r.PathValue("sid")) })
	h("POST /sim/workers/{sid}/hangup", func(r *http.Request) (any, error) { return nil, s.Hangup(r.PathValue("sid")) })
	h("POST /sim/workers/{sid}/activity", func(r *http.Request) (any, error) {
		var body struct {
			Activity string `json:"activity"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return nil, s.SetWorkerActivity(r.PathValue("sid"), body.Activity)
	})
	h("POST /sim/workers/{sid}/transfer", func(r *http.Request) (any, error) {
		var body struct {
			To string `json:"to"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		sid, err := s.WarmTransfer(r.PathValue("sid"), body.To)
		return map[string]string{"reservation_sid": sid}, err
	})
	h("POST /sim/workers/{sid}/token", func(r *http.Request) (any, error) {
		var body struct {
			Roles []string `json:"roles"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return map[string]string{"token": s.IssueFlexToken(r.PathValue("sid"), body.Roles...)}, nil
	})
	h("POST /sim/conferences/{sid}/monitor", func(r *http.Request) (any, error) {
		var body struct {
			Supervisor string `json:"supervisor"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		sid, err := s.Monitor(body.Supervisor, r.PathValue("sid"))
		return map[string]string{"call_sid": sid}, err
	})
	h("POST /sim/conferences/{sid}/third-party", func(r *http.Request) (any, error) {
		var body struct {
			To string `json:"to"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		sid, err := s.DialThirdParty(r.PathValue("sid"), body.To)
		return map[string]string{"call_sid": sid}, err
	})
	h("POST /sim/conference-callback", func(r *http.Request) (any, error) {
		var body struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		if body.URL != "" {
			if err := checkURL(body.URL); err != nil {
				return nil, err
			}
		}
		s.SetConferenceCallback(body.URL, body.Events...)
		return nil, nil
	})
	h("POST /sim/advance", func(r *http.Request) (any, error) {
		var body struct {
			Duration string `json:"duration"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(body.Duration)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("duration %q must be a non-negative Go duration such as 15s", body.Duration)
		}
		s.Advance(d)
		return map[string]any{"now": s.Now()}, nil
	})
	h("GET /sim/faults", func(*http.Request) (any, error) {
		f := s.CurrentFaults()
		return faultsJSON{LatencyMS: int(f.Latency / time.Millisecond), FailNext: f.FailNext, FailStatus: f.FailStatus,
			FailPathPrefix: f.FailPathPrefix, RetryAfterMS: int(f.RetryAfter / time.Millisecond),
			DuplicateDeliveries: f.DuplicateDeliveries, ReorderDeliveries: f.ReorderDeliveries,
			RetryConferenceCallbacks: f.RetryConferenceCallbacks}, nil
	})
	h("POST /sim/faults", func(r *http.Request) (any, error) {
		var body faultsJSON
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		if body.FailStatus != 0 && (body.FailStatus < 400 || body.FailStatus > 599) {
			return nil, fmt.Errorf("fail_status %d must be a 4xx or 5xx status", body.FailStatus)
		}
		if body.LatencyMS < 0 || body.RetryAfterMS < 0 || body.FailNext < 0 {
			return nil, errors.New("latency_ms, retry_after_ms and fail_next must not be negative")
		}
		s.SetFaults(Faults{Latency: time.Duration(body.LatencyMS) * time.Millisecond, FailNext: body.FailNext,
			FailStatus: body.FailStatus, FailPathPrefix: body.FailPathPrefix,
			RetryAfter:          time.Duration(body.RetryAfterMS) * time.Millisecond,
			DuplicateDeliveries: body.DuplicateDeliveries, ReorderDeliveries: body.ReorderDeliveries,
			RetryConferenceCallbacks: body.RetryConferenceCallbacks})
		return nil, nil
	})
	return m
}

func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}
