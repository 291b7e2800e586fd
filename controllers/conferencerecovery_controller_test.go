package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// The recovery tests drive real calls in the simulator. The webhook server's conference route is
// stood in for by recoveryWebhook, which receives the simulator's conference status callbacks and
// writes them into ConferenceRecovery status exactly as the contract says the webhook server will;
// what Event Streams would report (the ping's outcome, the reconnect task's progress) the tests
// write themselves at the moment the simulator shows it. Everything the controller does is checked
// against the simulator's state.

const (
	pingWorkflowName = "Recovery Ping"
	voiceWorkflow    = "Voice"
	recoveryWait     = 20 * time.Second
)

// recoveryCentre is one test's contact centre: a workspace, its credentials and a policy.
type recoveryCentre struct {
	t         *testing.T
	ns        string
	policy    string
	cc        *twiliosim.ContactCentre
	workflow  string // the protected voice workflow
	pingFlow  string // the Recovery Ping workflow
	webhook   *recoveryWebhook
	twilio    twilio.Client
	reconnect int64 // the policy's reconnect priority
}

type centreOptions struct {
	// offline workers start Offline (Alice always starts Available).
	offline []string
	// policy adjusts the policy spec.
	policy func(*v1alpha1.ConferenceRecoveryPolicySpec)
}

