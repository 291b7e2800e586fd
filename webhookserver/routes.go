package webhookserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// Defaults of RoutesOptions.
const (
	// DefaultDedupSize is how many recent event keys are remembered to drop redeliveries; at a
	// few hundred events a second that covers several minutes, where Twilio's retries cluster.
	DefaultDedupSize = 100_000
	// DefaultConferenceCacheSize bounds the conferences whose task and last recovery version are
	// kept in memory (protected or not).
	DefaultConferenceCacheSize = 10_000
	// DefaultTokenCacheSize bounds the Flex tokens whose validation is remembered.
	DefaultTokenCacheSize = 10_000
	// DefaultHandlerTimeout is how long a request waits for its event to be stored before the
	// answer is 503: under Event Streams' 5 s limit, so Twilio sees our answer, not its timeout.
	DefaultHandlerTimeout = 4 * time.Second
)

// Route patterns (Go 1.22 ServeMux). The path names the ConferenceRecoveryPolicy whose auth token
// signs the requests and whose calls the events are about.
const (
	// PatternConference takes conference status callbacks (form-encoded); the Flex UI attaches
	// this URL to each conference it makes.
	PatternConference = "POST /twilio/{namespace}/{policy}/conference"
	// PatternEvents takes Event Streams deliveries (CloudEvents JSON, one object or a batch); the
	// policy's sink points here.
	PatternEvents = "POST /twilio/{namespace}/{policy}/events"
	// PatternTaskRouter takes a workspace's legacy EventCallbackUrl callbacks (form-encoded).
	PatternTaskRouter = "POST /twilio/{namespace}/{policy}/taskrouter"
	// PatternGraceful is the Flex companion's graceful-hangup mark (GracefulRequest).
	PatternGraceful = "POST /flex/{namespace}/{policy}/graceful"
	// PatternCheck is the Flex companion's start-up check that it reaches the operator's /flex/
	// routes and that they accept its token (CheckResponse).
	PatternCheck = "GET /flex/{namespace}/{policy}/check"
	// PatternRecovery is the Flex companion's read of a recovery (RecoverySummary).
	PatternRecovery = "GET /flex/{namespace}/{policy}/recoveries/{conferenceSid}"
	// PatternFlexConfig is the Flex companion's configuration (FlexConfig), read for the worker's
	// own Flex token: GET /flex/config?accountSid=AC….
	PatternFlexConfig = "GET /flex/config"
	// PatternActivityEvents takes Event Streams deliveries for a WorkerActivityPolicy (the path
	// of activity.EventsPathFormat); the events go to the activity engine.
	PatternActivityEvents = "POST /twilio/{namespace}/activity/{policy}/events"
)

// CredentialsProvider gives the credentials and Twilio client of a policy's twilio block;
// *credentials.Provider is the production one. A *credentials.Error means the Secret is unusable;
// any other error is transient.
type CredentialsProvider interface {
	For(ctx context.Context, namespace string, spec v1alpha1.TwilioSpec) (credentials.Credentials, twilio.Client, error)
}

