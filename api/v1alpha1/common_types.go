package v1alpha1

// Keys read from the credentials Secret named by TwilioSpec.CredentialsSecretRef.
const (
	// SecretKeyAccountSID holds the account SID (AC…). Required.
	SecretKeyAccountSID = "accountSid"
	// SecretKeyAuthToken holds the account's auth token. Required: it checks every webhook signature,
	// and it authenticates REST calls when no API key is given.
	SecretKeyAuthToken = "authToken"
	// SecretKeyAPIKeySID holds an optional API key SID (SK…) used for REST calls instead of the auth token.
	SecretKeyAPIKeySID = "apiKeySid"
	// SecretKeyAPIKeySecret holds the secret of the API key; required when apiKeySid is set.
	SecretKeyAPIKeySecret = "apiKeySecret"
)

// Condition types shared by the kinds of this package.
const (
	// ConditionReady is true when the object is fully set up and doing its job.
	ConditionReady = "Ready"
	// ConditionCredentialsResolved is true when the credentials Secret has been read and holds the keys needed.
	ConditionCredentialsResolved = "CredentialsResolved"
	// ConditionEventStreamReady is true when the policy's Event Streams sink is active and subscribed
	// to the events it needs (or, not managed, when the operator leaves that to the user).
	ConditionEventStreamReady = "EventStreamReady"
)

// Condition reasons shared by the kinds of this package.
const (
	// ReasonSecretNotFound means the credentials Secret does not exist in the policy's namespace.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyMissing means the credentials Secret lacks a required key; the message names it.
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonSecretInvalid means a key holds a value Twilio would never accept (for example a malformed SID).
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonCredentialsResolved means the credentials were read successfully.
	ReasonCredentialsResolved = "CredentialsResolved"
	// ReasonReconciled means everything the policy asks for is in place.
	ReasonReconciled = "Reconciled"
)

// SecretReference names a Secret in the same namespace as the object that refers to it.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// TwilioSpec says which Twilio account and TaskRouter workspace an object works on.
type TwilioSpec struct {
	// CredentialsSecretRef names a Secret in the same namespace with the keys accountSid and
	// authToken, and optionally apiKeySid and apiKeySecret (used for REST calls when present; the
	// auth token is still needed to check webhook signatures).
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// WorkspaceSID is the TaskRouter workspace (WS…) of the Flex contact centre.
	// +required
	// +kubebuilder:validation:Pattern=`^WS[0-9a-f]{32}$`
	WorkspaceSID string `json:"workspaceSid"`
}

// EventStreamSpec says how TaskRouter events reach the operator; both policy kinds use it, with
// one meaning. Each policy has its own sink (see the controllers' eventstream.go for why), pointing
// at its own webhook path.
type EventStreamSpec struct {
	// Managed makes the operator create (or adopt, when one already delivers to the policy's
	// webhook path) an Event Streams webhook sink and a subscription to the event types the policy
	// needs, and delete what it created when the policy is deleted. Turned off, a sink and
	// subscription the operator created are deleted (so events are not delivered twice beside the
	// user's own sink), and the events must reach the policy's webhook path some other way: the
	// EventStreamReady condition names the path and the event types.
	// +kubebuilder:default=true
	// +optional
	Managed *bool `json:"managed,omitempty"`

	// BatchEvents asks Event Streams to deliver events in batches (every event of a batch is handled).
	// +kubebuilder:default=true
	// +optional
	BatchEvents *bool `json:"batchEvents,omitempty"`
}

// TwilioPolicy is implemented by the kinds that name a Twilio account through a TwilioSpec.
// +kubebuilder:object:generate=false
type TwilioPolicy interface {
	// GetTwilio returns the object's Twilio block.
	GetTwilio() TwilioSpec
}

// GetTwilio returns the policy's Twilio block.
func (p *WorkerActivityPolicy) GetTwilio() TwilioSpec { return p.Spec.Twilio }

// GetTwilio returns the policy's Twilio block.
func (p *ConferenceRecoveryPolicy) GetTwilio() TwilioSpec { return p.Spec.Twilio }
