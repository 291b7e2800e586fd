// The recovery's steps on TaskRouter: the original task, the Recovery Ping, the reconnect
// task that brings the customer back and the original reservation.

package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// maxAttributeConflicts bounds the read-modify-write of a task's attributes against other writers
// (Flex, the activity engine) before the reconcile gives up and retries later.
const maxAttributeConflicts = 5

// originalTask returns the original task, read once per reconcile.
func (run *recoveryRun) originalTask(ctx context.Context) (twilio.Task, error) {
	if run.original != nil {
		return *run.original, nil
	}
	if run.spec().TaskSID == "" {
		return twilio.Task{}, fmt.Errorf("the original task is not known: %w", twilio.ErrNotFound)
	}
	t, err := run.tc.FetchTask(ctx, run.workspace(), run.spec().TaskSID)
	if err != nil {
		return twilio.Task{}, fmt.Errorf("fetch the original task: %w", err)
	}
	run.original = &t
	return t, nil
}

// markOriginalTask merges patch into the original task's attributes: read, merge, write with
// If-Match, and on a version conflict read again, so that a concurrent change by Flex or another
// writer is never lost.
func (run *recoveryRun) markOriginalTask(ctx context.Context, name string, patch map[string]any) error {
	for attempt := 0; ; attempt++ {
		task, err := run.originalTask(ctx)
		if err != nil {
			return run.settleIdempotent(name, run.spec().TaskSID, err, "", "The original task is gone.")
		}
		attrs, err := parseAttributes(task.Attributes)
		if err != nil {
			run.failed(name, task.SID, err)
			return nil
		}
		if recovery.HasAttributes(attrs, patch) {
			run.done(name, task.SID, "The original task %s already carries %s.", task.SID, keys(patch))
			return nil
		}
		body, err := json.Marshal(recovery.MergeAttributes(attrs, patch))
		if err != nil {
			run.failed(name, task.SID, err)
			return nil
		}
		s := string(body)
		updated, err := run.tc.UpdateTask(ctx, run.workspace(), task.SID, twilio.TaskUpdate{Attributes: &s, IfMatch: task.Version})
		if twilio.IsVersionConflict(err) {
			run.original = nil
			if attempt < maxAttributeConflicts {
				continue
			}
			// Someone keeps changing the task: try again later rather than give up on the mark.
			return fmt.Errorf("%s: the original task keeps changing: %w", name, err)
		}
		if err == nil {
			run.original = nil
			if updated.Version != "" {
				run.original = &updated
			}
		}
		return run.settleIdempotent(name, task.SID, err, fmt.Sprintf("Set %s on the original task %s.", keys(patch), task.SID),
			"The original task is gone.")
	}
}

// pingWorkflow is the Recovery Ping workflow: from the policy's status when its controller has
// found it, else by name.
func (run *recoveryRun) pingWorkflow(ctx context.Context, name string) (string, error) {
	if sid := run.policy.Status.PingWorkflowSID; sid != "" {
		return sid, nil
	}
	if name == "" {
		name = run.policy.Spec.Ping.WorkflowName
	}
	if name == "" {
		name = recovery.DefaultPingWorkflowName
	}
	wf, err := run.tc.FindWorkflow(ctx, run.workspace(), name)
	if err != nil {
		return "", fmt.Errorf("find the ping workflow %q: %w", name, err)
	}
	return wf.SID, nil
}

// pingTaskAttributes are the ping task's attributes: the original task's, without the marks of
// this recovery, plus the disconnected* fields.
func (run *recoveryRun) pingTaskAttributes(ctx context.Context) (map[string]any, error) {
	var original map[string]any
	task, err := run.originalTask(ctx)
	switch {
	case err == nil:
		if original, err = parseAttributes(task.Attributes); err != nil {
			// Not ours to fix, and the ping still needs its disconnected* fields.
			run.log.Info("The original task's attributes are unreadable; the ping carries only the recovery's", "error", err.Error())
		}
	case !twilio.IsNotFound(err):
		return nil, err
	}
	original = recovery.UnmarkedAttributes(original, run.policy.Spec.Reporting.FollowedBy)
	return recovery.PingTaskAttributes(original, run.spec(), *run.st()), nil
}

