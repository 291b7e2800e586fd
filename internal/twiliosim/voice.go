package twiliosim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Voice: calls, conferences, participants, TwiML and conference status
// callbacks. Everything runs under s.mu.

// Call statuses used here.
const (
	callInProgress = "in-progress"
	callCompleted  = "completed"
)

// ReasonParticipantLeft values (underscores, as Twilio sends them).
const (
	leftHungUp       = "participant_hung_up"
	leftUpdatedAPI   = "participant_updated_via_api"
	leftConfEndedAPI = "conference_ended_via_api"
	leftModerator    = "moderator_ended_conference"
)

// Participant roles the simulated Flex gives its legs.
const (
	roleCustomer   = "customer"
	roleAgent      = "agent"
	roleSupervisor = "supervisor"
	roleExternal   = "external"
)

// FlexNumber is the number simulated inbound calls are made to.
const FlexNumber = "+18005550100"

var defaultFlexCallbackEvents = []string{"start", "end", "join", "leave", "mute", "hold", "modify", "announcement"}

type call struct {
	sid, from, to, direction, status string
	created, updated, started, ended time.Time
	parentSID                        string
	verbs                            []verb
	queueTask                        *task
	queueWS                          *workspace
	part                             *participant
	workerSID                        string
}

type conference struct {
	sid, name, status string
	created, updated  time.Time
	parts             []*participant
	seq               int
	// announcements are the AnnounceUrl values played to the conference, in order.
	announcements  []string
	callbackURL    string
	callbackEvents map[string]bool
	reasonEnded    string
	endingCallSID  string
	// flex marks a conference the simulated Flex made for a task; only
	// these get Flex's behaviours.
	flex    bool
	ws      *workspace
	taskSID string
}

type participant struct {
	conf                    *conference
	call                    *call
	label, role             string
	coaching                bool
	callToCoach             string
	endOnExit, startOnEnter bool
	muted, hold             bool
	beepOnExit              string
	created, updated        time.Time
	workerSID, resSID       string
}

func eventSet(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		for _, part := range strings.FieldsFunc(n, func(r rune) bool { return r == ',' || r == ' ' }) {
			m[part] = true
		}
	}
	return m
}

// callbackCategory maps a StatusCallbackEvent to the subscription value.
func callbackCategory(event string) string {
	switch event {
	case "conference-start":
		return "start"
	case "conference-end":
		return "end"
	case "participant-join":
		return "join"
	case "participant-leave":
		return "leave"
	case "participant-mute", "participant-unmute":
		return "mute"
	case "participant-hold", "participant-unhold":
		return "hold"
	case "participant-modify":
		return "modify"
	case "announcement-end", "announcement-fail":
		return "announcement"
	}
	return "speaker"
}

func tf(b bool) string { return strconv.FormatBool(b) }

