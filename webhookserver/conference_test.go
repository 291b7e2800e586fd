package webhookserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// TestConferenceCallbacksRecordTheCall drives a real call through the simulator: its signed
// conference callbacks create the ConferenceRecovery and record the legs, a page refresh, and a
// warm transfer's second agent with the worker the task's conference.participants names.
func TestConferenceCallbacksRecordTheCall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	placed, conferenceSID, agent := h.call("Voice")

	rec := h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		customer, ok := participant(rec, placed.CallSID)
		if !ok || customer.Role != v1alpha1.RoleCustomer || customer.JoinedAt == nil {
			return fmt.Errorf("customer leg not recorded: %+v", rec.Status.Participants)
		}
		leg, ok := participant(rec, agent.CallSID)
		if !ok || leg.Role != v1alpha1.RoleAgent || leg.JoinedAt == nil || leg.LeftAt != nil {
			return fmt.Errorf("agent leg not recorded: %+v", rec.Status.Participants)
		}
		if rec.Status.CustomerCallSID != placed.CallSID {
			return fmt.Errorf("customerCallSid %q", rec.Status.CustomerCallSID)
		}
		return nil
	})
	want := v1alpha1.ConferenceRecoverySpec{PolicyName: policyName, ConferenceSID: conferenceSID,
		TaskSID: placed.TaskSID, WorkflowSID: h.cc.Workflows["Voice"]}
	if rec.Spec != want {
		t.Errorf("spec = %+v, want %+v", rec.Spec, want)
	}
	if rec.Labels[v1alpha1.PolicyLabel] != policyName || rec.Labels[v1alpha1.PhaseLabel] != string(v1alpha1.PhaseMonitoring) {
		t.Errorf("labels = %v", rec.Labels)
	}
	if len(rec.OwnerReferences) != 0 {
		t.Errorf("owner references = %v, want none", rec.OwnerReferences)
	}

	// A warm transfer: the second agent's leg is labelled "worker-2"; the task's
	// conference.participants keys it by the worker's SID.
	other := h.cc.Workers["bob"]
	if agent.WorkerSID == other {
		other = h.cc.Workers["alice"]
	}
	offer, err := sim.WarmTransfer(agent.WorkerSID, other)
	if err != nil {
		t.Fatalf("warm transfer: %v", err)
	}
	if err := sim.Accept(offer); err != nil {
		t.Fatalf("accept transfer: %v", err)
	}
	var secondLeg string
	for _, r := range sim.Snapshot().Reservations(placed.TaskSID) {
		if r.SID == offer {
			secondLeg = r.CallSID
		}
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		leg, ok := participant(rec, secondLeg)
		if !ok || leg.Role != v1alpha1.RoleAgent || leg.WorkerSID != other {
			return fmt.Errorf("second agent leg %s not recorded with worker %s: %+v", secondLeg, other, rec.Status.Participants)
		}
		return nil
	})

	// The first agent's page reloads: their leg leaves with participant_hung_up, not graceful.
	if err := sim.RefreshPage(agent.WorkerSID); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		leg, _ := participant(rec, agent.CallSID)
		if leg.LeftAt == nil || leg.LeaveReason != "participant_hung_up" || leg.Graceful {
			return fmt.Errorf("agent leave not recorded: %+v", leg)
		}
		return nil
	})
	stats := h.waitDelivered("callback:" + h.url("conference"))
	final := h.recovery(conferenceSID)
	if got := sim.Snapshot(); true {
		conf, _ := got.Conference(conferenceSID)
		if final.Status.LastSequenceNumber != int64(conf.Sequence) {
			t.Errorf("lastSequenceNumber = %d, want %d (every callback applied)", final.Status.LastSequenceNumber, conf.Sequence)
		}
	}
	if stats.Delivered == 0 {
		t.Errorf("no callback delivered: %+v", stats)
	}
}

