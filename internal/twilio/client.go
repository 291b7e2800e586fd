// Package twilio is the operator's only door to Twilio. It wraps
// github.com/twilio/twilio-go behind a narrow, contact-centre-shaped interface
// and puts one outbound discipline beneath it: host rewrite (for the
// simulator), a token bucket per account, retries that honour Retry-After and
// never repeat a create whose outcome is unknown, and request metrics.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Config says how to reach one Twilio account.
type Config struct {
	// AccountSID (AC…) is always required: it is in every Api v2010 path and
	// keys the shared rate limiter.
	AccountSID string
	// AuthToken authenticates REST calls unless an API key is given. It is
	// also what the Flex token check and webhook signatures use.
	AuthToken string
	// APIKeySID (SK…) and APIKeySecret, when set, authenticate REST calls
	// instead of the auth token.
	APIKeySID    string
	APIKeySecret string
	// BaseURL, when set, sends every request for a *.twilio.com host to
	// {BaseURL}{original path} with the header X-Twilio-Host naming the
	// original host. It is how the operator reaches the simulator.
	BaseURL string

	// Rate is the sustained requests per second of every budget (token
	// bucket with its priority queue) whose class Limits leaves at zero. A
	// budget is shared by every Client of the account in the process: one per
	// TaskRouter workspace, one for Voice, one for the rest. Zero means each
	// class's default (DefaultTaskRouterRate…); negative means no limit.
	Rate float64
	// Burst is the bucket size of every budget whose class Limits leaves at
	// zero. Zero means twice the rate.
	Burst int
	// Limits sets each resource class's budget apart (see Limits).
	Limits Limits
	// MaxRetries is how many times a retryable request is repeated after the
	// first attempt. Zero means DefaultMaxRetries; negative disables retries.
	MaxRetries int
	// MinBackoff is the first backoff step. Zero means DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps one backoff step (and a server's Retry-After). Zero
	// means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Timeout bounds one HTTP attempt. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Defaults applied to zero Config fields.
const (
	// DefaultRate is the TaskRouter budget's default rate per workspace,
	// kept under the name callers know.
	DefaultRate = DefaultTaskRouterRate
	// DefaultMaxRetries keeps the worst case of one call within a few seconds.
	DefaultMaxRetries = 4
	// DefaultMinBackoff is the first backoff step.
	DefaultMinBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff caps one backoff step.
	DefaultMaxBackoff = 5 * time.Second
	// DefaultTimeout matches twilio-go's own default per request.
	DefaultTimeout = 10 * time.Second
)

// Option adjusts how New builds a Client; mostly for tests.
type Option func(*options)

// Client is everything the operator asks of Twilio. Every method takes a
// context first; cancelling it stops rate-limit waits, backoff sleeps and the
// HTTP request. Lookups that find nothing return an error for which
// errors.Is(err, ErrNotFound) holds. A create that fails with a 5xx or a
// connection error is not retried and its error matches ErrOutcomeUnknown:
// the caller must look the object up before creating it again.
type Client interface {
	// AccountSID is the account this client talks to.
	AccountSID() string

	// FetchWorkspace reads the workspace (its multitasking flag and default
	// activities).
	FetchWorkspace(ctx context.Context, workspaceSID string) (Workspace, error)
	// ListActivities returns every activity of the workspace.
	ListActivities(ctx context.Context, workspaceSID string) ([]Activity, error)
	// FetchActivity reads one activity (one the caller met by SID before
	// knowing it, e.g. created after the caller listed the workspace's).
	FetchActivity(ctx context.Context, workspaceSID, activitySID string) (Activity, error)
	// CreateActivity creates an activity; available says whether workers in
	// it can take tasks.
	CreateActivity(ctx context.Context, workspaceSID, friendlyName string, available bool) (Activity, error)
	// DeleteActivity deletes an activity; one already gone is not an error.
	// Twilio refuses (a terminal error) while workers are in it or it is the
	// workspace's default or timeout activity.
	DeleteActivity(ctx context.Context, workspaceSID, activitySID string) error
	// FetchWorker reads one worker; Worker.Version is its ETag.
	FetchWorker(ctx context.Context, workspaceSID, workerSID string) (Worker, error)
	// ListWorkers returns the workers matching f (all pages).
	ListWorkers(ctx context.Context, workspaceSID string, f WorkerFilter) ([]Worker, error)
	// UpdateWorker changes a worker. With u.IfMatch set the update only
	// applies at that version; otherwise IsVersionConflict(err) is true.
	UpdateWorker(ctx context.Context, workspaceSID, workerSID string, u WorkerUpdate) (Worker, error)
	// ListTaskChannels returns every task channel of the workspace.
	ListTaskChannels(ctx context.Context, workspaceSID string) ([]TaskChannel, error)
	// CreateTask creates a task (a create: see ErrOutcomeUnknown).
	CreateTask(ctx context.Context, workspaceSID string, t TaskCreate) (Task, error)
	// FetchTask reads one task; Task.Version is its ETag.
	FetchTask(ctx context.Context, workspaceSID, taskSID string) (Task, error)
	// ListTasks returns the tasks matching f (all pages).
	ListTasks(ctx context.Context, workspaceSID string, f TaskFilter) ([]Task, error)
	// UpdateTask changes a task, honouring u.IfMatch like UpdateWorker.
	UpdateTask(ctx context.Context, workspaceSID, taskSID string, u TaskUpdate) (Task, error)
	// ListReservations lists reservations of one task (f.TaskSID) or of one
	// worker (f.WorkerSID), optionally by status. One of the two SIDs is
	// required; TaskSID wins when both are set.
	ListReservations(ctx context.Context, workspaceSID string, f ReservationFilter) ([]Reservation, error)
	// FetchReservation reads one reservation of a task.
	FetchReservation(ctx context.Context, workspaceSID, taskSID, reservationSID string) (Reservation, error)
	// UpdateReservation changes a reservation of a task (accept, complete,
	// conference instruction…), honouring u.IfMatch.
	UpdateReservation(ctx context.Context, workspaceSID, taskSID, reservationSID string, u ReservationUpdate) (Reservation, error)
	// FindTaskQueue returns the queue with exactly this friendly name, or
	// ErrNotFound when there is none.
	FindTaskQueue(ctx context.Context, workspaceSID, friendlyName string) (TaskQueue, error)
	// CreateTaskQueue creates a queue (a create: see ErrOutcomeUnknown).
	CreateTaskQueue(ctx context.Context, workspaceSID string, q TaskQueueCreate) (TaskQueue, error)
	// FindWorkflow returns the workflow with exactly this friendly name, or
	// ErrNotFound when there is none.
	FindWorkflow(ctx context.Context, workspaceSID, friendlyName string) (Workflow, error)
	// FetchWorkflow reads one workflow, configuration included.
	FetchWorkflow(ctx context.Context, workspaceSID, workflowSID string) (Workflow, error)
	// CreateWorkflow creates a workflow (a create: see ErrOutcomeUnknown).
	CreateWorkflow(ctx context.Context, workspaceSID string, w WorkflowCreate) (Workflow, error)
	// UpdateWorkflowConfiguration replaces a workflow's configuration JSON
	// as given, byte for byte.
	UpdateWorkflowConfiguration(ctx context.Context, workspaceSID, workflowSID, configuration string) (Workflow, error)
	// DeleteWorkflow deletes a workflow; one already gone is not an error.
	// Twilio refuses (a terminal error) while the workflow still routes tasks.
	DeleteWorkflow(ctx context.Context, workspaceSID, workflowSID string) error
	// DeleteTaskQueue deletes a queue; one already gone is not an error.
	// Twilio refuses (a terminal error) while a workflow targets the queue or
	// the queue holds tasks.
	DeleteTaskQueue(ctx context.Context, workspaceSID, taskQueueSID string) error

	// FetchCall reads one call.
	FetchCall(ctx context.Context, callSID string) (Call, error)
	// ListCalls returns the account's calls in the given status (queued,
	// ringing, in-progress, completed…; empty means any), all pages.
	ListCalls(ctx context.Context, status string) ([]Call, error)
	// RedirectCall replaces the call's current TwiML with twiml.
	RedirectCall(ctx context.Context, callSID, twiml string) (Call, error)
	// FetchConference reads one conference.
	FetchConference(ctx context.Context, conferenceSID string) (Conference, error)
	// ListConferences returns the account's conferences in the given status
	// (init, in-progress or completed; empty means any), all pages.
	ListConferences(ctx context.Context, status string) ([]Conference, error)
	// AnnounceConference plays announceURL to every participant.
	AnnounceConference(ctx context.Context, conferenceSID, announceURL string) error
	// EndConference ends the conference (status completed).
	EndConference(ctx context.Context, conferenceSID string) error
	// ListParticipants returns the participants still connected.
	ListParticipants(ctx context.Context, conferenceSID string) ([]Participant, error)
	// UpdateParticipant changes a participant found by call SID or label
	// (labels are percent-encoded here).
	UpdateParticipant(ctx context.Context, conferenceSID, callSIDOrLabel string, u ParticipantUpdate) (Participant, error)
	// CreateParticipant dials a new party into the conference (a create:
	// see ErrOutcomeUnknown).
	CreateParticipant(ctx context.Context, conferenceSID string, p ParticipantCreate) (Participant, error)

	// CreateSink creates a webhook Event Streams sink (a create: see
	// ErrOutcomeUnknown).
	CreateSink(ctx context.Context, s SinkCreate) (Sink, error)
	// ListSinks returns every sink of the account.
	ListSinks(ctx context.Context) ([]Sink, error)
	// DeleteSink deletes a sink; a sink already gone is not an error.
	DeleteSink(ctx context.Context, sinkSID string) error
	// TestSink asks Twilio to send a test event to the sink and returns the
	// test ID the sink receives.
	TestSink(ctx context.Context, sinkSID string) (testID string, err error)
	// ValidateSink confirms the test event with testID arrived, which moves
	// the sink to active.
	ValidateSink(ctx context.Context, sinkSID, testID string) error
	// CreateSubscription subscribes the sink to the given event types at
	// schema version 1 (a create: see ErrOutcomeUnknown).
	CreateSubscription(ctx context.Context, s SubscriptionCreate) (Subscription, error)
	// ListSubscriptions returns the subscriptions of one sink (all sinks
	// when sinkSID is empty) with their subscribed event types.
	ListSubscriptions(ctx context.Context, sinkSID string) ([]Subscription, error)
	// DeleteSubscription deletes a subscription; one already gone is not an
	// error.
	DeleteSubscription(ctx context.Context, subscriptionSID string) error
	// AddSubscribedEvent adds an event type, at schema version 1, to an
	// existing subscription (adding one already there is not an error).
	AddSubscribedEvent(ctx context.Context, subscriptionSID, eventType string) error

	// ValidateFlexToken asks Twilio whether a Flex user token is valid. A
	// token Twilio rejects gives FlexIdentity{Valid: false, Message: why}
	// and a nil error; an error means the question could not be answered.
	ValidateFlexToken(ctx context.Context, token string) (FlexIdentity, error)
}

// Workspace is a TaskRouter workspace.
type Workspace struct {
	SID          string
	FriendlyName string
	// MultiTaskEnabled says whether workers may hold several tasks at once.
	// Without it TaskRouter itself moves a worker to the workflow's or
	// queue's reservation and assignment activities.
	MultiTaskEnabled   bool
	DefaultActivitySID string
	TimeoutActivitySID string
}

// Activity is a TaskRouter activity (Available, On a Task, Wrap Up…).
type Activity struct {
	SID          string
	FriendlyName string
	// Available says whether a worker in this activity can take tasks.
	Available bool
}

// Worker is a TaskRouter worker (an agent).
type Worker struct {
	SID          string
	FriendlyName string
	ActivitySID  string
	ActivityName string
	Available    bool
	// Attributes is the worker's attributes JSON, as Twilio stores it.
	Attributes        string
	DateStatusChanged time.Time
	DateUpdated       time.Time
	// Version is the ETag of the worker as read; pass it as IfMatch.
	Version string
}

// WorkerFilter narrows ListWorkers; empty fields do not filter.
type WorkerFilter struct {
	ActivitySID             string
	ActivityName            string
	Available               *bool
	FriendlyName            string
	TargetWorkersExpression string
	TaskQueueSID            string
}

// WorkerUpdate is a change to a worker; nil fields are left alone.
type WorkerUpdate struct {
	ActivitySID  *string
	Attributes   *string
	FriendlyName *string
	// RejectPendingReservations is only valid with an unavailable activity.
	RejectPendingReservations *bool
	// IfMatch, when set, is sent as If-Match: the update fails with 412 if
	// the worker changed since that version was read.
	IfMatch string
}

// TaskChannel is a TaskRouter task channel (voice, chat, default…).
type TaskChannel struct {
	SID          string
	UniqueName   string
	FriendlyName string
}

// Task is a TaskRouter task.
type Task struct {
	SID string
	// Attributes is the task's attributes JSON, as Twilio stores it.
	Attributes            string
	AssignmentStatus      string
	Priority              int
	Reason                string
	Timeout               int
	Age                   int
	TaskQueueSID          string
	TaskQueueFriendlyName string
	TaskChannelSID        string
	TaskChannelUniqueName string
	WorkflowSID           string
	WorkflowFriendlyName  string
	DateCreated           time.Time
	DateUpdated           time.Time
	// Version is the ETag of the task as read (empty from lists).
	Version string
}

// TaskCreate describes a new task.
type TaskCreate struct {
	WorkflowSID string
	// TaskChannel is the channel's unique name or SID; empty means default.
	TaskChannel string
	// Attributes is a JSON object.
	Attributes string
	Priority   *int
	// Timeout is the TTL in seconds; nil means Twilio's default (1 day).
	Timeout *int
}

// TaskFilter narrows ListTasks; empty fields do not filter.
type TaskFilter struct {
	AssignmentStatus       []string
	WorkflowSID            string
	WorkflowName           string
	TaskQueueSID           string
	TaskQueueName          string
	EvaluateTaskAttributes string
	// Limit caps how many tasks are returned; zero means all.
	Limit int
}

// TaskUpdate is a change to a task; nil fields are left alone.
type TaskUpdate struct {
	Attributes       *string
	AssignmentStatus *string
	// Reason is required by Twilio when completing or canceling.
	Reason   *string
	Priority *int
	// IfMatch, when set, is sent as If-Match (412 on a version conflict).
	IfMatch string
}

// Reservation is an offer of a task to a worker.
type Reservation struct {
	SID         string
	TaskSID     string
	WorkerSID   string
	WorkerName  string
	Status      string
	DateCreated time.Time
	DateUpdated time.Time
	// Version is the ETag of the reservation as read (empty from lists).
	Version string
}

// ReservationFilter selects reservations by task or by worker.
type ReservationFilter struct {
	TaskSID   string
	WorkerSID string
	// Status filters by reservation status (pending, accepted, wrapping…).
	Status string
}

// ReservationUpdate is a change to a reservation; nil fields are left alone.
type ReservationUpdate struct {
	Status                        *string
	WorkerActivitySID             *string
	Instruction                   *string
	To                            *string
	From                          *string
	PostWorkActivitySID           *string
	EndConferenceOnExit           *bool
	EndConferenceOnCustomerExit   *bool
	ConferenceStatusCallback      *string
	ConferenceStatusCallbackEvent []string
	// IfMatch, when set, is sent as If-Match (412 on a version conflict).
	IfMatch string
}

// TaskQueue is a TaskRouter task queue.
type TaskQueue struct {
	SID                string
	FriendlyName       string
	TargetWorkers      string
	MaxReservedWorkers int
	TaskOrder          string
}

// TaskQueueCreate describes a new task queue.
type TaskQueueCreate struct {
	FriendlyName string
	// TargetWorkers is a worker expression; empty means Twilio's "1==1".
	TargetWorkers string
	// MaxReservedWorkers is 1–50; zero means Twilio's default (1).
	MaxReservedWorkers int
	// TaskOrder is FIFO or LIFO; empty means Twilio's default.
	TaskOrder string
}

// Workflow is a TaskRouter workflow.
type Workflow struct {
	SID          string
	FriendlyName string
	// Configuration is the workflow JSON exactly as Twilio returned it.
	Configuration          string
	TaskReservationTimeout int
	AssignmentCallbackURL  string
}

// WorkflowCreate describes a new workflow.
type WorkflowCreate struct {
	FriendlyName  string
	Configuration string
	// TaskReservationTimeout in seconds; zero means Twilio's default (120).
	TaskReservationTimeout int
	AssignmentCallbackURL  string
}

// Call is a voice call leg.
type Call struct {
	SID           string
	ParentCallSID string
	From          string
	To            string
	// Status is queued, ringing, in-progress, completed, busy, failed…
	Status    string
	Direction string
}

// Conference is a voice conference.
type Conference struct {
	SID          string
	FriendlyName string
	// Status is init, in-progress or completed.
	Status                  string
	ReasonConferenceEnded   string
	CallSIDEndingConference string
}

// Participant is one call leg in a conference.
type Participant struct {
	CallSID                string
	ConferenceSID          string
	Label                  string
	CallSIDToCoach         string
	Coaching               bool
	EndConferenceOnExit    bool
	StartConferenceOnEnter bool
	Muted                  bool
	Hold                   bool
	// Status is queued, connecting, ringing, connected, complete or failed.
	Status string
}

// ParticipantUpdate is a change to a participant; nil fields are left alone.
type ParticipantUpdate struct {
	EndConferenceOnExit *bool
	Hold                *bool
	HoldURL             *string
	AnnounceURL         *string
	Muted               *bool
	Coaching            *bool
	CallSIDToCoach      *string
}

// ParticipantCreate describes a party to dial into a conference.
type ParticipantCreate struct {
	// From and To are required by Twilio.
	From  string
	To    string
	Label string
	// EndConferenceOnExit and StartConferenceOnEnter: nil means Twilio's
	// defaults (false and true).
	EndConferenceOnExit    *bool
	StartConferenceOnEnter *bool
	Coaching               *bool
	CallSIDToCoach         string
	Muted                  *bool
	// Timeout is the ring time in seconds (5–600); zero means default (60).
	Timeout int
	// StatusCallback receives call progress for the new leg.
	StatusCallback      string
	StatusCallbackEvent []string
	// ConferenceStatusCallback and its events only take effect if this
	// participant is the first to join.
	ConferenceStatusCallback      string
	ConferenceStatusCallbackEvent []string
}

// Sink is an Event Streams sink (only webhook sinks are created here).
type Sink struct {
	SID         string
	Description string
	SinkType    string
	// Status is initialized, validating, active or failed.
	Status string
	// Destination, Method and BatchEvents come from a webhook sink's
	// configuration.
	Destination string
	Method      string
	BatchEvents bool
}

// SinkCreate describes a new webhook sink.
type SinkCreate struct {
	Description string
	Destination string
	// Method is POST when empty.
	Method      string
	BatchEvents bool
}

// Subscription subscribes a sink to event types.
type Subscription struct {
	SID         string
	SinkSID     string
	Description string
	// Types are the subscribed event types (com.twilio.taskrouter.…).
	Types []string
}

// SubscriptionCreate describes a new subscription at schema version 1.
type SubscriptionCreate struct {
	SinkSID     string
	Description string
	Types       []string
}

// FlexIdentity is Twilio's answer about a Flex user token.
type FlexIdentity struct {
	Valid       bool
	Identity    string
	RealmUserID string
	WorkerSID   string
	Roles       []string
	Expiration  time.Time
	// Message is Twilio's reason when the token is not valid.
	Message string
}

// ErrNotFound is matched (errors.Is) by every error for a resource that does
// not exist: a 404 from Twilio or a Find… that found nothing.
var ErrNotFound = errors.New("twilio: not found")

// ErrOutcomeUnknown is matched by the error of a create that failed with a
// 5xx or a connection error: Twilio may or may not have made the object, so
// the create was not retried and the caller must look it up first.
var ErrOutcomeUnknown = errors.New("twilio: outcome of create unknown")

// APIError is an error answer from Twilio.
type APIError struct {
	// Status is the HTTP status; Code is Twilio's error code (20404…).
	Status   int
	Code     int
	Message  string
	MoreInfo string
	// RetryAfter is the server's Retry-After on the last attempt, if any.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	s := fmt.Sprintf("twilio: status %d", e.Status)
	if e.Code != 0 {
		s += fmt.Sprintf(" code %d", e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == 404
}

// IsNotFound reports whether err means the resource does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsVersionConflict reports whether an If-Match update failed because the
// resource changed (412): re-read and decide again.
func IsVersionConflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == 412
}

// IsRetryable reports whether trying again later may succeed: 429, 5xx and
// connection errors. A create whose error also matches ErrOutcomeUnknown
// must be looked up before it is tried again.
func IsRetryable(err error) bool {
	// The caller gave up, or a newer request took this one's place; nothing
	// to retry on its behalf.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrSuperseded) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == 429 || ae.Status >= 500
	}
	if errors.Is(err, ErrOutcomeUnknown) {
		return true
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}

// IsTerminal reports whether err is a Twilio 4xx other than 429: the same
// request will never succeed. 404 and 412 are terminal for the request but
// callers usually handle them first (IsNotFound, IsVersionConflict).
func IsTerminal(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 429
}

// RetryAfter returns the server's Retry-After carried by err, or zero.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// New builds a Client for one account. Every Client built for the same
// AccountSID in this process shares the account's budgets (the last Config's
// limits apply), because Twilio's limits are per account and workspace, not
// per client. Requests wait for their budget in priority order (PriorityOf):
// a recovery never waits behind queued activity writes or background reads.
func New(cfg Config, opts ...Option) (Client, error) {
	return newRESTClient(cfg, opts...)
}
