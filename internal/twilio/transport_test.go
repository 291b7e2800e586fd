package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOperationName(t *testing.T) {
	tests := []struct {
		method, path, want string
		wantKind           requestKind
	}{
		{"POST", "/v1/Workspaces/WS1/Tasks", "POST /Workspaces/{}/Tasks", kindCreate},
		{"POST", "/v1/Workspaces/WS1/Tasks/WT1", "POST /Workspaces/{}/Tasks/{}", kindIdempotent},
		{"GET", "/v1/Workspaces/WS1/Tasks/WT1/Reservations", "GET /Workspaces/{}/Tasks/{}/Reservations", kindIdempotent},
		{"POST", "/2010-04-01/Accounts/AC1/Conferences/CF1/Participants.json", "POST /Accounts/{}/Conferences/{}/Participants", kindCreate},
		{"POST", "/2010-04-01/Accounts/AC1/Conferences/CF1/Participants/agent%20one%2Fx.json", "POST /Accounts/{}/Conferences/{}/Participants/{}", kindIdempotent},
		{"POST", "/2010-04-01/Accounts/AC1/Calls/CA1.json", "POST /Accounts/{}/Calls/{}", kindIdempotent},
		{"DELETE", "/v1/Sinks/DG1", "DELETE /Sinks/{}", kindIdempotent},
		{"POST", "/v1/Sinks/DG1/Validate", "POST /Sinks/{}/Validate", kindCreate},
		{"POST", "/v1/Accounts/AC1/Tokens/validate", "POST /Accounts/{}/Tokens/validate", kindIdempotent},
		{"GET", "/v1/Workspaces/WS1/Workers/Statistics", "GET /Workspaces/{}/Workers/Statistics", kindIdempotent},
		{"GET", "/", "GET /", kindIdempotent},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			if got := operationName(tt.method, tt.path); got != tt.want {
				t.Errorf("operationName = %q, want %q", got, tt.want)
			}
			if got := guessKind(tt.method, tt.path); got != tt.wantKind {
				t.Errorf("guessKind = %v, want %v", got, tt.wantKind)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"-1", 0},
		{"soon", 0},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHalfJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, time.Millisecond, 5 * time.Second} {
		for range 100 {
			if got := halfJitter(d); got < d/2 || got > d {
				t.Fatalf("halfJitter(%v) = %v, outside [d/2, d]", d, got)
			}
		}
	}
}

// recordingTransport remembers the last request it was given.
type recordingTransport struct{ last *http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.last = req
	return &http.Response{StatusCode: 204, Body: http.NoBody, Request: req}, nil
}

func TestRewriteLeavesOtherHostsAlone(t *testing.T) {
	base, _ := url.Parse("http://sim.local:9000")
	tests := []struct {
		in, wantURL, wantHeader string
	}{
		{"https://taskrouter.twilio.com/v1/Workspaces?PageSize=50", "http://sim.local:9000/v1/Workspaces?PageSize=50", "taskrouter.twilio.com"},
		{"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts", "http://sim.local:9000/2010-04-01/Accounts", "api.dublin.ie1.twilio.com"},
		{"https://example.com/next", "https://example.com/next", ""},
		{"https://nottwilio.com/x", "https://nottwilio.com/x", ""},
	}
	for _, tt := range tests {
		rec := &recordingTransport{}
		req, _ := http.NewRequest(http.MethodGet, tt.in, nil)
		if _, err := (rewriteTransport{base: base, next: rec}).RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got := rec.last.URL.String(); got != tt.wantURL {
			t.Errorf("%s → %s, want %s", tt.in, got, tt.wantURL)
		}
		if got := rec.last.Header.Get(HostHeader); got != tt.wantHeader {
			t.Errorf("%s: %s = %q, want %q", tt.in, HostHeader, got, tt.wantHeader)
		}
		if req.Header.Get(HostHeader) != "" {
			t.Errorf("%s: the caller's request was modified", tt.in)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	type verdict struct{ NotFound, Conflict, Retryable, Terminal bool }
	tests := []struct {
		name string
		err  error
		want verdict
	}{
		{"nil", nil, verdict{}},
		{"404", &APIError{Status: 404}, verdict{NotFound: true, Terminal: true}},
		{"wrapped 404", fmt.Errorf("fetch task: %w", &APIError{Status: 404}), verdict{NotFound: true, Terminal: true}},
		{"sentinel", fmt.Errorf("find queue: %w", ErrNotFound), verdict{NotFound: true}},
		{"412", &APIError{Status: 412}, verdict{Conflict: true, Terminal: true}},
		{"400", &APIError{Status: 400, Code: 20001}, verdict{Terminal: true}},
		{"429", &APIError{Status: 429}, verdict{Retryable: true}},
		{"503", &APIError{Status: 503}, verdict{Retryable: true}},
		{"unknown create", fmt.Errorf("%w: %w", ErrOutcomeUnknown, &APIError{Status: 500}), verdict{Retryable: true}},
		{"connection", &url.Error{Op: "Post", URL: "u", Err: errors.New("reset")}, verdict{Retryable: true}},
		{"cancelled", context.Canceled, verdict{}},
		{"plain", errors.New("bad input"), verdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := verdict{IsNotFound(tt.err), IsVersionConflict(tt.err), IsRetryable(tt.err), IsTerminal(tt.err)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
	if got := RetryAfter(fmt.Errorf("x: %w", &APIError{Status: 429, RetryAfter: 3 * time.Second})); got != 3*time.Second {
		t.Errorf("RetryAfter = %v, want 3s", got)
	}
}
