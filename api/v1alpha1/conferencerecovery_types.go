package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PhaseLabel is the label that carries a ConferenceRecovery's phase, so that
// `kubectl get conferencerecoveries -l contactcenter.flexoperator.io/phase=Pinging` works.
const PhaseLabel = "contactcenter.flexoperator.io/phase"

// PolicyLabel is the label that carries the name of the ConferenceRecoveryPolicy a recovery belongs to.
const PolicyLabel = "contactcenter.flexoperator.io/policy"

// RecoveryPhase is where a protected call stands.
// +kubebuilder:validation:Enum=Monitoring;Disconnected;Pinging;Reconnecting;Redialing;Recovered;Abandoned;Failed;Ended
type RecoveryPhase string

// The phases of a ConferenceRecovery. A call is Monitoring until its last agent drops out
// non-gracefully; it then moves Disconnected → Pinging → Reconnecting → Redialing → Recovered, or ends
// in Abandoned (the customer left), Failed (with a reason) or Ended (the call finished normally).
const (
	PhaseMonitoring   RecoveryPhase = "Monitoring"
	PhaseDisconnected RecoveryPhase = "Disconnected"
	PhasePinging      RecoveryPhase = "Pinging"
	PhaseReconnecting RecoveryPhase = "Reconnecting"
	PhaseRedialing    RecoveryPhase = "Redialing"
	PhaseRecovered    RecoveryPhase = "Recovered"
	PhaseAbandoned    RecoveryPhase = "Abandoned"
	PhaseFailed       RecoveryPhase = "Failed"
	PhaseEnded        RecoveryPhase = "Ended"
)

// Terminal reports whether no further step follows the phase.
func (p RecoveryPhase) Terminal() bool {
	switch p {
	case PhaseRecovered, PhaseAbandoned, PhaseFailed, PhaseEnded:
		return true
	}
	return false
}

// ParticipantRole is what a conference participant is to the call.
// +kubebuilder:validation:Enum=Customer;Agent;Supervisor;ThirdParty;Unknown
type ParticipantRole string

// Participant roles.
const (
	RoleCustomer   ParticipantRole = "Customer"
	RoleAgent      ParticipantRole = "Agent"
	RoleSupervisor ParticipantRole = "Supervisor"
	RoleThirdParty ParticipantRole = "ThirdParty"
	RoleUnknown    ParticipantRole = "Unknown"
)

// ConferenceRecoverySpec identifies the protected conference. It is set by the operator when the
// first event of the conference arrives and never changes.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
type ConferenceRecoverySpec struct {
	// PolicyName is the ConferenceRecoveryPolicy (same namespace) that protects the call.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PolicyName string `json:"policyName"`

	// ConferenceSID is the conference (CF…) of the original call.
	// +kubebuilder:validation:Pattern=`^CF[0-9a-f]{32}$`
	ConferenceSID string `json:"conferenceSid"`

	// TaskSID is the original voice task (WT…), when known.
	// +kubebuilder:validation:Pattern=`^WT[0-9a-f]{32}$`
	// +optional
	TaskSID string `json:"taskSid,omitempty"`

	// WorkflowSID is the workflow (WW…) the original task was routed by, when known.
	// +kubebuilder:validation:Pattern=`^WW[0-9a-f]{32}$`
	// +optional
	WorkflowSID string `json:"workflowSid,omitempty"`
}

