package recovery

import (
	"strconv"
	"strings"
	"time"
)

// Action is one Twilio side effect the controller should perform. Name is stable for the step and
// is the key under which the controller records it in status.Actions; Decide never returns an
// action whose name is already recorded as Pending, Done, Skipped or Failed.
type Action interface {
	// ActionName returns the key of the step in status.Actions.
	ActionName() string
}

// Action names of the one-off steps.
const (
	NameAnnounce                    = "Announce"
	NameHoldCustomer                = "HoldCustomer"
	NameResumeCustomer              = "ResumeCustomer"
	NameMarkOriginalTask            = "MarkOriginalTask"
	NameCreatePingTask              = "CreatePingTask"
	NameCompletePingTask            = "CompletePingTask"
	NameCancelPingTask              = "CancelPingTask"
	NameMarkPingSuccessful          = "MarkPingSuccessful"
	NameEnqueueReconnect            = "EnqueueReconnect"
	NameCompleteOriginalReservation = "CompleteOriginalReservation"
	NameRerouteReconnect            = "RerouteReconnect"
	namePrefixRedial                = "Redial/"
	namePrefixCorrection            = "EndConferenceOnExit/"
)

// CorrectEndConferenceOnExit sets endConferenceOnExit back to false on an agent leg after Flex set
// it to true. Flex does this repeatedly, so the step is keyed by call SID and the sequence number
// of the callback that showed the flag.
type CorrectEndConferenceOnExit struct {
	CallSID        string
	SequenceNumber int64
}

// ActionName implements Action.
func (a CorrectEndConferenceOnExit) ActionName() string {
	return namePrefixCorrection + a.CallSID + "/" + strconv.FormatInt(a.SequenceNumber, 10)
}

// Announce tells the remaining participants that the agent was disconnected: a recording or TwiML
// at URL, or Text to be said.
type Announce struct {
	URL  string
	Text string
}

// ActionName implements Action.
func (Announce) ActionName() string { return NameAnnounce }

// HoldCustomer puts the customer's leg on hold, with MusicURL when the policy names one (Twilio's
// default hold music otherwise).
type HoldCustomer struct {
	CallSID  string
	MusicURL string
}

// ActionName implements Action.
func (HoldCustomer) ActionName() string { return NameHoldCustomer }

// ResumeCustomer takes the customer's leg off hold: an agent is back in the call.
type ResumeCustomer struct {
	CallSID string
}

// ActionName implements Action.
func (ResumeCustomer) ActionName() string { return NameResumeCustomer }

// MarkOriginalTask merges Patch into the original task's attributes (objects are merged key by key,
// so conversations keeps its other keys).
type MarkOriginalTask struct {
	Patch map[string]any
}

// ActionName implements Action.
func (MarkOriginalTask) ActionName() string { return NameMarkOriginalTask }

// CreatePingTask creates the Recovery Ping task offered to the disconnected agent; the controller
// builds its attributes from the original task's and the recovery's with PingTaskAttributes.
type CreatePingTask struct {
	TTL          time.Duration
	Priority     int64
	WorkflowName string
	TaskChannel  string
}

// ActionName implements Action.
func (CreatePingTask) ActionName() string { return NameCreatePingTask }

// CompletePingTask completes the ping task once the agent accepted it.
type CompletePingTask struct {
	TaskSID string
}

// ActionName implements Action.
func (CompletePingTask) ActionName() string { return NameCompletePingTask }

// CancelPingTask cancels a ping task nobody has answered yet because the customer left the call.
type CancelPingTask struct {
	TaskSID string
}

// ActionName implements Action.
func (CancelPingTask) ActionName() string { return NameCancelPingTask }

// MarkPingSuccessful sets wasPingSuccessful=true on the original task, which tells the reloaded
// Flex UI the agent is being reconnected.
type MarkPingSuccessful struct {
	Patch map[string]any
}

// ActionName implements Action.
func (MarkPingSuccessful) ActionName() string { return NameMarkPingSuccessful }

// EnqueueReconnect redirects the customer's call into a new task on the original workflow (see
// BuildEnqueueTwiML and ReconnectTaskAttributes). TargetWorkerSID is empty for a fallback, which
// any agent on the workflow may take.
type EnqueueReconnect struct {
	CustomerCallSID string
	Fallback        bool
	TargetWorkerSID string
	Priority        int64
}

// ActionName implements Action.
func (EnqueueReconnect) ActionName() string { return NameEnqueueReconnect }

// CompleteOriginalReservation completes the disconnected agent's reservation on the original task
// if it is still wrapping. It comes only after the reconnect task is queued, so that the agent's
// voice capacity is not given to another call first. The task is the recovery's spec.taskSid.
type CompleteOriginalReservation struct {
	ReservationSID string
}

// ActionName implements Action.
func (CompleteOriginalReservation) ActionName() string { return NameCompleteOriginalReservation }

// RerouteReconnect routes a reconnect task that was routed to one agent, who did not take it, to
// any agent on the original workflow: a pending offer to that agent is withdrawn (rejected on
// their behalf) and targetWorkerSid is removed from the task, which TaskRouter re-evaluates
// against the workflow. TaskSID is empty when the task has not been reported yet (the controller
// looks it up by the incident's marker). Why is the reason, for a person.
type RerouteReconnect struct {
	TaskSID         string
	TargetWorkerSID string
	Priority        int64
	Why             string
}

// ActionName implements Action.
func (RerouteReconnect) ActionName() string { return NameRerouteReconnect }

// Redial dials a leg that remained in the old conference into the new one (BuildRedialTwiML),
// keeping its label.
type Redial struct {
	CallSID        string
	Label          string
	ConferenceName string
}

// ActionName implements Action.
func (a Redial) ActionName() string { return namePrefixRedial + a.CallSID }

// IsCorrection reports whether an action name is an endConferenceOnExit correction, and of which leg.
func IsCorrection(name string) (callSID string, ok bool) {
	rest, ok := strings.CutPrefix(name, namePrefixCorrection)
	if !ok {
		return "", false
	}
	callSID, _, ok = strings.Cut(rest, "/")
	return callSID, ok
}

// IsRedial reports whether an action name is a Redial, and of which leg.
func IsRedial(name string) (callSID string, ok bool) {
	callSID, ok = strings.CutPrefix(name, namePrefixRedial)
	return callSID, ok && callSID != ""
}
