package scenario

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
	"github.com/flexoperator/flex-operator/internal/twilio"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// ActivityCentreOptions describe a contact centre for worker activity scenarios.
type ActivityCentreOptions struct {
	// Name prefixes the namespace and names the workspace.
	Name string
	// Agents start Available; Offline agents start Offline. Each has capacity 1 on voice and 2
	// on chat.
	Agents  []string
	Offline []string
	// Policy adjusts the WorkerActivityPolicy spec before it is applied.
	Policy func(*v1alpha1.WorkerActivityPolicySpec)
}

// ActivityCentre is a workspace with the six activities of a WorkerActivityPolicy, a workflow
// taking voice and chat tasks, a credentials Secret and the policy, on an Env.
type ActivityCentre struct {
	Env       *Env
	Namespace string
	// Policy is the WorkerActivityPolicy's name.
	Policy      string
	CC          *twiliosim.ContactCentre
	WorkflowSID string
	// Twilio reaches the simulator as the operator does.
	Twilio twilio.Client
}

// ActivityNames are the policy's default activity names, by role.
var ActivityNames = v1alpha1.ActivityNames{
	Available: "Available", OnATask: "On a Task", OnATaskNoAcd: "On a Task, No ACD",
	Wrapup: "Wrap Up", WrapupNoAcd: "Wrap Up, No ACD", ExtendedWrapup: "Extended Wrap Up",
}

// Worker returns the SID of the named worker.
func (c *ActivityCentre) Worker(name string) string { return c.CC.Workers[name] }

// Key is the policy's name.
func (c *ActivityCentre) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: c.Policy}
}

// NewActivityCentre builds the workspace and applies the policy; the operator resolves its
// activities and sets up its Event Streams sink (WaitReady).
func (e *Env) NewActivityCentre(ctx context.Context, o ActivityCentreOptions) (*ActivityCentre, error) {
	if o.Name == "" {
		o.Name = "activity"
	}
	ns := o.Name + "-" + rand.String(5)
	spec := twiliosim.ContactCentreSpec{
		Name: ns,
		Activities: []twiliosim.ActivitySpec{
			{Name: "On a Task", Available: true}, {Name: "On a Task, No ACD"},
			{Name: "Wrap Up", Available: true}, {Name: "Wrap Up, No ACD"}, {Name: "Extended Wrap Up"},
		},
		Queues: []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Assign to Anyone", Configuration: map[string]any{
			"task_routing": map[string]any{"default_filter": map[string]any{"queue": "Everyone"}},
		}}},
	}
	capacity := map[string]int{"voice": 1, "chat": 2}
	for _, a := range o.Agents {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: a, Capacity: capacity,
			Attributes: map[string]any{"contact_uri": "client:" + a, "skills": []any{"support"}}})
	}
	for _, a := range o.Offline {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: a, Activity: "Offline", Capacity: capacity,
			Attributes: map[string]any{"contact_uri": "client:" + a, "skills": []any{"support"}}})
	}
	cc, err := e.Sim.BuildContactCentre(spec)
	if err != nil {
		return nil, fmt.Errorf("build the contact centre: %w", err)
	}
	tw, err := twilio.New(twilio.Config{AccountSID: e.Sim.AccountSID(), AuthToken: e.Sim.AuthToken(), BaseURL: e.Sim.URL(), Rate: -1})
	if err != nil {
		return nil, err
	}
	c := &ActivityCentre{Env: e, Namespace: ns, Policy: "agents", CC: cc, WorkflowSID: cc.Workflows["Assign to Anyone"], Twilio: tw}
	policy := &v1alpha1.WorkerActivityPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Policy},
		Spec: v1alpha1.WorkerActivityPolicySpec{
			Twilio: v1alpha1.TwilioSpec{
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"},
				WorkspaceSID:         cc.WorkspaceSID,
			},
			Activities: ActivityNames,
		},
	}
	if o.Policy != nil {
		o.Policy(&policy.Spec)
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "twilio"},
			StringData: map[string]string{"accountSid": e.Sim.AccountSID(), "authToken": e.Sim.AuthToken()}},
		policy,
	}
	for _, obj := range objs {
		if err := e.Client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return c, nil
}

// WaitReady waits for the policy to be Ready: activities resolved, its sink active and
// subscribed, and the engine's state rebuilt.
func (c *ActivityCentre) WaitReady(ctx context.Context) (*v1alpha1.WorkerActivityPolicy, error) {
	var p v1alpha1.WorkerActivityPolicy
	err := Poll(ctx, Wait, func() (bool, error) {
		if err := c.Env.Client.Get(ctx, c.Key(), &p); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady), nil
	})
	if err != nil {
		return &p, fmt.Errorf("policy %s not Ready (conditions %v): %w", c.Key(), p.Status.Conditions, err)
	}
	return &p, nil
}

