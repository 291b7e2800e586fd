package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TypeTestSink is the Type of the event Event Streams sends when a sink is
// tested (CreateSinkTest); its TestID must be passed back to CreateSinkValidate.
//
// Twilio's test event is not like the others: its CloudEvent type is
// com.twilio.eventstreams.test-event, its source is "Sink", its id is the
// account SID (the same for every test, so it is no dedup key) and its data
// may be an object or a JSON string holding one.
const TypeTestSink = "eventstreams.test-sink"

const (
	// cloudEventTaskRouterPrefix prefixes the CloudEvent type of every
	// TaskRouter event; the rest is the short name the legacy callback uses.
	cloudEventTaskRouterPrefix = "com.twilio.taskrouter."
	cloudEventTestEvent        = "com.twilio.eventstreams.test-event"
	// cloudEventTestSink is an older spelling some documentation uses.
	cloudEventTestSink = "com.twilio.eventstreams.test-sink"
	maxIDLength        = 128
	maxTypeLength      = 128
)

// Version is an object's version as an event carries it. TaskRouter counts
// from 0 (a worker or task just created is at version 0), so 0 is a version
// like any other: an event that did not carry the field has a Version whose
// Known is false, and nothing can be ordered by it.
type Version struct {
	N     int64
	Known bool
}

// VersionOf is the known version n.
func VersionOf(n int64) Version { return Version{N: n, Known: true} }

// Newer reports whether v orders after old: v is known, and old is unknown or
// lower. An unknown version is newer than nothing.
func (v Version) Newer(old Version) bool { return v.Known && (!old.Known || v.N > old.N) }

// TaskRouterEvent is one TaskRouter event, from Event Streams or from a
// workspace's legacy EventCallbackUrl. String fields Twilio did not send are
// empty, numbers are 0 and versions are not Known.
//
// A successfully parsed TaskRouter event (IsTaskRouter) always has ID, Type,
// WorkspaceSID and Time. An Event Streams event of a type that is neither
// TaskRouter nor the sink test has only ID, Type and CloudEventType both set
// to its full CloudEvent type (for example
// "com.twilio.voice.status-callback.conference.updated"), and Time when the
// envelope had one; callers ignore it.
type TaskRouterEvent struct {
	// ID is the dedup key: the CloudEvent id (EZ…) or the legacy Sid (EV…).
	// A legacy callback without Sid gets a key derived from its content.
	ID string
	// Type is the short event name: "reservation.accepted", "task.canceled",
	// "task-queue.entered", "worker.activity.update", TypeTestSink, …
	Type string
	// CloudEventType is the full CloudEvent type
	// ("com.twilio.taskrouter.reservation.accepted"). A legacy callback gets
	// the type the same event has on Event Streams, so both sources read alike.
	CloudEventType string
	// Time is when TaskRouter recorded the event, to the millisecond when the
	// payload carries milliseconds. Event Streams may deliver out of order;
	// sort by Time and by the *Version fields.
	Time time.Time

	AccountSID   string
	WorkspaceSID string

	TaskSID string
	// TaskChannel is the task channel's unique name ("voice", "chat", …).
	TaskChannel string
	// TaskAttributes is the task's attributes as raw JSON text.
	TaskAttributes       string
	TaskAssignmentStatus string
	TaskQueueSID         string
	TaskQueueName        string
	WorkflowSID          string
	WorkflowName         string

	ReservationSID string
	// ReservationStatus is the status a reservation event leaves the
	// reservation in. Neither source sends it as a field on every event, so
	// it is derived from the event type (reservation.wrapup → "wrapping")
	// when absent.
	ReservationStatus string

	WorkerSID string
	// WorkerName is the worker's friendly name.
	WorkerName string
	// WorkerAttributes is the worker's attributes as raw JSON text.
	WorkerAttributes           string
	WorkerActivitySID          string
	WorkerActivityName         string
	WorkerPreviousActivitySID  string
	WorkerPreviousActivityName string

	// ActivitySID, ActivityName and ActivityAvailable describe the activity
	// of an activity.created, activity.updated or activity.deleted event.
	// ActivityAvailable is nil when the event did not say.
	ActivitySID       string
	ActivityName      string
	ActivityAvailable *bool

	TaskPriority int
	// The versions of the task, worker and reservation at the event, when
	// it carried them.
	TaskVersion        Version
	WorkerVersion      Version
	ReservationVersion Version

	// Reason is the reason given for the change (a task's canceled or
	// completed reason, "Task TTL Exceeded" on a ping task's timeout).
	Reason string
	// Description is TaskRouter's human-readable event description.
	Description string

	// TestID is set on TypeTestSink events only.
	TestID string
	// SinkSID is the sink (DG…) a TypeTestSink event was sent to, read from
	// the CloudEvent source "/v1/Sinks/DG…"; empty when the source does not
	// name one.
	SinkSID string
}