// newRecoveryCentre builds a workspace with Alice (and the named offline workers), a voice workflow
// that starts with the "Direct to an Agent" filter, the Recovery Ping queue and workflow, and a
// policy protecting the voice workflow. The ping objects are built here so that the test does not
// depend on the policy controller (which adopts them by name).
func newRecoveryCentre(t *testing.T, o centreOptions) *recoveryCentre {
	t.Helper()
	ns := newNamespace(t)
	spec := twiliosim.ContactCentreSpec{
		Name:    ns,
		Workers: []twiliosim.WorkerSpec{{Name: "Alice", Attributes: map[string]any{"contact_uri": "client:alice"}}},
		Queues: []twiliosim.QueueSpec{
			{Name: "Everyone", TargetWorkers: "1==1"},
			{Name: pingWorkflowName, TargetWorkers: "1 == 1"},
		},
		Workflows: []twiliosim.WorkflowSpec{
			{Name: voiceWorkflow, Configuration: map[string]any{"task_routing": map[string]any{
				"filters": []any{
					map[string]any{"filter_friendly_name": "Direct to an Agent", "expression": "targetWorkerSid != null",
						"targets": []any{map[string]any{"queue": "Everyone", "known_worker_sid": "task.targetWorkerSid"}}},
					map[string]any{"filter_friendly_name": "Everyone", "expression": "1==1",
						"targets": []any{map[string]any{"queue": "Everyone"}}},
				},
				"default_filter": map[string]any{"queue": "Everyone"},
			}}},
			{Name: pingWorkflowName, Configuration: map[string]any{"task_routing": map[string]any{
				"filters": []any{map[string]any{"filter_friendly_name": "Ping Disconnected Agent", "expression": "disconnectedWorkerSid != null",
					"targets": []any{map[string]any{"queue": pingWorkflowName, "known_worker_sid": "task.disconnectedWorkerSid"}}}},
				"default_filter": map[string]any{"queue": pingWorkflowName},
			}}},
		},
	}
	for _, name := range o.offline {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: name, Activity: "Offline",
			Attributes: map[string]any{"contact_uri": "client:" + strings.ToLower(name)}})
	}
	cc, err := sim.BuildContactCentre(spec)
	if err != nil {
		t.Fatalf("build contact centre: %v", err)
	}
	simSecret(t, ns, "twilio")
	taskRouter, eventStream := true, false
	policy := &v1alpha1.ConferenceRecoveryPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "voice"},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{
			Twilio: v1alpha1.TwilioSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"},
				WorkspaceSID: cc.WorkspaceSID},
			ProtectedWorkflowSIDs: []string{cc.Workflows[voiceWorkflow]},
			Reconnect:             v1alpha1.ReconnectSpec{Priority: 1500},
			Customer: v1alpha1.CustomerExperience{AnnouncementURL: "https://example.com/interrupted.mp3",
				HoldMusicURL: "https://example.com/hold.mp3"},
			Management:  v1alpha1.ManagementSpec{TaskRouter: &taskRouter},
			EventStream: v1alpha1.EventStreamSpec{Managed: &eventStream},
		},
	}
	if o.policy != nil {
		o.policy(&policy.Spec)
	}
	if err := k8sClient.Create(context.Background(), policy); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	tc, err := twilio.New(twilio.Config{AccountSID: sim.AccountSID(), AuthToken: sim.AuthToken(), BaseURL: sim.URL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	c := &recoveryCentre{t: t, ns: ns, policy: policy.Name, cc: cc, workflow: cc.Workflows[voiceWorkflow],
		pingFlow: cc.Workflows[pingWorkflowName], twilio: tc, reconnect: policy.Spec.Reconnect.Priority}
	c.webhook = newRecoveryWebhook(t, c)
	if err := sim.SetWorkspaceConferenceCallback(cc.WorkspaceSID, c.webhook.srv.URL); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *recoveryCentre) worker(name string) string { return c.cc.Workers[name] }

// call is an answered inbound call.
type call struct {
	customer    string
	task        string
	reservation string
	conference  string
	agentLeg    string
}

// answer places an inbound call on the voice workflow and has the agent accept it in Flex.
func (c *recoveryCentre) answer(agent string) call {
	c.t.Helper()
	placed, err := sim.PlaceCall("+15550100123", c.workflow, map[string]any{"conversations": map[string]any{"conversation_attribute_1": "kept"}})
	if err != nil {
		c.t.Fatal(err)
	}
	res := c.waitReservation(placed.TaskSID, c.worker(agent), "pending")
	if err := sim.Accept(res.SID); err != nil {
		c.t.Fatal(err)
	}
	cl := call{customer: placed.CallSID, task: placed.TaskSID, reservation: res.SID}
	eventually(c.t, recoveryWait, func() error {
		st := sim.Snapshot()
		t, _ := st.Task(placed.TaskSID)
		for _, r := range st.Reservations(placed.TaskSID) {
			if r.SID == res.SID {
				cl.agentLeg = r.CallSID
			}
		}
		cl.conference = t.ConferenceSID
		if cl.conference == "" || cl.agentLeg == "" {
			return fmt.Errorf("no conference yet for task %s", placed.TaskSID)
		}
		return nil
	})
	return cl
}

// waitReservation waits for a reservation of the task to the worker in the given status.
func (c *recoveryCentre) waitReservation(taskSID, workerSID, status string) twiliosim.ReservationState {
	c.t.Helper()
	var found twiliosim.ReservationState
	eventually(c.t, recoveryWait, func() error {
		for _, r := range sim.Snapshot().Reservations(taskSID) {
			if r.WorkerSID == workerSID && r.Status == status {
				found = r
				return nil
			}
		}
		return fmt.Errorf("no %s reservation of %s for %s: %+v", status, taskSID, workerSID, sim.Snapshot().Reservations(taskSID))
	})
	return found
}

// tasks returns the workspace's tasks that match.
func (c *recoveryCentre) tasks(match func(twiliosim.TaskState) bool) []twiliosim.TaskState {
	var out []twiliosim.TaskState
	for _, ws := range sim.Snapshot().Workspaces {
		if ws.SID != c.cc.WorkspaceSID {
			continue
		}
		for _, t := range ws.Tasks {
			if match(t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// pingTasks are the tasks on the ping workflow for the conference.
func (c *recoveryCentre) pingTasks(conference string) []twiliosim.TaskState {
	return c.tasks(func(t twiliosim.TaskState) bool {
		m := recovery.AttributesOf(t.Attributes).Marker
		return t.Workflow == c.pingFlow && m.Role == recovery.TaskRolePing && m.ConferenceSID == conference
	})
}

// reconnectTasks are the reconnect tasks for the conference.
func (c *recoveryCentre) reconnectTasks(conference string) []twiliosim.TaskState {
	return c.tasks(func(t twiliosim.TaskState) bool {
		m := recovery.AttributesOf(t.Attributes).Marker
		return m.Role == recovery.TaskRoleReconnect && m.ConferenceSID == conference
	})
}

func (c *recoveryCentre) key(conference string) types.NamespacedName {
	return types.NamespacedName{Namespace: c.ns, Name: strings.ToLower(conference)}
}

// recovery reads the recovery of a conference.
func (c *recoveryCentre) recovery(conference string) *v1alpha1.ConferenceRecovery {
	c.t.Helper()
	var rec v1alpha1.ConferenceRecovery
	if err := k8sClient.Get(context.Background(), c.key(conference), &rec); err != nil {
		c.t.Fatalf("get recovery: %v", err)
	}
	return &rec
}

// waitRecovery waits until the recovery of the conference satisfies cond.
func (c *recoveryCentre) waitRecovery(conference string, what string, cond func(*v1alpha1.ConferenceRecovery) bool) *v1alpha1.ConferenceRecovery {
	c.t.Helper()
	var rec v1alpha1.ConferenceRecovery
	eventually(c.t, recoveryWait, func() error {
		if err := k8sClient.Get(context.Background(), c.key(conference), &rec); err != nil {
			return err
		}
		if !cond(&rec) {
			return fmt.Errorf("recovery is not %s: phase %s/%s (%s), actions %+v", what, rec.Status.Phase, rec.Status.Reason, rec.Status.Message, rec.Status.Actions)
		}
		return nil
	})
	return &rec
}

func (c *recoveryCentre) waitPhase(conference string, phase v1alpha1.RecoveryPhase) *v1alpha1.ConferenceRecovery {
	c.t.Helper()
	return c.waitRecovery(conference, string(phase), func(r *v1alpha1.ConferenceRecovery) bool { return r.Status.Phase == phase })
}

// observe writes an observation into the recovery's status, as the webhook server does on a
// TaskRouter event.
func (c *recoveryCentre) observe(conference string, change func(*v1alpha1.ConferenceRecoveryStatus)) {
	c.t.Helper()
	if err := updateRecoveryStatus(c.key(conference), change); err != nil {
		c.t.Fatalf("observe: %v", err)
	}
}

// conflictBackoff outlasts a burst of the controller's own status writes.
var conflictBackoff = wait.Backoff{Steps: 30, Duration: 5 * time.Millisecond, Factor: 1.3, Jitter: 0.2, Cap: 200 * time.Millisecond}

func updateRecoveryStatus(key types.NamespacedName, change func(*v1alpha1.ConferenceRecoveryStatus)) error {
	return retry.RetryOnConflict(conflictBackoff, func() error {
		var rec v1alpha1.ConferenceRecovery
		if err := k8sClient.Get(context.Background(), key, &rec); err != nil {
			return err
		}
		change(&rec.Status)
		return k8sClient.Status().Update(context.Background(), &rec)
	})
}

func simTime() *metav1.Time {
	t := metav1.NewTime(sim.Now())
	return &t
}

func actionState(rec *v1alpha1.ConferenceRecovery, name string) v1alpha1.ActionState {
	for _, a := range rec.Status.Actions {
		if a.Name == name {
			return a.State
		}
	}
	return ""
}

// participant returns a live leg of a conference in the simulator.
func participant(conference, callSID string) (twiliosim.ParticipantState, bool) {
	conf, ok := sim.Snapshot().Conference(conference)
	if !ok {
		return twiliosim.ParticipantState{}, false
	}
	for _, p := range conf.Participants {
		if p.CallSID == callSID {
			return p, true
		}
	}
	return twiliosim.ParticipantState{}, false
}

// waitCorrected waits until the agent leg's endConferenceOnExit is false in the simulator.
func (c *recoveryCentre) waitCorrected(conference, leg string) {
	c.t.Helper()
	eventually(c.t, recoveryWait, func() error {
		p, ok := participant(conference, leg)
		if !ok {
			return fmt.Errorf("leg %s is not in %s", leg, conference)
		}
		if p.EndConferenceOnExit {
			return errors.New("endConferenceOnExit is still true")
		}
		return nil
	})
}

// refresh has the agent reload the Flex page, once their leg's flag is corrected (otherwise the
// customer would be hung up, which is the point of the correction).
func (c *recoveryCentre) refresh(cl call, agent string) {
	c.t.Helper()
	c.waitCorrected(cl.conference, cl.agentLeg)
	if err := sim.RefreshPage(c.worker(agent)); err != nil {
		c.t.Fatal(err)
	}
}

// recoveryWebhook stands in for the webhook server's conference route: it creates the recovery on
// the first callback of a conference on the protected workflow and applies every callback with
// recovery.ApplyConferenceEvent; the first join of a reconnect task's conference sets the old
// recovery's Reconnect.ConferenceSID.
type recoveryWebhook struct {
	t      *testing.T
	centre *recoveryCentre
	srv    *httptest.Server
	mu     sync.Mutex
	// hook, when set, may change the status in the same write as a callback, as a crash would
	// have left it; it reports whether it changed anything. It may run more than once per
	// callback (conflict retries).
	hook func(ev events.ConferenceEvent, st *v1alpha1.ConferenceRecoveryStatus) bool
}

func newRecoveryWebhook(t *testing.T, c *recoveryCentre) *recoveryWebhook {
	w := &recoveryWebhook{t: t, centre: c}
	w.srv = httptest.NewServer(w)
	t.Cleanup(func() {
		_ = sim.SetWorkspaceConferenceCallback(c.cc.WorkspaceSID, "")
		w.srv.Close()
	})
	return w
}

func (w *recoveryWebhook) setHook(h func(ev events.ConferenceEvent, st *v1alpha1.ConferenceRecoveryStatus) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook = h
}

func (w *recoveryWebhook) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	ev, err := events.ParseConferenceEvent(req.PostForm)
	if errors.Is(err, events.ErrUnknownEvent) {
		return
	}
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.apply(req.Context(), ev); err != nil {
		w.t.Logf("test webhook: %v", err)
		http.Error(rw, err.Error(), http.StatusServiceUnavailable)
	}
}

func (w *recoveryWebhook) apply(ctx context.Context, ev events.ConferenceEvent) error {
	c := w.centre
	task, ok := sim.Snapshot().Task(ev.FriendlyName)
	if !ok || task.Workflow != c.workflow {
		return nil // not a protected call
	}
	key := c.key(ev.ConferenceSID)
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		var rec v1alpha1.ConferenceRecovery
		err := k8sClient.Get(ctx, key, &rec)
		if apierrors.IsNotFound(err) {
			rec = v1alpha1.ConferenceRecovery{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
					v1alpha1.PolicyLabel: c.policy, v1alpha1.PhaseLabel: string(v1alpha1.PhaseMonitoring)}},
				Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: c.policy, ConferenceSID: ev.ConferenceSID,
					TaskSID: task.SID, WorkflowSID: task.Workflow},
			}
			err = k8sClient.Create(ctx, &rec)
		}
		if err != nil {
			return err
		}
		changed := recovery.ApplyConferenceEvent(&rec.Status, ev, nil)
		if w.hook != nil && w.hook(ev, &rec.Status) {
			changed = true
		}
		if !changed {
			return nil
		}
		return k8sClient.Status().Update(ctx, &rec)
	})
	if err != nil {
		return fmt.Errorf("apply %s #%d: %w", ev.Event, ev.SequenceNumber, err)
	}
	if m := recovery.AttributesOf(task.Attributes).Marker; ev.Event == events.ParticipantJoin && m.Role == recovery.TaskRoleReconnect {
		old := m.ConferenceSID
		return updateRecoveryStatus(c.key(old), func(st *v1alpha1.ConferenceRecoveryStatus) {
			if st.Reconnect == nil {
				st.Reconnect = &v1alpha1.ReconnectStatus{}
			}
			if st.Reconnect.ConferenceSID == "" {
				st.Reconnect.ConferenceSID = ev.ConferenceSID
			}
		})
	}
	return nil
}

