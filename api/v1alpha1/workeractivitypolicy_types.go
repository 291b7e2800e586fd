package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ActivityNames are the TaskRouter Activity friendly names the policy moves agents between. They
// default to the names the original Flex activity-reservation-handler ships with. Names are compared
// case-insensitively, as Flex does, so they must differ by more than case.
// +kubebuilder:validation:XValidation:rule="[self.available, self.onATask, self.onATaskNoAcd, self.wrapup, self.wrapupNoAcd, self.extendedWrapup].all(n, [self.available, self.onATask, self.onATaskNoAcd, self.wrapup, self.wrapupNoAcd, self.extendedWrapup].filter(m, m.lowerAscii() == n.lowerAscii()).size() == 1)",message="the six activity names must be distinct (compared without case)"
type ActivityNames struct {
	// Available is where an agent with no work and nothing pending is put back (an available activity).
	// +kubebuilder:default="Available"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Available string `json:"available,omitempty"`

	// OnATask is used while the agent holds an accepted task and was available (an available activity).
	// +kubebuilder:default="On a Task"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	OnATask string `json:"onATask,omitempty"`

	// OnATaskNoAcd is used while the agent holds an accepted task and asked not to get more (unavailable).
	// +kubebuilder:default="On a Task, No ACD"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	OnATaskNoAcd string `json:"onATaskNoAcd,omitempty"`

	// Wrapup is used while the agent wraps up a task and was available (an available activity).
	// +kubebuilder:default="Wrap Up"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Wrapup string `json:"wrapup,omitempty"`

	// WrapupNoAcd is used while the agent wraps up and asked not to get more work (unavailable).
	// +kubebuilder:default="Wrap Up, No ACD"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	WrapupNoAcd string `json:"wrapupNoAcd,omitempty"`

	// ExtendedWrapup is used while a wrap-up the agent extended is in progress (unavailable).
	// +kubebuilder:default="Extended Wrap Up"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	ExtendedWrapup string `json:"extendedWrapup,omitempty"`
}

// EnforcementMode says whether the policy changes activities or only reports.
// +kubebuilder:validation:Enum=Enforce;Observe
type EnforcementMode string

const (
	// ModeEnforce changes worker activities.
	ModeEnforce EnforcementMode = "Enforce"
	// ModeObserve only counts and reports what Enforce would have done.
	ModeObserve EnforcementMode = "Observe"
)

// BusyChangePolicy says what happens when an agent or supervisor picks a non-system activity while
// the agent still holds tasks.
// +kubebuilder:validation:Enum=Defer;Allow
type BusyChangePolicy string

const (
	// BusyChangeDefer keeps the system activity and applies the requested one when the tasks are done
	// (the original Flex customisation's behaviour).
	BusyChangeDefer BusyChangePolicy = "Defer"
	// BusyChangeAllow lets the requested activity stand.
	BusyChangeAllow BusyChangePolicy = "Allow"
)

// WorkerActivityPolicySpec is what the user asks of worker activity sync.
type WorkerActivityPolicySpec struct {
	// Twilio names the account and workspace.
	// +required
	Twilio TwilioSpec `json:"twilio"`

	// Activities are the activity names to use.
	// +kubebuilder:default={available:"Available",onATask:"On a Task",onATaskNoAcd:"On a Task, No ACD",wrapup:"Wrap Up",wrapupNoAcd:"Wrap Up, No ACD",extendedWrapup:"Extended Wrap Up"}
	// +optional
	Activities ActivityNames `json:"activities"`

	// CreateMissingActivities creates any named activity that does not exist, with the right
	// availability: On a Task and Wrap Up available; the No ACD variants and Extended Wrap Up not.
	// +kubebuilder:default=false
	// +optional
	CreateMissingActivities bool `json:"createMissingActivities"`

	// Workers is a TaskRouter expression over worker attributes selecting the agents governed,
	// which may also read TaskRouter's built-in sid and friendly_name. It may not read
	// activity_sid or activity_name: the operator changes a worker's activity itself, so selecting
	// by it would move the worker in and out of the policy with each change.
	// +kubebuilder:default="1==1"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule=`!self.matches('(^|[^A-Za-z0-9_.\'"])activity_(sid|name)([^A-Za-z0-9_]|$)')`,message="workers may not read activity_sid or activity_name: the operator changes a worker's activity itself, so selecting by it would move workers in and out of the policy with each change; select by attributes, sid or friendly_name"
	// +optional
	Workers string `json:"workers,omitempty"`

	// Channels are the task channel unique names whose reservations count; empty means all.
	// +listType=set
	// +kubebuilder:validation:MaxItems=15
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9_.]{1,64}$`
	// +optional
	Channels []string `json:"channels,omitempty"`

	// Mode is Enforce (change activities) or Observe (report only).
	// +kubebuilder:default=Enforce
	// +optional
	Mode EnforcementMode `json:"mode,omitempty"`

	// ActivityChangeWhileBusy is Defer (hold a requested activity until the tasks are done) or Allow.
	// +kubebuilder:default=Defer
	// +optional
	ActivityChangeWhileBusy BusyChangePolicy `json:"activityChangeWhileBusy,omitempty"`

	// PendingActivityAttribute is the worker attribute that holds a deferred activity, so Flex can show
	// it and it survives restarts of the operator.
	// +kubebuilder:default="pendingActivity"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`
	// +optional
	PendingActivityAttribute string `json:"pendingActivityAttribute,omitempty"`

	// ExtendedWrapupAttribute is the task attribute that, set to true (by the Flex companion's
	// "Extend wrap-up" action or any other tool), makes a wrapping task count as Extended Wrap Up.
	// +kubebuilder:default="extendedWrapup"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`
	// +optional
	ExtendedWrapupAttribute string `json:"extendedWrapupAttribute,omitempty"`

	// PublicBaseURL is the base URL at which Twilio reaches the operator's webhook server (for example
	// https://flex-operator.example.com). It overrides the manager's --webhook-public-url. The sink
	// delivers to {publicBaseUrl}/twilio/{namespace}/activity/{policy}/events and signatures are
	// checked against it, so it must be exactly what Twilio calls.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#\s]+(/[^?#\s]*)?$`
	// +optional
	PublicBaseURL string `json:"publicBaseUrl,omitempty"`

	// EventStream says whether the operator manages the policy's Event Streams sink and how it
	// delivers.
	// +kubebuilder:default={}
	// +optional
	EventStream EventStreamSpec `json:"eventStream"`
}

