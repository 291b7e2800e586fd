package recovery

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// Defaults for policy fields left empty (the CRD defaults them too; these keep Decide total).
const (
	DefaultPingTTL          = 15 * time.Second
	DefaultPriority         = 1000
	DefaultReconnectTimeout = 30 * time.Minute
	DefaultPingWorkflowName = "Recovery Ping"
	DefaultTaskChannel      = "default"
	DefaultFollowedBy       = "Reconnect Agent"
)

// Reasons set with a phase.
const (
	ReasonWatching          = "Watching"
	ReasonNoAgentLeft       = "AgentLeftGracefully"
	ReasonConferenceEnded   = "ConferenceEnded"
	ReasonAgentDisconnected = "AgentDisconnected"
	ReasonPingCreated       = "PingTaskCreated"
	ReasonPingResolved      = "PingResolved"
	ReasonPingFailed        = "PingFailed"
	ReasonReconnectQueued   = "ReconnectQueued"
	ReasonReconnectRerouted = "ReconnectRerouted"
	ReasonRedialing         = "RedialingParticipants"
	ReasonRecovered         = "Recovered"
	ReasonCustomerLeft      = "CustomerLeft"
	ReasonReconnectTimeout  = "ReconnectTimeout"
	ReasonActionFailed      = "ActionFailed"
	ReasonAgentReturned     = "AgentReturned"
)

// Decision is the next step of a recovery.
type Decision struct {
	// Phase the recovery is in once the Actions are taken. A terminal phase carries at most
	// clean-up actions (CancelPingTask, CompletePingTask when the customer left); the controller
	// stores the phase once they are taken.
	Phase v1alpha1.RecoveryPhase
	// Reason is a CamelCase word for the phase.
	Reason string
	// Message explains the phase to a person.
	Message string
	// Disconnect, when not nil, is the non-graceful departure just detected; the controller stores it.
	Disconnect *v1alpha1.DisconnectStatus
	// Actions to perform, in order; none is already recorded in status.Actions.
	Actions []Action
	// RecheckAfter, when positive, is when Decide should run again even if nothing is observed
	// (the reconnect timeout).
	RecheckAfter time.Duration
	// EndIncident, once Actions is empty, tells the controller to close the incident: an agent is
	// connected to the call again, so the disconnect, the ping and the steps taken for them are
	// cleared and the call is watched as before (a later drop starts a new recovery).
	EndIncident bool
}

// Decide returns the next step for the recovery described by st under policy p at time now.
func Decide(st v1alpha1.ConferenceRecoveryStatus, p v1alpha1.ConferenceRecoveryPolicySpec, now time.Time) Decision {
	if st.Phase.Terminal() {
		return Decision{Phase: st.Phase, Reason: st.Reason, Message: st.Message}
	}
	done := actionStates(st.Actions)
	d := decide(st, p, now, done)
	if d.Disconnect != nil {
		// Detection and the first steps come together: the customer is waiting.
		st.Disconnect = d.Disconnect
		next := decide(st, p, now, done)
		next.Disconnect = d.Disconnect
		d = next
	}
	d.Actions = filterRecorded(d.Actions, done)
	return d
}

