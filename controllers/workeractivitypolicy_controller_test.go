package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// activityEventTypes are the TaskRouter event types a WorkerActivityPolicy's subscription must cover.
var activityEventTypes = []string{
	"com.twilio.taskrouter.activity.created",
	"com.twilio.taskrouter.activity.deleted",
	"com.twilio.taskrouter.activity.updated",
	"com.twilio.taskrouter.reservation.accepted",
	"com.twilio.taskrouter.reservation.canceled",
	"com.twilio.taskrouter.reservation.completed",
	"com.twilio.taskrouter.reservation.created",
	"com.twilio.taskrouter.reservation.rejected",
	"com.twilio.taskrouter.reservation.rescinded",
	"com.twilio.taskrouter.reservation.timeout",
	"com.twilio.taskrouter.reservation.wrapup",
	"com.twilio.taskrouter.task.canceled",
	"com.twilio.taskrouter.task.completed",
	"com.twilio.taskrouter.task.deleted",
	"com.twilio.taskrouter.task.system-deleted",
	"com.twilio.taskrouter.task.updated",
	"com.twilio.taskrouter.task.wrapup",
	"com.twilio.taskrouter.worker.activity.update",
	"com.twilio.taskrouter.worker.attributes.update",
}

// fakeStats is the activity engine as the controller sees it: the aggregates a test sets for a
// policy, and how often the controller asked.
type fakeStats struct {
	mu    sync.Mutex
	stats map[types.NamespacedName]activity.PolicyStats
	asked map[types.NamespacedName]int
}

// Stats implements activity.StatsSource: a policy no test set stats for is not run by the engine.
func (f *fakeStats) Stats(policy types.NamespacedName) (activity.PolicyStats, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked == nil {
		f.asked = map[types.NamespacedName]int{}
	}
	f.asked[policy]++
	s, ok := f.stats[policy]
	return s, ok
}

func (f *fakeStats) set(policy types.NamespacedName, s activity.PolicyStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stats == nil {
		f.stats = map[types.NamespacedName]activity.PolicyStats{}
	}
	f.stats[policy] = s
}

func (f *fakeStats) timesAsked(policy types.NamespacedName) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[policy]
}

// synced are the stats of an engine that has taken the policy and has nothing to report yet.
var synced = activity.PolicyStats{Synced: true}

// activityPolicy creates a WorkerActivityPolicy in the fixture's namespace and workspace; it is
// deleted (and its finalizer waited for) when the test ends.
func (f *policyFixture) activityPolicy(name string, spec v1alpha1.WorkerActivityPolicySpec) *v1alpha1.WorkerActivityPolicy {
	f.t.Helper()
	spec.Twilio = v1alpha1.TwilioSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"}, WorkspaceSID: f.cc.WorkspaceSID}
	p := &v1alpha1.WorkerActivityPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), p); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { f.deleteActivityPolicy(p) })
	return p
}

// deleteActivityPolicy deletes the policy and waits until it is gone.
func (f *policyFixture) deleteActivityPolicy(p *v1alpha1.WorkerActivityPolicy) {
	f.t.Helper()
	if err := k8sClient.Delete(context.Background(), p); client.IgnoreNotFound(err) != nil {
		f.t.Fatal(err)
	}
	eventually(f.t, waitFor, func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(p), &v1alpha1.WorkerActivityPolicy{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("policy still there (%v)", err)
	})
}

// waitActivityPolicy waits until the policy's status describes its current generation and
// satisfies cond.
func waitActivityPolicy(t *testing.T, p *v1alpha1.WorkerActivityPolicy, cond func(*v1alpha1.WorkerActivityPolicy) error) {
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

func activityReady(p *v1alpha1.WorkerActivityPolicy) error {
	return conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReconciled)
}

