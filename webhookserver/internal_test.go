package webhookserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

func sid(prefix string, n int) string { return fmt.Sprintf("%s%032x", prefix, n) }

func TestLRU(t *testing.T) {
	c := newLRU[string, int](2)
	c.add("a", 1, nil)
	c.add("b", 2, nil)
	if _, ok := c.get("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.add("c", 3, nil)
	if _, ok := c.get("b"); ok {
		t.Error("b should have been evicted (least recently used)")
	}
	pinned := func(v int) bool { return v == 1 }
	c.add("d", 4, pinned) // a (1) is the oldest but pinned: c goes
	if _, ok := c.get("a"); !ok {
		t.Error("pinned a was evicted")
	}
	if _, ok := c.get("c"); ok {
		t.Error("c should have been evicted instead of the pinned a")
	}
	c.add("a", 10, nil)
	if v, _ := c.get("a"); v != 10 || c.len() != 2 {
		t.Errorf("a = %d, len %d", v, c.len())
	}
	c.remove("a")
	if _, ok := c.get("a"); ok || c.len() != 1 {
		t.Errorf("remove left a, len %d", c.len())
	}
}

// TestLRUKeepsEntriesInUse is defect 8 of issue 9: with the cache full of conferences in flight
// (every entry pinned), the entry just added must not be evicted, or a second writer starts for
// its conference.
func TestLRUKeepsEntriesInUse(t *testing.T) {
	c := newLRU[string, int](2)
	pinned := func(v int) bool { return v > 0 }
	c.add("a", 1, pinned)
	c.add("b", 1, pinned)
	c.add("c", 0, pinned)
	if _, ok := c.get("c"); !ok {
		t.Fatal("the entry just added was evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a pinned entry was evicted")
	}
	// Once unpinned, the extra entries go at the next add.
	c.add("a", 0, pinned)
	c.add("c", 0, pinned)
	c.add("d", 0, pinned)
	if c.len() > 2 {
		t.Errorf("len %d after unpinning, want 2", c.len())
	}
}

// TestStoreNeverHasTwoWritersForAConference fills the store's cache with a conference whose writer
// is busy and submits an op for a new conference: its entry must stay in the cache while its
// writer runs, or the next callback of that conference would start a second writer.
func TestStoreNeverHasTwoWritersForAConference(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	s := newRecoveryStore(c, c, logr.Discard(), 1, time.Second)
	busy := types.NamespacedName{Namespace: "n", Name: "busy"}
	s.mu.Lock()
	s.confs.add(busy, &confState{key: busy, refs: 1, running: true}, func(c *confState) bool { return c.refs > 0 })
	s.mu.Unlock()

	fresh := types.NamespacedName{Namespace: "n", Name: "fresh"}
	release := make(chan struct{})
	o := s.submit(fresh, &op{mutate: func(*v1alpha1.ConferenceRecovery) (bool, error) { <-release; return false, nil }})
	s.mu.Lock()
	first, ok := s.confs.get(fresh)
	s.mu.Unlock()
	if !ok {
		t.Fatal("the new conference's entry was evicted while its writer runs")
	}
	second := s.submit(fresh, &op{mutate: func(*v1alpha1.ConferenceRecovery) (bool, error) { return false, nil }})
	s.mu.Lock()
	again, _ := s.confs.get(fresh)
	s.mu.Unlock()
	if again != first {
		t.Error("a second entry (and writer) for the same conference")
	}
	close(release)
	for _, op := range []*op{o, second} {
		if res := op.wait(context.Background()); res.err != nil {
			t.Errorf("op: %v", res.err)
		}
	}
}

func TestConferenceInfoFillsRoles(t *testing.T) {
	customer, agentLeg, second, worker := sid("CA", 1), sid("CA", 2), sid("CA", 3), sid("WK", 3)
	info := &conferenceInfo{fetched: true, taskSID: sid("WT", 1), legs: map[string]legInfo{}}
	info.learn(`{"conference":{"participants":{"customer":"` + customer + `","worker":"` + agentLeg + `","` + worker + `":"` + second + `"}}}`)
	st := v1alpha1.ConferenceRecoveryStatus{Participants: []v1alpha1.ParticipantStatus{
		{CallSID: customer, Role: v1alpha1.RoleUnknown},
		{CallSID: agentLeg, Role: v1alpha1.RoleAgent},
		{CallSID: second, Role: v1alpha1.RoleAgent},
		{CallSID: sid("CA", 9), Role: v1alpha1.RoleUnknown, Coaching: true},
	}}
	if !fillRoles(&st, info) {
		t.Fatal("nothing filled")
	}
	want := []v1alpha1.ParticipantStatus{
		{CallSID: customer, Role: v1alpha1.RoleCustomer},
		{CallSID: agentLeg, Role: v1alpha1.RoleAgent},
		{CallSID: second, Role: v1alpha1.RoleAgent, WorkerSID: worker},
		{CallSID: sid("CA", 9), Role: v1alpha1.RoleUnknown, Coaching: true},
	}
	if diff := cmp.Diff(want, st.Participants); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if st.CustomerCallSID != customer {
		t.Errorf("customerCallSid %q", st.CustomerCallSID)
	}
	if fillRoles(&st, info) {
		t.Error("a second fill changed something")
	}
	// A leg the task did not describe asks for one refetch, then no more.
	st.Participants = append(st.Participants, v1alpha1.ParticipantStatus{CallSID: sid("CA", 5), Role: v1alpha1.RoleUnknown})
	if !info.wantsRefetch(st.Participants) {
		t.Error("an unknown leg does not ask for a refetch")
	}
	info.asked = map[string]bool{sid("CA", 5): true}
	if info.wantsRefetch(st.Participants) {
		t.Error("a leg already asked about asks again")
	}
}

func TestRecoveryMutation(t *testing.T) {
	conference, original, ping, reconnect, worker := sid("CF", 1), sid("WT", 1), sid("WT", 2), sid("WT", 3), sid("WK", 1)
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	at := func(s int) *metav1.Time { v := metav1.NewTime(t0.Add(time.Duration(s) * time.Second)); return &v }
	agentLeg := sid("CA", 7)
	marker := func(role string, leg string) string {
		return `{"disconnectedConferenceSid":"` + conference + `","flexOperatorRecovery":{"role":"` + role +
			`","conferenceSid":"` + conference + `","disconnectedCallSid":"` + leg + `"}}`
	}
	pingAttrs, reconnectAttrs := marker("ping", agentLeg), marker("reconnect", agentLeg)
	policy := &v1alpha1.ConferenceRecoveryPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	disconnect := &v1alpha1.DisconnectStatus{CallSID: agentLeg}
	ev := func(typ, task, attrs string, s int, reason string) events.TaskRouterEvent {
		return events.TaskRouterEvent{ID: fmt.Sprint(typ, task, s), Type: typ, CloudEventType: "com.twilio.taskrouter." + typ,
			WorkspaceSID: sid("WS", 1), Time: t0.Add(time.Duration(s) * time.Second), TaskSID: task, TaskAttributes: attrs,
			WorkerSID: worker, Reason: reason}
	}
	tests := []struct {
		name   string
		events []events.TaskRouterEvent
		want   v1alpha1.ConferenceRecoveryStatus
	}{
		{"ping accepted", []events.TaskRouterEvent{ev("task.created", ping, pingAttrs, 1, ""), ev("reservation.accepted", ping, pingAttrs, 2, "")},
			v1alpha1.ConferenceRecoveryStatus{Ping: &v1alpha1.PingStatus{TaskSID: ping, Outcome: v1alpha1.PingAccepted, ResolvedAt: at(2)}}},
		{"a ping of an earlier incident is ignored", []events.TaskRouterEvent{ev("reservation.accepted", ping, marker("ping", sid("CA", 8)), 2, "")},
			v1alpha1.ConferenceRecoveryStatus{}},
		{"the seed's flags without a marker mean nothing", []events.TaskRouterEvent{
			ev("reservation.accepted", ping, `{"disconnectedConferenceSid":"`+conference+`","isReconnect":true}`, 2, "")},
			v1alpha1.ConferenceRecoveryStatus{}},
		{"ping TTL", []events.TaskRouterEvent{ev("task.canceled", ping, pingAttrs, 15, "Task TTL Exceeded")},
			v1alpha1.ConferenceRecoveryStatus{Ping: &v1alpha1.PingStatus{TaskSID: ping, Outcome: v1alpha1.PingTimedOut, ResolvedAt: at(15)}}},
		{"ping canceled otherwise", []events.TaskRouterEvent{ev("task.canceled", ping, pingAttrs, 5, "canceled by the operator")},
			v1alpha1.ConferenceRecoveryStatus{Ping: &v1alpha1.PingStatus{TaskSID: ping, Outcome: v1alpha1.PingCanceled, ResolvedAt: at(5)}}},
		{"first ping outcome wins", []events.TaskRouterEvent{ev("task.canceled", ping, pingAttrs, 15, "Task TTL Exceeded"), ev("reservation.accepted", ping, pingAttrs, 14, "")},
			v1alpha1.ConferenceRecoveryStatus{Ping: &v1alpha1.PingStatus{TaskSID: ping, Outcome: v1alpha1.PingTimedOut, ResolvedAt: at(15)}}},
		{"another ping task is ignored", []events.TaskRouterEvent{ev("task.created", ping, pingAttrs, 1, ""), ev("reservation.accepted", sid("WT", 9), pingAttrs, 2, "")},
			v1alpha1.ConferenceRecoveryStatus{Ping: &v1alpha1.PingStatus{TaskSID: ping}}},
		{"the original task is never the ping", []events.TaskRouterEvent{ev("reservation.accepted", original, pingAttrs, 2, "")},
			v1alpha1.ConferenceRecoveryStatus{}},
		{"events recovery does not use", []events.TaskRouterEvent{ev("reservation.wrapup", ping, pingAttrs, 2, ""), ev("task.updated", reconnect, reconnectAttrs, 2, "")},
			v1alpha1.ConferenceRecoveryStatus{}},
		{"reconnect queued and accepted", []events.TaskRouterEvent{
			ev("task.created", reconnect, reconnectAttrs, 20, ""), ev("task-queue.entered", reconnect, reconnectAttrs, 21, ""),
			ev("reservation.accepted", reconnect, reconnectAttrs, 25, ""), ev("task.canceled", reconnect, reconnectAttrs, 30, "hangup")},
			v1alpha1.ConferenceRecoveryStatus{Reconnect: &v1alpha1.ReconnectStatus{TaskSID: reconnect, QueuedAt: at(21), WorkerSID: worker, AcceptedAt: at(25)}}},
		{"reconnect canceled before acceptance", []events.TaskRouterEvent{
			ev("task-queue.entered", reconnect, reconnectAttrs, 21, ""), ev("task.canceled", reconnect, reconnectAttrs, 40, "customer hung up")},
			v1alpha1.ConferenceRecoveryStatus{Reconnect: &v1alpha1.ReconnectStatus{TaskSID: reconnect, QueuedAt: at(21), CanceledAt: at(40), CancelReason: "customer hung up"}}},
	}
	for _, tt := range tests {
		rec := &v1alpha1.ConferenceRecovery{Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: "p", ConferenceSID: conference, TaskSID: original},
			Status: v1alpha1.ConferenceRecoveryStatus{Disconnect: disconnect}}
		for _, e := range tt.events {
			target, mutate := recoveryMutation(policy, e, time.Time{})
			if mutate == nil {
				continue
			}
			if target != conference {
				t.Errorf("%s: target %s", tt.name, target)
			}
			if _, err := mutate(rec); err != nil && !errors.Is(err, errStale) {
				t.Fatal(err)
			}
			// Applying an event again changes nothing.
			if changed, _ := mutate(rec); changed {
				t.Errorf("%s: %s applied twice changed the status", tt.name, e.Type)
			}
		}
		tt.want.Disconnect = disconnect
		if diff := cmp.Diff(tt.want, rec.Status); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tt.name, diff)
		}
	}
	// Another policy's recovery is left alone.
	rec := &v1alpha1.ConferenceRecovery{Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: "other", ConferenceSID: conference},
		Status: v1alpha1.ConferenceRecoveryStatus{Disconnect: disconnect}}
	_, mutate := recoveryMutation(policy, ev("reservation.accepted", ping, pingAttrs, 2, ""), time.Time{})
	if changed, _ := mutate(rec); changed || rec.Status.Ping != nil {
		t.Errorf("another policy's recovery changed: %+v", rec.Status)
	}
	if _, mutate := recoveryMutation(policy, ev("reservation.accepted", ping, `{"type":"inbound"}`, 2, ""), time.Time{}); mutate != nil {
		t.Error("a task without a recovery marker concerns a recovery")
	}
	// A task marked as a ping but not on the Recovery Ping workflow is not the ping.
	onPing := policy.DeepCopy()
	onPing.Status.PingWorkflowSID = sid("WW", 9)
	copied := ev("reservation.accepted", ping, pingAttrs, 2, "")
	copied.WorkflowSID = sid("WW", 1)
	if _, mutate := recoveryMutation(onPing, copied, time.Time{}); mutate != nil {
		t.Error("a ping marker on another workflow was taken for the ping")
	}
}

