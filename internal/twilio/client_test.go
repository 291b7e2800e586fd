package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const workerJSON = `{"sid":"WK1","friendly_name":"alice","activity_sid":"WA1","activity_name":"Available","available":true,"attributes":"{\"skills\":[\"voice\"]}"}`

func TestRewriteSendsEveryProductToBaseURL(t *testing.T) {
	f := newFake(t)
	f.answer = func(r seenRequest) reply {
		switch {
		case strings.Contains(r.Path, "/Workers/"):
			return reply{status: 200, headers: map[string]string{"ETag": "17"}, body: workerJSON}
		case strings.Contains(r.Path, "/Calls/"):
			return reply{status: 200, body: `{"sid":"CA1","status":"in-progress","to":"client:alice"}`}
		default:
			return reply{status: 200, body: `{"sinks":[],"meta":{}}`}
		}
	}
	// A base path on the simulator URL is kept in front of Twilio's path.
	c, _ := newTestClient(t, f, Config{AccountSID: "ACrewrite1", BaseURL: f.srv.URL + "/twilio/"})
	ctx := context.Background()

	w, err := c.FetchWorker(ctx, "WS1", "WK1")
	if err != nil {
		t.Fatalf("FetchWorker: %v", err)
	}
	want := Worker{SID: "WK1", FriendlyName: "alice", ActivitySID: "WA1", ActivityName: "Available", Available: true,
		Attributes: `{"skills":["voice"]}`, Version: "17"}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("worker (-want +got):\n%s", diff)
	}
	if _, err := c.FetchCall(ctx, "CA1"); err != nil {
		t.Fatalf("FetchCall: %v", err)
	}
	if _, err := c.ListSinks(ctx); err != nil {
		t.Fatalf("ListSinks: %v", err)
	}

	type hp struct{ Method, Host, Path, User, Pass string }
	var got []hp
	for _, r := range f.requests() {
		got = append(got, hp{r.Method, r.Host, r.Path, r.User, r.Pass})
	}
	wantReqs := []hp{
		{"GET", "taskrouter.twilio.com", "/twilio/v1/Workspaces/WS1/Workers/WK1", "ACrewrite1", "testtoken"},
		{"GET", "api.twilio.com", "/twilio/2010-04-01/Accounts/ACrewrite1/Calls/CA1.json", "ACrewrite1", "testtoken"},
		{"GET", "events.twilio.com", "/twilio/v1/Sinks", "ACrewrite1", "testtoken"},
	}
	if diff := cmp.Diff(wantReqs, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestAPIKeyAuthKeepsAccountSIDInPath(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return reply{status: 200, body: `{"sid":"CF1","status":"in-progress"}`} }
	c, _ := newTestClient(t, f, Config{AccountSID: "ACkeyed1", APIKeySID: "SKkey1", APIKeySecret: "keysecret"})

	if _, err := c.FetchConference(context.Background(), "CF1"); err != nil {
		t.Fatalf("FetchConference: %v", err)
	}
	r := f.requests()[0]
	if r.Path != "/2010-04-01/Accounts/ACkeyed1/Conferences/CF1.json" {
		t.Errorf("path = %q, want the account SID, not the key, in it", r.Path)
	}
	if r.User != "SKkey1" || r.Pass != "keysecret" {
		t.Errorf("basic auth = %q:%q, want the API key", r.User, r.Pass)
	}
}

