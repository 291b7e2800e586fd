package twiliosim

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
