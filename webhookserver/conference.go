package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
	"github.com/flexoperator/flex-operator/internal/recovery"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// handleConference takes a conference status callback: POST /twilio/{namespace}/{policy}/conference.
//
// The first callback of a conference whose task is on one of the policy's protected workflows
// creates its ConferenceRecovery; every callback of a protected conference is folded into the
// recovery's status by recovery.ApplyConferenceEvent. Callbacks of other conferences are
// acknowledged and dropped (their task is remembered, so this costs one task fetch per conference).
func (r *Routes) handleConference(w http.ResponseWriter, req *http.Request) {
	receivedAt := r.opts.Now()
	tr, ok := r.authenticateTwilio(w, req, routeConference)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(tr.body))
	var ev events.ConferenceEvent
	if err == nil {
		ev, err = events.ParseConferenceEvent(form)
	}
	switch {
	case errors.Is(err, events.ErrUnknownEvent):
		// Genuine but of no use to recovery (an event Twilio added after this was written).
		eventsTotal.WithLabelValues(routeConference, "other", outcomeUnknown).Inc()
		w.WriteHeader(http.StatusOK)
		return
	case err != nil:
		// Correctly signed but unparseable: no conference SID, sequence number or timestamp to
		// act on. Twilio never sends that, so a retry could not succeed either; 400 says so.
		// (Twilio does not retry conference callbacks anyway, whatever the answer.)
		eventsTotal.WithLabelValues(routeConference, "other", outcomeMalformed).Inc()
		r.log.Info("Refused a malformed conference callback", "policy", tr.policyKey(), "error", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	dedupKey := tr.dedupKey(ev.DedupKey())
	if r.dedup.Seen(dedupKey) {
		duplicatesTotal.WithLabelValues(routeConference).Inc()
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, cancel := r.handlingContext(req.Context())
	defer cancel()
	key := recoveryKey(tr.policy.Namespace, ev.ConferenceSID)
	c := &conferenceOp{event: ev, policy: tr.policy, twilio: tr.twilio, receivedAt: receivedAt}
	r.correctFirst(ctx, key, c)
	res := r.store.submit(key, &op{conference: c}).wait(ctx)
	if res.err == nil && res.needLink && (ev.Event == events.ParticipantJoin || ev.Event == events.ConferenceStart) {
		res.err = r.linkReconnect(ctx, tr.policy, key, ev.ConferenceSID, res)
	}
	if res.err != nil {
		r.dedup.Forget(dedupKey)
		eventsTotal.WithLabelValues(routeConference, ev.Event, outcomeFailed).Inc()
		// Twilio sends a conference callback once, whatever the answer: the store keeps trying a
		// transient failure in-process after this answer (storeRetryWindow), and the controller's
		// resync repairs from Twilio's REST API what is lost even so.
		r.log.Error(res.err, "Could not store a conference callback in time; answering 503",
			"policy", tr.policyKey(), "conference", ev.ConferenceSID, "sequence", ev.SequenceNumber)
		unavailable(w, "could not store the event")
		return
	}
	eventsTotal.WithLabelValues(routeConference, ev.Event, res.outcome).Inc()
	w.WriteHeader(http.StatusOK)
}

// correctFirst sets endConferenceOnExit back to false on an agent leg whose callback shows Flex set
// it, before the callback is stored: every moment the flag stays true a page refresh hangs up on
// the customer, and the setting is idempotent, so it waits for nothing that can be skipped. The
// decision uses what the conference's writer last published; for a conference not seen before the
// task is read here (the writer takes that reading over). A failure is only logged: the leg then
// shows the flag true in status, and the controller corrects it.
func (r *Routes) correctFirst(ctx context.Context, key types.NamespacedName, c *conferenceOp) {
	ev := c.event
	if (ev.Event != events.ParticipantJoin && ev.Event != events.ParticipantModify) || !ev.EndConferenceOnExit || ev.Coaching {
		return
	}
	seen := r.store.view(key)
	info := seen.info
	if info.stale(c.policy) {
		fresh, err := resolveConference(ctx, c, seen.rec)
		if err != nil {
			r.log.Error(err, "Read the conference's task to correct endConferenceOnExit; the controller will", "conference", ev.ConferenceSID)
			return
		}
		info, c.info = fresh, fresh
	}
	if !info.protected {
		return
	}
	var st v1alpha1.ConferenceRecoveryStatus
	if seen.rec != nil {
		st = seen.rec.Status
	}
	if !recovery.CorrectionForEvent(st, ev, info.legs[ev.CallSID].role) {
		return
	}
	no := false
	_, err := c.twilio.UpdateParticipant(ctx, ev.ConferenceSID, ev.CallSID, twilio.ParticipantUpdate{EndConferenceOnExit: &no})
	switch {
	case err == nil:
		c.corrected = true
		correctionsTotal.WithLabelValues(outcomeStored).Inc()
	case twilio.IsNotFound(err):
		correctionsTotal.WithLabelValues(outcomeIgnored).Inc() // the leg has gone meanwhile
	default:
		correctionsTotal.WithLabelValues(outcomeFailed).Inc()
		r.log.Error(err, "Correct endConferenceOnExit; the controller will retry", "conference", ev.ConferenceSID, "call", ev.CallSID)
	}
}

// linkReconnect records, on the recovery of the conference the reconnect task came from, the new
// conference the customer is now in (and the reconnect task), which tells the controller to dial
// the remaining legs over.
func (r *Routes) linkReconnect(ctx context.Context, policy *v1alpha1.ConferenceRecoveryPolicy, key types.NamespacedName, newConferenceSID string, res opResult) error {
	oldKey := recoveryKey(policy.Namespace, res.reconnectOf)
	if oldKey == key {
		return nil
	}
	policyName, taskSID := policy.Name, res.taskSID
	link := r.store.submit(oldKey, &op{mutate: func(rec *v1alpha1.ConferenceRecovery) (bool, error) {
		if rec.Spec.PolicyName != policyName {
			return false, nil
		}
		rc := rec.Status.Reconnect
		if rc == nil {
			rc = &v1alpha1.ReconnectStatus{}
		}
		if rc.TaskSID != "" && taskSID != "" && rc.TaskSID != taskSID {
			return false, nil // the old call is being reconnected by another task
		}
		changed := false
		if rc.ConferenceSID == "" {
			rc.ConferenceSID, changed = newConferenceSID, true
		}
		if rc.TaskSID == "" && taskSID != "" {
			rc.TaskSID, changed = taskSID, true
		}
		if changed {
			rec.Status.Reconnect = rc
		}
		return changed, nil
	}}).wait(ctx)
	if link.err != nil {
		return fmt.Errorf("link the reconnect conference to %s: %w", oldKey, link.err)
	}
	eventsTotal.WithLabelValues(routeConference, "reconnect-link", link.outcome).Inc()
	r.store.markLinked(key)
	return nil
}

// conferenceInfo is what the conference's task says about it.
type conferenceInfo struct {
	// generation of the policy the protection was decided under: a negative answer is asked
	// again when the policy changes (a workflow added to the protected list).
	generation int64
	protected  bool
	// fetched is false when the task could not be read; checkedAt is when that was tried.
	fetched   bool
	checkedAt time.Time

	taskSID, workflowSID string
	// legs maps call SIDs to what the task's conference.participants attribute says of them.
	legs map[string]legInfo
	// reconnectOf is the conference a reconnect task brings the customer back from.
	reconnectOf string
	// asked holds the call SIDs the task was read again for, so each costs one fetch at most.
	asked map[string]bool
}

type legInfo struct {
	role      v1alpha1.ParticipantRole
	workerSID string
}

// clone copies the info for a reader other than the conference's writer.
func (i *conferenceInfo) clone() *conferenceInfo {
	c := *i
	c.legs = maps.Clone(i.legs)
	c.asked = nil
	return &c
}

// stale reports whether the task must be (re)read before deciding about the conference.
func (i *conferenceInfo) stale(p *v1alpha1.ConferenceRecoveryPolicy) bool {
	switch {
	case i == nil:
		return true
	case !i.fetched:
		return time.Since(i.checkedAt) >= taskRetryInterval
	case !i.protected:
		return i.generation != p.Generation
	}
	return false
}

// resolveConference reads the conference's task (its FriendlyName: Flex names the conference after
// the task) and decides whether the call is protected. An existing recovery means it is.
func resolveConference(ctx context.Context, c *conferenceOp, existing *v1alpha1.ConferenceRecovery) (*conferenceInfo, error) {
	info := &conferenceInfo{generation: c.policy.Generation, checkedAt: time.Now(), legs: map[string]legInfo{}}
	taskSID := c.event.FriendlyName
	if existing != nil {
		info.protected, info.taskSID, info.workflowSID = true, existing.Spec.TaskSID, existing.Spec.WorkflowSID
		if existing.Spec.TaskSID != "" {
			taskSID = existing.Spec.TaskSID
		}
	}
	if !events.ValidSID(taskSID, "WT") {
		info.fetched = true // not a Flex task's conference: nothing to read
		return info, nil
	}
	task, err := c.twilio.FetchTask(ctx, c.policy.Spec.Twilio.WorkspaceSID, taskSID)
	if twilio.IsNotFound(err) {
		info.fetched = true
		return info, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch task %s: %w", taskSID, err)
	}
	info.fetched, info.taskSID, info.workflowSID = true, task.SID, task.WorkflowSID
	if existing == nil {
		// A policy being deleted protects no new call: its finalizer is undoing the setup.
		info.protected = c.policy.DeletionTimestamp == nil && slices.Contains(c.policy.Spec.ProtectedWorkflowSIDs, task.WorkflowSID)
	}
	info.learn(task.Attributes)
	return info, nil
}

// infoFromRecovery is what is known of a protected conference whose task could not be read.
func infoFromRecovery(rec *v1alpha1.ConferenceRecovery, p *v1alpha1.ConferenceRecoveryPolicy) *conferenceInfo {
	return &conferenceInfo{generation: p.Generation, protected: true, checkedAt: time.Now(),
		taskSID: rec.Spec.TaskSID, workflowSID: rec.Spec.WorkflowSID, legs: map[string]legInfo{}}
}

// learn records what the task's attributes say about the conference.
func (i *conferenceInfo) learn(attributes string) {
	attrs, _ := recovery.ParseTaskAttributes(attributes)
	if attrs.Marker.Role == recovery.TaskRoleReconnect {
		i.reconnectOf = attrs.Marker.ConferenceSID
	}
	for key, callSID := range attrs.Participants {
		switch {
		case key == "customer":
			i.legs[callSID] = legInfo{role: v1alpha1.RoleCustomer}
		case key == "worker":
			i.legs[callSID] = legInfo{role: v1alpha1.RoleAgent}
		case events.ValidSID(key, "WK"):
			// Flex keys the legs of further agents (a warm transfer) by their worker SID.
			i.legs[callSID] = legInfo{role: v1alpha1.RoleAgent, workerSID: key}
		}
	}
}

// wantsRefetch lists legs the task did not describe when it was read and that still lack a role
// or, for an agent, a worker; each is asked about once.
func (i *conferenceInfo) wantsRefetch(parts []v1alpha1.ParticipantStatus) bool {
	if !i.fetched || i.taskSID == "" {
		return false
	}
	for _, p := range parts {
		if _, known := i.legs[p.CallSID]; known || i.asked[p.CallSID] {
			continue
		}
		if (p.Role == v1alpha1.RoleUnknown && !p.Coaching) || (p.Role == v1alpha1.RoleAgent && p.WorkerSID == "") {
			return true
		}
	}
	return false
}

// refetch reads the task again and learns its attributes; the legs asked about are remembered
// whatever the outcome.
func (i *conferenceInfo) refetch(ctx context.Context, c *conferenceOp, parts []v1alpha1.ParticipantStatus) error {
	if i.asked == nil {
		i.asked = map[string]bool{}
	}
	for _, p := range parts {
		if _, known := i.legs[p.CallSID]; !known {
			i.asked[p.CallSID] = true
		}
	}
	task, err := c.twilio.FetchTask(ctx, c.policy.Spec.Twilio.WorkspaceSID, i.taskSID)
	if err != nil {
		return fmt.Errorf("fetch task %s: %w", i.taskSID, err)
	}
	i.learn(task.Attributes)
	return nil
}

// fillRoles completes legs whose callback label said nothing (role Unknown) and agent legs without
// a worker from the task's conference.participants attribute.
func fillRoles(st *v1alpha1.ConferenceRecoveryStatus, info *conferenceInfo) bool {
	changed := false
	for idx := range st.Participants {
		p := &st.Participants[idx]
		leg, ok := info.legs[p.CallSID]
		if !ok {
			continue
		}
		if p.Role == v1alpha1.RoleUnknown && !p.Coaching {
			p.Role, changed = leg.role, true
		}
		if p.Role == v1alpha1.RoleAgent && p.WorkerSID == "" && leg.workerSID != "" {
			p.WorkerSID, changed = leg.workerSID, true
		}
		if p.Role == v1alpha1.RoleCustomer && st.CustomerCallSID == "" {
			st.CustomerCallSID, changed = p.CallSID, true
		}
	}
	return changed
}