// updateActivitySpec changes the policy's spec, retrying when the operator wrote it in between.
func updateActivitySpec(t *testing.T, p *v1alpha1.WorkerActivityPolicy, change func(*v1alpha1.WorkerActivityPolicySpec)) {
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

// activitiesByName are the workspace's activities by friendly name.
func (f *policyFixture) activitiesByName() map[string]twilio.Activity {
	f.t.Helper()
	out := map[string]twilio.Activity{}
	for _, a := range must[[]twilio.Activity](f.t)(f.tw.ListActivities(f.ctx(), f.cc.WorkspaceSID)) {
		out[a.FriendlyName] = a
	}
	return out
}

// waitEvent waits for an Event on the named object with the type and reason whose note contains
// every one of notes.
func (f *policyFixture) waitEvent(name, typ, reason string, notes ...string) {
	f.t.Helper()
	eventually(f.t, waitFor, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Type == typ && e.Reason == reason &&
				!slices.ContainsFunc(notes, func(n string) bool { return !strings.Contains(e.Note, n) }) {
				return nil
			}
		}
		return fmt.Errorf("no %s %s event on %s noting %q among %d events", typ, reason, name, notes, len(list.Items))
	})
}

// printedRow reads an object as `kubectl get` does — the API server's Table — and returns the
// names of the columns shown by default and the object's cells in those columns.
func printedRow(t *testing.T, resource string, key types.NamespacedName) ([]string, []any) {
	t.Helper()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/%s/%s", strings.TrimRight(cfg.Host, "/"), v1alpha1.GroupVersion, key.Namespace, resource, key.Name)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table of %s: %v (%d rows, status %s)", key, err, len(table.Rows), resp.Status)
	}
	var columns []string
	var cells []any
	for i, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			columns = append(columns, c.Name)
			cells = append(cells, table.Rows[0].Cells[i])
		}
	}
	return columns, cells
}

// seedActivities are the activities the original Flex customisation ships, as a workspace set up
// for it has them, with the case of some names changed: Flex compares names without case.
var seedActivities = []twiliosim.ActivitySpec{
	{Name: "on a task", Available: true},
	{Name: "On a Task, No ACD"},
	{Name: "WRAP UP", Available: true},
	{Name: "Wrap Up, No ACD"},
	{Name: "Extended Wrap Up"},
}

// TestActivityPolicyResolvesActivities: in a workspace set up for the seed (names in another case),
// the policy resolves all six activities without creating any, creates a sink and a subscription to
// the activity events delivering to its own path, and on deletion removes the sink and
// subscription and keeps the activities it adopted.
func TestActivityPolicyResolvesActivities(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: seedActivities})
	rcv := newSinkReceiver(t)
	key := types.NamespacedName{Namespace: f.ns, Name: "agents"}
	engineStats.set(key, synced)
	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{
		Activities:    v1alpha1.ActivityNames{Available: "AVAILABLE"},
		PublicBaseURL: rcv.srv.URL,
	})
	waitActivityPolicy(t, p, activityReady)

	byName := f.activitiesByName()
	want := v1alpha1.ResolvedActivities{
		Available: byName["Available"].SID, OnATask: byName["on a task"].SID, OnATaskNoAcd: byName["On a Task, No ACD"].SID,
		Wrapup: byName["WRAP UP"].SID, WrapupNoAcd: byName["Wrap Up, No ACD"].SID, ExtendedWrapup: byName["Extended Wrap Up"].SID,
	}
	st := p.Status
	if st.Activities != want {
		t.Fatalf("activities %+v, want %+v", st.Activities, want)
	}
	for _, typ := range []string{v1alpha1.ConditionActivitiesResolved, v1alpha1.ConditionEventStreamReady, v1alpha1.ConditionMultitaskingEnabled} {
		if c := meta.FindStatusCondition(st.Conditions, typ); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	if len(byName) != 4+len(seedActivities) {
		t.Errorf("the workspace has %d activities, want the %d it had: %v", len(byName), 4+len(seedActivities), byName)
	}
	url := rcv.srv.URL + "/twilio/" + f.ns + "/activity/agents/events"
	if st.WebhookURL != url {
		t.Fatalf("webhookUrl %q, want %q", st.WebhookURL, url)
	}
	sinks := sinksTo(url)
	if len(sinks) != 1 || sinks[0].SID != st.SinkSID || sinks[0].Status != "active" || !sinks[0].Batch {
		t.Fatalf("sinks to %s: %+v (status %s)", url, sinks, st.SinkSID)
	}
	subs := must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(f.ctx(), st.SinkSID))
	if len(subs) != 1 || subs[0].SID != st.SubscriptionSID {
		t.Fatalf("subscriptions %+v, want %s", subs, st.SubscriptionSID)
	}
	if got := slices.Sorted(slices.Values(subs[0].Types)); !slices.Equal(got, activityEventTypes) {
		t.Fatalf("subscribed to %v, want %v", got, activityEventTypes)
	}
	if got := slices.Sorted(slices.Values(st.CreatedSIDs)); !slices.Equal(got, []string{st.SubscriptionSID, st.SinkSID}) {
		t.Fatalf("createdSids %v, want only the subscription and the sink", st.CreatedSIDs)
	}

	f.deleteActivityPolicy(p)
	if s := sinksTo(url); len(s) != 0 {
		t.Fatalf("sink left after deletion: %+v", s)
	}
	if after := f.activitiesByName(); len(after) != len(byName) {
		t.Fatalf("activities after deletion: %v, want all of %v", after, byName)
	}
}

