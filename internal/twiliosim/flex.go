package twiliosim

import (
	"errors"
	"fmt"
	"strings"
)

// The simulated Flex UI and its agents. Flex's own behaviours live in the
// flexAfter… hooks, which the voice code calls on every membership change
// of a conference Flex made; the agent actions are the exported methods.

// confOptions are the conference settings Flex (or a REST caller using
// Instruction=conference) gives at accept.
type confOptions struct {
	from, to          string
	endOnExit         *bool
	endOnCustomerExit *bool
	callback          string
	callbackEvents    map[string]bool
}

func conferenceInstruction(rq *request) (confOptions, error) {
	var o confOptions
	var err error
	o.from, o.to = rq.str("From"), rq.str("To")
	if o.endOnExit, err = rq.optBool("EndConferenceOnExit"); err != nil {
		return o, err
	}
	if o.endOnCustomerExit, err = rq.optBool("EndConferenceOnCustomerExit"); err != nil {
		return o, err
	}
	if cb := rq.str("ConferenceStatusCallback"); cb != "" {
		if err := checkURL(cb); err != nil {
			return o, errBad("ConferenceStatusCallback: %v", err)
		}
		o.callback = cb
		o.callbackEvents = eventSet(rq.form["ConferenceStatusCallbackEvent"])
		if len(o.callbackEvents) == 0 {
			o.callbackEvents = eventSet([]string{"start", "end"})
		}
	}
	return o, nil
}

// SetConferenceCallback sets the status callback URL (and the events, by
// Twilio's names: start end join leave mute hold modify announcement; none
// given means all of them) that the simulated Flex attaches to every
// conference it makes from now on, as the Flex plugin does at accept. An
// empty URL turns conference callbacks off.
func (s *Sim) SetConferenceCallback(callbackURL string, events ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flexCallback = callbackURL
	if len(events) == 0 {
		events = defaultFlexCallbackEvents
	}
	s.flexCallbackEvents = eventSet(events)
}

// SetWorkspaceConferenceCallback is SetConferenceCallback for the conferences
// of one workspace only (as if each workspace had its own Flex plugin
// configuration); it overrides the simulator-wide callback there. An empty
// URL falls back to the simulator-wide one.
func (s *Sim) SetWorkspaceConferenceCallback(workspaceSID, callbackURL string, events ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces.get(workspaceSID)
	if !ok {
		return fmt.Errorf("workspace %s: %w", workspaceSID, ErrNotFound)
	}
	if len(events) == 0 {
		events = defaultFlexCallbackEvents
	}
	ws.flexCallback, ws.flexCallbackEvents = callbackURL, eventSet(events)
	return nil
}

// contactURI is where Flex rings a worker: their contact_uri attribute, else
// client:<friendly name>.
func contactURI(w *worker) string {
	if v, ok := w.attrs["contact_uri"].(string); ok && v != "" {
		return v
	}
	return "client:" + w.name
}

func (s *Sim) workerByContact(to string) (*workspace, *worker) {
	for _, ws := range s.workspaces.list() {
		for _, w := range ws.workers.list() {
			if contactURI(w) == to {
				return ws, w
			}
		}
	}
	return nil, nil
}

// flexAccept is Flex accepting a reservation: for a voice task it bridges
// the caller waiting in <Enqueue> and the agent in a conference named after
// the task, records it in the task's conference attribute and applies
// Flex's endConferenceOnExit rule.
func (s *Sim) flexAccept(ws *workspace, r *reservation, o confOptions) error {
	if err := s.acceptReservation(ws, r); err != nil {
		return err
	}
	if r.task.channel.unique == "voice" {
		s.flexConnectAgent(ws, r, o)
	}
	return nil
}

