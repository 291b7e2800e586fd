package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// discoveryBackoff spaces the attempts of a policy whose discovery failed (Twilio or the API server
// unavailable); it keeps trying while this replica leads.
var discoveryBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Cap: 30 * time.Second, Steps: 1 << 30}

// recoveryDiscovery protects the calls answered while no operator ran. Recoveries are created from
// conference callbacks, which Twilio sends once: a call answered during an outage has none, and
// Flex's endConferenceOnExit=true stays on its agent's leg, so the agent's next page refresh would
// hang up on the customer. When this replica starts leading (a start, or a change of leader), it
// lists the live conferences of every protected workspace's account from Twilio's REST API,
// creates the ConferenceRecovery of each one on a protected workflow that has none, with the legs
// Twilio lists (as the webhook server would have from the callbacks), and the controller corrects
// the agent's leg as it does for any call. It also starts a new term of the resync, so that every
// recovery made before now is read from Twilio once.
//
// Its requests go at the default (recovery) priority: a customer may be one refresh away from
// being hung up on. They cost one conference list per account (a page holds 1,000 conferences),
// then, per live conference with no recovery yet, one task read and one participant list.
type recoveryDiscovery struct {
	r *ConferenceRecoveryReconciler
}

// NeedLeaderElection says discovery runs on the leader only, once per term.
func (d *recoveryDiscovery) NeedLeaderElection() bool { return true }

// Start discovers the live calls of every policy, trying a policy again (with backoff) until it
// succeeds or leadership ends.
func (d *recoveryDiscovery) Start(ctx context.Context) error {
	d.r.resync.begin()
	log := ctrl.LoggerFrom(ctx).WithName("recovery-discovery")
	var policies v1alpha1.ConferenceRecoveryPolicyList
	err := wait.ExponentialBackoffWithContext(ctx, discoveryBackoff, func(ctx context.Context) (bool, error) {
		if err := d.r.List(ctx, &policies); err != nil {
			log.Error(err, "List ConferenceRecoveryPolicies for the start-up discovery")
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil // leadership ended first
	}
	todo := policies.Items
	live := map[string][]twilio.Conference{} // by account: one list serves every policy on it
	backoff := discoveryBackoff
	for len(todo) > 0 {
		var failed []v1alpha1.ConferenceRecoveryPolicy
		for i := range todo {
			policy := &todo[i]
			created, err := d.discover(ctx, policy, live)
			if err != nil {
				log.Error(err, "Discover the live calls of a policy; trying again", "policy", client.ObjectKeyFromObject(policy))
				failed = append(failed, *policy)
				continue
			}
			if created > 0 {
				log.Info("Protected calls answered while no operator ran", "policy", client.ObjectKeyFromObject(policy), "calls", created)
			}
		}
		todo = failed
		if len(todo) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.Step()):
		}
	}
	return nil
}

// discover creates the recoveries of the policy's live protected calls that have none, and
// returns how many it created.
func (d *recoveryDiscovery) discover(ctx context.Context, policy *v1alpha1.ConferenceRecoveryPolicy, live map[string][]twilio.Conference) (int, error) {
	if policy.DeletionTimestamp != nil || len(policy.Spec.ProtectedWorkflowSIDs) == 0 {
		return 0, nil
	}
	creds, tc, err := d.r.Twilio.For(ctx, policy.Namespace, policy.Spec.Twilio)
	if err != nil {
		var cerr *credentials.Error
		if errors.As(err, &cerr) && cerr.Err == nil {
			return 0, nil // the policy's own conditions say what is missing; nothing to protect with
		}
		return 0, fmt.Errorf("twilio client: %w", err)
	}
	conferences, listed := live[creds.AccountSID]
	if !listed {
		if conferences, err = tc.ListConferences(ctx, "in-progress"); err != nil {
			return 0, fmt.Errorf("list the live conferences: %w", err)
		}
		live[creds.AccountSID] = conferences
	}
	created := 0
	for _, conf := range conferences {
		// Flex names a task's conference after the task; other conferences are not a Flex call's.
		if !events.ValidSID(conf.SID, "CF") || !events.ValidSID(conf.FriendlyName, "WT") {
			continue
		}
		key := types.NamespacedName{Namespace: policy.Namespace, Name: strings.ToLower(conf.SID)}
		var existing v1alpha1.ConferenceRecovery
		err := d.reader().Get(ctx, key, &existing)
		if err == nil {
			continue // known: the resync reads it from Twilio
		}
		if !apierrors.IsNotFound(err) {
			return created, fmt.Errorf("read ConferenceRecovery %s: %w", key, err)
		}
		ok, err := d.protect(ctx, tc, policy, conf, key)
		if err != nil {
			return created, err
		}
		if ok {
			created++
		}
	}
	return created, nil
}

