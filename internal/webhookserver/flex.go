package webhookserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

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

// maxTokenLength bounds a Flex token (a JWE of a few hundred bytes).
const maxTokenLength = 8 << 10

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

// bearerToken returns the token of an "Authorization: Bearer …" header, or "".
func bearerToken(req *http.Request) string {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// preflight answers a CORS preflight for the companion routes.
func preflight(w http.ResponseWriter, _ *http.Request) {
	allowCORS(w)
	w.WriteHeader(http.StatusNoContent)
}

// allowCORS lets the Flex UI (another origin) call the companion routes. Any origin may: the routes
// authenticate with a bearer token, never a cookie, so a foreign page gains nothing it did not
// already hold.
func allowCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Cache-Control", "no-store")
}

// flexRequest is a companion request whose Flex token checked out.
type flexRequest struct {
	policy   *v1alpha1.ConferenceRecoveryPolicy
	twilio   twilio.Client
	identity twilio.FlexIdentity
}

// privileged reports whether the token is a supervisor's or an admin's. They may mark any agent
// leg of the account graceful (a supervisor ending an agent's call on purpose) and read any
// recovery; Flex gives agents neither role.
func (f *flexRequest) privileged() bool {
	return slices.ContainsFunc(f.identity.Roles, func(role string) bool { return role == "supervisor" || role == "admin" })
}

// authenticateFlex finds the policy and validates the Flex token with the policy's account. On
// failure it has answered: 401 (no token), 403 (a token Twilio rejects, or a policy that does not
// exist: the same answer), 429 (the client failed too often of late, or too many unknown tokens
// at once), 503 (credentials unusable or Twilio unreachable).
func (r *Routes) authenticateFlex(w http.ResponseWriter, req *http.Request, token string) (*flexRequest, bool) {
	if r.tooManyFailures(w, req) {
		return nil, false
	}
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flex-operator"`)
		http.Error(w, "a Flex token is required (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return nil, false
	}
	policy, status, err := r.policy(req)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			r.log.Error(err, "Read the policy of a Flex companion request")
			unavailable(w, "cannot read the policy")
		} else {
			r.failedAuthentication(req)
			http.Error(w, "the Flex token is not valid", http.StatusForbidden)
		}
		return nil, false
	}
	creds, tw, err := r.opts.Credentials.For(req.Context(), policy.Namespace, policy.Spec.Twilio)
	if err != nil {
		var cerr *credentials.Error
		if !errors.As(err, &cerr) {
			r.log.Error(err, "Read the policy's credentials", "policy", policy.Namespace+"/"+policy.Name)
		}
		unavailable(w, "the policy's credentials are not usable")
		return nil, false
	}
	identity, err := r.tokens.identify(req.Context(), clientAddress(req), creds.AccountSID, tw, token)
	switch {
	case errors.Is(err, errTooManyTokenChecks):
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return nil, false
	case err != nil:
		r.log.Error(err, "Validate a Flex token", "policy", policy.Namespace+"/"+policy.Name)
		unavailable(w, "cannot validate the Flex token now")
		return nil, false
	case !identity.Valid:
		r.failedAuthentication(req)
		http.Error(w, "the Flex token is not valid", http.StatusForbidden)
		return nil, false
	}
	return &flexRequest{policy: policy, twilio: tw, identity: identity}, true
}

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

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do about it
}

// errTooManyTokenChecks means the account's budget for validating unknown Flex tokens is spent.
var errTooManyTokenChecks = errors.New("too many Flex token validations; retry shortly")

// Lifetimes of cached token answers without an expiration of their own.
const (
	// invalidTokenTTL: a rejected token is not asked about again for a minute.
	invalidTokenTTL = time.Minute
	// validTokenTTL applies when Twilio gave no expiration.
	validTokenTTL = 5 * time.Minute
)

// tokenCache remembers Twilio's answers about Flex tokens, so that a companion polling a recovery
// costs one validation per token rather than one per request. Valid tokens are kept until their
// expiration by the operator's clock; tokens are keyed by their SHA-256 per account, so the cache
// never holds a token itself. Validations of tokens not in the cache are bounded per client first
// (so one client sending made-up tokens spends only its own budget, not every agent's) and then
// per account (so many clients together cannot spend the account's Twilio budget).
type tokenCache struct {
	now func() time.Time

	mu       sync.Mutex
	entries  *lru[string, tokenEntry]
	clients  *budgets
	accounts *budgets
}

type tokenEntry struct {
	identity twilio.FlexIdentity
	until    time.Time
}

// Per-client budget of validations of unknown Flex tokens: an agent's companion needs one per
// login, so a handful at once is plenty.
const (
	clientTokenRate  = 0.5
	clientTokenBurst = 5
)

func newTokenCache(size int, now func() time.Time, perSecond float64, burst int) *tokenCache {
	return &tokenCache{now: now, entries: newLRU[string, tokenEntry](size),
		clients: newBudgets(clientTokenRate, clientTokenBurst), accounts: newBudgets(perSecond, burst)}
}

// identify returns who the token belongs to, asking Twilio only about tokens not seen recently.
func (c *tokenCache) identify(ctx context.Context, client, accountSID string, tw twilio.Client, token string) (twilio.FlexIdentity, error) {
	sum := sha256.Sum256([]byte(token))
	key := accountSID + "/" + hex.EncodeToString(sum[:])
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries.get(key)
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.identity, nil
	}
	if !c.clients.spend(client+"/"+accountSID, now) || !c.accounts.spend(accountSID, now) {
		return twilio.FlexIdentity{}, errTooManyTokenChecks
	}
	identity, err := tw.ValidateFlexToken(ctx, token)
	if err != nil {
		return twilio.FlexIdentity{}, fmt.Errorf("validate Flex token: %w", err)
	}
	until := now.Add(invalidTokenTTL)
	if identity.Valid {
		until = identity.Expiration
		if until.IsZero() {
			until = now.Add(validTokenTTL)
		}
	}
	c.mu.Lock()
	c.entries.add(key, tokenEntry{identity: identity, until: until}, nil)
	c.mu.Unlock()
	return identity, nil
}
