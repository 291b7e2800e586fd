package events

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var timeEqual = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestParseEventStreams(t *testing.T) {
	unknown := cloudEvent(7, "reservation.accepted")
	unknown["type"] = "com.twilio.voice.status-callback.conference.updated"

	tests := []struct {
		name string
		body string
		want []TaskRouterEvent
	}{
		{
			name: "single object",
			body: mustJSON(cloudEvent(1, "reservation.accepted")),
			want: []TaskRouterEvent{wantTaskRouterEvent(1, "reservation.accepted", "accepted")},
		},
		{
			name: "array of 3, every event returned in order",
			body: "\n " + cloudEventsBatch(3) + "\n",
			want: []TaskRouterEvent{
				wantTaskRouterEvent(0, "reservation.created", "pending"),
				wantTaskRouterEvent(1, "reservation.accepted", "accepted"),
				wantTaskRouterEvent(2, "task-queue.entered", ""),
			},
		},
		{
			name: "empty array",
			body: "[]",
		},
		{
			name: "unknown type is returned with its full type",
			body: "[" + mustJSON(unknown) + "]",
			want: []TaskRouterEvent{{ID: sid("EZ", 7), Type: "com.twilio.voice.status-callback.conference.updated", CloudEventType: "com.twilio.voice.status-callback.conference.updated", Time: baseTime.Add(7 * time.Second)}},
		},
		{
			name: "sink test event",
			body: `{"specversion":"1.0","type":"com.twilio.eventstreams.test-sink","source":"Sink","id":"` + sid("EZ", 3) + `","dataschema":"https://events-schemas.twilio.com/EventStreams.TestSink/2","datacontenttype":"application/json","time":"2026-03-02T10:15:30.123Z","data":{"test_id":"` + "0b6b2d8e-8a64-4c1c-8a86-8b0f2d2c8f10" + `"}}`,
			want: []TaskRouterEvent{{ID: sid("EZ", 3), Type: TypeTestSink, CloudEventType: "com.twilio.eventstreams.test-sink", Time: baseTime, TestID: "0b6b2d8e-8a64-4c1c-8a86-8b0f2d2c8f10"}},
		},
		{
			name: "sink test event as Twilio sends it",
			body: `[{"specversion":"1.0","type":"com.twilio.eventstreams.test-event","source":"Sink","id":"` + accountSID + `","dataschema":"https://events-schemas.twilio.com/EventStreams.TestSink/1.json","datacontenttype":"application/json","time":"2026-03-02T10:15:30.123Z","data":{"test_id":"cae2f9e2-c277-4612-8ad3-93c1a7a3ef88"}}]`,
			want: []TaskRouterEvent{{ID: accountSID, Type: TypeTestSink, CloudEventType: "com.twilio.eventstreams.test-event", Time: baseTime, TestID: "cae2f9e2-c277-4612-8ad3-93c1a7a3ef88"}},
		},
		{
			name: "sink test event with its data as a JSON string",
			body: `{"type":"com.twilio.eventstreams.test-event","source":"Sink","id":"` + accountSID + `","time":"2026-03-02T10:15:30.123Z","data":"{\"test_id\":\"95001c1e\"}"}`,
			want: []TaskRouterEvent{{ID: accountSID, Type: TypeTestSink, CloudEventType: "com.twilio.eventstreams.test-event", Time: baseTime, TestID: "95001c1e"}},
		},
		{
			name: "sink test event names its sink in the source",
			body: `{"specversion":"1.0","type":"com.twilio.eventstreams.test-event","source":"/v1/Sinks/` + sid("DG", 1) + `","id":"` + sid("EZ", 3) + `","time":"2026-03-02T10:15:30.123Z","data":{"test_id":"t-1"}}`,
			want: []TaskRouterEvent{{ID: sid("EZ", 3), Type: TypeTestSink, CloudEventType: "com.twilio.eventstreams.test-event", Time: baseTime, TestID: "t-1", SinkSID: sid("DG", 1)}},
		},
		{
			name: "sink test event with a source that is not a sink SID",
			body: `{"type":"com.twilio.eventstreams.test-sink","source":"/v1/Sinks/DGnothex","id":"` + sid("EZ", 3) + `","time":"2026-03-02T10:15:30.123Z","data":{"test_id":"t-1"}}`,
			want: []TaskRouterEvent{{ID: sid("EZ", 3), Type: TypeTestSink, CloudEventType: "com.twilio.eventstreams.test-sink", Time: baseTime, TestID: "t-1"}},
		},
		{
			name: "ping task canceled by its TTL",
			body: mustJSON(patchPayload(cloudEvent(4, "task.canceled"), map[string]any{
				"task_canceled_reason": "Task TTL Exceeded", "task_assignment_status": "canceled",
				"reservation_sid": nil, "reservation_version": nil, "task_priority": 1000,
			})),
			want: []TaskRouterEvent{func() TaskRouterEvent {
				e := wantTaskRouterEvent(4, "task.canceled", "")
				e.Reason, e.TaskAssignmentStatus, e.ReservationSID, e.ReservationVersion, e.TaskPriority = "Task TTL Exceeded", "canceled", "", Version{}, 1000
				return e
			}()},
		},
		{
			name: "versions and priority sent as strings, attributes as objects",
			body: mustJSON(patchPayload(cloudEvent(2, "reservation.wrapup"), map[string]any{
				"task_version": "5", "worker_version": "18", "reservation_version": "4", "task_priority": "7",
				"task_attributes": map[string]any{"a": 1}, "worker_attributes": map[string]any{},
			})),
			want: []TaskRouterEvent{func() TaskRouterEvent {
				e := wantTaskRouterEvent(2, "reservation.wrapup", "wrapping")
				e.TaskVersion, e.WorkerVersion, e.ReservationVersion, e.TaskPriority = VersionOf(5), VersionOf(18), VersionOf(4), 7
				e.TaskAttributes, e.WorkerAttributes = `{"a":1}`, `{}`
				return e
			}()},
		},
		{
			name: "payload timestamp as RFC 3339",
			body: mustJSON(patchPayload(cloudEvent(1, "worker.activity.update"), map[string]any{"timestamp": baseTime.Add(time.Hour).Format(time.RFC3339Nano), "worker_previous_activity_sid": sid("WA", 1), "worker_previous_activity_name": "Available"})),
			want: []TaskRouterEvent{func() TaskRouterEvent {
				e := wantTaskRouterEvent(1, "worker.activity.update", "")
				e.Time, e.WorkerPreviousActivitySID, e.WorkerPreviousActivityName = baseTime.Add(time.Hour), sid("WA", 1), "Available"
				return e
			}()},
		},
		{
			// A worker or task just created is at version 0: that is a version, not its absence.
			name: "version 0 is a version, a missing version is none",
			body: mustJSON(patchPayload(cloudEvent(2, "reservation.accepted"), map[string]any{
				"task_version": 0, "worker_version": "0", "reservation_version": nil,
			})),
			want: []TaskRouterEvent{func() TaskRouterEvent {
				e := wantTaskRouterEvent(2, "reservation.accepted", "accepted")
				e.TaskVersion, e.WorkerVersion, e.ReservationVersion = VersionOf(0), VersionOf(0), Version{}
				return e
			}()},
		},
		{
			name: "payload timestamp missing: data timestamp used",
			body: mustJSON(patchPayload(cloudEvent(1, "reservation.accepted"), map[string]any{"timestamp": nil})),
			want: []TaskRouterEvent{wantTaskRouterEvent(1, "reservation.accepted", "accepted")},
		},
		{
			name: "reservation status sent explicitly wins",
			body: mustJSON(patchPayload(cloudEvent(1, "reservation.accepted"), map[string]any{"reservation_status": "wrapping"})),
			want: []TaskRouterEvent{wantTaskRouterEvent(1, "reservation.accepted", "wrapping")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEventStreams([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseEventStreams() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, timeEqual); diff != "" {
				t.Errorf("ParseEventStreams() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEventStreamsMalformed(t *testing.T) {
	good := func(i int) string { return mustJSON(cloudEvent(i, "reservation.accepted")) }
	noID := cloudEvent(1, "reservation.accepted")
	delete(noID, "id")

	tests := []struct {
		name string
		body string
		// wantIndexes are the indexes the error must name, each as an *EventError.
		wantIndexes []int
		// wantIDs are the events still returned.
		wantIDs  []string
		wantText string
	}{
		{"malformed element among good ones", "[" + good(0) + "," + mustJSON(noID) + "," + good(2) + "]", []int{1}, []string{sid("EZ", 0), sid("EZ", 2)}, "id is missing"},
		{"element not an object", "[" + good(0) + ",42]", []int{1}, []string{sid("EZ", 0)}, "not a JSON object"},
		{"null element", "[null]", []int{0}, nil, "not a JSON object"},
		{"id not a string", `[{"id":5,"type":"com.twilio.taskrouter.task.created"}]`, []int{0}, nil, "malformed"},
		{"no type", `[{"id":"EZ1"}]`, []int{0}, nil, "type is missing"},
		{"id with spaces", `[{"id":"EZ 1","type":"x"}]`, []int{0}, nil, "printable"},
		{"bad short type", mustJSON(withField(cloudEvent(0, "reservation.accepted"), "type", "com.twilio.taskrouter.Reservation Accepted")), []int{0}, nil, "not a TaskRouter event name"},
		{"empty short type", mustJSON(withField(cloudEvent(0, "reservation.accepted"), "type", "com.twilio.taskrouter.")), []int{0}, nil, "type is missing"},
		{"no data", mustJSON(withField(cloudEvent(0, "reservation.accepted"), "data", nil)), []int{0}, nil, "data"},
		{"payload not an object", mustJSON(withField(cloudEvent(0, "reservation.accepted"), "data", map[string]any{"payload": "x"})), []int{0}, nil, "data.payload"},
		{"no workspace", mustJSON(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"workspace_sid": nil})), []int{0}, nil, "workspace_sid is missing"},
		{"bad task SID", mustJSON(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"task_sid": "WT1"})), []int{0}, nil, "task_sid"},
		{"task attributes not JSON", mustJSON(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"task_attributes": "{oops"})), []int{0}, nil, "task_attributes is not valid JSON"},
		{"negative version", mustJSON(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"worker_version": -1})), []int{0}, nil, "worker_version"},
		{"fractional priority", mustJSON(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"task_priority": 1.5})), []int{0}, nil, "task_priority"},
		{"no timestamp anywhere", mustJSON(withField(withData(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"timestamp": nil}), "timestamp", nil), "time", nil)), []int{0}, nil, "no timestamp"},
		{"only garbage timestamps", mustJSON(withField(withData(patchPayload(cloudEvent(0, "reservation.accepted"), map[string]any{"timestamp": "soon"}), "timestamp", nil), "time", "later")), []int{0}, nil, "no usable timestamp"},
		{"test sink without test_id", `{"id":"EZ1","type":"com.twilio.eventstreams.test-sink","data":{}}`, []int{0}, nil, "test_id"},
		{"syntax error mid-array keeps earlier events", "[" + good(0) + "," + good(1) + ",{]", []int{2}, []string{sid("EZ", 0), sid("EZ", 1)}, "malformed"},
		{"missing comma", "[" + good(0) + " " + good(1) + "]", []int{1}, []string{sid("EZ", 0)}, "malformed"},
		{"unterminated array", "[" + good(0), []int{1}, []string{sid("EZ", 0)}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEventStreams([]byte(tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEventStreams() error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if diff := cmp.Diff(tt.wantIndexes, eventErrorIndexes(err)); diff != "" {
				t.Errorf("indexes named by the error (-want +got):\n%s\nerror: %v", diff, err)
			}
			var ids []string
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("events returned (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEventStreamsWholeBodyErrors(t *testing.T) {
	for _, body := range []string{"", "  \n", "42", `"x"`, "null", "[" + cloudEventsBatch(1)[1:] + "x"} {
		got, err := ParseEventStreams([]byte(body))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseEventStreams(%q) error = %v, want ErrMalformed", body, err)
		}
		if body[0:min(1, len(body))] != "[" && len(got) != 0 {
			t.Errorf("ParseEventStreams(%q) returned %d events", body, len(got))
		}
	}
}

func TestParseLegacyEvent(t *testing.T) {
	want := TaskRouterEvent{
		ID:                   sid("EV", 5),
		Type:                 "reservation.accepted",
		CloudEventType:       "com.twilio.taskrouter.reservation.accepted",
		Time:                 baseTime,
		AccountSID:           accountSID,
		WorkspaceSID:         workspaceSID,
		TaskSID:              sid("WT", 5),
		TaskChannel:          "voice",
		TaskAttributes:       `{"type":"inbound","isReconnect":true}`,
		TaskAssignmentStatus: "assigned",
		TaskQueueSID:         sid("WQ", 1),
		TaskQueueName:        "Everyone",
		WorkflowSID:          sid("WW", 1),
		WorkflowName:         "Assign to Anyone",
		ReservationSID:       sid("WR", 5),
		ReservationStatus:    "accepted",
		WorkerSID:            sid("WK", 9),
		WorkerName:           "alice",
		WorkerAttributes:     `{"contact_uri":"client:alice"}`,
		WorkerActivitySID:    sid("WA", 2),
		WorkerActivityName:   "On a Task",
		TaskPriority:         1000,
		WorkerVersion:        VersionOf(18),
		Description:          "Reservation accepted",
	}
	tests := []struct {
		name string
		form url.Values
		want TaskRouterEvent
	}{
		{"reservation.accepted", legacyForm("reservation.accepted"), want},
		{"seconds when TimestampMs is absent", with(legacyForm("reservation.accepted"), "TimestampMs", ""), func() TaskRouterEvent {
			e := want
			e.Time = baseTime.Truncate(time.Second)
			return e
		}()},
		{"garbage TimestampMs falls back to Timestamp", with(legacyForm("reservation.accepted"), "TimestampMs", "x"), func() TaskRouterEvent {
			e := want
			e.Time = baseTime.Truncate(time.Second)
			return e
		}()},
		{"task canceled", with(with(legacyForm("task.canceled"), "TaskCanceledReason", "Task TTL Exceeded"), "ReservationSid", ""), func() TaskRouterEvent {
			e := want
			e.Type, e.CloudEventType = "task.canceled", "com.twilio.taskrouter.task.canceled"
			e.Reason, e.ReservationSID, e.ReservationStatus = "Task TTL Exceeded", "", ""
			return e
		}()},
		{"legacy expression.updated spelling", legacyForm("task-queue.expression.updated"), func() TaskRouterEvent {
			e := want
			e.Type, e.CloudEventType = "task-queue.expression-updated", "com.twilio.taskrouter.task-queue.expression-updated"
			e.ReservationStatus = ""
			return e
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLegacyEvent(tt.form)
			if err != nil {
				t.Fatalf("ParseLegacyEvent() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, timeEqual); diff != "" {
				t.Errorf("ParseLegacyEvent() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Without a Sid the key is derived from the content: equal for a
// redelivery, different for another event.
func TestParseLegacyEventWithoutSid(t *testing.T) {
	form := with(legacyForm("reservation.accepted"), "Sid", "")
	first, err := ParseLegacyEvent(form)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseLegacyEvent(with(form, "WorkspaceName", "Flex Task Assignment"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParseLegacyEvent(with(form, "WorkerVersion", "19"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.ID, "legacy-") || first.ID != again.ID {
		t.Errorf("IDs of one callback: %q and %q, want equal and prefixed legacy-", first.ID, again.ID)
	}
	if first.ID == other.ID {
		t.Errorf("two different callbacks share the ID %q", first.ID)
	}
}

func TestParseLegacyEventRejects(t *testing.T) {
	form := legacyForm("reservation.accepted")
	tests := []struct {
		name     string
		form     url.Values
		wantText string
	}{
		{"no EventType", with(form, "EventType", ""), "EventType is missing"},
		{"bad EventType", with(form, "EventType", "Reservation Accepted"), "EventType"},
		{"bad Sid", with(form, "Sid", "EV1"), "Sid"},
		{"no WorkspaceSid", with(form, "WorkspaceSid", ""), "WorkspaceSid is missing"},
		{"bad WorkerSid", with(form, "WorkerSid", sid("WA", 1)), "WorkerSid"},
		{"bad WorkerActivitySid", with(form, "WorkerActivitySid", "WAx"), "WorkerActivitySid"},
		{"no timestamp", with(with(form, "TimestampMs", ""), "Timestamp", ""), "no timestamp"},
		{"timestamp garbage", with(with(form, "TimestampMs", ""), "Timestamp", "yesterday"), "no usable timestamp"},
		{"TaskPriority too large", with(form, "TaskPriority", "2147483648"), "TaskPriority"},
		{"TaskVersion not a number", with(form, "TaskVersion", "v3"), "TaskVersion"},
		{"WorkerAttributes not JSON", with(form, "WorkerAttributes", "{"), "WorkerAttributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLegacyEvent(tt.form)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseLegacyEvent() error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if diff := cmp.Diff(TaskRouterEvent{}, got); diff != "" {
				t.Errorf("ParseLegacyEvent() returned an event with its error:\n%s", diff)
			}
		})
	}
}

func TestParseEventTime(t *testing.T) {
	tests := []struct {
		raw     string
		want    time.Time
		wantErr bool
	}{
		{"1772446530", baseTime.Truncate(time.Second), false},
		{"1772446530123", baseTime, false},
		{"1772446530.123", baseTime, false},
		{"2026-03-02T10:15:30.123Z", baseTime, false},
		{"2026-03-02T11:15:30.123+01:00", baseTime, false},
		{"", time.Time{}, true},
		{"0", time.Time{}, true},
		{"100000000000000", time.Time{}, true}, // at the milliseconds ceiling
		{"1772446530123.5", time.Time{}, true},
		{"1772446530.", time.Time{}, true},
		{"1772446530.1234567890", time.Time{}, true},
		{"1e12", time.Time{}, true},
		{"Mon, 2 Mar 2026 10:15:30 +0000", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseEventTime(tt.raw)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseEventTime(%q) = %v, %v; want %v, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestIsTaskRouter(t *testing.T) {
	body := "[" + mustJSON(cloudEvent(0, "reservation.accepted")) + "," +
		`{"id":"EZ1","type":"com.twilio.eventstreams.test-sink","data":{"test_id":"t"}},` +
		`{"id":"EZ2","type":"com.twilio.apiusage.taskrouter.ratelimits"},` +
		`{"id":"EZ3","type":"task.created"}]`
	events, err := ParseEventStreams([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := ParseLegacyEvent(legacyForm("worker.activity.update"))
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, e := range append(events, legacy) {
		got = append(got, e.IsTaskRouter())
	}
	// A bare "task.created" CloudEvent type is not TaskRouter's, whatever it looks like.
	if diff := cmp.Diff([]bool{true, false, false, false, true}, got); diff != "" {
		t.Errorf("IsTaskRouter() (-want +got):\n%s", diff)
	}
}

func BenchmarkParseEventStreams(b *testing.B) {
	body := []byte(cloudEventsBatch(50))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, err := ParseEventStreams(body)
		if err != nil || len(events) != 50 {
			b.Fatalf("ParseEventStreams() = %d events, %v", len(events), err)
		}
	}
}

// eventErrorIndexes lists the indexes of every *EventError joined in err.
func eventErrorIndexes(err error) []int {
	var indexes []int
	var walk func(error)
	walk = func(err error) {
		var eventErr *EventError
		if errors.As(err, &eventErr) && err == error(eventErr) {
			indexes = append(indexes, eventErr.Index)
			return
		}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return indexes
}

// patchPayload sets (or, for nil, removes) fields of a cloudEvent's payload.
func patchPayload(event map[string]any, fields map[string]any) map[string]any {
	payload := event["data"].(map[string]any)["payload"].(map[string]any)
	for k, v := range fields {
		if v == nil {
			delete(payload, k)
		} else {
			payload[k] = v
		}
	}
	return event
}

// withData sets (or, for nil, removes) a field of a cloudEvent's data.
func withData(event map[string]any, key string, value any) map[string]any {
	data := event["data"].(map[string]any)
	if value == nil {
		delete(data, key)
	} else {
		data[key] = value
	}
	return event
}

// withField sets (or, for nil, removes) a top-level CloudEvent attribute.
func withField(event map[string]any, key string, value any) map[string]any {
	if value == nil {
		delete(event, key)
	} else {
		event[key] = value
	}
	return event
}

// TestVersionNewer: a known version orders after an unknown one and after a lower one; an unknown
// version orders after nothing, and 0 is as much a version as any other.
func TestVersionNewer(t *testing.T) {
	tests := []struct {
		v, old Version
		want   bool
	}{
		{VersionOf(1), VersionOf(0), true},
		{VersionOf(0), VersionOf(1), false},
		{VersionOf(0), VersionOf(0), false},
		{VersionOf(0), Version{}, true},
		{Version{}, VersionOf(0), false},
		{Version{}, Version{}, false},
	}
	for _, tt := range tests {
		if got := tt.v.Newer(tt.old); got != tt.want {
			t.Errorf("%+v.Newer(%+v) = %v, want %v", tt.v, tt.old, got, tt.want)
		}
	}
}