// confEvent sends a conference status callback if the conference has a
// callback subscribed to the event.
func (s *Sim) confEvent(conf *conference, event string, p *participant, extra url.Values) {
	if conf.callbackURL == "" || !conf.callbackEvents[callbackCategory(event)] {
		return
	}
	conf.seq++
	f := url.Values{}
	f.Set("AccountSid", s.accountSID)
	f.Set("ConferenceSid", conf.sid)
	f.Set("FriendlyName", conf.name)
	f.Set("SequenceNumber", strconv.Itoa(conf.seq))
	f.Set("Timestamp", s.now().Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	f.Set("StatusCallbackEvent", event)
	if p != nil {
		f.Set("CallSid", p.call.sid)
		f.Set("Muted", tf(p.muted))
		f.Set("Hold", tf(p.hold))
		f.Set("Coaching", tf(p.coaching))
		f.Set("EndConferenceOnExit", tf(p.endOnExit))
		f.Set("StartConferenceOnEnter", tf(p.startOnEnter))
		if p.label != "" {
			f.Set("ParticipantLabel", p.label)
		}
		if p.coaching && p.callToCoach != "" {
			f.Set("CallSidToCoach", p.callToCoach)
		}
	}
	for k, v := range extra {
		f[k] = v
	}
	// Sent once, as Twilio does: a refused or failed callback is lost unless a test opts in to the
	// RetryConferenceCallbacks fault.
	s.deliver.enqueue("callback:"+conf.callbackURL, destination{url: conf.callbackURL, kind: kindForm, conference: true}, item{form: f})
}

func (s *Sim) newCall(from, to, direction string) *call {
	now := s.now()
	c := &call{sid: s.newSID("CA"), from: from, to: to, direction: direction, status: callInProgress,
		created: now, updated: now, started: now}
	s.calls.put(c.sid, c)
	return c
}

// runCall executes the call's remaining TwiML until a verb that waits
// (Enqueue, Dial) or the end of the document, which ends the call.
func (s *Sim) runCall(c *call) {
	for c.status == callInProgress && len(c.verbs) > 0 {
		v := c.verbs[0]
		c.verbs = c.verbs[1:]
		switch v.name {
		case "Hangup", "Reject":
			s.finishCall(c)
			return
		case "Enqueue":
			if s.enqueueCall(c, v) {
				return
			}
		case "Dial":
			s.dialConference(c, v)
			return
		}
	}
	if c.status == callInProgress && c.queueTask == nil && c.part == nil {
		s.finishCall(c)
	}
}

func (s *Sim) finishCall(c *call) {
	if c.status != callInProgress {
		return
	}
	now := s.now()
	c.status = callCompleted
	c.ended = now
	c.updated = now
	c.verbs = nil
}

// findWorkflow finds a workflow in any workspace.
func (s *Sim) findWorkflow(sid string) (*workspace, *workflow, bool) {
	for _, ws := range s.workspaces.list() {
		if wf, ok := ws.workflows.get(sid); ok {
			return ws, wf, true
		}
	}
	return nil, nil, false
}

// enqueueCall runs <Enqueue workflowSid>: a voice task on that workflow;
// the call waits until the task is assigned or ends.
func (s *Sim) enqueueCall(c *call, v verb) bool {
	ws, wf, ok := s.findWorkflow(v.workflowSID)
	if !ok {
		return false // Twilio logs an error and the call moves on
	}
	ch, _ := ws.channelByRef("voice")
	if ch == nil {
		ch, _ = ws.channelByRef("default")
	}
	spec := taskSpec{attrs: enqueueAttrs(s.accountSID, c, v.taskAttrs), timeout: 86400, channel: ch, workflow: wf, callSID: c.sid}
	if v.taskPriority != nil {
		spec.priority = *v.taskPriority
	}
	if v.taskTimeout != nil {
		spec.timeout = *v.taskTimeout
	}
	c.queueWS = ws
	// The call waits before the task is routed: routing may end the task
	// at once (a workflow timeout after skips), which lets the call move on.
	c.queueTask = s.newTask(ws, spec)
	s.startTask(ws, c.queueTask)
	return true
}

// taskEnded lets a call waiting in <Enqueue> for the task move on.
func (s *Sim) taskEnded(t *task) {
	if t.callSID == "" {
		return
	}
	c, ok := s.calls.get(t.callSID)
	if !ok || c.queueTask != t {
		return
	}
	c.queueTask = nil
	s.runCall(c)
}

func (s *Sim) liveConferenceNamed(name string) *conference {
	for _, conf := range s.confs.list() {
		if conf.name == name && conf.status != callCompleted {
			return conf
		}
	}
	return nil
}

func (s *Sim) newConference(name string) *conference {
	now := s.now()
	conf := &conference{sid: s.newSID("CF"), name: name, status: "init", created: now, updated: now}
	s.confs.put(conf.sid, conf)
	return conf
}

// joinOpts are a participant's settings.
type joinOpts struct {
	label, role             string
	endOnExit, startOnEnter bool
	muted, hold, coaching   bool
	callToCoach             string
	workerSID, resSID       string
	callback                string
	callbackEvents          map[string]bool
}

// dialConference runs <Dial><Conference>: the call joins the named
// conference, which is created if no live one has that name.
func (s *Sim) dialConference(c *call, v verb) {
	conf := s.liveConferenceNamed(v.confName)
	if conf == nil {
		conf = s.newConference(v.confName)
	}
	a := v.confAttrs
	o := joinOpts{startOnEnter: a["startConferenceOnEnter"] != "false", endOnExit: a["endConferenceOnExit"] == "true",
		muted: a["muted"] == "true", label: a["participantLabel"]}
	if o.label == "" {
		o.label = a["label"]
	}
	if coach := a["coach"]; coach != "" {
		o.coaching, o.callToCoach = true, coach
	}
	o.callback = a["statusCallback"]
	if ev := a["statusCallbackEvent"]; ev != "" {
		o.callbackEvents = eventSet([]string{ev})
	}
	o.role = s.roleOf(c)
	if o.label != "" && conf.labelTaken(o.label) {
		o.label = conf.uniqueLabel(o.label)
	}
	s.join(conf, c, o)
}

// roleOf guesses a leg's role for the simulated Flex from how it was made.
func (s *Sim) roleOf(c *call) string {
	switch {
	case c.workerSID != "":
		return roleAgent
	case c.direction == "inbound":
		return roleCustomer
	}
	return roleExternal
}

func (conf *conference) labelTaken(label string) bool {
	for _, p := range conf.parts {
		if p.label == label {
			return true
		}
	}
	return false
}

// uniqueLabel returns base, or base-2, base-3… if taken: Twilio labels are
// unique within a conference.
func (conf *conference) uniqueLabel(base string) string {
	if !conf.labelTaken(base) {
		return base
	}
	for i := 2; ; i++ {
		l := fmt.Sprintf("%s-%d", base, i)
		if !conf.labelTaken(l) {
			return l
		}
	}
}

func (conf *conference) participant(ref string) *participant {
	for _, p := range conf.parts {
		if p.call.sid == ref || (p.label != "" && p.label == ref) {
			return p
		}
	}
	return nil
}

// join adds a call to a conference; the first participant sets the status
// callback.
func (s *Sim) join(conf *conference, c *call, o joinOpts) *participant {
	now := s.now()
	if conf.callbackURL == "" && o.callback != "" && len(conf.parts) == 0 {
		conf.callbackURL = o.callback
		conf.callbackEvents = o.callbackEvents
		if conf.callbackEvents == nil {
			conf.callbackEvents = eventSet([]string{"start", "end"})
		}
	}
	p := &participant{conf: conf, call: c, label: o.label, role: o.role, coaching: o.coaching, callToCoach: o.callToCoach,
		endOnExit: o.endOnExit, startOnEnter: o.startOnEnter, muted: o.muted, hold: o.hold,
		created: now, updated: now, workerSID: o.workerSID, resSID: o.resSID}
	conf.parts = append(conf.parts, p)
	conf.updated = now
	c.part = p
	s.confEvent(conf, "participant-join", p, nil)
	if conf.status == "init" && p.startOnEnter {
		conf.status = callInProgress
		s.confEvent(conf, "conference-start", nil, nil)
	}
	s.flexAfterJoin(conf)
	return p
}

func (conf *conference) remove(p *participant) {
	for i, x := range conf.parts {
		if x == p {
			conf.parts = append(conf.parts[:i], conf.parts[i+1:]...)
			break
		}
	}
	p.call.part = nil
}

// leave takes a participant out of its conference. callStatus is what the
// call does next ("in-progress" when it continues elsewhere). kicked says
// whether the API removed it (for ReasonConferenceEnded).
func (s *Sim) leave(p *participant, reason, callStatus string, kicked bool) {
	conf := p.conf
	conf.remove(p)
	conf.updated = s.now()
	s.confEvent(conf, "participant-leave", p, url.Values{
		"ReasonParticipantLeft": {reason}, "ParticipantCallStatus": {callStatus},
	})
	s.flexAfterLeave(conf, p)
	if conf.status == callCompleted {
		return
	}
	switch {
	case p.endOnExit:
		why := "participant-with-end-conference-on-exit-left"
		if kicked {
			why = "participant-with-end-conference-on-exit-kicked"
		}
		s.endConference(conf, why, p, leftModerator)
	case len(conf.parts) == 0:
		why := "last-participant-left"
		if kicked {
			why = "last-participant-kicked"
		}
		s.endConference(conf, why, p, "")
	default:
		s.flexAfterMembershipChange(conf, p)
	}
}

// endConference removes everyone still in the conference, then sends
// conference-end; the removed calls continue with their own TwiML.
func (s *Sim) endConference(conf *conference, why string, ending *participant, leaveReason string) {
	if conf.status == callCompleted {
		return
	}
	conf.status = callCompleted
	conf.reasonEnded = why
	conf.updated = s.now()
	if ending != nil {
		conf.endingCallSID = ending.call.sid
	}
	var continuing []*call
	for len(conf.parts) > 0 {
		p := conf.parts[0]
		conf.remove(p)
		status := callCompleted
		if len(p.call.verbs) > 0 {
			status = callInProgress
		}
		s.confEvent(conf, "participant-leave", p, url.Values{
			"ReasonParticipantLeft": {leaveReason}, "ParticipantCallStatus": {status},
		})
		s.flexAfterLeave(conf, p)
		continuing = append(continuing, p.call)
	}
	extra := url.Values{"ReasonConferenceEnded": {why}}
	switch {
	case ending != nil:
		extra.Set("CallSidEndingConference", ending.call.sid)
		if ending.label != "" {
			extra.Set("ParticipantLabelEndingConference", ending.label)
		}
		extra.Set("Reason", fmt.Sprintf("Participant %s with endConferenceOnExit left the conference", ending.call.sid))
		if !ending.endOnExit {
			extra.Set("Reason", "Last participant left the conference")
		}
	case why == "conference-ended-via-api":
		extra.Set("Reason", "Conference ended via API")
	}
	s.confEvent(conf, "conference-end", nil, extra)
	for _, c := range continuing {
		s.runCall(c)
	}
}

// detach takes a call out of the queue or conference it is in; reason is
// the ReasonParticipantLeft for a conference leg.
func (s *Sim) detach(c *call, reason, callStatus string, kicked bool) {
	if t := c.queueTask; t != nil {
		c.queueTask = nil
		why := "hangup"
		if callStatus == callInProgress {
			why = "redirected"
		}
		if ws := c.queueWS; ws != nil {
			s.cancelTask(ws, t, why)
		}
	}
	if p := c.part; p != nil {
		s.leave(p, reason, callStatus, kicked)
	}
}

// hangup ends a call as if its party hung up.
func (s *Sim) hangup(c *call) {
	if c.status != callInProgress {
		return
	}
	c.verbs = nil
	s.detach(c, leftHungUp, callCompleted, false)
	s.finishCall(c)
}

// redirect replaces the call's TwiML, as Calls update with Twiml does.
func (s *Sim) redirect(c *call, verbs []verb) {
	c.verbs = nil
	// A redirected leg leaves on its own (only DELETE kicks it).
	s.detach(c, leftUpdatedAPI, callInProgress, false)
	c.verbs = verbs
	c.updated = s.now()
	s.runCall(c)
}

// --- REST ---

func (s *Sim) voiceMux() *http.ServeMux {
	m := http.NewServeMux()
	h := func(pattern string, f handlerFunc) { m.HandleFunc(pattern, s.wrap(f)) }
	const acct = "/2010-04-01/Accounts/{acct}"
	h("GET "+acct+"/Calls", s.listCalls)
	h("POST "+acct+"/Calls", s.createCall)
	h("GET "+acct+"/Calls/{sid}", s.fetchCall)
	h("POST "+acct+"/Calls/{sid}", s.updateCall)
	h("GET "+acct+"/Conferences", s.listConferences)
	h("GET "+acct+"/Conferences/{sid}", s.fetchConference)
	h("POST "+acct+"/Conferences/{sid}", s.updateConference)
	h("GET "+acct+"/Conferences/{sid}/Participants", s.listParticipants)
	h("POST "+acct+"/Conferences/{sid}/Participants", s.createParticipant)
	h("GET "+acct+"/Conferences/{sid}/Participants/{call}", s.fetchParticipant)
	h("POST "+acct+"/Conferences/{sid}/Participants/{call}", s.updateParticipant)
	h("DELETE "+acct+"/Conferences/{sid}/Participants/{call}", s.deleteParticipant)
	return m
}

func (s *Sim) checkAccount(rq *request) error {
	if rq.path("acct") != s.accountSID {
		return errNotFound(rq.r.URL.Path + ".json")
	}
	return nil
}

func (s *Sim) apiURI(rest string) string {
	return "/2010-04-01/Accounts/" + s.accountSID + rest + ".json"
}

func (s *Sim) callJSON(c *call) map[string]any {
	m := map[string]any{
		"sid": c.sid, "account_sid": s.accountSID, "from": c.from, "from_formatted": c.from, "to": c.to, "to_formatted": c.to,
		"status": c.status, "direction": c.direction, "date_created": apiTime(c.created), "date_updated": apiTime(c.updated),
		"start_time": apiTime(c.started), "end_time": nil, "duration": nil, "parent_call_sid": nullable(c.parentSID),
		"api_version": "2010-04-01", "price": nil, "price_unit": "USD", "answered_by": nil, "forwarded_from": nil,
		"group_sid": nil, "caller_name": nil, "queue_time": "0", "trunk_sid": nil, "phone_number_sid": nil,
		"uri":              s.apiURI("/Calls/" + c.sid),
		"subresource_uris": map[string]any{"notifications": s.apiURI("/Calls/" + c.sid + "/Notifications")},
	}
	if !c.ended.IsZero() {
		m["end_time"] = apiTime(c.ended)
		m["duration"] = strconv.Itoa(int(c.ended.Sub(c.started) / time.Second))
	}
	return m
}

func (s *Sim) conferenceJSON(conf *conference) map[string]any {
	return map[string]any{
		"sid": conf.sid, "account_sid": s.accountSID, "friendly_name": conf.name, "status": conf.status,
		"date_created": apiTime(conf.created), "date_updated": apiTime(conf.updated), "api_version": "2010-04-01",
		"region": "us1", "reason_conference_ended": nullable(conf.reasonEnded),
		"call_sid_ending_conference": nullable(conf.endingCallSID),
		"uri":                        s.apiURI("/Conferences/" + conf.sid),
		"subresource_uris": map[string]any{
			"participants": s.apiURI("/Conferences/" + conf.sid + "/Participants"),
			"recordings":   s.apiURI("/Conferences/" + conf.sid + "/Recordings"),
		},
	}
}

func (s *Sim) participantJSON(p *participant) map[string]any {
	return map[string]any{
		"account_sid": s.accountSID, "call_sid": p.call.sid, "conference_sid": p.conf.sid, "label": nullable(p.label),
		"call_sid_to_coach": nullable(p.callToCoach), "coaching": p.coaching, "end_conference_on_exit": p.endOnExit,
		"start_conference_on_enter": p.startOnEnter, "muted": p.muted, "hold": p.hold, "status": "connected",
		"queue_time": "0", "date_created": apiTime(p.created), "date_updated": apiTime(p.updated),
		"uri": s.apiURI("/Conferences/" + p.conf.sid + "/Participants/" + p.call.sid),
	}
}

func (s *Sim) listCalls(rq *request) (reply, error) {
	if err := s.checkAccount(rq); err != nil {
		return reply{}, err
	}
	all := s.calls.list()
	for key, get := range map[string]func(*call) string{
		"To": func(c *call) string { return c.to }, "From": func(c *call) string { return c.from },
		"Status": func(c *call) string { return c.status }, "ParentCallSid": func(c *call) string { return c.parentSID },
	} {
		if v := rq.str(key); v != "" {
			all = filter(all, func(c *call) bool { return get(c) == v })
		}
	}
	return apiPage(s, rq, "calls", all, func(c *call) any { return s.callJSON(c) })
}

func (s *Sim) callOf(rq *request) (*call, error) {
	if err := s.checkAccount(rq); err != nil {
		return nil, err
	}
	c, ok := s.calls.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path + ".json")
	}
	return c, nil
}

