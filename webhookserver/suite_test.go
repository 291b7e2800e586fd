package webhookserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
	"github.com/flexoperator/flex-operator/webhookserver"
)

var (
	// k8sClient talks to the API server directly (tests set up and inspect objects with it).
	k8sClient client.Client
	// mgr is a manager without controllers: it gives the webhook routes the cached client and
	// API reader they get in the operator.
	mgr manager.Manager
	// sim is the Twilio simulator every test shares; each test builds its own workspace.
	sim *twiliosim.Sim
)

// TestMain stops the test environment if a test started it. The environment (a real
// kube-apiserver and etcd with the project's CRDs, a manager for its cache, and the Twilio
// simulator) starts on first use, so that the unit tests and fuzz targets of this package run
// without it (a fuzz worker would otherwise start its own control plane).
func TestMain(m *testing.M) {
	code := m.Run()
	if stopEnv != nil {
		stopEnv()
	}
	os.Exit(code)
}

var (
	envOnce sync.Once
	envErr  error
	stopEnv func()
)

// setupEnv starts the test environment once; KUBEBUILDER_ASSETS must name the control plane
// binaries (`make test` sets it).
func setupEnv(t testing.TB) {
	t.Helper()
	envOnce.Do(func() { envErr = startEnv() })
	if envErr != nil {
		t.Fatalf("test environment: %v", envErr)
	}
}

func startEnv() error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return fmt.Errorf("client: %w", err)
	}
	// As in main.go (ctrl.GetConfig): no client-side rate limit, the API server's fairness rules.
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.QPS = -1
	mgr, err = ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		_ = env.Stop()
		return fmt.Errorf("manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	sim = twiliosim.New(twiliosim.Options{})
	if err := sim.Start(); err != nil {
		cancel()
		_ = env.Stop()
		return fmt.Errorf("start simulator: %w", err)
	}
	stopEnv = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
		_ = sim.Close()
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	return nil
}

// harness is one test's world: a namespace with a credentials Secret and a
// ConferenceRecoveryPolicy, a contact centre in the simulator whose conference callbacks (and
// optionally legacy TaskRouter callbacks) go to a webhook server of its own, and an operator
// Twilio client.
type harness struct {
	t      testing.TB
	ns     string
	policy *v1alpha1.ConferenceRecoveryPolicy
	cc     *twiliosim.ContactCentre
	twilio twilio.Client
	server *webhookserver.Server
	// base is the server's URL (also its public URL).
	base string
}

type harnessOptions struct {
	// maxBodyBytes caps request bodies (the server default when zero).
	maxBodyBytes int64
	// wrapClient wraps the cached client the routes write with (to inject failures).
	wrapClient func(client.Client) client.Client
	// wrapReader wraps the routes' uncached reader.
	wrapReader func(client.Reader) client.Reader
	// wrapSecrets wraps the reader the credentials provider reads Secrets with.
	wrapSecrets func(client.Reader) client.Reader
	// legacyCallbacks points the workspace's EventCallbackUrl at the taskrouter route.
	legacyCallbacks bool
	// noConferenceCallbacks leaves the workspace's conference callbacks off.
	noConferenceCallbacks bool
	// secretName overrides the Secret the policy names (one that does not exist, say).
	secretName string
	// routes adjusts the routes' options.
	routes func(*webhookserver.RoutesOptions)
	// unlimitedTwilio lifts the operator's Twilio rate limit (a benchmark's setup fetches
	// thousands of tasks).
	unlimitedTwilio bool
}

