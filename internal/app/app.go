// Package app builds the flex-operator manager exactly as main.go runs it, so that end-to-end tests
// start the same thing a cluster runs.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/controllers"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// Options are the manager's settings, one flag each.
type Options struct {
	MetricsAddress string
	// MetricsSecure serves /metrics over HTTPS and lets through only callers whose token the API
	// server authenticates and who may `get` the /metrics non-resource URL.
	MetricsSecure bool
	// MetricsCertDir holds tls.crt and tls.key for the metrics endpoint; empty: a self-signed
	// certificate made at start.
	MetricsCertDir string
	// EnableHTTP2 serves the metrics endpoint over HTTP/2 too (off: HTTP/2 stream-reset attacks).
	EnableHTTP2          bool
	ProbeAddress         string
	LeaderElection       bool
	LeaderElectionID     string
	LeaderElectionNS     string
	WebhookBindAddress   string
	WebhookPublicURL     string
	WebhookDrainDelay    time.Duration
	WatchNamespaces      []string
	TwilioBaseURL        string
	UnsafeTwilioBaseURL  bool
	WebhookMaxBodyBytes  int64
	GracefulShutdownTime time.Duration
	// WebhookAdvertiseAddress is this replica's webhook base URL inside the cluster
	// (http://<pod IP>:<port>); the leader advertises it so followers forward activity
	// deliveries to it. Empty: built from POD_IP and the webhook port when POD_IP is set.
	WebhookAdvertiseAddress string
	// RecoveryResyncAfter and RecoveryResyncRate tune the ConferenceRecovery controller's resync
	// with Twilio's REST API (see controllers.ConferenceRecoveryReconciler).
	RecoveryResyncAfter time.Duration
	RecoveryResyncRate  float64
	// RecoverySweepInterval is how often the legs of calls in Monitoring are checked against the
	// account's live calls (bounding how long a lost leave goes unrepaired).
	RecoverySweepInterval time.Duration

	// Now is the clock the recovery logic reads; time.Now when nil. Tests give it the simulator's
	// clock so that TTLs and timeouts advance with the simulator instead of being slept through.
	Now func() time.Time
	// TwilioOptions are passed to every Twilio client the operator builds (tests shorten retries).
	TwilioOptions []twilio.Option
	// TwilioRate is the sustained requests per second of every Twilio budget whose own rate below
	// is zero (see twilio.Config.Rate); zero means each class's default, negative means no limit.
	TwilioRate float64
	// TwilioTaskRouterRate, TwilioVoiceRate and TwilioOtherRate set one resource class's budget
	// (twilio.Limits): TaskRouter per workspace, Voice and the rest per account. Zero falls back
	// to TwilioRate; negative means no limit.
	TwilioTaskRouterRate float64
	TwilioVoiceRate      float64
	TwilioOtherRate      float64
	// Engine, when set, is given the activity engine once built (tests read its stats).
	Engine func(*activity.Engine)
	// ActivityStats, when set, is what the WorkerActivityPolicy controller reads the activity
	// engine's aggregates from, instead of the engine (controller tests give it fixed figures).
	ActivityStats activity.StatsSource
	// AdvertiseResync is how often the leader re-checks its webhook address Lease; zero means
	// activity.DefaultAdvertiseResync (tests that overwrite the Lease lengthen it).
	AdvertiseResync time.Duration
	// Scheme is the manager's scheme; Scheme() when nil. main.go passes its own, the one
	// `kubebuilder create api` adds new kinds to.
	Scheme *runtime.Scheme
	// Restartable lets a process build more than one manager (tests that stop and restart the
	// operator in-process); controller-runtime otherwise refuses a second controller of a name.
	Restartable bool
}