func (s *Sim) fetchCall(rq *request) (reply, error) {
	c, err := s.callOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.callJSON(c))
}

// twimlParam validates the Twiml parameter, including that an <Enqueue>
// names a workflow that exists.
func (s *Sim) twimlParam(rq *request) ([]verb, error) {
	src := rq.str("Twiml")
	if len(src) > maxTwiMLParam {
		return nil, &apiError{status: 400, code: 21220, message: fmt.Sprintf("Twiml is %d characters; the maximum is %d", len(src), maxTwiMLParam)}
	}
	verbs, err := parseTwiML(src)
	if err != nil {
		return nil, &apiError{status: 400, code: 12100, message: "Twiml: " + err.Error()}
	}
	for _, v := range verbs {
		if v.name == "Enqueue" {
			if _, _, ok := s.findWorkflow(v.workflowSID); !ok {
				return nil, errBad("Twiml: <Enqueue workflowSid=%q> is not a workflow of this account", v.workflowSID)
			}
		}
	}
	return verbs, nil
}

func (s *Sim) createCall(rq *request) (reply, error) {
	if err := s.checkAccount(rq); err != nil {
		return reply{}, err
	}
	from, to := rq.str("From"), rq.str("To")
	if from == "" || to == "" {
		return reply{}, errBad("From and To are required")
	}
	if rq.str("Url") != "" || rq.str("ApplicationSid") != "" {
		return reply{}, errBad("Url and ApplicationSid are not modelled by the simulator; give Twiml")
	}
	verbs, err := s.twimlParam(rq)
	if err != nil {
		return reply{}, err
	}
	c := s.newCall(from, to, "outbound-api")
	c.verbs = verbs
	s.runCall(c)
	s.routeAll()
	return created(s.callJSON(c))
}

