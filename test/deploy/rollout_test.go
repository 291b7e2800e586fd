package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// The rolling restart's settings: the drain is short to keep the test quick, and longer than the
// time the balancer takes to stop routing to a replica that stopped being ready.
const (
	rolloutDrainDelay = 4 * time.Second
	// rolloutGrace is --graceful-shutdown-timeout: the drain plus the webhook server's 10s for
	// requests in flight, and a little more for the rest of the manager.
	rolloutGrace = 16 * time.Second
	// endpointLag is how long after a replica stops being ready the balancer still routes to it.
	endpointLag      = time.Second
	rolloutNamespace = "flex-rollout"
	rolloutLeaseID   = "flex-operator-rollout"
)

// TestRollingRestartDrainsWebhooks replaces one running operator process by another as a
// Deployment's rolling update does (maxSurge 1, maxUnavailable 0), with callbacks flowing through
// a balancer that stands for the Service and ingress controller: the built binary, run as a
// process against the test API server and the Twilio simulator, with leader election. The new
// process starts and becomes ready; the old one gets SIGTERM. The old one must stop being ready
// at once while its webhook port keeps answering real, signed callbacks (with Connection: close),
// complete a callback still arriving when its listener closes, and exit 0 within its grace
// period; and no callback sent through the balancer across the switch may fail.
func TestRollingRestartDrainsWebhooks(t *testing.T) {
	e, kubeconfig := processEnvironment(t)
	ctx := context.Background()
	must(t, ignoreExists(e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rolloutNamespace}})))

	// The balancer takes the public URL's address: the simulator delivers the conference's
	// callbacks there, and the callbacks are signed over that URL.
	lb := startBalancer(t, strings.TrimPrefix(e.WebhookURL, "http://"), endpointLag)
	flags := []string{
		"--metrics-bind-address=0",
		"--leader-elect", "--leader-election-namespace=" + rolloutNamespace, "--leader-election-id=" + rolloutLeaseID,
		"--webhook-public-url=" + e.WebhookURL,
		"--twilio-base-url=" + e.Sim.URL(), "--unsafe-twilio-base-url",
		"--webhook-drain-delay=" + rolloutDrainDelay.String(),
		"--graceful-shutdown-timeout=" + rolloutGrace.String(),
	}
	old := startOperatorProcess(t, "old", kubeconfig, flags...)
	lb.add(old)
	old.waitReady(t, time.Minute)

	// A contact centre whose call the old replica, leading, protects: its conference's
	// callbacks arrive through the balancer and create the call's ConferenceRecovery.
	c, err := e.NewCentre(ctx, scenario.CentreOptions{Name: "rollout", Agents: []string{"alice"}})
	must(t, err)
	_, err = c.WaitPolicyReady(ctx)
	must(t, err)
	call, err := c.Answer(ctx, "alice")
	must(t, err)
	_, err = c.WaitRecovery(ctx, call.ConferenceSID, "recovery created from the callbacks", func(*v1alpha1.ConferenceRecovery) bool { return true })
	must(t, err)
	cb := &callbacks{
		publicURL: e.WebhookURL, path: fmt.Sprintf("/twilio/%s/%s/conference", c.Namespace, c.Policy),
		authToken: e.Sim.AuthToken(), accountSID: e.Sim.AccountSID(),
		conferenceSID: call.ConferenceSID, callSID: call.CustomerCallSID, now: e.Sim.Now,
	}
	cb.seq.Store(1000) // past the simulator's own sequence numbers for the conference
	oldDirect := "http://" + old.webhookAddr
	fresh := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	if a, err := cb.send(fresh(), oldDirect); err != nil || a.code != http.StatusOK {
		t.Fatalf("a signed callback to the ready old replica: %+v %v, want 200", a, err)
	}

	tr := startTraffic(cb, e.WebhookURL, 4, 100*time.Millisecond)
	trafficEnded := false
	endTraffic := func() {
		if !trafficEnded {
			trafficEnded = true
			tr.end()
		}
	}
	defer endTraffic()
	waitAnswered := func(what string, n int) {
		t.Helper()
		if err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) { return tr.answeredCount() >= n, nil }); err != nil {
			t.Fatalf("%s: %d callbacks answered, want %d: %v", what, tr.answeredCount(), n, err)
		}
	}
	waitAnswered("before the update", 10)

	// The rolling update: the new replica first, ready and in the endpoints.
	newer := startOperatorProcess(t, "new", kubeconfig, flags...)
	lb.add(newer)
	newer.waitReady(t, time.Minute)
	must(t, scenario.Poll(ctx, scenario.Wait, func() (bool, error) { return lb.inEndpoints(newer), nil }))
	leaderBefore := leaseHolder(t, e, rolloutLease)

	// A connection kept alive to the old replica, as an ingress controller's upstream pool holds.
	pooled := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer pooled.CloseIdleConnections()
	if a, err := cb.send(pooled, oldDirect); err != nil || a.code != http.StatusOK || a.closing {
		t.Fatalf("a callback on a kept-alive connection before the stop: %+v %v", a, err)
	}

	oldLogAtStop := len(old.log())
	stopAt := old.terminate(t)
	// Not ready soon after SIGTERM, the probe server still up (a readiness check failing, not a
	// closed port).
	must(t, scenario.Poll(ctx, rolloutDrainDelay, func() (bool, error) {
		code := old.readyz()
		return code != http.StatusOK && code != 0, nil
	}))
	notReadyAfter := time.Since(stopAt)
	// A callback that will still be arriving when the listener closes: its headers and half its
	// body now, the rest once the port refuses new connections.
	inFlight := startSlowCallback(t, cb, old.webhookAddr)
	// Its webhook port still answers real callbacks, on new connections and on the kept-alive
	// one, whose answer asks the client to close it (a client that does not ask for it itself).
	if a, err := cb.send(fresh(), oldDirect); err != nil || a.code != http.StatusOK {
		t.Errorf("a callback on a new connection to the draining replica: %+v %v, want 200", a, err)
	}
	if a, err := cb.send(pooled, oldDirect); err != nil || a.code != http.StatusOK {
		t.Errorf("a callback on the kept-alive connection to the draining replica: %+v %v, want 200", a, err)
	} else if !a.closing {
		t.Error("the answer on the kept-alive connection during the drain lacks Connection: close")
	}
	if !old.running() {
		t.Fatalf("the old replica exited before its drain delay ended: %v", old.exitErr)
	}
	// The rest of the slow callback's body once the listener has closed.
	must(t, scenario.Poll(ctx, rolloutGrace, func() (bool, error) {
		conn, err := net.DialTimeout("tcp", old.webhookAddr, time.Second)
		if err != nil {
			return true, nil
		}
		_ = conn.Close()
		return false, nil
	}))
	closedAfter := time.Since(stopAt)
	if a, err := inFlight.finish(); err != nil || a.code != http.StatusOK {
		t.Errorf("the callback in flight when the listener closed: %+v %v, want 200", a, err)
	} else if !a.closing {
		t.Error("the answer to the callback in flight at the close lacks Connection: close")
	}

	select {
	case <-old.exited:
	case <-time.After(rolloutGrace):
		t.Fatalf("the old replica did not exit within --graceful-shutdown-timeout (%s) of SIGTERM", rolloutGrace)
	}
	exitedAfter := time.Since(stopAt)
	if old.exitErr != nil {
		t.Errorf("the old replica exited with %v, want 0", old.exitErr)
	}

	if errs := old.errorsSince(oldLogAtStop); len(errs) > 0 {
		t.Errorf("the old replica logged errors while stopping:\n%s", strings.Join(errs, "\n"))
	}

	// Callbacks keep flowing to the new replica, which takes over the controllers.
	servedAtExit := lb.connections(newer)
	answered := tr.answeredCount()
	waitAnswered("after the old replica exited", answered+10)
	endTraffic()
	must(t, scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		h := leaseHolder(t, e, rolloutLease)
		return h != "" && h != leaderBefore, nil
	}))

	refused, unrouted := lb.stats()
	t.Logf("SIGTERM→not ready %s, →listener closed %s, →exit %s; %d callbacks sent through the balancer, %d answered (%d on kept-alive connections with Connection: close); connections: %d to the old replica, %d to the new (%d of them by the old one's exit), %d refused and retried, %d unrouted",
		notReadyAfter.Round(time.Millisecond), closedAfter.Round(time.Millisecond), exitedAfter.Round(time.Millisecond),
		tr.sent, tr.answered, tr.closing, lb.connections(old), lb.connections(newer), servedAtExit, refused, unrouted)
	if len(tr.failures) > 0 || unrouted > 0 {
		t.Errorf("%d of %d callbacks sent across the rolling update failed (%d connections no replica took):\n%s",
			len(tr.failures), tr.sent, unrouted, strings.Join(tr.failures, "\n"))
	}
	// The old replica left the endpoints (endpointLag after it stopped being ready) before it
	// closed its listener: no connection was refused, so a Service without an ingress controller's
	// retry (kube-proxy alone) would have lost nothing either.
	if refused > 0 {
		t.Errorf("%d connections were refused by a replica the balancer still routed to: the drain ended before the endpoints changed", refused)
	}
	if tr.closing == 0 {
		t.Error("no callback through the balancer was answered with Connection: close: the traffic never reached the draining replica")
	}

	newerLogAtStop := len(newer.log())
	newer.terminate(t)
	select {
	case <-newer.exited:
	case <-time.After(rolloutGrace):
		t.Fatalf("the new replica did not exit within %s of SIGTERM", rolloutGrace)
	}
	if newer.exitErr != nil {
		t.Errorf("the new replica exited with %v, want 0", newer.exitErr)
	}
	if errs := newer.errorsSince(newerLogAtStop); len(errs) > 0 {
		t.Errorf("the new replica logged errors while stopping:\n%s", strings.Join(errs, "\n"))
	}
}

