package recovery

import (
	"testing"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// TestSnapshotRepairsLostCallbacks is defect 5 of issue 9: Twilio does not retry conference
// callbacks. What the REST API shows repairs the picture, and the recovery moves on from it.
func TestSnapshotRepairsLostCallbacks(t *testing.T) {
	at := t0.Add(time.Minute)
	live := []LiveLeg{{CallSID: customerLeg, Label: "customer"}}

	// The agent's leave was lost: the resync sees her gone and the recovery starts.
	st := callInProgress()
	if !ApplySnapshot(&st, Snapshot{At: at, Participants: live}) {
		t.Fatal("nothing repaired")
	}
	d := Decide(st, policy(), at)
	if d.Disconnect == nil || d.Disconnect.CallSID != agentLeg {
		t.Fatalf("no disconnect after the repair: %+v", d)
	}
	if ApplySnapshot(&st, Snapshot{At: at.Add(time.Minute), Participants: live}) {
		t.Error("a second identical snapshot changed the status")
	}

	// The conference-end was lost: the recovery can end, so it is garbage-collected.
	st = callInProgress()
	ApplySnapshot(&st, Snapshot{At: at, ConferenceEnded: true})
	if d := Decide(st, policy(), at); d.Phase != v1alpha1.PhaseEnded {
		t.Errorf("phase %s after a lost conference-end, want Ended", d.Phase)
	}

	// A join was lost: the leg Twilio lists is added, and counts.
	st = callInProgress()
	applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
	ApplySnapshot(&st, Snapshot{At: at, Participants: append(live, LiveLeg{CallSID: agent2Leg, Label: "worker"})})
	if d := Decide(st, policy(), at); d.Disconnect != nil {
		t.Errorf("a disconnect with bob in the call: %+v", d.Disconnect)
	}

	// The customer redirected into the queue is not taken for a hang-up.
	st = callInProgress()
	applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
	st.Disconnect = &v1alpha1.DisconnectStatus{CallSID: agentLeg, At: *mt(10)}
	st.Ping = &v1alpha1.PingStatus{TaskSID: pingSID}
	record(&st, v1alpha1.ActionDone, NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameEnqueueReconnect)
	st.Reconnect = &v1alpha1.ReconnectStatus{EnqueuedAt: mt(30)}
	ApplySnapshot(&st, Snapshot{At: at,
		Ping:      &TaskSnapshot{SID: pingSID, AssignmentStatus: "canceled", Reason: "Task TTL Exceeded"},
		Reconnect: &TaskSnapshot{SID: reconSID, AssignmentStatus: "assigned", WorkerSID: workerSID, ConferenceSID: sid("CF", 2)}})
	if st.Ping.Outcome != v1alpha1.PingTimedOut {
		t.Errorf("ping %+v", st.Ping)
	}
	rc := st.Reconnect
	if rc.TaskSID != reconSID || rc.AcceptedAt == nil || rc.WorkerSID != workerSID || rc.ConferenceSID != sid("CF", 2) {
		t.Errorf("reconnect %+v", rc)
	}
	if d := Decide(st, policy(), at); d.Phase == v1alpha1.PhaseAbandoned {
		t.Errorf("the redirected customer was taken for a hang-up: %s", d.Message)
	}
	// A callback recorded meanwhile is never undone.
	applyAll(&st, nil, ev(20, 70, events.ParticipantJoin, thirdLeg, "external"))
	if ApplySnapshot(&st, Snapshot{At: t0.Add(69 * time.Second), Participants: live}) {
		for _, p := range st.Participants {
			if p.CallSID == thirdLeg && p.LeftAt != nil {
				t.Error("a leg that joined after the snapshot was taken for gone")
			}
		}
	}
}
