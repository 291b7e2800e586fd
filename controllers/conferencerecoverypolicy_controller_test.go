package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// requiredEventTypes are the TaskRouter event types the policy's subscription must cover.
var requiredEventTypes = []string{
	"com.twilio.taskrouter.reservation.accepted",
	"com.twilio.taskrouter.reservation.completed",
	"com.twilio.taskrouter.reservation.rejected",
	"com.twilio.taskrouter.reservation.timeout",
	"com.twilio.taskrouter.reservation.wrapup",
	"com.twilio.taskrouter.task-queue.entered",
	"com.twilio.taskrouter.task.canceled",
	"com.twilio.taskrouter.task.completed",
	"com.twilio.taskrouter.task.created",
}

// twilioClient is a client of the simulator for the test's own checks and setup.
func twilioClient(t *testing.T) twilio.Client {
	t.Helper()
	c, err := twilio.New(twilio.Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), Rate: -1},
		twilio.WithRetry(4, time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// sinkReceiver stands in for the webhook server's Event Streams routes of both policy kinds: it
// validates a sink when its test event arrives — with the SID it reads from the policy's status, as
// the webhook server does, answering 503 (Twilio retries) while the status has none — and records
// the other events by path and type.
type sinkReceiver struct {
	t   *testing.T
	srv *httptest.Server
	tw  twilio.Client

	mu     sync.Mutex
	events []string // "path type workspaceSid"
}

func newSinkReceiver(t *testing.T) *sinkReceiver {
	rcv := &sinkReceiver{t: t, tw: twilioClient(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /twilio/{ns}/{policy}/events", rcv.serve)
	mux.HandleFunc("POST /twilio/{ns}/activity/{policy}/events", rcv.serve)
	rcv.srv = httptest.NewServer(mux)
	t.Cleanup(rcv.srv.Close)
	return rcv
}

// sinkOf reads the sink SID from the status of the policy the request's path names.
func sinkOf(r *http.Request) string {
	key := types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("policy")}
	if strings.Contains(r.URL.Path, "/activity/") {
		var policy v1alpha1.WorkerActivityPolicy
		if err := k8sClient.Get(r.Context(), key, &policy); err != nil {
			return ""
		}
		return policy.Status.SinkSID
	}
	var policy v1alpha1.ConferenceRecoveryPolicy
	if err := k8sClient.Get(r.Context(), key, &policy); err != nil {
		return ""
	}
	return policy.Status.SinkSID
}

func (rcv *sinkReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type cloudEvent struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	var batch []cloudEvent
	if err := json.Unmarshal(body, &batch); err != nil {
		var one cloudEvent
		if err := json.Unmarshal(body, &one); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		batch = []cloudEvent{one}
	}
	for _, ev := range batch {
		if ev.Type != "com.twilio.eventstreams.test-event" {
			var data struct {
				Payload struct {
					WorkspaceSID string `json:"workspace_sid"`
				} `json:"payload"`
			}
			_ = json.Unmarshal(ev.Data, &data)
			rcv.mu.Lock()
			rcv.events = append(rcv.events, r.URL.Path+" "+ev.Type+" "+data.Payload.WorkspaceSID)
			rcv.mu.Unlock()
			continue
		}
		var data struct {
			TestID string `json:"test_id"`
		}
		_ = json.Unmarshal(ev.Data, &data)
		sinkSID := sinkOf(r)
		if sinkSID == "" {
			http.Error(w, "no sink SID in the policy's status yet", http.StatusServiceUnavailable)
			return
		}
		// Twilio counts the test event as received once it has been answered: validate after that.
		go func(sinkSID, testID string) {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if err := rcv.tw.ValidateSink(context.Background(), sinkSID, testID); err == nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(sinkSID, data.TestID)
	}
	w.WriteHeader(http.StatusOK)
}

// received says whether an event of the type for the workspace arrived, at any path.
func (rcv *sinkReceiver) received(eventType, workspaceSID string) bool {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return slices.ContainsFunc(rcv.events, func(e string) bool { return strings.HasSuffix(e, " "+eventType+" "+workspaceSID) })
}

// receivedAt says whether an event of the type for the workspace arrived at the path.
func (rcv *sinkReceiver) receivedAt(path, eventType, workspaceSID string) bool {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return slices.Contains(rcv.events, path+" "+eventType+" "+workspaceSID)
}

// policyFixture is a namespace with a credentials Secret and a contact centre of its own.
type policyFixture struct {
	t  *testing.T
	ns string
	cc *twiliosim.ContactCentre
	tw twilio.Client
}

func newPolicyFixture(t *testing.T, spec twiliosim.ContactCentreSpec) *policyFixture {
	t.Helper()
	ns := newNamespace(t)
	simSecret(t, ns, "twilio")
	spec.Name = ns
	cc, err := sim.BuildContactCentre(spec)
	if err != nil {
		t.Fatal(err)
	}
	// On failure, the Events of the namespace tell what the operator did.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return
		}
		for _, e := range list.Items {
			t.Logf("event %s %s/%s: %s %s: %s", e.CreationTimestamp.Format(time.TimeOnly), e.Regarding.Kind, e.Regarding.Name, e.Type, e.Reason, e.Note)
		}
	})
	return &policyFixture{t: t, ns: ns, cc: cc, tw: twilioClient(t)}
}

