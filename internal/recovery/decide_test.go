package recovery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// disconnected is callInProgress after the agent's page refresh, with the disconnect stored.
func disconnected() v1alpha1.ConferenceRecoveryStatus {
	st := callInProgress()
	applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
	st.Participants[1].WorkerSID = workerSID
	st.Disconnect = &v1alpha1.DisconnectStatus{WorkerSID: workerSID, CallSID: agentLeg, ReservationSID: resSID, Reason: "participant_hung_up", At: *mt(10)}
	st.Phase = v1alpha1.PhaseDisconnected
	return st
}

// pinged is disconnected after the first steps, with the ping resolved as outcome.
func pinged(outcome v1alpha1.PingOutcome) v1alpha1.ConferenceRecoveryStatus {
	st := disconnected()
	record(&st, v1alpha1.ActionDone, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameCreatePingTask)
	st.Ping = &v1alpha1.PingStatus{TaskSID: pingSID, CreatedAt: mt(11), Outcome: outcome, ResolvedAt: mt(20)}
	st.Phase = v1alpha1.PhasePinging
	return st
}

// targetedReconnect is pinged(Accepted) after the enqueue routed the customer back to the agent,
// with the reconnect task queued and the original reservation completed.
func targetedReconnect() v1alpha1.ConferenceRecoveryStatus {
	st := pinged(v1alpha1.PingAccepted)
	record(&st, v1alpha1.ActionDone, NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect, NameCompleteOriginalReservation)
	st.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: workerSID, EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22),
		OriginalReservationCompletedAt: mt(23)}
	st.Phase = v1alpha1.PhaseReconnecting
	return st
}