// RoutesOptions configure Routes. Client, APIReader and Credentials are required.
type RoutesOptions struct {
	// Client reads policies and recoveries from the manager's cache and writes recoveries.
	Client client.Client
	// APIReader reads recoveries uncached, to confirm a cache miss and after a write conflict.
	APIReader client.Reader
	// Credentials gives each policy's auth token (signatures) and Twilio client.
	Credentials CredentialsProvider
	// Now is the clock Flex token expirations are compared with; time.Now when nil.
	Now func() time.Time
	// PublicURL is the base URL Twilio calls (--webhook-public-url); a policy's
	// spec.publicBaseUrl overrides it. When empty, Register takes the Server's.
	PublicURL string

	// DedupSize, ConferenceCacheSize and TokenCacheSize bound the in-memory caches; zero means
	// the Default… value.
	DedupSize           int
	ConferenceCacheSize int
	TokenCacheSize      int
	// HandlerTimeout bounds how long a request waits for its event to be stored; zero means
	// DefaultHandlerTimeout.
	HandlerTimeout time.Duration
	// FlexTokenRate and FlexTokenBurst limit, per Twilio account, how many Flex tokens not
	// already known are sent to Twilio for validation, so that requests with made-up tokens
	// cannot spend the account's API budget; beyond it the answer is 429. Zero means 5 per
	// second with a burst of 20.
	FlexTokenRate  float64
	FlexTokenBurst int
	// AuthFailureRate and AuthFailureBurst bound, per client address, the requests that fail
	// authentication before that client's failing requests are answered 429 and its unknown Flex
	// tokens are no longer checked with Twilio; its requests that authenticate are still served.
	// Zero means DefaultAuthFailureRate and DefaultAuthFailureBurst.
	AuthFailureRate  float64
	AuthFailureBurst int

	// Activity, when set, receives the TaskRouter events of every WorkerActivityPolicy
	// (PatternActivityEvents is registered only then).
	Activity ActivityEngine
	// ActivityLeader, when set, finds the leader's webhook address: a replica that is not the
	// leader forwards activity deliveries there (activity_forward.go) instead of answering 503.
	ActivityLeader LeaderLocator
	// Namespaces are the namespaces the operator watches (--watch-namespaces); empty means all. A
	// request naming another namespace is answered as for a policy that does not exist: the
	// operator's cache cannot read it, and Twilio must not be told to retry what can never land.
	Namespaces []string
	// ForwardTimeout bounds one forward to the leader; zero means DefaultForwardTimeout.
	ForwardTimeout time.Duration
}

// Routes serves Twilio's callbacks and the Flex companion's API for every ConferenceRecoveryPolicy,
// on the operator's webhook Server: it checks each request against the policy's auth token, drops
// redeliveries, and records what it learns in ConferenceRecovery status for the controller to act
// on.
type Routes struct {
	opts   RoutesOptions
	log    logr.Logger
	dedup  *events.Dedup
	store  *recoveryStore
	tokens *tokenCache
	sinks  *sinkValidator
	// failures are the per-client budgets of failed authentications.
	failures *budgets
	// forward is the HTTP client of forwards to the activity leader.
	forward *http.Client
}

// NewRoutes builds the routes; register them with Register.
func NewRoutes(o RoutesOptions) (*Routes, error) {
	if o.Client == nil || o.APIReader == nil || o.Credentials == nil {
		return nil, errors.New("webhook routes need a Client, an APIReader and Credentials")
	}
	if o.PublicURL != "" {
		pub, err := ParsePublicURL(o.PublicURL)
		if err != nil {
			return nil, err
		}
		o.PublicURL = pub
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.DedupSize = cmp.Or(max(o.DedupSize, 0), DefaultDedupSize)
	o.ConferenceCacheSize = cmp.Or(max(o.ConferenceCacheSize, 0), DefaultConferenceCacheSize)
	o.TokenCacheSize = cmp.Or(max(o.TokenCacheSize, 0), DefaultTokenCacheSize)
	if o.HandlerTimeout <= 0 {
		o.HandlerTimeout = DefaultHandlerTimeout
	}
	if o.FlexTokenRate <= 0 {
		o.FlexTokenRate = 5
	}
	o.FlexTokenBurst = cmp.Or(max(o.FlexTokenBurst, 0), 20)
	if o.AuthFailureRate <= 0 {
		o.AuthFailureRate = DefaultAuthFailureRate
	}
	o.AuthFailureBurst = cmp.Or(max(o.AuthFailureBurst, 0), DefaultAuthFailureBurst)
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = DefaultForwardTimeout
	}
	log := ctrl.Log.WithName("webhookserver")
	return &Routes{
		opts:  o,
		log:   log,
		dedup: events.NewDedup(o.DedupSize),
		// A batch may wait for a task fetch (Twilio's client retries within a few seconds) and a
		// few conflict rounds; it is bounded so a stuck API server cannot pin a writer forever.
		store:    newRecoveryStore(o.Client, o.APIReader, log, o.ConferenceCacheSize, 30*time.Second),
		tokens:   newTokenCache(o.TokenCacheSize, o.Now, o.FlexTokenRate, o.FlexTokenBurst),
		sinks:    newSinkValidator(log),
		failures: newBudgets(o.AuthFailureRate, o.AuthFailureBurst),
		forward:  newForwardClient(o.ForwardTimeout),
	}, nil
}