// ParticipantStatus is one leg of the conference as observed from its status callbacks.
type ParticipantStatus struct {
	// CallSID of the leg (CA…).
	CallSID string `json:"callSid"`
	// Label of the participant, as Flex set it ("customer", "worker", …).
	// +optional
	Label string `json:"label,omitempty"`
	// Role of the participant in the call.
	Role ParticipantRole `json:"role"`
	// WorkerSID is the agent (WK…) on an agent leg, when known.
	// +optional
	WorkerSID string `json:"workerSid,omitempty"`
	// Coaching is true for a supervisor monitoring or coaching leg.
	// +optional
	Coaching bool `json:"coaching,omitempty"`
	// EndConferenceOnExit as last observed.
	// +optional
	EndConferenceOnExit bool `json:"endConferenceOnExit,omitempty"`
	// JoinedAt is when the leg joined.
	// +optional
	JoinedAt *metav1.Time `json:"joinedAt,omitempty"`
	// LeftAt is when the leg left, by Twilio's callback timestamp (whole seconds); empty while
	// connected.
	// +optional
	LeftAt *metav1.Time `json:"leftAt,omitempty"`
	// LeftSequenceNumber is the SequenceNumber of the participant-leave callback that set LeftAt.
	// It orders the leaves of different legs (Twilio numbers a conference's callbacks in the order
	// things happened), which LeftAt's whole seconds cannot: two agents often leave in the same
	// second. 0 when no callback told it (a leave the resync repaired).
	// +optional
	LeftSequenceNumber int64 `json:"leftSequenceNumber,omitempty"`
	// LeftObservedAt is when the operator received the leave (its own clock, microseconds): the
	// start of the customer's wait in the timings.
	// +optional
	LeftObservedAt *metav1.MicroTime `json:"leftObservedAt,omitempty"`
	// LeaveReason is Twilio's ReasonParticipantLeft.
	// +optional
	LeaveReason string `json:"leaveReason,omitempty"`
	// Graceful is true when the leave was announced as graceful (Flex companion mark or an API-initiated reason).
	// +optional
	Graceful bool `json:"graceful,omitempty"`
	// SequenceNumber is the highest conference callback SequenceNumber applied to this leg. The
	// leg's fields are ordered by it, per leg: a callback of one leg delivered after a later
	// callback of another leg (a retry, another replica) is still applied.
	// +optional
	SequenceNumber int64 `json:"sequenceNumber,omitempty"`
}

// DisconnectStatus records the non-graceful departure that started a recovery.
type DisconnectStatus struct {
	// WorkerSID of the agent who dropped.
	WorkerSID string `json:"workerSid"`
	// WorkerName of the agent who dropped.
	// +optional
	WorkerName string `json:"workerName,omitempty"`
	// CallSID of the agent's leg.
	CallSID string `json:"callSid"`
	// ReservationSID of the agent's reservation on the original task.
	// +optional
	ReservationSID string `json:"reservationSid,omitempty"`
	// Reason is Twilio's ReasonParticipantLeft for the leg.
	// +optional
	Reason string `json:"reason,omitempty"`
	// At is when the leg left, by Twilio's callback timestamp (whole seconds).
	At metav1.Time `json:"at"`
	// ObservedAt is when the operator received the leave (its own clock, microseconds).
	// +optional
	ObservedAt *metav1.MicroTime `json:"observedAt,omitempty"`
}

// PingOutcome is how the Recovery Ping ended.
// +kubebuilder:validation:Enum=Accepted;TimedOut;Canceled
type PingOutcome string

// Ping outcomes.
const (
	PingAccepted PingOutcome = "Accepted"
	PingTimedOut PingOutcome = "TimedOut"
	PingCanceled PingOutcome = "Canceled"
)

// PingStatus records the Recovery Ping task.
type PingStatus struct {
	// TaskSID of the ping task.
	// +optional
	TaskSID string `json:"taskSid,omitempty"`
	// CreatedAt is when the ping task was created.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// Outcome of the ping.
	// +optional
	Outcome PingOutcome `json:"outcome,omitempty"`
	// ResolvedAt is when the outcome was observed.
	// +optional
	ResolvedAt *metav1.Time `json:"resolvedAt,omitempty"`
}