func TestDecide(t *testing.T) {
	now := t0.Add(time.Minute)
	tests := []struct {
		name        string
		st          func() v1alpha1.ConferenceRecoveryStatus
		now         time.Time
		wantPhase   v1alpha1.RecoveryPhase
		wantReason  string
		wantActions []string
		wantDisc    bool
	}{{
		name:       "call in progress is watched",
		st:         callInProgress,
		wantPhase:  v1alpha1.PhaseMonitoring,
		wantReason: ReasonWatching,
	}, {
		name: "refresh of the only agent detects and starts the ping",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantReason:  ReasonAgentDisconnected,
		wantActions: []string{NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask},
		wantDisc:    true,
	}, {
		name: "warm transfer: another agent still present",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"), leave(5, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:  v1alpha1.PhaseMonitoring,
		wantReason: ReasonWatching,
	}, {
		name: "warm transfer then the second agent hangs up gracefully",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"), leave(5, 10, agentLeg, "worker", "participant_hung_up"),
				leave(6, 20, agent2Leg, "worker", "participant_updated_via_api"))
			return st
		},
		wantPhase:  v1alpha1.PhaseMonitoring,
		wantReason: ReasonNoAgentLeft,
	}, {
		// Defect 4 of issue 17: the graceful leave came first in the same second; the leaves are
		// ordered by sequence number, so the refresh is the last and a recovery starts.
		name: "two agents leave in one second, graceful first: recovery",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"),
				leave(5, 10, agentLeg, "worker", "participant_updated_via_api"), leave(6, 10, agent2Leg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantReason:  ReasonAgentDisconnected,
		wantActions: []string{NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask},
		wantDisc:    true,
	}, {
		name: "two agents leave in one second, graceful first, callbacks delivered in reverse: recovery",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"),
				leave(6, 10, agent2Leg, "worker", "participant_hung_up"), leave(5, 10, agentLeg, "worker", "participant_updated_via_api"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantReason:  ReasonAgentDisconnected,
		wantActions: []string{NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask},
		wantDisc:    true,
	}, {
		name: "two agents leave in one second, graceful last: no recovery",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"),
				leave(5, 10, agent2Leg, "worker", "participant_hung_up"), leave(6, 10, agentLeg, "worker", "participant_updated_via_api"))
			return st
		},
		wantPhase:  v1alpha1.PhaseMonitoring,
		wantReason: ReasonNoAgentLeft,
	}, {
		name: "sequence number outranks a later timestamp",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 5, events.ParticipantJoin, agent2Leg, "worker"),
				leave(5, 11, agentLeg, "worker", "participant_updated_via_api"), leave(6, 10, agent2Leg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantReason:  ReasonAgentDisconnected,
		wantActions: []string{NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask},
		wantDisc:    true,
	}, {
		name: "supervisor leg does not count as an agent",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, coach(ev(4, 5, events.ParticipantJoin, superLeg, "worker")), leave(5, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantActions: []string{NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask},
		wantReason:  ReasonAgentDisconnected,
		wantDisc:    true,
	}, {
		name: "customer hung up before the agent: no recovery",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, leave(4, 8, customerLeg, "customer", "participant_hung_up"), leave(5, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:  v1alpha1.PhaseMonitoring,
		wantReason: ReasonWatching,
	}, {
		name: "graceful leave via API then conference end: Ended",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "conference_ended_via_api"), ev(5, 11, events.ConferenceEnd, "", ""))
			return st
		},
		wantPhase:  v1alpha1.PhaseEnded,
		wantReason: ReasonConferenceEnded,
	}, {
		name: "conference already ended when the leave is seen: no recovery",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(5, 11, events.ConferenceEnd, "", ""), leave(4, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase: v1alpha1.PhaseEnded, wantReason: ReasonConferenceEnded,
	}, {
		name: "customer hangs up while pinging: Abandoned, no enqueue",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged("")
			applyAll(&st, nil, leave(9, 15, customerLeg, "customer", "participant_hung_up"))
			return st
		},
		wantPhase: v1alpha1.PhaseAbandoned, wantReason: ReasonCustomerLeft,
		wantActions: []string{NameCancelPingTask},
	}, {
		name: "customer hangs up after the ping was accepted: Abandoned, no enqueue",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingAccepted)
			applyAll(&st, nil, leave(9, 15, customerLeg, "customer", "participant_hung_up"))
			return st
		},
		wantPhase: v1alpha1.PhaseAbandoned, wantReason: ReasonCustomerLeft,
		wantActions: []string{NameCompletePingTask},
	}, {
		name: "customer hangs up before the ping exists: Abandoned, nothing to clean",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := disconnected()
			applyAll(&st, nil, leave(9, 11, customerLeg, "customer", "participant_hung_up"))
			return st
		},
		wantPhase: v1alpha1.PhaseAbandoned, wantReason: ReasonCustomerLeft,
	}, {
		name: "customer hangs up after the ping timed out: Abandoned, nothing to clean",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingTimedOut)
			applyAll(&st, nil, leave(9, 30, customerLeg, "customer", "participant_hung_up"))
			return st
		},
		wantPhase: v1alpha1.PhaseAbandoned, wantReason: ReasonCustomerLeft,
	}, {
		name: "pending steps are not produced again",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			s := disconnected()
			record(&s, v1alpha1.ActionPending, NameAnnounce, NameCreatePingTask)
			return s
		},
		wantPhase: v1alpha1.PhaseDisconnected, wantReason: ReasonAgentDisconnected,
		wantActions: []string{NameHoldCustomer, NameMarkOriginalTask},
	}, {
		name: "ping created: Pinging, nothing to do",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			return pinged("")
		},
		wantPhase: v1alpha1.PhasePinging, wantReason: ReasonPingCreated,
	}, {
		name:        "ping accepted: complete ping, mark, enqueue to the agent",
		st:          func() v1alpha1.ConferenceRecoveryStatus { return pinged(v1alpha1.PingAccepted) },
		wantPhase:   v1alpha1.PhaseReconnecting,
		wantReason:  ReasonPingResolved,
		wantActions: []string{NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect},
	}, {
		name:        "ping TTL: fallback enqueue only",
		st:          func() v1alpha1.ConferenceRecoveryStatus { return pinged(v1alpha1.PingTimedOut) },
		wantPhase:   v1alpha1.PhaseReconnecting,
		wantReason:  ReasonPingResolved,
		wantActions: []string{NameEnqueueReconnect},
	}, {
		name: "enqueued but not yet queued: reservation left alone",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingAccepted)
			record(&st, v1alpha1.ActionDone, NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect)
			st.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: workerSID, EnqueuedAt: mt(21)}
			return st
		},
		now:       t0.Add(30 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonPingResolved,
	}, {
		name: "the customer's redirect into the queue is not an abandon",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingAccepted)
			record(&st, v1alpha1.ActionDone, NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect)
			st.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: workerSID, EnqueuedAt: mt(21)}
			applyAll(&st, nil, leave(9, 21, customerLeg, "customer", "participant_updated_via_api"))
			return st
		},
		now:       t0.Add(30 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonPingResolved,
	}, {
		name: "reconnect queued: complete the original reservation",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingAccepted)
			record(&st, v1alpha1.ActionDone, NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect)
			st.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: workerSID, EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22)}
			return st
		},
		now:       t0.Add(30 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectQueued,
		wantActions: []string{NameCompleteOriginalReservation},
	}, {
		// Issue 17, defect 3: the agent answered the ping but does not take the reconnect task.
		name:      "targeted reconnect not taken within the ping's TTL: reroute to anyone",
		st:        targetedReconnect,
		now:       t0.Add(36 * time.Second), // enqueued at 21 s, ping TTL 15 s
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectRerouted,
		wantActions: []string{NameRerouteReconnect},
	}, {
		name: "targeted reconnect rejected by the agent: reroute at once",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := targetedReconnect()
			st.Reconnect.TargetRefusedAt, st.Reconnect.TargetRefusal = mt(24), "rejected"
			return st
		},
		now:       t0.Add(24 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectRerouted,
		wantActions: []string{NameRerouteReconnect},
	}, {
		name: "targeted reconnect offer timed out: reroute at once",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := targetedReconnect()
			st.Reconnect.TargetRefusedAt, st.Reconnect.TargetRefusal = mt(24), "timeout"
			return st
		},
		now:       t0.Add(24 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectRerouted,
		wantActions: []string{NameRerouteReconnect},
	}, {
		name:      "targeted reconnect within the bound: wait for the agent",
		st:        targetedReconnect,
		now:       t0.Add(35 * time.Second),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectQueued,
	}, {
		name: "rerouted reconnect: the status says so, nothing more to do",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := targetedReconnect()
			record(&st, v1alpha1.ActionDone, NameRerouteReconnect)
			st.Reconnect.ReroutedAt, st.Reconnect.RerouteReason = mt(36), "Agent WK… did not take the reconnect within 15s"
			return st
		},
		now:       t0.Add(10 * time.Minute),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectRerouted,
	}, {
		name: "fallback reconnect is never rerouted",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingTimedOut)
			record(&st, v1alpha1.ActionDone, NameEnqueueReconnect, NameCompleteOriginalReservation)
			st.Reconnect = &v1alpha1.ReconnectStatus{Fallback: true, EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22), OriginalReservationCompletedAt: mt(23)}
			return st
		},
		now:       t0.Add(10 * time.Minute),
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectQueued,
	}, {
		name: "no agent within the reconnect timeout: Failed",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingTimedOut)
			record(&st, v1alpha1.ActionDone, NameEnqueueReconnect)
			st.Reconnect = &v1alpha1.ReconnectStatus{Fallback: true, EnqueuedAt: mt(21), QueuedAt: mt(22)}
			return st
		},
		now:       t0.Add(21*time.Second + 30*time.Minute),
		wantPhase: v1alpha1.PhaseFailed, wantReason: ReasonReconnectTimeout,
	}, {
		name: "reconnect task canceled before an agent took it: Abandoned",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingTimedOut)
			record(&st, v1alpha1.ActionDone, NameEnqueueReconnect, NameCompleteOriginalReservation)
			st.Reconnect = &v1alpha1.ReconnectStatus{Fallback: true, EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22),
				OriginalReservationCompletedAt: mt(23), CanceledAt: mt(40), CancelReason: "hangup"}
			return st
		},
		wantPhase: v1alpha1.PhaseAbandoned, wantReason: ReasonCustomerLeft,
	}, {
		name: "failed ping creation: fall back to the original workflow",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := disconnected()
			record(&st, v1alpha1.ActionDone, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask)
			record(&st, v1alpha1.ActionFailed, NameCreatePingTask)
			return st
		},
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonPingFailed,
		wantActions: []string{NameEnqueueReconnect},
	}, {
		name: "failed enqueue: Failed",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingTimedOut)
			record(&st, v1alpha1.ActionFailed, NameEnqueueReconnect)
			return st
		},
		wantPhase: v1alpha1.PhaseFailed, wantReason: ReasonActionFailed,
	}, {
		name: "new conference joined: redial the third party, not supervisor or agent",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 3, events.ParticipantJoin, thirdLeg, "external"), coach(ev(5, 4, events.ParticipantJoin, superLeg, "supervisor")),
				leave(6, 10, agentLeg, "worker", "participant_hung_up"))
			st.Disconnect = &v1alpha1.DisconnectStatus{WorkerSID: workerSID, CallSID: agentLeg, ReservationSID: resSID, At: *mt(10)}
			record(&st, v1alpha1.ActionDone, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameCreatePingTask,
				NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect, NameCompleteOriginalReservation)
			st.Ping = &v1alpha1.PingStatus{TaskSID: pingSID, Outcome: v1alpha1.PingAccepted}
			st.Reconnect = &v1alpha1.ReconnectStatus{EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22),
				OriginalReservationCompletedAt: mt(23), WorkerSID: workerSID, AcceptedAt: mt(30), ConferenceSID: sid("CF", 2)}
			applyAll(&st, nil, leave(7, 21, customerLeg, "customer", "participant_updated_via_api"))
			return st
		},
		wantPhase: v1alpha1.PhaseRedialing, wantReason: ReasonRedialing,
		wantActions: []string{"Redial/" + thirdLeg},
	}, {
		name: "redial done: Recovered",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, ev(4, 3, events.ParticipantJoin, thirdLeg, "external"), leave(6, 10, agentLeg, "worker", "participant_hung_up"))
			st.Disconnect = &v1alpha1.DisconnectStatus{WorkerSID: workerSID, CallSID: agentLeg, At: *mt(10)}
			record(&st, v1alpha1.ActionDone, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameCreatePingTask, NameEnqueueReconnect, "Redial/"+thirdLeg)
			st.Ping = &v1alpha1.PingStatus{TaskSID: pingSID, Outcome: v1alpha1.PingTimedOut}
			st.Reconnect = &v1alpha1.ReconnectStatus{EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22),
				OriginalReservationCompletedAt: mt(23), WorkerSID: sid("WK", 9), AcceptedAt: mt(30), ConferenceSID: sid("CF", 2)}
			return st
		},
		wantPhase: v1alpha1.PhaseRecovered, wantReason: ReasonRecovered,
	}, {
		name: "terminal phase stays",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			s := disconnected()
			s.Phase = v1alpha1.PhaseAbandoned
			return s
		},
		wantPhase: v1alpha1.PhaseAbandoned,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			st := tt.st()
			d := Decide(st, policy(), at)
			if d.Phase != tt.wantPhase || d.Reason != tt.wantReason {
				t.Errorf("phase %s/%s, want %s/%s (%s)", d.Phase, d.Reason, tt.wantPhase, tt.wantReason, d.Message)
			}
			want := tt.wantActions
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, names(d.Actions)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if (d.Disconnect != nil) != tt.wantDisc {
				t.Errorf("disconnect %+v, want set=%v", d.Disconnect, tt.wantDisc)
			}
			// Recording every returned action as Done means none comes back.
			record(&st, v1alpha1.ActionDone, names(d.Actions)...)
			if d.Disconnect != nil {
				st.Disconnect = d.Disconnect
			}
			for _, a := range Decide(st, policy(), at).Actions {
				for _, n := range names(d.Actions) {
					if a.ActionName() == n {
						t.Errorf("action %s produced again after Done", n)
					}
				}
			}
		})
	}
}

