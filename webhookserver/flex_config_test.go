package webhookserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// providerByNamespace gives each namespace the credentials provider of its own Twilio account (a
// simulator of its own), as an operator serving several accounts reaches each at Twilio.
type providerByNamespace struct {
	byNamespace map[string]webhookserver.CredentialsProvider
	fallback    webhookserver.CredentialsProvider
}

func (p providerByNamespace) For(ctx context.Context, namespace string, spec v1alpha1.TwilioSpec) (credentials.Credentials, twilio.Client, error) {
	if prov, ok := p.byNamespace[namespace]; ok {
		return prov.For(ctx, namespace, spec)
	}
	return p.fallback.For(ctx, namespace, spec)
}

// configWorld is an operator watching two namespaces of two Twilio accounts (the shared
// simulator's, "A", and a second simulator's, "B"), plus an unwatched namespace with a policy of
// account A.
type configWorld struct {
	t                     testing.TB
	base                  string
	simB                  *twiliosim.Sim
	nsA, nsB, nsUnwatched string
	workflowA, workflowB  string
	publicURLA            string
}

func newConfigWorld(t testing.TB) *configWorld {
	t.Helper()
	setupEnv(t)
	ctx := context.Background()
	simB := twiliosim.New(twiliosim.Options{})
	if err := simB.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = simB.Close() })
	w := &configWorld{t: t, simB: simB, nsA: "cfa-" + rand.String(8), nsB: "cfb-" + rand.String(8), nsUnwatched: "cfu-" + rand.String(8),
		workflowA: newSID("WW"), workflowB: newSID("WW"), publicURLA: "https://Ops.Example.com:8443/flex-operator"}
	account := map[string]*twiliosim.Sim{w.nsA: sim, w.nsB: simB, w.nsUnwatched: sim}
	for ns, s := range account {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "twilio"},
			StringData: map[string]string{"accountSid": s.AccountSID(), "authToken": s.AuthToken()}}
		if err := k8sClient.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	twilioSpec := v1alpha1.TwilioSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"}, WorkspaceSID: newSID("WS")}
	create := func(obj interface{ GetName() string }, err error) {
		if err != nil {
			t.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	recoveryA := &v1alpha1.ConferenceRecoveryPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.nsA, Name: "voice.recovery"},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{Twilio: twilioSpec, ProtectedWorkflowSIDs: []string{w.workflowA}, PublicBaseURL: w.publicURLA + "/"}}
	create(recoveryA, k8sClient.Create(ctx, recoveryA))
	activityA := &v1alpha1.WorkerActivityPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.nsA, Name: "activity"},
		Spec: v1alpha1.WorkerActivityPolicySpec{Twilio: twilioSpec, PendingActivityAttribute: "deferredActivity",
			Activities: v1alpha1.ActivityNames{Wrapup: "After Call Work"}}}
	create(activityA, k8sClient.Create(ctx, activityA))
	recoveryB := &v1alpha1.ConferenceRecoveryPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.nsB, Name: "recovery"},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{Twilio: twilioSpec, ProtectedWorkflowSIDs: []string{w.workflowB}}}
	create(recoveryB, k8sClient.Create(ctx, recoveryB))
	unwatched := &v1alpha1.ConferenceRecoveryPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: w.nsUnwatched, Name: "recovery"},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{Twilio: twilioSpec, ProtectedWorkflowSIDs: []string{newSID("WW")}}}
	create(unwatched, k8sClient.Create(ctx, unwatched))

	newProvider := func(s *twiliosim.Sim) *credentials.Provider {
		return &credentials.Provider{Metadata: mgr.GetClient(), Data: mgr.GetAPIReader(), BaseURL: s.URL(),
			Options: []twilio.Option{twilio.WithRetry(2, time.Millisecond, 10*time.Millisecond)}}
	}
	addr := freeAddr(t)
	w.base = "http://" + addr
	srv, err := webhookserver.New(webhookserver.Options{BindAddress: addr, PublicURL: w.base}, mgr.GetCache().WaitForCacheSync)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := webhookserver.NewRoutes(webhookserver.RoutesOptions{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Now: sim.Now,
		Credentials: providerByNamespace{byNamespace: map[string]webhookserver.CredentialsProvider{w.nsB: newProvider(simB)}, fallback: newProvider(sim)},
		Namespaces:  []string{w.nsA, w.nsB},
	})
	if err != nil {
		t.Fatal(err)
	}
	routes.Register(srv)
	srvCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Start(srvCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-stopped; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	eventually(t, 10*time.Second, func() error {
		if !srv.Ready() {
			return fmt.Errorf("webhook server not ready")
		}
		return nil
	})
	return w
}

