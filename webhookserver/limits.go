package webhookserver

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the limits on requests that fail authentication.
const (
	// DefaultAuthFailureRate and DefaultAuthFailureBurst bound, per client, the requests that fail
	// authentication (bad signature, unknown policy, bad Flex token): past them a client's failed
	// requests are answered 429, and it may not have unknown Flex tokens checked with Twilio. A
	// request that authenticates is served whatever its client's budget (see refuse).
	DefaultAuthFailureRate  = 2.0
	DefaultAuthFailureBurst = 20
	// maxTrackedClients bounds the clients whose budgets are remembered.
	maxTrackedClients = 10_000
)

// budgets is a token bucket per key (a client address, a policy), the least recently used
// forgotten beyond maxTrackedClients. A forgotten key starts again with a full bucket, which is
// what an idle one would have had.
type budgets struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets *lru[string, *rate.Limiter]
}

func newBudgets(perSecond float64, burst int) *budgets {
	return &budgets{limit: rate.Limit(perSecond), burst: burst, buckets: newLRU[string, *rate.Limiter](maxTrackedClients)}
}

func (b *budgets) bucket(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.buckets.get(key)
	if !ok {
		l = rate.NewLimiter(b.limit, b.burst)
		b.buckets.add(key, l, nil)
	}
	return l
}

// spent reports whether key has no budget left now, without spending any. A key with no bucket
// has its full budget: asking does not make one (which would crowd out the buckets of clients
// that did fail).
func (b *budgets) spent(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.buckets.get(key)
	return ok && l.TokensAt(now) < 1
}

// spend takes one from key's budget and reports whether there was one.
func (b *budgets) spend(key string, now time.Time) bool { return b.bucket(key).AllowN(now, 1) }

// clientAddress is who sent a request, for the per-client budgets: the address the nearest proxy
// (an Ingress) saw, which is the last X-Forwarded-For entry, else the connection's peer. A client
// that talks to the server directly can write its own X-Forwarded-For and so rotate its key;
// the per-policy budgets still bound what it can make the operator spend on Twilio.
func clientAddress(req *http.Request) string {
	if xff := req.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if ip := strings.TrimSpace(last); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// refuse answers a request that failed authentication with status and message, and counts it
// against its client's budget; past that budget the answer is 429 with Retry-After instead. It
// reports whether the client was within its budget (the caller logs only then, so that a flood
// does not flood the log).
//
// The budget is consulted only once a request has failed: a request that authenticates is served
// whatever its address did before. Twilio sends from shared addresses, and behind an Ingress
// every sender may look alike; a stale callback URL, a deleted policy's sink or someone else's
// bad requests from the same address must never make the operator refuse a valid signed event
// (a conference callback is sent once). Authenticating costs only in-process work (a cached
// policy, a cached Secret, one HMAC over a capped body), so nothing is saved by refusing first;
// what does cost (asking Twilio about an unknown Flex token) is gated by spentFailures.
func (r *Routes) refuse(w http.ResponseWriter, req *http.Request, status int, message string) bool {
	if !r.failures.spend(clientAddress(req), r.opts.Now()) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many failed requests; retry shortly", http.StatusTooManyRequests)
		return false
	}
	http.Error(w, message, status)
	return true
}

// refuseSignature refuses a request on a Twilio route whose signature (or policy) did not check
// out, counted by route; it reports what refuse reports.
func (r *Routes) refuseSignature(w http.ResponseWriter, req *http.Request, route string) bool {
	signatureFailures.WithLabelValues(route).Inc()
	return r.refuse(w, req, http.StatusForbidden, "invalid or missing X-Twilio-Signature")
}

// spentFailures reports whether the request's client has no failure budget left now.
func (r *Routes) spentFailures(req *http.Request) bool {
	return r.failures.spent(clientAddress(req), r.opts.Now())
}