func (s *Sim) updateCall(rq *request) (reply, error) {
	c, err := s.callOf(rq)
	if err != nil {
		return reply{}, err
	}
	if rq.str("Url") != "" {
		return reply{}, errBad("Url is not modelled by the simulator; give Twiml")
	}
	status := rq.str("Status")
	if status != "" && status != "completed" && status != "canceled" {
		return reply{}, errBad("Status must be completed or canceled")
	}
	if !rq.has("Twiml") && status == "" {
		return okJSON(s.callJSON(c))
	}
	if c.status != callInProgress {
		return reply{}, &apiError{status: 400, code: 21220, message: fmt.Sprintf("Call %s is not in-progress. Cannot redirect.", c.sid)}
	}
	if status != "" {
		c.verbs = nil
		s.detach(c, leftUpdatedAPI, callCompleted, false)
		s.finishCall(c)
	} else {
		verbs, err := s.twimlParam(rq)
		if err != nil {
			return reply{}, err
		}
		s.redirect(c, verbs)
	}
	s.routeAll()
	return okJSON(s.callJSON(c))
}

func (s *Sim) conferenceOf(rq *request) (*conference, error) {
	if err := s.checkAccount(rq); err != nil {
		return nil, err
	}
	conf, ok := s.confs.get(rq.path("sid"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path + ".json")
	}
	return conf, nil
}

