package twiliosim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody caps a REST request body; Twilio's own limits are far
// below it for every resource the simulator serves.
const maxRequestBody = 1 << 20

// Products the simulator serves, named by their real hosts.
const (
	hostTaskRouter = "taskrouter.twilio.com"
	hostAPI        = "api.twilio.com"
	hostEvents     = "events.twilio.com"
	hostIAM        = "iam.twilio.com"
)

// apiError is Twilio's error answer.
type apiError struct {
	status     int
	code       int
	message    string
	retryAfter int
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %d: %s", e.status, e.code, e.message) }

func errNotFound(path string) *apiError {
	return &apiError{status: 404, code: 20404, message: fmt.Sprintf("The requested resource %s was not found", path)}
}

func errBad(format string, args ...any) *apiError {
	return &apiError{status: 400, code: 20001, message: fmt.Sprintf(format, args...)}
}

func errPrecondition(what string) *apiError {
	return &apiError{status: 412, code: 20412, message: fmt.Sprintf("%s version does not match If-Match; it was changed since it was read", what)}
}

// request is one REST call as the handlers see it.
type request struct {
	r    *http.Request
	form url.Values
	// host is the Twilio host the client meant (X-Twilio-Host), used to
	// build page URLs the client can follow.
	host string
}

func (rq *request) path(name string) string { return rq.r.PathValue(name) }

func (rq *request) has(key string) bool {
	_, ok := rq.form[key]
	return ok
}

func (rq *request) str(key string) string { return rq.form.Get(key) }

func (rq *request) optStr(key string) *string {
	if !rq.has(key) {
		return nil
	}
	v := rq.form.Get(key)
	return &v
}

func (rq *request) optBool(key string) (*bool, error) {
	if !rq.has(key) {
		return nil, nil
	}
	switch strings.ToLower(rq.form.Get(key)) {
	case "true":
		b := true
		return &b, nil
	case "false":
		b := false
		return &b, nil
	}
	return nil, errBad("%s must be true or false, not %q", key, rq.form.Get(key))
}

func (rq *request) optInt(key string, lo, hi int) (*int, error) {
	if !rq.has(key) {
		return nil, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(rq.form.Get(key)))
	if err != nil {
		return nil, errBad("%s must be an integer, not %q", key, rq.form.Get(key))
	}
	if v < lo || v > hi {
		return nil, errBad("%s must be between %d and %d, not %d", key, lo, hi, v)
	}
	return &v, nil
}

// ifMatch checks the If-Match header against a resource version.
func (rq *request) ifMatch(version int, what string) error {
	h := rq.r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	h = strings.TrimPrefix(strings.TrimSpace(h), "W/")
	h = strings.Trim(h, `"`)
	if h == "*" || h == strconv.Itoa(version) {
		return nil
	}
	return errPrecondition(what)
}

// reply is a handler's answer.
type reply struct {
	status int
	body   any
	etag   string
}

func okJSON(body any) (reply, error) { return reply{status: 200, body: body}, nil }

func created(body any) (reply, error) { return reply{status: 201, body: body}, nil }

func withETag(body any, version int) (reply, error) {
	return reply{status: 200, body: body, etag: strconv.Itoa(version)}, nil
}

func noContent() (reply, error) { return reply{status: 204}, nil }

type handlerFunc func(rq *request) (reply, error)

// wrap runs a handler under the simulator's mutex.
func (s *Sim) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{r: r, form: r.Form, host: r.Header.Get("X-Twilio-Host")}
		if s.opts.RequestHook != nil {
			s.opts.RequestHook(r)
		}
		s.mu.Lock()
		rep, err := h(rq)
		s.mu.Unlock()
		if err != nil {
			writeErr(w, err)
			return
		}
		if rep.etag != "" {
			w.Header().Set("ETag", rep.etag)
		}
		if rep.status == http.StatusNoContent {
			w.WriteHeader(rep.status)
			return
		}
		writeJSON(w, rep.status, rep.body)
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		writeErr(w, &apiError{status: 500, code: 20500, message: "encode response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: 400, code: 20001, message: err.Error()}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	writeJSON(w, ae.status, map[string]any{
		"code":      ae.code,
		"message":   ae.message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", ae.code),
		"status":    ae.status,
	})
}

// productOf tells Twilio products apart: by X-Twilio-Host, else by path.
func productOf(r *http.Request) string {
	if h := strings.ToLower(r.Header.Get("X-Twilio-Host")); h != "" {
		h, _, _ = strings.Cut(h, ":")
		switch {
		case strings.HasPrefix(h, "taskrouter."):
			return hostTaskRouter
		case strings.HasPrefix(h, "api."):
			return hostAPI
		case strings.HasPrefix(h, "events."):
			return hostEvents
		case strings.HasPrefix(h, "iam."):
			return hostIAM
		}
		return h
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1/Workspaces"):
		return hostTaskRouter
	case strings.HasPrefix(p, "/2010-04-01"):
		return hostAPI
	case strings.HasPrefix(p, "/v1/Sinks"), strings.HasPrefix(p, "/v1/Subscriptions"):
		return hostEvents
	case strings.HasPrefix(p, "/v1/Accounts/") && strings.Contains(p, "/Tokens/"):
		return hostIAM
	}
	return ""
}

