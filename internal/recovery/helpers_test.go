package recovery

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func sid(prefix string, n int) string { return fmt.Sprintf("%s%032x", prefix, n) }

var (
	confSID     = sid("CF", 1)
	customerLeg = sid("CA", 1)
	agentLeg    = sid("CA", 2)
	agent2Leg   = sid("CA", 3)
	superLeg    = sid("CA", 4)
	thirdLeg    = sid("CA", 5)
	workerSID   = sid("WK", 1)
	workflowSID = sid("WW", 1)
	taskSID     = sid("WT", 1)
	pingSID     = sid("WT", 2)
	reconSID    = sid("WT", 3)
	resSID      = sid("WR", 1)
)

// ev builds a conference callback; seconds is its offset from t0.
func ev(seq int64, seconds int, event, call, label string) events.ConferenceEvent {
	return events.ConferenceEvent{ConferenceSID: confSID, SequenceNumber: seq, Timestamp: t0.Add(time.Duration(seconds) * time.Second),
		Event: event, CallSID: call, ParticipantLabel: label}
}

func leave(seq int64, seconds int, call, label, reason string) events.ConferenceEvent {
	e := ev(seq, seconds, events.ParticipantLeave, call, label)
	e.ReasonParticipantLeft = reason
	return e
}

func coach(e events.ConferenceEvent) events.ConferenceEvent { e.Coaching = true; return e }

func ecoe(e events.ConferenceEvent) events.ConferenceEvent { e.EndConferenceOnExit = true; return e }

func applyAll(st *v1alpha1.ConferenceRecoveryStatus, marks GracefulMarks, evs ...events.ConferenceEvent) bool {
	changed := false
	for _, e := range evs {
		if ApplyConferenceEvent(st, e, marks) {
			changed = true
		}
	}
	return changed
}

func mt(seconds int) *metav1.Time {
	t := metav1.NewTime(t0.Add(time.Duration(seconds) * time.Second))
	return &t
}

func policy() v1alpha1.ConferenceRecoveryPolicySpec {
	return v1alpha1.ConferenceRecoveryPolicySpec{
		Ping:      v1alpha1.PingSpec{TTL: &metav1.Duration{Duration: 15 * time.Second}, Priority: 1000, WorkflowName: "Recovery Ping"},
		Reconnect: v1alpha1.ReconnectSpec{Priority: 2000, Timeout: &metav1.Duration{Duration: 30 * time.Minute}},
		Customer:  v1alpha1.CustomerExperience{AnnouncementURL: "https://example.com/interrupted.mp3", HoldMusicURL: "https://example.com/hold.mp3"},
	}
}

func names(actions []Action) []string {
	out := []string{}
	for _, a := range actions {
		out = append(out, a.ActionName())
	}
	return out
}

func record(st *v1alpha1.ConferenceRecoveryStatus, state v1alpha1.ActionState, names ...string) {
	for _, n := range names {
		st.Actions = append(st.Actions, v1alpha1.RecoveryAction{Name: n, State: state, At: *mt(0)})
	}
}

// callInProgress is a conference with the customer and one agent, the agent's flag already corrected.
func callInProgress() v1alpha1.ConferenceRecoveryStatus {
	var st v1alpha1.ConferenceRecoveryStatus
	applyAll(&st, nil,
		ev(1, 0, events.ConferenceStart, "", ""),
		ev(2, 1, events.ParticipantJoin, customerLeg, "customer"),
		ev(3, 2, events.ParticipantJoin, agentLeg, "worker"),
	)
	st.Phase = v1alpha1.PhaseMonitoring
	return st
}
