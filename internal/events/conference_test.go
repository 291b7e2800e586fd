package events

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConferenceEvent(t *testing.T) {
	leave := conferenceForm(ParticipantLeave)
	wantLeave := ConferenceEvent{
		ConferenceSID:          conferenceID,
		FriendlyName:           sid("WT", 3),
		AccountSID:             accountSID,
		SequenceNumber:         4,
		Timestamp:              time.Date(2026, 3, 2, 10, 15, 30, 0, time.UTC),
		Event:                  ParticipantLeave,
		CallSID:                agentCallSID,
		ParticipantLabel:       "worker",
		EndConferenceOnExit:    true,
		StartConferenceOnEnter: true,
		ReasonParticipantLeft:  "participant_hung_up",
		ParticipantCallStatus:  "completed",
	}
	end := conferenceForm(ConferenceEnd)
	end.Set("ReasonConferenceEnded", "participant-with-end-conference-on-exit-left")
	end.Set("CallSidEndingConference", agentCallSID)
	end.Set("ParticipantLabelEndingConference", "worker")
	end.Set("Reason", "Participant "+agentCallSID+" with endConferenceOnExit left the conference")
	wantEnd := ConferenceEvent{
		ConferenceSID:                    conferenceID,
		FriendlyName:                     sid("WT", 3),
		AccountSID:                       accountSID,
		SequenceNumber:                   4,
		Timestamp:                        wantLeave.Timestamp,
		Event:                            ConferenceEnd,
		ReasonConferenceEnded:            "participant-with-end-conference-on-exit-left",
		CallSIDEndingConference:          agentCallSID,
		ParticipantLabelEndingConference: "worker",
		Reason:                           end.Get("Reason"),
	}
	supervisorJoin := conferenceForm(ParticipantJoin)
	supervisorJoin.Set("Coaching", "true")
	supervisorJoin.Set("Muted", "true")
	supervisorJoin.Set("Hold", "true")
	supervisorJoin.Set("ParticipantLabel", "supervisor")

	tests := []struct {
		name string
		form url.Values
		want ConferenceEvent
	}{
		{"participant-leave", leave, wantLeave},
		{"conference-end", end, wantEnd},
		{"participant-join with every flag set", supervisorJoin, func() ConferenceEvent {
			e := wantLeave
			e.Event, e.ParticipantLabel = ParticipantJoin, "supervisor"
			e.Coaching, e.Muted, e.Hold = true, true, true
			e.ReasonParticipantLeft, e.ParticipantCallStatus = "", ""
			return e
		}()},
		{"RFC1123 timestamp with GMT", with(leave, "Timestamp", "Mon, 02 Mar 2026 10:15:30 GMT"), wantLeave},
		{"RFC1123Z timestamp", with(leave, "Timestamp", "Mon, 02 Mar 2026 11:15:30 +0100"), func() ConferenceEvent {
			e := wantLeave
			e.Timestamp = time.Date(2026, 3, 2, 11, 15, 30, 0, time.FixedZone("", 3600))
			return e
		}()},
		{"announcement without CallSid", with(conferenceForm(AnnouncementEnd), "CallSid", ""), ConferenceEvent{
			ConferenceSID: conferenceID, FriendlyName: sid("WT", 3), AccountSID: accountSID,
			SequenceNumber: 4, Timestamp: wantLeave.Timestamp, Event: AnnouncementEnd,
		}},
		{"zero sequence number", with(leave, "SequenceNumber", "0"), func() ConferenceEvent {
			e := wantLeave
			e.SequenceNumber = 0
			return e
		}()},
		{"repeated key: first value wins", func() url.Values {
			f := with(leave, "CallSid", agentCallSID)
			f.Add("CallSid", sid("CA", 99))
			return f
		}(), wantLeave},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConferenceEvent(tt.form)
			if err != nil {
				t.Fatalf("ParseConferenceEvent() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("ParseConferenceEvent() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConferenceEventRejects(t *testing.T) {
	leave := conferenceForm(ParticipantLeave)
	tests := []struct {
		name    string
		form    url.Values
		wantErr error
		// wantText is a fragment the message must contain, so the field at
		// fault is named.
		wantText string
	}{
		{"no ConferenceSid", with(leave, "ConferenceSid", ""), ErrMalformed, "ConferenceSid is missing"},
		{"ConferenceSid of another type", with(leave, "ConferenceSid", sid("CA", 7)), ErrMalformed, "ConferenceSid"},
		{"short ConferenceSid", with(leave, "ConferenceSid", "CF123"), ErrMalformed, "ConferenceSid"},
		{"ConferenceSid not hex", with(leave, "ConferenceSid", "CF"+strings.Repeat("z", 32)), ErrMalformed, "ConferenceSid"},
		{"bad AccountSid", with(leave, "AccountSid", "ACnope"), ErrMalformed, "AccountSid"},
		{"participant event without CallSid", with(leave, "CallSid", ""), ErrMalformed, "CallSid is missing"},
		{"bad CallSid", with(leave, "CallSid", "CA-1"), ErrMalformed, "CallSid"},
		{"bad CallSidEndingConference", with(conferenceForm(ConferenceEnd), "CallSidEndingConference", "x"), ErrMalformed, "CallSidEndingConference"},
		{"no SequenceNumber", with(leave, "SequenceNumber", ""), ErrMalformed, "SequenceNumber is missing"},
		{"SequenceNumber not an integer", with(leave, "SequenceNumber", "4.5"), ErrMalformed, "SequenceNumber"},
		{"negative SequenceNumber", with(leave, "SequenceNumber", "-1"), ErrMalformed, "SequenceNumber"},
		{"SequenceNumber overflows", with(leave, "SequenceNumber", "99999999999999999999"), ErrMalformed, "SequenceNumber"},
		{"no Timestamp", with(leave, "Timestamp", ""), ErrMalformed, "Timestamp is missing"},
		{"RFC 3339 Timestamp", with(leave, "Timestamp", "2026-03-02T10:15:30Z"), ErrMalformed, "Timestamp"},
		{"Muted not a boolean", with(leave, "Muted", "yes"), ErrMalformed, "Muted"},
		{"Hold capitalised", with(leave, "Hold", "True"), ErrMalformed, "Hold"},
		{"Coaching not a boolean", with(leave, "Coaching", "1"), ErrMalformed, "Coaching"},
		{"EndConferenceOnExit not a boolean", with(leave, "EndConferenceOnExit", "on"), ErrMalformed, "EndConferenceOnExit"},
		{"StartConferenceOnEnter not a boolean", with(leave, "StartConferenceOnEnter", "no"), ErrMalformed, "StartConferenceOnEnter"},
		{"no StatusCallbackEvent", with(leave, "StatusCallbackEvent", ""), ErrMalformed, "StatusCallbackEvent is missing"},
		{"unknown StatusCallbackEvent", with(conferenceForm(ConferenceStart), "StatusCallbackEvent", "conference-record-end"), ErrUnknownEvent, "conference-record-end"},
		{"several problems reported together", with(with(leave, "Muted", "x"), "SequenceNumber", "y"), ErrMalformed, "Muted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConferenceEvent(tt.form)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseConferenceEvent() error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if got != (ConferenceEvent{}) {
				t.Errorf("ParseConferenceEvent() returned %+v with an error, want the zero value", got)
			}
		})
	}
	// Both problems of the last case are named.
	_, err := ParseConferenceEvent(with(with(leave, "Muted", "x"), "SequenceNumber", "y"))
	if !strings.Contains(err.Error(), "SequenceNumber") {
		t.Errorf("error %q does not report every problem", err)
	}
}

func TestConferenceEventDedupKey(t *testing.T) {
	e, err := ParseConferenceEvent(conferenceForm(ParticipantJoin))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.DedupKey(), conferenceID+"/4"; got != want {
		t.Errorf("DedupKey() = %q, want %q", got, want)
	}
}

func TestIsGracefulLeave(t *testing.T) {
	tests := map[string]bool{
		"participant_updated_via_api": true,
		"conference_ended_via_api":    true,
		"moderator_ended_conference":  true,
		"participant_hung_up":         false, // the page-refresh case
		"participant_add_failed":      false,
		"conference-ended-via-api":    false, // ReasonConferenceEnded spelling, not a leave reason
		"":                            false,
	}
	for reason, want := range tests {
		if got := IsGracefulLeave(reason); got != want {
			t.Errorf("IsGracefulLeave(%q) = %v, want %v", reason, got, want)
		}
	}
}

func TestParticipantRole(t *testing.T) {
	tests := []struct {
		label    string
		coaching bool
		want     Role
	}{
		{"customer", false, RoleCustomer},
		{"worker", false, RoleAgent},
		{"Worker", false, RoleAgent},
		{"worker-2", false, RoleAgent},
		{"worker-12", false, RoleAgent},
		{"worker-2", true, RoleSupervisor},
		{"worker-", false, RoleThirdParty},
		{"worker-x", false, RoleThirdParty},
		{"worker-2b", false, RoleThirdParty},
		{"workers", false, RoleThirdParty},
		{"worker", true, RoleSupervisor},
		{"", true, RoleSupervisor},
		{"supervisor", false, RoleThirdParty},
		{"external-+15555550100", false, RoleThirdParty},
		{"consultant", false, RoleThirdParty},
		{"", false, RoleUnknown},
	}
	for _, tt := range tests {
		if got := ParticipantRole(tt.label, tt.coaching); got != tt.want {
			t.Errorf("ParticipantRole(%q, %v) = %q, want %q", tt.label, tt.coaching, got, tt.want)
		}
	}
}

// with returns a copy of form with key set to value, or removed when value is "".
func with(form url.Values, key, value string) url.Values {
	out := make(url.Values, len(form))
	for k, v := range form {
		out[k] = append([]string(nil), v...)
	}
	if value == "" {
		out.Del(key)
	} else {
		out.Set(key, value)
	}
	return out
}
