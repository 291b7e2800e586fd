package webhookserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// handleGraceful marks an agent's leg as leaving on purpose: POST /flex/{namespace}/{policy}/graceful.
// It answers 200 with a GracefulResponse, 400 for a bad body, 404 when the conference has no
// recovery, 409 when no such agent leg has been reported by Twilio (or no leg of the worker is
// connected), 403 when the leg is another worker's or the token is no worker's. Supervisors and
// admins may mark any agent leg.
func (r *Routes) handleGraceful(w http.ResponseWriter, req *http.Request) {
	allowCORS(w)
	body, ok := readBody(w, req)
	if !ok {
		return
	}
	gr, err := decodeGracefulRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	token := bearerToken(req)
	if token == "" {
		token = gr.Token
	}
	fr, ok := r.authenticateFlex(w, req, token)
	if !ok {
		return
	}
	ctx, cancel := r.handlingContext(req.Context())
	defer cancel()
	key := recoveryKey(fr.policy.Namespace, gr.ConferenceSID)
	rec, err := r.store.read(ctx, key)
	switch {
	case err != nil:
		r.log.Error(err, "Read a recovery for a graceful mark", "recovery", key)
		unavailable(w, "cannot read the recovery")
		return
	case rec == nil || rec.Spec.PolicyName != fr.policy.Name:
		http.Error(w, "no recovery for this conference", http.StatusNotFound)
		return
	}
	mark := &gracefulMark{callSID: gr.CallSID, workerSID: fr.identity.WorkerSID, policyName: fr.policy.Name, privileged: fr.privileged()}
	if mark.workerSID == "" && !mark.privileged {
		http.Error(w, "the Flex token is not a worker's", http.StatusForbidden)
		return
	}
	if mark.callSID == "" && mark.workerSID == "" {
		http.Error(w, "callSid is required: the token is not a worker's", http.StatusBadRequest)
		return
	}
	if !mark.privileged && needsTaskForOwner(rec.Status.Participants, mark.callSID, mark.workerSID) {
		// The legs do not say whose they are yet (the agent's first leg never carries a worker
		// SID): ask the task which leg is this worker's.
		mark.candidates, err = workerLegsFromTask(ctx, fr.twilio, fr.policy.Spec.Twilio.WorkspaceSID, rec.Spec.TaskSID, mark.workerSID)
		if err != nil {
			r.log.Error(err, "Find the worker's leg from the task", "recovery", key)
			unavailable(w, "cannot read the task")
			return
		}
	}
	res := r.store.submit(key, &op{mutate: mark.apply}).wait(ctx)
	switch {
	case errors.Is(res.err, errNoLeg):
		http.Error(w, res.err.Error(), http.StatusConflict)
		return
	case errors.Is(res.err, errForbidden):
		http.Error(w, res.err.Error(), http.StatusForbidden)
		return
	case res.err != nil:
		r.log.Error(res.err, "Store a graceful mark", "recovery", key)
		unavailable(w, "could not store the mark")
		return
	case res.outcome == outcomeNoRecovery:
		http.Error(w, "no recovery for this conference", http.StatusNotFound)
		return
	}
	r.log.V(1).Info("Marked a leave graceful", "recovery", key, "legs", mark.marked, "worker", mark.workerSID)
	writeJSON(w, GracefulResponse{ConferenceSID: gr.ConferenceSID, Marked: mark.marked})
}

// gracefulMark is a companion's graceful mark, applied by the recovery's writer.
type gracefulMark struct {
	callSID, workerSID, policyName string
	privileged                     bool
	// candidates are legs the task says are the worker's.
	candidates []string
	// marked is filled by apply (which may run more than once: it starts over each time).
	marked []string
}

// apply sets Graceful on the marked leg, or on every connected agent leg of the worker. Only legs
// Twilio reported (a callback recorded them) and that are agent legs may be marked, and only by the
// worker whose leg it is — or by a supervisor or admin (see Routes.handleGraceful).
func (m *gracefulMark) apply(rec *v1alpha1.ConferenceRecovery) (bool, error) {
	m.marked = m.marked[:0]
	if rec.Spec.PolicyName != m.policyName {
		return false, errNoLeg
	}
	st := &rec.Status
	changed := false
	for i := range st.Participants {
		p := &st.Participants[i]
		if p.Role != v1alpha1.RoleAgent || p.Coaching {
			continue
		}
		if m.callSID != "" && p.CallSID != m.callSID {
			continue
		}
		if m.callSID == "" && p.LeftAt != nil {
			continue
		}
		owner := p.WorkerSID == m.workerSID && m.workerSID != "" ||
			p.WorkerSID == "" && slices.Contains(m.candidates, p.CallSID)
		if !owner && !m.privileged {
			if m.callSID != "" {
				return false, errForbidden
			}
			continue
		}
		m.marked = append(m.marked, p.CallSID)
		if owner && p.WorkerSID == "" {
			p.WorkerSID, changed = m.workerSID, true
		}
		if !p.Graceful {
			p.Graceful, changed = true, true
		}
	}
	if len(m.marked) == 0 {
		return false, errNoLeg
	}
	return changed, nil
}

