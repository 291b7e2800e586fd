package twiliosim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// IAM: the Flex token check (POST /v1/Accounts/{AccountSid}/Tokens/validate
// on iam.twilio.com), as twilio-flex-token-validator calls it.

// FlexTokenLifetime is how long an issued Flex token stays valid.
const FlexTokenLifetime = time.Hour

type flexToken struct {
	identity, realmUserID, workerSID string
	roles                            []string
	expires                          time.Time
}

// IssueFlexToken makes a Flex user token for a worker, as a Flex login
// would, valid for FlexTokenLifetime of simulated time. roles defaults to
// ["agent"]. A SID the simulator does not know still gets a token (a Flex
// user need not be a worker), with the SID as identity.
func (s *Sim) IssueFlexToken(workerSID string, roles ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(roles) == 0 {
		roles = []string{"agent"}
	}
	ft := &flexToken{identity: workerSID, realmUserID: workerSID, workerSID: workerSID, roles: roles,
		expires: s.now().Add(FlexTokenLifetime)}
	if _, w, err := s.findWorker(workerSID); err == nil {
		ft.identity = strings.TrimPrefix(contactURI(w), "client:")
		ft.realmUserID = w.name
		if email, ok := w.attrs["email"].(string); ok && email != "" {
			ft.realmUserID = email
		}
	}
	// Real Flex tokens are JWEs; an opaque string of the same look will do,
	// since only Twilio can read them.
	token := "eyJ" + s.newSID("") + s.newSID("") + "." + s.newSID("")
	s.tokens[token] = ft
	return token
}

// RevokeFlexToken makes a token invalid, as a Flex logout does.
func (s *Sim) RevokeFlexToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

func (s *Sim) iamMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/Accounts/{acct}/Tokens/validate", s.wrap(s.validateFlexToken))
	return m
}

func (s *Sim) validateFlexToken(rq *request) (reply, error) {
	if rq.path("acct") != s.accountSID {
		return reply{}, &apiError{status: 403, code: 20003, message: "the account in the path is not the authenticated account"}
	}
	var body struct {
		Token string `json:"token"`
	}
	raw, err := io.ReadAll(rq.r.Body)
	if err != nil {
		return reply{}, errBad("cannot read the request body: %v", err)
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return reply{}, errBad("the body must be JSON {\"token\": …}: %v", err)
	}
	invalid := func(msg string) (reply, error) {
		return okJSON(map[string]any{"valid": false, "code": 20151, "message": msg})
	}
	if body.Token == "" {
		return invalid("token is required")
	}
	ft, ok := s.tokens[body.Token]
	if !ok {
		return invalid("Token is invalid")
	}
	if !s.now().Before(ft.expires) {
		return invalid("Token has expired")
	}
	return okJSON(map[string]any{
		"valid": true, "code": 0, "message": nil, "expiration": ft.expires.UTC().Format("2006-01-02T15:04:05.000Z"),
		"realm_user_id": ft.realmUserID, "identity": ft.identity, "roles": ft.roles, "worker_sid": ft.workerSID,
	})
}