func (s *Sim) listConferences(rq *request) (reply, error) {
	if err := s.checkAccount(rq); err != nil {
		return reply{}, err
	}
	all := s.confs.list()
	if v := rq.str("FriendlyName"); v != "" {
		all = filter(all, func(c *conference) bool { return c.name == v })
	}
	if v := rq.str("Status"); v != "" {
		all = filter(all, func(c *conference) bool { return c.status == v })
	}
	return apiPage(s, rq, "conferences", all, func(c *conference) any { return s.conferenceJSON(c) })
}

func (s *Sim) fetchConference(rq *request) (reply, error) {
	conf, err := s.conferenceOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.conferenceJSON(conf))
}

func (s *Sim) updateConference(rq *request) (reply, error) {
	conf, err := s.conferenceOf(rq)
	if err != nil {
		return reply{}, err
	}
	status, announce := rq.str("Status"), rq.str("AnnounceUrl")
	if status != "" && status != "completed" {
		return reply{}, errBad("Status must be completed")
	}
	if announce != "" {
		if err := checkURL(announce); err != nil {
			return reply{}, errBad("AnnounceUrl: %v", err)
		}
		if conf.status == callCompleted {
			return reply{}, errBad("conference %s is completed; nothing to announce to", conf.sid)
		}
		conf.announcements = append(conf.announcements, announce)
		s.confEvent(conf, "announcement-end", nil, url.Values{"AnnounceUrl": {announce}})
	}
	if status == "completed" {
		s.endConference(conf, "conference-ended-via-api", nil, leftConfEndedAPI)
	}
	s.routeAll()
	return okJSON(s.conferenceJSON(conf))
}