// TestUnprotectedConferenceIsAcknowledged checks that a call on a workflow the policy does not
// protect gets every callback answered 2xx and no recovery.
func TestUnprotectedConferenceIsAcknowledged(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ignoredBefore := webhookserver.EventsTotal("conference", events.ParticipantJoin, "ignored")
	_, conferenceSID, _ := h.call("Other")
	stats := h.waitDelivered("callback:" + h.url("conference"))
	if stats.Delivered == 0 {
		t.Fatalf("nothing delivered: %+v", stats)
	}
	if rec := h.recovery(conferenceSID); rec != nil {
		t.Errorf("unprotected conference got a recovery: %+v", rec.Spec)
	}
	if got := webhookserver.EventsTotal("conference", events.ParticipantJoin, "ignored") - ignoredBefore; got < 2 {
		t.Errorf("ignored joins counted %v, want at least 2", got)
	}
}

// TestSignatures checks that only requests signed with the policy's auth token over its public
// URL are believed, and that nothing is stored for the others.
func TestSignatures(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	placed, err := sim.PlaceCall("+15550002222", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	form := conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")
	path := strings.TrimPrefix(h.url("conference"), h.base)
	const formType = "application/x-www-form-urlencoded"
	failuresBefore := webhookserver.SignatureFailures("conference")
	forbiddenBefore := webhookserver.RequestsTotal("conference", "403")

	bad := map[string]http.Header{
		"missing":          nil,
		"wrong token":      {"X-Twilio-Signature": {events.SignForm("0123456789abcdef0123456789abcdef", h.url("conference"), form)}},
		"other host":       {"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), "http://attacker.example.com"+path, form)}},
		"other body":       {"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), h.url("conference"), conferenceForm(conferenceSID, placed.TaskSID, 2, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer"))}},
		"form signed JSON": {"X-Twilio-Signature": {events.SignJSON(sim.AuthToken(), h.url("conference"))}},
	}
	for name, header := range bad {
		if got := h.post(path, formType, form.Encode(), header); got != http.StatusForbidden {
			t.Errorf("%s signature: status %d, want 403", name, got)
		}
	}
	if got := webhookserver.SignatureFailures("conference") - failuresBefore; got != float64(len(bad)) {
		t.Errorf("signature failures counted %v, want %d", got, len(bad))
	}
	if got := webhookserver.RequestsTotal("conference", "403") - forbiddenBefore; got != float64(len(bad)) {
		t.Errorf("403 answers counted %v, want %d", got, len(bad))
	}
	if got := h.post("/twilio/"+h.ns+"/no-such-policy/conference", formType, form.Encode(),
		http.Header{"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), h.base+"/twilio/"+h.ns+"/no-such-policy/conference", form)}}); got != http.StatusForbidden {
		t.Errorf("unknown policy: status %d, want 403, as for a bad signature (existence must not leak)", got)
	}
	if rec := h.recovery(conferenceSID); rec != nil {
		t.Fatalf("a refused request stored a recovery: %+v", rec.Status)
	}

	if got := h.postSignedForm("conference", form); got != http.StatusOK {
		t.Fatalf("signed callback: status %d, want 200", got)
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("customer leg missing")
		}
		return nil
	})

	// The policy's public URL (behind an ingress with a path prefix) wins over the server's.
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(h.policy), &policy); err != nil {
		t.Fatal(err)
	}
	policy.Spec.PublicBaseURL = "https://flex.example.com/ops/"
	if err := k8sClient.Update(context.Background(), &policy); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		var cached v1alpha1.ConferenceRecoveryPolicy
		if err := mgr.GetClient().Get(context.Background(), client.ObjectKeyFromObject(h.policy), &cached); err != nil {
			return err
		}
		if cached.Spec.PublicBaseURL == "" {
			return errors.New("cache has the old policy")
		}
		return nil
	})
	next := conferenceForm(conferenceSID, placed.TaskSID, 2, sim.Now(), events.ParticipantHold, placed.CallSID, "customer")
	if got := h.post(path, formType, next.Encode(), http.Header{"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), h.url("conference"), next)}}); got != http.StatusForbidden {
		t.Errorf("signed over the server's URL after the policy set its own: status %d, want 403", got)
	}
	if got := h.post(path, formType, next.Encode(), http.Header{"X-Twilio-Signature": {events.SignForm(sim.AuthToken(), "https://flex.example.com/ops"+path, next)}}); got != http.StatusOK {
		t.Errorf("signed over the policy's URL: status %d, want 200", got)
	}
}