func (f *policyFixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	f.t.Cleanup(cancel)
	return ctx
}

// workflow creates a workflow with exactly this configuration text; "{Q:name}" is replaced by the
// SID of the named queue.
func (f *policyFixture) workflow(name, configuration string) string {
	f.t.Helper()
	for q, sid := range f.cc.Queues {
		configuration = strings.ReplaceAll(configuration, "{Q:"+q+"}", sid)
	}
	wf := must[twilio.Workflow](f.t)(f.tw.CreateWorkflow(f.ctx(), f.cc.WorkspaceSID, twilio.WorkflowCreate{FriendlyName: name, Configuration: configuration}))
	return wf.SID
}

func (f *policyFixture) configuration(workflowSID string) string {
	f.t.Helper()
	return must[twilio.Workflow](f.t)(f.tw.FetchWorkflow(f.ctx(), f.cc.WorkspaceSID, workflowSID)).Configuration
}

func (f *policyFixture) workspace() twiliosim.WorkspaceState {
	for _, ws := range sim.Snapshot().Workspaces {
		if ws.SID == f.cc.WorkspaceSID {
			return ws
		}
	}
	f.t.Fatalf("workspace %s is gone", f.cc.WorkspaceSID)
	return twiliosim.WorkspaceState{}
}

func (f *policyFixture) queuesNamed(name string) []twiliosim.QueueState {
	var out []twiliosim.QueueState
	for _, q := range f.workspace().Queues {
		if q.Name == name {
			out = append(out, q)
		}
	}
	return out
}

func (f *policyFixture) workflowsNamed(name string) []twiliosim.WorkflowState {
	var out []twiliosim.WorkflowState
	for _, wf := range f.workspace().Workflows {
		if wf.Name == name {
			out = append(out, wf)
		}
	}
	return out
}

func sinksTo(destination string) []twiliosim.SinkState {
	var out []twiliosim.SinkState
	for _, s := range sim.Snapshot().Sinks {
		if s.Destination == destination {
			out = append(out, s)
		}
	}
	return out
}

func (f *policyFixture) policy(name string, spec v1alpha1.ConferenceRecoveryPolicySpec) *v1alpha1.ConferenceRecoveryPolicy {
	f.t.Helper()
	spec.Twilio = v1alpha1.TwilioSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"}, WorkspaceSID: f.cc.WorkspaceSID}
	p := &v1alpha1.ConferenceRecoveryPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), p); err != nil {
		f.t.Fatal(err)
	}
	// Whatever a test leaves behind is torn down, so no sink outlives its receiver.
	f.t.Cleanup(func() { f.deletePolicy(p) })
	return p
}

// waitPolicy waits until the policy's status describes its current generation and satisfies cond.
func waitPolicy(t *testing.T, p *v1alpha1.ConferenceRecoveryPolicy, cond func(*v1alpha1.ConferenceRecoveryPolicy) error) {
	t.Helper()
	eventually(t, waitFor, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
		}
		return cond(p)
	})
}

// updateSpec changes the policy's spec, retrying when the operator wrote the object in between.
func updateSpec(t *testing.T, p *v1alpha1.ConferenceRecoveryPolicy, change func(*v1alpha1.ConferenceRecoveryPolicySpec)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		change(&p.Spec)
		return k8sClient.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func ready(p *v1alpha1.ConferenceRecoveryPolicy) error {
	return conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReconciled)
}

// deletePolicy deletes the policy and waits until it is gone.
func (f *policyFixture) deletePolicy(p *v1alpha1.ConferenceRecoveryPolicy) {
	f.t.Helper()
	if err := k8sClient.Delete(context.Background(), p); client.IgnoreNotFound(err) != nil {
		f.t.Fatal(err)
	}
	eventually(f.t, waitFor, func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(p), &v1alpha1.ConferenceRecoveryPolicy{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("policy still there (%v)", err)
	})
}

const directFilter = `{"filter_friendly_name":"Direct to an Agent","expression":"targetWorkerSid != null","targets":[{"queue":"%s","known_worker_sid":"task.targetWorkerSid"}]}`

