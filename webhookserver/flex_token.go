package webhookserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// bearerToken returns the token of an "Authorization: Bearer …" header, or "".
func bearerToken(req *http.Request) string {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
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
// at once), 503 (credentials unusable or Twilio unreachable). A token already known to be valid is
// served whatever the client's address did before: agents behind one office NAT share it.
func (r *Routes) authenticateFlex(w http.ResponseWriter, req *http.Request, token string) (*flexRequest, bool) {
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
			r.refuse(w, req, http.StatusForbidden, "the Flex token is not valid")
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
	identity, ok := r.checkFlexToken(w, req, policy.Namespace+"/"+policy.Name, creds.AccountSID, tw, token)
	if !ok {
		return nil, false
	}
	return &flexRequest{policy: policy, twilio: tw, identity: identity}, true
}

// checkFlexToken asks (through the token cache) whether Twilio accepts the token for the account,
// with a client of that account (of the policy named by source, for the logs). On failure it has
// answered: 429 (too many token checks, or a token not in the cache from a client that failed
// too often of late), 503 (Twilio unreachable), 403 (token refused).
func (r *Routes) checkFlexToken(w http.ResponseWriter, req *http.Request, source, accountSID string, tw twilio.Client, token string) (twilio.FlexIdentity, bool) {
	identity, err := r.tokens.identify(req.Context(), clientAddress(req), accountSID, tw, token, r.spentFailures(req))
	switch {
	case errors.Is(err, errTooManyTokenChecks):
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return identity, false
	case err != nil:
		r.log.Error(err, "Validate a Flex token", "policy", source)
		unavailable(w, "cannot validate the Flex token now")
		return identity, false
	case !identity.Valid:
		r.refuse(w, req, http.StatusForbidden, "the Flex token is not valid")
		return identity, false
	}
	return identity, true
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

// identify returns who the token belongs to, asking Twilio only about tokens not seen recently,
// and never for a client that has spent its failure budget (suspect).
func (c *tokenCache) identify(ctx context.Context, client, accountSID string, tw twilio.Client, token string, suspect bool) (twilio.FlexIdentity, error) {
	sum := sha256.Sum256([]byte(token))
	key := accountSID + "/" + hex.EncodeToString(sum[:])
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries.get(key)
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.identity, nil
	}
	if suspect || !c.clients.spend(client+"/"+accountSID, now) || !c.accounts.spend(accountSID, now) {
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
