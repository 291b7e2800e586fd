package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// HostHeader carries the original Twilio host of a request sent to
// Config.BaseURL, so one simulator can tell the products apart.
const HostHeader = "X-Twilio-Host"

// maxErrorBody caps how much of an error answer is kept in memory.
const maxErrorBody = 1 << 20

// requestKind says how safe it is to send a request twice.
type requestKind int

const (
	// kindUnknown: not marked by the caller; guessed from method and path.
	kindUnknown requestKind = iota
	// kindIdempotent: reads, deletes, and updates that set a resource to a
	// given state. Repeating one after a 5xx cannot do harm.
	kindIdempotent
	// kindCreate: creates, and updates that start something new (a call
	// redirect that enqueues a task). After a 5xx or a broken connection the
	// outcome is unknown, so only 429 (never processed) is retried.
	kindCreate
)

// callState travels in the request context from a Client method down to
// the retry layer. It marks how the request may be retried and carries back
// what twilio-go cannot: the last Retry-After and status, and whether the
// last failure may have been processed by Twilio.
type callState struct {
	kind requestKind

	mu         sync.Mutex
	retryAfter time.Duration
	lastStatus int
	// unsure is true when the last attempt ended in a 5xx or a transport
	// error after the request may have reached Twilio.
	unsure bool
}

func (s *callState) record(status int, retryAfter time.Duration, unsure bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastStatus, s.retryAfter, s.unsure = status, retryAfter, unsure
}

func (s *callState) snapshot() (status int, retryAfter time.Duration, unsure bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastStatus, s.retryAfter, s.unsure
}

type callStateKey struct{}

func withCallState(ctx context.Context, s *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, s)
}

func callStateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callStateKey{}).(*callState)
	return s
}

// contextTransport puts a call's context on every request. twilio-go builds
// its requests with context.Background(), so without this neither
// cancellation nor the callState would reach the layers below.
type contextTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t contextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(t.ctx))
}

// rewriteTransport sends requests for *.twilio.com to a base URL (the
// simulator), keeping path and query and naming the original host in
// HostHeader.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func isTwilioHost(host string) bool {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host == "twilio.com" || strings.HasSuffix(host, ".twilio.com")
}

func (t rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isTwilioHost(req.URL.Host) {
		return t.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.Header.Set(HostHeader, req.URL.Hostname())
	u := *req.URL
	u.Scheme, u.Host = t.base.Scheme, t.base.Host
	basePath := strings.TrimSuffix(t.base.Path, "/")
	if basePath != "" {
		u.Path = basePath + req.URL.Path
		u.RawPath = ""
		if req.URL.RawPath != "" {
			u.RawPath = strings.TrimSuffix(t.base.EscapedPath(), "/") + req.URL.EscapedPath()
		}
	}
	out.URL = &u
	out.Host = ""
	return t.next.RoundTrip(out)
}

// retryPolicy says how often and how long the retry layer waits.
type retryPolicy struct {
	maxRetries int
	minBackoff time.Duration
	maxBackoff time.Duration
	// attemptTimeout bounds one attempt, response headers and body.
	attemptTimeout time.Duration
}

// retryTransport sends each attempt through its budget (the account's, or
// for TaskRouter the workspace's, token bucket with its priority queue) and
// repeats what is safe to repeat. It sits beneath twilio-go because
// twilio-go drops the response (and with it Retry-After) on errors.
type retryTransport struct {
	budgets *accountBudgets
	policy  retryPolicy
	sleep   func(ctx context.Context, d time.Duration) error
	now     func() time.Time
	jitter  func(d time.Duration) time.Duration
	next    http.RoundTripper
}

// sleepContext waits d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// halfJitter returns a duration in [d/2, d]: enough spread that clients
// throttled together do not come back together, while keeping the
// exponential growth.
func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	state := callStateFrom(ctx)
	kind := kindUnknown
	if state != nil {
		kind = state.kind
	}
	if kind == kindUnknown {
		kind = guessKind(req.Method, req.URL.EscapedPath())
	}
	product, operation := productOf(req), operationName(req.Method, req.URL.EscapedPath())

	body, err := bodyBytes(req)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	class, scope := classOf(req)
	budget := t.budgets.get(class, scope)
	priority, key := PriorityOf(ctx), coalesceKeyOf(ctx)

	for attempt := 0; ; attempt++ {
		if err := budget.acquire(ctx, priority, key); err != nil {
			if errors.Is(err, ErrSuperseded) {
				return nil, err
			}
			return nil, fmt.Errorf("twilio rate limiter: %w", err)
		}
		resp, err := t.attempt(ctx, req, body)

		status, retryAfter := 0, time.Duration(0)
		if resp != nil {
			status = resp.StatusCode
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
			if status == http.StatusTooManyRequests {
				// Twilio throttles the class, not this request: every waiter of this
				// priority or a less urgent one holds back until Retry-After (or a
				// first backoff step).
				budget.pause(max(retryAfter, t.policy.minBackoff), priority)
			}
		}
		if state != nil {
			state.record(status, retryAfter, mayHaveBeenProcessed(resp, err))
		}

		reason, retry := t.shouldRetry(ctx, kind, resp, err)
		if retry && attempt >= t.policy.maxRetries {
			retry = false
		}
		var wait time.Duration
		if retry {
			wait = t.backoff(attempt, retryAfter)
			// Waiting less than the server asked only earns another 429,
			// and waiting past the caller's deadline is pointless: hand
			// the answer back so the caller can requeue after RetryAfter.
			if retryAfter > t.policy.maxBackoff {
				retry = false
			} else if dl, ok := ctx.Deadline(); ok && t.now().Add(wait).After(dl) {
				retry = false
			}
		}
		if !retry {
			if err != nil {
				return nil, err
			}
			return finalResponse(resp), nil
		}

		retriesTotal.WithLabelValues(product, operation, reason).Inc()
		if resp != nil {
			drainAndClose(resp)
		}
		if err := t.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("twilio retry backoff: %w", err)
		}
	}
}