func decide(st v1alpha1.ConferenceRecoveryStatus, p v1alpha1.ConferenceRecoveryPolicySpec, now time.Time, recorded map[string]v1alpha1.ActionState) Decision {
	customer := findCustomer(st)
	customerConnected := customer != nil && customer.LeftAt == nil && st.ConferenceEndedAt == nil
	disconnect := st.Disconnect

	if disconnect == nil {
		return monitor(st, customerConnected)
	}

	// From here on a recovery is under way.
	enqueued := recorded[NameEnqueueReconnect] == v1alpha1.ActionPending ||
		recorded[NameEnqueueReconnect] == v1alpha1.ActionDone ||
		(st.Reconnect != nil && st.Reconnect.EnqueuedAt != nil)
	if !enqueued && !customerConnected {
		return Decision{Phase: v1alpha1.PhaseAbandoned, Reason: ReasonCustomerLeft,
			Message: "The customer left the call before being reconnected to an agent.",
			Actions: pingCleanup(st)}
	}
	if !enqueued && anyAgentConnected(st) {
		// An agent is in the call again (a warm transfer whose join was delivered after the
		// leave, an agent who rejoined): the customer must not be held, nor redirected out of a
		// conference that holds an agent.
		return agentReturned(st, recorded)
	}
	if enqueued && customer != nil && customer.LeftAt != nil && !events.IsGracefulLeave(customer.LeaveReason) &&
		(st.Reconnect == nil || st.Reconnect.AcceptedAt == nil) {
		// A redirect into the queue leaves the conference "via API"; anything else is a hang-up.
		return Decision{Phase: v1alpha1.PhaseAbandoned, Reason: ReasonCustomerLeft,
			Message: fmt.Sprintf("The customer left the call (%s) while waiting for an agent.", customer.LeaveReason)}
	}
	if rc := st.Reconnect; rc != nil && rc.CanceledAt != nil && rc.AcceptedAt == nil {
		// The reconnect task is gone before an agent took it: the customer hung up in the queue.
		return Decision{Phase: v1alpha1.PhaseAbandoned, Reason: ReasonCustomerLeft,
			Message: fmt.Sprintf("The reconnect task was canceled (%s) before an agent took it.", cmp.Or(rc.CancelReason, "no reason given"))}
	}
	if recorded[NameEnqueueReconnect] == v1alpha1.ActionFailed {
		return Decision{Phase: v1alpha1.PhaseFailed, Reason: ReasonActionFailed,
			Message: fmt.Sprintf("Step %s failed and cannot be retried.", NameEnqueueReconnect)}
	}
	// A ping that could not be created (the Recovery Ping workflow is missing, Twilio refused the
	// task) must not leave the customer on hold with nobody coming: route them to any agent, as
	// when the ping times out.
	pingFailed := recorded[NameCreatePingTask] == v1alpha1.ActionFailed

	// The reconnect bound counts from the enqueue, or from the disconnect if the enqueue never came.
	timeout := DefaultReconnectTimeout
	if p.Reconnect.Timeout != nil && p.Reconnect.Timeout.Duration > 0 {
		timeout = p.Reconnect.Timeout.Duration
	}
	start := disconnect.At.Time
	if st.Reconnect != nil && st.Reconnect.EnqueuedAt != nil {
		start = st.Reconnect.EnqueuedAt.Time
	}
	accepted := st.Reconnect != nil && st.Reconnect.AcceptedAt != nil
	var recheck time.Duration
	if !accepted && !start.IsZero() {
		if !now.Before(start.Add(timeout)) {
			msg := fmt.Sprintf("No agent took the reconnect task within %s; the customer stays queued for any agent on the original workflow.", timeout)
			if rc := st.Reconnect; rc != nil && rc.TargetWorkerSID != "" && !rc.Fallback && rc.ReroutedAt == nil {
				msg = fmt.Sprintf("Agent %s did not take the reconnect task within %s, and it could not be routed to anyone else; the customer is still waiting for them.", rc.TargetWorkerSID, timeout)
			}
			return Decision{Phase: v1alpha1.PhaseFailed, Reason: ReasonReconnectTimeout, Message: msg}
		}
		recheck = start.Add(timeout).Sub(now)
	}

	ping := st.Ping
	if !pingFailed && (ping == nil || ping.TaskSID == "") {
		d := Decision{Phase: v1alpha1.PhaseDisconnected, Reason: ReasonAgentDisconnected,
			Message:      fmt.Sprintf("Agent %s dropped out of the call; telling the customer and pinging the agent.", disconnect.WorkerSID),
			RecheckAfter: recheck}
		d.Actions = disconnectedActions(st, p)
		if recorded[NameCreatePingTask] == v1alpha1.ActionDone {
			d.Phase, d.Reason, d.Message = v1alpha1.PhasePinging, ReasonPingCreated, "Waiting for the disconnected agent to accept the Recovery Ping."
		}
		return d
	}
	if !pingFailed && ping.Outcome == "" {
		return Decision{Phase: v1alpha1.PhasePinging, Reason: ReasonPingCreated,
			Message:      "Waiting for the disconnected agent to accept the Recovery Ping.",
			Actions:      disconnectedActions(st, p), // finish any step a restart interrupted
			RecheckAfter: recheck}
	}

	d := Decision{Phase: v1alpha1.PhaseReconnecting, Reason: ReasonPingResolved, RecheckAfter: recheck}
	priority := p.Reconnect.Priority
	if priority == 0 {
		priority = DefaultPriority
	}
	enqueue := EnqueueReconnect{CustomerCallSID: st.CustomerCallSID, Fallback: true, Priority: priority}
	switch {
	case pingFailed:
		d.Reason = ReasonPingFailed
		d.Message = "The Recovery Ping could not be created; routing the customer to any agent on the original workflow."
	case ping.Outcome == v1alpha1.PingAccepted:
		d.Actions = append(d.Actions,
			CompletePingTask{TaskSID: ping.TaskSID},
			MarkPingSuccessful{Patch: map[string]any{"wasPingSuccessful": true}})
		enqueue.Fallback, enqueue.TargetWorkerSID = false, disconnect.WorkerSID
		d.Message = "The agent answered the ping; routing the customer back to them."
	default:
		d.Message = "The agent did not answer the ping; routing the customer to any agent on the original workflow."
	}
	d.Actions = append(d.Actions, enqueue)

	rc := st.Reconnect
	if rc != nil && rc.QueuedAt != nil {
		d.Reason = ReasonReconnectQueued
		if rc.OriginalReservationCompletedAt == nil && disconnect.ReservationSID != "" {
			d.Actions = append(d.Actions, CompleteOriginalReservation{ReservationSID: disconnect.ReservationSID})
		}
	}
	if !accepted && recorded[NameEnqueueReconnect] == v1alpha1.ActionDone {
		reroute(&d, st, p, priority, now, recorded)
	}
	if rc == nil || rc.ConferenceSID == "" || !accepted {
		return d
	}

	// The customer is with an agent in the new conference: bring the other legs over.
	d.RecheckAfter = 0
	var pending bool
	for _, leg := range st.Participants {
		if leg.LeftAt != nil || leg.Coaching || leg.CallSID == st.CustomerCallSID ||
			leg.Role == v1alpha1.RoleAgent || leg.Role == v1alpha1.RoleSupervisor || leg.Role == v1alpha1.RoleCustomer {
			continue
		}
		r := Redial{CallSID: leg.CallSID, Label: leg.Label, ConferenceName: conferenceName(rc)}
		if s := recorded[r.ActionName()]; s == "" || s == v1alpha1.ActionPending {
			pending = true
		}
		d.Actions = append(d.Actions, r)
	}
	if pending {
		d.Phase, d.Reason, d.Message = v1alpha1.PhaseRedialing, ReasonRedialing, "Dialling the remaining participants into the new conference."
		return d
	}
	d.Phase, d.Reason = v1alpha1.PhaseRecovered, ReasonRecovered
	d.Message = fmt.Sprintf("The customer is back with agent %s.", rc.WorkerSID)
	if rc.ReroutedAt != nil {
		d.Message = fmt.Sprintf("The customer is with agent %s, after the reconnect was routed to anyone (%s).", rc.WorkerSID, rc.RerouteReason)
	}
	d.Actions = nil
	return d
}