// BindFlags registers the options on a flag set, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddress, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, only to callers the API server authenticates and authorises to get /metrics (the metrics-reader ClusterRole). Turn off only behind another authenticating proxy.")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "Directory with tls.crt and tls.key for the metrics endpoint (default: a self-signed certificate made at start).")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Serve the metrics endpoint over HTTP/2 as well (off by default: HTTP/2 stream-reset and rapid-reset attacks).")
	fs.StringVar(&o.ProbeAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "Elect a leader so that only one replica runs the controllers (the webhook server runs on all).")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "flex-operator.contactcenter.flexoperator.io", "Name of the leader election Lease.")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the operator's own).")
	fs.StringVar(&o.WebhookBindAddress, "webhook-bind-address", ":9443", "Address of the Twilio webhook server (plain HTTP; TLS ends at the ingress).")
	fs.StringVar(&o.WebhookAdvertiseAddress, "webhook-advertise-address", "", "Base URL at which the other replicas reach this one's webhook server, e.g. http://10.0.3.7:9443; when it leads, followers forward WorkerActivityPolicy deliveries there. Default: http://$POD_IP:<webhook port> when POD_IP is set; without either, this replica never advertises and followers answer 503 (Event Streams retries).")
	fs.StringVar(&o.WebhookPublicURL, "webhook-public-url", "", "Base URL at which Twilio reaches the webhook server, e.g. https://flex-operator.example.com; signatures are checked against it. A policy's spec.publicBaseUrl overrides it.")
	fs.DurationVar(&o.WebhookDrainDelay, "webhook-drain-delay", webhookserver.DefaultDrainDelay, "On shutdown, how long the webhook server keeps answering while reporting not ready, so that Services and ingress controllers stop routing to this replica before it closes. Must be shorter than --graceful-shutdown-timeout.")
	fs.Func("watch-namespaces", "Comma-separated namespaces to watch; the operator then reads and writes only there, and needs Roles only there (default: all namespaces).", func(v string) error {
		o.WatchNamespaces = nil
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				o.WatchNamespaces = append(o.WatchNamespaces, ns)
			}
		}
		return nil
	})
	fs.StringVar(&o.TwilioBaseURL, "twilio-base-url", "", "Send every Twilio API request, with the account's credentials, to this base URL instead of *.twilio.com. Only https://*.twilio.com is accepted unless --unsafe-twilio-base-url is set too.")
	fs.BoolVar(&o.UnsafeTwilioBaseURL, "unsafe-twilio-base-url", false, "Development only: let --twilio-base-url name any host (the Twilio simulator). Never set it in production: the host receives the account's credentials.")
	fs.Int64Var(&o.WebhookMaxBodyBytes, "webhook-max-body-bytes", webhookserver.DefaultMaxBodyBytes, "Largest webhook body accepted; larger ones get 413.")
	fs.Float64Var(&o.TwilioRate, "twilio-rate", 0, "Sustained Twilio REST requests per second of every budget whose own --twilio-*-rate is 0 (0: each budget's default; negative: no limit).")
	fs.Float64Var(&o.TwilioTaskRouterRate, "twilio-taskrouter-rate", 0, "Sustained TaskRouter requests per second per workspace, shared by the whole operator (0: --twilio-rate, else 20; negative: no limit). Set it to what the workspace's Limits page allows.")
	fs.Float64Var(&o.TwilioVoiceRate, "twilio-voice-rate", 0, "Sustained Programmable Voice requests (calls, conferences, participants) per second per account (0: --twilio-rate, else 20; negative: no limit).")
	fs.Float64Var(&o.TwilioOtherRate, "twilio-other-rate", 0, "Sustained requests per second per account to the other Twilio APIs the operator uses (Event Streams, token validation) (0: --twilio-rate, else 10; negative: no limit).")
	fs.DurationVar(&o.RecoveryResyncAfter, "recovery-resync-after", controllers.DefaultResyncAfter, "How long a ConferenceRecovery in progress may go unchanged before its call is read from Twilio's REST API, to repair callbacks Twilio lost (every one is also read once at start-up).")
	fs.Float64Var(&o.RecoveryResyncRate, "recovery-resync-rate", controllers.DefaultResyncRate, "Most resyncs with Twilio's REST API per Twilio account and second of calls that are plainly fine (a recovery whose customer may be alone does not wait for this budget).")
	fs.DurationVar(&o.RecoverySweepInterval, "recovery-sweep-interval", controllers.DefaultSweepInterval, "How often the connected legs of calls in Monitoring are checked against the account's list of live calls (one request per 1,000 calls); it bounds how long a lost agent leave or conference end goes unnoticed.")
	fs.DurationVar(&o.GracefulShutdownTime, "graceful-shutdown-timeout", 30*time.Second, "How long everything gets to stop, the webhook server's drain included.")
}

