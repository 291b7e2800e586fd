package events

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// activityCloudEvent is an Event Streams activity event: TaskRouter sends the activity's SID,
// name and availability (the event reference's ActivitySid, ActivityName, ActivityAvailable).
func activityCloudEvent(eventType string, available any) map[string]any {
	ev := cloudEvent(4, eventType)
	payload := ev["data"].(map[string]any)["payload"].(map[string]any)
	for k := range payload {
		switch k {
		case "sid", "eventtype", "account_sid", "workspace_sid", "workspace_name", "timestamp":
		default:
			delete(payload, k)
		}
	}
	payload["resource_type"] = "activity"
	payload["resource_sid"] = sid("WA", 7)
	payload["activity_sid"] = sid("WA", 7)
	payload["activity_name"] = "Lunch"
	if available != nil {
		payload["activity_available"] = available
	}
	return ev
}

func TestParseActivityEvents(t *testing.T) {
	for _, typ := range []string{"activity.created", "activity.updated", "activity.deleted"} {
		t.Run(typ, func(t *testing.T) {
			got, err := ParseEventStreams([]byte(mustJSON(activityCloudEvent(typ, false))))
			if err != nil {
				t.Fatal(err)
			}
			ev := got[0]
			if ev.Type != typ || ev.ActivitySID != sid("WA", 7) || ev.ActivityName != "Lunch" ||
				ev.ActivityAvailable == nil || *ev.ActivityAvailable {
				t.Fatalf("got %+v", ev)
			}
		})
	}
	t.Run("availability absent", func(t *testing.T) {
		got, err := ParseEventStreams([]byte(mustJSON(activityCloudEvent("activity.updated", nil))))
		if err != nil {
			t.Fatal(err)
		}
		if got[0].ActivityAvailable != nil {
			t.Fatalf("availability %v, want nil (not sent)", *got[0].ActivityAvailable)
		}
	})
	t.Run("legacy callback", func(t *testing.T) {
		form := url.Values{
			"Sid": {sid("EV", 5)}, "EventType": {"activity.created"}, "AccountSid": {accountSID},
			"WorkspaceSid": {workspaceSID}, "ResourceType": {"Activity"}, "ResourceSid": {sid("WA", 7)},
			"Timestamp": {"1772446530"}, "ActivitySid": {sid("WA", 7)}, "ActivityName": {"Lunch"},
			"ActivityAvailable": {"true"},
		}
		ev, err := ParseLegacyEvent(form)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ActivitySID != sid("WA", 7) || ev.ActivityName != "Lunch" || ev.ActivityAvailable == nil || !*ev.ActivityAvailable {
			t.Fatalf("got %+v", ev)
		}
		if !ev.Time.Equal(time.Unix(1772446530, 0)) {
			t.Fatalf("time %v", ev.Time)
		}
	})
	for name, patch := range map[string]map[string]any{
		"availability not a boolean": {"activity_available": "maybe"},
		"activity SID malformed":     {"activity_sid": "WA1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseEventStreams([]byte(mustJSON(patchPayload(activityCloudEvent("activity.created", false), patch))))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			for k := range patch {
				if !strings.Contains(err.Error(), k) {
					t.Fatalf("error %q does not name %s", err, k)
				}
			}
		})
	}
}