// reroute bounds the wait for the agent a reconnect task was routed to: once they reject its
// offer, let it time out, or do not take it within the policy's targetTimeout (the ping's TTL by
// default) after the enqueue, the task is routed to any agent on the original workflow. The
// "Direct to an Agent" filter has no timeout and never skips (the task must enter a queue before
// the original reservation is completed), so without this a customer whose agent answered the
// ping and then vanished would wait for them until the reconnect timeout.
func reroute(d *Decision, st v1alpha1.ConferenceRecoveryStatus, p v1alpha1.ConferenceRecoveryPolicySpec, priority int64, now time.Time, recorded map[string]v1alpha1.ActionState) {
	rc := st.Reconnect
	if rc == nil || rc.Fallback || rc.TargetWorkerSID == "" || rc.EnqueuedAt == nil {
		return
	}
	if rc.ReroutedAt != nil || recorded[NameRerouteReconnect] == v1alpha1.ActionDone {
		d.Reason = ReasonReconnectRerouted
		d.Message = fmt.Sprintf("%s; the customer was routed to any agent on the original workflow at priority %d.", cmp.Or(rc.RerouteReason, "The agent did not take the reconnect"), priority)
		return
	}
	if s := recorded[NameRerouteReconnect]; s == v1alpha1.ActionFailed || s == v1alpha1.ActionSkipped {
		return // the agent took it meanwhile (Skipped), or Twilio refused (Failed, with an Event)
	}
	wait := reconnectTargetTimeout(p)
	deadline := rc.EnqueuedAt.Add(wait)
	var why string
	switch {
	case rc.TargetRefusedAt != nil && rc.TargetRefusal == "timeout":
		why = fmt.Sprintf("Agent %s let the reconnect offer time out", rc.TargetWorkerSID)
	case rc.TargetRefusedAt != nil:
		why = fmt.Sprintf("Agent %s rejected the reconnect", rc.TargetWorkerSID)
	case !now.Before(deadline):
		why = fmt.Sprintf("Agent %s did not take the reconnect within %s", rc.TargetWorkerSID, wait)
	default:
		if until := deadline.Sub(now); d.RecheckAfter == 0 || until < d.RecheckAfter {
			d.RecheckAfter = until
		}
		return
	}
	d.Reason = ReasonReconnectRerouted
	d.Message = fmt.Sprintf("%s; routing the customer to any agent on the original workflow at priority %d.", why, priority)
	d.Actions = append(d.Actions, RerouteReconnect{TaskSID: rc.TaskSID, TargetWorkerSID: rc.TargetWorkerSID, Priority: priority, Why: why})
}