// Validate checks the options that can be wrong on their own. main.go calls it before it loads
// the kubeconfig, so a mistyped flag is reported as such, whatever the cluster.
func (o *Options) Validate() error {
	if err := checkTwilioBaseURL(o.TwilioBaseURL, o.UnsafeTwilioBaseURL); err != nil {
		return err
	}
	if _, err := webhookserver.ParsePublicURL(o.WebhookPublicURL); err != nil {
		return fmt.Errorf("--webhook-public-url: %w", err)
	}
	if o.WebhookAdvertiseAddress != "" {
		if _, err := activity.ParseLeaderAddress(o.WebhookAdvertiseAddress); err != nil {
			return fmt.Errorf("--webhook-advertise-address: %w", err)
		}
	}
	if o.WebhookMaxBodyBytes < 0 {
		return errors.New("--webhook-max-body-bytes must not be negative")
	}
	if o.RecoveryResyncAfter < 0 || o.RecoveryResyncRate < 0 {
		return errors.New("--recovery-resync-after and --recovery-resync-rate must not be negative")
	}
	if o.RecoverySweepInterval < 0 {
		return errors.New("--recovery-sweep-interval must not be negative")
	}
	for flag, rate := range map[string]float64{"--twilio-rate": o.TwilioRate, "--twilio-taskrouter-rate": o.TwilioTaskRouterRate,
		"--twilio-voice-rate": o.TwilioVoiceRate, "--twilio-other-rate": o.TwilioOtherRate} {
		if math.IsNaN(rate) || math.IsInf(rate, 0) {
			return fmt.Errorf("%s must be a finite number of requests per second (negative: no limit)", flag)
		}
	}
	if o.WebhookDrainDelay < 0 {
		return errors.New("--webhook-drain-delay must not be negative")
	}
	if o.WebhookDrainDelay > 0 && o.GracefulShutdownTime > 0 && o.WebhookDrainDelay+webhookserver.DefaultShutdownTimeout > o.GracefulShutdownTime {
		return fmt.Errorf("--graceful-shutdown-timeout (%s) must exceed --webhook-drain-delay (%s) plus the webhook server's %s for requests in flight",
			o.GracefulShutdownTime, o.WebhookDrainDelay, webhookserver.DefaultShutdownTimeout)
	}
	for _, ns := range o.WatchNamespaces {
		if ns == "" || strings.ContainsAny(ns, " /") {
			return fmt.Errorf("--watch-namespaces: %q is not a namespace name", ns)
		}
	}
	return nil
}

// checkTwilioBaseURL refuses a base URL that would send the account's credentials anywhere but
// Twilio, unless the caller said it is a development setup.
func checkTwilioBaseURL(raw string, unsafe bool) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--twilio-base-url %q must be an absolute http(s) URL", raw)
	}
	if unsafe {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme != "https" || (host != "twilio.com" && !strings.HasSuffix(host, ".twilio.com")) {
		return fmt.Errorf("--twilio-base-url %q is not an https://*.twilio.com URL: every Twilio request carries the account's credentials; "+
			"set --unsafe-twilio-base-url as well only to reach a Twilio simulator in development", raw)
	}
	return nil
}

