package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// iamBaseURL is where Flex user tokens are checked. twilio-go has no call
// for it; the request goes through the same transport chain as the rest.
const iamBaseURL = "https://iam.twilio.com"

// maxFlexToken bounds the token we forward: a Flex JWE is a few kB.
const maxFlexToken = 16 << 10

// flexValidation is IAM's answer, as twilio-flex-token-validator reads it.
type flexValidation struct {
	Valid       *bool    `json:"valid"`
	Code        int      `json:"code"`
	Message     *string  `json:"message"`
	Expiration  string   `json:"expiration"`
	RealmUserID string   `json:"realm_user_id"`
	Identity    string   `json:"identity"`
	Roles       []string `json:"roles"`
	WorkerSID   string   `json:"worker_sid"`
	// Twilio's usual error body, when the request itself was refused.
	Status   int    `json:"status"`
	MoreInfo string `json:"more_info"`
}

// ValidateFlexToken implements Client.
func (c *restClient) ValidateFlexToken(ctx context.Context, token string) (FlexIdentity, error) {
	if token == "" {
		return FlexIdentity{Message: "no token"}, nil
	}
	if len(token) > maxFlexToken {
		return FlexIdentity{Message: "token too long"}, nil
	}
	body, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		return FlexIdentity{}, fmt.Errorf("validate flex token: %w", err)
	}
	// A read: repeating it after a 5xx is harmless.
	k := c.newCall(ctx, kindIdempotent)
	endpoint := iamBaseURL + "/v1/Accounts/" + url.PathEscape(c.accountSID) + "/Tokens/validate"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return FlexIdentity{}, fmt.Errorf("validate flex token: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "no-cache")
	// IAM is documented with the auth token; an API key is only a fallback
	// for configurations that have none.
	user, pass := c.accountSID, c.authToken
	if pass == "" {
		user, pass = c.creds.Username, c.creds.Password
	}
	req.SetBasicAuth(user, pass)

	resp, err := k.http.Do(req)
	if err != nil {
		return FlexIdentity{}, fmt.Errorf("validate flex token: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return FlexIdentity{}, fmt.Errorf("validate flex token: read answer: %w", err)
	}
	var v flexValidation
	decodeErr := json.Unmarshal(raw, &v)

	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && decodeErr == nil && v.Valid != nil:
		return identityFrom(v), nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && !isAuthOrThrottle(resp.StatusCode) && decodeErr == nil && v.Valid != nil:
		// IAM refusing the token itself (not our credentials).
		return identityFrom(v), nil
	}
	_, retryAfter, _ := k.state.snapshot()
	ae := &APIError{Status: resp.StatusCode, Code: v.Code, Message: deref(v.Message), MoreInfo: v.MoreInfo, RetryAfter: retryAfter}
	if resp.StatusCode < 400 {
		ae.Message = "unexpected answer from Twilio IAM"
	}
	return FlexIdentity{}, fmt.Errorf("validate flex token: %w", ae)
}

func isAuthOrThrottle(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests
}

func identityFrom(v flexValidation) FlexIdentity {
	id := FlexIdentity{
		Valid:       *v.Valid,
		Identity:    v.Identity,
		RealmUserID: v.RealmUserID,
		WorkerSID:   v.WorkerSID,
		Roles:       v.Roles,
		Message:     deref(v.Message),
	}
	if t, err := time.Parse(time.RFC3339Nano, v.Expiration); err == nil {
		id.Expiration = t
	}
	// A "valid" answer naming nobody cannot be attributed to an agent.
	if id.Valid && id.Identity == "" {
		id.Valid, id.Message = false, "answer carried no identity"
	}
	return id
}
