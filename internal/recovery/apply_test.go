package recovery

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

func TestApplyConferenceEvent(t *testing.T) {
	tests := []struct {
		name   string
		marks  GracefulMarks
		events []events.ConferenceEvent
		want   v1alpha1.ConferenceRecoveryStatus
	}{{
		name: "join records roles and the customer call",
		events: []events.ConferenceEvent{
			ev(2, 1, events.ParticipantJoin, customerLeg, "customer"),
			ecoe(ev(3, 2, events.ParticipantJoin, agentLeg, "worker")),
			coach(ev(4, 3, events.ParticipantJoin, superLeg, "supervisor")),
		},
		want: v1alpha1.ConferenceRecoveryStatus{CustomerCallSID: customerLeg, LastSequenceNumber: 4, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: customerLeg, Label: "customer", Role: v1alpha1.RoleCustomer, JoinedAt: mt(1)},
			{CallSID: agentLeg, Label: "worker", Role: v1alpha1.RoleAgent, EndConferenceOnExit: true, JoinedAt: mt(2)},
			{CallSID: superLeg, Label: "supervisor", Role: v1alpha1.RoleSupervisor, Coaching: true, JoinedAt: mt(3)},
		}},
	}, {
		name: "leave before its join ends left",
		events: []events.ConferenceEvent{
			leave(5, 9, agentLeg, "worker", "participant_hung_up"),
			ev(3, 2, events.ParticipantJoin, agentLeg, "worker"),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 5, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: agentLeg, Label: "worker", Role: v1alpha1.RoleAgent, JoinedAt: mt(2), LeftAt: mt(9), LeftSequenceNumber: 5, LeaveReason: "participant_hung_up"},
		}},
	}, {
		name: "API-initiated leave is graceful",
		events: []events.ConferenceEvent{
			ev(3, 2, events.ParticipantJoin, agentLeg, "worker"),
			leave(5, 9, agentLeg, "worker", "participant_updated_via_api"),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 5, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: agentLeg, Label: "worker", Role: v1alpha1.RoleAgent, JoinedAt: mt(2), LeftAt: mt(9), LeftSequenceNumber: 5, LeaveReason: "participant_updated_via_api", Graceful: true},
		}},
	}, {
		name:  "companion mark makes a hang-up graceful",
		marks: GracefulMarks{agentLeg: true},
		events: []events.ConferenceEvent{
			leave(5, 9, agentLeg, "worker", "participant_hung_up"),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 5, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: agentLeg, Label: "worker", Role: v1alpha1.RoleAgent, LeftAt: mt(9), LeftSequenceNumber: 5, LeaveReason: "participant_hung_up", Graceful: true},
		}},
	}, {
		name: "rejoin after a leave reconnects; replayed old leave does not",
		events: []events.ConferenceEvent{
			ev(2, 1, events.ParticipantJoin, thirdLeg, "external"),
			leave(3, 5, thirdLeg, "external", "participant_updated_via_api"),
			ev(4, 8, events.ParticipantJoin, thirdLeg, "external"),
			leave(3, 5, thirdLeg, "external", "participant_updated_via_api"),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 4, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: thirdLeg, Label: "external", Role: v1alpha1.RoleThirdParty, JoinedAt: mt(8)},
		}},
	}, {
		name: "stale modify does not undo a newer one",
		events: []events.ConferenceEvent{
			ev(3, 2, events.ParticipantJoin, agentLeg, "worker"),
			ev(7, 4, events.ParticipantModify, agentLeg, "worker"),
			ecoe(ev(6, 3, events.ParticipantModify, agentLeg, "worker")),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 7, Participants: []v1alpha1.ParticipantStatus{
			{CallSID: agentLeg, Label: "worker", Role: v1alpha1.RoleAgent, JoinedAt: mt(2)},
		}},
	}, {
		name: "conference end",
		events: []events.ConferenceEvent{
			ev(9, 20, events.ConferenceEnd, "", ""),
		},
		want: v1alpha1.ConferenceRecoveryStatus{LastSequenceNumber: 9, ConferenceEndedAt: mt(20)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st v1alpha1.ConferenceRecoveryStatus
			if !applyAll(&st, tt.marks, tt.events...) {
				t.Fatal("first application reported no change")
			}
			// The per-leg sequence numbers have their own test (TestLateResetIsRecordedPerLeg).
			if diff := cmp.Diff(tt.want, st, cmpopts.IgnoreFields(v1alpha1.ParticipantStatus{}, "SequenceNumber")); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			before := st.DeepCopy()
			for _, e := range tt.events {
				if ApplyConferenceEvent(&st, e, tt.marks) {
					t.Errorf("re-applying seq %d reported a change", e.SequenceNumber)
				}
			}
			if diff := cmp.Diff(*before, st); diff != "" {
				t.Errorf("re-applying changed status (-before +after):\n%s", diff)
			}
		})
	}
}

func TestApplyNilStatus(t *testing.T) {
	if ApplyConferenceEvent(nil, ev(1, 0, events.ParticipantJoin, agentLeg, "worker"), nil) {
		t.Error("nil status reported a change")
	}
}