func (s *Sim) flexConnectAgent(ws *workspace, r *reservation, o confOptions) {
	t := r.task
	var conf *conference
	if t.conferenceSID != "" {
		if c, ok := s.confs.get(t.conferenceSID); ok && c.status != callCompleted {
			conf = c
		}
	}
	var customer *call
	if conf == nil {
		c, ok := s.calls.get(t.callSID)
		if !ok || c.queueTask != t || c.status != callInProgress {
			return // nobody waiting: a voice task without a call
		}
		customer = c
		conf = s.newConference(t.sid)
		conf.flex, conf.ws, conf.taskSID = true, ws, t.sid
		conf.callbackURL, conf.callbackEvents = s.flexCallback, s.flexCallbackEvents
		if ws.flexCallback != "" {
			conf.callbackURL, conf.callbackEvents = ws.flexCallback, ws.flexCallbackEvents
		}
		if o.callback != "" {
			conf.callbackURL, conf.callbackEvents = o.callback, o.callbackEvents
		}
		t.conferenceSID = conf.sid
		// The caller leaves the queue for the conference; the rest of the
		// Enqueue document does not run any more.
		customer.queueTask = nil
		customer.verbs = nil
		s.join(conf, customer, joinOpts{label: "customer", role: roleCustomer, startOnEnter: true,
			endOnExit: o.endOnCustomerExit != nil && *o.endOnCustomerExit})
	}
	w := r.worker
	from := o.from
	if from == "" {
		from = FlexNumber
		if customer != nil {
			from = customer.from
		}
	}
	to := o.to
	if to == "" {
		to = contactURI(w)
	}
	agent := s.newCall(from, to, "outbound-api")
	agent.workerSID = w.sid
	r.callSID = agent.sid
	s.join(conf, agent, joinOpts{label: conf.uniqueLabel("worker"), role: roleAgent, startOnEnter: true,
		endOnExit: o.endOnExit != nil && *o.endOnExit, workerSID: w.sid, resSID: r.sid})
	// A transfer put the caller on hold; the new agent takes them off.
	for _, p := range conf.parts {
		if p.role == roleCustomer && p.hold {
			s.applyParticipantUpdate(p, map[string]*bool{"Hold": ptr(false)}, nil, nil, "", false)
		}
	}
	s.setTaskConferenceAttr(ws, t, conf)
	s.flexReset(conf)
}

func ptr[T any](v T) *T { return &v }

// setTaskConferenceAttr records the conference in the task's attributes
// the way Flex does: conference.sid and conference.participants.
func (s *Sim) setTaskConferenceAttr(ws *workspace, t *task, conf *conference) {
	parts := map[string]any{}
	if old, ok := t.attrs["conference"].(map[string]any); ok && old["sid"] == conf.sid {
		if p, ok := old["participants"].(map[string]any); ok {
			for k, v := range p {
				parts[k] = v
			}
		}
	}
	for _, p := range conf.parts {
		switch p.role {
		case roleCustomer:
			if _, ok := parts["customer"]; !ok {
				parts["customer"] = p.call.sid
			}
		case roleAgent:
			if p.workerSID == "" {
				continue
			}
			if _, ok := parts["worker"]; !ok {
				parts["worker"] = p.call.sid
			} else if parts["worker"] != p.call.sid {
				parts[p.workerSID] = p.call.sid
			}
		}
	}
	attrs := copyMap(t.attrs)
	attrs["conference"] = map[string]any{"sid": conf.sid, "participants": parts}
	t.attrs = attrs
	t.attrsJSON = mustJSON(attrs)
	t.version++
	t.updated = s.now()
	s.emitTR(ws, "task.updated", evCtx{task: t})
}

// flexAfterJoin runs Flex's reaction to a participant joining.
func (s *Sim) flexAfterJoin(conf *conference) {
	s.flexReset(conf)
}

// flexReset is Flex's endConferenceOnExit rule for the agents' legs:
// whenever two or fewer (non-coaching) parties remain it sets
// endConferenceOnExit=true, and with more it sets it false (which is what
// lets a warm transfer's first agent leave without ending the call). Each
// change sends participant-modify. Only membership changes trigger it, not
// participant updates, or it would fight every API call.
func (s *Sim) flexReset(conf *conference) {
	if !conf.flex || conf.status == callCompleted {
		return
	}
	live := 0
	for _, p := range conf.parts {
		if !p.coaching {
			live++
		}
	}
	want := live <= 2
	for _, p := range conf.parts {
		if p.role == roleAgent && !p.coaching && p.endOnExit != want {
			s.applyParticipantUpdate(p, map[string]*bool{"EndConferenceOnExit": ptr(want)}, nil, nil, "", false)
		}
	}
}

