package deploy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// TestOperatorRunsWithChartRBAC installs the chart's ServiceAccount and RBAC (nothing else) and runs
// the operator as that ServiceAccount through API-server impersonation, with leader election and
// secure metrics on, in both modes. It plays a conference recovery end to end and fails on any
// request the API server refused: a rule missing from the chart shows up here, whichever
// controller, cache, event recorder or filter needed it.
func TestOperatorRunsWithChartRBAC(t *testing.T) {
	for _, mode := range []struct {
		name      string
		release   string
		namespace string
		// watched is the namespace of the contact centre; in namespaced mode the only one watched.
		watched    string
		namespaced bool
	}{
		{name: "cluster-wide", release: "flex-operator-cw", namespace: "flex-cw-system", watched: "centre-cluster"},
		{name: "namespaced", release: "flex-operator-ns", namespace: "flex-ns-system", watched: "centre-ns", namespaced: true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			e := environment(t)
			ctx := context.Background()
			// The operator's webhook listens on loopback over http in this test: allowed for local
			// development only, which is what this is.
			set := []string{"webhook.publicURL=" + e.WebhookURL, "webhook.allowInsecurePublicURL=true"}
			if mode.namespaced {
				set = append(set, "watchNamespaces={"+mode.watched+"}")
			}
			objs := templateAs(t, mode.release, mode.namespace, set...)
			sa := mode.release // a release name containing the chart name is the full name
			for _, ns := range []string{mode.namespace, mode.watched} {
				must(t, ignoreExists(e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
			}
			installed := 0
			for _, o := range objs {
				switch o.GetKind() {
				case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
					must(t, e.Client.Create(ctx, o))
					installed++
				}
			}
			t.Logf("installed %d RBAC objects of release %s", installed, mode.release)

			metricsAddr := freeAddr(t)
			operatorAs.Lock()
			operatorAs.user = "system:serviceaccount:" + mode.namespace + ":" + sa
			operatorAs.groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + mode.namespace, "system:authenticated"}
			operatorAs.options = func(o *app.Options) {
				o.LeaderElection, o.LeaderElectionNS, o.LeaderElectionID = true, mode.namespace, "flex-operator.contactcenter.flexoperator.io"
				o.MetricsAddress, o.MetricsSecure = metricsAddr, true
				if mode.namespaced {
					o.WatchNamespaces = []string{mode.watched}
				}
			}
			operatorAs.Unlock()
			forbidden.take()
			must(t, e.StartOperator())
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					must(t, e.StopOperator())
				}
			}
			defer stop()

			// Leader election records its Events through the core API in the operator's namespace.
			must(t, scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
				var evs corev1.EventList
				if err := e.Client.List(ctx, &evs, client.InNamespace(mode.namespace)); err != nil {
					return false, err
				}
				return slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool { return ev.Reason == "LeaderElection" }), nil
			}))

			playRecovery(t, e, mode.watched)
			checkMetricsAccess(t, e, mode.release, mode.namespace, metricsAddr)
			if mode.namespaced {
				checkConfined(t, e, operatorAs.user, mode.watched)
				checkUnwatchedNamespaceUnknown(t, e)
			}
			stop()
			if refused := forbidden.take(); len(refused) > 0 {
				t.Errorf("the API server refused %d of the operator's requests with the chart's RBAC:\n%s", len(refused), strings.Join(refused, "\n"))
			}
		})
	}
}

// playRecovery plays a refresh of the agent's page and its recovery to the end.
func playRecovery(t *testing.T, e *scenario.Env, namespace string) {
	t.Helper()
	ctx := context.Background()
	c, err := e.NewCentre(ctx, scenario.CentreOptions{Name: "rbac", Namespace: namespace, Agents: []string{"alice"}})
	must(t, err)
	_, err = c.WaitPolicyReady(ctx)
	must(t, err)
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "endConferenceOnExit corrected", func(*v1alpha1.ConferenceRecovery) bool {
		leg, ok := c.AgentLeg(call.ConferenceSID, c.Worker("alice"))
		return ok && !leg.EndConferenceOnExit
	})
	must(t, err)
	must(t, e.Sim.RefreshPage(c.Worker("alice")))
	for _, isTask := range []func(twiliosim.TaskState) bool{scenario.IsPingTask, scenario.IsReconnectTask} {
		r, err := c.WaitReservation(ctx, func(task twiliosim.TaskState, r twiliosim.ReservationState) bool {
			return isTask(task) && r.WorkerSID == c.Worker("alice") && r.Status == "pending"
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, e.Sim.Dump())
		}
		must(t, e.Sim.Accept(r.SID))
	}
	rec, err := c.WaitPhase(ctx, call.ConferenceSID, v1alpha1.PhaseRecovered)
	if err != nil {
		t.Fatalf("%v (status %+v)", err, rec)
	}
	// The controllers' own Events (events.k8s.io) reached the API server in the centre's namespace.
	var evs eventsv1.EventList
	must(t, e.Client.List(ctx, &evs, client.InNamespace(namespace)))
	if len(evs.Items) == 0 {
		t.Errorf("no events.k8s.io Event recorded in %s", namespace)
	}
}

