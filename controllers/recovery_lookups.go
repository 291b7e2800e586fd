// Resolving what a crash (or an unknown outcome) left Pending, by looking the result up on Twilio.

package controllers

import (
	"context"
	"fmt"
	"slices"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// resolvePending settles the steps a crash (or an unknown outcome) left Pending, by looking their
// result up on Twilio: found, the step is Done with what it produced; not found, the record is
// dropped and Decide asks for the step again. Idempotent steps are simply dropped and redone.
func (run *recoveryRun) resolvePending(ctx context.Context) error {
	for _, a := range slices.Clone(run.st().Actions) {
		if a.State != v1alpha1.ActionPending {
			continue
		}
		var err error
		switch {
		case a.Name == recovery.NameCreatePingTask:
			err = run.resolvePingTask(ctx)
		case a.Name == recovery.NameEnqueueReconnect:
			err = run.resolveEnqueue(ctx)
		default:
			if leg, ok := recovery.IsRedial(a.Name); ok {
				err = run.resolveRedial(ctx, leg)
			} else {
				run.dropAction(a.Name)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resolvePingTask looks for the ping task of this conference on the ping workflow, unless the
// webhook server has already seen it.
func (run *recoveryRun) resolvePingTask(ctx context.Context) error {
	if p := run.st().Ping; p != nil && p.TaskSID != "" {
		at := run.r.now()
		if p.CreatedAt != nil {
			at = p.CreatedAt.Time
		}
		run.pingCreated(p.TaskSID, at, "Ping task %s, created before a restart, was reported by TaskRouter.", p.TaskSID)
		return nil
	}
	workflow, err := run.pingWorkflow(ctx, "")
	if twilio.IsNotFound(err) {
		run.dropAction(recovery.NameCreatePingTask)
		return nil
	}
	if err != nil {
		return err
	}
	// Every task the lookup finds is this incident's ping: the marker names the conference and
	// the dropped leg, and the ping workflow holds only pings.
	tasks, err := run.tc.ListTasks(ctx, run.workspace(), twilio.TaskFilter{WorkflowSID: workflow,
		EvaluateTaskAttributes: recovery.IncidentMarker(recovery.TaskRolePing, run.spec(), *run.st()).Expression()})
	if err != nil {
		return fmt.Errorf("look up the ping task: %w", err)
	}
	var found *twilio.Task
	for i := range tasks {
		if found == nil || tasks[i].DateCreated.Before(found.DateCreated) {
			found = &tasks[i]
		}
	}
	if found == nil {
		run.log.Info("The ping task was not created before the restart; creating it")
		run.dropAction(recovery.NameCreatePingTask)
		return nil
	}
	at := found.DateCreated
	if at.IsZero() {
		at = run.r.now()
	}
	run.rememberPingAttrs(*found)
	run.pingCreated(found.SID, at, "Found ping task %s created before a restart.", found.SID)
	return nil
}

// resolveEnqueue looks for the reconnect task; failing that, checks whether the customer's call is
// still in the old conference (the redirect did not happen) or not.
func (run *recoveryRun) resolveEnqueue(ctx context.Context) error {
	name := recovery.NameEnqueueReconnect
	customer := run.st().CustomerCallSID
	if rc := run.st().Reconnect; rc != nil && rc.TaskSID != "" {
		run.enqueued(customer, run.r.now(), "Reconnect task %s, created before a restart, was reported by TaskRouter.", rc.TaskSID)
		return nil
	}
	tasks, err := run.tc.ListTasks(ctx, run.workspace(), twilio.TaskFilter{
		EvaluateTaskAttributes: recovery.IncidentMarker(recovery.TaskRoleReconnect, run.spec(), *run.st()).Expression()})
	if err != nil {
		return fmt.Errorf("look up the reconnect task: %w", err)
	}
	if len(tasks) > 0 {
		t := tasks[0]
		at := t.DateCreated
		if at.IsZero() {
			at = run.r.now()
		}
		run.enqueued(customer, at, "Found reconnect task %s created before a restart.", t.SID)
		return nil
	}
	if customer == "" {
		run.dropAction(name)
		return nil
	}
	inConference, err := run.inConference(ctx, run.spec().ConferenceSID, customer)
	if err != nil {
		return err
	}
	if inConference {
		run.log.Info("The customer was not redirected before the restart; redirecting them")
		run.dropAction(name)
		return nil
	}
	call, err := run.tc.FetchCall(ctx, customer)
	switch {
	case twilio.IsNotFound(err):
		run.skipped(name, customer, "The customer's call %s no longer exists.", customer)
	case err != nil:
		return fmt.Errorf("fetch the customer's call: %w", err)
	case call.Status == callInProgress:
		run.enqueued(customer, run.r.now(), "The customer's call %s left the conference before a restart; taken as redirected.", customer)
	default:
		run.skipped(name, customer, "The customer's call %s is %s.", customer, call.Status)
	}
	return nil
}

// resolveRedial checks whether the leg reached the new conference.
func (run *recoveryRun) resolveRedial(ctx context.Context, callSID string) error {
	name := recovery.Redial{CallSID: callSID}.ActionName()
	if rc := run.st().Reconnect; rc != nil && rc.ConferenceSID != "" {
		in, err := run.inConference(ctx, rc.ConferenceSID, callSID)
		if err != nil {
			return err
		}
		if in {
			run.done(name, callSID, "Found %s in the new conference after a restart.", callSID)
			return nil
		}
	}
	call, err := run.tc.FetchCall(ctx, callSID)
	switch {
	case twilio.IsNotFound(err):
		run.skipped(name, callSID, "The call %s no longer exists.", callSID)
	case err != nil:
		return fmt.Errorf("fetch call %s: %w", callSID, err)
	case call.Status != callInProgress:
		run.skipped(name, callSID, "The call %s is %s.", callSID, call.Status)
	default:
		run.dropAction(name)
	}
	return nil
}

// inConference reports whether a call is a live participant of a conference.
func (run *recoveryRun) inConference(ctx context.Context, conferenceSID, callSID string) (bool, error) {
	parts, err := run.tc.ListParticipants(ctx, conferenceSID)
	if twilio.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list the participants of %s: %w", conferenceSID, err)
	}
	for _, p := range parts {
		if p.CallSID == callSID && p.Status != "complete" && p.Status != "failed" {
			return true, nil
		}
	}
	return false, nil
}