func (s *Sim) listParticipants(rq *request) (reply, error) {
	conf, err := s.conferenceOf(rq)
	if err != nil {
		return reply{}, err
	}
	all := conf.parts
	for key, get := range map[string]func(*participant) bool{
		"Muted": func(p *participant) bool { return p.muted }, "Hold": func(p *participant) bool { return p.hold },
		"Coaching": func(p *participant) bool { return p.coaching },
	} {
		b, err := rq.optBool(key)
		if err != nil {
			return reply{}, err
		}
		if b != nil {
			all = filter(all, func(p *participant) bool { return get(p) == *b })
		}
	}
	return apiPage(s, rq, "participants", all, func(p *participant) any { return s.participantJSON(p) })
}

func (s *Sim) participantOf(rq *request) (*participant, error) {
	conf, err := s.conferenceOf(rq)
	if err != nil {
		return nil, err
	}
	p := conf.participant(rq.path("call"))
	if p == nil {
		return nil, errNotFound(rq.r.URL.Path + ".json")
	}
	return p, nil
}

func (s *Sim) fetchParticipant(rq *request) (reply, error) {
	p, err := s.participantOf(rq)
	if err != nil {
		return reply{}, err
	}
	return okJSON(s.participantJSON(p))
}

func (s *Sim) updateParticipant(rq *request) (reply, error) {
	p, err := s.participantOf(rq)
	if err != nil {
		return reply{}, err
	}
	bools := map[string]*bool{}
	for _, k := range []string{"Muted", "Hold", "EndConferenceOnExit", "Coaching"} {
		b, err := rq.optBool(k)
		if err != nil {
			return reply{}, err
		}
		bools[k] = b
	}
	for _, k := range []string{"AnnounceUrl", "HoldUrl", "WaitUrl"} {
		if v := rq.str(k); v != "" {
			if err := checkURL(v); err != nil {
				return reply{}, errBad("%s: %v", k, err)
			}
		}
	}
	coach := rq.optStr("CallSidToCoach")
	if c := bools["Coaching"]; c != nil && *c {
		target := p.callToCoach
		if coach != nil {
			target = *coach
		}
		if p.conf.participant(target) == nil {
			return reply{}, errBad("CallSidToCoach %q is not a participant of this conference", target)
		}
	}
	s.applyParticipantUpdate(p, bools, coach, rq.optStr("BeepOnExit"), rq.str("AnnounceUrl"), rq.has("WaitUrl"))
	return okJSON(s.participantJSON(p))
}