// IsTaskRouter reports whether the event is a TaskRouter event, with its
// fields mapped, as opposed to the sink test or a type this package does not
// map.
func (e TaskRouterEvent) IsTaskRouter() bool {
	return strings.HasPrefix(e.CloudEventType, cloudEventTaskRouterPrefix)
}

// EventError reports one event of an Event Streams delivery that could not be
// decoded. It wraps ErrMalformed.
type EventError struct {
	// Index is the event's position in the batch (0 for a single object).
	Index int
	// ID is the event's id when it could be read.
	ID  string
	Err error
}

// Error names the event by index, and by id when known.
func (e *EventError) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("event %d (%s): %v", e.Index, e.ID, e.Err)
	}
	return fmt.Sprintf("event %d: %v", e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *EventError) Unwrap() error { return e.Err }

// ParseEventStreams decodes an Event Streams webhook body: a JSON array of
// CloudEvents or a single CloudEvent object. Every event of a batch is
// returned, in order (the seed read only the first).
//
// A malformed event (not an object, no id or type, bad data) yields an
// *EventError naming its index; the other events are still decoded and
// returned alongside the error (joined with errors.Join when several), so the
// caller can process the good ones. After a JSON syntax error the rest of the
// batch cannot be read and only the events before it are returned. A body
// that is neither an object nor an array returns no events.
func ParseEventStreams(body []byte) ([]TaskRouterEvent, error) {
	body = bytes.Trim(body, " \t\r\n")
	if len(body) == 0 {
		return nil, fmt.Errorf("event streams body: %w: empty", ErrMalformed)
	}
	switch body[0] {
	case '{':
		event, err := parseCloudEvent(body)
		if err != nil {
			return nil, err.withIndex(0)
		}
		return []TaskRouterEvent{event}, nil
	case '[':
	default:
		return nil, fmt.Errorf("event streams body: %w: neither a JSON object nor an array", ErrMalformed)
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the '['
		return nil, fmt.Errorf("event streams body: %w: %w", ErrMalformed, err)
	}
	var (
		events []TaskRouterEvent
		errs   []error
	)
	index := 0
	for ; dec.More(); index++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			errs = append(errs, &EventError{Index: index, Err: fmt.Errorf("%w: %w", ErrMalformed, err)})
			return events, errors.Join(errs...)
		}
		event, err := parseCloudEvent(raw)
		if err != nil {
			errs = append(errs, err.withIndex(index))
			continue
		}
		events = append(events, event)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		if err == io.EOF {
			err = errors.New("the array is not closed")
		}
		errs = append(errs, &EventError{Index: index, Err: fmt.Errorf("%w: %w", ErrMalformed, err)})
		return events, errors.Join(errs...)
	}
	if _, err := dec.Token(); err != io.EOF {
		errs = append(errs, fmt.Errorf("event streams body: %w: data after the array", ErrMalformed))
	}
	return events, errors.Join(errs...)
}

