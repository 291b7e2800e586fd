// The recovery's steps on the call and the conference (see recovery_tasks.go for the steps on
// TaskRouter tasks and recovery_lookups.go for what resolves a step a crash left Pending).

package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

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
	case recovery.RerouteReconnect:
		return run.rerouteReconnect(ctx, a)
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
	yes := true
	u := twilio.ParticipantUpdate{Hold: &yes}
	if a.MusicURL != "" {
		u.HoldURL = &a.MusicURL
	}
	return run.updateCustomer(ctx, a.ActionName(), a.CallSID, u, "Put the customer on hold.")
}

// resumeCustomer takes the customer off hold: an agent is back in the call.
func (run *recoveryRun) resumeCustomer(ctx context.Context, a recovery.ResumeCustomer) error {
	no := false
	return run.updateCustomer(ctx, a.ActionName(), a.CallSID, twilio.ParticipantUpdate{Hold: &no}, "Took the customer off hold: an agent is back.")
}

// updateCustomer changes the customer's leg in the conference, an idempotent step.
func (run *recoveryRun) updateCustomer(ctx context.Context, name, callSID string, u twilio.ParticipantUpdate, doneNote string) error {
	if callSID == "" {
		run.skipped(name, "", "The customer's leg is not known.")
		return nil
	}
	_, err := run.tc.UpdateParticipant(ctx, run.spec().ConferenceSID, callSID, u)
	return run.settleIdempotent(name, callSID, err, doneNote, "The customer's leg is no longer in the conference.")
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