func TestTooManyRequestsIsRetriedAfterRetryAfterAndCounted(t *testing.T) {
	f := newFake(t)
	f.then(
		reply{status: 429, headers: map[string]string{"Retry-After": "2"}, body: `{"code":20429,"message":"Too Many Requests","status":429}`},
		reply{status: 429, headers: map[string]string{"Retry-After": "1"}, body: `{"code":20429,"message":"Too Many Requests","status":429}`},
	)
	f.answer = func(seenRequest) reply {
		return reply{status: 200, body: `{"activities":[{"sid":"WA1","friendly_name":"Available","available":true}],"meta":{}}`}
	}
	c, rec := newTestClient(t, f, Config{})

	op := "GET /Workspaces/{}/Activities"
	ok0 := testutil.ToFloat64(requestsTotal.WithLabelValues("taskrouter", op, "200"))
	thr0 := testutil.ToFloat64(requestsTotal.WithLabelValues("taskrouter", op, "429"))
	ret0 := testutil.ToFloat64(retriesTotal.WithLabelValues("taskrouter", op, "429"))

	got, err := c.ListActivities(context.Background(), "WS1")
	if err != nil {
		t.Fatalf("ListActivities: %v", err)
	}
	if diff := cmp.Diff([]Activity{{SID: "WA1", FriendlyName: "Available", Available: true}}, got); diff != "" {
		t.Errorf("activities (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{2 * time.Second, time.Second}, rec.got()); diff != "" {
		t.Errorf("backoffs (-want +got):\n%s", diff)
	}
	for _, m := range []struct {
		name      string
		got, want float64
	}{
		{"requests 200", testutil.ToFloat64(requestsTotal.WithLabelValues("taskrouter", op, "200")) - ok0, 1},
		{"requests 429", testutil.ToFloat64(requestsTotal.WithLabelValues("taskrouter", op, "429")) - thr0, 2},
		{"retries 429", testutil.ToFloat64(retriesTotal.WithLabelValues("taskrouter", op, "429")) - ret0, 2},
	} {
		if m.got != m.want {
			t.Errorf("%s grew by %v, want %v", m.name, m.got, m.want)
		}
	}
}

func TestTooManyRequestsGivesUpWithRetryAfter(t *testing.T) {
	tests := []struct {
		name        string
		retryAfter  string
		wantWaits   int
		wantRetryAt time.Duration
	}{
		// A server asking for longer than MaxBackoff gets its answer back
		// at once: the caller requeues after RetryAfter.
		{name: "longer than max backoff", retryAfter: "30", wantWaits: 0, wantRetryAt: 30 * time.Second},
		{name: "retries exhausted", retryAfter: "1", wantWaits: 2, wantRetryAt: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.answer = func(seenRequest) reply {
				return reply{status: 429, headers: map[string]string{"Retry-After": tt.retryAfter}, body: `{"code":20429,"message":"Too Many Requests","status":429}`}
			}
			c, rec := newTestClient(t, f, Config{MaxRetries: 2, MaxBackoff: 5 * time.Second})
			// A create: 429 is never processed, so it is retried too.
			_, err := c.CreateTask(context.Background(), "WS1", TaskCreate{WorkflowSID: "WW1", Attributes: `{}`})
			if !IsRetryable(err) || IsTerminal(err) {
				t.Errorf("err = %v: want retryable, not terminal", err)
			}
			if errors.Is(err, ErrOutcomeUnknown) {
				t.Errorf("err = %v: a 429 was never processed, the outcome is known", err)
			}
			if got := RetryAfter(err); got != tt.wantRetryAt {
				t.Errorf("RetryAfter = %v, want %v", got, tt.wantRetryAt)
			}
			if got := len(rec.got()); got != tt.wantWaits {
				t.Errorf("waited %d times, want %d", got, tt.wantWaits)
			}
			if got, want := len(f.requests()), tt.wantWaits+1; got != want {
				t.Errorf("sent %d requests, want %d", got, want)
			}
		})
	}
}

func TestServerErrorsRetriedOnlyWhenSafe(t *testing.T) {
	taskJSON := `{"sid":"WT1","assignment_status":"pending","priority":5,"attributes":"{}"}`
	tests := []struct {
		name string
		call func(Client) error
		// failures before success the fake sends
		wantRequests int
		wantUnknown  bool
		wantWaits    []time.Duration
	}{
		{
			name:         "GET is retried with exponential backoff",
			call:         func(c Client) error { _, err := c.FetchTask(context.Background(), "WS1", "WT1"); return err },
			wantRequests: 3, wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		},
		{
			name: "update of an existing task is retried",
			call: func(c Client) error {
				_, err := c.UpdateTask(context.Background(), "WS1", "WT1", TaskUpdate{Priority: ptr(10)})
				return err
			},
			wantRequests: 3, wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		},
		{
			name: "task create is not retried",
			call: func(c Client) error {
				_, err := c.CreateTask(context.Background(), "WS1", TaskCreate{WorkflowSID: "WW1", Attributes: `{}`})
				return err
			},
			wantRequests: 1, wantUnknown: true,
		},
		{
			name: "participant create is not retried",
			call: func(c Client) error {
				_, err := c.CreateParticipant(context.Background(), "CF1", ParticipantCreate{From: "+15550001", To: "+15550002"})
				return err
			},
			wantRequests: 1, wantUnknown: true,
		},
		{
			name:         "call redirect is not retried (it may enqueue twice)",
			call:         func(c Client) error { _, err := c.RedirectCall(context.Background(), "CA1", "<Response/>"); return err },
			wantRequests: 1, wantUnknown: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.then(twilioError(500, 20500, "Internal Server Error"), twilioError(503, 20503, "Service Unavailable"))
			f.answer = func(seenRequest) reply { return reply{status: 200, body: taskJSON} }
			c, rec := newTestClient(t, f, Config{MinBackoff: 100 * time.Millisecond})

			err := tt.call(c)
			if tt.wantUnknown {
				if !errors.Is(err, ErrOutcomeUnknown) || !IsRetryable(err) {
					t.Errorf("err = %v: want ErrOutcomeUnknown and retryable", err)
				}
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 500 || ae.Code != 20500 {
					t.Errorf("err = %v: want the APIError 500/20500 inside", err)
				}
			} else if err != nil {
				t.Fatalf("call: %v", err)
			}
			if got := len(f.requests()); got != tt.wantRequests {
				t.Errorf("sent %d requests, want %d", got, tt.wantRequests)
			}
			if diff := cmp.Diff(tt.wantWaits, rec.got()); diff != "" {
				t.Errorf("backoffs (-want +got):\n%s", diff)
			}
			// Every retry resent the same body.
			reqs := f.requests()
			for _, r := range reqs[1:] {
				if r.Body != reqs[0].Body {
					t.Errorf("retry body %q differs from first %q", r.Body, reqs[0].Body)
				}
			}
		})
	}
}