// TestActivityPolicySubscribesWhereActivityEventsAreNotOffered: the account's Event Streams
// catalog lacks the activity.* events the engine's catalogue uses when it can. The policy still
// gets every event it needs (the subscription covers the required types), is Ready, and its
// EventStreamReady condition names what it is not subscribed to and what the engine does instead.
func TestActivityPolicySubscribesWhereActivityEventsAreNotOffered(t *testing.T) {
	catalogue := []string{"com.twilio.taskrouter.activity.created", "com.twilio.taskrouter.activity.deleted", "com.twilio.taskrouter.activity.updated"}
	defer sim.WithdrawEventTypes(catalogue...)()
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: seedActivities})
	rcv := newSinkReceiver(t)
	key := types.NamespacedName{Namespace: f.ns, Name: "agents"}
	engineStats.set(key, synced)
	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{
		Activities:    v1alpha1.ActivityNames{Available: "AVAILABLE"},
		PublicBaseURL: rcv.srv.URL,
	})
	waitActivityPolicy(t, p, activityReady)
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionEventStreamReady)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "not subscribed to ") {
		t.Fatalf("EventStreamReady %+v: want True, saying what it is not subscribed to", c)
	}
	for _, typ := range catalogue {
		if !strings.Contains(c.Message, typ) {
			t.Fatalf("EventStreamReady %q does not name %s", c.Message, typ)
		}
	}
	subs := must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(f.ctx(), p.Status.SinkSID))
	required := slices.DeleteFunc(slices.Clone(activityEventTypes), func(typ string) bool { return slices.Contains(catalogue, typ) })
	if len(subs) != 1 || !slices.Equal(slices.Sorted(slices.Values(subs[0].Types)), required) {
		t.Fatalf("subscriptions %+v, want one to %v", subs, required)
	}
	f.deleteActivityPolicy(p)
}