const policyName = "recovery"

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	setupEnv(t)
	ctx := context.Background()
	h := &harness{t: t, ns: "t-" + rand.String(8)}
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "twilio"},
		StringData: map[string]string{"accountSid": sim.AccountSID(), "authToken": sim.AuthToken()},
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatalf("create Secret: %v", err)
	}

	addr := freeAddr(t)
	h.base = "http://" + addr
	s, err := webhookserver.New(webhookserver.Options{BindAddress: addr, PublicURL: h.base, MaxBodyBytes: o.maxBodyBytes},
		mgr.GetCache().WaitForCacheSync)
	if err != nil {
		t.Fatal(err)
	}
	provider := &credentials.Provider{Metadata: mgr.GetClient(), Data: mgr.GetAPIReader(), BaseURL: sim.URL(),
		Options: []twilio.Option{twilio.WithRetry(2, time.Millisecond, 10*time.Millisecond)}}
	if o.wrapSecrets != nil {
		provider.Data = o.wrapSecrets(provider.Data)
	}
	if o.unlimitedTwilio {
		provider.New = func(cfg twilio.Config, opts ...twilio.Option) (twilio.Client, error) {
			cfg.Rate = -1
			return twilio.New(cfg, opts...)
		}
	}
	ropts := webhookserver.RoutesOptions{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Credentials: provider, Now: sim.Now}
	if o.wrapClient != nil {
		ropts.Client = o.wrapClient(ropts.Client)
	}
	if o.wrapReader != nil {
		ropts.APIReader = o.wrapReader(ropts.APIReader)
	}
	if o.routes != nil {
		o.routes(&ropts)
	}
	routes, err := webhookserver.NewRoutes(ropts)
	if err != nil {
		t.Fatal(err)
	}
	routes.Register(s)
	h.server = s
	srvCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- s.Start(srvCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-stopped; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	eventually(t, 10*time.Second, func() error {
		if !s.Ready() {
			return fmt.Errorf("webhook server not ready")
		}
		return nil
	})

	// The policy exists (and is cached) before the workspace does, so that no webhook the
	// workspace sends finds no policy; its workspace is filled in once built.
	secretName := secret.Name
	if o.secretName != "" {
		secretName = o.secretName
	}
	h.policy = &v1alpha1.ConferenceRecoveryPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: policyName},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{
			Twilio: v1alpha1.TwilioSpec{
				CredentialsSecretRef: v1alpha1.SecretReference{Name: secretName},
				WorkspaceSID:         newSID("WS"),
			},
			ProtectedWorkflowSIDs: []string{newSID("WW")},
		},
	}
	if err := k8sClient.Create(ctx, h.policy); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	h.waitCached(h.policy)

	spec := contactCentre(t.Name())
	if o.legacyCallbacks {
		spec.EventCallbackURL = h.url("taskrouter")
	}
	h.cc, err = sim.BuildContactCentre(spec)
	if err != nil {
		t.Fatalf("build contact centre: %v", err)
	}
	h.policy.Spec.Twilio.WorkspaceSID = h.cc.WorkspaceSID
	h.policy.Spec.ProtectedWorkflowSIDs = []string{h.cc.Workflows["Voice"]}
	if err := k8sClient.Update(ctx, h.policy); err != nil {
		t.Fatalf("update policy: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		var cached v1alpha1.ConferenceRecoveryPolicy
		if err := mgr.GetClient().Get(ctx, client.ObjectKeyFromObject(h.policy), &cached); err != nil {
			return err
		}
		if cached.Spec.Twilio.WorkspaceSID != h.cc.WorkspaceSID {
			return fmt.Errorf("the cache has the policy without its workspace")
		}
		return nil
	})
	if !o.noConferenceCallbacks {
		if err := sim.SetWorkspaceConferenceCallback(h.cc.WorkspaceSID, h.url("conference")); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Conferences of this workspace call nobody once the test is over.
		_ = sim.SetWorkspaceConferenceCallback(h.cc.WorkspaceSID, "")
	})
	h.twilio, err = twilio.New(twilio.Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), Rate: -1},
		twilio.WithRetry(2, time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// contactCentre is two agents, a queue for everyone, the protected "Voice" workflow, an
// unprotected "Other" one, a "Ping" workflow routing to the disconnected agent and a "Nowhere"
// workflow whose queue nobody serves.
func contactCentre(name string) twiliosim.ContactCentreSpec {
	toQueue := func(queue string) map[string]any {
		return map[string]any{"task_routing": map[string]any{"filters": []any{}, "default_filter": map[string]any{"queue": queue}}}
	}
	return twiliosim.ContactCentreSpec{
		Name:    name,
		Workers: []twiliosim.WorkerSpec{{Name: "alice"}, {Name: "bob"}},
		Queues:  []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}, {Name: "Nobody", TargetWorkers: "1==2"}},
		Workflows: []twiliosim.WorkflowSpec{
			{Name: "Voice", Configuration: toQueue("Everyone")},
			{Name: "Other", Configuration: toQueue("Everyone")},
			{Name: "Nowhere", Configuration: toQueue("Nobody")},
			{Name: "Ping", Configuration: map[string]any{"task_routing": map[string]any{
				"filters": []any{map[string]any{
					"expression": "disconnectedWorkerSid != null",
					"targets":    []any{map[string]any{"queue": "Everyone", "known_worker_sid": "task.disconnectedWorkerSid"}},
				}},
				"default_filter": map[string]any{"queue": "Everyone"},
			}}},
		},
	}
}

