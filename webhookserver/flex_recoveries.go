package webhookserver

import (
	"context"
	"net/http"
	"slices"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// handleRecovery returns a recovery's summary:
// GET /flex/{namespace}/{policy}/recoveries/{conferenceSid}.
func (r *Routes) handleRecovery(w http.ResponseWriter, req *http.Request) {
	allowCORS(w)
	conferenceSID := req.PathValue("conferenceSid")
	if !events.ValidSID(conferenceSID, "CF") {
		http.Error(w, "conferenceSid must be a conference SID (CF and 32 lower-case hex digits)", http.StatusBadRequest)
		return
	}
	fr, ok := r.authenticateFlex(w, req, bearerToken(req))
	if !ok {
		return
	}
	key := recoveryKey(fr.policy.Namespace, conferenceSID)
	rec, err := r.store.read(req.Context(), key)
	switch {
	case err != nil:
		r.log.Error(err, "Read a recovery for the Flex companion", "recovery", key)
		unavailable(w, "cannot read the recovery")
		return
	case rec == nil || rec.Spec.PolicyName != fr.policy.Name:
		http.Error(w, "no recovery for this conference", http.StatusNotFound)
		return
	}
	allowed, err := r.mayRead(req.Context(), fr, rec)
	if err == nil && !allowed {
		// The cache may not show the worker's leg yet: ask the API server before refusing.
		var fresh *v1alpha1.ConferenceRecovery
		if fresh, err = r.store.readFresh(req.Context(), key); err == nil && fresh != nil {
			rec = fresh
			allowed, err = r.mayRead(req.Context(), fr, rec)
		}
	}
	if err != nil {
		r.log.Error(err, "Find whether the worker is on the call", "recovery", key)
		unavailable(w, "cannot read the task")
		return
	}
	if !allowed {
		// The same answer as for a conference without a recovery: a worker not on the call
		// learns nothing about it, its call SIDs least of all.
		http.Error(w, "no recovery for this conference", http.StatusNotFound)
		return
	}
	writeJSON(w, summarize(rec))
}

// mayRead reports whether the token may read the recovery: a supervisor or admin, or a worker who
// is or was on the call (an agent leg, the disconnected agent, the reconnect's agent), asking the
// task when an agent leg does not say whose it is.
func (r *Routes) mayRead(ctx context.Context, fr *flexRequest, rec *v1alpha1.ConferenceRecovery) (bool, error) {
	if fr.privileged() {
		return true, nil
	}
	worker := fr.identity.WorkerSID
	if worker == "" {
		return false, nil
	}
	st := rec.Status
	if (st.Disconnect != nil && st.Disconnect.WorkerSID == worker) ||
		(st.Reconnect != nil && (st.Reconnect.WorkerSID == worker || st.Reconnect.TargetWorkerSID == worker)) {
		return true, nil
	}
	unowned := false
	for _, p := range st.Participants {
		if p.WorkerSID == worker {
			return true, nil
		}
		unowned = unowned || (p.Role == v1alpha1.RoleAgent && p.WorkerSID == "")
	}
	if !unowned {
		return false, nil
	}
	legs, err := workerLegsFromTask(ctx, fr.twilio, fr.policy.Spec.Twilio.WorkspaceSID, rec.Spec.TaskSID, worker)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(st.Participants, func(p v1alpha1.ParticipantStatus) bool { return slices.Contains(legs, p.CallSID) }), nil
}

// summarize is a recovery as the companion sees it.
func summarize(rec *v1alpha1.ConferenceRecovery) RecoverySummary {
	phase := rec.Status.Phase
	if phase == "" {
		phase = v1alpha1.PhaseMonitoring
	}
	return RecoverySummary{
		Name: rec.Name, ConferenceSID: rec.Spec.ConferenceSID, TaskSID: rec.Spec.TaskSID, WorkflowSID: rec.Spec.WorkflowSID,
		Phase: phase, Reason: rec.Status.Reason, Message: rec.Status.Message,
		CustomerCallSID: rec.Status.CustomerCallSID, Participants: rec.Status.Participants,
		Disconnect: rec.Status.Disconnect, Ping: rec.Status.Ping, Reconnect: rec.Status.Reconnect,
		Timings: rec.Status.Timings, FinishedAt: rec.Status.FinishedAt,
	}
}

// RecoverySummary is the answer of GET /flex/{namespace}/{policy}/recoveries/{conferenceSid}: what
// the Flex companion shows an agent about a protected call.
type RecoverySummary struct {
	// Name of the ConferenceRecovery object.
	Name string `json:"name"`
	// ConferenceSID, TaskSID and WorkflowSID identify the call.
	ConferenceSID string `json:"conferenceSid"`
	TaskSID       string `json:"taskSid,omitempty"`
	WorkflowSID   string `json:"workflowSid,omitempty"`
	// Phase, Reason and Message say where the recovery stands.
	Phase   v1alpha1.RecoveryPhase `json:"phase"`
	Reason  string                 `json:"reason,omitempty"`
	Message string                 `json:"message,omitempty"`
	// CustomerCallSID is the customer's leg.
	CustomerCallSID string `json:"customerCallSid,omitempty"`
	// Participants are the legs of the conference.
	Participants []v1alpha1.ParticipantStatus `json:"participants,omitempty"`
	// Disconnect, Ping and Reconnect are the recovery's steps so far.
	Disconnect *v1alpha1.DisconnectStatus `json:"disconnect,omitempty"`
	Ping       *v1alpha1.PingStatus       `json:"ping,omitempty"`
	Reconnect  *v1alpha1.ReconnectStatus  `json:"reconnect,omitempty"`
	// Timings are the outage figures.
	Timings v1alpha1.RecoveryTimings `json:"timings"`
	// FinishedAt is when the recovery reached a terminal phase.
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}