func TestGracefulMarkApply(t *testing.T) {
	alice, bob := sid("WK", 1), sid("WK", 2)
	aliceLeg, bobLeg, customer := sid("CA", 1), sid("CA", 2), sid("CA", 3)
	left := metav1.NewTime(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	base := func() *v1alpha1.ConferenceRecovery {
		return &v1alpha1.ConferenceRecovery{Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: "p"},
			Status: v1alpha1.ConferenceRecoveryStatus{Participants: []v1alpha1.ParticipantStatus{
				{CallSID: customer, Role: v1alpha1.RoleCustomer},
				{CallSID: aliceLeg, Role: v1alpha1.RoleAgent},
				{CallSID: bobLeg, Role: v1alpha1.RoleAgent, WorkerSID: bob},
			}}}
	}
	tests := []struct {
		name       string
		mark       gracefulMark
		prepare    func(*v1alpha1.ConferenceRecovery)
		wantErr    error
		wantMarked []string
		check      func(*v1alpha1.ConferenceRecovery) error
	}{
		{name: "by call SID", mark: gracefulMark{callSID: aliceLeg, workerSID: alice, candidates: []string{aliceLeg}}, wantMarked: []string{aliceLeg},
			check: func(r *v1alpha1.ConferenceRecovery) error {
				if !r.Status.Participants[1].Graceful || r.Status.Participants[2].Graceful {
					return errors.New("wrong legs marked")
				}
				return nil
			}},
		{name: "another worker's leg", mark: gracefulMark{callSID: bobLeg, workerSID: alice}, wantErr: errForbidden},
		// Defect 4 of issue 9: the agent's first leg never carries a worker SID; another
		// worker's token must not mark it.
		{name: "a leg whose worker is not recorded, by another worker", mark: gracefulMark{callSID: aliceLeg, workerSID: bob}, wantErr: errForbidden},
		{name: "the customer's leg", mark: gracefulMark{callSID: customer, workerSID: alice, candidates: []string{customer}}, wantErr: errNoLeg},
		{name: "a supervisor may mark any leg", mark: gracefulMark{callSID: bobLeg, workerSID: alice, privileged: true}, wantMarked: []string{bobLeg}},
		{name: "by worker", mark: gracefulMark{workerSID: bob}, wantMarked: []string{bobLeg}},
		{name: "by worker through the task", mark: gracefulMark{workerSID: alice, candidates: []string{aliceLeg}}, wantMarked: []string{aliceLeg},
			check: func(r *v1alpha1.ConferenceRecovery) error {
				if p := r.Status.Participants[1]; p.WorkerSID != alice || !p.Graceful {
					return fmt.Errorf("leg %+v", p)
				}
				return nil
			}},
		{name: "a candidate owned by another worker is not taken", mark: gracefulMark{workerSID: alice, candidates: []string{bobLeg}}, wantErr: errNoLeg},
		{name: "no connected leg of the worker", mark: gracefulMark{workerSID: bob},
			prepare: func(r *v1alpha1.ConferenceRecovery) { r.Status.Participants[2].LeftAt = &left }, wantErr: errNoLeg},
		{name: "another policy", mark: gracefulMark{workerSID: bob, policyName: "other"}, wantErr: errNoLeg},
		// Only legs Twilio reported may be acted on: a call SID the conference never had is not
		// added (Decide would redial it into the new conference).
		{name: "a leg Twilio did not report", mark: gracefulMark{callSID: sid("CA", 9), workerSID: alice, candidates: []string{sid("CA", 9)}}, wantErr: errNoLeg},
		{name: "not even by a supervisor", mark: gracefulMark{callSID: sid("CA", 9), workerSID: alice, privileged: true}, wantErr: errNoLeg},
	}
	for _, tt := range tests {
		rec := base()
		if tt.prepare != nil {
			tt.prepare(rec)
		}
		if tt.mark.policyName == "" {
			tt.mark.policyName = "p"
		}
		m := tt.mark
		changed, err := m.apply(rec)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil {
			if diff := cmp.Diff(base().Status, rec.Status); diff != "" && tt.prepare == nil {
				t.Errorf("%s: a refused mark changed the status:\n%s", tt.name, diff)
			}
			continue
		}
		if !changed || !cmp.Equal(tt.wantMarked, m.marked) {
			t.Errorf("%s: changed %v, marked %v, want %v", tt.name, changed, m.marked, tt.wantMarked)
		}
		if tt.check != nil {
			if err := tt.check(rec); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}
		if again, _ := m.apply(rec); again {
			t.Errorf("%s: a second apply changed the status", tt.name)
		}
	}
}