// Scheme is the scheme of every object the operator reads or writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// NewManager builds the manager with its controllers and the webhook server.
func NewManager(ctx context.Context, cfg *rest.Config, o Options) (manager.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	mopts := ctrl.Options{
		Scheme:                  cmp.Or(o.Scheme, Scheme()),
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.ProbeAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNS,
		// The leader hands over at once on a clean stop, so recoveries in flight are not left
		// waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &o.GracefulShutdownTime,
	}
	// Nothing reads managedFields; dropping them from the cache saves a large share of each
	// ConferenceRecovery's memory (thousands are cached on a busy day).
	mopts.Cache.DefaultTransform = cache.TransformStripManagedFields()
	if o.Restartable {
		skip := true
		mopts.Controller.SkipNameValidation = &skip
	}
	if len(o.WatchNamespaces) > 0 {
		// Every cached kind (policies, recoveries, Secrets' metadata) is then listed and watched
		// per namespace, so Roles in those namespaces are enough.
		mopts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.WatchNamespaces {
			mopts.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	// The only Lease the operator reads through its cache is the leader's webhook address, in its
	// own namespace: a cluster-wide Lease informer would need RBAC on every namespace's Leases.
	if ns := o.LeaderElectionNS; ns != "" || activity.OperatorNamespace() != "" {
		if ns == "" {
			ns = activity.OperatorNamespace()
		}
		mopts.Cache.ByObject = map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{ns: {}}},
		}
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}

	now := o.Now
	if now == nil {
		now = time.Now
	}
	// One client per credentials Secret, shared by the controllers and the webhook server.
	provider := &credentials.Provider{
		Metadata: mgr.GetClient(), Data: mgr.GetAPIReader(),
		BaseURL: o.TwilioBaseURL, Options: o.TwilioOptions,
	}
	if o.TwilioRate != 0 || o.TwilioTaskRouterRate != 0 || o.TwilioVoiceRate != 0 || o.TwilioOtherRate != 0 {
		provider.New = func(cfg twilio.Config, opts ...twilio.Option) (twilio.Client, error) {
			cfg.Rate = o.TwilioRate
			cfg.Limits.TaskRouter.Rate = o.TwilioTaskRouterRate
			cfg.Limits.Voice.Rate = o.TwilioVoiceRate
			cfg.Limits.Other.Rate = o.TwilioOtherRate
			return twilio.New(cfg, opts...)
		}
	}

	// The activity engine runs on the leader; the webhook route on every replica hands it events.
	engine, err := activity.New(activity.Options{
		Reader: mgr.GetClient(), Informers: mgr.GetCache(), Credentials: provider,
		Recorder: mgr.GetEventRecorder("activity-engine"), Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("activity engine: %w", err)
	}
	if err := mgr.Add(engine); err != nil {
		return nil, fmt.Errorf("add activity engine: %w", err)
	}
	if o.Engine != nil {
		o.Engine(engine)
	}
	var stats activity.StatsSource = engine
	if o.ActivityStats != nil {
		stats = o.ActivityStats
	}

	if err := (&controllers.WorkerActivityPolicyReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("workeractivitypolicy-controller"),
		Twilio: provider, PublicURL: o.WebhookPublicURL, Stats: stats,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up WorkerActivityPolicy controller: %w", err)
	}
	if err := (&controllers.ConferenceRecoveryPolicyReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("conferencerecoverypolicy-controller"),
		Twilio: provider, Now: now, PublicURL: o.WebhookPublicURL,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up ConferenceRecoveryPolicy controller: %w", err)
	}
	if err := (&controllers.ConferenceRecoveryReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("conferencerecovery-controller"),
		Twilio: provider, Now: now, ResyncAfter: o.RecoveryResyncAfter, ResyncRate: o.RecoveryResyncRate,
		SweepInterval: o.RecoverySweepInterval,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up ConferenceRecovery controller: %w", err)
	}
	// A kind added with `make create-api` (hack/createapi) gets its set-up here.
	// +flexoperator:scaffold:controllers

	ws, err := webhookserver.New(webhookserver.Options{
		BindAddress:  o.WebhookBindAddress,
		PublicURL:    o.WebhookPublicURL,
		MaxBodyBytes: o.WebhookMaxBodyBytes,
		DrainDelay:   o.WebhookDrainDelay,
	}, mgr.GetCache().WaitForCacheSync)
	if err != nil {
		return nil, fmt.Errorf("webhook server: %w", err)
	}
	locator, err := advertiseLeader(mgr, o)
	if err != nil {
		return nil, err
	}
	routes, err := webhookserver.NewRoutes(webhookserver.RoutesOptions{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Credentials: provider,
		Now: now, PublicURL: o.WebhookPublicURL, Activity: engine, ActivityLeader: locator,
		Namespaces: o.WatchNamespaces,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook routes: %w", err)
	}
	routes.Register(ws)
	if err := mgr.Add(ws); err != nil {
		return nil, fmt.Errorf("add webhook server: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", func(_ *http.Request) error {
		switch {
		case ws.Draining():
			return errors.New("stopping: draining webhook requests")
		case !ws.Ready():
			return errors.New("caches have not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	return mgr, nil
}

// metricsOptions serves /metrics as kubebuilder's scaffold does: HTTPS with the API server deciding
// who may read it, and HTTP/2 off unless asked for.
func metricsOptions(o Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddress, SecureServing: o.MetricsSecure, CertDir: o.MetricsCertDir}
	if o.MetricsSecure {
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if !o.EnableHTTP2 {
		m.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return m
}
