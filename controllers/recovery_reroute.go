// Routing a reconnect task whose agent did not take it to any agent on the original workflow.

package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// rerouteReconnect withdraws the reconnect task from the agent it was routed to and lets TaskRouter
// route it to anyone on the original workflow: a pending offer to that agent is rejected on their
// behalf, then targetWorkerSid is removed from the task's attributes (with If-Match), which makes
// TaskRouter evaluate the task against the workflow again, past the "Direct to an Agent" filter.
// The offer goes first because TaskRouter does not move a task that holds a pending reservation.
// Every part is checked on Twilio before it is done, so repeating the step after a crash is
// harmless, and it is recorded only once the task no longer targets the agent.
func (run *recoveryRun) rerouteReconnect(ctx context.Context, a recovery.RerouteReconnect) error {
	name := a.ActionName()
	taskSID := a.TaskSID
	if taskSID == "" {
		sid, err := run.findReconnectTask(ctx)
		if err != nil {
			return err
		}
		taskSID = sid
	}
	for attempt := 0; ; attempt++ {
		task, err := run.tc.FetchTask(ctx, run.workspace(), taskSID)
		if err != nil {
			return run.settleIdempotent(name, taskSID, err, "", "The reconnect task is gone.")
		}
		switch task.AssignmentStatus {
		case "assigned", "wrapping", "completed":
			run.skipped(name, taskSID, "An agent took the reconnect task %s before it was rerouted.", taskSID)
			return nil
		case "canceled":
			run.skipped(name, taskSID, "The reconnect task %s was canceled (%s).", taskSID, orUnknown(task.Reason))
			return nil
		}
		attrs, err := parseAttributes(task.Attributes)
		if err != nil {
			run.failed(name, taskSID, err)
			return nil
		}
		if _, targeted := attrs["targetWorkerSid"]; !targeted {
			run.rerouted(taskSID, a)
			return run.save(ctx)
		}
		withdrawn, err := run.withdrawOffers(ctx, taskSID, a.TargetWorkerSID)
		if err != nil {
			return err
		}
		if withdrawn && attempt < maxAttributeConflicts {
			continue // the task's version moved; read it again
		}
		delete(attrs, "targetWorkerSid")
		body, err := json.Marshal(attrs)
		if err != nil {
			run.failed(name, taskSID, err)
			return nil
		}
		s, priority := string(body), int(a.Priority)
		_, err = run.tc.UpdateTask(ctx, run.workspace(), taskSID, twilio.TaskUpdate{Attributes: &s, Priority: &priority, IfMatch: task.Version})
		switch {
		case twilio.IsVersionConflict(err) && attempt < maxAttributeConflicts:
			continue
		case err == nil:
			run.rerouted(taskSID, a)
			return run.save(ctx)
		case twilio.IsNotFound(err) || twilio.IsTerminal(err):
			// Refused: the task may have been taken or canceled meanwhile; the next pass reads it.
			if attempt < maxAttributeConflicts {
				continue
			}
			run.failed(name, taskSID, fmt.Errorf("route the reconnect task to any agent: %w", err))
			return nil
		default:
			return fmt.Errorf("route the reconnect task to any agent: %w", err)
		}
	}
}

// withdrawOffers rejects the task's pending reservations of the agent, reporting whether there
// were any. One that is no longer pending when rejected (taken, or timed out meanwhile) is left
// for the task's next read to show.
func (run *recoveryRun) withdrawOffers(ctx context.Context, taskSID, workerSID string) (bool, error) {
	offers, err := run.tc.ListReservations(ctx, run.workspace(), twilio.ReservationFilter{TaskSID: taskSID, Status: "pending"})
	if err != nil {
		return false, fmt.Errorf("list the reconnect task's offers: %w", err)
	}
	rejected := "rejected"
	withdrawn := false
	for _, offer := range offers {
		if offer.WorkerSID != workerSID || offer.Status != "pending" {
			continue
		}
		_, err := run.tc.UpdateReservation(ctx, run.workspace(), taskSID, offer.SID, twilio.ReservationUpdate{Status: &rejected})
		if err != nil && !twilio.IsTerminal(err) {
			return false, fmt.Errorf("withdraw the reconnect offer %s: %w", offer.SID, err)
		}
		withdrawn = true
	}
	return withdrawn, nil
}

// findReconnectTask looks the incident's reconnect task up by its marker, for a reroute due before
// TaskRouter's report of the task arrived.
func (run *recoveryRun) findReconnectTask(ctx context.Context) (string, error) {
	tasks, err := run.tc.ListTasks(ctx, run.workspace(), twilio.TaskFilter{
		EvaluateTaskAttributes: recovery.IncidentMarker(recovery.TaskRoleReconnect, run.spec(), *run.st()).Expression()})
	if err != nil {
		return "", fmt.Errorf("look up the reconnect task: %w", err)
	}
	if len(tasks) == 0 {
		return "", fmt.Errorf("the reconnect task to reroute is not on TaskRouter yet: %w", twilio.ErrNotFound)
	}
	return tasks[0].SID, nil
}

// rerouted records the reroute with its reason, for a person reading the status, and an Event.
func (run *recoveryRun) rerouted(taskSID string, a recovery.RerouteReconnect) {
	st := run.st()
	if st.Reconnect == nil {
		st.Reconnect = &v1alpha1.ReconnectStatus{}
	}
	now := metav1.NewTime(run.r.now())
	st.Reconnect.ReroutedAt, st.Reconnect.RerouteReason = &now, a.Why
	if st.Reconnect.TaskSID == "" {
		st.Reconnect.TaskSID = taskSID
	}
	run.event(corev1.EventTypeWarning, recovery.ReasonReconnectRerouted, "Reroute",
		"%s; the reconnect task %s now goes to any agent on the original workflow at priority %d.", a.Why, taskSID, a.Priority)
	run.done(a.ActionName(), taskSID, "Routed the reconnect task %s to any agent on the original workflow.", taskSID)
}