// protect creates the recovery of one live conference if its task is on a protected workflow of
// the policy, and reports whether it did.
func (d *recoveryDiscovery) protect(ctx context.Context, tc twilio.Client, policy *v1alpha1.ConferenceRecoveryPolicy,
	conf twilio.Conference, key types.NamespacedName) (bool, error) {
	task, err := tc.FetchTask(ctx, policy.Spec.Twilio.WorkspaceSID, conf.FriendlyName)
	if twilio.IsNotFound(err) {
		return false, nil // another workspace's task
	}
	if err != nil {
		return false, fmt.Errorf("fetch task %s of conference %s: %w", conf.FriendlyName, conf.SID, err)
	}
	if !slices.Contains(policy.Spec.ProtectedWorkflowSIDs, task.WorkflowSID) {
		return false, nil
	}
	parts, err := tc.ListParticipants(ctx, conf.SID)
	if twilio.IsNotFound(err) {
		return false, nil // ended meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("list the participants of %s: %w", conf.SID, err)
	}
	snap := recovery.Snapshot{At: d.r.now()}
	for _, p := range parts {
		if p.Status == "complete" || p.Status == "failed" {
			continue
		}
		snap.Participants = append(snap.Participants, recovery.LiveLeg{CallSID: p.CallSID, Label: p.Label,
			Coaching: p.Coaching, EndConferenceOnExit: p.EndConferenceOnExit})
	}
	if len(snap.Participants) == 0 {
		return false, nil
	}
	labels := map[string]string{v1alpha1.PhaseLabel: string(v1alpha1.PhaseMonitoring)}
	if len(validation.IsValidLabelValue(policy.Name)) == 0 {
		labels[v1alpha1.PolicyLabel] = policy.Name
	}
	rec := &v1alpha1.ConferenceRecovery{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: labels},
		Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: policy.Name, ConferenceSID: conf.SID,
			TaskSID: task.SID, WorkflowSID: task.WorkflowSID},
	}
	if err := d.r.Create(ctx, rec); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, nil // a callback arrived first: the webhook server has it
		}
		return false, fmt.Errorf("create ConferenceRecovery %s: %w", key, err)
	}
	attrs, _ := recovery.ParseTaskAttributes(task.Attributes) // roles are a hint; labels come first
	roles := attrs.Participants
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var fresh v1alpha1.ConferenceRecovery
		if err := d.reader().Get(ctx, key, &fresh); err != nil {
			return err
		}
		if !recovery.ApplySnapshot(&fresh.Status, snap) {
			return nil
		}
		nameRoles(&fresh.Status, roles)
		return d.r.Status().Update(ctx, &fresh)
	})
	if err != nil {
		return true, fmt.Errorf("record the legs of %s: %w", key, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Protected a call answered while no operator ran", "recovery", key, "task", task.SID)
	return true, nil
}

// nameRoles gives the legs whose label says nothing the role the task's conference attribute
// gives them, as the webhook server does.
func nameRoles(st *v1alpha1.ConferenceRecoveryStatus, roles map[string]string) {
	for key, callSID := range roles {
		role := v1alpha1.RoleUnknown
		switch {
		case key == "customer":
			role = v1alpha1.RoleCustomer
		case key == "worker" || events.ValidSID(key, "WK"):
			role = v1alpha1.RoleAgent
		}
		for i := range st.Participants {
			p := &st.Participants[i]
			if p.CallSID != callSID || p.Role != v1alpha1.RoleUnknown || p.Coaching {
				continue
			}
			p.Role = role
			if role == v1alpha1.RoleCustomer && st.CustomerCallSID == "" {
				st.CustomerCallSID = callSID
			}
			if events.ValidSID(key, "WK") {
				p.WorkerSID = key
			}
		}
	}
}

func (d *recoveryDiscovery) reader() client.Reader {
	if d.r.APIReader != nil {
		return d.r.APIReader
	}
	return d.r.Client
}