func TestDecideEnqueueTarget(t *testing.T) {
	for _, tc := range []struct {
		outcome      v1alpha1.PingOutcome
		pingFailed   bool
		wantFallback bool
		wantTarget   string
	}{{v1alpha1.PingAccepted, false, false, workerSID}, {v1alpha1.PingTimedOut, false, true, ""},
		{v1alpha1.PingCanceled, false, true, ""}, {"", true, true, ""}} {
		st := pinged(tc.outcome)
		if tc.pingFailed {
			st = disconnected()
			record(&st, v1alpha1.ActionFailed, NameCreatePingTask)
		}
		d := Decide(st, policy(), t0.Add(time.Minute))
		var got *EnqueueReconnect
		for _, a := range d.Actions {
			if e, ok := a.(EnqueueReconnect); ok {
				got = &e
			}
		}
		want := &EnqueueReconnect{CustomerCallSID: customerLeg, Fallback: tc.wantFallback, TargetWorkerSID: tc.wantTarget, Priority: 2000}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: enqueue (-want +got):\n%s", tc.outcome, diff)
		}
	}
}

func TestDecideDisconnectedSteps(t *testing.T) {
	st := callInProgress()
	applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
	d := Decide(st, policy(), t0.Add(11*time.Second))
	wantDisc := &v1alpha1.DisconnectStatus{CallSID: agentLeg, Reason: "participant_hung_up", At: *mt(10)}
	if diff := cmp.Diff(wantDisc, d.Disconnect); diff != "" {
		t.Errorf("disconnect (-want +got):\n%s", diff)
	}
	want := []Action{
		CreatePingTask{TTL: 15 * time.Second, Priority: 1000, WorkflowName: "Recovery Ping", TaskChannel: "default"},
		Announce{URL: "https://example.com/interrupted.mp3"},
		HoldCustomer{CallSID: customerLeg, MusicURL: "https://example.com/hold.mp3"},
		MarkOriginalTask{Patch: map[string]any{"disconnectedTime": "2026-11-23T10:00:10Z", "conversations": map[string]any{"followed_by": "Reconnect Agent"}}},
	}
	if diff := cmp.Diff(want, d.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if d.RecheckAfter <= 0 {
		t.Errorf("RecheckAfter %v, want the reconnect bound", d.RecheckAfter)
	}
}

func TestEndConferenceOnExitCorrection(t *testing.T) {
	st := callInProgress()
	reset := ecoe(ev(4, 3, events.ParticipantModify, agentLeg, "worker"))
	// Decided on the event itself, before it is stored, and again after.
	if !CorrectionForEvent(st, reset, v1alpha1.RoleUnknown) {
		t.Fatal("no correction for Flex's reset")
	}
	ApplyConferenceEvent(&st, reset, nil)
	if !CorrectionForEvent(st, reset, v1alpha1.RoleUnknown) {
		t.Fatal("no correction for Flex's reset once stored")
	}
	want := CorrectEndConferenceOnExit{CallSID: agentLeg, SequenceNumber: 4}
	d := Decide(st, policy(), t0)
	if diff := cmp.Diff([]Action{want}, d.Actions); diff != "" {
		t.Errorf("Decide actions (-want +got):\n%s", diff)
	}
	// Corrected on receipt: the leg shows false and the controller has nothing to do.
	if !RecordCorrection(&st, agentLeg, 4) {
		t.Fatal("correction not recorded")
	}
	if got := Decide(st, policy(), t0).Actions; len(got) != 0 {
		t.Errorf("actions after the webhook's correction: %v", names(got))
	}
	// An unrelated newer callback of another leg does not ask again.
	ApplyConferenceEvent(&st, ev(5, 4, events.ParticipantMute, customerLeg, "customer"), nil)
	if got := Decide(st, policy(), t0).Actions; len(got) != 0 {
		t.Errorf("correction repeated after another leg's callback: %v", names(got))
	}
	// Flex resets it again: a new correction under the leg's new sequence number.
	again := ecoe(ev(7, 6, events.ParticipantModify, agentLeg, "worker"))
	ApplyConferenceEvent(&st, again, nil)
	if got := Decide(st, policy(), t0).Actions; len(got) != 1 || got[0].ActionName() != (CorrectEndConferenceOnExit{CallSID: agentLeg, SequenceNumber: 7}).ActionName() {
		t.Errorf("second reset: %v", names(got))
	}
	// Pending: not asked again.
	record(&st, v1alpha1.ActionPending, CorrectEndConferenceOnExit{CallSID: agentLeg, SequenceNumber: 7}.ActionName())
	if got := Decide(st, policy(), t0).Actions; len(got) != 0 {
		t.Errorf("correction repeated while pending: %v", names(got))
	}
	// The role may come from the task when the label says nothing.
	unlabelled := ecoe(ev(8, 7, events.ParticipantJoin, sid("CA", 77), ""))
	if CorrectionForEvent(st, unlabelled, v1alpha1.RoleUnknown) || !CorrectionForEvent(st, unlabelled, v1alpha1.RoleAgent) {
		t.Error("an unlabelled leg is corrected only when the task says it is an agent")
	}
	// Not for a coaching leg, nor once the customer is gone.
	if CorrectionForEvent(st, coach(ecoe(ev(8, 7, events.ParticipantJoin, superLeg, "worker"))), v1alpha1.RoleUnknown) {
		t.Error("correction for a coaching leg")
	}
	ApplyConferenceEvent(&st, leave(9, 8, customerLeg, "customer", "participant_hung_up"), nil)
	if CorrectionForEvent(st, again, v1alpha1.RoleUnknown) {
		t.Error("correction after the customer left")
	}
}

// TestLateResetIsRecordedPerLeg is defect 2 of issue 9: Flex's reset of the agent leg delivered after
// a later callback of another leg (a retry, two replicas) must still be recorded and corrected.
func TestLateResetIsRecordedPerLeg(t *testing.T) {
	st := callInProgress()
	ApplyConferenceEvent(&st, ev(10, 9, events.ParticipantMute, customerLeg, "customer"), nil)
	late := ecoe(ev(8, 7, events.ParticipantModify, agentLeg, "worker"))
	if !ApplyConferenceEvent(&st, late, nil) {
		t.Fatal("the late reset changed nothing")
	}
	d := Decide(st, policy(), t0)
	if len(d.Actions) != 1 {
		t.Fatalf("actions %v, want the correction", names(d.Actions))
	}
	if c, ok := d.Actions[0].(CorrectEndConferenceOnExit); !ok || c.CallSID != agentLeg {
		t.Errorf("action %+v", d.Actions[0])
	}
	// An older callback of the same leg still does not undo a newer one.
	ApplyConferenceEvent(&st, ev(11, 10, events.ParticipantModify, agentLeg, "worker"), nil)
	ApplyConferenceEvent(&st, ecoe(ev(9, 8, events.ParticipantModify, agentLeg, "worker")), nil)
	for _, p := range st.Participants {
		if p.CallSID == agentLeg && (p.EndConferenceOnExit || p.SequenceNumber != 11) {
			t.Errorf("agent leg %+v after a stale reset", p)
		}
	}
}

// TestAgentBackStopsTheRecovery is defect 3 of issue 9: every step is decided on the current
// picture. A warm transfer whose leave is delivered before the new agent's join starts a recovery;
// once the join is seen, the ping is withdrawn, the customer resumed and the incident closed,
// and nothing moves the customer out of a conference that holds an agent.
func TestAgentBackStopsTheRecovery(t *testing.T) {
	st := callInProgress()
	applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_hung_up"))
	d := Decide(st, policy(), t0.Add(11*time.Second))
	if d.Disconnect == nil {
		t.Fatal("no disconnect detected")
	}
	st.Disconnect = d.Disconnect
	record(&st, v1alpha1.ActionDone, NameCreatePingTask, NameAnnounce, NameHoldCustomer, NameMarkOriginalTask)
	st.Ping = &v1alpha1.PingStatus{TaskSID: pingSID}

	// bob's join, delivered late (it happened before alice's leave).
	applyAll(&st, nil, ev(5, 9, events.ParticipantJoin, agent2Leg, "worker"))
	d = Decide(st, policy(), t0.Add(12*time.Second))
	want := []Action{CancelPingTask{TaskSID: pingSID}, ResumeCustomer{CallSID: customerLeg}}
	if diff := cmp.Diff(want, d.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if d.Phase != v1alpha1.PhaseMonitoring || d.Reason != ReasonAgentReturned || !d.EndIncident {
		t.Errorf("decision %s/%s endIncident=%v", d.Phase, d.Reason, d.EndIncident)
	}
	// The ping had been accepted: it is completed, and still no enqueue.
	st.Ping.Outcome = v1alpha1.PingAccepted
	d = Decide(st, policy(), t0.Add(12*time.Second))
	for _, a := range d.Actions {
		if _, ok := a.(EnqueueReconnect); ok {
			t.Errorf("enqueue decided with an agent in the call: %v", names(d.Actions))
		}
	}
	if len(d.Actions) == 0 || d.Actions[0] != (CompletePingTask{TaskSID: pingSID}) {
		t.Errorf("accepted ping not completed: %v", names(d.Actions))
	}
	// Once the customer is redirected, an agent joining the old conference changes nothing.
	record(&st, v1alpha1.ActionDone, NameEnqueueReconnect)
	if d := Decide(st, policy(), t0.Add(12*time.Second)); d.EndIncident {
		t.Error("incident ended after the enqueue")
	}
}

// The wait for the agent a reconnect is routed to ends at the policy's targetTimeout, the ping's
// TTL when none is set: Decide asks to be run again then, with nothing else observed.
func TestRerouteBound(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target time.Duration
		want   time.Duration
	}{
		{name: "ping TTL by default", want: 6 * time.Second}, // enqueued at 21 s + 15 s, now 30 s
		{name: "targetTimeout", target: time.Minute, want: 51 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := policy()
			if tt.target > 0 {
				p.Reconnect.TargetTimeout = &metav1.Duration{Duration: tt.target}
			}
			d := Decide(targetedReconnect(), p, t0.Add(30*time.Second))
			if len(d.Actions) != 0 || d.RecheckAfter != tt.want {
				t.Errorf("actions %v, recheck after %s; want none and %s", names(d.Actions), d.RecheckAfter, tt.want)
			}
			if d := Decide(targetedReconnect(), p, t0.Add(30*time.Second+tt.want)); d.Reason != ReasonReconnectRerouted {
				t.Errorf("at the bound: %s (%s), want %s", d.Reason, d.Message, ReasonReconnectRerouted)
			}
		})
	}
}