// ResolvedActivities are the SIDs (WA…) the activity names resolved to. The activity engine reads
// them, and runs a policy only while ActivitiesResolved is True.
type ResolvedActivities struct {
	Available      string `json:"available,omitempty"`
	OnATask        string `json:"onATask,omitempty"`
	OnATaskNoAcd   string `json:"onATaskNoAcd,omitempty"`
	Wrapup         string `json:"wrapup,omitempty"`
	WrapupNoAcd    string `json:"wrapupNoAcd,omitempty"`
	ExtendedWrapup string `json:"extendedWrapup,omitempty"`
}

// Condition types of a WorkerActivityPolicy, besides Ready, CredentialsResolved and EventStreamReady.
const (
	// ConditionActivitiesResolved is true when every named activity exists with the right availability.
	ConditionActivitiesResolved = "ActivitiesResolved"
	// ConditionEventsFlowing is true when TaskRouter events for the policy's workers reach the
	// activity engine; Unknown while the engine has not taken the policy or no event came yet.
	ConditionEventsFlowing = "EventsFlowing"
	// ConditionMultitaskingEnabled is false when the workspace is not multi-tasking: TaskRouter then
	// moves workers to the workflow's and queues' reservation and assignment activities itself, and
	// the policy would fight it.
	ConditionMultitaskingEnabled = "MultitaskingEnabled"
	// ConditionWorkersOverlap is true when some workers this policy selects are governed by an older
	// policy of the same workspace (the older policy wins).
	ConditionWorkersOverlap = "WorkersOverlap"
)

// WorkerActivityPolicyStatus reports what the policy is doing. The counters come from the activity
// engine and are written as aggregates every few seconds, never once per event.
type WorkerActivityPolicyStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, CredentialsResolved, ActivitiesResolved, EventStreamReady, EventsFlowing,
	// MultitaskingEnabled, WorkersOverlap.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Activities are the resolved activity SIDs.
	// +optional
	Activities ResolvedActivities `json:"activities,omitempty"`

	// WorkersGoverned counts the workers this policy governs: selected by spec.workers and not
	// governed by an older policy of the workspace.
	// +optional
	WorkersGoverned int32 `json:"workersGoverned"`

	// Busy counts governed workers holding a reservation on the policy's channels.
	// +optional
	Busy int32 `json:"busy"`

	// PendingChanges counts governed workers holding a deferred activity.
	// +optional
	PendingChanges int32 `json:"pendingChanges"`

	// Enforcements counts activity changes the operator made (or, in Observe mode, would have made)
	// since the engine took the policy.
	// +optional
	Enforcements int64 `json:"enforcements"`

	// Conflicts counts worker updates refused because the worker changed meanwhile (HTTP 412); each
	// is re-read and decided again.
	// +optional
	Conflicts int64 `json:"conflicts"`

	// Failures counts worker updates that failed for another reason (see the EnforcementFailed events).
	// +optional
	Failures int64 `json:"failures"`

	// LastEventTime is when the last TaskRouter event for a governed worker was received.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`

	// SinkSID is the Event Streams sink (DG…) delivering to this policy.
	// +optional
	SinkSID string `json:"sinkSid,omitempty"`

	// SubscriptionSID is the Event Streams subscription (DF…) of the sink to the policy's events.
	// +optional
	SubscriptionSID string `json:"subscriptionSid,omitempty"`

	// WebhookURL is where the policy's events must be delivered,
	// {base}/twilio/{namespace}/activity/{policy}/events.
	// +optional
	WebhookURL string `json:"webhookUrl,omitempty"`

	// CreatedSIDs are the Twilio objects the operator created for this policy (activities, sink,
	// subscription). They are deleted with the policy; objects it found and adopted are not listed
	// and are kept.
	// +listType=set
	// +optional
	CreatedSIDs []string `json:"createdSids,omitempty"`
}

// WorkerActivityPolicy keeps each governed agent's TaskRouter Activity in step with the work they
// hold, and holds an activity the agent or a supervisor asked for until their tasks are done.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wap,categories=flex
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.twilio.workspaceSid`,priority=1
// +kubebuilder:printcolumn:name="Workers",type=integer,JSONPath=`.status.workersGoverned`
// +kubebuilder:printcolumn:name="Busy",type=integer,JSONPath=`.status.busy`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pendingChanges`
// +kubebuilder:printcolumn:name="Enforced",type=integer,JSONPath=`.status.enforcements`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerActivityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkerActivityPolicySpec   `json:"spec"`
	Status WorkerActivityPolicyStatus `json:"status,omitempty"`
}

// WorkerActivityPolicyList is a list of WorkerActivityPolicy.
// +kubebuilder:object:root=true
type WorkerActivityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkerActivityPolicy `json:"items"`
}