// cloudEventError is an EventError without its index yet.
type cloudEventError struct {
	id  string
	err error
}

func (e *cloudEventError) withIndex(i int) *EventError {
	return &EventError{Index: i, ID: e.id, Err: e.err}
}

// parseCloudEvent decodes one CloudEvent and maps it by type.
func parseCloudEvent(raw []byte) (TaskRouterEvent, *cloudEventError) {
	bad := func(id, format string, args ...any) *cloudEventError {
		return &cloudEventError{id: id, err: fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))}
	}
	if len(raw) == 0 || raw[0] != '{' {
		return TaskRouterEvent{}, bad("", "not a JSON object")
	}
	var envelope struct {
		ID     string          `json:"id"`
		Type   string          `json:"type"`
		Source string          `json:"source"`
		Time   string          `json:"time"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return TaskRouterEvent{}, &cloudEventError{err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	if err := checkID(envelope.ID); err != nil {
		return TaskRouterEvent{}, bad("", "id %v", err)
	}
	id := envelope.ID
	switch {
	case envelope.Type == "":
		return TaskRouterEvent{}, bad(id, "type is missing")
	case len(envelope.Type) > maxTypeLength:
		return TaskRouterEvent{}, bad(id, "type is longer than %d bytes", maxTypeLength)
	}

	switch {
	case envelope.Type == cloudEventTestEvent || envelope.Type == cloudEventTestSink:
		var data struct {
			TestID string `json:"test_id"`
		}
		raw := envelope.Data
		var text string
		if json.Unmarshal(raw, &text) == nil {
			raw = json.RawMessage(text) // data sent as a JSON string (Kinesis sinks)
		}
		if err := unmarshalObject(raw, &data); err != nil {
			return TaskRouterEvent{}, bad(id, "data: %v", err)
		}
		if data.TestID == "" {
			return TaskRouterEvent{}, bad(id, "data.test_id is missing")
		}
		ts, _ := parseEventTime(envelope.Time) // the test event's time is informative only
		event := TaskRouterEvent{ID: id, Type: TypeTestSink, CloudEventType: envelope.Type, Time: ts, TestID: data.TestID}
		if sink, ok := strings.CutPrefix(envelope.Source, "/v1/Sinks/"); ok && ValidSID(sink, "DG") {
			event.SinkSID = sink
		}
		return event, nil

	case strings.HasPrefix(envelope.Type, cloudEventTaskRouterPrefix):
		event, err := parseTaskRouterData(envelope.Type, envelope.Time, envelope.Data)
		if err != nil {
			return TaskRouterEvent{}, &cloudEventError{id: id, err: err}
		}
		event.ID = id
		return event, nil

	default:
		ts, _ := parseEventTime(envelope.Time) // nobody reads it; a bad one is no reason to fail
		return TaskRouterEvent{ID: id, Type: envelope.Type, CloudEventType: envelope.Type, Time: ts}, nil
	}
}

// parseTaskRouterData maps the data of a com.twilio.taskrouter.* CloudEvent
// (schema TaskRouter.WDSEvent: data.payload holds the event's fields).
func parseTaskRouterData(cloudEventType, envelopeTime string, rawData json.RawMessage) (TaskRouterEvent, error) {
	shortType := strings.TrimPrefix(cloudEventType, cloudEventTaskRouterPrefix)
	if err := checkType(shortType); err != nil {
		return TaskRouterEvent{}, fmt.Errorf("%w: type %w", ErrMalformed, err)
	}
	// One pass over data: only the three fields read are kept.
	var data struct {
		AccountSID json.RawMessage `json:"account_sid"`
		Timestamp  json.RawMessage `json:"timestamp"`
		Payload    json.RawMessage `json:"payload"`
	}
	if err := unmarshalObject(rawData, &data); err != nil {
		return TaskRouterEvent{}, fmt.Errorf("%w: data: %w", ErrMalformed, err)
	}
	var payload map[string]json.RawMessage
	if err := unmarshalObject(data.Payload, &payload); err != nil {
		return TaskRouterEvent{}, fmt.Errorf("%w: data.payload: %w", ErrMalformed, err)
	}
	dataFields := jsonFields{"account_sid": data.AccountSID, "timestamp": data.Timestamp}
	payloadFields := jsonFields(payload)

	event := TaskRouterEvent{Type: shortType, CloudEventType: cloudEventType}
	var errs []error
	mapFields(&event, payloadFields, false, &errs)
	if event.AccountSID == "" { // also carried by the WDSEvent envelope
		if sid := dataFields.text("account_sid"); ValidSID(sid, "AC") {
			event.AccountSID = sid
		}
	}
	// The payload timestamp is TaskRouter's own (milliseconds); the
	// envelope's time is when Event Streams published it.
	event.Time = firstTime(&errs,
		timeSource{"data.payload.timestamp", payloadFields.text("timestamp")},
		timeSource{"data.timestamp", dataFields.text("timestamp")},
		timeSource{"time", envelopeTime},
	)
	if len(errs) > 0 {
		return TaskRouterEvent{}, fmt.Errorf("%w: %w", ErrMalformed, errors.Join(errs...))
	}
	return event, nil
}

// ParseLegacyEvent decodes one workspace EventCallbackUrl form POST. It needs
// EventType, WorkspaceSid and a Timestamp (epoch seconds) or TimestampMs.
// The Sid (EV…) is the dedup key; Twilio's reference does not list it among
// the parameters, so when it is absent the key is a hash of the whole form,
// which is the same for a redelivery of the same callback.
func ParseLegacyEvent(form url.Values) (TaskRouterEvent, error) {
	var errs []error
	eventType := form.Get("EventType")
	// The legacy name of the one event whose Event Streams name differs; use
	// the Event Streams name so callers match one spelling.
	if eventType == "task-queue.expression.updated" {
		eventType = "task-queue.expression-updated"
	}
	if err := checkType(eventType); err != nil {
		errs = append(errs, fmt.Errorf("EventType %w", err))
	}
	event := TaskRouterEvent{Type: eventType, CloudEventType: cloudEventTaskRouterPrefix + eventType}

	switch sid := form.Get("Sid"); {
	case sid == "":
		event.ID = "legacy-" + formDigest(form)
	case !ValidSID(sid, "EV"):
		errs = append(errs, fmt.Errorf("Sid %s", describeSID(sid, "EV")))
	default:
		event.ID = sid
	}

	fields := formFields(form)
	mapFields(&event, fields, true, &errs)
	event.Time = firstTime(&errs,
		timeSource{"TimestampMs", fields.text("TimestampMs")},
		timeSource{"Timestamp", fields.text("Timestamp")},
	)
	if len(errs) > 0 {
		return TaskRouterEvent{}, fmt.Errorf("legacy TaskRouter event: %w: %w", ErrMalformed, errors.Join(errs...))
	}
	return event, nil
}

// fieldSource reads one field of an event as text: "" when absent or null.
type fieldSource interface {
	text(key string) string
}

// jsonFields reads a decoded JSON object. Strings are unquoted; numbers and
// booleans keep their literal text; objects and arrays (attributes sent as
// JSON rather than as a JSON string) keep their JSON text.
type jsonFields map[string]json.RawMessage

func (m jsonFields) text(key string) string {
	raw := bytes.TrimSpace(m[key])
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		// Most values need no unescaping: skip the decoder for them. Invalid
		// UTF-8 goes through it too, so both paths give the same text.
		if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner)
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "" // unreachable: raw came out of a successful decode
		}
		return s
	case 'n':
		return ""
	}
	return string(raw)
}

// formFields reads a form; see the package comment on first values.
type formFields url.Values

func (f formFields) text(key string) string { return url.Values(f).Get(key) }

// field maps one event field from its names in both sources.
type field struct {
	eventStreams, legacy string
	// sidPrefix, when set, makes the field a SID of that type.
	sidPrefix string
	// jsonText marks attributes: the value must be valid JSON.
	jsonText bool
	// required fields make the event malformed when absent.
	required bool
	dst      func(*TaskRouterEvent) *string
}

var stringFields = []field{
	{eventStreams: "account_sid", legacy: "AccountSid", sidPrefix: "AC", dst: func(e *TaskRouterEvent) *string { return &e.AccountSID }},
	{eventStreams: "workspace_sid", legacy: "WorkspaceSid", sidPrefix: "WS", required: true, dst: func(e *TaskRouterEvent) *string { return &e.WorkspaceSID }},
	{eventStreams: "task_sid", legacy: "TaskSid", sidPrefix: "WT", dst: func(e *TaskRouterEvent) *string { return &e.TaskSID }},
	{eventStreams: "task_channel_unique_name", legacy: "TaskChannelUniqueName", dst: func(e *TaskRouterEvent) *string { return &e.TaskChannel }},
	{eventStreams: "task_attributes", legacy: "TaskAttributes", jsonText: true, dst: func(e *TaskRouterEvent) *string { return &e.TaskAttributes }},
	{eventStreams: "task_assignment_status", legacy: "TaskAssignmentStatus", dst: func(e *TaskRouterEvent) *string { return &e.TaskAssignmentStatus }},
	{eventStreams: "task_queue_sid", legacy: "TaskQueueSid", sidPrefix: "WQ", dst: func(e *TaskRouterEvent) *string { return &e.TaskQueueSID }},
	{eventStreams: "task_queue_name", legacy: "TaskQueueName", dst: func(e *TaskRouterEvent) *string { return &e.TaskQueueName }},
	{eventStreams: "workflow_sid", legacy: "WorkflowSid", sidPrefix: "WW", dst: func(e *TaskRouterEvent) *string { return &e.WorkflowSID }},
	{eventStreams: "workflow_name", legacy: "WorkflowName", dst: func(e *TaskRouterEvent) *string { return &e.WorkflowName }},
	{eventStreams: "reservation_sid", legacy: "ReservationSid", sidPrefix: "WR", dst: func(e *TaskRouterEvent) *string { return &e.ReservationSID }},
	{eventStreams: "reservation_status", legacy: "ReservationStatus", dst: func(e *TaskRouterEvent) *string { return &e.ReservationStatus }},
	{eventStreams: "worker_sid", legacy: "WorkerSid", sidPrefix: "WK", dst: func(e *TaskRouterEvent) *string { return &e.WorkerSID }},
	{eventStreams: "worker_name", legacy: "WorkerName", dst: func(e *TaskRouterEvent) *string { return &e.WorkerName }},
	{eventStreams: "worker_attributes", legacy: "WorkerAttributes", jsonText: true, dst: func(e *TaskRouterEvent) *string { return &e.WorkerAttributes }},
	{eventStreams: "worker_activity_sid", legacy: "WorkerActivitySid", sidPrefix: "WA", dst: func(e *TaskRouterEvent) *string { return &e.WorkerActivitySID }},
	{eventStreams: "worker_activity_name", legacy: "WorkerActivityName", dst: func(e *TaskRouterEvent) *string { return &e.WorkerActivityName }},
	{eventStreams: "worker_previous_activity_sid", legacy: "WorkerPreviousActivitySid", sidPrefix: "WA", dst: func(e *TaskRouterEvent) *string { return &e.WorkerPreviousActivitySID }},
	{eventStreams: "worker_previous_activity_name", legacy: "WorkerPreviousActivityName", dst: func(e *TaskRouterEvent) *string { return &e.WorkerPreviousActivityName }},
	{eventStreams: "activity_sid", legacy: "ActivitySid", sidPrefix: "WA", dst: func(e *TaskRouterEvent) *string { return &e.ActivitySID }},
	{eventStreams: "activity_name", legacy: "ActivityName", dst: func(e *TaskRouterEvent) *string { return &e.ActivityName }},
	{eventStreams: "event_description", legacy: "EventDescription", dst: func(e *TaskRouterEvent) *string { return &e.Description }},
}

// intFields are non-negative integers; TaskRouter caps a priority at 2^31-1.
var intFields = []struct {
	eventStreams, legacy string
	max                  int64
	set                  func(*TaskRouterEvent, int64)
}{
	{"task_priority", "TaskPriority", 1<<31 - 1, func(e *TaskRouterEvent, n int64) { e.TaskPriority = int(n) }},
	{"task_version", "TaskVersion", math.MaxInt64, func(e *TaskRouterEvent, n int64) { e.TaskVersion = VersionOf(n) }},
	{"worker_version", "WorkerVersion", math.MaxInt64, func(e *TaskRouterEvent, n int64) { e.WorkerVersion = VersionOf(n) }},
	{"reservation_version", "ReservationVersion", math.MaxInt64, func(e *TaskRouterEvent, n int64) { e.ReservationVersion = VersionOf(n) }},
}

// reasonFields are tried in order for TaskRouterEvent.Reason.
var reasonFields = [][2]string{
	{"reason", "Reason"},
	{"task_canceled_reason", "TaskCanceledReason"},
	{"task_completed_reason", "TaskCompletedReason"},
}

// reservationStatusByEvent is the status each reservation event leaves the
// reservation in (TaskRouter's reservation status enum).
var reservationStatusByEvent = map[string]string{
	"reservation.created":   "pending",
	"reservation.accepted":  "accepted",
	"reservation.rejected":  "rejected",
	"reservation.timeout":   "timeout",
	"reservation.canceled":  "canceled",
	"reservation.rescinded": "rescinded",
	"reservation.wrapup":    "wrapping",
	"reservation.completed": "completed",
}

// mapFields copies the common TaskRouter fields from src, under their legacy
// form names or their Event Streams payload names, and appends a problem per
// bad field to errs.
func mapFields(event *TaskRouterEvent, src fieldSource, legacy bool, errs *[]error) {
	pick := func(eventStreams, legacyName string) string {
		if legacy {
			return legacyName
		}
		return eventStreams
	}
	for _, f := range stringFields {
		key := pick(f.eventStreams, f.legacy)
		value := src.text(key)
		switch {
		case value == "":
			if f.required {
				*errs = append(*errs, fmt.Errorf("%s is missing", key))
			}
		case f.sidPrefix != "" && !ValidSID(value, f.sidPrefix):
			*errs = append(*errs, fmt.Errorf("%s %s", key, describeSID(value, f.sidPrefix)))
		case f.jsonText && !json.Valid([]byte(value)):
			*errs = append(*errs, fmt.Errorf("%s is not valid JSON", key))
		}
		*f.dst(event) = value
	}
	for _, f := range intFields {
		key := pick(f.eventStreams, f.legacy)
		value := src.text(key)
		if value == "" {
			continue
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 || n > f.max {
			*errs = append(*errs, fmt.Errorf("%s %q is not an integer from 0 to %d", key, truncate(value), f.max))
			continue
		}
		f.set(event, n)
	}
	if value := src.text(pick("activity_available", "ActivityAvailable")); value != "" {
		available, err := strconv.ParseBool(value)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s %q is not a boolean", pick("activity_available", "ActivityAvailable"), truncate(value)))
		} else {
			event.ActivityAvailable = &available
		}
	}
	for _, names := range reasonFields {
		if reason := src.text(pick(names[0], names[1])); reason != "" {
			event.Reason = reason
			break
		}
	}
	if event.ReservationStatus == "" {
		event.ReservationStatus = reservationStatusByEvent[event.Type]
	}
}

type timeSource struct{ name, value string }

// firstTime returns the first source that holds a valid time. A source that
// is present but unparsable is skipped rather than fatal, because the others
// say the same thing less precisely; only when none is usable is the event
// malformed, since events cannot be ordered without a time.
func firstTime(errs *[]error, sources ...timeSource) time.Time {
	var problems []string
	for _, src := range sources {
		if src.value == "" {
			continue
		}
		ts, err := parseEventTime(src.value)
		if err == nil {
			return ts
		}
		problems = append(problems, fmt.Sprintf("%s %q: %v", src.name, truncate(src.value), err))
	}
	if len(problems) == 0 {
		names := make([]string, len(sources))
		for i, src := range sources {
			names[i] = src.name
		}
		*errs = append(*errs, fmt.Errorf("no timestamp (looked for %s)", strings.Join(names, ", ")))
	} else {
		*errs = append(*errs, fmt.Errorf("no usable timestamp: %s", strings.Join(problems, "; ")))
	}
	return time.Time{}
}

// Epoch values below epochMillisFloor are taken as seconds, those above as
// milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973. Beyond
// epochMillisCeiling (ms in the year 5138) the value is refused.
const (
	epochMillisFloor   = 1e11
	epochMillisCeiling = 1e14
)

// parseEventTime parses the timestamps TaskRouter sends: epoch seconds
// (legacy Timestamp, possibly with a fraction), epoch milliseconds
// (TimestampMs and, in some schema versions, the payload timestamp) or an
// RFC 3339 string (CloudEvent time, newer payloads).
func parseEventTime(raw string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, errors.New("empty")
	}
	if c := raw[0]; '0' <= c && c <= '9' && !strings.ContainsAny(raw, "-:T") {
		whole, frac, hasFrac := strings.Cut(raw, ".")
		n, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || n <= 0 || n >= epochMillisCeiling {
			return time.Time{}, errors.New("not an epoch time")
		}
		if !hasFrac {
			if n >= epochMillisFloor {
				return time.UnixMilli(n).UTC(), nil
			}
			return time.Unix(n, 0).UTC(), nil
		}
		if n >= epochMillisFloor || frac == "" || len(frac) > 9 {
			return time.Time{}, errors.New("not an epoch time")
		}
		nanos, err := strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, errors.New("not an epoch time")
		}
		return time.Unix(n, int64(nanos)).UTC(), nil
	}
	ts, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, errors.New("neither epoch nor RFC 3339")
	}
	return ts, nil
}

// unmarshalObject decodes raw, which must be a JSON object.
func unmarshalObject(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("missing or not an object")
	}
	return json.Unmarshal(raw, v)
}

// checkID accepts the ids used as dedup keys: non-empty printable ASCII of
// bounded length (Twilio's are EZ… SIDs, but any such id is a usable key).
func checkID(id string) error {
	if id == "" {
		return errors.New("is missing")
	}
	if len(id) > maxIDLength {
		return fmt.Errorf("is longer than %d bytes", maxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%q has a character other than printable ASCII", truncate(id))
		}
	}
	return nil
}

// checkType accepts TaskRouter's short event names: lower-case words joined
// by dots and hyphens ("task-queue.entered").
func checkType(t string) error {
	if t == "" {
		return errors.New("is missing")
	}
	if len(t) > maxTypeLength {
		return fmt.Errorf("is longer than %d bytes", maxTypeLength)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%q is not a TaskRouter event name", truncate(t))
		}
	}
	return nil
}

// formDigest is a stable digest of a form's first values, used as the dedup
// key of a legacy callback that has no Sid. Each key and value is
// length-prefixed so that different forms cannot concatenate to the same text.
func formDigest(form url.Values) string {
	keys := make([]string, 0, len(form))
	for key := range form {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, key := range keys {
		value := form.Get(key)
		_, _ = fmt.Fprintf(h, "%d:%s%d:%s", len(key), key, len(value), value)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