// TestFailedAuthenticationsAreBoundedPerClient is defect 7 of issue 9: a client that keeps failing
// authentication is answered 429, while other clients (Twilio) are served. And a signed request
// from that same address is served too: Twilio sends from shared addresses, behind an Ingress
// all senders may look alike, and a conference callback is sent once (seen in CI: a deleted
// policy's deliveries spent loopback's budget and a recovery's callback was answered 429).
func TestFailedAuthenticationsAreBoundedPerClient(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, routes: func(o *webhookserver.RoutesOptions) {
		o.AuthFailureRate, o.AuthFailureBurst = 0.001, 3
	}})
	placed, err := sim.PlaceCall("+15550006666", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	form := conferenceForm(newSID("CF"), placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")
	const formType = "application/x-www-form-urlencoded"
	attacker := http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Twilio-Signature": {"bm90IGEgc2lnbmF0dXJl"}}
	for i, want := range []int{http.StatusForbidden, http.StatusForbidden, http.StatusForbidden, http.StatusTooManyRequests} {
		if got := h.post("/twilio/"+h.ns+"/"+policyName+"/conference", formType, form.Encode(), attacker); got != want {
			t.Errorf("bad request %d: status %d, want %d", i, got, want)
		}
	}
	// Unknown policies spend the same budget and get the same answer.
	if got := h.post("/twilio/"+h.ns+"/no-such-policy/conference", formType, form.Encode(), attacker); got != http.StatusTooManyRequests {
		t.Errorf("unknown policy from the same client: %d, want 429", got)
	}
	if got := h.postSignedForm("conference", form); got != http.StatusOK {
		t.Errorf("Twilio's signed callback while another client is refused: %d, want 200", got)
	}
	sameAddress := func(signature string) http.Header {
		return http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Twilio-Signature": {signature}}
	}
	next := conferenceForm(form.Get("ConferenceSid"), placed.TaskSID, 2, sim.Now(), events.ParticipantHold, placed.CallSID, "customer")
	if got := h.post("/twilio/"+h.ns+"/"+policyName+"/conference", formType, next.Encode(),
		sameAddress(events.SignForm(sim.AuthToken(), h.url("conference"), next))); got != http.StatusOK {
		t.Errorf("a signed callback from the refused client's address: %d, want 200", got)
	}
	body := `[]`
	target := events.BodySHA256URL(h.url("events"), []byte(body))
	if got := h.post(strings.TrimPrefix(target, h.base), "application/json", body,
		sameAddress(events.SignJSON(sim.AuthToken(), target))); got != http.StatusOK {
		t.Errorf("a signed Event Streams delivery from the refused client's address: %d, want 200", got)
	}
	// Still refused: a bad signature from that address.
	if got := h.post("/twilio/"+h.ns+"/"+policyName+"/conference", formType, next.Encode(), attacker); got != http.StatusTooManyRequests {
		t.Errorf("bad request after the signed ones: %d, want 429", got)
	}
}

// TestUnusableCredentialsAnswer503 checks that a policy whose Secret is missing gets 503 (Twilio
// retries), never a 4xx that would make Event Streams discard a valid event.
func TestUnusableCredentialsAnswer503(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, secretName: "missing"})
	form := conferenceForm(newSID("CF"), newSID("WT"), 1, sim.Now(), events.ConferenceStart, "", "")
	if got := h.postSignedForm("conference", form); got != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", got)
	}
	if got := h.postSignedJSON("events", "[]"); got != http.StatusServiceUnavailable {
		t.Errorf("events: status %d, want 503", got)
	}
}

