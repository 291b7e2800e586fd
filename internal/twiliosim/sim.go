package twiliosim

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Clock tells the simulator what time it is. The simulator adds its own
// offset on top (see Sim.Advance), so a frozen clock is enough for tests and
// the wall clock serves the standalone runner.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now implements Clock.
func (f ClockFunc) Now() time.Time { return f() }

// WallClock is the real time, for the standalone simulator.
var WallClock Clock = ClockFunc(time.Now)

// DefaultStart is the instant a simulator without a Clock starts at. It is
// frozen: only Sim.Advance moves it, so TTLs and timeouts fire exactly when a
// test says so.
var DefaultStart = time.Date(2026, time.January, 5, 9, 0, 0, 0, time.UTC)

// Options configure a simulator. Zero values give a test-friendly simulator:
// a frozen clock, no rate limit, fast delivery retries.
type Options struct {
	// AccountSID and AuthToken are the credentials REST calls must present
	// (HTTP basic auth) and the key that signs webhooks. Empty values get
	// generated ones; read them back with Sim.AccountSID and Sim.AuthToken.
	AccountSID string
	AuthToken  string
	// APIKeys maps API key SIDs (SK…) to their secrets; REST calls may
	// authenticate with one of them instead of the auth token.
	APIKeys map[string]string
	// Clock is the time source; nil means a clock frozen at DefaultStart.
	Clock Clock
	// RateLimit is the sustained number of REST requests per second the
	// account may make; beyond it the simulator answers 429 with
	// Retry-After, as Twilio does. Zero means no limit.
	RateLimit float64
	// RateBurst is the token bucket size; zero means max(1, RateLimit).
	RateBurst int
	// Addr is the listen address for Start; empty means 127.0.0.1:0.
	Addr string
	// PublicURL, when set, is the base URL the simulator reports (for
	// example behind a port forward); otherwise the listener's address.
	PublicURL string
	// DeliveryMinBackoff and DeliveryMaxBackoff bound the real-time wait
	// between attempts to deliver an Event Streams webhook that failed with
	// 429, 5xx or a connection error (conference callbacks only under the
	// RetryConferenceCallbacks fault; legacy callbacks never). Zero means
	// 10ms and 500ms.
	DeliveryMinBackoff time.Duration
	DeliveryMaxBackoff time.Duration
	// DeliveryMaxAttempts bounds the attempts per webhook before it is
	// dropped (Twilio keeps trying for four hours). Zero means 20.
	DeliveryMaxAttempts int
	// DeliveryTimeout bounds one webhook request; zero means 5s, Event
	// Streams' own limit.
	DeliveryTimeout time.Duration
	// Seed makes generated SIDs reproducible; zero means random.
	Seed uint64
	// HTTPClient sends webhooks; nil means a plain client.
	HTTPClient *http.Client
	// RequestHook, when set, is called with every REST request that reaches
	// a handler (after authentication, rate limiting and injected faults),
	// before it is processed, with the form parsed. Benchmarks use it to
	// time the operator's side effects on the wall clock. It must not call
	// back into the simulator.
	RequestHook func(r *http.Request)
}

// Sim is a running Twilio simulator. All its state sits behind one mutex:
// every REST request, control call and timer runs under it, so the state is
// always consistent and the behaviour is easy to reason about. Webhooks are
// sent by background goroutines that never hold that mutex, so the receiver
// may call back into the simulator while handling them.
type Sim struct {
	opts       Options
	accountSID string
	authToken  string

	mu sync.Mutex
	// withdrawn are event types this account's Event Streams catalog lacks (WithdrawEventTypes).
	withdrawn  map[string]bool
	clock      Clock
	offset     time.Duration
	rng        *rand.Rand
	timers     []*timer
	timerSeq   uint64
	workspaces *ordered[*workspace]
	calls      *ordered[*call]
	confs      *ordered[*conference]
	sinks      *ordered[*sink]
	subs       *ordered[*subscription]
	tokens     map[string]*flexToken
	faults     Faults
	limiter    *rate.Limiter
	// flexCallback is where conferences made by the simulated Flex send
	// their status callbacks (Flex attaches it at accept).
	flexCallback       string
	flexCallbackEvents map[string]bool
	requests           int
	throttled          int

	deliver *deliverer

	handler  http.Handler
	server   *http.Server
	listener net.Listener
	baseURL  string
	stop     context.CancelFunc
	bg       sync.WaitGroup
	closed   bool
}

// New builds a simulator; call Start to serve HTTP, or use Handler with a
// server of your own.
func New(opts Options) *Sim {
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Sim{
		opts:       opts,
		clock:      opts.Clock,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		workspaces: newOrdered[*workspace](),
		calls:      newOrdered[*call](),
		confs:      newOrdered[*conference](),
		sinks:      newOrdered[*sink](),
		subs:       newOrdered[*subscription](),
		tokens:     map[string]*flexToken{},
	}
	if s.clock == nil {
		start := DefaultStart
		s.clock = ClockFunc(func() time.Time { return start })
	}
	s.accountSID = opts.AccountSID
	if s.accountSID == "" {
		s.accountSID = s.newSID("AC")
	}
	s.authToken = opts.AuthToken
	if s.authToken == "" {
		s.authToken = s.newSID("")
	}
	if opts.RateLimit > 0 {
		burst := opts.RateBurst
		if burst <= 0 {
			burst = max(1, int(opts.RateLimit))
		}
		s.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), burst)
	}
	s.flexCallbackEvents = eventSet(defaultFlexCallbackEvents)
	s.deliver = newDeliverer(s, opts)
	s.handler = s.routes()
	return s
}

// AccountSID is the account the simulator serves.
func (s *Sim) AccountSID() string { return s.accountSID }

