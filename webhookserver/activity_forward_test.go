package webhookserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// fixedLeader is a LeaderLocator that names one address and counts the forgets.
type fixedLeader struct {
	mu      sync.Mutex
	addr    string
	forgets int
}

func (l *fixedLeader) Address(context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addr == "" {
		return "", activity.ErrNoLeaderAddress
	}
	return l.addr, nil
}

func (l *fixedLeader) Forget() {
	l.mu.Lock()
	l.forgets++
	l.mu.Unlock()
}

func (l *fixedLeader) forgot() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.forgets
}

func (l *fixedLeader) set(addr string) {
	l.mu.Lock()
	l.addr = addr
	l.mu.Unlock()
}

// startReplica runs a second webhook server on the same API server and public URL (behind one
// Service both replicas are reached at the same URL), with its own engine.
func startReplica(t *testing.T, publicURL string, eng webhookserver.ActivityEngine) string {
	t.Helper()
	addr := freeAddr(t)
	s, err := webhookserver.New(webhookserver.Options{BindAddress: addr, PublicURL: publicURL}, mgr.GetCache().WaitForCacheSync)
	if err != nil {
		t.Fatal(err)
	}
	provider := &credentials.Provider{Metadata: mgr.GetClient(), Data: mgr.GetAPIReader(), BaseURL: sim.URL(),
		Options: []twilio.Option{twilio.WithRetry(2, time.Millisecond, 10*time.Millisecond)}}
	routes, err := webhookserver.NewRoutes(webhookserver.RoutesOptions{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Credentials: provider, Now: sim.Now, PublicURL: publicURL, Activity: eng})
	if err != nil {
		t.Fatal(err)
	}
	routes.Register(s)
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- s.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-stopped; err != nil {
			t.Errorf("leader webhook server: %v", err)
		}
	})
	eventually(t, 10*time.Second, func() error {
		if !s.Ready() {
			return fmt.Errorf("leader webhook server not ready")
		}
		return nil
	})
	return "http://" + addr
}

