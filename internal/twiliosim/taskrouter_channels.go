package twiliosim

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
