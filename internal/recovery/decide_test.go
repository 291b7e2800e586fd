package recovery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
		wantActions: []string{NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameCreatePingTask},
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
		name: "supervisor leg does not count as an agent",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, coach(ev(4, 5, events.ParticipantJoin, superLeg, "worker")), leave(5, 10, agentLeg, "worker", "participant_hung_up"))
			return st
		},
		wantPhase:   v1alpha1.PhaseDisconnected,
		wantActions: []string{NameAnnounce, NameHoldCustomer, NameMarkOriginalTask, NameCreatePingTask},
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
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonPingResolved,
	}, {
		name: "reconnect queued: complete the original reservation",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged(v1alpha1.PingAccepted)
			record(&st, v1alpha1.ActionDone, NameCompletePingTask, NameMarkPingSuccessful, NameEnqueueReconnect)
			st.Reconnect = &v1alpha1.ReconnectStatus{TargetWorkerSID: workerSID, EnqueuedAt: mt(21), TaskSID: reconSID, QueuedAt: mt(22)}
			return st
		},
		wantPhase: v1alpha1.PhaseReconnecting, wantReason: ReasonReconnectQueued,
		wantActions: []string{NameCompleteOriginalReservation},
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
		Announce{URL: "https://example.com/interrupted.mp3"},
		HoldCustomer{CallSID: customerLeg, MusicURL: "https://example.com/hold.mp3"},
		MarkOriginalTask{Patch: map[string]any{"disconnectedTime": "2026-11-23T10:00:10Z", "conversations": map[string]any{"followed_by": "Reconnect Agent"}}},
		CreatePingTask{Attributes: map[string]any{"disconnectedCallSid": agentLeg, "disconnectedTime": "2026-11-23T10:00:10Z"},
			TTL: 15 * time.Second, Priority: 1000, WorkflowName: "Recovery Ping", TaskChannel: "default"},
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
	ApplyConferenceEvent(&st, reset, nil)
	c, ok := CorrectionForEvent(st, reset)
	want := CorrectEndConferenceOnExit{CallSID: agentLeg, SequenceNumber: 4}
	if !ok || c != want {
		t.Fatalf("CorrectionForEvent = %+v, %v; want %+v", c, ok, want)
	}
	d := Decide(st, policy(), t0)
	if diff := cmp.Diff([]Action{want}, d.Actions); diff != "" {
		t.Errorf("Decide actions (-want +got):\n%s", diff)
	}
	// Pending: neither path repeats it, even after an unrelated newer callback.
	record(&st, v1alpha1.ActionPending, want.ActionName())
	ApplyConferenceEvent(&st, ev(5, 4, events.ParticipantMute, customerLeg, "customer"), nil)
	if _, ok := CorrectionForEvent(st, reset); ok {
		t.Error("correction repeated for the same callback")
	}
	if got := Decide(st, policy(), t0).Actions; len(got) != 0 {
		t.Errorf("correction repeated while pending: %v", names(got))
	}
	// Done and confirmed: the flag is false, nothing to do.
	st.Actions[0].State = v1alpha1.ActionDone
	ApplyConferenceEvent(&st, ev(6, 5, events.ParticipantModify, agentLeg, "worker"), nil)
	if got := Decide(st, policy(), t0).Actions; len(got) != 0 {
		t.Errorf("actions after confirmation: %v", names(got))
	}
	// Flex resets it again: a new correction under the new sequence number.
	again := ecoe(ev(7, 6, events.ParticipantModify, agentLeg, "worker"))
	ApplyConferenceEvent(&st, again, nil)
	if c, ok := CorrectionForEvent(st, again); !ok || c.SequenceNumber != 7 {
		t.Errorf("second reset: %+v, %v", c, ok)
	}
	// A late reset callback (older than the newest) is still corrected per event.
	late := ecoe(ev(3, 2, events.ParticipantJoin, agentLeg, "worker"))
	if _, ok := CorrectionForEvent(st, late); !ok {
		t.Error("late reset not corrected")
	}
	// Not for a coaching leg, nor once the customer is gone.
	if _, ok := CorrectionForEvent(st, coach(ecoe(ev(8, 7, events.ParticipantJoin, superLeg, "worker")))); ok {
		t.Error("correction for a coaching leg")
	}
	ApplyConferenceEvent(&st, leave(9, 8, customerLeg, "customer", "participant_hung_up"), nil)
	if _, ok := CorrectionForEvent(st, again); ok {
		t.Error("correction after the customer left")
	}
}