// TestRecoveryPingAccepted follows a call from answer to recovery: the endConferenceOnExit resets
// are corrected, the agent's page refresh starts a ping to that agent, and once the agent answers
// it the customer is routed back to them; the third party is dialled into the new conference and
// the coaching supervisor is not.
func TestRecoveryPingAccepted(t *testing.T) {
	c := newRecoveryCentre(t, centreOptions{offline: []string{"Sam"}})
	alice := c.worker("Alice")
	cl := c.answer("Alice")

	// Flex sets endConferenceOnExit on the agent with two parties; the operator undoes it, and
	// again after the supervisor's join makes Flex reset it.
	c.waitCorrected(cl.conference, cl.agentLeg)
	supervisorLeg, err := sim.Monitor(c.worker("Sam"), cl.conference)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := participant(cl.conference, cl.agentLeg); !p.EndConferenceOnExit {
		t.Fatal("the simulated Flex did not reset endConferenceOnExit at the supervisor's join")
	}
	c.waitCorrected(cl.conference, cl.agentLeg)
	externalLeg, err := sim.DialThirdParty(cl.conference, "+15550109999")
	if err != nil {
		t.Fatal(err)
	}
	c.waitRecovery(cl.conference, "aware of the third party", func(r *v1alpha1.ConferenceRecovery) bool { return len(r.Status.Participants) == 4 })
	requestsBefore, _ := sim.RequestStats()
	callsBefore := twilioCalls(t)

	c.refresh(cl, "Alice")
	rec := c.waitPhase(cl.conference, v1alpha1.PhasePinging)

	// One ping task, to the agent who dropped, with what the reload needs to find the call.
	pings := c.pingTasks(cl.conference)
	if len(pings) != 1 {
		t.Fatalf("%d ping tasks, want 1", len(pings))
	}
	ping := pings[0]
	want := map[string]any{"disconnectedWorkerSid": alice, "disconnectedWorkerName": "Alice", "disconnectedTaskSid": cl.task,
		"disconnectedReservationSid": cl.reservation, "disconnectedCallSid": cl.agentLeg, "disconnectedTaskWorkflowSid": c.workflow,
		"call_sid": cl.customer}
	for k, v := range want {
		if ping.Attributes[k] != v {
			t.Errorf("ping attribute %s = %v, want %v", k, ping.Attributes[k], v)
		}
	}
	if conv, _ := ping.Attributes["conversations"].(map[string]any); conv["followed_by"] != nil || conv["conversation_attribute_1"] != "kept" {
		t.Errorf("ping task carries the original task's reporting mark: %v", ping.Attributes["conversations"])
	}
	if ping.Priority != 1000 || ping.Channel != "default" || rec.Status.Ping.TaskSID != ping.SID {
		t.Errorf("ping task %s priority %d channel %s; status has %s", ping.SID, ping.Priority, ping.Channel, rec.Status.Ping.TaskSID)
	}
	if d := rec.Status.Disconnect; d == nil || d.WorkerSID != alice || d.ReservationSID != cl.reservation || d.WorkerName != "Alice" {
		t.Errorf("disconnect %+v, want Alice's reservation %s", d, cl.reservation)
	}
	if rec.Status.Timings.DetectionToPing == nil {
		t.Error("no detection-to-ping timing")
	}
	original, _ := sim.Snapshot().Task(cl.task)
	conv, _ := original.Attributes["conversations"].(map[string]any)
	if original.Attributes["disconnectedTime"] == nil || conv["followed_by"] != "Reconnect Agent" || conv["conversation_attribute_1"] != "kept" {
		t.Errorf("original task attributes %v: want disconnectedTime and followed_by, other conversations keys kept", original.Attributes)
	}
	if p, ok := participant(cl.conference, cl.customer); !ok || !p.Hold {
		t.Errorf("customer not on hold: %+v", p)
	}
	if conf, _ := sim.Snapshot().Conference(cl.conference); len(conf.Announcements) != 1 {
		t.Errorf("announcements %v, want one", conf.Announcements)
	}
	if err := conditionIs(rec.Status.Conditions, v1alpha1.ConditionAgentConnected, metav1.ConditionFalse, recovery.ReasonAgentDisconnected); err != nil {
		t.Error(err)
	}

	// The agent's reloaded Flex accepts the ping; Event Streams reports it.
	pingRes := c.waitReservation(ping.SID, alice, "pending")
	if err := sim.Accept(pingRes.SID); err != nil {
		t.Fatal(err)
	}
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Ping.Outcome, st.Ping.ResolvedAt = v1alpha1.PingAccepted, simTime()
	})
	rec = c.waitRecovery(cl.conference, "enqueued", func(r *v1alpha1.ConferenceRecovery) bool {
		return actionState(r, recovery.NameEnqueueReconnect) == v1alpha1.ActionDone
	})
	reconnects := c.reconnectTasks(cl.conference)
	if len(reconnects) != 1 {
		t.Fatalf("%d reconnect tasks, want 1", len(reconnects))
	}
	reconnect := reconnects[0]
	if reconnect.Workflow != c.workflow || reconnect.Attributes["targetWorkerSid"] != alice || reconnect.Priority != int(c.reconnect) ||
		reconnect.Attributes["disconnectedTaskSid"] != cl.task {
		t.Errorf("reconnect task %+v: want workflow %s, target %s, priority %d", reconnect, c.workflow, alice, c.reconnect)
	}
	if conv, _ := reconnect.Attributes["conversations"].(map[string]any); conv["conversation_id"] != cl.task {
		t.Errorf("reconnect conversations %v: want conversation_id %s", conv, cl.task)
	}
	if p, _ := sim.Snapshot().Task(ping.SID); p.Status != "completed" {
		t.Errorf("ping task is %s, want completed", p.Status)
	}
	if original, _ := sim.Snapshot().Task(cl.task); original.Attributes["wasPingSuccessful"] != true {
		t.Errorf("original task not marked wasPingSuccessful: %v", original.Attributes)
	}
	if rec.Status.Reconnect.TargetWorkerSID != alice || rec.Status.Reconnect.Fallback || rec.Status.Reconnect.EnqueuedAt == nil {
		t.Errorf("reconnect status %+v", rec.Status.Reconnect)
	}
	// The original reservation holds the agent's voice capacity until the reconnect task is queued.
	if res := sim.Snapshot().Reservations(cl.task)[0]; res.Status != "wrapping" {
		t.Errorf("original reservation is %s before the reconnect task was queued, want wrapping", res.Status)
	}

	// Event Streams: the reconnect task entered the queue.
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Reconnect.TaskSID, st.Reconnect.QueuedAt = reconnect.SID, simTime()
	})
	c.waitReservation(cl.task, alice, "completed")
	reconnectRes := c.waitReservation(reconnect.SID, alice, "pending")
	if err := sim.Accept(reconnectRes.SID); err != nil {
		t.Fatal(err)
	}
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Reconnect.WorkerSID, st.Reconnect.AcceptedAt = alice, simTime()
	})
	rec = c.waitPhase(cl.conference, v1alpha1.PhaseRecovered)
	requestsAfter, _ := sim.RequestStats()
	t.Logf("Twilio requests from the refresh to Recovered: %d (%s)", requestsAfter-requestsBefore, callsSince(t, callsBefore))

	newConference := rec.Status.Reconnect.ConferenceSID
	if _, ok := participant(newConference, externalLeg); !ok {
		t.Errorf("third party %s is not in the new conference %s", externalLeg, newConference)
	}
	if _, ok := participant(newConference, supervisorLeg); ok {
		t.Errorf("the coaching supervisor %s was dialled into the new conference", supervisorLeg)
	}
	if _, ok := participant(newConference, cl.customer); !ok {
		t.Errorf("the customer is not in the new conference")
	}
	// The reconnected call is protected in its turn: its own recovery corrects Flex's reset.
	newLeg := c.waitReservation(reconnect.SID, alice, "accepted").CallSID
	c.waitCorrected(newConference, newLeg)
	c.waitPhase(newConference, v1alpha1.PhaseMonitoring)
	for _, a := range rec.Status.Actions {
		if a.State != v1alpha1.ActionDone {
			t.Errorf("action %s is %s (%s)", a.Name, a.State, a.Message)
		}
	}
	if rec.Status.FinishedAt == nil || rec.Status.Timings.CustomerWithoutAgent == nil || rec.Labels[v1alpha1.PhaseLabel] != string(v1alpha1.PhaseRecovered) {
		// The label follows the status write; wait for it rather than fail on the order.
		rec = c.waitRecovery(cl.conference, "labelled", func(r *v1alpha1.ConferenceRecovery) bool {
			return r.Labels[v1alpha1.PhaseLabel] == string(v1alpha1.PhaseRecovered) && r.Status.FinishedAt != nil && r.Status.Timings.CustomerWithoutAgent != nil
		})
	}
	if err := conditionIs(rec.Status.Conditions, v1alpha1.ConditionCustomerConnected, metav1.ConditionTrue, recovery.ReasonReconnected); err != nil {
		t.Error(err)
	}
	if rec.Status.ObservedGeneration != rec.Generation {
		t.Errorf("observedGeneration %d, generation %d", rec.Status.ObservedGeneration, rec.Generation)
	}
}