// checkMetricsAccess scrapes the HTTPS metrics endpoint: refused without a token and with the
// token of a ServiceAccount that is not bound to the chart's metrics-reader ClusterRole, served
// with one that is.
func checkMetricsAccess(t *testing.T, e *scenario.Env, release, namespace, addr string) {
	t.Helper()
	ctx := context.Background()
	clientset, err := kubernetes.NewForConfig(e.Config)
	must(t, err)
	token := func(name string) string {
		must(t, ignoreExists(e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})))
		tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		must(t, err)
		return tr.Status.Token
	}
	scraper, stranger := token("prometheus"), token("stranger")
	must(t, e.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: release + "-prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: release + "-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: "prometheus"}},
	}))
	// The endpoint's certificate is self-signed (no --metrics-cert-dir); the check here is who
	// may read, not the certificate.
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test endpoint
	scrape := func(token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// The RoleBinding reaches the authorizer's cache shortly after it is written.
	var body string
	must(t, scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		code, b, err := scrape(scraper)
		body = b
		return err == nil && code == http.StatusOK, nil
	}))
	if !strings.Contains(body, "flexoperator_build_info{") {
		t.Error("the metrics lack flexoperator_build_info")
	}
	for name, tok := range map[string]string{"no token": "", "a ServiceAccount without metrics-reader": stranger} {
		code, _, err := scrape(tok)
		if err != nil || (code != http.StatusUnauthorized && code != http.StatusForbidden) {
			t.Errorf("metrics with %s: %d %v, want 401 or 403", name, code, err)
		}
	}
}

// checkConfined asks the API server what the operator's identity may do outside its namespace:
// nothing on Secrets or the operator's kinds.
func checkConfined(t *testing.T, e *scenario.Env, user, watched string) {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(e.Config)
	must(t, err)
	for _, attr := range []authorizationv1.ResourceAttributes{
		{Verb: "list", Resource: "secrets"},
		{Verb: "get", Resource: "secrets", Namespace: "kube-system"},
		{Verb: "list", Group: v1alpha1.GroupVersion.Group, Resource: "conferencerecoverypolicies"},
		{Verb: "list", Group: v1alpha1.GroupVersion.Group, Resource: "conferencerecoveries", Namespace: "default"},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &attr}}
		res, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		must(t, err)
		if res.Status.Allowed {
			where := attr.Namespace
			if where == "" {
				where = "every namespace"
			}
			t.Errorf("namespaced mode (watching %s) still allows %s %s in %s", watched, attr.Verb, attr.Resource, where)
		}
	}
}

// templateAs renders the chart as release name in namespace.
func templateAs(t *testing.T, name, namespace string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, name, namespace, set...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return objs
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// checkUnwatchedNamespaceUnknown: in namespaced mode a request naming a namespace the operator does
// not watch is answered as for a policy that does not exist (403, as a bad signature), not with a
// 503 that would have Event Streams retry what can never land.
func checkUnwatchedNamespaceUnknown(t *testing.T, e *scenario.Env) {
	t.Helper()
	for _, path := range []string{"/twilio/kube-system/voice/conference", "/twilio/kube-system/activity/agents/events"} {
		req, err := http.NewRequest(http.MethodPost, e.WebhookURL+path, strings.NewReader("StatusCallbackEvent=participant-join"))
		must(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// A client of its own: the shared simulator's deliveries for other tests' policies, which
		// this operator does not watch, come from loopback too and fail authentication, spending
		// loopback's budget of failed requests (answered 429 past it).
		req.Header.Set("X-Forwarded-For", "192.0.2.10")
		res, err := http.DefaultClient.Do(req)
		must(t, err)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s (namespace not watched): %d, want 403 as for an unknown policy", path, res.StatusCode)
		}
	}
}
