package twiliosim

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
	s.emitActivity(ws, "activity.created", a)
	return a
}

// emitActivity publishes an activity event with the fields TaskRouter's event reference lists for
// it (ActivitySid, ActivityName, ActivityAvailable). s.mu must be held.
func (s *Sim) emitActivity(ws *workspace, eventType string, a *activity) {
	s.emitTR(ws, eventType, evCtx{resourceType: "activity", resourceSID: a.sid,
		resourceURI: "/v1/Workspaces/" + ws.sid + "/Activities/" + a.sid,
		extra:       map[string]any{"activity_sid": a.sid, "activity_name": a.name, "activity_available": a.available}})
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
		s.emitActivity(ws, "activity.updated", a)
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
	s.emitActivity(ws, "activity.deleted", a)
	return noContent()
}