// TestRecoveryFallbackAfterPingTTL: the agent does not answer the ping; after its TTL the customer
// is routed to anyone on the original workflow at the reconnect priority.
func TestRecoveryFallbackAfterPingTTL(t *testing.T) {
	c := newRecoveryCentre(t, centreOptions{offline: []string{"Bob"}})
	alice, bob := c.worker("Alice"), c.worker("Bob")
	cl := c.answer("Alice")
	c.refresh(cl, "Alice")
	rec := c.waitPhase(cl.conference, v1alpha1.PhasePinging)
	ping := rec.Status.Ping.TaskSID
	c.waitReservation(ping, alice, "pending")
	if err := sim.SetWorkerActivity(bob, "Available"); err != nil {
		t.Fatal(err)
	}

	sim.Advance(15 * time.Second)
	eventually(t, recoveryWait, func() error {
		if p, _ := sim.Snapshot().Task(ping); p.Status != "canceled" {
			return fmt.Errorf("ping task is %s", p.Status)
		}
		return nil
	})
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Ping.Outcome, st.Ping.ResolvedAt = v1alpha1.PingTimedOut, simTime()
	})
	rec = c.waitRecovery(cl.conference, "enqueued", func(r *v1alpha1.ConferenceRecovery) bool {
		return actionState(r, recovery.NameEnqueueReconnect) == v1alpha1.ActionDone
	})
	reconnects := c.reconnectTasks(cl.conference)
	if len(reconnects) != 1 {
		t.Fatalf("%d reconnect tasks, want 1", len(reconnects))
	}
	reconnect := reconnects[0]
	if _, targeted := reconnect.Attributes["targetWorkerSid"]; targeted || reconnect.Priority != int(c.reconnect) || reconnect.Workflow != c.workflow {
		t.Errorf("fallback task %+v: want no target, priority %d on %s", reconnect, c.reconnect, c.workflow)
	}
	if !rec.Status.Reconnect.Fallback || rec.Status.Reconnect.TargetWorkerSID != "" {
		t.Errorf("reconnect status %+v, want a fallback", rec.Status.Reconnect)
	}
	if actionState(rec, recovery.NameCompletePingTask) != "" || actionState(rec, recovery.NameMarkPingSuccessful) != "" {
		t.Errorf("ping steps taken for a ping nobody answered: %+v", rec.Status.Actions)
	}
	// Anyone may take it: Bob, since Alice's voice capacity is still held by her wrap-up.
	bobRes := c.waitReservation(reconnect.SID, bob, "pending")
	if res := sim.Snapshot().Reservations(cl.task)[0]; res.Status != "wrapping" {
		t.Errorf("original reservation is %s before the reconnect task was queued, want wrapping", res.Status)
	}
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Reconnect.TaskSID, st.Reconnect.QueuedAt = reconnect.SID, simTime()
	})
	c.waitReservation(cl.task, alice, "completed")

	sim.Advance(5 * time.Second)
	if err := sim.Accept(bobRes.SID); err != nil {
		t.Fatal(err)
	}
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Reconnect.WorkerSID, st.Reconnect.AcceptedAt = bob, simTime()
	})
	rec = c.waitRecovery(cl.conference, "recovered with a wait", func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Status.Phase == v1alpha1.PhaseRecovered && r.Status.Timings.CustomerWithoutAgent != nil
	})
	if got := rec.Status.Timings.CustomerWithoutAgent.Duration; got != 20*time.Second {
		t.Errorf("customer without agent %s, want 20s (the ping TTL and the wait in the queue)", got)
	}
}