// ReconnectStatus records the task that brings the customer back to an agent.
type ReconnectStatus struct {
	// Fallback is true when the customer was routed to any agent on the original workflow because the
	// disconnected agent did not answer the ping in time.
	// +optional
	Fallback bool `json:"fallback,omitempty"`
	// TargetWorkerSID is the agent the reconnect task is routed to; empty for a fallback.
	// +optional
	TargetWorkerSID string `json:"targetWorkerSid,omitempty"`
	// EnqueuedAt is when the customer's call was redirected into the queue.
	// +optional
	EnqueuedAt *metav1.Time `json:"enqueuedAt,omitempty"`
	// TaskSID of the reconnect task, once TaskRouter reports it.
	// +optional
	TaskSID string `json:"taskSid,omitempty"`
	// QueuedAt is when the reconnect task entered a queue.
	// +optional
	QueuedAt *metav1.Time `json:"queuedAt,omitempty"`
	// OriginalReservationCompletedAt is when the original reservation was completed (only after the
	// reconnect task was queued, so the agent's voice capacity is not taken by another call first).
	// +optional
	OriginalReservationCompletedAt *metav1.Time `json:"originalReservationCompletedAt,omitempty"`
	// WorkerSID of the agent who accepted the reconnect task.
	// +optional
	WorkerSID string `json:"workerSid,omitempty"`
	// AcceptedAt is when an agent accepted the reconnect task, by TaskRouter's event time.
	// +optional
	AcceptedAt *metav1.Time `json:"acceptedAt,omitempty"`
	// AcceptedObservedAt is when the operator received that acceptance (its own clock,
	// microseconds): the end of the customer's wait in the timings.
	// +optional
	AcceptedObservedAt *metav1.MicroTime `json:"acceptedObservedAt,omitempty"`
	// ConferenceSID of the new conference.
	// +optional
	ConferenceSID string `json:"conferenceSid,omitempty"`

	// CanceledAt is when TaskRouter canceled the reconnect task before an agent took it (the
	// customer hung up while queued, or the task timed out).
	// +optional
	CanceledAt *metav1.Time `json:"canceledAt,omitempty"`

	// CancelReason is TaskRouter's reason for the cancellation.
	// +optional
	CancelReason string `json:"cancelReason,omitempty"`

	// TargetRefusedAt is when the agent the reconnect task was routed to rejected its offer or let
	// it time out (TaskRouter's reservation.rejected or reservation.timeout).
	// +optional
	TargetRefusedAt *metav1.Time `json:"targetRefusedAt,omitempty"`

	// TargetRefusal is how that agent refused: rejected or timeout.
	// +optional
	TargetRefusal string `json:"targetRefusal,omitempty"`

	// ReroutedAt is when the reconnect task, routed to an agent who did not take it, was routed to
	// any agent on the original workflow instead (the fallback).
	// +optional
	ReroutedAt *metav1.Time `json:"reroutedAt,omitempty"`

	// RerouteReason says why the reconnect task was rerouted, for a person.
	// +optional
	RerouteReason string `json:"rerouteReason,omitempty"`
}

// ActionState is where one side effect stands.
// +kubebuilder:validation:Enum=Pending;Done;Failed;Skipped
type ActionState string

// Action states. Pending is written before the Twilio call; a Pending action found after a restart
// is resolved by looking the result up, never by calling again blindly.
const (
	ActionPending ActionState = "Pending"
	ActionDone    ActionState = "Done"
	ActionFailed  ActionState = "Failed"
	ActionSkipped ActionState = "Skipped"
)

// RecoveryAction is one side effect the operator took on Twilio for this call.
type RecoveryAction struct {
	// Name of the step (for example Announce, MarkOriginalTask, CreatePingTask, Enqueue, Redial/CA…).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`
	// State of the step.
	State ActionState `json:"state"`
	// SID the step produced or acted on.
	// +optional
	SID string `json:"sid,omitempty"`
	// At is when the state was last set.
	At metav1.Time `json:"at"`
	// Message explains a failure or a skip.
	// +optional
	Message string `json:"message,omitempty"`
}