// reconnectTargetTimeout is how long a reconnect routed to one agent waits for them.
func reconnectTargetTimeout(p v1alpha1.ConferenceRecoveryPolicySpec) time.Duration {
	if p.Reconnect.TargetTimeout != nil && p.Reconnect.TargetTimeout.Duration > 0 {
		return p.Reconnect.TargetTimeout.Duration
	}
	if p.Ping.TTL != nil && p.Ping.TTL.Duration > 0 {
		return p.Ping.TTL.Duration
	}
	return DefaultPingTTL
}

// agentReturned stops a recovery whose customer has an agent again: the ping is withdrawn (or
// completed, if the agent had already taken it), the customer taken off hold, and the incident
// closed once those steps are recorded.
func agentReturned(st v1alpha1.ConferenceRecoveryStatus, recorded map[string]v1alpha1.ActionState) Decision {
	d := Decision{Phase: v1alpha1.PhaseMonitoring, Reason: ReasonAgentReturned, EndIncident: true,
		Message: "An agent is connected to the call again; the recovery stops and the call is watched as before.",
		Actions: pingCleanup(st)}
	if s := recorded[NameHoldCustomer]; s == v1alpha1.ActionDone || s == v1alpha1.ActionPending {
		d.Actions = append(d.Actions, ResumeCustomer{CallSID: st.CustomerCallSID})
	}
	return d
}

// pingCleanup ends a ping task that is no longer needed because the customer left: a ping still
// ringing is canceled, so the agent is not offered a call that is gone; one already accepted is
// completed, as it would have been on the way to the enqueue.
func pingCleanup(st v1alpha1.ConferenceRecoveryStatus) []Action {
	ping := st.Ping
	if ping == nil || ping.TaskSID == "" {
		return nil
	}
	switch ping.Outcome {
	case "":
		return []Action{CancelPingTask{TaskSID: ping.TaskSID}}
	case v1alpha1.PingAccepted:
		return []Action{CompletePingTask{TaskSID: ping.TaskSID}}
	}
	return nil
}

// conferenceName is the friendly name of the new conference: Flex names a task's conference after
// the task SID.
func conferenceName(rc *v1alpha1.ReconnectStatus) string {
	if rc.TaskSID != "" {
		return rc.TaskSID
	}
	return rc.ConferenceSID
}

