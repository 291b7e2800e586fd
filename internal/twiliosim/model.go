package twiliosim

import (
	"encoding/json"
	"time"

	"github.com/flexoperator/flex-operator/internal/expr"
)

// Task assignment statuses (Twilio's enum).
const (
	taskPending   = "pending"
	taskReserved  = "reserved"
	taskAssigned  = "assigned"
	taskWrapping  = "wrapping"
	taskCompleted = "completed"
	taskCanceled  = "canceled"
)

// Reservation statuses (Twilio's enum).
const (
	resPending   = "pending"
	resAccepted  = "accepted"
	resRejected  = "rejected"
	resTimeout   = "timeout"
	resCanceled  = "canceled"
	resRescinded = "rescinded"
	resWrapping  = "wrapping"
	resCompleted = "completed"
)

// ReasonTTLExceeded is the task.canceled reason when a task's TTL runs out.
const ReasonTTLExceeded = "Task TTL Exceeded"

// ReasonWorkflowTimeout is the task.canceled reason when a task passes the
// last routing step of its workflow without being accepted.
const ReasonWorkflowTimeout = "Workflow Timeout"

type workspace struct {
	sid, name        string
	created, updated time.Time
	eventCallbackURL string
	// flexCallback, when set, overrides the simulator-wide Flex conference
	// callback for this workspace's conferences (SetWorkspaceConferenceCallback).
	flexCallback       string
	flexCallbackEvents map[string]bool
	// eventsFilter limits the legacy EventCallbackUrl; nil means all.
	eventsFilter         map[string]bool
	eventsFilterRaw      string
	multiTask            bool
	prioritizeQueueOrder string
	defaultActivity      *activity
	timeoutActivity      *activity

	activities   *ordered[*activity]
	channels     *ordered[*taskChannel]
	workers      *ordered[*worker]
	queues       *ordered[*taskQueue]
	workflows    *ordered[*workflow]
	tasks        *ordered[*task]
	reservations *ordered[*reservation]
	events       []*trEvent
	workerSeq    int
}

type activity struct {
	sid, name        string
	available        bool
	created, updated time.Time
}

type taskChannel struct {
	sid, name, unique string
	optimized         bool
	created, updated  time.Time
}

type worker struct {
	sid, name        string
	attrs            map[string]any
	attrsJSON        string
	activity         *activity
	created, updated time.Time
	statusChanged    time.Time
	version          int
	channels         *ordered[*workerChannel] // by task channel SID
	// lastReserved orders workers longest-idle first: round robin.
	lastReserved time.Time
	seq          int
	// live holds the reservations that use capacity: pending, accepted,
	// wrapping.
	live map[string]*reservation
}

type workerChannel struct {
	sid              string
	channel          *taskChannel
	capacity         int
	available        bool
	created, updated time.Time
}

type taskQueue struct {
	sid, name        string
	targetWorkers    string
	targetExpr       *expr.Expr
	maxReserved      int
	taskOrder        string
	reservationAct   *activity
	assignmentAct    *activity
	created, updated time.Time
}

type workflow struct {
	sid, name             string
	configuration         string
	config                *routingConfig
	reservationTimeout    int
	assignmentCallbackURL string
	fallbackURL           string
	created, updated      time.Time
}

type task struct {
	sid               string
	attrs             map[string]any
	attrsJSON         string
	priority          int
	timeout           int
	channel           *taskChannel
	workflow          *workflow
	status            string
	reason            string
	created, updated  time.Time
	queueEntered      time.Time
	version           int
	ignoreCapacity    bool
	routingTarget     string
	reservations      []*reservation
	ttl               *timer
	route             routeState
	callSID           string // the call waiting in <Enqueue> for this task
	conferenceSID     string // the conference Flex made for it
	transferInitiated bool
}

// routeState is where a task is in its workflow.
type routeState struct {
	// cfg is the workflow configuration the task is routed by; a task
	// keeps the one it entered with until it is re-evaluated.
	cfg *routingConfig
	// filter is the index of the matched filter; -1 is default_filter and
	// -2 means no filter matched and there is no default (the task waits).
	filter int
	target int
	step   *resolvedTarget
	queue  *taskQueue
	gen    int
	timer  *timer
	// expired means the step's timeout passed while a reservation was
	// pending; the task moves on when that reservation ends.
	expired bool
	// checkSkip asks the engine to evaluate skip_if once it has tried to
	// reserve a worker for the new step.
	checkSkip bool
	rejected  map[string]bool
}

type reservation struct {
	sid              string
	task             *task
	worker           *worker
	status           string
	created, updated time.Time
	version          int
	timer            *timer
	// callSID is the agent's conference leg, when Flex made one.
	callSID string
}

// live says whether the reservation holds worker capacity.
func (r *reservation) live() bool {
	return r.status == resPending || r.status == resAccepted || r.status == resWrapping
}

func parseAttributes(raw string) (map[string]any, error) {
	if raw == "" {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, err
	}
	if m == nil {
		// "null" decodes to a nil map without error; Twilio wants an object.
		return nil, errNotObject
	}
	return m, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Values marshalled here come from json.Unmarshal or are built by
		// the simulator from plain types; failure is a programming error.
		panic(err)
	}
	return string(b)
}

func trTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func apiTime(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