// TestBodyCap checks that a body over the cap gets 413 and stores nothing.
func TestBodyCap(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, maxBodyBytes: 1024})
	placed, err := sim.PlaceCall("+15550003333", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	form := conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")
	form.Set("Padding", strings.Repeat("x", 2048))
	if got := h.postSignedForm("conference", form); got != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", got)
	}
	if got := h.postSignedJSON("events", "["+strings.Repeat(" ", 2048)+"]"); got != http.StatusRequestEntityTooLarge {
		t.Errorf("events: status %d, want 413", got)
	}
	if rec := h.recovery(conferenceSID); rec != nil {
		t.Errorf("an oversized request stored a recovery")
	}
}

// TestDuplicatesAndReordering sends one conference's callbacks out of order and twice: a
// duplicate is acknowledged without a write, and the status ends as if they came in order.
func TestDuplicatesAndReordering(t *testing.T) {
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true})
	placed, err := sim.PlaceCall("+15550004444", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID, agentLeg := newSID("CF"), newSID("CA")
	t0 := sim.Now()
	join := conferenceForm(conferenceSID, placed.TaskSID, 2, t0.Add(time.Second), events.ParticipantJoin, agentLeg, "worker")
	leave := conferenceForm(conferenceSID, placed.TaskSID, 3, t0.Add(2*time.Second), events.ParticipantLeave, agentLeg, "worker")
	leave.Set("ReasonParticipantLeft", "participant_hung_up")
	for i, form := range []url.Values{
		conferenceForm(conferenceSID, placed.TaskSID, 1, t0, events.ParticipantJoin, placed.CallSID, "customer"),
		leave, // before its join
		join,
	} {
		if got := h.postSignedForm("conference", form); got != http.StatusOK {
			t.Fatalf("callback %d: status %d", i, got)
		}
	}
	before := h.recovery(conferenceSID)
	dupsBefore := webhookserver.DuplicatesTotal("conference")
	if got := h.postSignedForm("conference", join); got != http.StatusOK {
		t.Fatalf("duplicate: status %d, want 200", got)
	}
	if got := webhookserver.DuplicatesTotal("conference") - dupsBefore; got != 1 {
		t.Errorf("duplicates counted %v, want 1", got)
	}
	after := h.recovery(conferenceSID)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a duplicate was written (resourceVersion %s → %s)", before.ResourceVersion, after.ResourceVersion)
	}
	leg, _ := participant(after, agentLeg)
	if leg.JoinedAt == nil || leg.LeftAt == nil || leg.LeaveReason != "participant_hung_up" || leg.Role != v1alpha1.RoleAgent {
		t.Errorf("agent leg = %+v, want joined then left", leg)
	}
	if after.Status.LastSequenceNumber != 3 || after.Status.CustomerCallSID != placed.CallSID {
		t.Errorf("status = %+v", after.Status)
	}
}

// TestSimulatorDuplicatesAndReordering runs a call with the simulator duplicating and
// reordering every webhook: the recovery ends as it would without the faults.
func TestSimulatorDuplicatesAndReordering(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	sim.SetFaults(twiliosim.Faults{DuplicateDeliveries: true, ReorderDeliveries: true})
	t.Cleanup(func() { sim.SetFaults(twiliosim.Faults{}) })
	dupsBefore := webhookserver.DuplicatesTotal("conference")
	placed, conferenceSID, agent := h.call("Voice")
	if err := sim.RefreshPage(agent.WorkerSID); err != nil {
		t.Fatal(err)
	}
	stats := h.waitDelivered("callback:" + h.url("conference"))
	if stats.Duplicates == 0 {
		t.Fatalf("the simulator sent no duplicates: %+v", stats)
	}
	rec := h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		leg, _ := participant(rec, agent.CallSID)
		if leg.LeftAt == nil || leg.JoinedAt == nil {
			return fmt.Errorf("agent leg %+v", leg)
		}
		return nil
	})
	if customer, _ := participant(rec, placed.CallSID); customer.JoinedAt == nil || customer.Role != v1alpha1.RoleCustomer {
		t.Errorf("customer leg %+v", customer)
	}
	conf, _ := sim.Snapshot().Conference(conferenceSID)
	if rec.Status.LastSequenceNumber != int64(conf.Sequence) {
		t.Errorf("lastSequenceNumber %d, want %d", rec.Status.LastSequenceNumber, conf.Sequence)
	}
	if got := webhookserver.DuplicatesTotal("conference") - dupsBefore; got < float64(stats.Duplicates) {
		t.Errorf("duplicates counted %v, want at least %d", got, stats.Duplicates)
	}
}

