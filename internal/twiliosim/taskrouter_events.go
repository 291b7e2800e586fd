package twiliosim

import (
	"time"
)

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
