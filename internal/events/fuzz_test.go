package events

import (
	"errors"
	"net/url"
	"testing"
)

// The fuzz targets check that no input makes a parser panic, that every error
// is one of the package's sentinels, and that a parse that succeeds yields
// events with their required fields.

func FuzzParseConferenceEvent(f *testing.F) {
	for _, event := range []string{ParticipantLeave, ParticipantJoin, ParticipantModify, ConferenceEnd, AnnouncementFail} {
		f.Add(conferenceForm(event).Encode())
	}
	f.Add("ConferenceSid=CF&SequenceNumber=-1&Timestamp=x&Muted=maybe")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		form, _ := url.ParseQuery(raw) // a partial form is still worth parsing
		event, err := ParseConferenceEvent(form)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnknownEvent", err)
			}
			if event != (ConferenceEvent{}) {
				t.Fatalf("an event was returned with an error: %+v", event)
			}
			return
		}
		switch {
		case !ValidSID(event.ConferenceSID, "CF"):
			t.Fatalf("ConferenceSID %q", event.ConferenceSID)
		case !knownConferenceEvents[event.Event]:
			t.Fatalf("Event %q", event.Event)
		case event.SequenceNumber < 0:
			t.Fatalf("SequenceNumber %d", event.SequenceNumber)
		case event.Timestamp.IsZero():
			t.Fatal("zero Timestamp")
		case event.IsParticipantEvent() && !ValidSID(event.CallSID, "CA"):
			t.Fatalf("participant event with CallSID %q", event.CallSID)
		}
	})
}

func FuzzParseEventStreams(f *testing.F) {
	f.Add([]byte(cloudEventsBatch(3)))
	f.Add([]byte(mustJSON(cloudEvent(1, "task.canceled"))))
	f.Add([]byte(`{"id":"EZ1","type":"com.twilio.eventstreams.test-sink","data":{"test_id":"t"}}`))
	f.Add([]byte(`[{"id":"AC1","type":"com.twilio.eventstreams.test-event","source":"Sink","data":"{\"test_id\":\"t\"}"}]`))
	f.Add([]byte(`[{"id":"EZ1","type":"com.twilio.voice.x","time":"2026-01-01T00:00:00Z"},null,{"id":""}]`))
	f.Add([]byte(`[{"id":"EZ2","type":"com.twilio.taskrouter.task.created","data":{"payload":{"workspace_sid":"WS00000000000000000000000000000001","timestamp":1772446530123,"task_priority":"1"}}}]`))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := ParseEventStreams(body)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		for i, event := range events {
			if checkID(event.ID) != nil || event.Type == "" {
				t.Fatalf("event %d: ID %q, Type %q", i, event.ID, event.Type)
			}
			switch {
			case event.Type == TypeTestSink:
				if event.TestID == "" {
					t.Fatalf("event %d: test-sink without TestID", i)
				}
				if event.SinkSID != "" && !ValidSID(event.SinkSID, "DG") {
					t.Fatalf("event %d: sink SID %q", i, event.SinkSID)
				}
			case event.IsTaskRouter():
				checkTaskRouterEvent(t, event)
			}
		}
	})
}

func FuzzParseLegacyEvent(f *testing.F) {
	f.Add(legacyForm("reservation.accepted").Encode())
	f.Add(with(legacyForm("worker.activity.update"), "Sid", "").Encode())
	f.Add("EventType=task.created&WorkspaceSid=WS00000000000000000000000000000001&Timestamp=1772446530.5")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		form, _ := url.ParseQuery(raw)
		event, err := ParseLegacyEvent(form)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if checkID(event.ID) != nil {
			t.Fatalf("ID %q", event.ID)
		}
		checkTaskRouterEvent(t, event)
	})
}

// checkTaskRouterEvent checks the fields a parsed TaskRouter event always has.
func checkTaskRouterEvent(t *testing.T, event TaskRouterEvent) {
	t.Helper()
	switch {
	case checkType(event.Type) != nil:
		t.Fatalf("Type %q", event.Type)
	case !ValidSID(event.WorkspaceSID, "WS"):
		t.Fatalf("WorkspaceSID %q", event.WorkspaceSID)
	case event.Time.IsZero():
		t.Fatal("zero Time")
	case event.TaskSID != "" && !ValidSID(event.TaskSID, "WT"),
		event.WorkerSID != "" && !ValidSID(event.WorkerSID, "WK"),
		event.ReservationSID != "" && !ValidSID(event.ReservationSID, "WR"):
		t.Fatalf("bad SID in %+v", event)
	case event.TaskPriority < 0 || event.TaskVersion.N < 0 || event.WorkerVersion.N < 0 || event.ReservationVersion.N < 0,
		!event.TaskVersion.Known && event.TaskVersion.N != 0, !event.WorkerVersion.Known && event.WorkerVersion.N != 0:
		t.Fatalf("negative number in %+v", event)
	}
}

func FuzzVerifySignature(f *testing.F) {
	form := vectorParams()
	f.Add(vectorToken, vectorURL, formContent, []byte(form.Encode()), vectorFormSig)
	f.Add(vectorToken, BodySHA256URL(vectorURL, []byte(vectorJSONBody)), jsonContent, []byte(vectorJSONBody), vectorJSONSig)
	f.Add("tok", "http://[::1]:80/x?bodySHA256=", "application/json; charset=utf-8", []byte("{}"), "AAAA")
	f.Add("tok", "https://h:8443/p?a=%zz#f", "", []byte("a=1&a=2&b"), "x")
	f.Fuzz(func(t *testing.T, token, rawURL, contentType string, body []byte, signature string) {
		err := VerifySignature(token, rawURL, contentType, body, signature)
		if err != nil && !errors.Is(err, ErrSignatureInvalid) && !errors.Is(err, ErrSignatureMissing) && !errors.Is(err, ErrNoAuthToken) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if token == "" {
			if err == nil {
				t.Fatal("accepted a request with no auth token")
			}
			return
		}

		// What the signers produce must verify.
		parsed, parseErr := url.Parse(rawURL)
		if parseErr != nil {
			return
		}
		if _, has := parsed.Query()[bodySHA256Param]; has {
			return
		}
		if params, err := url.ParseQuery(string(body)); err == nil {
			if err := VerifySignature(token, rawURL, formContent, body, SignForm(token, rawURL, params)); err != nil {
				t.Fatalf("form signed by SignForm: %v", err)
			}
		}
		signedURL := BodySHA256URL(rawURL, body)
		if _, err := url.Parse(signedURL); err != nil {
			return
		}
		sig := SignJSON(token, signedURL)
		if err := VerifySignature(token, signedURL, jsonContent, body, sig); err != nil {
			t.Fatalf("JSON signed by SignJSON: %v", err)
		}
		// ... and only for that body.
		if err := VerifySignature(token, signedURL, jsonContent, append(append([]byte(nil), body...), '!'), sig); !errors.Is(err, ErrSignatureInvalid) {
			t.Fatalf("JSON with a changed body: got %v, want ErrSignatureInvalid", err)
		}
	})
}