// TestActivityPolicyAdoptsSink: a sink made by hand to the policy's path, subscribed to some of
// the activity events, is adopted; the operator subscribes it only to the rest, and on deletion
// removes only its own subscription.
func TestActivityPolicyAdoptsSink(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: seedActivities})
	rcv := newSinkReceiver(t)
	engineStats.set(types.NamespacedName{Namespace: f.ns, Name: "agents"}, synced)
	ctx := f.ctx()
	url := rcv.srv.URL + "/twilio/" + f.ns + "/activity/agents/events"
	sink := must[twilio.Sink](t)(f.tw.CreateSink(ctx, twilio.SinkCreate{Description: "hand made", Destination: url, BatchEvents: true}))
	t.Cleanup(func() { _ = f.tw.DeleteSink(context.Background(), sink.SID) })
	if err := sim.ActivateSink(sink.SID); err != nil { // tested and validated by hand
		t.Fatal(err)
	}
	theirs := must[twilio.Subscription](t)(f.tw.CreateSubscription(ctx, twilio.SubscriptionCreate{SinkSID: sink.SID, Description: "hand made",
		Types: []string{"com.twilio.taskrouter.worker.activity.update", "com.twilio.taskrouter.reservation.accepted", "com.twilio.taskrouter.task.created"}}))

	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{PublicBaseURL: rcv.srv.URL})
	waitActivityPolicy(t, p, activityReady)
	st := p.Status
	if st.SinkSID != sink.SID || st.SubscriptionSID == "" || st.SubscriptionSID == theirs.SID {
		t.Fatalf("sinkSid %s subscriptionSid %s: want the hand-made sink %s and a subscription of the operator's", st.SinkSID, st.SubscriptionSID, sink.SID)
	}
	if !slices.Equal(st.CreatedSIDs, []string{st.SubscriptionSID}) {
		t.Fatalf("createdSids %v, want only the operator's subscription", st.CreatedSIDs)
	}
	covered := map[string]int{}
	for _, sub := range must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(ctx, sink.SID)) {
		for _, typ := range sub.Types {
			covered[typ]++
		}
	}
	for _, typ := range activityEventTypes {
		if covered[typ] != 1 {
			t.Errorf("%s is subscribed %d times, want once", typ, covered[typ])
		}
	}

	f.deleteActivityPolicy(p)
	if s := sinksTo(url); len(s) != 1 || s[0].SID != sink.SID {
		t.Fatalf("the adopted sink: %+v", s)
	}
	subs := must[[]twilio.Subscription](t)(f.tw.ListSubscriptions(ctx, sink.SID))
	if len(subs) != 1 || subs[0].SID != theirs.SID {
		t.Fatalf("subscriptions of the adopted sink after deletion: %+v, want only %s", subs, theirs.SID)
	}
}

