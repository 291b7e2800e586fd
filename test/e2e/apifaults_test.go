package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// apiFaults sits between the operator and the API server: while armed, it refuses with 503 the
// requests its rule picks, a number of times, as an API server under strain or restarting does.
// The tests' own client does not go through it.
type apiFaults struct {
	mu sync.Mutex
	// refuse picks the requests to refuse (method, path and body); nil refuses nothing.
	refuse func(method, path string, body []byte) bool
	// left is how many refusals remain; refused counts those made.
	left, refused int
}

var operatorAPI = &apiFaults{}

// arm refuses the next n requests rule picks, until disarm.
func (f *apiFaults) arm(n int, rule func(method, path string, body []byte) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse, f.left, f.refused = rule, n, 0
}

// disarm stops refusing and reports how many requests were refused.
func (f *apiFaults) disarm() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse, f.left = nil, 0
	return f.refused
}

// config wraps the operator's REST config (scenario.Options.OperatorConfig).
func (f *apiFaults) config(cfg *rest.Config) *rest.Config {
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if f.intercept(req) {
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
					Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
					Body: io.NopCloser(strings.NewReader(`{"kind":"Status","apiVersion":"v1","status":"Failure",` +
						`"message":"injected by the test","reason":"ServiceUnavailable","code":503}`))}, nil
			}
			return next.RoundTrip(req)
		})
	})
	return cfg
}

// intercept reports whether req is to be refused, counting the refusal.
func (f *apiFaults) intercept(req *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse == nil || f.left == 0 {
		return false
	}
	var body []byte
	if req.Body != nil && req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			body, _ = io.ReadAll(rc)
			_ = rc.Close()
		}
	} else if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	if !f.refuse(req.Method, req.URL.Path, body) {
		return false
	}
	f.left--
	f.refused++
	return true
}