// flexAfterLeave: when an agent's leg leaves, Flex moves their reservation
// to wrapping.
func (s *Sim) flexAfterLeave(conf *conference, p *participant) {
	if p.resSID == "" || conf.ws == nil {
		return
	}
	if r, ok := conf.ws.reservations.get(p.resSID); ok && r.status == resAccepted {
		_ = s.wrapReservation(conf.ws, r)
	}
}

// flexAfterMembershipChange runs after a leave that did not end the
// conference: when the caller has gone and only agents remain, Flex ends
// the conference; otherwise the endConferenceOnExit rule applies again.
func (s *Sim) flexAfterMembershipChange(conf *conference, left *participant) {
	if !conf.flex {
		return
	}
	if left.role == roleCustomer {
		others := false
		for _, p := range conf.parts {
			if p.role != roleAgent && !p.coaching {
				others = true
			}
		}
		if !others {
			s.endConference(conf, "conference-ended-via-api", nil, leftConfEndedAPI)
			return
		}
	}
	s.flexReset(conf)
}

// --- agent actions (the control API) ---

// ErrNotFound is returned by control methods for an unknown SID.
var ErrNotFound = errors.New("twiliosim: not found")

func (s *Sim) findReservation(sid string) (*workspace, *reservation, error) {
	for _, ws := range s.workspaces.list() {
		if r, ok := ws.reservations.get(sid); ok {
			return ws, r, nil
		}
	}
	return nil, nil, fmt.Errorf("reservation %s: %w", sid, ErrNotFound)
}

func (s *Sim) findWorker(sid string) (*workspace, *worker, error) {
	for _, ws := range s.workspaces.list() {
		if w, ok := ws.workers.get(sid); ok {
			return ws, w, nil
		}
	}
	return nil, nil, fmt.Errorf("worker %s: %w", sid, ErrNotFound)
}

// agentLegs lists the worker's live, non-coaching conference legs.
func (s *Sim) agentLegs(workerSID string) []*participant {
	var out []*participant
	for _, conf := range s.confs.list() {
		if conf.status == callCompleted {
			continue
		}
		for _, p := range conf.parts {
			if p.workerSID == workerSID && p.role == roleAgent {
				out = append(out, p)
			}
		}
	}
	return out
}

// Accept is the agent accepting an offer in Flex. A voice task whose caller
// waits in <Enqueue> is bridged into a conference named after the task.
func (s *Sim) Accept(reservationSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, r, err := s.findReservation(reservationSID)
	if err != nil {
		return err
	}
	if err := s.flexAccept(ws, r, confOptions{}); err != nil {
		return fmt.Errorf("twiliosim: accept: %w", err)
	}
	s.routeAll()
	return nil
}

// Reject is the agent rejecting an offer; TaskRouter offers the task to
// someone else.
func (s *Sim) Reject(reservationSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, r, err := s.findReservation(reservationSID)
	if err != nil {
		return err
	}
	if r.status != resPending {
		return fmt.Errorf("twiliosim: reject: reservation %s is %s, not pending", r.sid, r.status)
	}
	s.endReservation(ws, r, resRejected)
	s.routeAll()
	return nil
}

// onCallLegs returns the agent's legs in live conferences, or an error naming the action when the
// worker is unknown or not on a call.
func (s *Sim) onCallLegs(workerSID, action string) ([]*participant, error) {
	if _, _, err := s.findWorker(workerSID); err != nil {
		return nil, err
	}
	legs := s.agentLegs(workerSID)
	if len(legs) == 0 {
		return nil, fmt.Errorf("twiliosim: %s: worker %s is not on a call", action, workerSID)
	}
	return legs, nil
}

