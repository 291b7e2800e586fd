package webhookserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Forwarding of activity deliveries to the leader. Every replica serves the activity route behind
// one Service; the engine runs on the leader alone. A follower whose signature check passed and
// whose engine said ErrNotLeader sends the same request (body, Twilio headers, request URI) to the
// leader's advertised address and answers Twilio with the leader's answer. The leader checks the
// signature again: Twilio signed the public URL and the body, neither of which changes, so the hop
// needs no secret of its own. A forwarded request carries HeaderForwarded and is never forwarded
// again; a 2xx is relayed only when it carries HeaderActivityAccepted, so an address reused by
// something else cannot acknowledge events it drops. Any failure is answered 503 with
// Retry-After, as a follower without forwarding answers, and the follower keeps no dedup keys.

// LeaderLocator finds the leader's webhook base URL (*activity.LeaderLocator).
type LeaderLocator interface {
	Address(ctx context.Context) (string, error)
	// Forget drops a remembered address after a failed forward.
	Forget()
}

const (
	// HeaderForwarded marks a delivery forwarded by a follower; such a request is never
	// forwarded again (one hop at most).
	HeaderForwarded = "X-Flex-Operator-Forwarded"
	// HeaderActivityAccepted is set on an activity route's 2xx answer to a forwarded request:
	// the events are with the engine (or were nothing to deliver).
	HeaderActivityAccepted = "X-Flex-Operator-Activity-Accepted"
	// DefaultForwardTimeout bounds one forward, under Event Streams' 5 s limit and the
	// handler's own timeout.
	DefaultForwardTimeout = 2 * time.Second
	// maxForwardAnswer bounds the leader's answer body copied back to Twilio.
	maxForwardAnswer = 64 << 10
)

// Outcomes of forwarded events.
const (
	// outcomeForwarded: a follower forwarded the events and the leader took them (2xx).
	outcomeForwarded = "forwarded"
	// outcomeForwardFailed: the forward failed or the leader refused; the sender got 503 (or the
	// leader's own refusal) and Event Streams delivers again.
	outcomeForwardFailed = "forward_failed"
)

// forwardedHeaders are the request headers the leader needs to verify and decode the delivery.
var forwardedHeaders = []string{"Content-Type", "X-Twilio-Signature", "I-Twilio-Idempotency-Token", "User-Agent"}

// newForwardClient is the HTTP client of forwards: kept-alive connections to the leader, enough
// of them for a burst of deliveries, no redirects followed.
func newForwardClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// forwardActivity sends a delivery this replica cannot take to the leader and writes the answer.
// It reports what the events' outcome is (outcomeForwarded or outcomeForwardFailed).
func (r *Routes) forwardActivity(w http.ResponseWriter, req *http.Request, body []byte, policy string) string {
	if req.Header.Get(HeaderForwarded) != "" {
		r.log.Info("A forwarded activity delivery reached a replica that is not the leader; answering 503", "policy", policy)
		unavailable(w, "forwarded to a replica that is not the leader")
		return outcomeNotLeader
	}
	if r.opts.ActivityLeader == nil {
		unavailable(w, "this replica does not run the activity engine (not the leader)")
		return outcomeNotLeader
	}
	leader, err := r.opts.ActivityLeader.Address(req.Context())
	if err != nil {
		r.log.Info("Cannot forward an activity delivery to the leader; answering 503", "policy", policy, "error", err.Error())
		unavailable(w, "this replica is not the leader and cannot reach it")
		return outcomeForwardFailed
	}
	code, header, answer, err := r.forwardOnce(req, body, leader)
	if err != nil {
		r.opts.ActivityLeader.Forget()
		r.log.Info("Forwarding an activity delivery to the leader failed; answering 503", "policy", policy, "leader", leader, "error", err.Error())
		unavailable(w, "this replica is not the leader and the forward failed")
		return outcomeForwardFailed
	}
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(code)
	_, _ = w.Write(answer)
	if code/100 == 2 {
		return outcomeForwarded
	}
	if code >= 500 {
		r.opts.ActivityLeader.Forget()
	}
	return outcomeForwardFailed
}

// forwardOnce makes the hop. A 2xx without HeaderActivityAccepted is an error: whatever answered
// is not this operator's leader.
func (r *Routes) forwardOnce(req *http.Request, body []byte, leader string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(req.Context(), r.opts.ForwardTimeout)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, leader+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for _, h := range forwardedHeaders {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.Header.Set(HeaderForwarded, "1")
	resp, err := r.forward.Do(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardAnswer))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read the leader's answer: %w", err)
	}
	if resp.StatusCode/100 == 2 && resp.Header.Get(HeaderActivityAccepted) == "" {
		return 0, nil, nil, errors.New("the advertised address answered 2xx without the operator's acceptance header")
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// markAccepted sets HeaderActivityAccepted on the answer to a forwarded request.
func markAccepted(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get(HeaderForwarded) != "" {
		w.Header().Set(HeaderActivityAccepted, "1")
	}
}