// monitor handles a call with no incident yet: keep correcting Flex's endConferenceOnExit, detect a
// non-graceful leave of the last agent, or end with the conference.
func monitor(st v1alpha1.ConferenceRecoveryStatus, customerConnected bool) Decision {
	if st.ConferenceEndedAt != nil {
		return Decision{Phase: v1alpha1.PhaseEnded, Reason: ReasonConferenceEnded, Message: "The conference ended without an agent disconnect."}
	}
	d := Decision{Phase: v1alpha1.PhaseMonitoring, Reason: ReasonWatching, Message: "Watching the call."}
	if !customerConnected {
		return d
	}
	for _, leg := range st.Participants {
		if isAgent(leg) && leg.LeftAt == nil && leg.EndConferenceOnExit && !correctionInFlight(st.Actions, leg.CallSID) {
			d.Actions = append(d.Actions, CorrectEndConferenceOnExit{CallSID: leg.CallSID, SequenceNumber: leg.SequenceNumber})
		}
	}
	if anyAgentConnected(st) {
		return d
	}
	last := lastAgentToLeave(st)
	if last == nil {
		return d
	}
	if last.Graceful {
		d.Reason, d.Message = ReasonNoAgentLeft, "The last agent left gracefully; waiting for the conference to end."
		return d
	}
	return Decision{Phase: v1alpha1.PhaseDisconnected, Reason: ReasonAgentDisconnected,
		Message: fmt.Sprintf("The last agent's leg %s left (%s) while the customer is still connected.", last.CallSID, last.LeaveReason),
		Disconnect: &v1alpha1.DisconnectStatus{WorkerSID: last.WorkerSID, CallSID: last.CallSID,
			Reason: last.LeaveReason, At: *last.LeftAt, ObservedAt: last.LeftObservedAt.DeepCopy()}}
}

// isAgent reports whether the leg counts as an agent: supervisors and coaching legs never do.
func isAgent(leg v1alpha1.ParticipantStatus) bool {
	return leg.Role == v1alpha1.RoleAgent && !leg.Coaching
}

func anyAgentConnected(st v1alpha1.ConferenceRecoveryStatus) bool {
	for _, leg := range st.Participants {
		if isAgent(leg) && leg.LeftAt == nil {
			return true
		}
	}
	return false
}

// lastAgentToLeave is the agent leg that left last. Leaves are ordered by the sequence number of
// their callbacks, which Twilio assigns in the order things happened in the conference; LeftAt has
// whole seconds only, and two agents leaving in the same second (a warm transfer's hand-over, two
// pages dying with one network) is common. Time orders only a pair where one leave's sequence
// number is unknown (repaired by the resync). When even time cannot tell, the non-graceful leave
// counts as the last: a needless recovery costs the customer an announcement and a short hold, a
// missed one loses the customer.
func lastAgentToLeave(st v1alpha1.ConferenceRecoveryStatus) *v1alpha1.ParticipantStatus {
	var last *v1alpha1.ParticipantStatus
	for i := range st.Participants {
		leg := &st.Participants[i]
		if !isAgent(*leg) || leg.LeftAt == nil {
			continue
		}
		if last == nil || leftAfter(*leg, *last) {
			last = leg
		}
	}
	return last
}

// leftAfter reports whether leg a's leave is to be taken as later than leg b's.
func leftAfter(a, b v1alpha1.ParticipantStatus) bool {
	if a.LeftSequenceNumber > 0 && b.LeftSequenceNumber > 0 && a.LeftSequenceNumber != b.LeftSequenceNumber {
		return a.LeftSequenceNumber > b.LeftSequenceNumber
	}
	if !a.LeftAt.Equal(b.LeftAt) {
		return a.LeftAt.After(b.LeftAt.Time)
	}
	return !a.Graceful && b.Graceful
}

func findCustomer(st v1alpha1.ConferenceRecoveryStatus) *v1alpha1.ParticipantStatus {
	for i := range st.Participants {
		leg := &st.Participants[i]
		if (st.CustomerCallSID != "" && leg.CallSID == st.CustomerCallSID) ||
			(st.CustomerCallSID == "" && leg.Role == v1alpha1.RoleCustomer) {
			return leg
		}
	}
	return nil
}