// TestRecoveryPolicySetsUpAndCleansUp: in a workspace with none of the recovery objects, the policy
// creates the Recovery Ping queue and workflow and the reconnect queue, prepends the filter to each
// protected workflow leaving the rest byte for byte, creates a sink and subscription that deliver to
// the policy's URL, stays put on a re-reconcile, and removes all of it when deleted.
func TestRecoveryPolicySetsUpAndCleansUp(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{
		Queues: []twiliosim.QueueSpec{{Name: "Sales", TargetWorkers: "1==1"}},
	})
	rcv := newSinkReceiver(t)
	prettyConfig := "{\n  \"task_routing\": {\n    \"filters\": [\n      {\n        \"filter_friendly_name\": \"VIP\",\n        \"expression\": \"tier == 'gold' AND amount > 1.50\",\n        \"targets\": [{\"queue\": \"{Q:Sales}\", \"priority\": \"10\", \"timeout\": 30}],\n        \"x_note\": \"kept as written\"\n      }\n    ],\n    \"default_filter\": {\"queue\": \"{Q:Sales}\"}\n  }\n}"
	sales := f.cc.Queues["Sales"]
	voiceA := f.workflow("Voice A", prettyConfig)
	prettyConfig = strings.ReplaceAll(prettyConfig, "{Q:Sales}", sales)
	compactConfig := `{"task_routing":{"default_filter":{"queue":"` + sales + `"}}}`
	voiceB := f.workflow("Voice B", compactConfig)

	p := f.policy("voice", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voiceA, voiceB},
		PublicBaseURL:         rcv.srv.URL + "/",
	})
	waitPolicy(t, p, ready)

	// TaskRouter objects, created as seed 001's README sets them up by hand.
	st := p.Status
	pingQueues, everyone := f.queuesNamed("Recovery Ping"), f.queuesNamed("Everyone")
	if len(pingQueues) != 1 || pingQueues[0].SID != st.PingQueueSID || pingQueues[0].TargetWorkers != "1==1" {
		t.Fatalf("Recovery Ping queues %+v, status %s", pingQueues, st.PingQueueSID)
	}
	if len(everyone) != 1 || everyone[0].SID != st.ReconnectQueueSID || everyone[0].TargetWorkers != "1==1" {
		t.Fatalf("Everyone queues %+v, status %s", everyone, st.ReconnectQueueSID)
	}
	pingWorkflows := f.workflowsNamed("Recovery Ping")
	if len(pingWorkflows) != 1 || pingWorkflows[0].SID != st.PingWorkflowSID {
		t.Fatalf("Recovery Ping workflows %+v, status %s", pingWorkflows, st.PingWorkflowSID)
	}
	var pingConfig struct {
		TaskRouting struct {
			Filters []struct {
				Name       string `json:"filter_friendly_name"`
				Expression string `json:"expression"`
				Targets    []map[string]any
			} `json:"filters"`
			DefaultFilter map[string]any `json:"default_filter"`
		} `json:"task_routing"`
	}
	if err := json.Unmarshal([]byte(pingWorkflows[0].Configuration), &pingConfig); err != nil {
		t.Fatal(err)
	}
	routing := pingConfig.TaskRouting
	if len(routing.Filters) != 1 || routing.Filters[0].Name != "Ping Disconnected Agent" || routing.Filters[0].Expression != "disconnectedWorkerSid != null" ||
		len(routing.Filters[0].Targets) != 1 || routing.Filters[0].Targets[0]["queue"] != st.PingQueueSID ||
		routing.Filters[0].Targets[0]["known_worker_sid"] != "task.disconnectedWorkerSid" || len(routing.Filters[0].Targets[0]) != 2 ||
		routing.DefaultFilter["queue"] != st.PingQueueSID {
		t.Fatalf("Recovery Ping workflow configuration: %s", pingWorkflows[0].Configuration)
	}

	// The filter goes first; everything else stays as written.
	filter := fmt.Sprintf(directFilter, st.ReconnectQueueSID)
	wantA := strings.Replace(prettyConfig, "[\n      {", "[\n      "+filter+",\n      {", 1)
	if got := f.configuration(voiceA); got != wantA {
		t.Fatalf("Voice A configuration:\n got %s\nwant %s", got, wantA)
	}
	wantB := `{"task_routing":{"filters":[` + filter + `],"default_filter":{"queue":"` + sales + `"}}}`
	if got := f.configuration(voiceB); got != wantB {
		t.Fatalf("Voice B configuration:\n got %s\nwant %s", got, wantB)
	}
	wantEntries := []v1alpha1.ProtectedWorkflowStatus{
		{SID: voiceA, Name: "Voice A", FilterInstalled: true, FilterAdded: true},
		{SID: voiceB, Name: "Voice B", FilterInstalled: true, FilterAdded: true},
	}
	if !slices.Equal(st.ProtectedWorkflows, wantEntries) {
		t.Fatalf("protectedWorkflows %+v, want %+v", st.ProtectedWorkflows, wantEntries)
	}

	// Event Streams: one active sink to the policy's URL (trailing slash of the base trimmed),
	// subscribed to every type, and events actually arriving there.
	url := rcv.srv.URL + "/twilio/" + f.ns + "/voice/events"
	if st.WebhookURL != url {
		t.Fatalf("webhookUrl %q, want %q", st.WebhookURL, url)
	}
	sinks := sinksTo(url)
	if len(sinks) != 1 || sinks[0].SID != st.SinkSID || sinks[0].Status != "active" || !sinks[0].Batch {
		t.Fatalf("sinks to %s: %+v (status %s)", url, sinks, st.SinkSID)
	}
	if !slices.Equal(sinks[0].Types, requiredEventTypes) {
		t.Fatalf("subscribed types %v, want %v", sinks[0].Types, requiredEventTypes)
	}
	if st.SubscriptionSID == "" {
		t.Fatal("no subscriptionSid")
	}
	wantCreated := []string{st.PingQueueSID, st.PingWorkflowSID, st.ReconnectQueueSID, st.SinkSID, st.SubscriptionSID}
	if got := slices.Sorted(slices.Values(st.CreatedSIDs)); !slices.Equal(got, slices.Sorted(slices.Values(wantCreated))) {
		t.Fatalf("createdSids %v, want %v", got, wantCreated)
	}
	task := must[twilio.Task](t)(f.tw.CreateTask(f.ctx(), f.cc.WorkspaceSID, twilio.TaskCreate{WorkflowSID: voiceB, Attributes: `{"type":"inbound"}`}))
	eventually(t, waitFor, func() error {
		if !rcv.received("com.twilio.taskrouter.task.created", f.cc.WorkspaceSID) {
			return fmt.Errorf("task.created of %s not delivered to the policy's URL", task.SID)
		}
		return nil
	})
	if _, err := f.tw.UpdateTask(f.ctx(), f.cc.WorkspaceSID, task.SID, twilio.TaskUpdate{AssignmentStatus: ptr("canceled"), Reason: ptr("test over")}); err != nil {
		t.Fatal(err)
	}

	// A spec change reconciles again: nothing is added twice.
	updateSpec(t, p, func(spec *v1alpha1.ConferenceRecoveryPolicySpec) { spec.Reporting.FollowedBy = "Reconnected" })
	waitPolicy(t, p, ready)
	if got := f.configuration(voiceA); got != wantA {
		t.Fatalf("Voice A changed on a second reconcile:\n got %s\nwant %s", got, wantA)
	}
	if got := f.configuration(voiceB); got != wantB {
		t.Fatalf("Voice B changed on a second reconcile:\n got %s", got)
	}
	if n, m, k := len(f.queuesNamed("Recovery Ping")), len(f.workflowsNamed("Recovery Ping")), len(sinksTo(url)); n != 1 || m != 1 || k != 1 {
		t.Fatalf("after a second reconcile: %d ping queues, %d ping workflows, %d sinks", n, m, k)
	}
	if p.Status.PingWorkflowSID != st.PingWorkflowSID || p.Status.SinkSID != st.SinkSID || p.Status.SubscriptionSID != st.SubscriptionSID {
		t.Fatalf("status changed on a second reconcile: %+v, was %+v", p.Status, st)
	}

	// Deleting the policy removes what the operator added, and only that.
	f.deletePolicy(p)
	if got := f.configuration(voiceA); got != prettyConfig {
		t.Fatalf("Voice A after deletion:\n got %s\nwant %s", got, prettyConfig)
	}
	// Voice B had no filters member; an empty one is left, which routes the same.
	if got, want := f.configuration(voiceB), `{"task_routing":{"filters":[],"default_filter":{"queue":"`+sales+`"}}}`; got != want {
		t.Fatalf("Voice B after deletion:\n got %s\nwant %s", got, want)
	}
	if q, w, e := f.queuesNamed("Recovery Ping"), f.workflowsNamed("Recovery Ping"), f.queuesNamed("Everyone"); len(q)+len(w)+len(e) != 0 {
		t.Fatalf("left behind: ping queues %v, ping workflows %v, Everyone %v", q, w, e)
	}
	if s := sinksTo(url); len(s) != 0 {
		t.Fatalf("sinks left: %+v", s)
	}
	if len(f.queuesNamed("Sales")) != 1 {
		t.Fatal("the Sales queue, which the operator did not create, is gone")
	}
}

