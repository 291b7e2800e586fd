package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twiliosim"
)

// Wait bounds every wait of a scenario step.
const Wait = 30 * time.Second

// CentreOptions describe a contact centre to build.
type CentreOptions struct {
	// Name prefixes the namespace and names the workspace.
	Name string
	// Namespace, when set, is the namespace to use (created unless it exists) instead of a new
	// one named after Name.
	Namespace string
	// Agents are the workers, by name, available to take voice calls.
	Agents []string
	// Offline are workers that exist but start Offline.
	Offline []string
	// Policy adjusts the ConferenceRecoveryPolicy spec before it is applied.
	Policy func(*v1alpha1.ConferenceRecoveryPolicySpec)
}

// Centre is a contact centre (a namespace, a workspace with a voice workflow, a credentials
// Secret and a ConferenceRecoveryPolicy protecting that workflow) on an Env.
type Centre struct {
	Env       *Env
	Namespace string
	// Policy is the ConferenceRecoveryPolicy's name.
	Policy string
	// CC holds the workspace's SIDs by name.
	CC *twiliosim.ContactCentre
	// WorkflowSID is the protected voice workflow ("Assign to Anyone").
	WorkflowSID string
}

// Worker returns the SID of the named worker.
func (c *Centre) Worker(name string) string { return c.CC.Workers[name] }

// NewCentre builds a contact centre and applies its policy; it does not wait for the policy to
// be ready (WaitPolicyReady).
func (e *Env) NewCentre(ctx context.Context, o CentreOptions) (*Centre, error) {
	if o.Name == "" {
		o.Name = "centre"
	}
	ns := o.Name + "-" + rand.String(5)
	if o.Namespace != "" {
		ns = o.Namespace
	}
	spec := twiliosim.ContactCentreSpec{
		Name:   ns,
		Queues: []twiliosim.QueueSpec{{Name: "Everyone", TargetWorkers: "1==1"}},
		Workflows: []twiliosim.WorkflowSpec{{Name: "Assign to Anyone", Configuration: map[string]any{
			"task_routing": map[string]any{
				"filters": []any{map[string]any{
					"filter_friendly_name": "Everyone", "expression": "1==1",
					"targets": []any{map[string]any{"queue": "Everyone"}},
				}},
				"default_filter": map[string]any{"queue": "Everyone"},
			},
		}}},
	}
	for _, a := range o.Agents {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: a, Attributes: map[string]any{"contact_uri": "client:" + a}})
	}
	for _, a := range o.Offline {
		spec.Workers = append(spec.Workers, twiliosim.WorkerSpec{Name: a, Activity: "Offline",
			Attributes: map[string]any{"contact_uri": "client:" + a}})
	}
	cc, err := e.Sim.BuildContactCentre(spec)
	if err != nil {
		return nil, fmt.Errorf("build the contact centre: %w", err)
	}
	c := &Centre{Env: e, Namespace: ns, Policy: "voice", CC: cc, WorkflowSID: cc.Workflows["Assign to Anyone"]}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "twilio"},
			StringData: map[string]string{"accountSid": e.Sim.AccountSID(), "authToken": e.Sim.AuthToken()}},
	}
	policy := &v1alpha1.ConferenceRecoveryPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Policy},
		Spec: v1alpha1.ConferenceRecoveryPolicySpec{
			Twilio: v1alpha1.TwilioSpec{
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio"},
				WorkspaceSID:         cc.WorkspaceSID,
			},
			ProtectedWorkflowSIDs: []string{c.WorkflowSID},
			Customer: v1alpha1.CustomerExperience{
				AnnouncementText: "We lost the connection to your agent. Please hold while we reconnect you.",
			},
		},
	}
	if o.Policy != nil {
		o.Policy(&policy.Spec)
	}
	objs = append(objs, policy)
	for _, obj := range objs {
		if err := e.Client.Create(ctx, obj); err != nil {
			if _, isNamespace := obj.(*corev1.Namespace); isNamespace && apierrors.IsAlreadyExists(err) {
				continue
			}
			return nil, fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	// The Flex plugin attaches the operator's conference callback at accept.
	if err := e.Sim.SetWorkspaceConferenceCallback(cc.WorkspaceSID, c.ConferenceCallbackURL()); err != nil {
		return nil, err
	}
	return c, nil
}

// ConferenceCallbackURL is the URL the Flex UI attaches as the conference status callback.
func (c *Centre) ConferenceCallbackURL() string {
	return fmt.Sprintf("%s/twilio/%s/%s/conference", c.Env.WebhookURL, c.Namespace, c.Policy)
}

// WaitPolicyReady waits until the policy reports Ready.
func (c *Centre) WaitPolicyReady(ctx context.Context) (*v1alpha1.ConferenceRecoveryPolicy, error) {
	var p v1alpha1.ConferenceRecoveryPolicy
	err := Poll(ctx, Wait, func() (bool, error) {
		if err := c.Env.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Policy}, &p); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady), nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy %s/%s not ready: %w (conditions %+v)", c.Namespace, c.Policy, err, p.Status.Conditions)
	}
	return &p, nil
}

// Call is an answered inbound call.
type Call struct {
	// CustomerCallSID is the caller's leg.
	CustomerCallSID string
	TaskSID         string
	ReservationSID  string
	ConferenceSID   string
}

