package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// The TaskRouter configuration of seed 001's README ("TaskRouter configuration required").
const (
	// pingFilterName is the Recovery Ping workflow's only filter.
	pingFilterName = "Ping Disconnected Agent"
	// directToAgentFilterName is the filter put first on every protected workflow.
	directToAgentFilterName = "Direct to an Agent"
	// everyWorker is the target expression of the queues the operator creates: known-worker
	// routing only reaches a worker who is in the step's queue.
	everyWorker = "1==1"
	// Names used when a policy was stored before these fields had defaults.
	defaultPingName       = "Recovery Ping"
	defaultReconnectQueue = "Everyone"
)

type workflowTarget struct {
	Queue          string `json:"queue"`
	KnownWorkerSID string `json:"known_worker_sid,omitempty"`
}

type workflowFilter struct {
	FilterFriendlyName string           `json:"filter_friendly_name"`
	Expression         string           `json:"expression"`
	Targets            []workflowTarget `json:"targets"`
}

// pingWorkflowConfiguration routes a ping task to the agent who dropped out, and only to them:
// "Ping Disconnected Agent" (disconnectedWorkerSid != null) with known-worker routing on
// task.disconnectedWorkerSid, default queue the Recovery Ping queue. The ping task's TTL (15 s by
// default) is what ends an unanswered ping; no target timeout is set.
func pingWorkflowConfiguration(queueSID string) string {
	type routing struct {
		Filters       []workflowFilter `json:"filters"`
		DefaultFilter workflowTarget   `json:"default_filter"`
	}
	doc := struct {
		TaskRouting routing `json:"task_routing"`
	}{routing{
		Filters: []workflowFilter{{
			FilterFriendlyName: pingFilterName,
			Expression:         "disconnectedWorkerSid != null",
			Targets:            []workflowTarget{{Queue: queueSID, KnownWorkerSID: "task.disconnectedWorkerSid"}},
		}},
		DefaultFilter: workflowTarget{Queue: queueSID},
	}}
	b, _ := json.Marshal(doc) // plain strings: cannot fail
	return string(b)
}

// directToAgentFilter is the filter that sends a reconnect task carrying targetWorkerSid back to
// that agent. It has no timeout and no skip_if ("Do not skip" in the Console): the reconnect task
// must enter a queue before the agent's original reservation is completed, and a task that skipped
// the step would be offered to anyone. The wait for the agent is bounded by the recovery instead
// (spec.reconnect.targetTimeout, see recovery.RerouteReconnect), which knows why it gave up and
// says so in the recovery's status.
func directToAgentFilter(queueSID string) string {
	b, _ := json.Marshal(workflowFilter{
		FilterFriendlyName: directToAgentFilterName,
		Expression:         "targetWorkerSid != null",
		Targets:            []workflowTarget{{Queue: queueSID, KnownWorkerSID: "task.targetWorkerSid"}},
	})
	return string(b)
}

// directToAgentQueue reports whether a filter (its JSON text) is a "Direct to an Agent" filter —
// matching on what it does, not its name: the expression targetWorkerSid != null and a target with
// known worker task.targetWorkerSid — and returns that target's queue.
func directToAgentQueue(filter string) (string, bool) {
	var f workflowFilter
	if err := json.Unmarshal([]byte(filter), &f); err != nil {
		return "", false
	}
	if !strings.EqualFold(strings.Join(strings.Fields(f.Expression), ""), "targetWorkerSid!=null") {
		return "", false
	}
	for _, t := range f.Targets {
		if t.KnownWorkerSID == "task.targetWorkerSid" {
			return t.Queue, true
		}
	}
	return "", false
}

func enabled(b *bool) bool { return b == nil || *b }

