// Package app builds the flex-operator manager exactly as main.go runs it, so that end-to-end tests
// start the same thing a cluster runs.
package app

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
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
	MetricsAddress       string
	ProbeAddress         string
	LeaderElection       bool
	LeaderElectionID     string
	LeaderElectionNS     string
	WebhookBindAddress   string
	WebhookPublicURL     string
	Namespace            string
	TwilioBaseURL        string
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

	// Now is the clock the recovery logic reads; time.Now when nil. Tests give it the simulator's
	// clock so that TTLs and timeouts advance with the simulator instead of being slept through.
	Now func() time.Time
	// TwilioOptions are passed to every Twilio client the operator builds (tests shorten retries).
	TwilioOptions []twilio.Option
	// TwilioRate is the sustained requests per second to Twilio per account (shared by every
	// client of the account); zero means twilio.DefaultRate, negative means no limit.
	TwilioRate float64
	// Engine, when set, is given the activity engine once built (tests read its stats).
	Engine func(*activity.Engine)
	// ActivityStats, when set, is what the WorkerActivityPolicy controller reads the activity
	// engine's aggregates from, instead of the engine (controller tests give it fixed figures).
	ActivityStats activity.StatsSource
	// AdvertiseResync is how often the leader re-checks its webhook address Lease; zero means
	// activity.DefaultAdvertiseResync (tests that overwrite the Lease lengthen it).
	AdvertiseResync time.Duration
	// Restartable lets a process build more than one manager (tests that stop and restart the
	// operator in-process); controller-runtime otherwise refuses a second controller of a name.
	Restartable bool
}

// BindFlags registers the options on a flag set, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&o.ProbeAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "Elect a leader so that only one replica runs the controllers (the webhook server runs on all).")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "flex-operator.contactcenter.flexoperator.io", "Name of the leader election Lease.")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the operator's own).")
	fs.StringVar(&o.WebhookBindAddress, "webhook-bind-address", ":9443", "Address of the Twilio webhook server.")
	fs.StringVar(&o.WebhookAdvertiseAddress, "webhook-advertise-address", "", "Base URL at which the other replicas reach this one's webhook server, e.g. http://10.0.3.7:9443; when it leads, followers forward WorkerActivityPolicy deliveries there. Default: http://$POD_IP:<webhook port> when POD_IP is set; without either, this replica never advertises and followers answer 503 (Event Streams retries).")
	fs.StringVar(&o.WebhookPublicURL, "webhook-public-url", "", "Base URL at which Twilio reaches the webhook server, e.g. https://flex-operator.example.com; signatures are checked against it. A policy's spec.publicBaseUrl overrides it.")
	fs.StringVar(&o.Namespace, "namespace", "", "Watch only this namespace (default: all namespaces).")
	fs.StringVar(&o.TwilioBaseURL, "twilio-base-url", "", "Send every Twilio API request to this base URL instead of *.twilio.com (for the Twilio simulator).")
	fs.Int64Var(&o.WebhookMaxBodyBytes, "webhook-max-body-bytes", webhookserver.DefaultMaxBodyBytes, "Largest webhook body accepted; larger ones get 413.")
	fs.Float64Var(&o.TwilioRate, "twilio-rate", 0, "Sustained Twilio REST requests per second per account, shared by the whole operator (0: the default of 20; negative: no limit). Set it to what the account's TaskRouter limits allow.")
	fs.DurationVar(&o.GracefulShutdownTime, "graceful-shutdown-timeout", 30*time.Second, "How long runnables get to stop.")
	fs.DurationVar(&o.RecoveryResyncAfter, "recovery-resync-after", controllers.DefaultResyncAfter, "How long a ConferenceRecovery in progress may go unchanged before its call is read from Twilio's REST API, to repair callbacks Twilio lost (every one is also read once at start-up).")
	fs.Float64Var(&o.RecoveryResyncRate, "recovery-resync-rate", controllers.DefaultResyncRate, "Most resyncs with Twilio's REST API per Twilio account and second.")
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
	mopts := ctrl.Options{
		Scheme:                  Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddress},
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
	if o.Namespace != "" {
		mopts.Cache.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
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
	if o.TwilioRate != 0 {
		provider.New = func(cfg twilio.Config, opts ...twilio.Option) (twilio.Client, error) {
			cfg.Rate = o.TwilioRate
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
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up ConferenceRecovery controller: %w", err)
	}

	ws, err := webhookserver.New(webhookserver.Options{
		BindAddress:  o.WebhookBindAddress,
		PublicURL:    o.WebhookPublicURL,
		MaxBodyBytes: o.WebhookMaxBodyBytes,
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
	if err := mgr.AddReadyzCheck("caches", func(_ *http.Request) error {
		if !ws.Ready() {
			return fmt.Errorf("caches have not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	return mgr, nil
}
