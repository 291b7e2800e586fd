package recovery

import (
	"cmp"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// Reasons of the CustomerConnected and AgentConnected conditions.
const (
	ReasonInConference = "InConference"
	ReasonQueued       = "Queued"
	ReasonReconnected  = "Reconnected"
	ReasonNotJoined    = "NotJoined"
	ReasonAgentLeft    = "AgentLeft"
)

// SetConditions sets the CustomerConnected and AgentConnected conditions from what status shows:
// the legs of the original conference, then the reconnect task and the new conference. now is the
// transition time of a condition that changes.
func SetConditions(st *v1alpha1.ConferenceRecoveryStatus, generation int64, now time.Time) {
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
			Message: msg, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)})
	}
	rc := st.Reconnect
	reconnected := rc != nil && rc.AcceptedAt != nil

	customer := findCustomer(*st)
	switch {
	case customer == nil:
		set(v1alpha1.ConditionCustomerConnected, metav1.ConditionUnknown, ReasonNotJoined, "The customer's leg has not been seen in the conference yet.")
	case customer.LeftAt == nil && st.ConferenceEndedAt == nil:
		set(v1alpha1.ConditionCustomerConnected, metav1.ConditionTrue, ReasonInConference, fmt.Sprintf("The customer's call %s is in the conference.", customer.CallSID))
	case rc != nil && rc.EnqueuedAt != nil && rc.CanceledAt == nil && events.IsGracefulLeave(customer.LeaveReason):
		// Redirected out of the old conference into the reconnect queue.
		if reconnected {
			set(v1alpha1.ConditionCustomerConnected, metav1.ConditionTrue, ReasonReconnected, fmt.Sprintf("The customer is in the new conference with agent %s.", rc.WorkerSID))
		} else {
			set(v1alpha1.ConditionCustomerConnected, metav1.ConditionTrue, ReasonQueued, "The customer is waiting in the reconnect queue.")
		}
	default:
		set(v1alpha1.ConditionCustomerConnected, metav1.ConditionFalse, ReasonCustomerLeft, fmt.Sprintf("The customer left the call (%s).", cmp.Or(customer.LeaveReason, "conference ended")))
	}

	var agentLeg, anyAgent bool
	for _, leg := range st.Participants {
		if isAgent(leg) {
			anyAgent = true
			if leg.LeftAt == nil && st.ConferenceEndedAt == nil {
				agentLeg = true
			}
		}
	}
	switch {
	case agentLeg:
		set(v1alpha1.ConditionAgentConnected, metav1.ConditionTrue, ReasonInConference, "An agent is in the conference.")
	case reconnected:
		set(v1alpha1.ConditionAgentConnected, metav1.ConditionTrue, ReasonReconnected, fmt.Sprintf("Agent %s took the reconnect task.", rc.WorkerSID))
	case st.Disconnect != nil:
		set(v1alpha1.ConditionAgentConnected, metav1.ConditionFalse, ReasonAgentDisconnected,
			fmt.Sprintf("Agent %s dropped out of the call at %s (%s).", cmp.Or(st.Disconnect.WorkerSID, "(unknown)"),
				st.Disconnect.At.UTC().Format(time.RFC3339), cmp.Or(st.Disconnect.Reason, "no reason given")))
	case anyAgent:
		set(v1alpha1.ConditionAgentConnected, metav1.ConditionFalse, ReasonAgentLeft, "The agents left the call.")
	default:
		set(v1alpha1.ConditionAgentConnected, metav1.ConditionUnknown, ReasonNotJoined, "No agent leg has been seen in the conference yet.")
	}
}

// CustomerWithoutAgent is how long the customer was without an agent: from the disconnect to an
// agent accepting the reconnect task, or to the end of the recovery (finishedAt) when none did.
// It is nil while neither is known.
func CustomerWithoutAgent(st v1alpha1.ConferenceRecoveryStatus) *metav1.Duration {
	if st.Disconnect == nil || st.Disconnect.At.IsZero() {
		return nil
	}
	// The operator's own receipt times, to the millisecond, when both ends have one.
	if start := st.Disconnect.ObservedAt; start != nil {
		var end time.Time
		switch {
		case st.Reconnect != nil && st.Reconnect.AcceptedObservedAt != nil:
			end = st.Reconnect.AcceptedObservedAt.Time
		case (st.Reconnect == nil || st.Reconnect.AcceptedAt == nil) && st.FinishedAt != nil:
			end = st.FinishedAt.Time
		}
		if !end.IsZero() {
			return &metav1.Duration{Duration: max(0, end.Sub(start.Time))}
		}
	}
	var end *metav1.Time
	switch {
	case st.Reconnect != nil && st.Reconnect.AcceptedAt != nil:
		end = st.Reconnect.AcceptedAt
	case st.FinishedAt != nil:
		end = st.FinishedAt
	default:
		return nil
	}
	return &metav1.Duration{Duration: max(0, end.Sub(st.Disconnect.At.Time))}
}