// reconcileTaskRouter ensures (or, unmanaged, looks up) the Recovery Ping queue and workflow and the
// "Direct to an Agent" filters, sets TaskRouterConfigured and returns when to look again.
func (s *policySync) reconcileTaskRouter(ctx context.Context) time.Duration {
	spec := &s.policy.Spec
	manage := enabled(spec.Management.TaskRouter)
	if !manage {
		s.handOverTaskRouter()
	}
	st := &s.policy.Status
	var problems []*problem
	pingQueue, p := s.ensureQueue(ctx, "CreatePingQueue", cmp.Or(spec.Ping.QueueName, defaultPingName), manage, reasonPingQueueNotFound)
	st.PingQueueSID = pingQueue.SID
	if p != nil {
		problems = append(problems, p)
	}
	// The workflow needs the queue only to be created; unmanaged, it is looked up regardless.
	if p == nil || !manage {
		pingWorkflow, p := s.ensurePingWorkflow(ctx, pingQueue.SID, manage)
		st.PingWorkflowSID = pingWorkflow.SID
		if p != nil {
			problems = append(problems, p)
		}
	}
	reconnectQueue, p := s.ensureQueue(ctx, "CreateReconnectQueue", cmp.Or(spec.Reconnect.QueueName, defaultReconnectQueue), manage, "")
	st.ReconnectQueueSID = reconnectQueue.SID
	if p != nil && manage {
		problems = append(problems, p)
	}
	if p == nil || !manage {
		problems = append(problems, s.ensureFilters(ctx, reconnectQueue.SID, manage)...)
	}
	wait := resyncInterval
	if len(problems) == 0 {
		wait = soonest(wait, s.deleteUnusedTaskRouterObjects(ctx))
		msg := fmt.Sprintf("Recovery Ping queue %s and workflow %s; %q first on %d workflow(s)",
			st.PingQueueSID, st.PingWorkflowSID, directToAgentFilterName, len(spec.ProtectedWorkflowSIDs))
		if !manage {
			msg = "Not managed (spec.management.taskRouter is false); found " + msg
		}
		s.setCondition(v1alpha1.ConditionTaskRouterConfigured, true, reasonConfigured, msg)
		return wait
	}
	message, wait := summarize(problems, wait)
	s.setCondition(v1alpha1.ConditionTaskRouterConfigured, false, problems[0].reason, message)
	return wait
}

// handOverTaskRouter stops owning the queues, workflow and filters the operator created, because
// the user took TaskRouter management over: they stay in Twilio as they are.
func (s *policySync) handOverTaskRouter() {
	for _, sid := range append(s.createdWithPrefix("WW"), s.createdWithPrefix("WQ")...) {
		s.forget(sid)
		s.event(false, "HandedOver", "HandOver", "spec.management.taskRouter is false: %s is no longer managed and will not be deleted with the policy", sid)
	}
	for i := range s.policy.Status.ProtectedWorkflows {
		s.policy.Status.ProtectedWorkflows[i].FilterAdded = false
	}
}

// ensureQueue finds the queue by friendly name and, when managing, creates it (target 1==1; action
// names the create in its Event). An unmanaged queue that is missing is a problem with
// notFoundReason, or none when that is empty.
func (s *policySync) ensureQueue(ctx context.Context, action, name string, manage bool, notFoundReason string) (twilio.TaskQueue, *problem) {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	key := s.pendingKey("queue", name)
	q, err := s.tw.FindTaskQueue(ctx, ws, name)
	switch {
	case err == nil:
		if s.wasPending(key) {
			s.markCreated(q.SID) // our create whose answer was lost
		}
		return q, nil
	case !twilio.IsNotFound(err):
		return twilio.TaskQueue{}, twilioProblem(fmt.Sprintf("find TaskQueue %q", name), err)
	case !manage:
		if notFoundReason == "" {
			return twilio.TaskQueue{}, nil
		}
		return twilio.TaskQueue{}, &problem{reason: notFoundReason, retry: twilioRecheckInterval,
			message: fmt.Sprintf("TaskQueue %q not found in workspace %s (spec.management.taskRouter is false: create it, target %s)", name, ws, everyWorker)}
	}
	q, err = s.tw.CreateTaskQueue(ctx, ws, twilio.TaskQueueCreate{FriendlyName: name, TargetWorkers: everyWorker})
	if err != nil {
		return twilio.TaskQueue{}, s.createFailed(key, fmt.Sprintf("create TaskQueue %q", name), err)
	}
	s.markCreated(q.SID)
	s.event(false, "Created", action, "Created TaskQueue %q (%s) with target %s", name, q.SID, everyWorker)
	return q, nil
}

