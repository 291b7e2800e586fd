// Package webhookserver is the operator's Twilio-facing HTTP server: it receives conference status
// callbacks, Event Streams deliveries and the Flex companion's calls. It runs inside the manager on
// every replica (it is not leader-elected), holds requests until the manager's caches have synced, and
// records observations for the controllers to act on.
package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults for the server's limits. Twilio gives a webhook 5 s (Event Streams) to 15 s (legacy
// callbacks) to answer, so a slow client is cut well before that.
const (
	DefaultMaxBodyBytes      = 1 << 20 // Event Streams batches were documented at 64 kB; leave room.
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	// DefaultDrainDelay is how long a stopping server keeps answering after it stops being ready.
	// Kubernetes removes a terminating Pod from the Service's endpoints at once, but kube-proxy and
	// ingress controllers learn of it a few seconds later and keep routing to it until then; Twilio
	// does not retry a refused conference status callback.
	DefaultDrainDelay = 10 * time.Second
	// DefaultSyncWait is how long a request that arrives before the caches have synced waits for
	// them: under Event Streams' 5 s, and long enough for a replica's usual start.
	DefaultSyncWait = 4 * time.Second
)

// Options configure the server.
type Options struct {
	// BindAddress is where the server listens, for example ":9443".
	BindAddress string
	// PublicURL is the base URL at which Twilio reaches this server (scheme, host and optional path
	// prefix). Signatures are checked against it, never against the Host header.
	PublicURL string
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int64
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound slow clients.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// DrainDelay is how long the server keeps answering once it is asked to stop, while Ready
	// reports false, before it closes its listener: the time Services and ingress controllers take
	// to stop routing to this replica. Zero closes at once (tests, and a server no one routes to).
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for requests still in flight once the listener is closed.
	ShutdownTimeout time.Duration
	// SyncWait is how long a request that arrives before the caches have synced waits for them
	// before it is answered 503. Twilio sends a conference callback once, so one that reaches a
	// replica still starting (a single replica restarted, a readiness probe not yet failing) is
	// held for a moment rather than lost. Zero means DefaultSyncWait; negative answers at once.
	SyncWait time.Duration
}

func (o *Options) defaults() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.SyncWait == 0 {
		o.SyncWait = DefaultSyncWait
	}
}

// ParsePublicURL checks a public base URL: absolute http(s), a host, no query or fragment. The
// returned string has no trailing slash.
func ParsePublicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("public URL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("public URL %q must be an absolute http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("public URL %q must not carry a query, fragment or user info", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Server is the webhook server, a manager.Runnable.
type Server struct {
	opts  Options
	mux   *http.ServeMux
	ready atomic.Bool
	// synced is closed once the caches have synced (when ready is first set).
	synced     chan struct{}
	syncedOnce sync.Once
	// holding counts the requests waiting for the caches to sync.
	holding atomic.Int32
	waitFor func(ctx context.Context) bool
	addr    atomic.Pointer[string]
	// draining is set once the server was asked to stop: it still answers, but is not ready.
	draining atomic.Bool
	// after starts the drain timer (time.After; tests end the drain window themselves instead of
	// sleeping through it).
	after func(time.Duration) <-chan time.Time
}

var _ manager.Runnable = (*Server)(nil)
var _ manager.LeaderElectionRunnable = (*Server)(nil)

// New builds the server. waitForCacheSync blocks until the manager's caches have synced (usually
// mgr.GetCache().WaitForCacheSync) and reports success; until it returns true no route runs: a
// request waits up to Options.SyncWait, then is answered 503, rather than the operator acting on
// an empty cache.
func New(opts Options, waitForCacheSync func(ctx context.Context) bool) (*Server, error) {
	opts.defaults()
	pub, err := ParsePublicURL(opts.PublicURL)
	if err != nil {
		return nil, err
	}
	opts.PublicURL = pub
	s := &Server{opts: opts, mux: http.NewServeMux(), synced: make(chan struct{}), waitFor: waitForCacheSync, after: time.After}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return s, nil
}

// Handle registers a route. The handler only runs once caches have synced, with the body capped.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// PublicURL is the configured public base URL ("" when none was given).
func (s *Server) PublicURL() string { return s.opts.PublicURL }

// Ready reports whether the server wants traffic: caches have synced and it is not stopping. A
// stopping server still answers every request during its drain window, but reports not ready so
// that the readiness probe takes the replica out of the Service.
func (s *Server) Ready() bool { return s.ready.Load() && !s.draining.Load() }

// Draining reports whether the server was asked to stop and is answering its last requests.
func (s *Server) Draining() bool { return s.draining.Load() }

// Addr is the address the server listens on once started ("" before).
func (s *Server) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// NeedLeaderElection is false: every replica behind the Service takes webhooks.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler is the server's full handler chain (exposed for tests).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !s.ready.Load() && !s.awaitSync(r.Context()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "flex-operator is starting: caches have not synced yet", http.StatusServiceUnavailable)
			return
		}
		if s.draining.Load() {
			// Answer, but have the client (an ingress controller's connection pool) open its next
			// connection elsewhere. Idle connections are left alone: closing one under a client
			// that is about to reuse it would lose a POST that no one retries.
			w.Header().Set("Connection", "close")
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		s.mux.ServeHTTP(w, r)
	})
}

// awaitSync waits up to SyncWait for the caches to sync and reports whether they did.
func (s *Server) awaitSync(ctx context.Context) bool {
	if s.opts.SyncWait < 0 {
		return false
	}
	s.holding.Add(1)
	defer s.holding.Add(-1)
	timer := time.NewTimer(s.opts.SyncWait)
	defer timer.Stop()
	select {
	case <-s.synced:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// Start listens and serves until ctx ends. It then drains: Ready turns false while the server
// keeps answering for DrainDelay (so that requests routed to this replica before the endpoint
// change reached every proxy are still served), then closes the listener and waits at most
// ShutdownTimeout for the requests in flight.
func (s *Server) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhookserver")
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("webhook server listen on %s: %w", s.opts.BindAddress, err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	// Requests keep their context through the drain: one canceled with ctx would fail to store the
	// very callbacks the drain is there to take. It ends once the server has closed.
	requestCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return requestCtx },
	}
	go func() {
		if s.waitFor == nil || s.waitFor(ctx) {
			s.ready.Store(true)
			s.syncedOnce.Do(func() { close(s.synced) })
			log.Info("Caches synced; serving Twilio webhooks", "address", addr)
		}
	}()
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	log.Info("Webhook server listening", "address", addr, "publicURL", s.opts.PublicURL)
	select {
	case err := <-errCh:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}

	s.draining.Store(true)
	if s.opts.DrainDelay > 0 {
		log.Info("Draining: not ready, still answering until proxies stop routing here", "for", s.opts.DrainDelay)
		select {
		case <-s.after(s.opts.DrainDelay):
		case err := <-errCh:
			return fmt.Errorf("webhook server: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			log.Info("Requests still in flight after the shutdown timeout were cut", "timeout", s.opts.ShutdownTimeout)
			return nil
		}
		return fmt.Errorf("webhook server shutdown: %w", err)
	}
	log.Info("Webhook server stopped")
	return nil
}
