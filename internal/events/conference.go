package events

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Parse errors.
var (
	// ErrMalformed is wrapped by every error about the content of an event:
	// a missing or ill-formed field, bad JSON, an unparsable timestamp.
	ErrMalformed = errors.New("malformed event")
	// ErrUnknownEvent is wrapped when a conference status callback names a
	// StatusCallbackEvent this package does not know. The request is genuine
	// (its signature checked out) but carries nothing the operator can use,
	// so the server may acknowledge and drop it.
	ErrUnknownEvent = errors.New("unknown conference event")
)

// Conference status callback events (StatusCallbackEvent), as Twilio documents
// them for <Conference statusCallbackEvent> and ConferenceStatusCallbackEvent.
const (
	ConferenceStart        = "conference-start"
	ConferenceEnd          = "conference-end"
	ParticipantJoin        = "participant-join"
	ParticipantLeave       = "participant-leave"
	ParticipantModify      = "participant-modify"
	ParticipantMute        = "participant-mute"
	ParticipantUnmute      = "participant-unmute"
	ParticipantHold        = "participant-hold"
	ParticipantUnhold      = "participant-unhold"
	ParticipantSpeechStart = "participant-speech-start"
	ParticipantSpeechStop  = "participant-speech-stop"
	AnnouncementEnd        = "announcement-end"
	AnnouncementFail       = "announcement-fail"
)

var knownConferenceEvents = map[string]bool{
	ConferenceStart: true, ConferenceEnd: true,
	ParticipantJoin: true, ParticipantLeave: true, ParticipantModify: true,
	ParticipantMute: true, ParticipantUnmute: true, ParticipantHold: true, ParticipantUnhold: true,
	ParticipantSpeechStart: true, ParticipantSpeechStop: true,
	AnnouncementEnd: true, AnnouncementFail: true,
}

// ConferenceEvent is one conference status callback. Booleans absent from the
// callback (they are only sent on participant events) are false.
type ConferenceEvent struct {
	ConferenceSID string
	FriendlyName  string
	AccountSID    string
	// SequenceNumber orders the callbacks of one conference; with
	// ConferenceSID it identifies a callback (see DedupKey).
	SequenceNumber int64
	Timestamp      time.Time
	// Event is the StatusCallbackEvent, one of the constants above.
	Event string

	// Participant fields: sent on participant-* events (CallSID is then
	// required) and on participant announcements.
	CallSID                string
	ParticipantLabel       string
	Muted                  bool
	Hold                   bool
	Coaching               bool
	EndConferenceOnExit    bool
	StartConferenceOnEnter bool

	// ReasonParticipantLeft and ParticipantCallStatus are sent on
	// participant-leave; see IsGracefulLeave.
	ReasonParticipantLeft string
	ParticipantCallStatus string

	// Sent on conference-end.
	ReasonConferenceEnded            string
	CallSIDEndingConference          string
	ParticipantLabelEndingConference string
	// Reason is Twilio's free-text explanation on conference-end.
	Reason string
}

// DedupKey identifies the callback for Dedup: Twilio numbers the callbacks of
// a conference, so a redelivery carries the same pair.
func (e ConferenceEvent) DedupKey() string {
	return e.ConferenceSID + "/" + strconv.FormatInt(e.SequenceNumber, 10)
}

// IsParticipantEvent reports whether the event concerns one participant, and
// so carries a CallSID.
func (e ConferenceEvent) IsParticipantEvent() bool {
	return strings.HasPrefix(e.Event, "participant-")
}