// get asks GET /flex/config for an account with a token, and returns the answer.
func (w *configWorld) get(accountSID, token string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.base+"/flex/config?accountSid="+accountSID, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// config waits until the answer for the account lists want's policies (the cache sees the
// policies shortly after they are created), and returns it.
func (w *configWorld) config(accountSID, token string, want func(webhookserver.FlexConfig) error) (webhookserver.FlexConfig, *http.Response) {
	w.t.Helper()
	var cfg webhookserver.FlexConfig
	var resp *http.Response
	eventually(w.t, 10*time.Second, func() error {
		var body string
		resp, body = w.get(accountSID, token)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /flex/config: %d %s", resp.StatusCode, body)
		}
		cfg = webhookserver.FlexConfig{}
		if err := json.Unmarshal([]byte(body), &cfg); err != nil {
			return err
		}
		return want(cfg)
	})
	return cfg, resp
}

// TestFlexConfig reads the companion's configuration as an agent of each account would: the
// answer lists that account's policies of the watched namespaces only, with the routes the
// operator checks; tokens of no account, of another account, and accounts without policies are
// refused alike.
func TestFlexConfig(t *testing.T) {
	w := newConfigWorld(t)
	tokenA := sim.IssueFlexToken(newSID("WK"))
	tokenB := w.simB.IssueFlexToken(newSID("WK"))

	t.Run("happy path", func(t *testing.T) {
		cfg, resp := w.config(sim.AccountSID(), tokenA, func(c webhookserver.FlexConfig) error {
			if c.Recovery == nil || c.Activity == nil {
				return fmt.Errorf("not every policy listed yet: %+v", c)
			}
			return nil
		})
		if got, want := resp.Header.Get("Cache-Control"), "private, max-age=300"; got != want {
			t.Errorf("Cache-Control = %q, want %q", got, want)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("no CORS header: %v", resp.Header)
		}
		base := w.publicURLA + "/twilio/" + w.nsA + "/voice.recovery"
		flexBase := w.publicURLA + "/flex/" + w.nsA + "/voice.recovery"
		want := webhookserver.FlexConfig{
			Version: webhookserver.FlexConfigVersion, AccountSID: sim.AccountSID(), MaxAgeSeconds: webhookserver.FlexConfigMaxAge,
			Recovery: &webhookserver.FlexRecoveryConfig{GracefulTimeoutMs: webhookserver.DefaultGracefulTimeoutMs,
				Policies: []webhookserver.FlexRecoveryPolicy{{
					Namespace: w.nsA, Name: "voice.recovery", PublicURL: w.publicURLA, WorkflowSIDs: []string{w.workflowA},
					Routes: webhookserver.FlexPolicyRoutes{Conference: base + "/conference", Graceful: flexBase + "/graceful",
						Recovery: flexBase + "/recoveries/{conferenceSid}"},
				}}},
			Activity: &webhookserver.FlexActivityConfig{Policies: []webhookserver.FlexActivityPolicy{{
				Namespace: w.nsA, Name: "activity", PendingActivityAttribute: "deferredActivity", ExtendedWrapupAttribute: "extendedWrapup",
				SystemActivities:        []string{"On a Task", "On a Task, No ACD", "After Call Work", "Wrap Up, No ACD", "Extended Wrap Up"},
				ActivityChangeWhileBusy: v1alpha1.BusyChangeDefer,
			}}},
		}
		if diff := cmp.Diff(want, cfg); diff != "" {
			t.Errorf("the configuration of account A (-want +got):\n%s", diff)
		}

		// Account B's agents see B's policy (on the operator's own URL), none of A's.
		cfgB, _ := w.config(w.simB.AccountSID(), tokenB, func(c webhookserver.FlexConfig) error {
			if c.Recovery == nil {
				return fmt.Errorf("B's policy not listed yet")
			}
			return nil
		})
		wantB := []webhookserver.FlexRecoveryPolicy{{Namespace: w.nsB, Name: "recovery", PublicURL: w.base, WorkflowSIDs: []string{w.workflowB},
			Routes: webhookserver.FlexPolicyRoutes{Conference: w.base + "/twilio/" + w.nsB + "/recovery/conference",
				Graceful: w.base + "/flex/" + w.nsB + "/recovery/graceful", Recovery: w.base + "/flex/" + w.nsB + "/recovery/recoveries/{conferenceSid}"}}}
		if diff := cmp.Diff(wantB, cfgB.Recovery.Policies); diff != "" || cfgB.Activity != nil || cfgB.AccountSID != w.simB.AccountSID() {
			t.Errorf("the configuration of account B: activity %+v, account %s, policies (-want +got):\n%s", cfgB.Activity, cfgB.AccountSID, diff)
		}
	})

	t.Run("refused", func(t *testing.T) {
		revoked := sim.IssueFlexToken(newSID("WK"))
		sim.RevokeFlexToken(revoked)
		for _, tc := range []struct {
			name, account, token string
			want                 int
		}{
			{"no token", sim.AccountSID(), "", http.StatusUnauthorized},
			{"no account", "", tokenA, http.StatusBadRequest},
			{"a malformed account", "ACnot-an-account", tokenA, http.StatusBadRequest},
			{"a token Twilio does not know", sim.AccountSID(), revoked, http.StatusForbidden},
			{"account B's token for account A", sim.AccountSID(), tokenB, http.StatusForbidden},
			{"account A's token for account B", w.simB.AccountSID(), tokenA, http.StatusForbidden},
			{"an account with no policy here", newSID("AC"), tokenA, http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := w.get(tc.account, tc.token)
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(body), tc.want)
				}
				if strings.Contains(body, "recovery") || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("a refusal told something or may be cached: %q, Cache-Control %q", body, resp.Header.Get("Cache-Control"))
				}
			})
		}
	})

	t.Run("preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, w.base+"/flex/config?accountSid="+sim.AccountSID(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// TestPluginContractConfig asks the real route for the configuration exactly as the contract says
// the plugin does, and checks the answer is the contract's (which the Jest suite feeds the plugin).
func TestPluginContractConfig(t *testing.T) {
	c := readPluginContract(t).FlexConfig
	w := newConfigWorld(t)
	token := sim.IssueFlexToken(newSID("WK"))
	values := map[string]string{
		"accountSid": sim.AccountSID(), "token": token, "namespace": w.nsA, "policy": "voice.recovery", "activityPolicy": "activity",
		"publicUrl": w.publicURLA, "workflowSid": w.workflowA, "conferenceSid": "{conferenceSid}",
		"maxAgeSeconds": strconv.Itoa(webhookserver.FlexConfigMaxAge),
	}
	query := url.Values{}
	for k, v := range c.Query {
		query.Set(k, fill(t, v, values))
	}
	target := w.base + routePath(t, c.Route, http.MethodGet) + "?" + query.Encode()
	var want any
	if err := json.Unmarshal([]byte(fill(t, string(c.Answer), values)), &want); err != nil {
		t.Fatal(err)
	}
	send := func(withToken bool) (*http.Response, any) {
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.Headers {
			if withToken {
				req.Header.Set(k, fill(t, v, values))
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var got any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		return resp, got
	}
	eventually(t, 10*time.Second, func() error {
		resp, got := send(true)
		if resp.StatusCode != c.OKStatus {
			return fmt.Errorf("status %d, the contract says %d", resp.StatusCode, c.OKStatus)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("the answer is not the contract's (-contract +operator):\n%s", diff)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != fill(t, c.CacheControl, values) {
			return fmt.Errorf("Cache-Control %q, the contract says %q", cc, fill(t, c.CacheControl, values))
		}
		return nil
	})
	if resp, _ := send(false); !slices.Contains(c.RefusedStatuses, resp.StatusCode) {
		t.Errorf("without a token: status %d, not one the contract lists as a refusal %v", resp.StatusCode, c.RefusedStatuses)
	}
}

// BenchmarkFlexConfig measures what a page load costs the operator: GET /flex/config with a token
// already validated, against the baseline of the same run, one Twilio round trip to the simulator
// (the token check the route makes once per token).
//
//	go test -run '^$' -bench BenchmarkFlexConfig ./webhookserver/
func BenchmarkFlexConfig(b *testing.B) {
	w := newConfigWorld(b)
	token := sim.IssueFlexToken(newSID("WK"))
	w.config(sim.AccountSID(), token, func(c webhookserver.FlexConfig) error {
		if c.Recovery == nil || c.Activity == nil {
			return fmt.Errorf("not every policy listed yet")
		}
		return nil
	})
	tw, err := twilio.New(twilio.Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), Rate: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline=twilio-round-trip", func(b *testing.B) {
		for b.Loop() {
			if id, err := tw.ValidateFlexToken(context.Background(), token); err != nil || !id.Valid {
				b.Fatalf("validate: %v %+v", err, id)
			}
		}
	})
	b.Run("route=flex-config", func(b *testing.B) {
		for b.Loop() {
			if resp, body := w.get(sim.AccountSID(), token); resp.StatusCode != http.StatusOK {
				b.Fatalf("GET /flex/config: %d %s", resp.StatusCode, body)
			}
		}
	})
}