// noWatch makes the manager's client a client.WithWatch, which interceptor wraps; the routes never
// watch.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not used")
}

// failingWrites wraps a client so that creates and status updates of ConferenceRecovery fail
// while fail() says so, as they would with the API server down.
func failingWrites(fail func() bool) func(client.Client) client.Client {
	unavailable := apierrors.NewServiceUnavailable("injected failure")
	return func(c client.Client) client.Client {
		return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*v1alpha1.ConferenceRecovery); ok && fail() {
					return unavailable
				}
				return c.Create(ctx, obj, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if fail() {
					return unavailable
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		})
	}
}

// TestStoreFailureAnswers5xxAndTheRetryIsProcessed checks that an event that cannot be stored
// within the request's budget gets 503 and is not then dropped as a duplicate when it comes again
// (another delivery of the same callback).
func TestStoreFailureAnswers5xxAndTheRetryIsProcessed(t *testing.T) {
	var failing atomic.Bool
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, wrapClient: failingWrites(failing.Load), routes: shortBudget})
	warmRecoveryCache(t)
	placed, err := sim.PlaceCall("+15550005555", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	join := conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")
	failing.Store(true)
	if got := h.postSignedForm("conference", join); got != http.StatusServiceUnavailable {
		t.Fatalf("while the store fails: status %d, want 503", got)
	}
	if rec := h.recovery(conferenceSID); rec != nil {
		t.Fatalf("recovery created although the write failed")
	}
	failing.Store(false)
	if got := h.postSignedForm("conference", join); got != http.StatusOK {
		t.Fatalf("retry: status %d, want 200", got)
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("the retried event was not applied")
		}
		return nil
	})

	// A status write failing after the create: 503, then the retry lands.
	leave := conferenceForm(conferenceSID, placed.TaskSID, 2, sim.Now(), events.ParticipantLeave, placed.CallSID, "customer")
	failing.Store(true)
	if got := h.postSignedForm("conference", leave); got != http.StatusServiceUnavailable {
		t.Fatalf("status write failing: %d, want 503", got)
	}
	failing.Store(false)
	if got := h.postSignedForm("conference", leave); got != http.StatusOK {
		t.Fatalf("retry: status %d, want 200", got)
	}
	if leg, _ := participant(h.recovery(conferenceSID), placed.CallSID); leg.LeftAt == nil {
		t.Errorf("the retried leave was not applied: %+v", leg)
	}
}

// shortBudget makes a request wait 500ms for its event to be stored (instead of 4 s), for tests
// that keep the store failing until the answer is 503. Such a test first reads a recovery through
// the manager's cache (warmRecoveryCache), so that the budget is not spent starting its informer.
func shortBudget(o *webhookserver.RoutesOptions) { o.HandlerTimeout = 500 * time.Millisecond }