// createFailed turns a failed create into a problem, remembering a create that may have happened.
func (s *policySync) createFailed(key, what string, err error) *problem {
	s.rememberIfUnknown(key, err)
	if twilio.IsNotFound(err) {
		ws := s.policy.Spec.Twilio.WorkspaceSID
		return &problem{reason: reasonWorkspaceNotFound, retry: twilioRecheckInterval,
			message: fmt.Sprintf("%s: workspace %s not found in account %s", what, ws, s.tw.AccountSID())}
	}
	return twilioProblem(what, err)
}

// ensurePingWorkflow finds the Recovery Ping workflow by name and, when managing, creates it. An
// existing workflow is adopted as it is.
func (s *policySync) ensurePingWorkflow(ctx context.Context, queueSID string, manage bool) (twilio.Workflow, *problem) {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	name := cmp.Or(s.policy.Spec.Ping.WorkflowName, defaultPingName)
	key := s.pendingKey("workflow", name)
	wf, err := s.tw.FindWorkflow(ctx, ws, name)
	switch {
	case err == nil:
		if s.wasPending(key) {
			s.markCreated(wf.SID)
		}
		return wf, nil
	case !twilio.IsNotFound(err):
		return twilio.Workflow{}, twilioProblem(fmt.Sprintf("find Workflow %q", name), err)
	case !manage:
		return twilio.Workflow{}, &problem{reason: reasonPingWorkflowNotFound, retry: twilioRecheckInterval,
			message: fmt.Sprintf("Workflow %q not found in workspace %s (spec.management.taskRouter is false: create it)", name, ws)}
	}
	wf, err = s.tw.CreateWorkflow(ctx, ws, twilio.WorkflowCreate{FriendlyName: name, Configuration: pingWorkflowConfiguration(queueSID)})
	if err != nil {
		return twilio.Workflow{}, s.createFailed(key, fmt.Sprintf("create Workflow %q", name), err)
	}
	s.markCreated(wf.SID)
	s.event(false, "Created", "CreateWorkflow", "Created Workflow %q (%s) routing ping tasks to the disconnected agent through queue %s", name, wf.SID, queueSID)
	return wf, nil
}

// ensureFilters puts "Direct to an Agent" first on every protected workflow (or, unmanaged, checks
// that it is there), takes the operator's filter off workflows no longer protected, and rebuilds
// status.protectedWorkflows.
func (s *policySync) ensureFilters(ctx context.Context, queueSID string, manage bool) []*problem {
	var problems []*problem
	previous := map[string]v1alpha1.ProtectedWorkflowStatus{}
	for _, e := range s.policy.Status.ProtectedWorkflows {
		previous[e.SID] = e
	}
	var entries []v1alpha1.ProtectedWorkflowStatus
	for _, sid := range s.policy.Spec.ProtectedWorkflowSIDs {
		entry, p := s.ensureFilter(ctx, previous[sid], sid, queueSID, manage)
		entries = append(entries, entry)
		if p != nil {
			problems = append(problems, p)
		}
	}
	for _, e := range s.policy.Status.ProtectedWorkflows {
		if slices.Contains(s.policy.Spec.ProtectedWorkflowSIDs, e.SID) || !e.FilterAdded {
			continue
		}
		others, err := s.otherPolicies(ctx)
		if err != nil {
			entries = append(entries, e)
			problems = append(problems, &problem{reason: reasonTwilioUnavailable, message: err.Error(), retry: twilioRetryInterval})
			continue
		}
		if other := others.protecting(e.SID); other != "" {
			s.event(false, "HandedOver", "UpdateWorkflow", "Left the %q filter on workflow %s: policy %s protects it too", directToAgentFilterName, e.SID, other)
			continue
		}
		if p := s.removeFilter(ctx, e.SID); p != nil {
			// Keep the entry so the removal is tried again.
			entries = append(entries, e)
			problems = append(problems, p)
		}
	}
	s.policy.Status.ProtectedWorkflows = entries
	return problems
}