// TestActivityPolicyWrongAndMissingActivities: an activity with the wrong availability and missing
// ones are reported by field and name; with createMissingActivities the missing ones are created
// with the right availability (and recorded), the wrong one is never changed, and deleting the
// policy deletes only what it created.
func TestActivityPolicyWrongAndMissingActivities(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: []twiliosim.ActivitySpec{
		{Name: "On a Task"}, // unavailable: wrong
		{Name: "Wrap Up", Available: true},
	}})
	rcv := newSinkReceiver(t)
	key := types.NamespacedName{Namespace: f.ns, Name: "agents"}
	engineStats.set(key, synced)
	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{PublicBaseURL: rcv.srv.URL})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		for _, typ := range []string{v1alpha1.ConditionActivitiesResolved, v1alpha1.ConditionReady} {
			if err := conditionIs(p.Status.Conditions, typ, metav1.ConditionFalse, "ActivityAvailabilityMismatch"); err != nil {
				return err
			}
		}
		return nil
	})
	msg := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionActivitiesResolved).Message
	for _, part := range []string{
		`spec.activities.onATask: activity "On a Task"`, "is unavailable but must be available",
		`spec.activities.onATaskNoAcd: no activity named "On a Task, No ACD"`, "create it as an unavailable activity",
		`spec.activities.wrapupNoAcd: no activity named "Wrap Up, No ACD"`,
		`spec.activities.extendedWrapup: no activity named "Extended Wrap Up"`,
	} {
		if !strings.Contains(msg, part) {
			t.Errorf("ActivitiesResolved message does not say %q:\n%s", part, msg)
		}
	}
	if strings.Contains(msg, "spec.activities.wrapup:") || strings.Contains(msg, "spec.activities.available:") {
		t.Errorf("ActivitiesResolved blames an activity that is right:\n%s", msg)
	}
	if a := p.Status.Activities; a.Wrapup == "" || a.Available == "" || a.OnATask != "" {
		t.Errorf("resolved %+v: want Wrap Up and Available only", a)
	}
	f.waitEvent("agents", corev1.EventTypeWarning, "ActivityAvailabilityMismatch", `"On a Task"`)

	before := f.activitiesByName()
	updateActivitySpec(t, p, func(spec *v1alpha1.WorkerActivityPolicySpec) {
		spec.CreateMissingActivities = true
		spec.Activities.OnATask = "Busy"
	})
	waitActivityPolicy(t, p, activityReady)
	after := f.activitiesByName()
	wantCreated := map[string]bool{"Busy": true, "On a Task, No ACD": false, "Wrap Up, No ACD": false, "Extended Wrap Up": false}
	var created []string
	for name, available := range wantCreated {
		a, ok := after[name]
		if !ok || a.Available != available {
			t.Fatalf("activity %q: %+v (exists %v), want available=%v", name, a, ok, available)
		}
		created = append(created, a.SID)
	}
	if after["On a Task"] != before["On a Task"] {
		t.Errorf("the wrong activity was changed: %+v, was %+v", after["On a Task"], before["On a Task"])
	}
	st := p.Status
	if got, want := slices.Sorted(slices.Values(st.CreatedSIDs)), slices.Sorted(slices.Values(append(created, st.SinkSID, st.SubscriptionSID))); !slices.Equal(got, want) {
		t.Fatalf("createdSids %v, want %v", got, want)
	}
	if st.Activities.OnATask != after["Busy"].SID || st.Activities.ExtendedWrapup != after["Extended Wrap Up"].SID {
		t.Fatalf("activities %+v", st.Activities)
	}
	f.waitEvent("agents", corev1.EventTypeNormal, "Created", `"Extended Wrap Up"`, after["Extended Wrap Up"].SID, `"Busy"`, after["Busy"].SID)

	f.deleteActivityPolicy(p)
	final := f.activitiesByName()
	for name := range wantCreated {
		if _, ok := final[name]; ok {
			t.Errorf("created activity %q is left after deletion", name)
		}
	}
	for _, name := range []string{"On a Task", "Wrap Up", "Available", "Offline", "Break"} {
		if final[name] != before[name] {
			t.Errorf("adopted activity %q: %+v after deletion, was %+v", name, final[name], before[name])
		}
	}
}

// TestActivityPolicyReleasedWithoutCredentials: a policy whose Secret is gone is still deleted,
// with a Warning event naming the activities it created and leaves in Twilio.
func TestActivityPolicyReleasedWithoutCredentials(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{})
	key := types.NamespacedName{Namespace: f.ns, Name: "orphan"}
	engineStats.set(key, synced)
	off := false
	p := f.activityPolicy("orphan", v1alpha1.WorkerActivityPolicySpec{
		CreateMissingActivities: true,
		EventStream:             v1alpha1.EventStreamSpec{Managed: &off},
	})
	waitActivityPolicy(t, p, activityReady)
	if got := len(p.Status.CreatedSIDs); got != 5 {
		t.Fatalf("createdSids %v, want the five missing activities", p.Status.CreatedSIDs)
	}
	extended := p.Status.Activities.ExtendedWrapup
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "twilio"}}
	if err := k8sClient.Delete(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionCredentialsResolved, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	})
	f.deleteActivityPolicy(p)
	f.waitEvent("orphan", corev1.EventTypeWarning, "CleanupSkipped", extended)
	if _, ok := f.activitiesByName()["Extended Wrap Up"]; !ok {
		t.Fatal("an activity was deleted without credentials?")
	}
}

