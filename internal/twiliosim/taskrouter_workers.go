package twiliosim

import (
	"strconv"

	"github.com/flexoperator/flex-operator/internal/expr"
)

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