// CreateTask creates a task on channel through the workflow and returns its SID.
func (c *ActivityCentre) CreateTask(ctx context.Context, channel string, attrs string) (string, error) {
	if attrs == "" {
		attrs = `{"type":"inbound"}`
	}
	t, err := c.Twilio.CreateTask(ctx, c.CC.WorkspaceSID, twilio.TaskCreate{WorkflowSID: c.WorkflowSID, TaskChannel: channel, Attributes: attrs})
	if err != nil {
		return "", err
	}
	return t.SID, nil
}

// Offer creates a task on channel and waits for its reservation to the worker (the only one
// available to take it, or whoever TaskRouter picks) and returns the reservation.
func (c *ActivityCentre) Offer(ctx context.Context, channel, worker string) (twiliosim.ReservationState, error) {
	task, err := c.CreateTask(ctx, channel, "")
	if err != nil {
		return twiliosim.ReservationState{}, err
	}
	var found twiliosim.ReservationState
	err = Poll(ctx, Wait, func() (bool, error) {
		for _, r := range c.workspace().Reservations {
			if r.TaskSID == task && r.Status == "pending" && (worker == "" || r.WorkerSID == c.Worker(worker)) {
				found = r
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return found, fmt.Errorf("no %s offer to %s: %w", channel, worker, err)
	}
	return found, nil
}

// Reservations returns the workspace's reservations.
func (c *ActivityCentre) Reservations() []twiliosim.ReservationState {
	return c.workspace().Reservations
}

// Workspace returns the simulator's view of the workspace: its workers, tasks and reservations
// at one instant.
func (c *ActivityCentre) Workspace() twiliosim.WorkspaceState { return c.workspace() }

func (c *ActivityCentre) workspace() twiliosim.WorkspaceState {
	for _, ws := range c.Env.Sim.Snapshot().Workspaces {
		if ws.SID == c.CC.WorkspaceSID {
			return ws
		}
	}
	return twiliosim.WorkspaceState{}
}

// Workers returns the simulator's view of every worker of the workspace.
func (c *ActivityCentre) Workers() []twiliosim.WorkerState {
	return c.workspace().Workers
}

// WorkerState returns the simulator's view of a worker.
func (c *ActivityCentre) WorkerState(name string) twiliosim.WorkerState {
	for _, w := range c.workspace().Workers {
		if w.SID == c.Worker(name) {
			return w
		}
	}
	return twiliosim.WorkerState{}
}

// WaitActivity waits until the worker is in the named activity with the pending activity
// attribute equal to pending ("" for none).
func (c *ActivityCentre) WaitActivity(ctx context.Context, name, activityName, pending string) (twiliosim.WorkerState, error) {
	var w twiliosim.WorkerState
	err := Poll(ctx, Wait, func() (bool, error) {
		w = c.WorkerState(name)
		got, _ := w.Attributes[activity.DefaultPendingActivityAttribute].(string)
		return w.Activity == activityName && got == pending, nil
	})
	if err != nil {
		got, _ := w.Attributes[activity.DefaultPendingActivityAttribute].(string)
		return w, fmt.Errorf("%s: want activity %q pending %q, have %q pending %q: %w", name, activityName, pending, w.Activity, got, err)
	}
	return w, nil
}

// WaitQuiet waits until every event TaskRouter emitted has been delivered to the policy's sink and
// the engine has decided and written everything they caused.
func (c *ActivityCentre) WaitQuiet(ctx context.Context) error {
	return c.WaitQuietWithin(ctx, Wait)
}

// WaitQuietWithin is WaitQuiet with its own deadline (a benchmark's large workspace).
func (c *ActivityCentre) WaitQuietWithin(ctx context.Context, timeout time.Duration) error {
	var p v1alpha1.WorkerActivityPolicy
	if err := c.Env.Client.Get(ctx, c.Key(), &p); err != nil {
		return err
	}
	quiet := 0
	return Poll(ctx, timeout, func() (bool, error) {
		d := c.Env.Sim.Snapshot().Deliveries.Destination("sink:" + p.Status.SinkSID)
		if d.Pending == 0 && c.Env.Engine.Idle(c.Key()) {
			quiet++
		} else {
			quiet = 0
		}
		// Twice in a row: a write in flight shows as pending delivery of its event next.
		return quiet >= 2, nil
	})
}

// WaitSynced waits until the engine reports the policy synced (its state rebuilt).
func (c *ActivityCentre) WaitSynced(ctx context.Context, stats activity.StatsSource) error {
	return Poll(ctx, Wait, func() (bool, error) {
		st, ok := stats.Stats(c.Key())
		return ok && st.Synced, nil
	})
}