// createPingTask creates the Recovery Ping task for the disconnected agent.
func (run *recoveryRun) createPingTask(ctx context.Context, a recovery.CreatePingTask) error {
	name := a.ActionName()
	workflow, err := run.pingWorkflow(ctx, a.WorkflowName)
	if err != nil {
		if twilio.IsNotFound(err) || twilio.IsTerminal(err) {
			run.failed(name, "", err)
			return nil
		}
		return err
	}
	attrs, err := run.pingTaskAttributes(ctx)
	if err != nil {
		return err
	}
	body, err := json.Marshal(attrs)
	if err != nil {
		run.failed(name, "", fmt.Errorf("encode the ping task's attributes: %w", err))
		return nil
	}
	if err := run.begin(ctx, name); err != nil {
		return err
	}
	ttl, priority := int(a.TTL/time.Second), int(a.Priority)
	task, err := run.tc.CreateTask(ctx, run.workspace(), twilio.TaskCreate{WorkflowSID: workflow, TaskChannel: a.TaskChannel,
		Attributes: string(body), Priority: &priority, Timeout: &ttl})
	switch {
	case err == nil:
		run.pingAttrs = attrs
		if d := run.st().Disconnect; d != nil && !d.At.IsZero() {
			detectionToPingSeconds.Observe(max(0, run.r.now().Sub(detectedAt(d))).Seconds())
		}
		run.pingCreated(task.SID, run.r.now(), "Created ping task %s for agent %s on workflow %s.", task.SID,
			orUnknown(run.st().Disconnect.WorkerSID), workflow)
	case errors.Is(err, twilio.ErrOutcomeUnknown):
		// The task may exist: it stays Pending and the next reconcile looks it up.
		return fmt.Errorf("create the ping task: %w", err)
	case twilio.IsTerminal(err):
		run.failed(name, "", err)
	default:
		// Refused before Twilio acted on it (429, a retryable answer): nothing to look up.
		run.dropAction(name)
		_ = run.save(ctx)
		return fmt.Errorf("create the ping task: %w", err)
	}
	return run.save(ctx)
}

// pingCreated records the ping task and how long it took from the agent's leave to its creation.
func (run *recoveryRun) pingCreated(sid string, at time.Time, format string, args ...any) {
	st := run.st()
	if st.Ping == nil {
		st.Ping = &v1alpha1.PingStatus{}
	}
	created := metav1.NewTime(at)
	st.Ping.TaskSID, st.Ping.CreatedAt = sid, &created
	if d := st.Disconnect; d != nil && !d.At.IsZero() {
		st.Timings.DetectionToPing = &metav1.Duration{Duration: max(0, at.Sub(detectedAt(d)))}
	}
	run.done(recovery.NameCreatePingTask, sid, format, args...)
}

// detectedAt is when the operator received the agent's leave (its own clock), or Twilio's
// timestamp of it when no receipt time was recorded.
func detectedAt(d *v1alpha1.DisconnectStatus) time.Time {
	if d.ObservedAt != nil {
		return d.ObservedAt.Time
	}
	return d.At.Time
}

// endPingTask completes or cancels the ping task. Asking twice is harmless: a task already ended
// is taken as done.
func (run *recoveryRun) endPingTask(ctx context.Context, name, taskSID, status, reason string) error {
	task, err := run.tc.UpdateTask(ctx, run.workspace(), taskSID, twilio.TaskUpdate{AssignmentStatus: &status, Reason: &reason})
	if err == nil {
		run.rememberPingAttrs(task)
		run.done(name, taskSID, "Ping task %s %s.", taskSID, status)
		return nil
	}
	if !twilio.IsTerminal(err) || twilio.IsNotFound(err) {
		return run.settleIdempotent(name, taskSID, err, "", "The ping task is gone.")
	}
	// Refused: see where the task stands.
	current, ferr := run.tc.FetchTask(ctx, run.workspace(), taskSID)
	switch {
	case ferr != nil:
		return run.settleIdempotent(name, taskSID, ferr, "", "The ping task is gone.")
	case current.AssignmentStatus == "completed" || current.AssignmentStatus == "canceled":
		run.rememberPingAttrs(current)
		run.done(name, taskSID, "Ping task %s was already %s.", taskSID, current.AssignmentStatus)
	case status == "canceled" && (current.AssignmentStatus == "assigned" || current.AssignmentStatus == "wrapping"):
		// The agent took the ping just before the customer left: complete it instead.
		return run.endPingTask(ctx, name, taskSID, "completed", reason)
	default:
		run.failed(name, taskSID, err)
	}
	return nil
}

