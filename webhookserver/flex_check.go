package webhookserver

import "net/http"

// handleCheck answers the Flex companion's start-up check: GET /flex/{namespace}/{policy}/check.
// A 200 with a CheckResponse means the companion reaches the operator's /flex/ routes and its
// Flex token is accepted for the policy, so its graceful marks will count; otherwise the answer is
// authenticateFlex's (401, 403, 429, 503), and the companion warns the agent that a deliberate
// hang-up may be taken for a dropped call. It changes nothing.
func (r *Routes) handleCheck(w http.ResponseWriter, req *http.Request) {
	allowCORS(w)
	fr, ok := r.authenticateFlex(w, req, bearerToken(req))
	if !ok {
		return
	}
	if fr.identity.WorkerSID == "" && !fr.privileged() {
		// Its marks would be refused the same way (see handleGraceful).
		http.Error(w, "the Flex token is not a worker's", http.StatusForbidden)
		return
	}
	writeJSON(w, CheckResponse{Policy: fr.policy.Name, WorkerSID: fr.identity.WorkerSID, Privileged: fr.privileged()})
}

// CheckResponse is the answer to the companion's start-up check.
type CheckResponse struct {
	// Policy is the ConferenceRecoveryPolicy the route names.
	Policy string `json:"policy"`
	// WorkerSID is the worker the token belongs to (empty for a token that is no worker's).
	WorkerSID string `json:"workerSid,omitempty"`
	// Privileged is true for a supervisor's or admin's token, which may mark any agent's leg.
	Privileged bool `json:"privileged,omitempty"`
}