// rolloutLease is the rollout's leader-election Lease.
var rolloutLease = types.NamespacedName{Namespace: rolloutNamespace, Name: rolloutLeaseID}

// leaseHolder is the holder of a leader-election Lease ("" when none).
func leaseHolder(t *testing.T, e *scenario.Env, lease types.NamespacedName) string {
	t.Helper()
	var l coordinationv1.Lease
	if err := e.Client.Get(context.Background(), lease, &l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// slowCallback is a signed callback written in two parts on a raw connection.
type slowCallback struct {
	conn net.Conn
	rest string
}

// startSlowCallback sends a callback's headers and the first half of its body to addr.
func startSlowCallback(t *testing.T, cb *callbacks, addr string) *slowCallback {
	t.Helper()
	req, body, err := cb.request("http://" + addr)
	must(t, err)
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nX-Twilio-Signature: %s\r\nContent-Length: %d\r\n\r\n",
		req.URL.RequestURI(), addr, req.Header.Get("Content-Type"), req.Header.Get("X-Twilio-Signature"), len(body))
	half := len(body) / 2
	if _, err := conn.Write([]byte(head + body[:half])); err != nil {
		t.Fatalf("start the slow callback: %v", err)
	}
	return &slowCallback{conn: conn, rest: body[half:]}
}

// finish sends the rest of the body and reads the answer.
func (s *slowCallback) finish() (answer, error) {
	_ = s.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.conn.Write([]byte(s.rest)); err != nil {
		return answer{}, fmt.Errorf("write the rest of the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
	if err != nil {
		return answer{}, fmt.Errorf("read the answer: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return answer{code: resp.StatusCode, closing: resp.Close}, nil
}