func (run *recoveryRun) rememberPingAttrs(task twilio.Task) {
	if attrs, err := parseAttributes(task.Attributes); err == nil && len(attrs) > 0 {
		run.pingAttrs = attrs
	}
}

// reconnectSource returns the attributes the reconnect task is built from: the ping task's, or,
// when there is no ping task to read (it failed, or is gone), the same built afresh.
func (run *recoveryRun) reconnectSource(ctx context.Context) (map[string]any, error) {
	if run.pingAttrs != nil {
		return run.pingAttrs, nil
	}
	if p := run.st().Ping; p != nil && p.TaskSID != "" {
		task, err := run.tc.FetchTask(ctx, run.workspace(), p.TaskSID)
		if err == nil {
			run.rememberPingAttrs(task)
			if run.pingAttrs != nil {
				return run.pingAttrs, nil
			}
		} else if !twilio.IsNotFound(err) {
			return nil, fmt.Errorf("fetch the ping task: %w", err)
		}
	}
	return run.pingTaskAttributes(ctx)
}

// originalWorkflow is the workflow the customer is enqueued back on.
func (run *recoveryRun) originalWorkflow(ctx context.Context) (string, error) {
	if sid := run.spec().WorkflowSID; sid != "" {
		return sid, nil
	}
	task, err := run.originalTask(ctx)
	if err != nil {
		return "", err
	}
	return task.WorkflowSID, nil
}

// enqueueReconnect redirects the customer's call out of the old conference into a new task on the
// original workflow: routed to the agent who answered the ping, or to anyone at elevated priority.
func (run *recoveryRun) enqueueReconnect(ctx context.Context, a recovery.EnqueueReconnect) error {
	name := a.ActionName()
	if a.CustomerCallSID == "" {
		run.failed(name, "", errors.New("the customer's call is not known"))
		return nil
	}
	workflow, err := run.originalWorkflow(ctx)
	if err != nil {
		if twilio.IsNotFound(err) || twilio.IsTerminal(err) {
			run.failed(name, a.CustomerCallSID, fmt.Errorf("the original workflow is not known: %w", err))
			return nil
		}
		return err
	}
	source, err := run.reconnectSource(ctx)
	if err != nil {
		return err
	}
	incident := recovery.IncidentMarker(recovery.TaskRoleReconnect, run.spec(), *run.st())
	attrs := recovery.ReconnectTaskAttributes(source, incident, run.spec().TaskSID, a.TargetWorkerSID, a.Fallback)
	twiml, err := recovery.BuildEnqueueTwiML(workflow, a.Priority, attrs)
	if err != nil {
		run.failed(name, a.CustomerCallSID, err)
		return nil
	}
	st := run.st()
	if st.Reconnect == nil {
		st.Reconnect = &v1alpha1.ReconnectStatus{}
	}
	st.Reconnect.Fallback, st.Reconnect.TargetWorkerSID = a.Fallback, a.TargetWorkerSID
	if err := run.begin(ctx, name); err != nil {
		return err
	}
	_, err = run.tc.RedirectCall(ctx, a.CustomerCallSID, twiml)
	switch {
	case err == nil:
		run.enqueued(a.CustomerCallSID, run.r.now(), "Redirected the customer's call %s into a reconnect task on workflow %s (%s, priority %d).",
			a.CustomerCallSID, workflow, target(a), a.Priority)
	case errors.Is(err, twilio.ErrOutcomeUnknown):
		return fmt.Errorf("redirect the customer's call: %w", err)
	case twilio.IsTerminal(err):
		run.redirectRefused(ctx, name, a.CustomerCallSID, err)
	default:
		run.dropAction(name)
		_ = run.save(ctx)
		return fmt.Errorf("redirect the customer's call: %w", err)
	}
	return run.save(ctx)
}

func target(a recovery.EnqueueReconnect) string {
	if a.Fallback || a.TargetWorkerSID == "" {
		return "any agent"
	}
	return "agent " + a.TargetWorkerSID
}