// AuthToken is the account's auth token: the REST password and the key of
// every webhook signature.
func (s *Sim) AuthToken() string { return s.authToken }

// Handler serves the simulator's REST and control API; Start uses it.
func (s *Sim) Handler() http.Handler { return s.handler }

// Start listens (on Options.Addr, else 127.0.0.1:0) and serves in the
// background. It also starts the ticker that fires timers when the clock
// moves by itself (a wall clock).
func (s *Sim) Start() error {
	addr := s.opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("twiliosim: listen on %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.listener = ln
	s.baseURL = s.opts.PublicURL
	if s.baseURL == "" {
		s.baseURL = "http://" + ln.Addr().String()
	}
	s.stop = cancel
	s.server = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Unlock()
	s.bg.Add(2)
	go func() {
		defer s.bg.Done()
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Serve only fails like this when the listener breaks; nothing
			// can be done but stop serving, which Close reports.
			_ = err
		}
	}()
	go func() {
		defer s.bg.Done()
		s.tick(ctx)
	}()
	return nil
}

// tick fires due timers every few milliseconds, so a wall clock drives TTLs
// and timeouts on its own. With a frozen clock nothing is ever due here.
func (s *Sim) tick(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.fireDue(s.now())
			s.mu.Unlock()
		}
	}
}

// URL is the base URL to give internal/twilio as Config.BaseURL.
func (s *Sim) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Close stops serving and stops the delivery goroutines; webhooks not yet
// delivered are dropped.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, stop := s.server, s.stop
	s.mu.Unlock()
	var err error
	if srv != nil {
		// Shutdown lets requests in flight finish; a connection a client
		// opened but never used counts as busy for a while, so after a short
		// grace period the rest are closed outright.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if srv.Shutdown(ctx) != nil {
			err = srv.Close()
		}
		cancel()
	}
	if stop != nil {
		stop()
	}
	s.deliver.close()
	s.bg.Wait()
	if err != nil {
		return fmt.Errorf("twiliosim: shut down: %w", err)
	}
	return nil
}

// Now is the simulator's current time.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Sim) now() time.Time { return s.clock.Now().Add(s.offset).UTC() }

// Advance moves the simulator's time forward by d, firing every timer that
// falls due on the way (reservation timeouts, task TTLs, workflow target
// timeouts) at its own instant and in order, as if the time had passed.
func (s *Sim) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.now().Add(d)
	for {
		next := s.nextTimer()
		if next == nil || next.at.After(target) {
			break
		}
		if now := s.now(); next.at.After(now) {
			s.offset += next.at.Sub(now)
		}
		s.fireDue(s.now())
	}
	if now := s.now(); target.After(now) {
		s.offset += target.Sub(now)
	}
}

// timer is a callback due at a simulated instant. Callbacks run under s.mu.
type timer struct {
	at       time.Time
	seq      uint64
	fn       func()
	canceled bool
}

func (t *timer) cancel() {
	if t != nil {
		t.canceled = true
	}
}

// after schedules fn at now+d; s.mu must be held.
func (s *Sim) after(d time.Duration, fn func()) *timer {
	s.timerSeq++
	t := &timer{at: s.now().Add(d), seq: s.timerSeq, fn: fn}
	s.timers = append(s.timers, t)
	return t
}

func (s *Sim) nextTimer() *timer {
	var best *timer
	kept := s.timers[:0]
	for _, t := range s.timers {
		if t.canceled {
			continue
		}
		kept = append(kept, t)
		if best == nil || t.at.Before(best.at) || (t.at.Equal(best.at) && t.seq < best.seq) {
			best = t
		}
	}
	for i := len(kept); i < len(s.timers); i++ {
		s.timers[i] = nil
	}
	s.timers = kept
	return best
}

// fireDue runs every timer due at or before now, earliest first, then lets
// the routing engine react; s.mu must be held.
func (s *Sim) fireDue(now time.Time) {
	fired := false
	for {
		var due []*timer
		for _, t := range s.timers {
			if !t.canceled && !t.at.After(now) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			break
		}
		sort.Slice(due, func(i, j int) bool {
			if !due[i].at.Equal(due[j].at) {
				return due[i].at.Before(due[j].at)
			}
			return due[i].seq < due[j].seq
		})
		t := due[0]
		t.canceled = true
		t.fn()
		fired = true
	}
	// Drop fired and canceled timers so a long run does not accumulate them.
	s.nextTimer()
	if fired {
		s.routeAll()
	}
}

// newSID makes prefix + 32 lower-case hex digits, Twilio's SID shape.
func (s *Sim) newSID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], s.rng.Uint64())
	return prefix + hex.EncodeToString(b[:])
}

// ordered is a map that remembers insertion order, for Twilio's stable list
// order.
type ordered[T any] struct {
	m     map[string]T
	order []string
}

func newOrdered[T any]() *ordered[T] { return &ordered[T]{m: map[string]T{}} }

func (o *ordered[T]) get(k string) (T, bool) {
	v, ok := o.m[k]
	return v, ok
}

func (o *ordered[T]) put(k string, v T) {
	if _, ok := o.m[k]; !ok {
		o.order = append(o.order, k)
	}
	o.m[k] = v
}

func (o *ordered[T]) del(k string) {
	if _, ok := o.m[k]; !ok {
		return
	}
	delete(o.m, k)
	for i, x := range o.order {
		if x == k {
			o.order = append(o.order[:i], o.order[i+1:]...)
			break
		}
	}
}

func (o *ordered[T]) list() []T {
	out := make([]T, 0, len(o.order))
	for _, k := range o.order {
		out = append(out, o.m[k])
	}
	return out
}

func (o *ordered[T]) len() int { return len(o.order) }