// ensureFilter handles one protected workflow. Its configuration is changed by splicing the filter's
// bytes in: everything else stays exactly as the contact centre wrote it.
func (s *policySync) ensureFilter(ctx context.Context, prev v1alpha1.ProtectedWorkflowStatus, sid, queueSID string, manage bool) (v1alpha1.ProtectedWorkflowStatus, *problem) {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	entry := v1alpha1.ProtectedWorkflowStatus{SID: sid, Name: prev.Name, FilterAdded: prev.FilterAdded && manage}
	wf, err := s.tw.FetchWorkflow(ctx, ws, sid)
	if twilio.IsNotFound(err) {
		return v1alpha1.ProtectedWorkflowStatus{SID: sid}, &problem{reason: reasonWorkflowNotFound, retry: twilioRecheckInterval,
			message: fmt.Sprintf("protected workflow %s not found in workspace %s", sid, ws)}
	}
	if err != nil {
		return entry, twilioProblem("fetch protected workflow "+sid, err)
	}
	entry.Name = wf.FriendlyName
	filters, err := twilio.ParseWorkflowFilters(wf.Configuration)
	if err != nil {
		return entry, &problem{reason: reasonInvalidWorkflowConfiguration, retry: resyncInterval,
			message: fmt.Sprintf("protected workflow %s (%q): %v; it was left unchanged", sid, wf.FriendlyName, err)}
	}
	want := directToAgentFilter(queueSID)
	if filters.Len() > 0 {
		if queue, ok := directToAgentQueue(filters.Filter(0)); ok {
			entry.FilterInstalled = true
			if !entry.FilterAdded || queue == queueSID || queueSID == "" {
				return entry, nil
			}
			// The operator's own filter, pointing at a queue it no longer uses.
			updated, err := filters.Replace(0, want)
			if err != nil {
				return entry, &problem{reason: reasonInvalidWorkflowConfiguration, message: err.Error(), retry: resyncInterval}
			}
			if _, err := s.tw.UpdateWorkflowConfiguration(ctx, ws, sid, updated); err != nil {
				return entry, twilioProblem(fmt.Sprintf("update the %q filter of workflow %s", directToAgentFilterName, sid), err)
			}
			s.event(false, "UpdatedFilter", "UpdateWorkflow", "Pointed the %q filter of workflow %s (%q) at queue %s", directToAgentFilterName, sid, wf.FriendlyName, queueSID)
			return entry, nil
		}
	}
	if !manage {
		return entry, &problem{reason: reasonFilterMissing, retry: twilioRecheckInterval,
			message: fmt.Sprintf("protected workflow %s (%q) does not start with the %q filter (spec.management.taskRouter is false: add it: expression targetWorkerSid != null, known worker task.targetWorkerSid, do not skip)", sid, wf.FriendlyName, directToAgentFilterName)}
	}
	updated, err := filters.Prepend(want)
	if err != nil {
		return entry, &problem{reason: reasonInvalidWorkflowConfiguration, message: err.Error(), retry: resyncInterval}
	}
	if _, err := s.tw.UpdateWorkflowConfiguration(ctx, ws, sid, updated); err != nil {
		return entry, twilioProblem(fmt.Sprintf("add the %q filter to workflow %s", directToAgentFilterName, sid), err)
	}
	entry.FilterInstalled, entry.FilterAdded = true, true
	s.filtersAddedNow = append(s.filtersAddedNow, sid)
	s.event(false, "AddedFilter", "UpdateWorkflow", "Put the %q filter first on workflow %s (%q), routing to queue %s", directToAgentFilterName, sid, wf.FriendlyName, queueSID)
	return entry, nil
}