// Answer places an inbound call on the protected workflow, waits for the named agent's
// reservation, accepts it the way Flex does and waits until the conference exists.
func (c *Centre) Answer(ctx context.Context, agent string) (Call, error) {
	placed, err := c.Env.Sim.PlaceCall("+15550100"+fmt.Sprint(rand.IntnRange(100, 999)), c.WorkflowSID, nil)
	if err != nil {
		return Call{}, err
	}
	call := Call{CustomerCallSID: placed.CallSID, TaskSID: placed.TaskSID}
	res, err := c.WaitReservation(ctx, func(t twiliosim.TaskState, r twiliosim.ReservationState) bool {
		return t.SID == placed.TaskSID && r.WorkerSID == c.Worker(agent) && r.Status == "pending"
	})
	if err != nil {
		return call, fmt.Errorf("no reservation for %s: %w", agent, err)
	}
	call.ReservationSID = res.SID
	if err := c.Env.Sim.Accept(res.SID); err != nil {
		return call, err
	}
	err = Poll(ctx, Wait, func() (bool, error) {
		t, ok := c.Env.Sim.Snapshot().Task(placed.TaskSID)
		call.ConferenceSID = t.ConferenceSID
		return ok && t.ConferenceSID != "", nil
	})
	return call, err
}

// WaitReservation waits for a reservation matching match and returns it.
func (c *Centre) WaitReservation(ctx context.Context, match func(twiliosim.TaskState, twiliosim.ReservationState) bool) (twiliosim.ReservationState, error) {
	var found twiliosim.ReservationState
	err := Poll(ctx, Wait, func() (bool, error) {
		st := c.Env.Sim.Snapshot()
		for _, ws := range st.Workspaces {
			if ws.SID != c.CC.WorkspaceSID {
				continue
			}
			tasks := map[string]twiliosim.TaskState{}
			for _, t := range ws.Tasks {
				tasks[t.SID] = t
			}
			for _, r := range ws.Reservations {
				if match(tasks[r.TaskSID], r) {
					found = r
					return true, nil
				}
			}
		}
		return false, nil
	})
	return found, err
}

// Tasks returns the workspace's tasks that match.
func (c *Centre) Tasks(match func(twiliosim.TaskState) bool) []twiliosim.TaskState {
	var out []twiliosim.TaskState
	for _, ws := range c.Env.Sim.Snapshot().Workspaces {
		if ws.SID != c.CC.WorkspaceSID {
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

// IsPingTask reports whether t is a Recovery Ping task (by its recovery marker).
func IsPingTask(t twiliosim.TaskState) bool {
	return recovery.AttributesOf(t.Attributes).Marker.Role == recovery.TaskRolePing
}

// IsReconnectTask reports whether t is a reconnect task (by its recovery marker).
func IsReconnectTask(t twiliosim.TaskState) bool {
	return recovery.AttributesOf(t.Attributes).Marker.Role == recovery.TaskRoleReconnect
}

// RecoversConference reports whether t is a ping or reconnect task of the conference.
func RecoversConference(t twiliosim.TaskState, conferenceSID string) bool {
	return recovery.AttributesOf(t.Attributes).Marker.ConferenceSID == conferenceSID
}

// Recovery reads the ConferenceRecovery of a conference.
func (c *Centre) Recovery(ctx context.Context, conferenceSID string) (*v1alpha1.ConferenceRecovery, error) {
	var rec v1alpha1.ConferenceRecovery
	err := c.Env.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: strings.ToLower(conferenceSID)}, &rec)
	return &rec, err
}

// WaitRecovery waits until the conference's ConferenceRecovery satisfies cond.
func (c *Centre) WaitRecovery(ctx context.Context, conferenceSID string, what string, cond func(*v1alpha1.ConferenceRecovery) bool) (*v1alpha1.ConferenceRecovery, error) {
	var last *v1alpha1.ConferenceRecovery
	err := Poll(ctx, Wait, func() (bool, error) {
		rec, err := c.Recovery(ctx, conferenceSID)
		if err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = rec
		return cond(rec), nil
	})
	if err != nil {
		if last == nil {
			return nil, fmt.Errorf("%s: no ConferenceRecovery for %s: %w", what, conferenceSID, err)
		}
		return last, fmt.Errorf("%s: %w (phase %s, reason %s: %s)", what, err, last.Status.Phase, last.Status.Reason, last.Status.Message)
	}
	return last, nil
}

// WaitPhase waits until the conference's recovery is in phase.
func (c *Centre) WaitPhase(ctx context.Context, conferenceSID string, phase v1alpha1.RecoveryPhase) (*v1alpha1.ConferenceRecovery, error) {
	return c.WaitRecovery(ctx, conferenceSID, "phase "+string(phase), func(r *v1alpha1.ConferenceRecovery) bool {
		return r.Status.Phase == phase
	})
}

// AgentLeg returns the conference leg of a worker, if connected.
func (c *Centre) AgentLeg(conferenceSID, workerSID string) (twiliosim.ParticipantState, bool) {
	conf, ok := c.Env.Sim.Snapshot().Conference(conferenceSID)
	if !ok {
		return twiliosim.ParticipantState{}, false
	}
	for _, p := range conf.Participants {
		if p.WorkerSID == workerSID {
			return p, true
		}
	}
	return twiliosim.ParticipantState{}, false
}