func TestBackoffIsCapped(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return twilioError(502, 0, "bad gateway") }
	c, rec := newTestClient(t, f, Config{MaxRetries: 5, MinBackoff: time.Second, MaxBackoff: 3 * time.Second})
	_, err := c.FetchWorker(context.Background(), "WS1", "WK1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 {
		t.Fatalf("err = %v, want APIError 502", err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}
	if diff := cmp.Diff(want, rec.got()); diff != "" {
		t.Errorf("backoffs (-want +got):\n%s", diff)
	}
}

func TestUndecodableErrorBodyKeepsStatus(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return reply{status: 502, body: "<html>proxy error</html>"} }
	c, _ := newTestClient(t, f, Config{MaxRetries: -1})
	_, err := c.FetchWorker(context.Background(), "WS1", "WK1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || !IsRetryable(err) {
		t.Fatalf("err = %v, want retryable APIError with status 502", err)
	}
}

// flakyTransport fails the first attempts with given errors, then answers.
type flakyTransport struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (t *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
	}
	if len(t.errs) > 0 {
		err := t.errs[0]
		t.errs = t.errs[1:]
		return nil, err
	}
	return &http.Response{StatusCode: 201, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"sid":"WT9"}`)), Request: req}, nil
}

func TestConnectionErrors(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name        string
		create      bool
		err         error
		wantCalls   int
		wantErr     bool
		wantUnknown bool
	}{
		{name: "dial failure: create retried, it never left", create: true, err: dialErr, wantCalls: 2},
		{name: "broken connection: create not retried", create: true, err: io.ErrUnexpectedEOF, wantCalls: 1, wantErr: true, wantUnknown: true},
		{name: "broken connection: read retried", err: io.ErrUnexpectedEOF, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &flakyTransport{errs: []error{tt.err}}
			c, err := New(Config{AccountSID: uniqueAccount(), AuthToken: "testtoken"},
				WithTransport(ft), WithSleep(func(context.Context, time.Duration) error { return nil }))
			if err != nil {
				t.Fatal(err)
			}
			if tt.create {
				_, err = c.CreateTask(context.Background(), "WS1", TaskCreate{WorkflowSID: "WW1"})
			} else {
				_, err = c.FetchTask(context.Background(), "WS1", "WT9")
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrOutcomeUnknown); got != tt.wantUnknown {
				t.Errorf("ErrOutcomeUnknown = %v, want %v (err %v)", got, tt.wantUnknown, err)
			}
			if tt.wantErr && !IsRetryable(err) {
				t.Errorf("connection error %v should be retryable", err)
			}
			if ft.calls != tt.wantCalls {
				t.Errorf("attempts = %d, want %d", ft.calls, tt.wantCalls)
			}
		})
	}
}

func TestIfMatchAndVersionConflict(t *testing.T) {
	f := newFake(t)
	f.then(twilioError(412, 20412, "Precondition failed"))
	c, rec := newTestClient(t, f, Config{})

	_, err := c.UpdateWorker(context.Background(), "WS1", "WK1", WorkerUpdate{ActivitySID: ptr("WA2"), IfMatch: "17"})
	if !IsVersionConflict(err) || !IsTerminal(err) || IsRetryable(err) || IsNotFound(err) {
		t.Errorf("err = %v: want a version conflict, terminal, not retryable", err)
	}
	r := f.requests()[0]
	if got := r.Header.Get("If-Match"); got != "17" {
		t.Errorf("If-Match = %q, want 17", got)
	}
	if got := r.Form.Get("ActivitySid"); got != "WA2" {
		t.Errorf("ActivitySid = %q, want WA2", got)
	}
	if len(rec.got()) != 0 || len(f.requests()) != 1 {
		t.Errorf("a 412 must not be retried")
	}
}

func TestNotFound(t *testing.T) {
	f := newFake(t)
	f.answer = func(r seenRequest) reply {
		if strings.HasSuffix(r.Path, "/TaskQueues") {
			// Twilio's filter matched loosely: the name is not exact.
			return reply{status: 200, body: `{"task_queues":[{"sid":"WQ1","friendly_name":"Recovery Ping 2"}],"meta":{}}`}
		}
		return twilioError(404, 20404, "The requested resource was not found")
	}
	c, _ := newTestClient(t, f, Config{})
	ctx := context.Background()

	_, err := c.FetchTask(ctx, "WS1", "WTgone")
	if !errors.Is(err, ErrNotFound) || !IsNotFound(err) || IsRetryable(err) {
		t.Errorf("FetchTask err = %v: want ErrNotFound", err)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != 20404 || ae.MoreInfo == "" {
		t.Errorf("FetchTask err = %v: want the Twilio error details", err)
	}
	if _, err := c.FindTaskQueue(ctx, "WS1", "Recovery Ping"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindTaskQueue err = %v: want ErrNotFound", err)
	}
	if err := c.DeleteSink(ctx, "DGgone"); err != nil {
		t.Errorf("DeleteSink of a missing sink = %v, want nil", err)
	}
}

func TestRateLimiterIsSharedPerAccount(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return reply{status: 200, body: workerJSON} }
	shared := uniqueAccount()
	// One token, refilled once a day: a second request on the account must
	// wait, whichever Client sends it.
	cfg := Config{AccountSID: shared, Rate: 1.0 / 86400, Burst: 1}
	first, _ := newTestClient(t, f, cfg)
	second, _ := newTestClient(t, f, cfg)
	other, _ := newTestClient(t, f, Config{Rate: 1.0 / 86400, Burst: 1})

	if _, err := first.FetchWorker(context.Background(), "WS1", "WK1"); err != nil {
		t.Fatalf("first request: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := second.FetchWorker(ctx, "WS1", "WK1")
	if err == nil || !strings.Contains(err.Error(), "rate limiter") {
		t.Errorf("second client on the same account: err = %v, want a rate limiter wait error", err)
	}
	if _, err := other.FetchWorker(ctx, "WS1", "WK1"); err != nil {
		t.Errorf("another account has its own bucket: %v", err)
	}
	if got := len(f.requests()); got != 2 {
		t.Errorf("fake saw %d requests, want 2", got)
	}
}

func TestParticipantLabelIsPathEscaped(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply {
		return reply{status: 200, body: `{"call_sid":"CA2","label":"agent one/x","end_conference_on_exit":false,"status":"connected"}`}
	}
	c, _ := newTestClient(t, f, Config{AccountSID: "AClabel1"})
	op := "POST /Accounts/{}/Conferences/{}/Participants/{}"
	before := testutil.ToFloat64(requestsTotal.WithLabelValues("api", op, "200"))

	p, err := c.UpdateParticipant(context.Background(), "CF1", "agent one/x", ParticipantUpdate{EndConferenceOnExit: ptr(false)})
	if err != nil {
		t.Fatalf("UpdateParticipant: %v", err)
	}
	if p.Label != "agent one/x" || p.CallSID != "CA2" {
		t.Errorf("participant = %+v", p)
	}
	r := f.requests()[0]
	if want := "/2010-04-01/Accounts/AClabel1/Conferences/CF1/Participants/agent%20one%2Fx.json"; r.EscapedPath != want {
		t.Errorf("path = %q, want %q", r.EscapedPath, want)
	}
	if got := r.Form.Get("EndConferenceOnExit"); got != "false" {
		t.Errorf("EndConferenceOnExit = %q, want false", got)
	}
	if got := testutil.ToFloat64(requestsTotal.WithLabelValues("api", op, "200")) - before; got != 1 {
		t.Errorf("operation %q counted %v times, want 1 (the label must not split segments)", op, got)
	}
}

func TestValidateFlexToken(t *testing.T) {
	f := newFake(t)
	f.answer = func(r seenRequest) reply {
		var in struct{ Token string }
		_ = json.Unmarshal([]byte(r.Body), &in)
		switch {
		case r.User != "ACflex1" || r.Pass != "testtoken":
			return twilioError(401, 20003, "Authenticate")
		case in.Token == "good":
			return reply{status: 200, body: `{"valid":true,"code":0,"message":null,"expiration":"2030-09-24T23:22:44.240Z","realm_user_id":"alice@example.com","identity":"alice_40example_2Ecom","roles":["agent"],"worker_sid":"WK1"}`}
		case in.Token == "down":
			return twilioError(503, 20503, "Service Unavailable")
		default:
			return reply{status: 200, body: `{"valid":false,"code":20151,"message":"Token expired"}`}
		}
	}
	ctx := context.Background()
	c, _ := newTestClient(t, f, Config{AccountSID: "ACflex1", APIKeySID: "SKkey", APIKeySecret: "keysecret", AuthToken: "testtoken"}, WithRetry(-1, 0, 0))

	got, err := c.ValidateFlexToken(ctx, "good")
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	want := FlexIdentity{Valid: true, Identity: "alice_40example_2Ecom", RealmUserID: "alice@example.com", WorkerSID: "WK1",
		Roles: []string{"agent"}, Expiration: time.Date(2030, 9, 24, 23, 22, 44, 240e6, time.UTC)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	r := f.requests()[0]
	if r.Host != "iam.twilio.com" || r.Path != "/v1/Accounts/ACflex1/Tokens/validate" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request = %s %s %s %q", r.Method, r.Host, r.Path, r.Header.Get("Content-Type"))
	}

	got, err = c.ValidateFlexToken(ctx, "stale")
	if err != nil || got.Valid || got.Message != "Token expired" {
		t.Errorf("stale token: %+v, %v: want invalid with Twilio's message and no error", got, err)
	}
	if got, err := c.ValidateFlexToken(ctx, ""); err != nil || got.Valid {
		t.Errorf("empty token: %+v, %v", got, err)
	}
	if _, err := c.ValidateFlexToken(ctx, "down"); !IsRetryable(err) {
		t.Errorf("IAM down: err = %v, want retryable", err)
	}

	wrong, _ := newTestClient(t, f, Config{AccountSID: "ACflex1", AuthToken: "wrongtoken"})
	if _, err := wrong.ValidateFlexToken(ctx, "good"); !IsTerminal(err) {
		t.Errorf("bad credentials: err = %v, want a terminal error", err)
	}
}

func TestCancelledContextStopsBackoff(t *testing.T) {
	f := newFake(t)
	f.answer = func(seenRequest) reply { return twilioError(500, 20500, "boom") }
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := newTestClient(t, f, Config{}, WithSleep(func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}))
	_, err := c.FetchWorker(ctx, "WS1", "WK1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if got := len(f.requests()); got != 1 {
		t.Errorf("sent %d requests after cancel, want 1", got)
	}
}

func TestEventStreamsEncoding(t *testing.T) {
	f := newFake(t)
	f.answer = func(r seenRequest) reply {
		switch {
		case r.Method == "POST" && r.Path == "/v1/Sinks":
			return reply{status: 201, body: `{"sid":"DG1","description":"flex-operator","sink_type":"webhook","status":"initialized","sink_configuration":{"destination":"https://hooks.example.com/events","method":"POST","batch_events":true}}`}
		case r.Method == "POST" && r.Path == "/v1/Subscriptions":
			return reply{status: 201, body: `{"sid":"DF1","sink_sid":"DG1","description":"flex-operator"}`}
		case r.Path == "/v1/Subscriptions":
			return reply{status: 200, body: `{"subscriptions":[{"sid":"DF1","sink_sid":"DG1","description":"flex-operator"}],"meta":{}}`}
		case r.Path == "/v1/Subscriptions/DF1/SubscribedEvents":
			return reply{status: 200, body: `{"types":[{"type":"com.twilio.taskrouter.reservation.accepted","schema_version":1}],"meta":{}}`}
		}
		return twilioError(404, 20404, "not found")
	}
	c, _ := newTestClient(t, f, Config{})
	ctx := context.Background()

	sink, err := c.CreateSink(ctx, SinkCreate{Description: "flex-operator", Destination: "https://hooks.example.com/events", BatchEvents: true})
	if err != nil {
		t.Fatalf("CreateSink: %v", err)
	}
	wantSink := Sink{SID: "DG1", Description: "flex-operator", SinkType: "webhook", Status: "initialized",
		Destination: "https://hooks.example.com/events", Method: "POST", BatchEvents: true}
	if diff := cmp.Diff(wantSink, sink); diff != "" {
		t.Errorf("sink (-want +got):\n%s", diff)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(f.requests()[0].Form.Get("SinkConfiguration")), &conf); err != nil {
		t.Fatalf("SinkConfiguration is not JSON: %v", err)
	}
	if diff := cmp.Diff(map[string]any{"destination": "https://hooks.example.com/events", "method": "POST", "batch_events": true}, conf); diff != "" {
		t.Errorf("sink configuration (-want +got):\n%s", diff)
	}

	if _, err := c.CreateSubscription(ctx, SubscriptionCreate{SinkSID: "DG1", Description: "flex-operator",
		Types: []string{"com.twilio.taskrouter.reservation.accepted"}}); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	var typ map[string]any
	if err := json.Unmarshal([]byte(f.requests()[1].Form.Get("Types")), &typ); err != nil {
		t.Fatalf("Types item is not JSON: %v", err)
	}
	if diff := cmp.Diff(map[string]any{"type": "com.twilio.taskrouter.reservation.accepted", "schema_version": 1.0}, typ); diff != "" {
		t.Errorf("type (-want +got):\n%s", diff)
	}

	subs, err := c.ListSubscriptions(ctx, "DG1")
	if err != nil {
		t.Fatalf("ListSubscriptions: %v", err)
	}
	wantSubs := []Subscription{{SID: "DF1", SinkSID: "DG1", Description: "flex-operator", Types: []string{"com.twilio.taskrouter.reservation.accepted"}}}
	if diff := cmp.Diff(wantSubs, subs); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
}

func TestInputValidation(t *testing.T) {
	c, err := New(Config{AccountSID: uniqueAccount(), AuthToken: "testtoken"}, WithTransport(&flakyTransport{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"empty workspace", func() error { _, err := c.ListActivities(ctx, ""); return err }},
		{"slash in SID", func() error { _, err := c.FetchWorker(ctx, "WS1", "WK1/../x"); return err }},
		{"reservations without task or worker", func() error { _, err := c.ListReservations(ctx, "WS1", ReservationFilter{}); return err }},
		{"participant without To", func() error {
			_, err := c.CreateParticipant(ctx, "CF1", ParticipantCreate{From: "+1"})
			return err
		}},
		{"relative announce URL", func() error { return c.AnnounceConference(ctx, "CF1", "/hold.xml") }},
		{"task TTL out of range", func() error {
			_, err := c.CreateTask(ctx, "WS1", TaskCreate{Timeout: ptr(0)})
			return err
		}},
		{"subscription without types", func() error {
			_, err := c.CreateSubscription(ctx, SubscriptionCreate{SinkSID: "DG1", Description: "x"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Error("want a validation error, got nil")
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"auth token", Config{AccountSID: "AC1", AuthToken: "tok"}, false},
		{"api key", Config{AccountSID: "AC1", APIKeySID: "SK1", APIKeySecret: "sec"}, false},
		{"simulator", Config{AccountSID: "AC1", AuthToken: "tok", BaseURL: "http://127.0.0.1:8080"}, false},
		{"missing account", Config{AuthToken: "tok"}, true},
		{"not an account SID", Config{AccountSID: "SK1", AuthToken: "tok"}, true},
		{"no credentials", Config{AccountSID: "AC1"}, true},
		{"token with a dash (twilio-go rejects it)", Config{AccountSID: "AC1", AuthToken: "test-token"}, true},
		{"key without secret", Config{AccountSID: "AC1", APIKeySID: "SK1"}, true},
		{"base URL without scheme", Config{AccountSID: "AC1", AuthToken: "tok", BaseURL: "localhost:8080"}, true},
		{"negative timeout", Config{AccountSID: "AC1", AuthToken: "tok", Timeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Errorf("New err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
