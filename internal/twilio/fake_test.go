package twilio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seenRequest is what the fake recorded of one request.
type seenRequest struct {
	Method      string
	Host        string // X-Twilio-Host
	Path        string
	EscapedPath string
	Query       url.Values
	Form        url.Values
	Body        string
	Header      http.Header
	User, Pass  string
}

// reply is one scripted answer.
type reply struct {
	status  int
	headers map[string]string
	body    string
}

// fakeTwilio is a tiny stand-in for Twilio: it records requests and answers
// from a script, then from a default.
type fakeTwilio struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	seen   []seenRequest
	script []reply
	// answer is used once the script is exhausted.
	answer func(r seenRequest) reply
}

func newFake(t *testing.T) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{t: t, answer: func(seenRequest) reply { return reply{status: 200, body: "{}"} }}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	s := seenRequest{
		Method: r.Method, Host: r.Header.Get(HostHeader), Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(),
		Query: r.URL.Query(), Body: string(raw), Header: r.Header.Clone(),
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		s.Form, _ = url.ParseQuery(string(raw))
	}
	s.User, s.Pass, _ = r.BasicAuth()

	f.mu.Lock()
	f.seen = append(f.seen, s)
	var rep reply
	if len(f.script) > 0 {
		rep, f.script = f.script[0], f.script[1:]
	} else {
		rep = f.answer(s)
	}
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	for k, v := range rep.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeTwilio) then(replies ...reply) {
	f.mu.Lock()
	f.script = append(f.script, replies...)
	f.mu.Unlock()
}

func (f *fakeTwilio) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// twilioError is Twilio's error body.
func twilioError(status, code int, msg string) reply {
	return reply{status: status, body: fmt.Sprintf(`{"code":%d,"message":%q,"more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`, code, msg, code, status)}
}

// sleepRecorder stands in for the retry layer's sleep: it records each
// backoff and returns at once. Its clock, which the test account's budgets
// read, moves on by each wait, so a budget paused by a 429's Retry-After is
// paused exactly as long as the recorded wait.
type sleepRecorder struct {
	mu     sync.Mutex
	waits  []time.Duration
	offset time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.offset += max(d, 0)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.offset)
}

func (s *sleepRecorder) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

var accountSeq atomic.Int64

// uniqueAccount gives each test its own account SID, so tests do not share
// a rate limiter unless they mean to.
func uniqueAccount() string {
	return fmt.Sprintf("ACtest%010d", accountSeq.Add(1))
}

// newTestClient builds a client against the fake with exact backoffs and a
// recorded sleep.
func newTestClient(t *testing.T, f *fakeTwilio, cfg Config, opts ...Option) (Client, *sleepRecorder) {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID = uniqueAccount()
	}
	if cfg.AuthToken == "" && cfg.APIKeySID == "" {
		cfg.AuthToken = "testtoken"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = f.srv.URL
	}
	rec := &sleepRecorder{}
	opts = append([]Option{WithSleep(rec.sleep), withBudgetClock(rec.now), WithJitter(func(d time.Duration) time.Duration { return d })}, opts...)
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, rec
}
