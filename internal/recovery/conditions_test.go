package recovery

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

func TestSetConditions(t *testing.T) {
	type want struct {
		status metav1.ConditionStatus
		reason string
	}
	enqueued := func(outcome v1alpha1.PingOutcome) v1alpha1.ConferenceRecoveryStatus {
		st := pinged(outcome)
		applyAll(&st, nil, leave(9, 21, customerLeg, "customer", "participant_updated_via_api"))
		st.Reconnect = &v1alpha1.ReconnectStatus{EnqueuedAt: mt(21)}
		return st
	}
	tests := []struct {
		name     string
		st       func() v1alpha1.ConferenceRecoveryStatus
		customer want
		agent    want
	}{{
		name:     "nothing seen yet",
		st:       func() v1alpha1.ConferenceRecoveryStatus { return v1alpha1.ConferenceRecoveryStatus{} },
		customer: want{metav1.ConditionUnknown, ReasonNotJoined},
		agent:    want{metav1.ConditionUnknown, ReasonNotJoined},
	}, {
		name:     "call in progress",
		st:       callInProgress,
		customer: want{metav1.ConditionTrue, ReasonInConference},
		agent:    want{metav1.ConditionTrue, ReasonInConference},
	}, {
		name:     "agent dropped",
		st:       disconnected,
		customer: want{metav1.ConditionTrue, ReasonInConference},
		agent:    want{metav1.ConditionFalse, ReasonAgentDisconnected},
	}, {
		name:     "customer waiting in the reconnect queue",
		st:       func() v1alpha1.ConferenceRecoveryStatus { return enqueued(v1alpha1.PingAccepted) },
		customer: want{metav1.ConditionTrue, ReasonQueued},
		agent:    want{metav1.ConditionFalse, ReasonAgentDisconnected},
	}, {
		name: "reconnected",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := enqueued(v1alpha1.PingAccepted)
			st.Reconnect.WorkerSID, st.Reconnect.AcceptedAt = workerSID, mt(40)
			return st
		},
		customer: want{metav1.ConditionTrue, ReasonReconnected},
		agent:    want{metav1.ConditionTrue, ReasonReconnected},
	}, {
		name: "customer hung up in the queue",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := enqueued(v1alpha1.PingTimedOut)
			st.Reconnect.CanceledAt = mt(30)
			return st
		},
		customer: want{metav1.ConditionFalse, ReasonCustomerLeft},
		agent:    want{metav1.ConditionFalse, ReasonAgentDisconnected},
	}, {
		name: "customer hung up in the conference",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := pinged("")
			applyAll(&st, nil, leave(9, 15, customerLeg, "customer", "participant_hung_up"))
			return st
		},
		customer: want{metav1.ConditionFalse, ReasonCustomerLeft},
		agent:    want{metav1.ConditionFalse, ReasonAgentDisconnected},
	}, {
		name: "agent left gracefully",
		st: func() v1alpha1.ConferenceRecoveryStatus {
			st := callInProgress()
			applyAll(&st, nil, leave(4, 10, agentLeg, "worker", "participant_updated_via_api"))
			return st
		},
		customer: want{metav1.ConditionTrue, ReasonInConference},
		agent:    want{metav1.ConditionFalse, ReasonAgentLeft},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st()
			SetConditions(&st, 3, t0)
			for typ, w := range map[string]want{v1alpha1.ConditionCustomerConnected: tt.customer, v1alpha1.ConditionAgentConnected: tt.agent} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil || c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != 3 || c.Message == "" {
					t.Errorf("%s = %+v, want %s/%s", typ, c, w.status, w.reason)
				}
			}
			// Setting them again at a later time changes nothing.
			before := st.DeepCopy()
			SetConditions(&st, 3, t0.Add(time.Hour))
			for i := range st.Conditions {
				if !st.Conditions[i].LastTransitionTime.Equal(&before.Conditions[i].LastTransitionTime) {
					t.Errorf("%s transition time moved without a change", st.Conditions[i].Type)
				}
			}
		})
	}
}

func TestCustomerWithoutAgent(t *testing.T) {
	st := disconnected() // the agent left at t0+10s
	if got := CustomerWithoutAgent(st); got != nil {
		t.Errorf("running recovery: %v, want nil", got)
	}
	st.FinishedAt = mt(70)
	if got := CustomerWithoutAgent(st); got == nil || got.Duration != time.Minute {
		t.Errorf("finished: %v, want 1m", got)
	}
	st.Reconnect = &v1alpha1.ReconnectStatus{AcceptedAt: mt(40)}
	if got := CustomerWithoutAgent(st); got == nil || got.Duration != 30*time.Second {
		t.Errorf("reconnected: %v, want 30s", got)
	}
	if got := CustomerWithoutAgent(callInProgress()); got != nil {
		t.Errorf("no disconnect: %v", got)
	}
}