// TestRecoveryAbandonedWhilePinging: the customer hangs up while the agent is being pinged; the
// recovery ends Abandoned, the ping is withdrawn and the customer is never enqueued.
func TestRecoveryAbandonedWhilePinging(t *testing.T) {
	c := newRecoveryCentre(t, centreOptions{})
	cl := c.answer("Alice")
	c.refresh(cl, "Alice")
	c.waitPhase(cl.conference, v1alpha1.PhasePinging)
	if err := sim.CustomerHangup(cl.customer); err != nil {
		t.Fatal(err)
	}
	rec := c.waitPhase(cl.conference, v1alpha1.PhaseAbandoned)
	if rec.Status.Reason != recovery.ReasonCustomerLeft || rec.Status.FinishedAt == nil {
		t.Errorf("abandoned with reason %s, finishedAt %v", rec.Status.Reason, rec.Status.FinishedAt)
	}
	if p, _ := sim.Snapshot().Task(rec.Status.Ping.TaskSID); p.Status != "canceled" {
		t.Errorf("ping task is %s, want canceled", p.Status)
	}
	if n := len(c.reconnectTasks(cl.conference)); n != 0 || actionState(rec, recovery.NameEnqueueReconnect) != "" {
		t.Errorf("%d reconnect tasks, enqueue %q: want none", n, actionState(rec, recovery.NameEnqueueReconnect))
	}
	if err := conditionIs(rec.Status.Conditions, v1alpha1.ConditionCustomerConnected, metav1.ConditionFalse, recovery.ReasonCustomerLeft); err != nil {
		t.Error(err)
	}
	c.waitRecovery(cl.conference, "labelled Abandoned", func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Labels[v1alpha1.PhaseLabel] == string(v1alpha1.PhaseAbandoned)
	})
}

