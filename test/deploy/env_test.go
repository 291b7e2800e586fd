package deploy

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

var (
	envOnce sync.Once
	envErr  error
	env     *scenario.Env

	// operatorAs is how the next StartOperator runs: as which ServiceAccount, with which options.
	operatorAs struct {
		sync.Mutex
		user    string
		groups  []string
		options func(*app.Options)
	}
	// forbidden records every request the operator made that the API server refused with 403.
	forbidden = &refusals{}
	// simRequests, when set, is called with every REST request the simulator takes, before it
	// processes it (twiliosim.Options.RequestHook): a test that sets it clears it when done.
	simRequests atomic.Pointer[func(*http.Request)]
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir) // the operator binary the rolling-restart test built
	}
	os.Exit(code)
}

// environment starts, once, a control plane with the project's CRDs and the Twilio simulator. The
// operator is not started: the RBAC test starts it as the chart's ServiceAccount.
func environment(t *testing.T) *scenario.Env {
	t.Helper()
	envOnce.Do(func() {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			envErr = errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
			return
		}
		env, envErr = scenario.Start(scenario.Options{
			CRDDir: filepath.Join(configDir, "crd", "bases"),
			Sim: twiliosim.Options{RequestHook: func(r *http.Request) {
				if hook := simRequests.Load(); hook != nil {
					(*hook)(r)
				}
			}},
			Deferred: true,
			OperatorConfig: func(cfg *rest.Config) *rest.Config {
				operatorAs.Lock()
				defer operatorAs.Unlock()
				cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorAs.user, Groups: operatorAs.groups}
				cfg.Wrap(forbidden.wrap)
				return cfg
			},
			Manager: func(o *app.Options) {
				operatorAs.Lock()
				defer operatorAs.Unlock()
				if operatorAs.options != nil {
					operatorAs.options(o)
				}
			},
		})
	})
	if envErr != nil {
		t.Fatalf("test environment: %v", envErr)
	}
	return env
}

// hookSim calls the hooks, in order, with every REST request the simulator takes, before it
// processes it, until the test ends.
func hookSim(t *testing.T, hooks ...func(*http.Request)) {
	all := func(r *http.Request) {
		for _, h := range hooks {
			h(r)
		}
	}
	simRequests.Store(&all)
	t.Cleanup(func() { simRequests.Store(nil) })
}

// refusals is a RoundTripper wrapper that remembers the requests answered 403 Forbidden.
type refusals struct {
	mu   sync.Mutex
	seen []string
}

func (r *refusals) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			r.mu.Lock()
			r.seen = append(r.seen, req.Method+" "+req.URL.Path)
			r.mu.Unlock()
		}
		return resp, err
	})
}

// take returns the refusals seen since the last call and forgets them.
func (r *refusals) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
