package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/app"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/scenario"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// follower is a second manager beside the operator, built as main.go builds it with leader
// election on, that never leads: another holder keeps its leader-election Lease.
type follower struct {
	addr   string
	engine *activity.Engine
}

// startFollower runs a follower for the leader-election ID in namespace ns until the test ends.
func startFollower(t testing.TB, ns, id string) *follower {
	t.Helper()
	ctx := context.Background()
	now := metav1.NewMicroTime(time.Now())
	holder, duration := "another-replica", int32(3600)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration,
			AcquireTime: &now, RenewTime: &now},
	}
	if err := env.Client.Create(ctx, lease); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{addr: "http://" + l.Addr().String()}
	_ = l.Close()
	mgr, err := app.NewManager(ctx, env.Config, app.Options{
		MetricsAddress: "0", ProbeAddress: "0", WebhookBindAddress: strings.TrimPrefix(f.addr, "http://"),
		// Behind one Service, both replicas are reached at the same public URL.
		WebhookPublicURL: env.WebhookURL, WebhookAdvertiseAddress: f.addr,
		TwilioBaseURL: env.Sim.URL(), UnsafeTwilioBaseURL: true, Now: env.Sim.Now,
		LeaderElection: true, LeaderElectionID: id, LeaderElectionNS: ns,
		Restartable: true, GracefulShutdownTime: 5 * time.Second,
		Engine: func(e *activity.Engine) { f.engine = e },
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return f
}

// delivery is one signed Event Streams delivery for the policy of c, as Twilio sends it to the
// public URL; post sends it to one replica's address.
type delivery struct {
	c      *scenario.ActivityCentre
	body   []byte
	signed string
}

func newDelivery(t *testing.T, c *scenario.ActivityCentre, eventType, task, worker string) delivery {
	t.Helper()
	at := env.Sim.Now()
	id := fmt.Sprintf("%x", time.Now().UnixNano())
	body, err := json.Marshal([]any{map[string]any{
		"specversion": "1.0", "type": "com.twilio.taskrouter." + eventType, "id": "EZ" + strings.Repeat("0", 32-len(id)) + id,
		"source": "/v1/Workspaces/" + c.CC.WorkspaceSID, "time": at.Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"payload": map[string]any{
			"sid": "EV" + strings.Repeat("0", 32-len(id)) + id, "eventtype": eventType, "account_sid": env.Sim.AccountSID(),
			"workspace_sid": c.CC.WorkspaceSID, "timestamp": at.UnixMilli(),
			"task_sid": task, "task_channel_unique_name": "voice", "task_attributes": "{}",
			"reservation_sid": "WR" + task[2:], "worker_sid": worker,
		}},
	}})
	must(t, err)
	path := fmt.Sprintf(activity.EventsPathFormat, c.Namespace, c.Policy)
	return delivery{c: c, body: body, signed: events.BodySHA256URL(env.WebhookURL+path, body)}
}

func (d delivery) post(t *testing.T, base string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+strings.TrimPrefix(d.signed, env.WebhookURL), strings.NewReader(string(d.body)))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Twilio-Signature", events.SignJSON(env.Sim.AuthToken(), d.signed))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	text, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(text)
}

// TestActivityEventOnFollower: when no leader advertises its webhook address (here: the
// follower's leader-election ID has no address Lease), a follower cannot forward; an event it
// receives is answered 503 and changes nothing (Event Streams retries it), and the same delivery
// reaching the leader takes effect.
func TestActivityEventOnFollower(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "replicas", Agents: []string{"alice"}})
	f := startFollower(t, c.Namespace, "follower-test")
	d := newDelivery(t, c, "reservation.accepted", "WT"+strings.Repeat("7", 32), c.Worker("alice"))
	// The follower's webhook serves once its cache has synced (503 before that too); then it
	// answers 503 because it does not run the engine and has no leader to forward to, never 200.
	var code int
	var text string
	err := scenario.Poll(context.Background(), scenario.Wait, func() (bool, error) {
		code, text = d.post(t, f.addr, nil)
		if code == http.StatusOK {
			return false, fmt.Errorf("the follower acknowledged the event")
		}
		return code == http.StatusServiceUnavailable && strings.Contains(text, "leader"), nil
	})
	if err != nil {
		t.Fatalf("follower: %v (last answer %d %q)", err, code, text)
	}
	if f.engine == nil || f.engine.Leader() {
		t.Fatal("the second manager runs the engine")
	}
	if w := c.WorkerState("alice"); w.Activity != "Available" {
		t.Fatalf("an event refused by the follower changed alice to %q", w.Activity)
	}
	// Event Streams retries; this time the delivery reaches the leader.
	if code, text := d.post(t, env.WebhookURL, nil); code != http.StatusOK {
		t.Fatalf("the leader answered %d %q", code, text)
	}
	waitActivity(t, c, "alice", "On a Task", "")
}

