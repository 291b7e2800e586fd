package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PingSpec configures the "Recovery Ping" task offered to the agent who dropped out of a call.
type PingSpec struct {
	// TTL is how long the ping task waits for the disconnected agent before the customer is routed to
	// anyone on the original workflow. Whole seconds, 5s to 10m.
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('10m')",message="ttl must be between 5s and 10m"
	// +kubebuilder:validation:XValidation:rule="duration(self).getMilliseconds() % 1000 == 0",message="ttl must be a whole number of seconds"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// Priority of the ping task (0 to 2147483647).
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	// +optional
	Priority int64 `json:"priority,omitempty"`

	// QueueName is the friendly name of the TaskQueue that holds ping tasks.
	// +kubebuilder:default="Recovery Ping"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	QueueName string `json:"queueName,omitempty"`

	// WorkflowName is the friendly name of the Workflow that routes ping tasks to the disconnected agent.
	// +kubebuilder:default="Recovery Ping"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	WorkflowName string `json:"workflowName,omitempty"`

	// TaskChannel is the task channel unique name of ping tasks.
	// +kubebuilder:default="default"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_.]{1,64}$`
	// +optional
	TaskChannel string `json:"taskChannel,omitempty"`
}

// ReconnectSpec configures the task that brings the customer back to an agent.
type ReconnectSpec struct {
	// Priority of the reconnect task, above ordinary calls so it is reserved first (0 to 2147483647).
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2147483647
	// +optional
	Priority int64 `json:"priority,omitempty"`

	// Timeout bounds how long a recovery may wait for any agent to take the reconnect task before it
	// is marked Failed (the customer, by then routed to any agent, stays queued on the original
	// workflow). 1m to 24h.
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="timeout must be between 1m and 24h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// TargetTimeout bounds how long the reconnect task routed back to the agent who answered the
	// ping waits for that agent. When it runs out, or the agent rejects the offer or lets it time
	// out, the customer is routed to any agent on the original workflow at this priority (the
	// fallback), and the recovery says so. Whole seconds, 5s to 1h; empty means the ping's TTL.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('1h')",message="targetTimeout must be between 5s and 1h"
	// +kubebuilder:validation:XValidation:rule="duration(self).getMilliseconds() % 1000 == 0",message="targetTimeout must be a whole number of seconds"
	// +optional
	TargetTimeout *metav1.Duration `json:"targetTimeout,omitempty"`

	// QueueName is the friendly name of the TaskQueue the "Direct to an Agent" filter routes the
	// reconnect task through (Flex's "Everyone"). It must hold every agent a call can be handed back
	// to; when it does not exist and TaskRouter objects are managed, it is created with target 1==1.
	// +kubebuilder:default="Everyone"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	QueueName string `json:"queueName,omitempty"`
}

// CustomerExperience is what the customer hears while their agent is being reconnected.
// +kubebuilder:validation:XValidation:rule="!(has(self.announcementUrl) && has(self.announcementText))",message="set announcementUrl or announcementText, not both"
type CustomerExperience struct {
	// AnnouncementURL is played to the conference when the agent drops (an audio file or TwiML URL).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	// +optional
	AnnouncementURL string `json:"announcementUrl,omitempty"`

	// AnnouncementText is said to the conference when the agent drops, instead of a URL.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1000
	// +optional
	AnnouncementText string `json:"announcementText,omitempty"`

	// HoldMusicURL is played to the customer after the announcement while waiting for an agent.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	// +optional
	HoldMusicURL string `json:"holdMusicUrl,omitempty"`
}

// ReportingSpec says how recovered calls are marked for Flex Insights.
type ReportingSpec struct {
	// FollowedBy is written to the original task's conversations.followed_by attribute.
	// +kubebuilder:default="Reconnect Agent"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	FollowedBy string `json:"followedBy,omitempty"`
}

// ManagementSpec says which TaskRouter objects the operator creates and keeps for the policy. The
// Event Streams sink is spec.eventStream.managed, shared with WorkerActivityPolicy.
type ManagementSpec struct {
	// TaskRouter makes the operator ensure the Recovery Ping queue and workflow and prepend the
	// "Direct to an Agent" filter to each protected workflow. When false the operator only looks
	// them up by name and reports what is missing; objects it created earlier are handed over as
	// they are.
	// +kubebuilder:default=true
	// +optional
	TaskRouter *bool `json:"taskRouter,omitempty"`
}