func ptr[T any](v T) *T { return &v }

// TestRecoveryPolicyAdoptsExisting: a workspace already set up by hand (as seed 001's README says),
// one workflow already carrying the filter, and a sink to the policy's URL subscribed to one type.
// The policy adopts all of it, adds only what is missing, and on deletion keeps what it adopted.
func TestRecoveryPolicyAdoptsExisting(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{
		Queues: []twiliosim.QueueSpec{{Name: "Recovery Ping", TargetWorkers: "1==1"}, {Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Recovery Ping", Configuration: map[string]any{"task_routing": map[string]any{
			"filters": []any{map[string]any{"filter_friendly_name": "Ping Disconnected Agent", "expression": "disconnectedWorkerSid != null",
				"targets": []any{map[string]any{"queue": "Recovery Ping", "known_worker_sid": "task.disconnectedWorkerSid"}}}},
			"default_filter": map[string]any{"queue": "Recovery Ping"},
		}}}},
	})
	rcv := newSinkReceiver(t)
	everyone := f.cc.Queues["Everyone"]
	// Filter written by hand, with its own spacing: recognised by what it does.
	handFilter := `{"filter_friendly_name": "Direct to an Agent","expression": "targetWorkerSid!=null","targets": [{"queue": "{Q:Everyone}","known_worker_sid": "task.targetWorkerSid"}]}`
	installedConfig := `{"task_routing": {"filters": [` + handFilter + `, {"expression": "1==1", "targets": [{"queue": "{Q:Everyone}"}]}]}}`
	voice := f.workflow("Voice", installedConfig)
	installedConfig = strings.ReplaceAll(installedConfig, "{Q:Everyone}", everyone)
	plainConfig := `{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"` + everyone + `"}]}]}}`
	voice2 := f.workflow("Voice 2", plainConfig)

	url := rcv.srv.URL + "/twilio/" + f.ns + "/adopt/events"
	ctx := f.ctx()
	sink := must[twilio.Sink](t)(f.tw.CreateSink(ctx, twilio.SinkCreate{Description: "hand made", Destination: url}))
	t.Cleanup(func() { _ = f.tw.DeleteSink(context.Background(), sink.SID) })
	// Twilio subscribes only an active sink: this one was tested and validated by hand.
	if err := sim.ActivateSink(sink.SID); err != nil {
		t.Fatal(err)
	}
	theirs := must[twilio.Subscription](t)(f.tw.CreateSubscription(ctx, twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "hand made",
		Types: []string{"com.twilio.taskrouter.task.created", "com.twilio.taskrouter.worker.activity.update"}}))

	p := f.policy("adopt", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voice, voice2},
		PublicBaseURL:         rcv.srv.URL,
	})
	waitPolicy(t, p, ready)
	if p.Generation != 1 {
		t.Fatalf("the operator changed the policy's spec (generation %d)", p.Generation)
	}
	st := p.Status
	if st.PingQueueSID != f.cc.Queues["Recovery Ping"] || st.PingWorkflowSID != f.cc.Workflows["Recovery Ping"] || st.ReconnectQueueSID != everyone {
		t.Fatalf("did not adopt the existing objects: %+v", st)
	}
	if st.SinkSID != sink.SID {
		t.Fatalf("sinkSid %s, want the existing %s", st.SinkSID, sink.SID)
	}
	if st.SubscriptionSID == "" || st.SubscriptionSID == theirs.SID {
		t.Fatalf("subscriptionSid %q: the missing types need a subscription of the operator's", st.SubscriptionSID)
	}
	if !slices.Equal(st.CreatedSIDs, []string{st.SubscriptionSID}) {
		t.Fatalf("createdSids %v, want only the new subscription", st.CreatedSIDs)
	}
	subs := must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(ctx, sink.SID))
	covered := map[string]int{}
	for _, s := range subs {
		for _, typ := range s.Types {
			covered[typ]++
		}
	}
	for _, typ := range requiredEventTypes {
		if covered[typ] != 1 {
			t.Errorf("%s is subscribed %d times, want once", typ, covered[typ])
		}
	}
	if got := f.configuration(voice); got != installedConfig {
		t.Fatalf("a workflow that already had the filter was changed:\n got %s\nwant %s", got, installedConfig)
	}
	filter := fmt.Sprintf(directFilter, everyone)
	if got, want := f.configuration(voice2), strings.Replace(plainConfig, `[{"expression"`, `[`+filter+`,{"expression"`, 1); got != want {
		t.Fatalf("Voice 2:\n got %s\nwant %s", got, want)
	}
	wantEntries := []v1alpha1.ProtectedWorkflowStatus{
		{SID: voice, Name: "Voice", FilterInstalled: true},
		{SID: voice2, Name: "Voice 2", FilterInstalled: true, FilterAdded: true},
	}
	if !slices.Equal(st.ProtectedWorkflows, wantEntries) {
		t.Fatalf("protectedWorkflows %+v, want %+v", st.ProtectedWorkflows, wantEntries)
	}

	f.deletePolicy(p)
	if len(f.queuesNamed("Recovery Ping")) != 1 || len(f.workflowsNamed("Recovery Ping")) != 1 || len(f.queuesNamed("Everyone")) != 1 {
		t.Fatal("an adopted queue or workflow was deleted")
	}
	if got := f.configuration(voice); got != installedConfig {
		t.Fatalf("the adopted filter was removed:\n got %s\nwant %s", got, installedConfig)
	}
	if got := f.configuration(voice2); got != plainConfig {
		t.Fatalf("Voice 2 after deletion:\n got %s\nwant %s", got, plainConfig)
	}
	subs = must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(ctx, sink.SID))
	if len(subs) != 1 || subs[0].SID != theirs.SID {
		t.Fatalf("subscriptions of the adopted sink after deletion: %+v, want only %s", subs, theirs.SID)
	}
}