// enqueued records the customer's redirect into the reconnect queue.
func (run *recoveryRun) enqueued(callSID string, at time.Time, format string, args ...any) {
	st := run.st()
	if st.Reconnect == nil {
		st.Reconnect = &v1alpha1.ReconnectStatus{}
	}
	when := metav1.NewTime(at)
	st.Reconnect.EnqueuedAt = &when
	run.done(recovery.NameEnqueueReconnect, callSID, format, args...)
}

// completeOriginalReservation completes the disconnected agent's reservation on the original task,
// which frees their voice capacity for the reconnect task that is now queued.
func (run *recoveryRun) completeOriginalReservation(ctx context.Context, a recovery.CompleteOriginalReservation) error {
	name := a.ActionName()
	if run.spec().TaskSID == "" {
		run.skipped(name, a.ReservationSID, "The original task is not known.")
		return nil
	}
	completed := "completed"
	_, err := run.tc.UpdateReservation(ctx, run.workspace(), run.spec().TaskSID, a.ReservationSID, twilio.ReservationUpdate{Status: &completed})
	if err == nil {
		st := run.st()
		if st.Reconnect == nil {
			st.Reconnect = &v1alpha1.ReconnectStatus{}
		}
		now := metav1.NewTime(run.r.now())
		st.Reconnect.OriginalReservationCompletedAt = &now
		run.done(name, a.ReservationSID, "Completed the original reservation %s now that the reconnect task is queued.", a.ReservationSID)
		return nil
	}
	if !twilio.IsTerminal(err) || twilio.IsNotFound(err) {
		return run.settleIdempotent(name, a.ReservationSID, err, "", "The original reservation is gone.")
	}
	current, ferr := run.tc.FetchReservation(ctx, run.workspace(), run.spec().TaskSID, a.ReservationSID)
	switch {
	case ferr != nil:
		return run.settleIdempotent(name, a.ReservationSID, ferr, "", "The original reservation is gone.")
	case current.Status != "accepted" && current.Status != "wrapping":
		run.done(name, a.ReservationSID, "The original reservation %s was already %s.", a.ReservationSID, current.Status)
	default:
		run.failed(name, a.ReservationSID, err)
	}
	return nil
}

// enrichDisconnect fills in the agent, their name and their reservation on a disconnect the legs
// could not tell fully, from the original task's reservations: the ping is routed to
// disconnectedWorkerSid, so it must be the agent who dropped.
func (run *recoveryRun) enrichDisconnect(ctx context.Context, d *v1alpha1.DisconnectStatus) error {
	if run.spec().TaskSID == "" || (d.WorkerSID != "" && d.WorkerName != "" && d.ReservationSID != "") {
		return nil
	}
	list, err := run.tc.ListReservations(ctx, run.workspace(), twilio.ReservationFilter{TaskSID: run.spec().TaskSID})
	if err != nil {
		if twilio.IsTerminal(err) {
			run.log.Info("Cannot read the original task's reservations; the disconnect stays as observed", "error", err.Error())
			return nil
		}
		return fmt.Errorf("list the original task's reservations: %w", err)
	}
	candidates := make([]recovery.Reservation, 0, len(list))
	for _, r := range list {
		candidates = append(candidates, recovery.Reservation{SID: r.SID, WorkerSID: r.WorkerSID, WorkerName: r.WorkerName,
			Status: r.Status, Updated: r.DateUpdated})
	}
	res, ok := recovery.PickDisconnectedReservation(candidates, d.WorkerSID)
	if !ok {
		run.log.Info("No connected reservation on the original task for the disconnected leg", "task", run.spec().TaskSID, "worker", d.WorkerSID)
		return nil
	}
	if d.WorkerSID == "" {
		d.WorkerSID = res.WorkerSID
	}
	if d.WorkerName == "" {
		d.WorkerName = res.WorkerName
	}
	if d.ReservationSID == "" {
		d.ReservationSID = res.SID
	}
	return nil
}

// parseAttributes decodes task attributes with the project's one parser; an empty string is an
// empty object.
func parseAttributes(raw string) (map[string]any, error) {
	attrs, err := recovery.ParseTaskAttributes(raw)
	if err != nil {
		return nil, err
	}
	return attrs.All, nil
}

func keys(m map[string]any) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