// applyParticipantUpdate changes a participant and sends the callbacks:
// mute/unmute, hold/unhold, modify for endConferenceOnExit, coaching,
// beepOnExit or waitUrl changes, announcement-end for an announcement.
func (s *Sim) applyParticipantUpdate(p *participant, b map[string]*bool, coach, beep *string, announce string, waitURL bool) {
	now := s.now()
	if v := b["Muted"]; v != nil && *v != p.muted {
		p.muted, p.updated = *v, now
		s.confEvent(p.conf, map[bool]string{true: "participant-mute", false: "participant-unmute"}[*v], p, nil)
	}
	if v := b["Hold"]; v != nil && *v != p.hold {
		p.hold, p.updated = *v, now
		s.confEvent(p.conf, map[bool]string{true: "participant-hold", false: "participant-unhold"}[*v], p, nil)
	}
	modified := waitURL
	if v := b["EndConferenceOnExit"]; v != nil && *v != p.endOnExit {
		p.endOnExit, modified = *v, true
	}
	if v := b["Coaching"]; v != nil && *v != p.coaching {
		p.coaching, modified = *v, true
		if !*v {
			p.callToCoach = ""
		}
	}
	if coach != nil && *coach != p.callToCoach && p.coaching {
		p.callToCoach, modified = *coach, true
	}
	if beep != nil && *beep != p.beepOnExit {
		p.beepOnExit, modified = *beep, true
	}
	if modified {
		p.updated = now
		s.confEvent(p.conf, "participant-modify", p, nil)
	}
	if announce != "" {
		s.confEvent(p.conf, "announcement-end", p, url.Values{"AnnounceUrl": {announce}})
	}
}

