// Package scenario runs the whole system on one machine — a real kube-apiserver and etcd (built by
// hack/setup-envtest.sh), the Twilio simulator and the operator's manager exactly as main.go builds
// it — and plays contact-centre calls against it. The end-to-end tests (test/e2e) and `make demo`
// are both written with it, so the demo shows what the tests prove.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// The operator runs without leader election (it is the only engine), but advertises its webhook
// address as a leader does, under this leader-election ID and namespace: a second manager started
// with leader election on the same ID, kept a follower, forwards activity deliveries to it.
const (
	LeaderElectionID = "flex-operator-e2e"
	LeaderElectionNS = "default"
)

// Options configure an Env.
type Options struct {
	// CRDDir holds the CustomResourceDefinitions (config/crd/bases).
	CRDDir string
	// Sim configures the simulator. Its Clock is shared with the operator.
	Sim twiliosim.Options
	// Manager adjusts the manager's options before each start (the addresses, the simulator's URL
	// and clock are already filled in).
	Manager func(*app.Options)
	// OperatorConfig, when set, gives the REST config the operator runs with (for example one that
	// impersonates the operator's ServiceAccount) from the control plane's admin config; the
	// tests' own Client keeps the admin config.
	OperatorConfig func(admin *rest.Config) *rest.Config
	// Deferred leaves the operator stopped after Start; the test calls StartOperator once it has
	// set up what the operator needs (RBAC, say).
	Deferred bool
}

// Env is a running control plane, simulator and operator.
type Env struct {
	// Sim is the Twilio simulator the operator talks to.
	Sim *twiliosim.Sim
	// Client reads and writes the API server directly (uncached).
	Client client.Client
	// Config reaches the API server.
	Config *rest.Config
	// WebhookURL is the public base URL of the operator's webhook server.
	WebhookURL string
	// Engine is the running operator's activity engine.
	Engine *activity.Engine
	// Override, when set, adjusts the manager's options at the next starts (after
	// Options.Manager); benchmarks lift the Twilio rate limit with it.
	Override func(*app.Options)

	opts        Options
	env         *envtest.Environment
	webhookAddr string
	cancel      context.CancelFunc
	done        chan error
}

// Start brings up the control plane (KUBEBUILDER_ASSETS must point at the binaries), the
// simulator and the operator.
func Start(o Options) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: build the control plane with `make envtest` (hack/setup-envtest.sh)")
	}
	e := &Env{opts: o}
	e.env = &envtest.Environment{CRDDirectoryPaths: []string{o.CRDDir}, ErrorIfCRDPathMissing: true}
	cfg, err := e.env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	e.Config = cfg
	if e.Client, err = client.New(cfg, client.Options{Scheme: app.Scheme()}); err != nil {
		_ = e.env.Stop()
		return nil, err
	}
	e.Sim = twiliosim.New(o.Sim)
	if err := e.Sim.Start(); err != nil {
		_ = e.env.Stop()
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Stop()
		return nil, err
	}
	e.webhookAddr = l.Addr().String()
	_ = l.Close()
	e.WebhookURL = "http://" + e.webhookAddr
	if o.Deferred {
		return e, nil
	}
	if err := e.StartOperator(); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// StartOperator starts the operator's manager (after StopOperator, a restart), on the same
// webhook address, and waits until its webhook server answers.
func (e *Env) StartOperator() error {
	if e.cancel != nil {
		return errors.New("the operator is already running")
	}
	o := app.Options{
		MetricsAddress: "0", ProbeAddress: "0",
		WebhookBindAddress: e.webhookAddr, WebhookPublicURL: e.WebhookURL,
		TwilioBaseURL: e.Sim.URL(), UnsafeTwilioBaseURL: true, Now: e.Sim.Now, Restartable: true,
		TwilioOptions:        []twilio.Option{twilio.WithRetry(6, 5*time.Millisecond, 100*time.Millisecond)},
		GracefulShutdownTime: 10 * time.Second,
		LeaderElectionID:     LeaderElectionID, LeaderElectionNS: LeaderElectionNS,
		WebhookAdvertiseAddress: e.WebhookURL, AdvertiseResync: time.Hour,
	}
	o.Engine = func(en *activity.Engine) { e.Engine = en }
	if e.opts.Manager != nil {
		e.opts.Manager(&o)
	}
	if e.Override != nil {
		e.Override(&o)
	}
	cfg := e.Config
	if e.opts.OperatorConfig != nil {
		cfg = e.opts.OperatorConfig(rest.CopyConfig(e.Config))
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := app.NewManager(ctx, cfg, o)
	if err != nil {
		cancel()
		return fmt.Errorf("build the operator: %w", err)
	}
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- mgr.Start(ctx) }()
	return Poll(context.Background(), 30*time.Second, func() (bool, error) {
		select {
		case err := <-e.done:
			e.cancel, e.done = nil, nil
			return false, fmt.Errorf("operator stopped while starting: %w", err)
		default:
		}
		c, err := net.DialTimeout("tcp", e.webhookAddr, time.Second)
		if err != nil {
			return false, nil
		}
		_ = c.Close()
		return true, nil
	})
}

// StopOperator stops the operator's manager and waits until it has stopped.
func (e *Env) StopOperator() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	err := <-e.done
	e.cancel, e.done = nil, nil
	return err
}

// Stop stops the operator, the simulator and the control plane.
func (e *Env) Stop() {
	_ = e.StopOperator()
	if e.Sim != nil {
		_ = e.Sim.Close()
	}
	if e.env != nil {
		_ = e.env.Stop()
	}
}

// WriteKubeconfig writes a kubeconfig for the control plane (for kubectl) into dir and returns
// its path.
func (e *Env) WriteKubeconfig(dir string) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["demo"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	kc.AuthInfos["demo"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken,
	}
	kc.Contexts["demo"] = &clientcmdapi.Context{Cluster: "demo", AuthInfo: "demo", Namespace: "default"}
	kc.CurrentContext = "demo"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// Poll calls cond every 20ms until it reports true, returns an error, or timeout passes.
func Poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %s", timeout)
		case <-t.C:
		}
	}
}
