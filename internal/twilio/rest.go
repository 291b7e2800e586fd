package twilio

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	apiv2010 "github.com/twilio/twilio-go/rest/api/v2010"
	eventsv1 "github.com/twilio/twilio-go/rest/events/v1"
	taskrouterv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"
)

type options struct {
	transport http.RoundTripper
	sleep     func(ctx context.Context, d time.Duration) error
	now       func() time.Time
	jitter    func(d time.Duration) time.Duration
	retry     *retryPolicy
	// budgetClock is the clock of the account's budgets when this client
	// creates them (tests move it with their recorded sleeps).
	budgetClock func() time.Time
}

// WithTransport sets the RoundTripper that finally sends requests
// (default: a clone of http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithSleep replaces how the retry layer waits between attempts; tests use
// it to record backoffs instead of waiting them. sleep must return ctx.Err()
// when ctx ends first.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = sleep }
}

// WithClock replaces the clock used for Retry-After dates, deadlines and
// request durations.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithJitter replaces the backoff jitter (default: uniform in [d/2, d]);
// tests pass the identity to get exact backoffs.
func WithJitter(jitter func(d time.Duration) time.Duration) Option {
	return func(o *options) { o.jitter = jitter }
}

// WithRetry overrides Config.MaxRetries, MinBackoff and MaxBackoff.
func WithRetry(maxRetries int, minBackoff, maxBackoff time.Duration) Option {
	return func(o *options) {
		o.retry = &retryPolicy{maxRetries: maxRetries, minBackoff: minBackoff, maxBackoff: maxBackoff}
	}
}

// withBudgetClock sets the clock of the account's budgets if this client is
// the first of the account; tests move it with their recorded sleeps.
func withBudgetClock(now func() time.Time) Option {
	return func(o *options) { o.budgetClock = now }
}

// credentialRE is what twilio-go accepts for a username or password; it
// rejects anything else at request time with a confusing 400.
var credentialRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// restClient implements Client on twilio-go.
type restClient struct {
	accountSID string
	authToken  string
	creds      *twclient.Credentials
	// transport is the whole chain: rewrite → retry (with the account's
	// token bucket) → metrics → network.
	transport http.RoundTripper
}