// RefreshPage is the agent reloading the Flex page mid-call: their leg
// drops (participant_hung_up) and Flex moves the reservation to wrapping.
// Whether the caller stays depends on the leg's endConferenceOnExit.
func (s *Sim) RefreshPage(workerSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	legs, err := s.onCallLegs(workerSID, "refresh")
	if err != nil {
		return err
	}
	for _, p := range legs {
		s.hangup(p.call)
	}
	s.routeAll()
	return nil
}

// Hangup is the agent pressing Hang Up in Flex: with two or fewer parties
// left Flex ends the conference through the API, otherwise it removes the
// agent's leg through the API; either way the reservation goes to wrapping.
func (s *Sim) Hangup(workerSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	legs, err := s.onCallLegs(workerSID, "hangup")
	if err != nil {
		return err
	}
	for _, p := range legs {
		conf := p.conf
		if conf.status == callCompleted {
			continue
		}
		live := 0
		for _, q := range conf.parts {
			if !q.coaching {
				live++
			}
		}
		if live <= 2 {
			s.endConference(conf, "conference-ended-via-api", nil, leftConfEndedAPI)
			continue
		}
		c := p.call
		s.leave(p, leftUpdatedAPI, callCompleted, true)
		s.finishCall(c)
	}
	s.routeAll()
	return nil
}

// Wrapup moves the agent's accepted reservation to wrapping.
func (s *Sim) Wrapup(reservationSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, r, err := s.findReservation(reservationSID)
	if err != nil {
		return err
	}
	if err := s.wrapReservation(ws, r); err != nil {
		return fmt.Errorf("twiliosim: wrapup: %w", err)
	}
	return nil
}

// Complete is the agent completing their task in Flex: the reservation
// completes, and the task with it when nobody else is on it.
func (s *Sim) Complete(reservationSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, r, err := s.findReservation(reservationSID)
	if err != nil {
		return err
	}
	if err := s.completeReservation(ws, r); err != nil {
		return fmt.Errorf("twiliosim: complete: %w", err)
	}
	s.routeAll()
	return nil
}

// WarmTransfer starts a Flex warm transfer of the agent's voice task to
// another worker: the caller is put on hold and the second worker gets an
// offer (returned) for the same task. Accept it to bring them into the
// conference, then Hangup the first agent.
func (s *Sim) WarmTransfer(fromWorkerSID, toWorkerSID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, from, err := s.findWorker(fromWorkerSID)
	if err != nil {
		return "", err
	}
	to, ok := ws.workers.get(toWorkerSID)
	if !ok {
		return "", fmt.Errorf("worker %s in workspace %s: %w", toWorkerSID, ws.sid, ErrNotFound)
	}
	var r0 *reservation
	for _, r := range liveOf(from) {
		if r.status == resAccepted && r.task.channel.unique == "voice" && r.task.conferenceSID != "" {
			r0 = r
		}
	}
	if r0 == nil {
		return "", fmt.Errorf("twiliosim: transfer: worker %s has no accepted voice task with a conference", from.sid)
	}
	t := r0.task
	if to.activity == nil || !to.activity.available || !s.hasCapacity(ws, to, t) {
		return "", fmt.Errorf("twiliosim: transfer: worker %s is not available with voice capacity", to.sid)
	}
	t.transferInitiated = true
	s.emitTR(ws, "task.transfer-initiated", evCtx{task: t, extra: map[string]any{
		"transfer_mode": "WARM", "transfer_type": "WORKER", "transfer_to": to.sid,
		"transfer_initiating_worker_sid": from.sid, "transfer_initiating_reservation_sid": r0.sid,
	}})
	if conf, ok := s.confs.get(t.conferenceSID); ok {
		for _, p := range conf.parts {
			if p.role == roleCustomer && !p.hold {
				s.applyParticipantUpdate(p, map[string]*bool{"Hold": ptr(true)}, nil, nil, "", false)
			}
		}
	}
	r := s.reserve(ws, t, to)
	return r.sid, nil
}