// TestActivityPolicyMultitaskingWarning: a workspace that is not multi-tasking is reported in a
// condition and a Warning event; the policy still works.
func TestActivityPolicyMultitaskingWarning(t *testing.T) {
	single := false
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{MultiTask: &single, Activities: seedActivities})
	engineStats.set(types.NamespacedName{Namespace: f.ns, Name: "agents"}, synced)
	off := false
	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{EventStream: v1alpha1.EventStreamSpec{Managed: &off}})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		if err := activityReady(p); err != nil {
			return err
		}
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionMultitaskingEnabled, metav1.ConditionFalse, "MultitaskingDisabled")
	})
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionMultitaskingEnabled); !strings.Contains(c.Message, "ReservationActivitySid") ||
		!strings.Contains(c.Message, f.cc.WorkspaceSID) {
		t.Errorf("MultitaskingEnabled message: %q", c.Message)
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "not multi-tasking") {
		t.Errorf("Ready does not carry the warning: %q", c.Message)
	}
	f.waitEvent("agents", corev1.EventTypeWarning, "MultitaskingDisabled", f.cc.WorkspaceSID)
	// Not managed: the condition names the path and the types to deliver.
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionEventStreamReady)
	if c.Reason != "NotManaged" || !strings.Contains(c.Message, "/twilio/"+f.ns+"/activity/agents/events") ||
		!strings.Contains(c.Message, "com.twilio.taskrouter.worker.activity.update") {
		t.Errorf("EventStreamReady: %+v", c)
	}
}

// TestActivityPolicyStatusAggregates walks the policy through the engine's states: not taken,
// rebuilding, running with figures (copied into status), an overlap with an older policy, and
// failed writes (one Warning event); unchanged figures are not written again.
func TestActivityPolicyStatusAggregates(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: seedActivities})
	off := false
	unmanaged := v1alpha1.EventStreamSpec{Managed: &off}
	olderKey := types.NamespacedName{Namespace: f.ns, Name: "everyone"}
	engineStats.set(olderKey, synced)
	older := f.activityPolicy("everyone", v1alpha1.WorkerActivityPolicySpec{EventStream: unmanaged})
	waitActivityPolicy(t, older, activityReady)

	key := types.NamespacedName{Namespace: f.ns, Name: "voice"}
	p := f.activityPolicy("voice", v1alpha1.WorkerActivityPolicySpec{Workers: "routing.skills HAS 'voice'", Mode: v1alpha1.ModeObserve, EventStream: unmanaged})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		if err := conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "EngineStarting"); err != nil {
			return err
		}
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionEventsFlowing, metav1.ConditionUnknown, "EngineStarting")
	})

	engineStats.set(key, activity.PolicyStats{LastError: "list workers: 503"})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		if err := conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "EngineSyncing"); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "list workers: 503") {
			return fmt.Errorf("Ready does not carry the engine's last error: %q", c.Message)
		}
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionEventsFlowing, metav1.ConditionUnknown, "NoEventYet")
	})

	last := time.Date(2026, 11, 30, 9, 15, 42, 123456789, time.UTC)
	running := activity.PolicyStats{Synced: true, WorkersGoverned: 120, Busy: 37, PendingChanges: 4, Overlapping: 3,
		Enforcements: 512, Conflicts: 6, Failures: 2, LastEventTime: last, LastError: "update worker WK1: 500"}
	engineStats.set(key, running)
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		if err := activityReady(p); err != nil {
			return err
		}
		st := p.Status
		if st.WorkersGoverned != 120 || st.Busy != 37 || st.PendingChanges != 4 || st.Enforcements != 512 || st.Conflicts != 6 || st.Failures != 2 {
			return fmt.Errorf("aggregates %+v", st)
		}
		if st.LastEventTime == nil || !st.LastEventTime.Equal(&metav1.Time{Time: last.Truncate(time.Second)}) {
			return fmt.Errorf("lastEventTime %v, want %v", st.LastEventTime, last)
		}
		if err := conditionIs(st.Conditions, v1alpha1.ConditionEventsFlowing, metav1.ConditionTrue, "EventsReceived"); err != nil {
			return err
		}
		return conditionIs(st.Conditions, v1alpha1.ConditionWorkersOverlap, metav1.ConditionTrue, "OlderPolicyGoverns")
	})
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionWorkersOverlap); !strings.Contains(c.Message, "3 worker(s)") ||
		!strings.Contains(c.Message, "policy "+f.ns+"/everyone") {
		t.Errorf("WorkersOverlap message: %q", c.Message)
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "Observing") {
		t.Errorf("Ready message in Observe mode: %q", c.Message)
	}
	// What `kubectl get wap` prints: the API server's table for the policy.
	columns, cells := printedRow(t, "workeractivitypolicies", key)
	if want := []string{"Name", "Ready", "Mode", "Workers", "Pending", "Enforced", "Age"}; !slices.Equal(columns, want) {
		t.Errorf("kubectl get wap columns %v, want %v", columns, want)
	}
	if got, want := fmt.Sprint(cells[:6]), "[voice True Observe 120 4 512]"; got != want {
		t.Errorf("kubectl get wap row %s, want %s", got, want)
	}
	if err := conditionIs(older.Status.Conditions, v1alpha1.ConditionWorkersOverlap, metav1.ConditionFalse, "NoOverlap"); err != nil {
		t.Errorf("the older policy: %v", err)
	}
	f.waitEvent("voice", corev1.EventTypeWarning, "EnforcementFailed", "2 worker update(s) failed", "update worker WK1: 500")
	f.waitEvent("voice", corev1.EventTypeWarning, "OlderPolicyGoverns", "policy "+f.ns+"/everyone")

	// Same figures: the controller keeps asking the engine but does not write the policy again.
	version := p.ResourceVersion
	asked := engineStats.timesAsked(key)
	eventually(t, waitFor, func() error {
		if n := engineStats.timesAsked(key); n < asked+2 {
			return fmt.Errorf("asked the engine %d times since, want 2", n-asked)
		}
		return nil
	})
	if err := k8sClient.Get(context.Background(), key, p); err != nil {
		t.Fatal(err)
	}
	if p.ResourceVersion != version {
		t.Fatalf("the policy was written with unchanged figures (resourceVersion %s, was %s)", p.ResourceVersion, version)
	}
}

