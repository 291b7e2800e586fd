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

// callInProgress is the status of a live call.
const callInProgress = "in-progress"

// execute performs one decided step. Idempotent steps are done first and recorded after (the record
// reaches the API server with the next write); steps that would do harm if repeated (a task create,
// a call redirect) are recorded Pending first (begin). A nil error means the step was recorded in
// some state; an error leaves it unrecorded or Pending, for a later reconcile.
func (run *recoveryRun) execute(ctx context.Context, a recovery.Action) error {
	switch a := a.(type) {
	case recovery.CorrectEndConferenceOnExit:
		return run.correctEndConferenceOnExit(ctx, a)
	case recovery.Announce:
		return run.announce(ctx, a)
	case recovery.HoldCustomer:
		return run.holdCustomer(ctx, a)
	case recovery.ResumeCustomer:
		return run.resumeCustomer(ctx, a)
	case recovery.MarkOriginalTask:
		return run.markOriginalTask(ctx, a.ActionName(), a.Patch)
	case recovery.MarkPingSuccessful:
		return run.markOriginalTask(ctx, a.ActionName(), a.Patch)
	case recovery.CreatePingTask:
		return run.createPingTask(ctx, a)
	case recovery.CompletePingTask:
		return run.endPingTask(ctx, a.ActionName(), a.TaskSID, "completed", "The disconnected agent answered the Recovery Ping")
	case recovery.CancelPingTask:
		return run.endPingTask(ctx, a.ActionName(), a.TaskSID, "canceled", "The customer left the call")
	case recovery.EnqueueReconnect:
		return run.enqueueReconnect(ctx, a)
	case recovery.CompleteOriginalReservation:
		return run.completeOriginalReservation(ctx, a)
	case recovery.Redial:
		return run.redial(ctx, a)
	}
	run.skipped(a.ActionName(), "", "The operator does not know how to take step %T.", a)
	return nil
}

// correctEndConferenceOnExit undoes Flex's endConferenceOnExit=true on an agent leg. It is the
// latency that decides whether a page refresh can be recovered at all, so nothing comes before the
// Twilio call: the setting is idempotent and is recorded afterwards.
func (run *recoveryRun) correctEndConferenceOnExit(ctx context.Context, a recovery.CorrectEndConferenceOnExit) error {
	no := false
	_, err := run.tc.UpdateParticipant(ctx, run.spec().ConferenceSID, a.CallSID, twilio.ParticipantUpdate{EndConferenceOnExit: &no})
	name := a.ActionName()
	switch {
	case err == nil:
		run.dropEarlierCorrections(a.CallSID, name)
		run.done(name, a.CallSID, "Set endConferenceOnExit back to false on agent leg %s.", a.CallSID)
	case twilio.IsNotFound(err):
		run.skipped(name, a.CallSID, "Agent leg %s is no longer in the conference.", a.CallSID)
	case twilio.IsTerminal(err):
		run.failed(name, a.CallSID, err)
	default:
		return fmt.Errorf("correct endConferenceOnExit of %s: %w", a.CallSID, err)
	}
	return nil
}

// dropEarlierCorrections keeps status.actions short on a long call: Flex resets the flag at every
// membership change, and only the latest correction of a leg matters (Decide only asks for one
// under the newest sequence number).
func (run *recoveryRun) dropEarlierCorrections(callSID, keep string) {
	st := run.st()
	st.Actions = slices.DeleteFunc(st.Actions, func(a v1alpha1.RecoveryAction) bool {
		leg, ok := recovery.IsCorrection(a.Name)
		return ok && leg == callSID && a.Name != keep && a.State != v1alpha1.ActionPending
	})
}