// ConferenceRecoveryPolicySpec is what the user asks of conference recovery.
type ConferenceRecoveryPolicySpec struct {
	// Twilio names the account and workspace.
	// +required
	Twilio TwilioSpec `json:"twilio"`

	// ProtectedWorkflowSIDs are the voice workflows (WW…) whose calls are recovered.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:Pattern=`^WW[0-9a-f]{32}$`
	ProtectedWorkflowSIDs []string `json:"protectedWorkflowSids"`

	// Ping configures the Recovery Ping task.
	// +kubebuilder:default={}
	// +optional
	Ping PingSpec `json:"ping"`

	// Reconnect configures the task that reconnects the customer.
	// +kubebuilder:default={}
	// +optional
	Reconnect ReconnectSpec `json:"reconnect"`

	// Customer is what the customer hears while waiting.
	// +optional
	Customer CustomerExperience `json:"customer,omitempty"`

	// Reporting configures the attributes written for reporting.
	// +kubebuilder:default={}
	// +optional
	Reporting ReportingSpec `json:"reporting"`

	// PublicBaseURL is the base URL at which Twilio reaches the operator's webhook server (for example
	// https://flex-operator.example.com). It overrides the manager's --webhook-public-url. Signatures are
	// checked against it, so it must be exactly what Twilio calls.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#\s]+(/[^?#\s]*)?$`
	// +optional
	PublicBaseURL string `json:"publicBaseUrl,omitempty"`

	// Management says which TaskRouter objects the operator manages.
	// +kubebuilder:default={}
	// +optional
	Management ManagementSpec `json:"management"`

	// EventStream says whether the operator manages the policy's Event Streams sink and how it
	// delivers.
	// +kubebuilder:default={}
	// +optional
	EventStream EventStreamSpec `json:"eventStream"`

	// Retention is how long finished ConferenceRecovery objects are kept. 1m to 720h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="retention must be between 1m and 720h"
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`
}

// Condition types of a ConferenceRecoveryPolicy, besides Ready and CredentialsResolved.
const (
	// ConditionTaskRouterConfigured is true when the ping queue and workflow exist and every protected
	// workflow starts with the "Direct to an Agent" filter.
	ConditionTaskRouterConfigured = "TaskRouterConfigured"
)

// ProtectedWorkflowStatus reports one protected workflow.
type ProtectedWorkflowStatus struct {
	// SID of the workflow.
	SID string `json:"sid"`
	// Name is the workflow's friendly name.
	// +optional
	Name string `json:"name,omitempty"`
	// FilterInstalled is true when the "Direct to an Agent" filter is the workflow's first filter.
	// +optional
	FilterInstalled bool `json:"filterInstalled,omitempty"`
	// FilterAdded is true when the operator added the filter (and removes it when the workflow
	// stops being protected or the policy is deleted); false when the workflow already had it.
	// +optional
	FilterAdded bool `json:"filterAdded,omitempty"`
}

// RecoveryCounts counts ConferenceRecovery objects of the policy by outcome.
type RecoveryCounts struct {
	InProgress int32 `json:"inProgress,omitempty"`
	Recovered  int32 `json:"recovered,omitempty"`
	Abandoned  int32 `json:"abandoned,omitempty"`
	Failed     int32 `json:"failed,omitempty"`
	Ended      int32 `json:"ended,omitempty"`
}

// ConferenceRecoveryPolicyStatus reports what the policy set up and how recoveries went.
type ConferenceRecoveryPolicyStatus struct {
	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, CredentialsResolved, TaskRouterConfigured, EventStreamReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// PingQueueSID is the Recovery Ping TaskQueue (WQ…).
	// +optional
	PingQueueSID string `json:"pingQueueSid,omitempty"`

	// PingWorkflowSID is the Recovery Ping Workflow (WW…).
	// +optional
	PingWorkflowSID string `json:"pingWorkflowSid,omitempty"`

	// ReconnectQueueSID is the TaskQueue the "Direct to an Agent" filter targets (WQ…).
	// +optional
	ReconnectQueueSID string `json:"reconnectQueueSid,omitempty"`

	// ProtectedWorkflows reports each protected workflow.
	// +listType=map
	// +listMapKey=sid
	// +optional
	ProtectedWorkflows []ProtectedWorkflowStatus `json:"protectedWorkflows,omitempty"`

	// SinkSID is the Event Streams sink (DG…).
	// +optional
	SinkSID string `json:"sinkSid,omitempty"`

	// SubscriptionSID is the Event Streams subscription (DF…).
	// +optional
	SubscriptionSID string `json:"subscriptionSid,omitempty"`

	// WebhookURL is the Event Streams sink's destination for this policy,
	// {base}/twilio/{namespace}/{policy}/events; conference callbacks go to the sibling path
	// .../conference.
	// +optional
	WebhookURL string `json:"webhookUrl,omitempty"`

	// CreatedSIDs are the Twilio objects the operator created for this policy (queues, workflow,
	// sink, subscription). They are deleted with the policy; objects it found and adopted are not
	// listed and are kept.
	// +listType=set
	// +optional
	CreatedSIDs []string `json:"createdSids,omitempty"`

	// Recoveries counts this policy's ConferenceRecovery objects by outcome.
	// +optional
	Recoveries RecoveryCounts `json:"recoveries,omitempty"`
}

// ConferenceRecoveryPolicy protects the calls of some voice workflows against a non-graceful agent
// disconnect (page refresh, browser crash, network loss) and sets up the Twilio objects recovery needs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=crp,categories=flex
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Workflows",type=string,JSONPath=`.spec.protectedWorkflowSids`,priority=1
// +kubebuilder:printcolumn:name="Recovered",type=integer,JSONPath=`.status.recoveries.recovered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.recoveries.failed`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConferenceRecoveryPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConferenceRecoveryPolicySpec   `json:"spec"`
	Status ConferenceRecoveryPolicyStatus `json:"status,omitempty"`
}

// ConferenceRecoveryPolicyList is a list of ConferenceRecoveryPolicy.
// +kubebuilder:object:root=true
type ConferenceRecoveryPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConferenceRecoveryPolicy `json:"items"`
}