// crashAtLeave makes the test webhook record, with the agent's leave, the disconnect and a Pending
// ping creation, as if the operator had crashed between the two; before is run once first (a ping
// task created before the crash). These are fields the controller owns: written while the
// controller is still saving a step of its own, a conflict would make it put its own fields back
// (mergeOwned) and erase the crash state. So the hook is armed only once the controller has
// recorded everything it does for the answered call (its endConferenceOnExit correction Done,
// nothing Pending) and has nothing left to write until the leave.
func crashAtLeave(c *recoveryCentre, cl *call, before func()) {
	c.waitQuiet(*cl)
	var once sync.Once
	c.webhook.setHook(func(ev events.ConferenceEvent, st *v1alpha1.ConferenceRecoveryStatus) bool {
		if ev.Event != events.ParticipantLeave || ev.CallSID != cl.agentLeg {
			return false
		}
		once.Do(before)
		st.Disconnect = &v1alpha1.DisconnectStatus{WorkerSID: c.worker("Alice"), WorkerName: "Alice", CallSID: cl.agentLeg,
			ReservationSID: cl.reservation, Reason: ev.ReasonParticipantLeft, At: metav1.NewTime(ev.Timestamp.UTC().Truncate(time.Second))}
		addPending(st, recovery.NameCreatePingTask)
		return true
	})
}

// waitQuiet waits until the controller has nothing left to write for the answered call: the
// correction of the agent's leg is recorded Done, the webhook has recorded the leg's modify that
// followed it, and no step is Pending.
func (c *recoveryCentre) waitQuiet(cl call) {
	c.t.Helper()
	c.waitCorrected(cl.conference, cl.agentLeg)
	c.waitRecovery(cl.conference, "quiet after the correction", func(r *v1alpha1.ConferenceRecovery) bool {
		corrected := false
		for _, a := range r.Status.Actions {
			if a.State == v1alpha1.ActionPending {
				return false
			}
			if leg, ok := recovery.IsCorrection(a.Name); ok && leg == cl.agentLeg && a.State == v1alpha1.ActionDone {
				corrected = true
			}
		}
		for _, p := range r.Status.Participants {
			if p.CallSID == cl.agentLeg && p.EndConferenceOnExit {
				return false
			}
		}
		return corrected && r.Status.Phase == v1alpha1.PhaseMonitoring
	})
}

// addPending records a step as Pending, as the operator does just before its side effect.
func addPending(st *v1alpha1.ConferenceRecoveryStatus, name string) {
	for _, a := range st.Actions {
		if a.Name == name {
			return
		}
	}
	st.Actions = append(st.Actions, v1alpha1.RecoveryAction{Name: name, State: v1alpha1.ActionPending, At: *simTime()})
}