// TestRecoveryPolicyMissingWorkflow: a protected workflow that does not exist is reported by SID,
// while the rest is set up; without spec.publicBaseUrl the manager's public URL is used, and turning
// Event Streams management off deletes the sink the operator made.
func TestRecoveryPolicyMissingWorkflow(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{})
	missing := "WW" + strings.Repeat("0", 32)
	p := f.policy("missing", v1alpha1.ConferenceRecoveryPolicySpec{ProtectedWorkflowSIDs: []string{missing}})
	url := webhookURL + "/twilio/" + f.ns + "/missing/events"
	waitPolicy(t, p, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		for _, typ := range []string{v1alpha1.ConditionTaskRouterConfigured, v1alpha1.ConditionReady} {
			if err := conditionIs(p.Status.Conditions, typ, metav1.ConditionFalse, "WorkflowNotFound"); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, typ); !strings.Contains(c.Message, missing) {
				return fmt.Errorf("%s message %q does not name %s", typ, c.Message, missing)
			}
		}
		if p.Status.SinkSID == "" {
			return fmt.Errorf("no sink yet")
		}
		return nil
	})
	if p.Status.PingQueueSID == "" || p.Status.PingWorkflowSID == "" {
		t.Fatalf("the ping queue and workflow were not set up: %+v", p.Status)
	}
	if want := []v1alpha1.ProtectedWorkflowStatus{{SID: missing}}; !slices.Equal(p.Status.ProtectedWorkflows, want) {
		t.Fatalf("protectedWorkflows %+v", p.Status.ProtectedWorkflows)
	}
	if p.Status.WebhookURL != url || len(sinksTo(url)) != 1 {
		t.Fatalf("webhookUrl %q, want %q; sinks %+v", p.Status.WebhookURL, url, sinksTo(url))
	}

	off := false
	updateSpec(t, p, func(spec *v1alpha1.ConferenceRecoveryPolicySpec) { spec.EventStream.Managed = &off })
	waitPolicy(t, p, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionEventStreamReady, metav1.ConditionTrue, "NotManaged")
	})
	if s := sinksTo(url); len(s) != 0 || p.Status.SinkSID != "" {
		t.Fatalf("sink left after management was turned off: %+v (status %q)", s, p.Status.SinkSID)
	}
}