func TestDecodeGracefulRequest(t *testing.T) {
	conference, call := sid("CF", 1), sid("CA", 2)
	good := []struct {
		body string
		want GracefulRequest
	}{
		{`{"conferenceSid":"` + conference + `"}`, GracefulRequest{ConferenceSID: conference}},
		{`{"conferenceSid":"` + conference + `","callSid":"` + call + `","token":"eyJx","extra":1}`, GracefulRequest{ConferenceSID: conference, CallSID: call, Token: "eyJx"}},
		{" {\"conferenceSid\":\"" + conference + "\"}\n", GracefulRequest{ConferenceSID: conference}},
	}
	for _, tt := range good {
		got, err := decodeGracefulRequest([]byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v", tt.body, got, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"conferenceSid":""}`, `{"conferenceSid":"CF1"}`,
		`{"conferenceSid":"CF` + strings.Repeat("AB", 16) + `"}`, // Twilio's hex is lower-case

		`{"conferenceSid":"` + conference + `","callSid":"CA1"}`,
		`{"conferenceSid":"` + conference + `"} {}`,
		`{"conferenceSid":"` + conference + `","token":"` + strings.Repeat("x", maxTokenLength+1) + `"}`,
		`{"conferenceSid":["` + conference + `"]}`,
	}
	for _, body := range bad {
		if got, err := decodeGracefulRequest([]byte(body)); err == nil {
			t.Errorf("%.60s: accepted as %+v", body, got)
		}
	}
}

// FuzzDecodeGracefulRequest checks that the companion's body decoder never panics and that what it
// accepts is well-formed and survives a round trip.
func FuzzDecodeGracefulRequest(f *testing.F) {
	f.Add([]byte(`{"conferenceSid":"` + sid("CF", 1) + `","callSid":"` + sid("CA", 2) + `"}`))
	f.Add([]byte(`{"conferenceSid":"` + sid("CF", 1) + `","token":"eyJ"}`))
	f.Add([]byte(`{"conferenceSid":null}`))
	f.Add([]byte(`{"conferenceSid":"CF` + strings.Repeat("a", 32) + `"}{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeGracefulRequest(body)
		if err != nil {
			return
		}
		if !events.ValidSID(got.ConferenceSID, "CF") || (got.CallSID != "" && !events.ValidSID(got.CallSID, "CA")) || len(got.Token) > maxTokenLength {
			t.Fatalf("accepted a bad request: %+v", got)
		}
		again, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		round, err := decodeGracefulRequest(again)
		if err != nil || round != got {
			t.Fatalf("round trip: %+v, %v; want %+v", round, err, got)
		}
	})
}