// TestRecoveryExactlyOnce crashes the operator (in effect) between recording a step as Pending and
// recording its result, before and after the side effect, and checks the restart resolves the step
// by looking it up: never a second ping task or a second enqueue.
func TestRecoveryExactlyOnce(t *testing.T) {
	t.Run("ping pending, never created", func(t *testing.T) {
		c := newRecoveryCentre(t, centreOptions{})
		cl := c.answer("Alice")
		crashAtLeave(c, &cl, func() {})
		c.refresh(cl, "Alice")
		rec := c.waitRecovery(cl.conference, "pinging", func(r *v1alpha1.ConferenceRecovery) bool {
			return actionState(r, recovery.NameCreatePingTask) == v1alpha1.ActionDone
		})
		pings := c.pingTasks(cl.conference)
		if len(pings) != 1 || pings[0].SID != rec.Status.Ping.TaskSID {
			t.Fatalf("ping tasks %+v, status has %s: want exactly the one recorded", pings, rec.Status.Ping.TaskSID)
		}
	})

	t.Run("ping pending, created before the crash", func(t *testing.T) {
		c := newRecoveryCentre(t, centreOptions{})
		cl := c.answer("Alice")
		var created string
		crashAtLeave(c, &cl, func() {
			ttl, prio := 15, 1000
			task, err := c.twilio.CreateTask(context.Background(), c.cc.WorkspaceSID, twilio.TaskCreate{WorkflowSID: c.pingFlow,
				Attributes: fmt.Sprintf(`{"disconnectedConferenceSid":%q,"disconnectedWorkerSid":%q,%q:{"role":"ping","conferenceSid":%q,"disconnectedCallSid":%q}}`,
					cl.conference, c.worker("Alice"), recovery.MarkerAttribute, cl.conference, cl.agentLeg),
				Priority: &prio, Timeout: &ttl})
			if err != nil {
				t.Errorf("create the ping task before the crash: %v", err)
			}
			created = task.SID
		})
		c.refresh(cl, "Alice")
		rec := c.waitRecovery(cl.conference, "pinging", func(r *v1alpha1.ConferenceRecovery) bool {
			return actionState(r, recovery.NameCreatePingTask) == v1alpha1.ActionDone
		})
		if rec.Status.Ping.TaskSID != created {
			t.Errorf("status has ping task %s, want the one created before the crash, %s", rec.Status.Ping.TaskSID, created)
		}
		if pings := c.pingTasks(cl.conference); len(pings) != 1 {
			t.Errorf("%d ping tasks, want 1", len(pings))
		}
		// The rest of the recovery goes on from there.
		c.waitPhase(cl.conference, v1alpha1.PhasePinging)
		if actionState(c.recovery(cl.conference), recovery.NameMarkOriginalTask) != v1alpha1.ActionDone {
			t.Error("the original task was not marked after the restart")
		}
	})

	t.Run("enqueue pending, redirected before the crash", func(t *testing.T) {
		c := newRecoveryCentre(t, centreOptions{})
		cl := c.answer("Alice")
		c.refresh(cl, "Alice")
		rec := c.waitPhase(cl.conference, v1alpha1.PhasePinging)
		pingRes := c.waitReservation(rec.Status.Ping.TaskSID, c.worker("Alice"), "pending")
		if err := sim.Accept(pingRes.SID); err != nil {
			t.Fatal(err)
		}
		// The operator saw the ping accepted, recorded the enqueue as Pending, redirected the
		// customer and crashed before recording it: the status the restart finds carries the
		// customer's leave from the redirect together with the Pending enqueue.
		c.webhook.setHook(func(ev events.ConferenceEvent, st *v1alpha1.ConferenceRecoveryStatus) bool {
			if ev.Event != events.ParticipantLeave || ev.CallSID != cl.customer {
				return false
			}
			st.Ping.Outcome, st.Ping.ResolvedAt = v1alpha1.PingAccepted, simTime()
			addPending(st, recovery.NameEnqueueReconnect)
			return true
		})
		attrs := recovery.ReconnectTaskAttributes(map[string]any{"disconnectedConferenceSid": cl.conference},
			recovery.Marker{ConferenceSID: cl.conference, DisconnectedCallSID: cl.agentLeg}, cl.task, c.worker("Alice"), false)
		twiml, err := recovery.BuildEnqueueTwiML(c.workflow, c.reconnect, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.twilio.RedirectCall(context.Background(), cl.customer, twiml); err != nil {
			t.Fatal(err)
		}
		c.waitRecovery(cl.conference, "enqueued", func(r *v1alpha1.ConferenceRecovery) bool {
			return actionState(r, recovery.NameEnqueueReconnect) == v1alpha1.ActionDone &&
				actionState(r, recovery.NameMarkPingSuccessful) == v1alpha1.ActionDone
		})
		if n := len(c.reconnectTasks(cl.conference)); n != 1 {
			t.Errorf("%d reconnect tasks, want 1", n)
		}
	})

	t.Run("enqueue outcome unknown", func(t *testing.T) {
		c := newRecoveryCentre(t, centreOptions{})
		cl := c.answer("Alice")
		c.refresh(cl, "Alice")
		rec := c.waitPhase(cl.conference, v1alpha1.PhasePinging)
		pingRes := c.waitReservation(rec.Status.Ping.TaskSID, c.worker("Alice"), "pending")
		if err := sim.Accept(pingRes.SID); err != nil {
			t.Fatal(err)
		}
		// The redirect is answered 503 without being carried out: its outcome is unknown to the
		// operator, which must look before redirecting again.
		sim.SetFaults(twiliosim.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable, FailPathPrefix: callPath(cl.customer)})
		t.Cleanup(func() { sim.SetFaults(twiliosim.Faults{}) })
		c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
			st.Ping.Outcome, st.Ping.ResolvedAt = v1alpha1.PingAccepted, simTime()
		})
		c.waitRecovery(cl.conference, "enqueued", func(r *v1alpha1.ConferenceRecovery) bool {
			return actionState(r, recovery.NameEnqueueReconnect) == v1alpha1.ActionDone
		})
		if f := sim.CurrentFaults(); f.FailNext != 0 {
			t.Errorf("the fault was not hit (%d left)", f.FailNext)
		}
		if n := len(c.reconnectTasks(cl.conference)); n != 1 {
			t.Errorf("%d reconnect tasks, want 1", n)
		}
	})
}

