package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// sid makes a SID of Twilio's shape: prefix and 32 hex digits.
func sid(prefix string, n int) string { return fmt.Sprintf("%s%032x", prefix, n) }

var (
	accountSID   = sid("AC", 1)
	workspaceSID = sid("WS", 1)
	conferenceID = sid("CF", 7)
	agentCallSID = sid("CA", 2)
	baseTime     = time.Date(2026, 3, 2, 10, 15, 30, 123_000_000, time.UTC)
)

// conferenceForm is a realistic status callback for an agent leg, as Twilio
// sends it for event.
func conferenceForm(event string) url.Values {
	form := url.Values{
		"ConferenceSid":       {conferenceID},
		"FriendlyName":        {sid("WT", 3)},
		"AccountSid":          {accountSID},
		"SequenceNumber":      {"4"},
		"Timestamp":           {"Mon, 2 Mar 2026 10:15:30 +0000"},
		"StatusCallbackEvent": {event},
	}
	if strings.HasPrefix(event, "participant-") {
		form.Set("CallSid", agentCallSID)
		form.Set("ParticipantLabel", "worker")
		form.Set("Muted", "false")
		form.Set("Hold", "false")
		form.Set("Coaching", "false")
		form.Set("EndConferenceOnExit", "true")
		form.Set("StartConferenceOnEnter", "true")
	}
	if event == ParticipantLeave {
		form.Set("ReasonParticipantLeft", "participant_hung_up")
		form.Set("ParticipantCallStatus", "completed")
	}
	return form
}

// cloudEvent is a realistic Event Streams TaskRouter event (schema
// TaskRouter.WDSEvent/4), the i-th of a call's life.
func cloudEvent(i int, eventType string) map[string]any {
	ts := baseTime.Add(time.Duration(i) * time.Second)
	payload := map[string]any{
		"sid":                      sid("EV", i),
		"eventtype":                eventType,
		"account_sid":              accountSID,
		"workspace_sid":            workspaceSID,
		"workspace_name":           "Flex Task Assignment",
		"timestamp":                ts.UnixMilli(),
		"resource_type":            "reservation",
		"resource_sid":             sid("WR", i),
		"event_description":        "Reservation " + sid("WR", i) + " was accepted by worker alice",
		"task_sid":                 sid("WT", i),
		"task_attributes":          `{"type":"inbound","name":"+15555550100","channelType":"voice","call_sid":"` + sid("CA", i) + `","conversations":{"conversation_id":"` + sid("WT", i) + `"}}`,
		"task_age":                 12,
		"task_priority":            0,
		"task_version":             3,
		"task_assignment_status":   "assigned",
		"task_channel_sid":         sid("TC", 1),
		"task_channel_unique_name": "voice",
		"task_queue_sid":           sid("WQ", 1),
		"task_queue_name":          "Everyone",
		"task_queue_entered_date":  ts.Add(-10 * time.Second).Format(time.RFC3339),
		"workflow_sid":             sid("WW", 1),
		"workflow_name":            "Assign to Anyone",
		"reservation_sid":          sid("WR", i),
		"reservation_version":      2,
		"worker_sid":               sid("WK", 9),
		"worker_name":              "alice",
		"worker_attributes":        `{"contact_uri":"client:alice","routing":{"skills":["support"],"levels":{}},"full_name":"Alice"}`,
		"worker_activity_sid":      sid("WA", 2),
		"worker_activity_name":     "On a Task",
		"worker_version":           17,
	}
	return map[string]any{
		"specversion":     "1.0",
		"type":            "com.twilio.taskrouter." + eventType,
		"source":          "/v1/Workspaces/" + workspaceSID + "/Tasks/" + sid("WT", i) + "/Reservations/" + sid("WR", i),
		"id":              sid("EZ", i),
		"dataschema":      "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
		"datacontenttype": "application/json",
		"time":            ts.Format(time.RFC3339Nano),
		"data": map[string]any{
			"sid":                   sid("EV", i),
			"name":                  eventType,
			"account_sid":           accountSID,
			"account_friendly_name": "Contact centre",
			"timestamp":             ts.Format(time.RFC3339Nano),
			"level":                 "INFO",
			"group":                 "reservation",
			"product_name":          "TaskRouter",
			"publisher":             "TaskRouter",
			"publisher_metadata":    "{}",
			"payload_type":          "application/json",
			"payload":               payload,
		},
	}
}