func (s *Sim) createParticipant(rq *request) (reply, error) {
	if err := s.checkAccount(rq); err != nil {
		return reply{}, err
	}
	from, to := rq.str("From"), rq.str("To")
	if from == "" || to == "" {
		return reply{}, errBad("From and To are required")
	}
	ref := rq.path("sid")
	conf, ok := s.confs.get(ref)
	if ok && conf.status == callCompleted {
		return reply{}, errBad("conference %s is completed", conf.sid)
	}
	if !ok {
		if strings.HasPrefix(ref, "CF") && len(ref) == 34 {
			return reply{}, errNotFound(rq.r.URL.Path + ".json")
		}
		conf = s.liveConferenceNamed(ref)
	}
	label := rq.str("Label")
	if conf != nil && label != "" && conf.labelTaken(label) {
		return reply{}, errBad("a participant labelled %q is already in the conference", label)
	}
	bools := map[string]*bool{}
	for _, k := range []string{"EndConferenceOnExit", "StartConferenceOnEnter", "Muted", "Coaching"} {
		b, err := rq.optBool(k)
		if err != nil {
			return reply{}, err
		}
		bools[k] = b
	}
	o := joinOpts{label: label, startOnEnter: true}
	if b := bools["EndConferenceOnExit"]; b != nil {
		o.endOnExit = *b
	}
	if b := bools["StartConferenceOnEnter"]; b != nil {
		o.startOnEnter = *b
	}
	if b := bools["Muted"]; b != nil {
		o.muted = *b
	}
	if b := bools["Coaching"]; b != nil && *b {
		o.coaching, o.callToCoach = true, rq.str("CallSidToCoach")
		if conf == nil || conf.participant(o.callToCoach) == nil {
			return reply{}, errBad("CallSidToCoach %q is not a participant of this conference", o.callToCoach)
		}
	}
	if cb := rq.str("ConferenceStatusCallback"); cb != "" {
		if err := checkURL(cb); err != nil {
			return reply{}, errBad("ConferenceStatusCallback: %v", err)
		}
		o.callback = cb
		if evs := rq.form["ConferenceStatusCallbackEvent"]; len(evs) > 0 {
			o.callbackEvents = eventSet(evs)
		}
	}
	if conf == nil {
		conf = s.newConference(ref)
	}
	c := s.newCall(from, to, "outbound-api")
	o.role = roleExternal
	if strings.HasPrefix(to, "client:") {
		if ws, w := s.workerByContact(to); w != nil {
			c.workerSID = w.sid
			o.role, o.workerSID = roleAgent, w.sid
			_ = ws
		}
	}
	if o.coaching {
		o.role = roleSupervisor
	}
	p := s.join(conf, c, o)
	s.routeAll()
	return created(s.participantJSON(p))
}

func (s *Sim) deleteParticipant(rq *request) (reply, error) {
	p, err := s.participantOf(rq)
	if err != nil {
		return reply{}, err
	}
	c := p.call
	status := callCompleted
	if len(c.verbs) > 0 {
		status = callInProgress
	}
	s.leave(p, leftUpdatedAPI, status, true)
	s.runCall(c)
	s.routeAll()
	return noContent()
}
