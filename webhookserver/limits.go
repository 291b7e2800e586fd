package webhookserver

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the limits applied before a request is authenticated.
const (
	// DefaultAuthFailureRate and DefaultAuthFailureBurst bound, per client, the requests that fail
	// authentication (bad signature, unknown policy, bad Flex token): past them a client's
	// requests are answered 429 before any work. Twilio signs every request it sends, so its own
	// traffic never spends this budget.
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

// spent reports whether key has no budget left now, without spending any.
func (b *budgets) spent(key string, now time.Time) bool { return b.bucket(key).TokensAt(now) < 1 }

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

// tooManyFailures answers 429 when the client has failed authentication too often of late; the
// request is then not looked at any further.
func (r *Routes) tooManyFailures(w http.ResponseWriter, req *http.Request) bool {
	if !r.failures.spent(clientAddress(req), r.opts.Now()) {
		return false
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "too many failed requests; retry shortly", http.StatusTooManyRequests)
	return true
}

// failedAuthentication counts a request that failed authentication against its client's budget.
func (r *Routes) failedAuthentication(req *http.Request) {
	r.failures.spend(clientAddress(req), r.opts.Now())
}