// removeFilter takes the "Direct to an Agent" filter off the top of a workflow, leaving the rest of
// its configuration byte for byte. A workflow that is gone, or whose first filter is not that filter
// any more, needs nothing.
func (s *policySync) removeFilter(ctx context.Context, sid string) *problem {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	wf, err := s.tw.FetchWorkflow(ctx, ws, sid)
	if twilio.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return twilioProblem("fetch workflow "+sid, err)
	}
	filters, err := twilio.ParseWorkflowFilters(wf.Configuration)
	if err != nil {
		return &problem{reason: reasonInvalidWorkflowConfiguration, retry: resyncInterval,
			message: fmt.Sprintf("workflow %s (%q): %v; the %q filter was not removed", sid, wf.FriendlyName, err, directToAgentFilterName)}
	}
	if filters.Len() == 0 {
		return nil
	}
	if _, ok := directToAgentQueue(filters.Filter(0)); !ok {
		return nil
	}
	updated, err := filters.Remove(0)
	if err != nil {
		return &problem{reason: reasonInvalidWorkflowConfiguration, message: err.Error(), retry: resyncInterval}
	}
	if _, err := s.tw.UpdateWorkflowConfiguration(ctx, ws, sid, updated); err != nil {
		return twilioProblem(fmt.Sprintf("remove the %q filter from workflow %s", directToAgentFilterName, sid), err)
	}
	s.event(false, "RemovedFilter", "UpdateWorkflow", "Removed the %q filter from workflow %s (%q)", directToAgentFilterName, sid, wf.FriendlyName)
	return nil
}

// deleteUnusedTaskRouterObjects deletes workflows and queues the operator created that the spec no
// longer uses (a renamed queue or workflow). Workflows go first: Twilio refuses to delete a queue a
// workflow targets.
func (s *policySync) deleteUnusedTaskRouterObjects(ctx context.Context) time.Duration {
	st := &s.policy.Status
	inUse := []string{st.PingQueueSID, st.PingWorkflowSID, st.ReconnectQueueSID}
	var wait time.Duration
	var others policyUsers
	listed := false
	for _, sid := range append(s.createdWithPrefix("WW"), s.createdWithPrefix("WQ")...) {
		if slices.Contains(inUse, sid) {
			continue
		}
		if !listed {
			var err error
			if others, err = s.otherPolicies(ctx); err != nil {
				return twilioRetryInterval
			}
			listed = true
		}
		if other := others.using(sid); other != "" {
			s.event(false, "HandedOver", "Delete", "Left %s in Twilio: policy %s uses it too", sid, other)
			s.forget(sid)
			continue
		}
		if p := s.deleteCreatedTaskRouterObject(ctx, sid); p != nil {
			s.event(true, "DeleteFailed", "Delete", "%s", p.message)
			wait = soonest(wait, p.retry)
		}
	}
	return wait
}

// deleteCreatedTaskRouterObject deletes a workflow (WW…) or queue (WQ…) the operator created and
// forgets it.
func (s *policySync) deleteCreatedTaskRouterObject(ctx context.Context, sid string) *problem {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	var err error
	kind := "TaskQueue"
	if strings.HasPrefix(sid, "WW") {
		kind = "Workflow"
		err = s.tw.DeleteWorkflow(ctx, ws, sid)
	} else {
		err = s.tw.DeleteTaskQueue(ctx, ws, sid)
	}
	if err != nil {
		return twilioProblem(fmt.Sprintf("delete %s %s", kind, sid), err)
	}
	s.forget(sid)
	s.event(false, "Deleted", "Delete"+kind, "Deleted %s %s, which the operator had created", kind, sid)
	return nil
}