// callPath is the REST path of a call, for faults aimed at it.
func callPath(callSID string) string {
	return "/2010-04-01/Accounts/" + sim.AccountSID() + "/Calls/" + callSID
}

// TestRecoveryFailsOnTerminalTwilioError: Twilio refuses the customer's redirect for good; the
// recovery is Failed with the reason, not retried for ever.
func TestRecoveryFailsOnTerminalTwilioError(t *testing.T) {
	c := newRecoveryCentre(t, centreOptions{})
	cl := c.answer("Alice")
	c.refresh(cl, "Alice")
	c.waitPhase(cl.conference, v1alpha1.PhasePinging)
	sim.SetFaults(twiliosim.Faults{FailNext: 1, FailStatus: http.StatusBadRequest, FailPathPrefix: callPath(cl.customer)})
	t.Cleanup(func() { sim.SetFaults(twiliosim.Faults{}) })
	sim.Advance(15 * time.Second)
	c.observe(cl.conference, func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Ping.Outcome, st.Ping.ResolvedAt = v1alpha1.PingTimedOut, simTime()
	})
	rec := c.waitPhase(cl.conference, v1alpha1.PhaseFailed)
	if rec.Status.Reason != recovery.ReasonActionFailed || actionState(rec, recovery.NameEnqueueReconnect) != v1alpha1.ActionFailed {
		t.Errorf("failed with %s, enqueue %s", rec.Status.Reason, actionState(rec, recovery.NameEnqueueReconnect))
	}
	for _, a := range rec.Status.Actions {
		if a.Name == recovery.NameEnqueueReconnect && !strings.Contains(a.Message, "injected fault") {
			t.Errorf("the failure does not say why: %q", a.Message)
		}
	}
	if n := len(c.reconnectTasks(cl.conference)); n != 0 {
		t.Errorf("%d reconnect tasks after a refused redirect", n)
	}
	if rec.Status.FinishedAt == nil {
		t.Error("no finishedAt on a Failed recovery")
	}
}

// TestRecoveryWithoutPolicy: a recovery whose policy does not exist says so and does nothing.
func TestRecoveryWithoutPolicy(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	conference := "CF" + strings.Repeat("c", 32)
	rec := &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.ToLower(conference)},
		Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: "missing", ConferenceSID: conference}}
	if err := k8sClient.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(rec), rec); err != nil {
			return err
		}
		if rec.Status.Reason != "PolicyNotFound" || !strings.Contains(rec.Status.Message, `"missing"`) {
			return fmt.Errorf("status %s/%s: %s", rec.Status.Phase, rec.Status.Reason, rec.Status.Message)
		}
		return nil
	})
	if rec.Status.Phase != v1alpha1.PhaseMonitoring || len(rec.Status.Actions) != 0 {
		t.Errorf("phase %s, actions %+v: want Monitoring and nothing done", rec.Status.Phase, rec.Status.Actions)
	}
}

// twilioCalls reads the operator's Twilio request counter by operation.
func twilioCalls(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "flexoperator_twilio_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// callsSince describes the Twilio requests made since before, by operation.
func callsSince(t *testing.T, before map[string]float64) string {
	t.Helper()
	var parts []string
	for op, n := range twilioCalls(t) {
		if d := n - before[op]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", op, d))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// TestRecoveryWithoutPingWorkflow: when the ping cannot be created (here the policy names a ping
// workflow that does not exist, and the operator does not manage TaskRouter), the customer is not
// left on hold: they are routed to anyone on the original workflow.
func TestRecoveryWithoutPingWorkflow(t *testing.T) {
	c := newRecoveryCentre(t, centreOptions{policy: func(p *v1alpha1.ConferenceRecoveryPolicySpec) {
		off := false
		p.Management.TaskRouter = &off
		p.Ping.WorkflowName = "No Such Workflow"
	}})
	cl := c.answer("Alice")
	c.refresh(cl, "Alice")
	rec := c.waitRecovery(cl.conference, "enqueued", func(r *v1alpha1.ConferenceRecovery) bool {
		return actionState(r, recovery.NameEnqueueReconnect) == v1alpha1.ActionDone
	})
	if actionState(rec, recovery.NameCreatePingTask) != v1alpha1.ActionFailed || rec.Status.Phase != v1alpha1.PhaseReconnecting ||
		rec.Status.Reason != recovery.ReasonPingFailed {
		t.Errorf("phase %s/%s, ping step %s: want Reconnecting/PingFailed after a failed ping", rec.Status.Phase, rec.Status.Reason,
			actionState(rec, recovery.NameCreatePingTask))
	}
	reconnects := c.reconnectTasks(cl.conference)
	if len(reconnects) != 1 || reconnects[0].Attributes["targetWorkerSid"] != nil || !rec.Status.Reconnect.Fallback {
		t.Errorf("reconnect tasks %+v, status %+v: want one fallback", reconnects, rec.Status.Reconnect)
	}
	if n := len(c.pingTasks(cl.conference)); n != 0 {
		t.Errorf("%d ping tasks", n)
	}
}
