package twiliosim

import (
	"net/url"
	"strings"
)

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
