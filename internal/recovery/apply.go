package recovery

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// GracefulMarks are the graceful-hangup marks posted by the Flex companion before the agent's leg
// leaves, keyed by the leg's call SID (CA…) or the agent's worker SID (WK…). A nil map has no marks.
type GracefulMarks map[string]bool

// Has reports whether the leg or its worker was marked graceful.
func (m GracefulMarks) Has(callSID, workerSID string) bool {
	if m == nil {
		return false
	}
	return (callSID != "" && m[callSID]) || (workerSID != "" && m[workerSID])
}

// ApplyConferenceEvent records one conference status callback in st and reports whether st changed.
//
// Ordering: membership (join/leave) is ordered per participant by the callback's Timestamp, kept in
// JoinedAt (the latest join) and LeftAt (the latest leave not superseded by a later join). A leave
// at or after the latest join wins, ties included, so a leave arriving before its join still ends
// with the leg left, and an old join or leave replayed later changes nothing. The timestamps are
// truncated to whole seconds in UTC, which is what both Twilio sends and a metav1.Time survives the
// API server with, so a redelivered or re-parsed event compares equal. The mutable leg fields
// (label, role, coaching, EndConferenceOnExit) are ordered per leg by SequenceNumber (Twilio numbers
// a conference's callbacks in order): a callback newer than the last one applied to that leg
// overwrites them, an older one does not. Ordering per leg and not per conference matters: Flex's
// reset of the agent leg arriving after another leg's later callback must still be recorded.
// Callbacks with the same SequenceNumber are taken to be the same callback (the webhook server
// deduplicates on it), so applying any sequence of callbacks a second time changes nothing.
func ApplyConferenceEvent(st *v1alpha1.ConferenceRecoveryStatus, ev events.ConferenceEvent, graceful GracefulMarks) (changed bool) {
	if st == nil {
		return false
	}
	if ev.SequenceNumber > st.LastSequenceNumber {
		st.LastSequenceNumber = ev.SequenceNumber
		changed = true
	}
	ts := metav1.NewTime(ev.Timestamp.UTC().Truncate(time.Second))

	if ev.Event == events.ConferenceEnd {
		if st.ConferenceEndedAt == nil || ts.Before(st.ConferenceEndedAt) {
			st.ConferenceEndedAt = &ts
			changed = true
		}
		return changed
	}
	if !ev.IsParticipantEvent() || ev.CallSID == "" {
		return changed
	}

	idx := participantIndex(st, ev.CallSID)
	created := false
	if idx < 0 {
		st.Participants = append(st.Participants, v1alpha1.ParticipantStatus{CallSID: ev.CallSID, Role: v1alpha1.RoleUnknown})
		idx = len(st.Participants) - 1
		created, changed = true, true
	}
	p := &st.Participants[idx]

	if created || ev.SequenceNumber > p.SequenceNumber {
		if setFields(p, ev) {
			changed = true
		}
		if ev.SequenceNumber > p.SequenceNumber {
			p.SequenceNumber, changed = ev.SequenceNumber, true
		}
	}
	if p.Role == v1alpha1.RoleCustomer && st.CustomerCallSID == "" {
		st.CustomerCallSID = p.CallSID
		changed = true
	}

	switch ev.Event {
	case events.ParticipantJoin:
		if p.JoinedAt == nil || ts.After(p.JoinedAt.Time) {
			p.JoinedAt = &ts
			changed = true
		}
		if p.LeftAt != nil && p.JoinedAt.After(p.LeftAt.Time) {
			// A join after the leave: the leg came back (for example after a redirect).
			p.LeftAt, p.LeftObservedAt, p.LeaveReason, p.Graceful = nil, nil, "", false
			p.LeftSequenceNumber = 0
			changed = true
		}
	case events.ParticipantLeave:
		if p.JoinedAt != nil && ts.Before(p.JoinedAt) {
			return changed // superseded by a later join
		}
		// A later leave of the leg replaces the earlier; within one second the sequence number
		// says which is later.
		if p.LeftAt == nil || ts.After(p.LeftAt.Time) || (ts.Equal(p.LeftAt) && ev.SequenceNumber > p.LeftSequenceNumber) {
			p.LeftAt = &ts
			p.LeftSequenceNumber = ev.SequenceNumber
			p.LeaveReason = ev.ReasonParticipantLeft
			changed = true
		}
		if !p.Graceful && (events.IsGracefulLeave(p.LeaveReason) || graceful.Has(p.CallSID, p.WorkerSID)) {
			p.Graceful = true
			changed = true
		}
	}
	return changed
}

// RecordReceipt records when the operator received a leave callback (its own clock): the start of
// the customer's wait, to the millisecond. It reports whether st changed.
func RecordReceipt(st *v1alpha1.ConferenceRecoveryStatus, ev events.ConferenceEvent, receivedAt time.Time) bool {
	if ev.Event != events.ParticipantLeave || receivedAt.IsZero() {
		return false
	}
	i := participantIndex(st, ev.CallSID)
	if i < 0 || st.Participants[i].LeftAt == nil || st.Participants[i].LeftObservedAt != nil {
		return false
	}
	at := metav1.NewMicroTime(receivedAt)
	st.Participants[i].LeftObservedAt = &at
	return true
}

// RecordCorrection records that endConferenceOnExit was set back to false on the leg after the
// callback with sequence number seq showed it true: the leg shows false unless a newer callback of
// the leg has been applied since (which then tells the truth). It reports whether st changed.
func RecordCorrection(st *v1alpha1.ConferenceRecoveryStatus, callSID string, seq int64) bool {
	i := participantIndex(st, callSID)
	if i < 0 {
		return false
	}
	p := &st.Participants[i]
	if p.SequenceNumber != seq || !p.EndConferenceOnExit {
		return false
	}
	p.EndConferenceOnExit = false
	return true
}

// setFields copies the leg's descriptive fields from the callback and reports whether any changed.
// A callback without a label keeps the role already known, since Twilio omits the label on some
// participant events and the controller may have filled the role in from the task.
func setFields(p *v1alpha1.ParticipantStatus, ev events.ConferenceEvent) bool {
	before := *p
	if ev.ParticipantLabel != "" {
		p.Label = ev.ParticipantLabel
	}
	p.Coaching = ev.Coaching
	if role := v1alpha1.ParticipantRole(events.ParticipantRole(ev.ParticipantLabel, ev.Coaching)); role != v1alpha1.RoleUnknown {
		p.Role = role
	}
	p.EndConferenceOnExit = ev.EndConferenceOnExit
	return before.Label != p.Label || before.Coaching != p.Coaching || before.Role != p.Role ||
		before.EndConferenceOnExit != p.EndConferenceOnExit
}

func participantIndex(st *v1alpha1.ConferenceRecoveryStatus, callSID string) int {
	for i := range st.Participants {
		if st.Participants[i].CallSID == callSID {
			return i
		}
	}
	return -1
}