// TestActivityForwardToLeader: a follower forwards a signed delivery to the leader and answers
// with the leader's answer; the leader checks the signature again; a forwarded request reaching
// a replica that is not the leader is refused, never forwarded again; an unreachable leader, or
// an address answered by something that is not the operator, gives 503 with Retry-After and no
// dedup key is kept, so the redelivery is taken.
func TestActivityForwardToLeader(t *testing.T) {
	followerEng := &recordingEngine{follower: true, got: map[types.NamespacedName][]events.TaskRouterEvent{}}
	leaderEng := &recordingEngine{got: map[types.NamespacedName][]events.TaskRouterEvent{}}
	locator := &fixedLeader{}
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, routes: func(o *webhookserver.RoutesOptions) {
		o.Activity, o.ActivityLeader = followerEng, locator
	}})
	leader := startReplica(t, h.base, leaderEng)
	ctx := context.Background()
	wap := &v1alpha1.WorkerActivityPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "agents"},
		Spec: v1alpha1.WorkerActivityPolicySpec{Twilio: v1alpha1.TwilioSpec{
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"}, WorkspaceSID: h.cc.WorkspaceSID,
		}},
	}
	noErr(t, k8sClient.Create(ctx, wap))
	h.waitCached(wap)
	key := types.NamespacedName{Namespace: h.ns, Name: "agents"}
	path := fmt.Sprintf(activity.EventsPathFormat, h.ns, "agents")
	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	// send posts a delivery signed for the public URL to a replica's address.
	send := func(addr, body string, header http.Header) answer {
		t.Helper()
		target := events.BodySHA256URL(h.base+path, []byte(body))
		req, err := http.NewRequest(http.MethodPost, addr+strings.TrimPrefix(target, h.base), strings.NewReader(body))
		noErr(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Twilio-Signature", events.SignJSON(sim.AuthToken(), target))
		req.Header.Set("I-Twilio-Idempotency-Token", "idem-"+newSID("X"))
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		noErr(t, err)
		defer func() { _ = resp.Body.Close() }()
		text, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(text)}
	}
	event := func() string {
		return mustJSON(t, []any{h.taskEvent("reservation.accepted", newSID("WT"), h.cc.Workers["alice"], time.Now(), nil, "")})
	}
	forwarded := func() float64 {
		return webhookserver.EventsTotal("activity_events", "reservation.accepted", "forwarded")
	}

	// No leader advertised: 503, nothing taken.
	b1 := event()
	if a := send(h.base, b1, nil); a.code != 503 || a.retryAfter == "" {
		t.Fatalf("no leader address: %+v, want 503 with Retry-After", a)
	}
	// The leader is advertised: the follower's answer is the leader's 200, the leader has the
	// event, the follower's engine nothing.
	locator.set(leader)
	before := forwarded()
	if a := send(h.base, b1, nil); a.code != 200 {
		t.Fatalf("forwarded delivery: %+v, want 200", a)
	}
	if got := leaderEng.ids(key); len(got) != 1 {
		t.Fatalf("the leader got %v, want the one event", got)
	}
	if got := followerEng.ids(key); len(got) != 0 {
		t.Fatalf("the follower's engine took %v", got)
	}
	if d := forwarded() - before; d != 1 {
		t.Fatalf("forwarded events counted %v, want 1", d)
	}
	// A redelivery through the follower is forwarded and dropped by the leader as a duplicate.
	if a := send(h.base, b1, nil); a.code != 200 {
		t.Fatalf("redelivery: %+v", a)
	}
	if got := leaderEng.ids(key); len(got) != 1 {
		t.Fatalf("a redelivery reached the leader's engine twice: %v", got)
	}
	// The leader checks the signature itself: a forged delivery sent to the follower with the
	// hop marker is refused at the follower (403), one sent with a bad signature to the leader
	// directly too.
	if a := send(leader, event(), http.Header{"X-Twilio-Signature": {"forged"}, webhookserver.HeaderForwarded: {"1"}}); a.code != 403 {
		t.Fatalf("forged forwarded delivery to the leader: %+v, want 403", a)
	}

	// A forwarded request reaching a follower: 503, not forwarded again (the leader is reachable
	// and would take it).
	b2 := event()
	if a := send(h.base, b2, http.Header{webhookserver.HeaderForwarded: {"1"}}); a.code != 503 || !strings.Contains(a.body, "not the leader") {
		t.Fatalf("forwarded request at a follower: %+v, want 503", a)
	}
	if got := leaderEng.ids(key); len(got) != 1 {
		t.Fatalf("a request marked forwarded was forwarded again: %v", got)
	}
	// The leader that lost its leadership answers the forward 503; the follower relays it.
	leaderEng.mu.Lock()
	leaderEng.follower = true
	leaderEng.mu.Unlock()
	if a := send(h.base, b2, nil); a.code != 503 || a.retryAfter == "" {
		t.Fatalf("forward to a replica that stopped leading: %+v, want 503", a)
	}
	leaderEng.mu.Lock()
	leaderEng.follower = false
	leaderEng.mu.Unlock()

	// The leader's address is unreachable: 503 with Retry-After, the address forgotten.
	locator.set(strings.TrimSuffix("http://"+freeAddr(t), "/"))
	forgets := locator.forgot()
	if a := send(h.base, b2, nil); a.code != 503 || a.retryAfter == "" {
		t.Fatalf("unreachable leader: %+v, want 503 with Retry-After", a)
	}
	if locator.forgot() != forgets+1 {
		t.Fatal("a failed forward did not forget the leader's address")
	}
	// Something else at the address answers 200: not relayed.
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer impostor.Close()
	locator.set(impostor.URL)
	if a := send(h.base, b2, nil); a.code != 503 {
		t.Fatalf("a 200 from something that is not the operator was relayed: %+v", a)
	}
	if got := leaderEng.ids(key); len(got) != 1 {
		t.Fatalf("the leader got events it should not have: %v", got)
	}
	// The redelivery, once the leader is reachable, is taken: the follower kept no dedup key.
	locator.set(leader)
	if a := send(h.base, b2, nil); a.code != 200 {
		t.Fatalf("redelivery after failures: %+v", a)
	}
	if got := leaderEng.ids(key); len(got) != 2 {
		t.Fatalf("the leader got %v, want both events", got)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