// TestActivityAndRecoveryPoliciesShareWorkspace: a ConferenceRecoveryPolicy and a
// WorkerActivityPolicy of the same name watch one workspace. Each has its own sink to its own path
// with its own event types; a task's reservation reaches both, a worker's activity change only the
// activity policy; deleting the recovery policy leaves the activity policy's events flowing.
func TestActivityAndRecoveryPoliciesShareWorkspace(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{
		Activities: seedActivities,
		Workers:    []twiliosim.WorkerSpec{{Name: "alice", Attributes: map[string]any{"contact_uri": "client:alice"}}},
		Queues:     []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Voice", Configuration: map[string]any{
			"task_routing": map[string]any{"default_filter": map[string]any{"queue": "Everyone"}}}}},
	})
	rcv := newSinkReceiver(t)
	engineStats.set(types.NamespacedName{Namespace: f.ns, Name: "voice"}, synced)
	activityPolicy := f.activityPolicy("voice", v1alpha1.WorkerActivityPolicySpec{PublicBaseURL: rcv.srv.URL})
	recoveryPolicy := f.policy("voice", v1alpha1.ConferenceRecoveryPolicySpec{
		ProtectedWorkflowSIDs: []string{f.cc.Workflows["Voice"]},
		PublicBaseURL:         rcv.srv.URL,
	})
	waitActivityPolicy(t, activityPolicy, activityReady)
	waitPolicy(t, recoveryPolicy, ready)
	activityPath, recoveryPath := "/twilio/"+f.ns+"/activity/voice/events", "/twilio/"+f.ns+"/voice/events"
	if activityPolicy.Status.SinkSID == recoveryPolicy.Status.SinkSID {
		t.Fatalf("both policies use sink %s", activityPolicy.Status.SinkSID)
	}
	if len(sinksTo(rcv.srv.URL+activityPath)) != 1 || len(sinksTo(rcv.srv.URL+recoveryPath)) != 1 {
		t.Fatalf("want one sink per path; sinks %+v", sim.Snapshot().Sinks)
	}

	ws := f.cc.WorkspaceSID
	task := must[twilio.Task](t)(f.tw.CreateTask(f.ctx(), ws, twilio.TaskCreate{WorkflowSID: f.cc.Workflows["Voice"], Attributes: `{"type":"inbound"}`}))
	accepted := "com.twilio.taskrouter.reservation.accepted"
	eventually(t, waitFor, func() error {
		reservations, err := f.tw.ListReservations(f.ctx(), ws, twilio.ReservationFilter{TaskSID: task.SID, Status: "pending"})
		if err != nil || len(reservations) != 1 {
			return fmt.Errorf("pending reservations of %s: %v %v", task.SID, reservations, err)
		}
		return sim.Accept(reservations[0].SID)
	})
	if err := sim.SetWorkerActivity(f.cc.Workers["alice"], "Break"); err != nil {
		t.Fatal(err)
	}
	activityUpdate := "com.twilio.taskrouter.worker.activity.update"
	eventually(t, waitFor, func() error {
		for _, want := range []struct{ path, typ string }{{activityPath, accepted}, {recoveryPath, accepted}, {activityPath, activityUpdate}} {
			if !rcv.receivedAt(want.path, want.typ, ws) {
				return fmt.Errorf("no %s at %s yet", want.typ, want.path)
			}
		}
		return nil
	})
	if err := sim.WaitDeliveries(f.ctx()); err != nil {
		t.Fatal(err)
	}
	if rcv.receivedAt(recoveryPath, activityUpdate, ws) {
		t.Errorf("the recovery policy's sink delivered %s, which it did not subscribe to", activityUpdate)
	}

	f.deletePolicy(recoveryPolicy)
	if len(sinksTo(rcv.srv.URL+recoveryPath)) != 0 || len(sinksTo(rcv.srv.URL+activityPath)) != 1 {
		t.Fatalf("after deleting the recovery policy, sinks %+v", sim.Snapshot().Sinks)
	}
	if err := sim.SetWorkerActivity(f.cc.Workers["alice"], "Offline"); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, func() error {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		n := 0
		for _, e := range rcv.events {
			if e == activityPath+" "+activityUpdate+" "+ws {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d activity updates at %s, want the second", n, activityPath)
		}
		return nil
	})
	waitActivityPolicy(t, activityPolicy, activityReady)
}