// warmRecoveryCache starts the manager cache's ConferenceRecovery informer, if no test has yet.
func warmRecoveryCache(t *testing.T) {
	t.Helper()
	err := mgr.GetClient().Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "warm-up"}, &v1alpha1.ConferenceRecovery{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// failingReader is a client.Reader whose reads fail while fail() says so.
type failingReader struct {
	client.Reader
	fail func() bool
}

func (r failingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.fail() {
		return apierrors.NewServiceUnavailable("injected read failure")
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestConflictThatCannotBeResolved checks that a write conflict whose re-read fails answers 503
// without claiming the event was stored, and that the retry is then applied.
func TestConflictThatCannotBeResolved(t *testing.T) {
	var broken atomic.Bool
	conflicting := func(c client.Client) client.Client {
		return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if broken.Load() {
					return apierrors.NewConflict(v1alpha1.GroupVersion.WithResource("conferencerecoveries").GroupResource(), obj.GetName(), errors.New("injected conflict"))
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		})
	}
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, wrapClient: conflicting, routes: shortBudget,
		wrapReader: func(r client.Reader) client.Reader { return failingReader{Reader: r, fail: broken.Load} }})
	warmRecoveryCache(t)
	placed, err := sim.PlaceCall("+15550008888", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	if got := h.postSignedForm("conference", conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ParticipantJoin, placed.CallSID, "customer")); got != http.StatusOK {
		t.Fatalf("first callback: %d", got)
	}
	hold := conferenceForm(conferenceSID, placed.TaskSID, 2, sim.Now(), events.ParticipantHold, placed.CallSID, "customer")
	storedBefore := webhookserver.EventsTotal("conference", events.ParticipantHold, "stored")
	broken.Store(true)
	if got := h.postSignedForm("conference", hold); got != http.StatusServiceUnavailable {
		t.Fatalf("conflict with a failing re-read: %d, want 503", got)
	}
	if got := webhookserver.EventsTotal("conference", events.ParticipantHold, "stored") - storedBefore; got != 0 {
		t.Errorf("the unwritten event was counted stored %v times", got)
	}
	broken.Store(false)
	if got := h.postSignedForm("conference", hold); got != http.StatusOK {
		t.Fatalf("retry: %d", got)
	}
	if rec := h.recovery(conferenceSID); rec.Status.LastSequenceNumber != 2 {
		t.Errorf("lastSequenceNumber %d after the retry, want 2", rec.Status.LastSequenceNumber)
	}
}

// TestStoreFailuresOutlastedInProcess lets the first writes (the create among them) fail while the
// simulator delivers a real call's callbacks, each once as Twilio does: the store tries them again
// in-process, so every callback is answered 200 and applied without a redelivery.
func TestStoreFailuresOutlastedInProcess(t *testing.T) {
	var failures atomic.Int32
	failures.Store(3)
	retriesBefore := webhookserver.StoreRetriesTotal()
	h := newHarness(t, harnessOptions{wrapClient: failingWrites(func() bool { return failures.Add(-1) >= 0 })})
	placed, conferenceSID, agent := h.call("Voice")
	stats := h.waitDelivered("callback:" + h.url("conference")) // fails the test on a dropped callback
	if stats.Retries != 0 || stats.Attempts != stats.Delivered {
		t.Errorf("the simulator delivered a callback more than once: %+v", stats)
	}
	rec := h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("customer leg missing")
		}
		if _, ok := participant(rec, agent.CallSID); !ok {
			return errors.New("agent leg missing")
		}
		return nil
	})
	if failures.Load() >= 0 {
		t.Fatalf("the injected write failures were not all used (%d left): the test proves nothing", failures.Load()+1)
	}
	if got := webhookserver.StoreRetriesTotal() - retriesBefore; got < 3 {
		t.Errorf("store retries counted %v, want at least one per injected failure (3)", got)
	}
	conf, _ := sim.Snapshot().Conference(conferenceSID)
	if rec.Status.LastSequenceNumber != int64(conf.Sequence) {
		t.Errorf("lastSequenceNumber %d, want %d", rec.Status.LastSequenceNumber, conf.Sequence)
	}
}