// routes builds the handler: faults, rate limit and authentication in
// front of one mux per product, and the control API under /sim/.
func (s *Sim) routes() http.Handler {
	muxes := map[string]*http.ServeMux{
		hostTaskRouter: s.taskRouterMux(),
		hostAPI:        s.voiceMux(),
		hostEvents:     s.eventsMux(),
		hostIAM:        s.iamMux(),
	}
	control := s.controlMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeErr(w, &apiError{status: 413, code: 20001, message: "request body too large"})
				return
			}
			writeErr(w, errBad("cannot parse the request form: %v", err))
			return
		}
		if r.URL.Path == "/sim" || strings.HasPrefix(r.URL.Path, "/sim/") {
			if !s.authorized(r) {
				unauthorized(w)
				return
			}
			control.ServeHTTP(w, r)
			return
		}
		product := productOf(r)
		mux, ok := muxes[product]
		if !ok {
			writeErr(w, errNotFound(r.URL.Path))
			return
		}
		if err := s.applyFaults(r); err != nil {
			writeErr(w, err)
			return
		}
		if err := s.rateLimit(); err != nil {
			writeErr(w, err)
			return
		}
		if !s.authorized(r) {
			unauthorized(w)
			return
		}
		if product == hostAPI {
			// Api v2010 paths end in .json, which ServeMux patterns cannot
			// match inside a wildcard segment.
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimSuffix(r.URL.Path, ".json")
			if r.URL.RawPath != "" {
				r2.URL.RawPath = strings.TrimSuffix(r.URL.RawPath, ".json")
			}
			r = r2
		}
		// Handler only finds the pattern; ServeHTTP sets the path values.
		if _, pattern := mux.Handler(r); pattern == "" {
			writeErr(w, errNotFound(r.URL.Path))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	writeErr(w, &apiError{status: 401, code: 20003, message: "Authenticate"})
}

// authorized checks HTTP basic auth: the account SID with the auth token,
// or an API key with its secret.
func (s *Sim) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	if eq(user, s.accountSID) && eq(pass, s.authToken) {
		return true
	}
	if secret, ok := s.opts.APIKeys[user]; ok && eq(pass, secret) {
		return true
	}
	return false
}

// rateLimit answers 429 with Retry-After past the configured rate.
func (s *Sim) rateLimit() error {
	s.mu.Lock()
	lim := s.limiter
	s.requests++
	s.mu.Unlock()
	if lim == nil {
		return nil
	}
	// The bucket fills on the simulator's clock, like every other timer here: a test advances it
	// rather than depending on how fast the machine sends the burst.
	res := lim.ReserveN(s.now(), 1)
	if !res.OK() {
		s.countThrottled()
		return &apiError{status: 429, code: 20429, message: "Too Many Requests", retryAfter: 1}
	}
	if d := res.DelayFrom(s.now()); d > 0 {
		res.CancelAt(s.now())
		s.countThrottled()
		return &apiError{status: 429, code: 20429, message: "Too Many Requests", retryAfter: int(math.Ceil(d.Seconds()))}
	}
	return nil
}

func (s *Sim) countThrottled() {
	s.mu.Lock()
	s.throttled++
	s.mu.Unlock()
}

// RequestStats counts the REST requests received and those answered 429
// by the rate limit.
func (s *Sim) RequestStats() (requests, throttled int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.throttled
}

// Faults are failures injected on purpose.
type Faults struct {
	// Latency delays every REST answer.
	Latency time.Duration
	// FailNext makes the next FailNext REST requests (whose path starts
	// with FailPathPrefix, if set) fail with FailStatus (default 503)
	// without being processed.
	FailNext       int
	FailStatus     int
	FailPathPrefix string
	// RetryAfter is sent with injected 429 and 503 answers.
	RetryAfter time.Duration
	// DuplicateDeliveries sends every successful webhook twice.
	DuplicateDeliveries bool
	// ReorderDeliveries sends webhooks of one destination out of order:
	// batches reversed, single webhooks swapped pairwise.
	ReorderDeliveries bool
	// HoldCallbacks holds back every form webhook (conference status or
	// legacy callback) it returns true for, in the order they come, until
	// ReleaseHeldCallbacks: a callback delayed behind later ones, as a
	// retry or another replica's slower answer makes it.
	HoldCallbacks func(form url.Values) bool
	// DropCallbacks loses every form webhook it returns true for, as
	// Twilio loses a conference callback it never retries.
	DropCallbacks func(form url.Values) bool
	// RetryConferenceCallbacks retries a conference status callback that
	// failed with 429, 5xx or a connection error, with the backoff of
	// Event Streams deliveries. Twilio never does this (it sends each
	// conference callback once), so only a test about redeliveries (their
	// deduplication, say) should turn it on: without it a refused callback
	// is lost, as on Twilio.
	RetryConferenceCallbacks bool
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	s.deliver.setFaults(f)
}