// TestActivityPolicyInvalidSelection: a workers expression TaskRouter would refuse, or a channel the
// workspace does not have, keeps the policy from being Ready, with a message naming it.
func TestActivityPolicyInvalidSelection(t *testing.T) {
	f := newPolicyFixture(t, twiliosim.ContactCentreSpec{Activities: seedActivities})
	engineStats.set(types.NamespacedName{Namespace: f.ns, Name: "agents"}, synced)
	off := false
	p := f.activityPolicy("agents", v1alpha1.WorkerActivityPolicySpec{Workers: "routing.skills HAS", EventStream: v1alpha1.EventStreamSpec{Managed: &off}})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidWorkersExpression")
	})
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "spec.workers") {
		t.Errorf("Ready message: %q", c.Message)
	}
	updateActivitySpec(t, p, func(spec *v1alpha1.WorkerActivityPolicySpec) {
		spec.Workers = "routing.skills HAS 'voice'"
		spec.Channels = []string{"voice", "sms"}
	})
	waitActivityPolicy(t, p, func(p *v1alpha1.WorkerActivityPolicy) error {
		return conditionIs(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, "TaskChannelNotFound")
	})
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, `spec.channels: "sms" not a task channel`) ||
		!strings.Contains(c.Message, "chat, default, voice") {
		t.Errorf("Ready message: %q", c.Message)
	}
	f.waitEvent("agents", corev1.EventTypeWarning, "TaskChannelNotFound", `"sms"`)
	updateActivitySpec(t, p, func(spec *v1alpha1.WorkerActivityPolicySpec) { spec.Channels = []string{"voice", "chat"} })
	waitActivityPolicy(t, p, activityReady)
}