// url is the webhook URL of one of the policy's Twilio routes.
func (h *harness) url(route string) string {
	return h.base + "/twilio/" + h.ns + "/" + policyName + "/" + route
}

// waitCached waits until the manager's cache has obj, as the webhook reads policies from it.
func (h *harness) waitCached(obj client.Object) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() error {
		return mgr.GetClient().Get(context.Background(), client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object))
	})
}

// recovery reads the ConferenceRecovery of a conference from the API server; nil when there is none.
func (h *harness) recovery(conferenceSID string) *v1alpha1.ConferenceRecovery {
	h.t.Helper()
	var rec v1alpha1.ConferenceRecovery
	err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: strings.ToLower(conferenceSID)}, &rec)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		h.t.Fatalf("get recovery: %v", err)
	}
	return &rec
}

// disconnect records on the conference's recovery, as the controller does when it detects the
// drop, that agentLeg dropped: ping and reconnect events count only for the current incident.
func (h *harness) disconnect(conferenceSID, agentLeg string) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() error {
		rec := h.recovery(conferenceSID)
		if rec == nil {
			return fmt.Errorf("no recovery for %s", conferenceSID)
		}
		rec.Status.Disconnect = &v1alpha1.DisconnectStatus{CallSID: agentLeg, At: metav1.NewTime(sim.Now().Truncate(time.Second))}
		return k8sClient.Status().Update(context.Background(), rec)
	})
}

// incidentAttrs are the attributes of the incident's ping or reconnect task, as the controller
// builds them.
func incidentAttrs(role recovery.TaskRole, conferenceSID, agentLeg string, more map[string]any) map[string]any {
	attrs := map[string]any{recovery.MarkerAttribute: recovery.Marker{Role: role, ConferenceSID: conferenceSID, DisconnectedCallSID: agentLeg}.Value()}
	for k, v := range more {
		attrs[k] = v
	}
	return attrs
}

// waitRecovery polls the conference's recovery until cond accepts it.
func (h *harness) waitRecovery(conferenceSID string, cond func(*v1alpha1.ConferenceRecovery) error) *v1alpha1.ConferenceRecovery {
	h.t.Helper()
	var rec *v1alpha1.ConferenceRecovery
	eventually(h.t, 15*time.Second, func() error {
		rec = h.recovery(conferenceSID)
		if rec == nil {
			return fmt.Errorf("no recovery for %s", conferenceSID)
		}
		return cond(rec)
	})
	return rec
}

// waitDelivered waits until the simulator has nothing pending for the destination key and
// checks that nothing was dropped.
func (h *harness) waitDelivered(key string) twiliosim.DestinationStats {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sim.WaitDeliveriesFunc(ctx, func(st twiliosim.DeliveryStats) bool {
		d := st.Destination(key)
		return d.Attempts > 0 && d.Pending == 0
	}); err != nil {
		h.t.Fatalf("deliveries to %s: %v\n%+v", key, err, sim.Deliveries().Destination(key))
	}
	d := sim.Deliveries().Destination(key)
	if d.Dropped > 0 {
		h.t.Fatalf("%d webhooks to %s were dropped (last status %d %s)", d.Dropped, key, d.LastStatus, d.LastError)
	}
	return d
}

