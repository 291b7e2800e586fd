package webhookserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/webhookserver"
)

// recordingEngine is an activity engine that records what it is handed, and can play a replica
// that is not the leader.
type recordingEngine struct {
	mu       sync.Mutex
	follower bool
	got      map[types.NamespacedName][]events.TaskRouterEvent
}

func (e *recordingEngine) Deliver(p types.NamespacedName, evs []events.TaskRouterEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.follower {
		return activity.ErrNotLeader
	}
	e.got[p] = append(e.got[p], evs...)
	return nil
}

func (e *recordingEngine) ids(p types.NamespacedName) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got[p] {
		out = append(out, ev.ID)
	}
	return out
}

// TestActivityEventsRoute: a WorkerActivityPolicy's events, signed with its credentials, reach the
// engine once each; a replica that is not the leader answers 503 without marking them seen, so
// Event Streams' retry is taken; bad signatures and unknown policies reach nothing.
func TestActivityEventsRoute(t *testing.T) {
	eng := &recordingEngine{got: map[types.NamespacedName][]events.TaskRouterEvent{}}
	h := newHarness(t, harnessOptions{noConferenceCallbacks: true, routes: func(o *webhookserver.RoutesOptions) { o.Activity = eng }})
	ctx := context.Background()
	wap := &v1alpha1.WorkerActivityPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "agents"},
		Spec: v1alpha1.WorkerActivityPolicySpec{Twilio: v1alpha1.TwilioSpec{
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"}, WorkspaceSID: h.cc.WorkspaceSID,
		}},
	}
	if err := k8sClient.Create(ctx, wap); err != nil {
		t.Fatal(err)
	}
	h.waitCached(wap)
	key := types.NamespacedName{Namespace: h.ns, Name: "agents"}
	path := fmt.Sprintf(activity.EventsPathFormat, h.ns, "agents")
	post := func(body string) int {
		target := events.BodySHA256URL(h.base+path, []byte(body))
		return h.post(strings.TrimPrefix(target, h.base), "application/json", body,
			map[string][]string{"X-Twilio-Signature": {events.SignJSON(sim.AuthToken(), target)}})
	}
	at := time.Now()
	e1 := h.taskEvent("reservation.accepted", newSID("WT"), h.cc.Workers["alice"], at, nil, "")
	e2 := h.taskEvent("reservation.wrapup", newSID("WT"), h.cc.Workers["alice"], at.Add(time.Second), nil, "")
	batch := mustJSON(t, []any{e2, e1})

	eng.mu.Lock()
	eng.follower = true
	eng.mu.Unlock()
	if code := post(batch); code != 503 {
		t.Fatalf("a follower answered %d, want 503", code)
	}
	if got := eng.ids(key); len(got) != 0 {
		t.Fatalf("a follower took events: %v", got)
	}
	eng.mu.Lock()
	eng.follower = false
	eng.mu.Unlock()
	if code := post(batch); code != 200 {
		t.Fatalf("the leader answered %d, want 200", code)
	}
	got := eng.ids(key)
	if len(got) != 2 || got[0] != e1["id"] || got[1] != e2["id"] {
		t.Fatalf("engine got %v, want the retried batch in time order", got)
	}
	if code := post(batch); code != 200 {
		t.Fatalf("a redelivery answered %d", code)
	}
	if got := eng.ids(key); len(got) != 2 {
		t.Fatalf("duplicates reached the engine: %v", got)
	}
	// A bad signature and an unknown policy reach nothing.
	if code := h.post(path, "application/json", batch, map[string][]string{"X-Twilio-Signature": {"bad"}}); code != 403 {
		t.Fatalf("bad signature answered %d", code)
	}
	other := fmt.Sprintf(activity.EventsPathFormat, h.ns, "nobody")
	if code := h.post(other, "application/json", batch, nil); code != 403 {
		t.Fatalf("unknown policy answered %d, want 403 as for a bad signature", code)
	}
	if got := eng.ids(key); len(got) != 2 {
		t.Fatalf("refused requests reached the engine: %v", got)
	}
}