// ParseConferenceEvent decodes one conference status callback form. It
// requires a ConferenceSid (CF…), a known StatusCallbackEvent, an integer
// SequenceNumber, an RFC 2822 Timestamp and, on participant events, a CallSid
// (CA…); booleans must be "true" or "false". Every problem found is reported,
// not only the first. An unknown event wraps ErrUnknownEvent; everything else
// wraps ErrMalformed.
func ParseConferenceEvent(form url.Values) (ConferenceEvent, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	event := ConferenceEvent{
		ConferenceSID:                    form.Get("ConferenceSid"),
		FriendlyName:                     form.Get("FriendlyName"),
		AccountSID:                       form.Get("AccountSid"),
		Event:                            form.Get("StatusCallbackEvent"),
		CallSID:                          form.Get("CallSid"),
		ParticipantLabel:                 form.Get("ParticipantLabel"),
		ReasonParticipantLeft:            form.Get("ReasonParticipantLeft"),
		ParticipantCallStatus:            form.Get("ParticipantCallStatus"),
		ReasonConferenceEnded:            form.Get("ReasonConferenceEnded"),
		CallSIDEndingConference:          form.Get("CallSidEndingConference"),
		ParticipantLabelEndingConference: form.Get("ParticipantLabelEndingConference"),
		Reason:                           form.Get("Reason"),
	}

	if !ValidSID(event.ConferenceSID, "CF") {
		fail("ConferenceSid %s", describeSID(event.ConferenceSID, "CF"))
	}
	if event.AccountSID != "" && !ValidSID(event.AccountSID, "AC") {
		fail("AccountSid %s", describeSID(event.AccountSID, "AC"))
	}
	if event.CallSIDEndingConference != "" && !ValidSID(event.CallSIDEndingConference, "CA") {
		fail("CallSidEndingConference %s", describeSID(event.CallSIDEndingConference, "CA"))
	}
	// CallSid is required on participant events; announcements may carry one.
	if event.CallSID != "" || event.IsParticipantEvent() {
		if !ValidSID(event.CallSID, "CA") {
			fail("CallSid %s", describeSID(event.CallSID, "CA"))
		}
	}

	switch raw := form.Get("SequenceNumber"); {
	case raw == "":
		fail("SequenceNumber is missing")
	default:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			fail("SequenceNumber %q is not a non-negative integer", truncate(raw))
		}
		event.SequenceNumber = n
	}

	switch raw := form.Get("Timestamp"); {
	case raw == "":
		fail("Timestamp is missing")
	default:
		ts, err := parseRFC2822(raw)
		if err != nil {
			fail("Timestamp %q is not an RFC 2822 date", truncate(raw))
		}
		event.Timestamp = ts
	}

	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{"Muted", &event.Muted},
		{"Hold", &event.Hold},
		{"Coaching", &event.Coaching},
		{"EndConferenceOnExit", &event.EndConferenceOnExit},
		{"StartConferenceOnEnter", &event.StartConferenceOnEnter},
	} {
		switch raw := form.Get(b.name); raw {
		case "", "false":
		case "true":
			*b.dst = true
		default:
			fail("%s %q is neither true nor false", b.name, truncate(raw))
		}
	}

	if len(errs) > 0 {
		return ConferenceEvent{}, fmt.Errorf("conference status callback: %w: %w", ErrMalformed, errors.Join(errs...))
	}
	// Checked last so that a malformed callback is reported as malformed even
	// when its event name is also unknown.
	switch {
	case event.Event == "":
		return ConferenceEvent{}, fmt.Errorf("conference status callback: %w: StatusCallbackEvent is missing", ErrMalformed)
	case !knownConferenceEvents[event.Event]:
		return ConferenceEvent{}, fmt.Errorf("conference status callback: %w: %q", ErrUnknownEvent, truncate(event.Event))
	}
	return event, nil
}

// parseRFC2822 parses Twilio's callback timestamps ("Thu, 1 Jun 2017 20:48:32
// +0000"). net/mail implements RFC 5322 dates, single-digit days included,
// which time.RFC1123Z ("02") rejects; the time package layouts remain as a
// fallback for zone abbreviations net/mail does not know.
func parseRFC2822(raw string) (time.Time, error) {
	if ts, err := mail.ParseDate(raw); err == nil {
		return ts, nil
	}
	var firstErr error
	for _, layout := range []string{time.RFC1123Z, time.RFC1123} {
		ts, err := time.Parse(layout, raw)
		if err == nil {
			return ts, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return time.Time{}, firstErr
}

// IsGracefulLeave reports whether a participant-leave's ReasonParticipantLeft
// says the leg was taken away on purpose through the API (a redirect, an
// ended conference), which never starts a recovery. participant_hung_up is
// not graceful: it is what an agent's page refresh looks like.
func IsGracefulLeave(reason string) bool {
	switch reason {
	case "participant_updated_via_api", "conference_ended_via_api", "moderator_ended_conference":
		return true
	}
	return false
}

// ValidSID reports whether sid has the shape of a Twilio SID of one resource type: its two-letter
// prefix and 32 lower-case hexadecimal digits, as Twilio issues them and the CRDs' patterns accept.
// Keeping to that shape also keeps a SID safe to use as a Kubernetes object name. It is the
// project's one SID validator.
func ValidSID(sid, prefix string) bool {
	if len(sid) != 34 || sid[:2] != prefix {
		return false
	}
	for i := 2; i < len(sid); i++ {
		if c := sid[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// describeSID explains why sid failed validSID, for an error message.
func describeSID(sid, prefix string) string {
	if sid == "" {
		return "is missing"
	}
	return fmt.Sprintf("%q is not a %s SID (%s and 32 lower-case hex digits)", truncate(sid), prefix, prefix)
}

// truncate keeps error messages about hostile input short.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
