package controllers_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

var (
	cfg       *rest.Config
	k8sClient client.Client
	// sim is the Twilio simulator every test shares; each test builds its own workspace with
	// sim.BuildContactCentre and a credentials Secret from simSecret. Its clock is manual: tests
	// advance it (simClock.Advance) instead of sleeping through TTLs.
	sim *twiliosim.Sim
	// webhookURL is the base URL of the manager's webhook server, reachable by the simulator.
	webhookURL string
	// engineStats stands in for the activity engine: the WorkerActivityPolicy controller reads its
	// aggregates from it (the engine itself is tested in internal/activity and test/e2e).
	engineStats = &fakeStats{}
)

// TestMain starts a real kube-apiserver and etcd (built by hack/setup-envtest.sh; `make test` sets
// KUBEBUILDER_ASSETS) with the project's CRDs, and the manager exactly as main.go builds it.
func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
		os.Exit(1)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		os.Exit(1)
	}
	k8sClient, err = client.New(cfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	sim = twiliosim.New(twiliosim.Options{})
	if err := sim.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start simulator:", err)
		os.Exit(1)
	}
	webhookAddr, err := freeAddr()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhook address:", err)
		os.Exit(1)
	}
	webhookURL = "http://" + webhookAddr
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := app.NewManager(ctx, cfg, app.Options{
		MetricsAddress: "0", ProbeAddress: "0", WebhookBindAddress: webhookAddr,
		WebhookPublicURL: webhookURL, TwilioBaseURL: sim.URL(), UnsafeTwilioBaseURL: true, Now: sim.Now,
		TwilioOptions:        []twilio.Option{twilio.WithRetry(4, time.Millisecond, 20*time.Millisecond)},
		GracefulShutdownTime: 5 * time.Second,
		ActivityStats:        engineStats,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager stopped:", err)
	}
	_ = sim.Close()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// newNamespace creates a fresh namespace for one test (envtest cannot delete namespaces, so tests
// never share one).
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// simSecret creates, in ns, a credentials Secret named name holding the simulator's account.
func simSecret(t *testing.T, ns, name string) {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"accountSid": sim.AccountSID(), "authToken": sim.AuthToken()},
	}
	if err := k8sClient.Create(context.Background(), secret); err != nil {
		t.Fatalf("create Secret: %v", err)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