func newRESTClient(cfg Config, opts ...Option) (Client, error) {
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	o := options{now: time.Now, sleep: sleepContext, jitter: halfJitter, budgetClock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.transport == nil {
		o.transport = http.DefaultTransport.(*http.Transport).Clone()
	}

	policy := retryPolicy{
		maxRetries:     defaultInt(cfg.MaxRetries, DefaultMaxRetries),
		minBackoff:     defaultDuration(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:     defaultDuration(cfg.MaxBackoff, DefaultMaxBackoff),
		attemptTimeout: defaultDuration(cfg.Timeout, DefaultTimeout),
	}
	if o.retry != nil {
		policy.maxRetries, policy.minBackoff, policy.maxBackoff = o.retry.maxRetries, o.retry.minBackoff, o.retry.maxBackoff
	}
	if policy.maxRetries < 0 {
		policy.maxRetries = 0
	}

	var rt http.RoundTripper = metricsTransport{now: o.now, next: o.transport}
	rt = &retryTransport{
		budgets: budgetsFor(cfg.AccountSID, limitsOf(cfg), o.budgetClock),
		policy:  policy,
		sleep:   o.sleep,
		now:     o.now,
		jitter:  o.jitter,
		next:    rt,
	}
	if cfg.BaseURL != "" {
		base, _ := url.Parse(cfg.BaseURL) // validated above
		rt = rewriteTransport{base: base, next: rt}
	}

	user, pass := cfg.AccountSID, cfg.AuthToken
	if cfg.APIKeySID != "" {
		user, pass = cfg.APIKeySID, cfg.APIKeySecret
	}
	return &restClient{
		accountSID: cfg.AccountSID,
		authToken:  cfg.AuthToken,
		creds:      twclient.NewCredentials(user, pass),
		transport:  rt,
	}, nil
}

func validateConfig(cfg Config) error {
	if !strings.HasPrefix(cfg.AccountSID, "AC") || !credentialRE.MatchString(cfg.AccountSID) {
		return fmt.Errorf("twilio config: account SID %q must start with AC and be alphanumeric", cfg.AccountSID)
	}
	if cfg.APIKeySID != "" || cfg.APIKeySecret != "" {
		if !strings.HasPrefix(cfg.APIKeySID, "SK") || !credentialRE.MatchString(cfg.APIKeySID) {
			return fmt.Errorf("twilio config: API key SID %q must start with SK and be alphanumeric", cfg.APIKeySID)
		}
		if !credentialRE.MatchString(cfg.APIKeySecret) {
			return errors.New("twilio config: API key secret must be non-empty and alphanumeric")
		}
	} else if !credentialRE.MatchString(cfg.AuthToken) {
		return errors.New("twilio config: auth token must be non-empty and alphanumeric (or give an API key)")
	}
	if cfg.AuthToken != "" && !credentialRE.MatchString(cfg.AuthToken) {
		return errors.New("twilio config: auth token must be alphanumeric")
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil {
			return fmt.Errorf("twilio config: base URL: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("twilio config: base URL %q must be http(s)://host[:port][/path]", cfg.BaseURL)
		}
	}
	for _, l := range []Limit{{cfg.Rate, cfg.Burst}, cfg.Limits.TaskRouter, cfg.Limits.Voice, cfg.Limits.Other} {
		if l.Burst < 0 {
			return errors.New("twilio config: burst must not be negative")
		}
		if math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
			return errors.New("twilio config: rate must be a finite number (negative: no limit)")
		}
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.Timeout < 0 {
		return errors.New("twilio config: durations must not be negative")
	}
	return nil
}

func defaultInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func defaultDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// AccountSID implements Client.
func (c *restClient) AccountSID() string { return c.accountSID }

// call is one Client method's view of the chain: an http.Client bound to the
// method's context and callState. twilio-go's requests carry no context, so
// a fresh twilio-go client per call is how cancellation and the create mark
// reach the transport; the structs are small and hold no connections.
type call struct {
	state *callState
	http  *http.Client
	tw    *twclient.Client
}

func (c *restClient) newCall(ctx context.Context, kind requestKind) *call {
	state := &callState{kind: kind}
	hc := &http.Client{
		Transport: contextTransport{ctx: withCallState(ctx, state), next: c.transport},
		// Like twilio-go's default client: a redirect is an answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tw := &twclient.Client{Credentials: c.creds, HTTPClient: hc}
	// With an API key the key is the username; Api v2010 paths need the
	// account SID, which twilio-go takes from here.
	tw.SetAccountSid(c.accountSID)
	return &call{state: state, http: hc, tw: tw}
}

func (k *call) taskrouter() *taskrouterv1.ApiService {
	return taskrouterv1.NewApiServiceWithClient(k.tw)
}
func (k *call) api() *apiv2010.ApiService    { return apiv2010.NewApiServiceWithClient(k.tw) }
func (k *call) events() *eventsv1.ApiService { return eventsv1.NewApiServiceWithClient(k.tw) }

// err turns what twilio-go returned into this package's errors, adding what
// the retry layer saw, and wraps it with what was being done.
func (k *call) err(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	status, retryAfter, unsure := k.state.snapshot()
	mapped := err
	var tre *twclient.TwilioRestError
	var v1 *twclient.RestErrorV1
	var transportErr *url.Error
	switch {
	case errors.As(err, &transportErr):
		// No answer reached twilio-go (cancelled, connection broken).

	case errors.As(err, &tre):
		mapped = &APIError{Status: tre.Status, Code: tre.Code, Message: tre.Message, MoreInfo: tre.MoreInfo, RetryAfter: retryAfter}
	case errors.As(err, &v1):
		mapped = &APIError{Status: v1.HttpStatusCode, Code: v1.Code, Message: v1.Message, RetryAfter: retryAfter}
	case status >= 400:
		// twilio-go could not decode the error body (a proxy's HTML page,
		// say); keep the status, which is what callers classify on.
		mapped = &APIError{Status: status, Message: err.Error(), RetryAfter: retryAfter}
	}
	// A create that may have reached Twilio (even one cut short by the
	// caller's context) must be looked up before it is tried again.
	if k.state.kind == kindCreate && unsure {
		var ae *APIError
		if !errors.As(mapped, &ae) || ae.Status >= 500 {
			mapped = fmt.Errorf("%w: %w", ErrOutcomeUnknown, mapped)
		}
	}
	return fmt.Errorf(format+": %w", append(args, mapped)...)
}

// checkSID rejects identifiers that would change the shape of a URL path.
func checkSID(what, sid string) error {
	if sid == "" {
		return fmt.Errorf("twilio: %s is required", what)
	}
	if url.PathEscape(sid) != sid || sid == "." || sid == ".." {
		return fmt.Errorf("twilio: %s %q contains characters not allowed in a SID", what, sid)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func derefTime(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return *p
}