// disconnectedActions are the steps of the Disconnected phase. The ping comes first: the agent
// whose page is reloading waits for it, and every step before it would add a Twilio call and a
// status write to that wait; the customer's announcement and hold follow at once.
func disconnectedActions(st v1alpha1.ConferenceRecoveryStatus, p v1alpha1.ConferenceRecoveryPolicySpec) []Action {
	ttl := DefaultPingTTL
	if p.Ping.TTL != nil && p.Ping.TTL.Duration > 0 {
		ttl = p.Ping.TTL.Duration
	}
	priority := p.Ping.Priority
	if priority == 0 {
		priority = DefaultPriority
	}
	out := []Action{CreatePingTask{
		TTL:          ttl,
		Priority:     priority,
		WorkflowName: cmp.Or(p.Ping.WorkflowName, DefaultPingWorkflowName),
		TaskChannel:  cmp.Or(p.Ping.TaskChannel, DefaultTaskChannel),
	}}
	if p.Customer.AnnouncementURL != "" || p.Customer.AnnouncementText != "" {
		out = append(out, Announce{URL: p.Customer.AnnouncementURL, Text: p.Customer.AnnouncementText})
	}
	out = append(out, HoldCustomer{CallSID: st.CustomerCallSID, MusicURL: p.Customer.HoldMusicURL})
	at := st.Disconnect.At.UTC().Format(time.RFC3339)
	out = append(out, MarkOriginalTask{Patch: map[string]any{
		"disconnectedTime": at,
		"conversations":    map[string]any{"followed_by": cmp.Or(p.Reporting.FollowedBy, DefaultFollowedBy)},
	}})
	return out
}

func actionStates(actions []v1alpha1.RecoveryAction) map[string]v1alpha1.ActionState {
	m := make(map[string]v1alpha1.ActionState, len(actions))
	for _, a := range actions {
		m[a.Name] = a.State
	}
	return m
}

// filterRecorded drops the actions already recorded in any state: Pending is resolved by looking
// the result up, Done and Skipped are finished, and a Failed step is the controller's to retry or
// give up on, never Decide's to repeat blindly.
func filterRecorded(actions []Action, recorded map[string]v1alpha1.ActionState) []Action {
	var out []Action
	seen := map[string]bool{}
	for _, a := range actions {
		name := a.ActionName()
		if _, ok := recorded[name]; ok || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, a)
	}
	return out
}

// CorrectionForEvent reports whether one callback calls for the endConferenceOnExit correction: a
// participant-join or participant-modify of an agent leg (not coaching) with EndConferenceOnExit
// true, unless what is known of the call shows it past saving (the customer left, the conference
// ended, the recovery finished) or the leg gone. It is decided on the event itself, before the
// event is stored, so that the webhook server makes the correction first: the setting is
// idempotent, and every moment it stays true a page refresh loses the customer. st is what is
// known of the conference so far (the zero status for its first callback); taskRole is the role
// the conference's task gives the leg, used when the callback's label does not say.
func CorrectionForEvent(st v1alpha1.ConferenceRecoveryStatus, ev events.ConferenceEvent, taskRole v1alpha1.ParticipantRole) bool {
	if ev.Event != events.ParticipantJoin && ev.Event != events.ParticipantModify {
		return false
	}
	if !ev.EndConferenceOnExit || ev.Coaching || st.Phase.Terminal() || st.ConferenceEndedAt != nil {
		return false
	}
	role := v1alpha1.ParticipantRole(events.ParticipantRole(ev.ParticipantLabel, ev.Coaching))
	if role == v1alpha1.RoleUnknown {
		role = taskRole
	}
	if i := participantIndex(&st, ev.CallSID); i >= 0 {
		leg := st.Participants[i]
		if role == v1alpha1.RoleUnknown {
			role = leg.Role
		}
		if leg.LeftAt != nil && ev.SequenceNumber < leg.SequenceNumber {
			return false // the leg has left since
		}
	}
	if customer := findCustomer(st); customer != nil && customer.LeftAt != nil {
		return false
	}
	return role == v1alpha1.RoleAgent
}

// correctionInFlight reports whether a correction of the leg is Pending: its result (and the
// participant-modify it causes) is still to come, so a newer callback must not trigger another.
// A Done correction with the flag still true after a newer callback is repeated under the newer
// sequence number: either Flex reset the flag again, or the confirmation is late and setting the
// flag to false twice is harmless.
func correctionInFlight(actions []v1alpha1.RecoveryAction, callSID string) bool {
	prefix := namePrefixCorrection + callSID + "/"
	for _, a := range actions {
		if a.State == v1alpha1.ActionPending && strings.HasPrefix(a.Name, prefix) {
			return true
		}
	}
	return false
}