// RecoveryTimings are the figures a contact-centre manager cares about. Both are measured with the
// operator's own clock, to the millisecond, from when it received the events: Twilio's callback
// timestamps have whole-second precision. When a receipt time is missing (a status written before
// receipt times were recorded) Twilio's timestamps are used instead.
type RecoveryTimings struct {
	// CustomerWithoutAgent is how long the customer waited between losing the agent (the
	// operator's receipt of the agent's leave) and an agent taking the reconnect task (its receipt
	// of the acceptance), or the end of the recovery.
	// +optional
	CustomerWithoutAgent *metav1.Duration `json:"customerWithoutAgent,omitempty"`
	// DetectionToPing is the time from the operator's receipt of the agent's leave to the ping
	// task's creation (Twilio's answer to the create).
	// +optional
	DetectionToPing *metav1.Duration `json:"detectionToPing,omitempty"`
}

// Condition types of a ConferenceRecovery.
const (
	// ConditionCustomerConnected is true while the customer's leg is in a conference or queue.
	ConditionCustomerConnected = "CustomerConnected"
	// ConditionAgentConnected is true while at least one agent leg is in the conference.
	ConditionAgentConnected = "AgentConnected"
)

// ConferenceRecoveryStatus records what was observed of the call and what the operator did.
type ConferenceRecoveryStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is where the call stands (also on the phase label).
	// +optional
	Phase RecoveryPhase `json:"phase,omitempty"`

	// Reason is a CamelCase word for why the call is in its phase (for Failed: what went wrong).
	// +optional
	Reason string `json:"reason,omitempty"`

	// Message explains the phase to a person.
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions: CustomerConnected, AgentConnected.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// CustomerCallSID is the customer's call (CA…).
	// +optional
	CustomerCallSID string `json:"customerCallSid,omitempty"`

	// LastSequenceNumber is the highest conference callback SequenceNumber applied.
	// +optional
	LastSequenceNumber int64 `json:"lastSequenceNumber,omitempty"`

	// Participants are the legs of the original conference.
	// +listType=map
	// +listMapKey=callSid
	// +optional
	Participants []ParticipantStatus `json:"participants,omitempty"`

	// ConferenceEndedAt is when the original conference ended.
	// +optional
	ConferenceEndedAt *metav1.Time `json:"conferenceEndedAt,omitempty"`

	// Disconnect records the non-graceful departure, when one happened.
	// +optional
	Disconnect *DisconnectStatus `json:"disconnect,omitempty"`

	// Ping records the Recovery Ping task.
	// +optional
	Ping *PingStatus `json:"ping,omitempty"`

	// Reconnect records the reconnect task.
	// +optional
	Reconnect *ReconnectStatus `json:"reconnect,omitempty"`

	// Actions are the side effects taken on Twilio, one per step.
	// +listType=map
	// +listMapKey=name
	// +optional
	Actions []RecoveryAction `json:"actions,omitempty"`

	// Timings are the outage figures.
	// +optional
	Timings RecoveryTimings `json:"timings,omitempty"`

	// FinishedAt is when the recovery reached a terminal phase; retention counts from here.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// ConferenceRecovery is the operator's record of one protected call: created on the first event of
// the conference, named after the conference SID in lower case, it shows what happened to the call.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=crec,categories=flex
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Task",type=string,JSONPath=`.spec.taskSid`
// +kubebuilder:printcolumn:name="Worker",type=string,JSONPath=`.status.disconnect.workerSid`
// +kubebuilder:printcolumn:name="Customer-wait",type=string,JSONPath=`.status.timings.customerWithoutAgent`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConferenceRecovery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConferenceRecoverySpec   `json:"spec"`
	Status ConferenceRecoveryStatus `json:"status,omitempty"`
}

// ConferenceRecoveryList is a list of ConferenceRecovery.
// +kubebuilder:object:root=true
type ConferenceRecoveryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConferenceRecovery `json:"items"`
}