// TestRecoveryPolicyReleasedWithoutCredentials: a policy whose Secret is gone is still deleted, with
// a Warning event naming what was left in Twilio.
func TestRecoveryPolicyReleasedWithoutCredentials(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Queues: []twiliosim.QueueSpec{{Name: "Everyone"}}})
	voice := f.workflow("Voice", `{"task_routing":{"default_filter":{"queue":"{Q:Everyone}"}}}`)
	off := false
	p := f.policy("orphan", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voice},
		EventStream:           v1alpha1.EventStreamSpec{Managed: &off},
	})
	waitPolicy(t, p, ready)
	pingWorkflow := p.Status.PingWorkflowSID
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "twilio"}}
	if err := k8sClient.Delete(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	// Once the policy reports the Secret missing, the operator's cache knows it is gone.
	waitPolicy(t, p, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionCredentialsResolved, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	})
	f.deletePolicy(p)
	eventually(t, waitFor, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == "orphan" && e.Type == "Warning" && e.Reason == "CleanupSkipped" && strings.Contains(e.Note, pingWorkflow) {
				return nil
			}
		}
		return fmt.Errorf("no CleanupSkipped warning naming %s among %d events", pingWorkflow, len(list.Items))
	})
	if len(f.workflowsNamed("Recovery Ping")) != 1 {
		t.Fatal("the ping workflow was deleted without credentials?")
	}
}