// announce tells the conference the agent was lost.
func (run *recoveryRun) announce(ctx context.Context, a recovery.Announce) error {
	name := a.ActionName()
	u, err := recovery.AnnouncementURL(a)
	if err != nil {
		run.skipped(name, "", "No announcement: %v.", err)
		return nil
	}
	err = run.tc.AnnounceConference(ctx, run.spec().ConferenceSID, u)
	return run.settleIdempotent(name, run.spec().ConferenceSID, err, "Announced the disconnect to the conference.",
		"The conference has ended; nothing to announce to.")
}

// holdCustomer puts the customer on hold, with the policy's music.
func (run *recoveryRun) holdCustomer(ctx context.Context, a recovery.HoldCustomer) error {
	name := a.ActionName()
	if a.CallSID == "" {
		run.skipped(name, "", "The customer's leg is not known.")
		return nil
	}
	yes := true
	u := twilio.ParticipantUpdate{Hold: &yes}
	if a.MusicURL != "" {
		u.HoldURL = &a.MusicURL
	}
	_, err := run.tc.UpdateParticipant(ctx, run.spec().ConferenceSID, a.CallSID, u)
	return run.settleIdempotent(name, a.CallSID, err, "Put the customer on hold.", "The customer's leg is no longer in the conference.")
}

// resumeCustomer takes the customer off hold: an agent is back in the call.
func (run *recoveryRun) resumeCustomer(ctx context.Context, a recovery.ResumeCustomer) error {
	name := a.ActionName()
	if a.CallSID == "" {
		run.skipped(name, "", "The customer's leg is not known.")
		return nil
	}
	no := false
	_, err := run.tc.UpdateParticipant(ctx, run.spec().ConferenceSID, a.CallSID, twilio.ParticipantUpdate{Hold: &no})
	return run.settleIdempotent(name, a.CallSID, err, "Took the customer off hold: an agent is back.", "The customer's leg is no longer in the conference.")
}

// settleIdempotent records an idempotent step: Done, Skipped when what it acts on is gone, Failed on
// an error Twilio will never accept; other errors are returned for a retry.
func (run *recoveryRun) settleIdempotent(name, sid string, err error, doneNote, goneNote string) error {
	switch {
	case err == nil:
		run.done(name, sid, "%s", doneNote)
	case twilio.IsNotFound(err):
		run.skipped(name, sid, "%s", goneNote)
	case twilio.IsTerminal(err):
		run.failed(name, sid, err)
	default:
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

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

// redirectRefused records a redirect Twilio refused: a call that has ended (the customer hung up)
// is skipped, which Decide turns into Abandoned once the leave is observed; anything else failed.
func (run *recoveryRun) redirectRefused(ctx context.Context, name, callSID string, refusal error) {
	call, err := run.tc.FetchCall(ctx, callSID)
	switch {
	case twilio.IsNotFound(err):
		run.skipped(name, callSID, "The call %s no longer exists.", callSID)
	case err == nil && call.Status != callInProgress:
		run.skipped(name, callSID, "The call %s is %s.", callSID, call.Status)
	default:
		run.failed(name, callSID, refusal)
	}
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

// redial moves a leg that stayed in the old conference (an external party) into the new one.
func (run *recoveryRun) redial(ctx context.Context, a recovery.Redial) error {
	name := a.ActionName()
	if err := run.begin(ctx, name); err != nil {
		return err
	}
	_, err := run.tc.RedirectCall(ctx, a.CallSID, recovery.BuildRedialTwiML(a.ConferenceName, a.Label))
	switch {
	case err == nil:
		run.done(name, a.CallSID, "Dialled %s (%s) into the new conference %s.", a.CallSID, orUnknown(a.Label), a.ConferenceName)
	case errors.Is(err, twilio.ErrOutcomeUnknown):
		return fmt.Errorf("redial %s: %w", a.CallSID, err)
	case twilio.IsTerminal(err):
		run.redirectRefused(ctx, name, a.CallSID, err)
	default:
		run.dropAction(name)
		_ = run.save(ctx)
		return fmt.Errorf("redial %s: %w", a.CallSID, err)
	}
	return run.save(ctx)
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