// Register adds the routes to s.
func (r *Routes) Register(s *Server) {
	if r.opts.PublicURL == "" {
		r.opts.PublicURL = s.PublicURL()
	}
	s.Handle(PatternConference, instrument(routeConference, r.handleConference))
	s.Handle(PatternEvents, instrument(routeEvents, r.handleEvents))
	s.Handle(PatternTaskRouter, instrument(routeTaskRouter, r.handleTaskRouter))
	s.Handle(PatternGraceful, instrument(routeGraceful, countMarks(r.handleGraceful)))
	s.Handle(PatternCheck, instrument(routeCheck, r.handleCheck))
	s.Handle(PatternRecovery, instrument(routeRecovery, r.handleRecovery))
	s.Handle(PatternFlexConfig, instrument(routeFlexConfig, r.handleFlexConfig))
	if r.opts.Activity != nil {
		s.Handle(PatternActivityEvents, instrument(routeActivityEvents, r.handleActivityEvents))
	}
	// CORS preflight: the companion runs in the Flex UI, on another origin.
	s.Handle("OPTIONS /flex/{namespace}/{policy}/graceful", http.HandlerFunc(preflight))
	s.Handle("OPTIONS /flex/{namespace}/{policy}/check", http.HandlerFunc(preflight))
	s.Handle("OPTIONS /flex/{namespace}/{policy}/recoveries/{conferenceSid}", http.HandlerFunc(preflight))
	s.Handle("OPTIONS /flex/config", http.HandlerFunc(preflight))
}

// policy reads the ConferenceRecoveryPolicy the request's path names, from the cache. The answer
// is an HTTP status when there is none to use: 404 for a policy that does not exist (the callers
// answer it as they answer a failed authentication, so that an unsigned request cannot tell which
// policies exist), 503 when the cache cannot answer.
func (r *Routes) policy(req *http.Request) (*v1alpha1.ConferenceRecoveryPolicy, int, error) {
	ns, name := req.PathValue("namespace"), req.PathValue("policy")
	if !r.knownPolicyPath(ns, name) {
		return nil, http.StatusNotFound, errors.New("no such ConferenceRecoveryPolicy")
	}
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := r.opts.Client.Get(req.Context(), types.NamespacedName{Namespace: ns, Name: name}, &policy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound, errors.New("no such ConferenceRecoveryPolicy")
		}
		return nil, http.StatusServiceUnavailable, fmt.Errorf("read ConferenceRecoveryPolicy %s/%s: %w", ns, name, err)
	}
	return &policy, 0, nil
}

// knownPolicyPath reports whether a request's namespace and policy name can name a policy the
// operator reads: well-formed names, in a watched namespace.
func (r *Routes) knownPolicyPath(ns, name string) bool {
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return false
	}
	return len(r.opts.Namespaces) == 0 || slices.Contains(r.opts.Namespaces, ns)
}

// publicURL is the base URL Twilio calls for the policy, without a trailing slash.
func (r *Routes) publicURL(p *v1alpha1.ConferenceRecoveryPolicy) string {
	if p.Spec.PublicBaseURL != "" {
		return strings.TrimSuffix(p.Spec.PublicBaseURL, "/")
	}
	return r.opts.PublicURL
}

// twilioRequest is a request whose signature checked out.
type twilioRequest struct {
	policy *v1alpha1.ConferenceRecoveryPolicy
	twilio twilio.Client
	body   []byte
}

func (t *twilioRequest) policyKey() string { return t.policy.Namespace + "/" + t.policy.Name }

// dedupKey scopes an event key to the policy: two policies on one workspace each receive every
// TaskRouter event through their own sink, and each must process it.
func (t *twilioRequest) dedupKey(key string) string { return t.policyKey() + "/" + key }