// TestRecoveryRetention: finished recoveries past spec.retention are deleted, others stay, and the
// counts follow the recoveries that remain.
func TestRecoveryRetention(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{})
	off := false
	p := f.policy("keep", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{"WW" + strings.Repeat("1", 32)},
		Retention:             &metav1.Duration{Duration: time.Minute},
		Management:            v1alpha1.ManagementSpec{TaskRouter: &off},
		EventStream:           v1alpha1.EventStreamSpec{Managed: &off},
	})
	now := sim.Now()
	n := 0
	recovery := func(name, policy string, phase v1alpha1.RecoveryPhase, finishedAgo time.Duration) *v1alpha1.ConferenceRecovery {
		t.Helper()
		n++
		conf := fmt.Sprintf("CF%08x%024x", crc32.ChecksumIEEE([]byte(f.ns)), n)
		rec := &v1alpha1.ConferenceRecovery{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name, Labels: map[string]string{v1alpha1.PolicyLabel: policy}},
			Spec:       v1alpha1.ConferenceRecoverySpec{PolicyName: policy, ConferenceSID: conf},
		}
		if err := k8sClient.Create(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if phase == "" {
			return rec
		}
		// The ConferenceRecovery controller writes a new recovery's status too: retry on conflict.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(rec), rec); err != nil {
				return err
			}
			rec.Status.Phase = phase
			if finishedAgo >= 0 {
				rec.Status.FinishedAt = &metav1.Time{Time: now.Add(-finishedAgo)}
			}
			return k8sClient.Status().Update(context.Background(), rec)
		})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	expired := recovery("expired", "keep", v1alpha1.PhaseRecovered, 2*time.Minute)
	recent := recovery("recent", "keep", v1alpha1.PhaseFailed, 30*time.Second)
	recovery("ended", "keep", v1alpha1.PhaseEnded, 0)
	recovery("monitoring", "keep", "", -1)
	otherPolicy := recovery("other", "someone-else", v1alpha1.PhaseRecovered, time.Hour)

	exists := func(rec *v1alpha1.ConferenceRecovery) bool {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(rec), &v1alpha1.ConferenceRecovery{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	// countsMatch compares status.recoveries with the recoveries of the policy as they are now.
	countsMatch := func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		var list v1alpha1.ConferenceRecoveryList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(f.ns), client.MatchingLabels{v1alpha1.PolicyLabel: "keep"}); err != nil {
			return err
		}
		var want v1alpha1.RecoveryCounts
		for _, r := range list.Items {
			switch r.Status.Phase {
			case v1alpha1.PhaseRecovered:
				want.Recovered++
			case v1alpha1.PhaseFailed:
				want.Failed++
			case v1alpha1.PhaseAbandoned:
				want.Abandoned++
			case v1alpha1.PhaseEnded:
				want.Ended++
			default:
				want.InProgress++
			}
		}
		if p.Status.Recoveries != want {
			return fmt.Errorf("recoveries %+v, want %+v (of %d recoveries)", p.Status.Recoveries, want, len(list.Items))
		}
		return nil
	}
	eventually(t, waitFor, func() error {
		if exists(expired) {
			return fmt.Errorf("the expired recovery is still there")
		}
		return nil
	})
	if !exists(recent) || !exists(otherPolicy) {
		t.Fatal("a recovery that was not expired, or not the policy's, was deleted")
	}
	waitPolicy(t, p, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		if err := countsMatch(p); err != nil {
			return err
		}
		if p.Status.Recoveries.Failed != 1 || p.Status.Recoveries.Ended != 1 || p.Status.Recoveries.InProgress < 1 {
			return fmt.Errorf("recoveries %+v, want 1 failed, 1 ended, 1 or more in progress", p.Status.Recoveries)
		}
		return nil
	})

	// A minute later the recent one has expired too; a change to it brings the policy back.
	sim.Advance(time.Minute)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(recent), recent); err != nil {
			return err
		}
		recent.Labels["poke"] = "1"
		return k8sClient.Update(context.Background(), recent)
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, func() error {
		if exists(recent) {
			return fmt.Errorf("the recent recovery did not expire")
		}
		return nil
	})
	if !exists(otherPolicy) {
		t.Fatal("another policy's recovery was deleted")
	}
	waitPolicy(t, p, countsMatch)
}

// TestRecoveryPolicyRejectedCredentials: credentials Twilio refuses are reported as such, and
// fixing the Secret is enough for the policy to become ready.
func TestRecoveryPolicyRejectedCredentials(t *testing.T) {
	ns := newNamespace(t)
	cc, err := sim.BuildContactCentre(twiliosim.ContactCentreSpec{Name: ns, Queues: []twiliosim.QueueSpec{{Name: "Everyone"}}})
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "twilio"},
		StringData: map[string]string{"accountSid": sim.AccountSID(), "authToken": "wrong123"}}
	if err := k8sClient.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	f := &policyFixture{t: t, ns: ns, cc: cc, tw: twilioClient(t)}
	voice := f.workflow("Voice", `{"task_routing":{"default_filter":{"queue":"{Q:Everyone}"}}}`)
	off := false
	p := f.policy("voice", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voice},
		EventStream:           v1alpha1.EventStreamSpec{Managed: &off},
	})
	waitPolicy(t, p, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		if err := conditionIs(p.Status.Conditions, v1alpha1.ConditionCredentialsResolved, metav1.ConditionTrue, v1alpha1.ReasonCredentialsResolved); err != nil {
			return err
		}
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "TwilioAuthenticationFailed")
	})
	if len(f.queuesNamed("Recovery Ping")) != 0 {
		t.Fatal("something was created with rejected credentials")
	}
	secret.StringData = map[string]string{"authToken": sim.AuthToken()}
	if err := k8sClient.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, p, ready)
}