// TestSecretReadFailureOutlastedInProcess fails the first reads of the policy's Secret (the API
// server not answering) as a call's callbacks arrive, each once: the request tries again within its
// budget, so every callback is authenticated, answered 200 and applied.
func TestSecretReadFailureOutlastedInProcess(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	h := newHarness(t, harnessOptions{wrapSecrets: func(r client.Reader) client.Reader {
		return failingReader{Reader: r, fail: func() bool { return failures.Add(-1) >= 0 }}
	}})
	placed, conferenceSID, _ := h.call("Voice")
	stats := h.waitDelivered("callback:" + h.url("conference")) // fails the test on a dropped callback
	if stats.Retries != 0 || stats.Attempts != stats.Delivered {
		t.Errorf("the simulator delivered a callback more than once: %+v", stats)
	}
	if failures.Load() >= 0 {
		t.Fatalf("the injected Secret read failures were not all used (%d left): the test proves nothing", failures.Load()+1)
	}
	h.waitRecovery(conferenceSID, func(rec *v1alpha1.ConferenceRecovery) error {
		if _, ok := participant(rec, placed.CallSID); !ok {
			return errors.New("customer leg missing")
		}
		return nil
	})
}

// TestConcurrentCallbacksOfOneConference posts many callbacks of one conference at once while
// another writer (standing in for the controller) keeps updating the same status: no update is
// lost on either side, and the callbacks share status writes.
func TestConcurrentCallbacksOfOneConference(t *testing.T) {
	var writes atomic.Int32
	countWrites := func(c client.Client) client.Client {
		return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				err := c.SubResource(sub).Update(ctx, obj, opts...)
				if err == nil {
					writes.Add(1)
				}
				return err
			},
		})
	}
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, wrapClient: countWrites})
	placed, err := sim.PlaceCall("+15550006666", h.cc.Workflows["Voice"], nil)
	if err != nil {
		t.Fatal(err)
	}
	conferenceSID := newSID("CF")
	if got := h.postSignedForm("conference", conferenceForm(conferenceSID, placed.TaskSID, 1, sim.Now(), events.ConferenceStart, "", "")); got != http.StatusOK {
		t.Fatalf("conference-start: %d", got)
	}
	h.waitRecovery(conferenceSID, func(*v1alpha1.ConferenceRecovery) error { return nil })
	writes.Store(0)

	// The "controller": writes its own status field, then waits for the webhook to write before
	// writing again, until the callbacks are in.
	stop := make(chan struct{})
	var controllerWrites atomic.Int32
	controllerDone := make(chan struct{})
	go func() {
		defer close(controllerDone)
		for i := 0; ; i++ {
			rec := h.recovery(conferenceSID)
			rec.Status.Message = fmt.Sprintf("controller %d", i)
			if err := k8sClient.Status().Update(context.Background(), rec); err != nil {
				continue // a conflict with the webhook: read again
			}
			controllerWrites.Add(1)
			for h.recovery(conferenceSID).ResourceVersion == rec.ResourceVersion {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond): // polling for the webhook's next write
				}
			}
		}
	}()

	const legs = 40
	callSIDs := make([]string, legs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, legs)
	for i := range legs {
		callSIDs[i] = newSID("CA")
		form := conferenceForm(conferenceSID, placed.TaskSID, i+2, sim.Now(), events.ParticipantJoin, callSIDs[i], "external")
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = h.postSignedForm("conference", form)
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	<-controllerDone
	for i, code := range codes {
		if code != http.StatusOK {
			t.Errorf("callback %d: status %d", i, code)
		}
	}
	rec := h.recovery(conferenceSID)
	for _, sid := range callSIDs {
		if _, ok := participant(rec, sid); !ok {
			t.Errorf("leg %s lost", sid)
		}
	}
	if rec.Status.LastSequenceNumber != legs+1 {
		t.Errorf("lastSequenceNumber %d, want %d", rec.Status.LastSequenceNumber, legs+1)
	}
	if !strings.HasPrefix(rec.Status.Message, "controller ") || controllerWrites.Load() == 0 {
		t.Errorf("the other writer's field was lost: message %q after %d writes", rec.Status.Message, controllerWrites.Load())
	}
	if n := writes.Load(); n >= legs {
		t.Errorf("%d status writes for %d callbacks: waiting callbacks were not batched", n, legs)
	}
	t.Logf("%d callbacks stored in %d status writes, alongside %d writes of the other writer", legs, writes.Load(), controllerWrites.Load())
}
