package recovery

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// Snapshot is what Twilio's REST API says about a recovery's call at one moment: the resync's
// answer to callbacks that never came (Twilio does not retry conference status callbacks).
type Snapshot struct {
	// At is when the snapshot was taken (the operator's clock); repairs are stamped with it.
	At time.Time
	// ConferenceEnded is true when the conference is completed or gone.
	ConferenceEnded bool
	// Participants are the conference's live legs (ignored when ConferenceEnded).
	Participants []LiveLeg
	// Ping and Reconnect are the incident's tasks, when they were read.
	Ping, Reconnect *TaskSnapshot
}

// LiveLeg is one connected participant as the REST API lists it.
type LiveLeg struct {
	CallSID             string
	Label               string
	Coaching            bool
	EndConferenceOnExit bool
}

// TaskSnapshot is a ping or reconnect task as the REST API shows it.
type TaskSnapshot struct {
	SID string
	// AssignmentStatus is TaskRouter's: pending, reserved, assigned, wrapping, completed, canceled.
	AssignmentStatus string
	Reason           string
	// WorkerSID is the worker who accepted it, when known.
	WorkerSID string
	// ConferenceSID is the conference Flex made for it (its conference.sid attribute).
	ConferenceSID string
}

// accepted reports whether an agent took the task.
func (t *TaskSnapshot) accepted() bool {
	switch t.AssignmentStatus {
	case "assigned", "wrapping", "completed":
		return true
	}
	return false
}

// ApplySnapshot repairs st with what the REST API showed and reports whether st changed. It fills
// in only what the callbacks and events would have said: a leg that left (its leave lost), a leg
// that joined (its join lost), the conference's end, the ping's outcome, the reconnect task, its
// acceptance and its conference. It never undoes an observation: what a callback recorded stays.
func ApplySnapshot(st *v1alpha1.ConferenceRecoveryStatus, s Snapshot) bool {
	changed := false
	at := metav1.NewTime(s.At.UTC().Truncate(time.Second))
	if s.ConferenceEnded {
		if st.ConferenceEndedAt == nil {
			st.ConferenceEndedAt, changed = &at, true
		}
	} else {
		changed = applyLegs(st, s.Participants, at) || changed
	}
	if t := s.Ping; t != nil && st.Ping != nil && st.Ping.TaskSID == t.SID && st.Ping.Outcome == "" {
		switch {
		case t.accepted():
			st.Ping.Outcome, st.Ping.ResolvedAt, changed = v1alpha1.PingAccepted, &at, true
		case t.AssignmentStatus == "canceled":
			st.Ping.Outcome = v1alpha1.PingCanceled
			if strings.Contains(strings.ToLower(t.Reason), "ttl") {
				st.Ping.Outcome = v1alpha1.PingTimedOut
			}
			st.Ping.ResolvedAt, changed = &at, true
		}
	}
	if t := s.Reconnect; t != nil && t.SID != "" {
		rc := st.Reconnect
		if rc == nil {
			rc = &v1alpha1.ReconnectStatus{}
		}
		if rc.TaskSID == "" || rc.TaskSID == t.SID {
			before := *rc
			rc.TaskSID = t.SID
			if rc.QueuedAt == nil && t.AssignmentStatus != "" {
				rc.QueuedAt = &at // it was created by the enqueue, so it went through a queue
			}
			switch {
			case t.accepted() && rc.AcceptedAt == nil && t.WorkerSID != "":
				rc.AcceptedAt, rc.WorkerSID = &at, t.WorkerSID
			case t.AssignmentStatus == "canceled" && rc.AcceptedAt == nil && rc.CanceledAt == nil:
				rc.CanceledAt, rc.CancelReason = &at, t.Reason
			}
			if rc.AcceptedAt != nil && rc.ConferenceSID == "" && t.ConferenceSID != "" {
				rc.ConferenceSID = t.ConferenceSID
			}
			if *rc != before {
				st.Reconnect, changed = rc, true
			}
		}
	}
	return changed
}

// applyLegs records the legs' membership as the REST API lists it.
func applyLegs(st *v1alpha1.ConferenceRecoveryStatus, live []LiveLeg, at metav1.Time) bool {
	changed := false
	seen := map[string]bool{}
	for _, l := range live {
		seen[l.CallSID] = true
		i := participantIndex(st, l.CallSID)
		if i < 0 {
			// Its join was lost: the REST API is Twilio reporting the leg.
			role := v1alpha1.ParticipantRole(events.ParticipantRole(l.Label, l.Coaching))
			st.Participants = append(st.Participants, v1alpha1.ParticipantStatus{CallSID: l.CallSID, Label: l.Label,
				Role: role, Coaching: l.Coaching, EndConferenceOnExit: l.EndConferenceOnExit, JoinedAt: &at})
			if role == v1alpha1.RoleCustomer && st.CustomerCallSID == "" {
				st.CustomerCallSID = l.CallSID
			}
			changed = true
			continue
		}
		p := &st.Participants[i]
		if p.LeftAt == nil && p.EndConferenceOnExit != l.EndConferenceOnExit {
			// A lost participant-modify: Flex's reset must be seen to be corrected.
			p.EndConferenceOnExit, changed = l.EndConferenceOnExit, true
		}
	}
	redirected := map[string]bool{}
	for _, a := range st.Actions {
		if leg, ok := IsRedial(a.Name); ok {
			redirected[leg] = true
		}
		if a.Name == NameEnqueueReconnect && st.CustomerCallSID != "" {
			redirected[st.CustomerCallSID] = true
		}
	}
	for i := range st.Participants {
		p := &st.Participants[i]
		if p.LeftAt != nil || seen[p.CallSID] || (p.JoinedAt != nil && p.JoinedAt.After(at.Time)) {
			continue
		}
		// Its leave was lost. A leg the operator redirected left through the API; for any other
		// the reason is unknown, which counts as non-graceful unless the leg was marked.
		observed := metav1.NewMicroTime(at.Time)
		p.LeftAt, p.LeftObservedAt = &at, &observed
		if redirected[p.CallSID] {
			p.LeaveReason = "participant_updated_via_api"
			p.Graceful = true
		}
		changed = true
	}
	return changed
}