// TestRecoveryPolicyTaskRouterUnmanaged: with spec.management.taskRouter false nothing is created
// and what is missing is reported; turning it off on a policy that set things up hands them over,
// so deleting the policy keeps them.
func TestRecoveryPolicyTaskRouterUnmanaged(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Queues: []twiliosim.QueueSpec{{Name: "Everyone"}}})
	voice := f.workflow("Voice", `{"task_routing":{"filters":[],"default_filter":{"queue":"{Q:Everyone}"}}}`)
	off := false
	bare := f.policy("bare", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voice},
		Management:            v1alpha1.ManagementSpec{TaskRouter: &off},
		EventStream:           v1alpha1.EventStreamSpec{Managed: &off},
	})
	waitPolicy(t, bare, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		if err := conditionIs(p.Status.Conditions, v1alpha1.ConditionTaskRouterConfigured, metav1.ConditionFalse, "PingQueueNotFound"); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionTaskRouterConfigured)
		// The missing queue and workflow, and the workflow without the filter.
		for _, want := range []string{`TaskQueue "Recovery Ping" not found`, `Workflow "Recovery Ping" not found`, voice} {
			if !strings.Contains(c.Message, want) {
				return fmt.Errorf("message %q does not mention %s", c.Message, want)
			}
		}
		return nil
	})
	if len(f.queuesNamed("Recovery Ping")) != 0 || len(f.workflowsNamed("Recovery Ping")) != 0 || len(bare.Status.CreatedSIDs) != 0 {
		t.Fatal("an unmanaged policy created something")
	}
	f.deletePolicy(bare)

	managed := f.policy("managed", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{voice},
		EventStream:           v1alpha1.EventStreamSpec{Managed: &off},
	})
	waitPolicy(t, managed, ready)
	withFilter := f.configuration(voice)
	updateSpec(t, managed, func(spec *v1alpha1.ConferenceRecoveryPolicySpec) { spec.Management.TaskRouter = &off })
	waitPolicy(t, managed, func(p *v1alpha1.ConferenceRecoveryPolicy) error {
		if err := ready(p); err != nil {
			return err
		}
		if len(p.Status.CreatedSIDs) != 0 || len(p.Status.ProtectedWorkflows) != 1 || p.Status.ProtectedWorkflows[0].FilterAdded {
			return fmt.Errorf("not handed over: %+v", p.Status)
		}
		return nil
	})
	f.deletePolicy(managed)
	if len(f.queuesNamed("Recovery Ping")) != 1 || len(f.workflowsNamed("Recovery Ping")) != 1 || f.configuration(voice) != withFilter {
		t.Fatal("objects handed over to the user were removed with the policy")
	}
}

// TestRecoveryPolicySharedObjects: two policies on one workspace protect the same workflow. The
// second adopts what the first created; deleting the first leaves what the second still uses.
func TestRecoveryPolicySharedObjects(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Queues: []twiliosim.QueueSpec{{Name: "Sales"}}})
	voice := f.workflow("Voice", `{"task_routing":{"filters":[],"default_filter":{"queue":"{Q:Sales}"}}}`)
	off := false
	spec := v1alpha1.ConferenceRecoveryPolicySpec{ProtectedWorkflowSIDs: []string{voice}, EventStream: v1alpha1.EventStreamSpec{Managed: &off}}
	first := f.policy("first", spec)
	waitPolicy(t, first, ready)
	second := f.policy("second", spec)
	waitPolicy(t, second, ready)
	if len(second.Status.CreatedSIDs) != 0 || second.Status.ProtectedWorkflows[0].FilterAdded {
		t.Fatalf("the second policy claims objects the first created: %+v", second.Status)
	}
	withFilter := f.configuration(voice)
	f.deletePolicy(first)
	if len(f.queuesNamed("Recovery Ping")) != 1 || len(f.workflowsNamed("Recovery Ping")) != 1 || len(f.queuesNamed("Everyone")) != 1 {
		t.Fatal("deleting the first policy removed objects the second uses")
	}
	if got := f.configuration(voice); got != withFilter {
		t.Fatalf("deleting the first policy removed the filter the second relies on: %s", got)
	}
}
