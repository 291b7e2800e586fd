// Package webhookserver is the operator's Twilio-facing HTTP server: it receives conference status
// callbacks, Event Streams deliveries and the Flex companion's calls. It runs inside the manager on
// every replica (it is not leader-elected), answers 503 until the manager's caches have synced, and
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
	// ShutdownTimeout bounds the graceful drain on stop.
	ShutdownTimeout time.Duration
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
	opts    Options
	mux     *http.ServeMux
	ready   atomic.Bool
	waitFor func(ctx context.Context) bool
	addr    atomic.Pointer[string]
}

var _ manager.Runnable = (*Server)(nil)
var _ manager.LeaderElectionRunnable = (*Server)(nil)

// New builds the server. waitForCacheSync blocks until the manager's caches have synced (usually
// mgr.GetCache().WaitForCacheSync) and reports success; until it returns true every route answers
// 503, so Twilio retries instead of the operator acting on an empty cache.
func New(opts Options, waitForCacheSync func(ctx context.Context) bool) (*Server, error) {
	opts.defaults()
	pub, err := ParsePublicURL(opts.PublicURL)
	if err != nil {
		return nil, err
	}
	opts.PublicURL = pub
	s := &Server{opts: opts, mux: http.NewServeMux(), waitFor: waitForCacheSync}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return s, nil
}

// Handle registers a route. The handler only runs once caches have synced, with the body capped.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// PublicURL is the configured public base URL ("" when none was given).
func (s *Server) PublicURL() string { return s.opts.PublicURL }

// Ready reports whether caches have synced and routes are served.
func (s *Server) Ready() bool { return s.ready.Load() }

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
		if r.URL.Path != "/healthz" && !s.ready.Load() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "flex-operator is starting: caches have not synced yet", http.StatusServiceUnavailable)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		s.mux.ServeHTTP(w, r)
	})
}

// Start listens and serves until ctx ends, then drains for at most ShutdownTimeout.
func (s *Server) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhookserver")
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("webhook server listen on %s: %w", s.opts.BindAddress, err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if s.waitFor == nil || s.waitFor(ctx) {
			s.ready.Store(true)
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("webhook server shutdown: %w", err)
	}
	return nil
}