// Monitor adds a supervisor's coaching leg (muted, coaching the first
// agent) to a live conference and returns its call SID.
func (s *Sim) Monitor(supervisorWorkerSID, conferenceSID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sup, err := s.findWorker(supervisorWorkerSID)
	if err != nil {
		return "", err
	}
	conf, ok := s.confs.get(conferenceSID)
	if !ok || conf.status == callCompleted {
		return "", fmt.Errorf("live conference %s: %w", conferenceSID, ErrNotFound)
	}
	coached := ""
	for _, p := range conf.parts {
		if p.role == roleAgent {
			coached = p.call.sid
			break
		}
	}
	if coached == "" {
		return "", fmt.Errorf("twiliosim: monitor: conference %s has no agent to coach", conferenceSID)
	}
	c := s.newCall(FlexNumber, contactURI(sup), "outbound-api")
	s.join(conf, c, joinOpts{label: conf.uniqueLabel("supervisor"), role: roleSupervisor, startOnEnter: true,
		muted: true, coaching: true, callToCoach: coached, workerSID: sup.sid})
	return c.sid, nil
}

// DialThirdParty is an agent adding an outside number to the conference
// from Flex; it returns the new leg's call SID.
func (s *Sim) DialThirdParty(conferenceSID, to string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conf, ok := s.confs.get(conferenceSID)
	if !ok || conf.status == callCompleted {
		return "", fmt.Errorf("live conference %s: %w", conferenceSID, ErrNotFound)
	}
	if strings.TrimSpace(to) == "" {
		return "", errors.New("twiliosim: dial: a number to dial is required")
	}
	c := s.newCall(FlexNumber, to, "outbound-api")
	s.join(conf, c, joinOpts{label: conf.uniqueLabel("external"), role: roleExternal, startOnEnter: true})
	return c.sid, nil
}

// CustomerHangup is the caller hanging up, wherever the call is: waiting in
// a queue (the task is canceled) or in a conference.
func (s *Sim) CustomerHangup(callSID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls.get(callSID)
	if !ok {
		return fmt.Errorf("call %s: %w", callSID, ErrNotFound)
	}
	if c.status != callInProgress {
		return fmt.Errorf("twiliosim: hangup: call %s is %s", callSID, c.status)
	}
	s.hangup(c)
	s.routeAll()
	return nil
}

// SetWorkerActivity is an agent (or supervisor) changing a worker's
// activity in Flex; activity is a SID or a friendly name.
func (s *Sim) SetWorkerActivity(workerSID, activity string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, w, err := s.findWorker(workerSID)
	if err != nil {
		return err
	}
	a, ok := ws.activities.get(activity)
	if !ok {
		if a, ok = ws.activityByName(activity); !ok {
			return fmt.Errorf("activity %q: %w", activity, ErrNotFound)
		}
	}
	s.applyWorkerUpdate(ws, w, a, nil, "", false)
	return nil
}

// PlacedCall is an inbound call the simulator placed and the task its
// <Enqueue> created.
type PlacedCall struct {
	CallSID string `json:"call_sid"`
	TaskSID string `json:"task_sid"`
}

// PlaceCall makes an inbound call from a caller to the Flex number that is
// sent to a workflow, as Studio's "Send to Flex" does: a voice task with the
// call's attributes (call_sid, from, to, …) plus attrs, and the call waits
// in the queue.
func (s *Sim) PlaceCall(from, workflowSID string, attrs map[string]any) (PlacedCall, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, ok := s.findWorkflow(workflowSID); !ok {
		return PlacedCall{}, fmt.Errorf("workflow %s: %w", workflowSID, ErrNotFound)
	}
	if from == "" {
		return PlacedCall{}, errors.New("twiliosim: place call: a caller number is required")
	}
	given, err := parseAttributes(mustJSON(attrs))
	if err != nil && attrs != nil {
		return PlacedCall{}, fmt.Errorf("twiliosim: place call: attributes: %w", err)
	}
	c := s.newCall(from, FlexNumber, "inbound")
	c.verbs = []verb{{name: "Enqueue", workflowSID: workflowSID, taskAttrs: given}}
	s.runCall(c)
	pc := PlacedCall{CallSID: c.sid}
	if c.queueTask != nil {
		pc.TaskSID = c.queueTask.sid
	}
	s.routeAll()
	return pc, nil
}