// attempt sends one copy of req with a fresh body and its own timeout.
func (t *retryTransport) attempt(ctx context.Context, req *http.Request, body []byte) (*http.Response, error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if t.policy.attemptTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, t.policy.attemptTimeout)
	}
	out := req.Clone(actx)
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	// The attempt's context must live until the body is read.
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// shouldRetry classifies one attempt. 429 is always safe (Twilio error
// 20429: never processed). 5xx and connection errors are retried only for
// idempotent requests, except errors that prove the request never left
// (dial failures), which are safe for creates too.
func (t *retryTransport) shouldRetry(ctx context.Context, kind requestKind, resp *http.Response, err error) (reason string, retry bool) {
	if ctx.Err() != nil {
		return "", false
	}
	if err != nil {
		// retryablehttp knows which transport errors are permanent (bad
		// scheme, TLS trust, invalid header); it expects the *url.Error
		// that http.Client would have wrapped around them.
		ok, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, &url.Error{Op: "Do", URL: "", Err: err})
		if !ok {
			return "", false
		}
		if kind == kindCreate && !neverSent(err) {
			return "", false
		}
		return "connection", true
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return "429", true
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		return "5xx", kind == kindIdempotent
	}
	return "", false
}

// backoff is the wait before retry number attempt+1: the server's
// Retry-After when given, else capped exponential backoff with jitter.
func (t *retryTransport) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	d := t.policy.minBackoff
	for i := 0; i < attempt && d < t.policy.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, t.policy.maxBackoff)
	return t.jitter(d)
}

// neverSent reports whether a transport error proves the request did not
// reach the server, so even a create can be repeated.
func neverSent(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

// mayHaveBeenProcessed reports whether a failed attempt leaves Twilio's
// state unknown: a 5xx, or a transport error after the request may have
// been sent.
func mayHaveBeenProcessed(resp *http.Response, err error) bool {
	if err != nil {
		return !neverSent(err)
	}
	return resp.StatusCode >= 500
}

// finalResponse buffers an error answer and releases the connection:
// twilio-go decodes error bodies but never closes them.
func finalResponse(resp *http.Response) *http.Response {
	if resp.StatusCode < 400 {
		return resp
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	drainAndClose(resp)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp
}

func drainAndClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// bodyBytes reads the request body once so every attempt can resend it.
func bodyBytes(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	rc := req.Body
	if req.GetBody != nil {
		fresh, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		rc = fresh
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(rc)
}

// parseRetryAfter reads Retry-After as seconds (what Twilio sends) or as an
// HTTP date; anything else counts as absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs > 24*3600 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// metricsTransport counts and times every attempt.
type metricsTransport struct {
	now  func() time.Time
	next http.RoundTripper
}

func (t metricsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	product, operation := productOf(req), operationName(req.Method, req.URL.EscapedPath())
	start := t.now()
	resp, err := t.next.RoundTrip(req)
	requestDuration.WithLabelValues(product, operation).Observe(t.now().Sub(start).Seconds())
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	requestsTotal.WithLabelValues(product, operation, status).Inc()
	return resp, err
}

// productOf names the Twilio product of a request from its original host:
// taskrouter, api, events, iam.
func productOf(req *http.Request) string {
	host := req.Header.Get(HostHeader)
	if host == "" {
		host = req.URL.Hostname()
	}
	if !isTwilioHost(host) {
		return "other"
	}
	product, _, _ := strings.Cut(strings.ToLower(host), ".")
	return product
}

// literalSegments are path segments in an identifier position that are
// fixed words, not identifiers.
var literalSegments = map[string]bool{
	"validate": true, "Statistics": true, "RealTimeStatistics": true, "CumulativeStatistics": true,
}

// templateSegments splits a Twilio path into its segments after the version
// (v1, 2010-04-01), with identifiers replaced by "{}". Twilio paths
// alternate collection and identifier, which is what makes this stable
// without a route table.
func templateSegments(escapedPath string) []string {
	p := strings.TrimSuffix(escapedPath, ".json")
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	if len(segs) > 0 && isVersion(segs[0]) {
		segs = segs[1:]
	}
	for i := range segs {
		if i%2 == 1 && !literalSegments[segs[i]] {
			segs[i] = "{}"
		}
	}
	return segs
}

func isVersion(s string) bool {
	if len(s) >= 2 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9' {
		return true
	}
	return len(s) == 10 && s[4] == '-' && s[7] == '-'
}

// operationName is a stable metric label such as "POST /Workspaces/{}/Tasks".
func operationName(method, escapedPath string) string {
	return method + " /" + strings.Join(templateSegments(escapedPath), "/")
}

// guessKind classifies a request no Client method marked: a POST to a
// collection creates, a POST to an instance updates it.
func guessKind(method, escapedPath string) requestKind {
	if method != http.MethodPost && method != http.MethodPatch {
		return kindIdempotent
	}
	segs := templateSegments(escapedPath)
	if len(segs)%2 == 1 && !literalSegments[segs[len(segs)-1]] {
		return kindCreate
	}
	return kindIdempotent
}