// authenticateTwilio finds the policy, reads the body and checks X-Twilio-Signature against the
// policy's auth token and public URL. On failure it has answered and returns false: 403
// (signature, or a policy that does not exist: the same answer, so that existence does not leak),
// 429 instead of 403 once the client has failed too often of late (refuse), 413 (body over the
// cap), 503 (credentials or public URL unusable: Twilio retries, and a possibly valid event must
// never get a 4xx, which Event Streams discards). A request whose signature checks out is never
// refused for what its address did before.
func (r *Routes) authenticateTwilio(w http.ResponseWriter, req *http.Request, route string) (*twilioRequest, bool) {
	policy, status, err := r.policy(req)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			r.log.Error(err, "Read the policy of a webhook")
			unavailable(w, "cannot read the policy")
		} else {
			r.refuseSignature(w, req, route)
		}
		return nil, false
	}
	body, tw, ok := r.verifyTwilio(w, req, route, policy.Namespace+"/"+policy.Name, policy.Namespace, policy.Spec.Twilio, r.publicURL(policy))
	if !ok {
		return nil, false
	}
	return &twilioRequest{policy: policy, twilio: tw, body: body}, true
}

// verifyTwilio reads the body and checks X-Twilio-Signature with the auth token of a policy's
// twilio block, against the public base URL Twilio was given. On failure it has answered (413,
// 503 or 403, as authenticateTwilio says) and returns false.
func (r *Routes) verifyTwilio(w http.ResponseWriter, req *http.Request, route, policyKey, namespace string, spec v1alpha1.TwilioSpec, base string) ([]byte, twilio.Client, bool) {
	body, ok := readBody(w, req)
	if !ok {
		return nil, nil, false
	}
	creds, tw, err := r.credentialsFor(req.Context(), namespace, spec)
	if err != nil {
		var cerr *credentials.Error
		if errors.As(err, &cerr) {
			r.log.Info("The policy's credentials are unusable; answering 503 so Twilio retries",
				"policy", policyKey, "reason", cerr.Reason, "message", cerr.Message)
		} else {
			r.log.Error(err, "Read the policy's credentials", "policy", policyKey)
		}
		unavailable(w, "the policy's credentials are not usable")
		return nil, nil, false
	}
	if base == "" {
		r.log.Info("No public URL to check signatures against: set --webhook-public-url or the policy's spec.publicBaseUrl",
			"policy", policyKey)
		unavailable(w, "no public URL configured")
		return nil, nil, false
	}
	// The URL Twilio signed: the configured public URL, never one rebuilt from the Host header.
	signedURL := base + req.URL.RequestURI()
	if err := events.VerifySignature(creds.AuthToken, signedURL, req.Header.Get("Content-Type"), body, req.Header.Get("X-Twilio-Signature")); err != nil {
		if r.refuseSignature(w, req, route) {
			// err names the kind of failure only, never the URL, signature or token.
			r.log.Info("Refused a webhook with a bad signature", "route", route, "policy", policyKey, "reason", err.Error())
		}
		return nil, nil, false
	}
	return body, tw, true
}

// credentialsFor gives the credentials of a policy's twilio block. A transient failure (the API
// server not answering the Secret's read, on a policy's first request or after the Secret
// changed) is tried again within the request's budget: without the auth token the request cannot
// even be authenticated, and Twilio sends a conference callback once. A *credentials.Error (the
// Secret is unusable) is returned at once.
func (r *Routes) credentialsFor(ctx context.Context, namespace string, spec v1alpha1.TwilioSpec) (credentials.Credentials, twilio.Client, error) {
	ctx, cancel := r.handlingContext(ctx)
	defer cancel()
	for backoff := storeMinBackoff; ; backoff = min(2*backoff, storeMaxBackoff) {
		creds, tw, err := r.opts.Credentials.For(ctx, namespace, spec)
		var cerr *credentials.Error
		if err == nil || errors.As(err, &cerr) {
			return creds, tw, err
		}
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return creds, tw, err
		}
	}
}

// readBody reads the (capped) body; on failure it has answered 413 or 400.
func readBody(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
		}
		return nil, false
	}
	return body, true
}

// handlingContext bounds how long a request waits for its work. It is not cancelled with the
// request: when the server shuts down (which cancels every request's context) a request already
// being stored finishes within the drain instead of failing half-way.
func (r *Routes) handlingContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), r.opts.HandlerTimeout)
}

// unavailable answers 503 with a Retry-After, so Twilio (and the companion) try again.
func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, msg, http.StatusServiceUnavailable)
}