// call places a call on the workflow and has whoever is offered it accept; it returns the task,
// the customer's call, the conference and the reservation.
func (h *harness) call(workflow string) (placed twiliosim.PlacedCall, conferenceSID string, res twiliosim.ReservationState) {
	h.t.Helper()
	placed, err := sim.PlaceCall("+15550001111", h.cc.Workflows[workflow], map[string]any{"type": "inbound"})
	if err != nil {
		h.t.Fatalf("place call: %v", err)
	}
	res = h.accept(placed.TaskSID)
	task, ok := sim.Snapshot().Task(placed.TaskSID)
	if !ok || task.ConferenceSID == "" {
		h.t.Fatalf("task %s has no conference after accept:\n%s", placed.TaskSID, sim.Dump())
	}
	return placed, task.ConferenceSID, res
}

// accept has the worker offered the task accept it.
func (h *harness) accept(taskSID string) twiliosim.ReservationState {
	h.t.Helper()
	for _, r := range sim.Snapshot().Reservations(taskSID) {
		if r.Status == "pending" {
			if err := sim.Accept(r.SID); err != nil {
				h.t.Fatalf("accept %s: %v", r.SID, err)
			}
			for _, accepted := range sim.Snapshot().Reservations(taskSID) {
				if accepted.SID == r.SID {
					return accepted
				}
			}
		}
	}
	h.t.Fatalf("task %s has no pending reservation:\n%s", taskSID, sim.Dump())
	return twiliosim.ReservationState{}
}

// post sends a request to the server and returns the status code.
func (h *harness) post(path, contentType, body string, header http.Header) int {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	return resp.StatusCode
}

// postSignedForm posts a form to one of the policy's routes, signed as Twilio signs it.
func (h *harness) postSignedForm(route string, form url.Values) int {
	h.t.Helper()
	target := h.url(route)
	return h.post(strings.TrimPrefix(target, h.base), "application/x-www-form-urlencoded", form.Encode(),
		http.Header{"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), target, form)}})
}

// postSignedJSON posts a JSON body to one of the policy's routes, signed as Event Streams signs it.
func (h *harness) postSignedJSON(route, body string) int {
	h.t.Helper()
	target := events.BodySHA256URL(h.url(route), []byte(body))
	return h.post(strings.TrimPrefix(target, h.base), "application/json", body,
		http.Header{"X-Twilio-Signature": {events.SignJSON(sim.AuthToken(), target)}})
}

// conferenceForm is a conference status callback as Twilio sends it.
func conferenceForm(conferenceSID, taskSID string, seq int, at time.Time, event, callSID, label string) url.Values {
	f := url.Values{
		"AccountSid": {sim.AccountSID()}, "ConferenceSid": {conferenceSID}, "FriendlyName": {taskSID},
		"SequenceNumber": {strconv.Itoa(seq)}, "Timestamp": {at.UTC().Format(time.RFC1123Z)},
		"StatusCallbackEvent": {event},
	}
	if callSID != "" {
		f.Set("CallSid", callSID)
		f.Set("Muted", "false")
		f.Set("Hold", "false")
		f.Set("Coaching", "false")
		f.Set("EndConferenceOnExit", "false")
		f.Set("StartConferenceOnEnter", "true")
	}
	if label != "" {
		f.Set("ParticipantLabel", label)
	}
	return f
}

// newSID makes a random SID with the prefix.
func newSID(prefix string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i := range b {
		b[i] = hex[rand.Intn(16)]
	}
	return prefix + string(b)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
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
		time.Sleep(20 * time.Millisecond)
	}
}

// participant finds a leg in a recovery.
func participant(rec *v1alpha1.ConferenceRecovery, callSID string) (v1alpha1.ParticipantStatus, bool) {
	for _, p := range rec.Status.Participants {
		if p.CallSID == callSID {
			return p, true
		}
	}
	return v1alpha1.ParticipantStatus{}, false
}