// needsTaskForOwner reports whether the legs a mark is about do not say whose they are, so the
// task must be asked.
func needsTaskForOwner(parts []v1alpha1.ParticipantStatus, callSID, workerSID string) bool {
	if callSID != "" {
		// A leg not in this copy may be in the writer's newer one: ask the task too.
		i := slices.IndexFunc(parts, func(p v1alpha1.ParticipantStatus) bool { return p.CallSID == callSID })
		return i < 0 || parts[i].WorkerSID == ""
	}
	return !hasConnectedLeg(parts, workerSID)
}

func hasConnectedLeg(parts []v1alpha1.ParticipantStatus, workerSID string) bool {
	return slices.ContainsFunc(parts, func(p v1alpha1.ParticipantStatus) bool {
		return p.Role == v1alpha1.RoleAgent && !p.Coaching && p.LeftAt == nil && p.WorkerSID == workerSID
	})
}

// workerLegsFromTask finds the worker's leg from the task's conference.participants: keyed by the
// worker's SID (a further agent), or "worker" when the worker holds the task's reservation.
func workerLegsFromTask(ctx context.Context, tw twilio.Client, workspaceSID, taskSID, workerSID string) ([]string, error) {
	if taskSID == "" {
		return nil, nil
	}
	task, err := tw.FetchTask(ctx, workspaceSID, taskSID)
	if twilio.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch task %s: %w", taskSID, err)
	}
	attrs, _ := recovery.ParseTaskAttributes(task.Attributes)
	if callSID, ok := attrs.Participants[workerSID]; ok {
		return []string{callSID}, nil
	}
	callSID, ok := attrs.Participants["worker"]
	if !ok {
		return nil, nil
	}
	reservations, err := tw.ListReservations(ctx, workspaceSID, twilio.ReservationFilter{TaskSID: taskSID, WorkerSID: workerSID})
	if err != nil {
		return nil, fmt.Errorf("list reservations of task %s: %w", taskSID, err)
	}
	for _, res := range reservations {
		if res.WorkerSID == workerSID && (res.Status == "accepted" || res.Status == "wrapping") {
			return []string{callSID}, nil
		}
	}
	return nil, nil
}

// GracefulRequest is the body of POST /flex/{namespace}/{policy}/graceful, which the Flex companion
// sends just before the agent hangs up or transfers on purpose, so that the leave that follows does
// not start a recovery. The Flex token goes in "Authorization: Bearer <token>" or, for clients that
// cannot set headers, in Token.
type GracefulRequest struct {
	// ConferenceSID is the conference (CF…) of the call.
	ConferenceSID string `json:"conferenceSid"`
	// CallSID is the agent's leg (CA…). When empty, every still-connected agent leg of the token's
	// worker in the conference is marked.
	CallSID string `json:"callSid,omitempty"`
	// Token is the Flex user token, when not sent as a bearer token.
	Token string `json:"token,omitempty"`
}

// GracefulResponse is the answer to a graceful mark.
type GracefulResponse struct {
	// ConferenceSID echoes the request.
	ConferenceSID string `json:"conferenceSid"`
	// Marked are the call SIDs of the legs now marked graceful.
	Marked []string `json:"marked"`
}

// decodeGracefulRequest decodes and checks a GracefulRequest body: one JSON object, a conference
// SID, an optional call SID, a token of sane length.
func decodeGracefulRequest(body []byte) (GracefulRequest, error) {
	const shape = `the body must be one JSON object {"conferenceSid": "CF…", "callSid": "CA…"}`
	var gr GracefulRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&gr); err != nil {
		return GracefulRequest{}, fmt.Errorf("%s: %w", shape, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return GracefulRequest{}, errors.New(shape + ": data after the object")
	}
	switch {
	case !events.ValidSID(gr.ConferenceSID, "CF"):
		return GracefulRequest{}, errors.New("conferenceSid must be a conference SID (CF and 32 lower-case hex digits)")
	case gr.CallSID != "" && !events.ValidSID(gr.CallSID, "CA"):
		return GracefulRequest{}, errors.New("callSid must be a call SID (CA and 32 lower-case hex digits)")
	case len(gr.Token) > maxTokenLength:
		return GracefulRequest{}, errors.New("token is too long")
	}
	return gr, nil
}