// TestActivityEventForwardedToLeader: two managers, the operator leading and advertising its
// webhook address, a follower beside it. A delivery the follower receives is forwarded: answered
// 200 and applied by the leader. A request already forwarded once is never forwarded again (503).
// With the advertised leader unreachable the follower answers 503 and keeps nothing, and the
// redelivery is applied.
func TestActivityEventForwardedToLeader(t *testing.T) {
	c := newActivityCentre(t, scenario.ActivityCentreOptions{Name: "forward", Agents: []string{"alice"}})
	ctx := context.Background()
	leaseKey := activity.LeaderAddressLease(scenario.LeaderElectionNS, scenario.LeaderElectionID)
	var lease coordinationv1.Lease
	err := scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		if err := env.Client.Get(ctx, leaseKey, &lease); err != nil {
			return false, client404(err)
		}
		return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == env.WebhookURL, nil
	})
	if err != nil {
		t.Fatalf("the leader did not advertise its webhook address in %s: %v", leaseKey, err)
	}
	f := startFollower(t, scenario.LeaderElectionNS, scenario.LeaderElectionID)
	task := "WT" + strings.Repeat("8", 32)

	// Forwarded: the follower answers with the leader's 200 and alice goes On a Task.
	accepted := newDelivery(t, c, "reservation.accepted", task, c.Worker("alice"))
	var code int
	var text string
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		code, text = accepted.post(t, f.addr, nil)
		return code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the follower did not forward: %v (last answer %d %q)", err, code, text)
	}
	if f.engine == nil || f.engine.Leader() {
		t.Fatal("the second manager runs the engine")
	}
	waitActivity(t, c, "alice", "On a Task", "")

	// A request that was already forwarded once and reaches a replica that is not the leader is
	// refused, not forwarded again (forwarded, the leader would take it and answer 200).
	wrapup := newDelivery(t, c, "reservation.wrapup", task, c.Worker("alice"))
	code, text = wrapup.post(t, f.addr, http.Header{webhookserver.HeaderForwarded: {"1"}})
	if code != http.StatusServiceUnavailable || !strings.Contains(text, "not the leader") {
		t.Fatalf("a forwarded request at the follower: %d %q, want 503", code, text)
	}

	// The advertised leader is unreachable (a stale address: a leader that went away). A probe
	// for nobody the engine governs shows when the follower has re-read the Lease (it remembers
	// an address for 2 s); from then on deliveries are answered 503 and none is kept.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	deadURL := "http://" + dead.Addr().String()
	_ = dead.Close()
	setLeaseHolder(t, leaseKey, deadURL)
	t.Cleanup(func() { setLeaseHolder(t, leaseKey, env.WebhookURL) })
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		probe := newDelivery(t, c, "reservation.accepted", "WT"+strings.Repeat("9", 32), "WK"+strings.Repeat("9", 32))
		code, text = probe.post(t, f.addr, nil)
		return code == http.StatusServiceUnavailable, nil
	})
	if err != nil {
		t.Fatalf("the follower kept forwarding to a stale address: %v (last answer %d %q)", err, code, text)
	}
	if code, text = wrapup.post(t, f.addr, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("leader unreachable: the follower answered %d %q, want 503", code, text)
	}
	if w := c.WorkerState("alice"); w.Activity != "On a Task" {
		t.Fatalf("an event the follower could not forward changed alice to %q", w.Activity)
	}
	// Event Streams delivers again; the Service sends the retry to the leader, which applies it.
	if code, text = wrapup.post(t, env.WebhookURL, nil); code != http.StatusOK {
		t.Fatalf("the redelivery to the leader: %d %q", code, text)
	}
	waitActivity(t, c, "alice", "Wrap Up", "")

	// The leader advertises again: the follower forwards the next delivery.
	setLeaseHolder(t, leaseKey, env.WebhookURL)
	completed := newDelivery(t, c, "reservation.completed", task, c.Worker("alice"))
	err = scenario.Poll(ctx, scenario.Wait, func() (bool, error) {
		code, text = completed.post(t, f.addr, nil)
		return code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("the follower did not forward once the leader was back: %v (last answer %d %q)", err, code, text)
	}
	waitActivity(t, c, "alice", "Available", "")
}

// client404 ignores NotFound (the Lease not written yet).
func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// setLeaseHolder points the leader's address Lease at addr.
func setLeaseHolder(t *testing.T, key types.NamespacedName, addr string) {
	t.Helper()
	var l coordinationv1.Lease
	must(t, env.Client.Get(context.Background(), key, &l))
	l.Spec.HolderIdentity = &addr
	must(t, env.Client.Update(context.Background(), &l))
}