// wantTaskRouterEvent is what cloudEvent(i, eventType) decodes to.
func wantTaskRouterEvent(i int, eventType, reservationStatus string) TaskRouterEvent {
	raw := cloudEvent(i, eventType)["data"].(map[string]any)["payload"].(map[string]any)
	return TaskRouterEvent{
		ID:                   sid("EZ", i),
		Type:                 eventType,
		CloudEventType:       "com.twilio.taskrouter." + eventType,
		Time:                 baseTime.Add(time.Duration(i) * time.Second),
		AccountSID:           accountSID,
		WorkspaceSID:         workspaceSID,
		TaskSID:              sid("WT", i),
		TaskChannel:          "voice",
		TaskAttributes:       raw["task_attributes"].(string),
		TaskAssignmentStatus: "assigned",
		TaskQueueSID:         sid("WQ", 1),
		TaskQueueName:        "Everyone",
		WorkflowSID:          sid("WW", 1),
		WorkflowName:         "Assign to Anyone",
		ReservationSID:       sid("WR", i),
		ReservationStatus:    reservationStatus,
		WorkerSID:            sid("WK", 9),
		WorkerName:           "alice",
		WorkerAttributes:     raw["worker_attributes"].(string),
		WorkerActivitySID:    sid("WA", 2),
		WorkerActivityName:   "On a Task",
		TaskVersion:          VersionOf(3),
		WorkerVersion:        VersionOf(17),
		ReservationVersion:   VersionOf(2),
		Description:          raw["event_description"].(string),
	}
}

var batchTypes = []string{"reservation.created", "reservation.accepted", "task-queue.entered", "task.canceled", "reservation.wrapup", "worker.activity.update"}

// cloudEventsBatch is a JSON array of n realistic events of mixed types.
func cloudEventsBatch(n int) string {
	batch := make([]any, n)
	for i := range batch {
		batch[i] = cloudEvent(i, batchTypes[i%len(batchTypes)])
	}
	return mustJSON(batch)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// legacyForm is a realistic workspace EventCallbackUrl POST.
func legacyForm(eventType string) url.Values {
	return url.Values{
		"Sid":                   {sid("EV", 5)},
		"EventType":             {eventType},
		"AccountSid":            {accountSID},
		"WorkspaceSid":          {workspaceSID},
		"WorkspaceName":         {"Flex Task Assignment"},
		"EventDescription":      {"Reservation accepted"},
		"ResourceType":          {"Reservation"},
		"ResourceSid":           {sid("WR", 5)},
		"Timestamp":             {"1772446530"},
		"TimestampMs":           {"1772446530123"},
		"TaskSid":               {sid("WT", 5)},
		"TaskAttributes":        {`{"type":"inbound","isReconnect":true}`},
		"TaskAge":               {"42"},
		"TaskPriority":          {"1000"},
		"TaskAssignmentStatus":  {"assigned"},
		"TaskChannelUniqueName": {"voice"},
		"TaskQueueSid":          {sid("WQ", 1)},
		"TaskQueueName":         {"Everyone"},
		"WorkflowSid":           {sid("WW", 1)},
		"WorkflowName":          {"Assign to Anyone"},
		"ReservationSid":        {sid("WR", 5)},
		"WorkerSid":             {sid("WK", 9)},
		"WorkerName":            {"alice"},
		"WorkerAttributes":      {`{"contact_uri":"client:alice"}`},
		"WorkerActivitySid":     {sid("WA", 2)},
		"WorkerActivityName":    {"On a Task"},
		"WorkerVersion":         {"18"},
	}
}