// CurrentFaults returns the faults in force (FailNext counts down).
func (s *Sim) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *Sim) applyFaults(r *http.Request) error {
	s.mu.Lock()
	f := &s.faults
	latency := f.Latency
	var fail *apiError
	if f.FailNext > 0 && strings.HasPrefix(r.URL.Path, f.FailPathPrefix) {
		f.FailNext--
		status := f.FailStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		fail = &apiError{status: status, code: 20000 + status, message: "injected fault"}
		if status == 429 {
			fail.code = 20429
			fail.message = "Too Many Requests"
		}
		if f.RetryAfter > 0 && (status == 429 || status == 503) {
			fail.retryAfter = int(math.Ceil(f.RetryAfter.Seconds()))
		}
	}
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
		}
	}
	if fail != nil {
		return fail
	}
	return nil
}

// pageParams reads Page, PageSize and PageToken.
func pageParams(rq *request) (offset, size int, err error) {
	size = 50
	if rq.has("PageSize") {
		v, e := strconv.Atoi(rq.str("PageSize"))
		if e != nil || v < 1 || v > 1000 {
			return 0, 0, errBad("PageSize must be between 1 and 1000, not %q", rq.str("PageSize"))
		}
		size = v
	}
	page := 0
	if rq.has("Page") {
		v, e := strconv.Atoi(rq.str("Page"))
		if e != nil || v < 0 {
			return 0, 0, errBad("Page must be a non-negative integer, not %q", rq.str("Page"))
		}
		page = v
	}
	offset = page * size
	if tok := rq.str("PageToken"); tok != "" {
		v, e := strconv.Atoi(strings.TrimPrefix(tok, "PT"))
		if !strings.HasPrefix(tok, "PT") || e != nil || v < 0 {
			return 0, 0, errBad("PageToken %q is not valid", tok)
		}
		offset = v
	}
	return offset, size, nil
}

// pageURL is the URL (or, for Api v2010, the URI) of another page with the
// same filters.
func (s *Sim) pageURL(rq *request, page, size, offset int, uriOnly bool) string {
	q := url.Values{}
	for k, v := range rq.form {
		switch k {
		case "Page", "PageSize", "PageToken":
			continue
		}
		q[k] = v
	}
	q.Set("PageSize", strconv.Itoa(size))
	q.Set("Page", strconv.Itoa(page))
	if offset > 0 {
		q.Set("PageToken", "PT"+strconv.Itoa(offset))
	}
	path := rq.r.URL.Path
	if uriOnly {
		if !strings.HasSuffix(path, ".json") {
			path += ".json"
		}
		return path + "?" + q.Encode()
	}
	base := s.baseURL
	if rq.host != "" {
		base = "https://" + rq.host
	}
	return base + path + "?" + q.Encode()
}

// listPage answers a list in TaskRouter / Events style: the items under
// key and a meta object with page URLs.
func listPage[T any](s *Sim, rq *request, key string, all []T, render func(T) any) (reply, error) {
	offset, size, err := pageParams(rq)
	if err != nil {
		return reply{}, err
	}
	items := make([]any, 0, size)
	for i := offset; i < len(all) && i < offset+size; i++ {
		items = append(items, render(all[i]))
	}
	page := offset / size
	meta := map[string]any{
		"page":           page,
		"page_size":      size,
		"first_page_url": s.pageURL(rq, 0, size, 0, false),
		"url":            s.pageURL(rq, page, size, offset, false),
		"key":            key,
	}
	meta["next_page_url"] = nil
	meta["previous_page_url"] = nil
	if offset+size < len(all) {
		meta["next_page_url"] = s.pageURL(rq, page+1, size, offset+size, false)
	}
	if offset > 0 {
		meta["previous_page_url"] = s.pageURL(rq, max(page-1, 0), size, max(offset-size, 0), false)
	}
	return okJSON(map[string]any{key: items, "meta": meta})
}

// apiPage answers a list in Api v2010 style (next_page_uri at top level).
func apiPage[T any](s *Sim, rq *request, key string, all []T, render func(T) any) (reply, error) {
	offset, size, err := pageParams(rq)
	if err != nil {
		return reply{}, err
	}
	items := make([]any, 0, size)
	for i := offset; i < len(all) && i < offset+size; i++ {
		items = append(items, render(all[i]))
	}
	page := offset / size
	body := map[string]any{
		key:                 items,
		"page":              page,
		"page_size":         size,
		"start":             offset,
		"end":               offset + len(items) - 1,
		"first_page_uri":    s.pageURL(rq, 0, size, 0, true),
		"uri":               s.pageURL(rq, page, size, offset, true),
		"next_page_uri":     nil,
		"previous_page_uri": nil,
	}
	if offset+size < len(all) {
		body["next_page_uri"] = s.pageURL(rq, page+1, size, offset+size, true)
	}
	if offset > 0 {
		body["previous_page_uri"] = s.pageURL(rq, max(page-1, 0), size, max(offset-size, 0), true)
	}
	return okJSON(body)
}

func trURL(path string) string { return "https://" + hostTaskRouter + path }
