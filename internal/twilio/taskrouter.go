package twilio

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	tr "github.com/twilio/twilio-go/rest/taskrouter/v1"
)

// listPageSize is Twilio's maximum page size: a workspace can have
// thousands of workers, and every page is a request against the rate limit.
const listPageSize = 1000

// FetchWorkspace implements Client.
func (c *restClient) FetchWorkspace(ctx context.Context, workspaceSID string) (Workspace, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return Workspace{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	w, err := k.taskrouter().FetchWorkspace(workspaceSID)
	if err != nil {
		return Workspace{}, k.err(err, "fetch workspace %s", workspaceSID)
	}
	return Workspace{
		SID: deref(w.Sid), FriendlyName: deref(w.FriendlyName), MultiTaskEnabled: deref(w.MultiTaskEnabled),
		DefaultActivitySID: deref(w.DefaultActivitySid), TimeoutActivitySID: deref(w.TimeoutActivitySid),
	}, nil
}

// ListActivities implements Client.
func (c *restClient) ListActivities(ctx context.Context, workspaceSID string) ([]Activity, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return nil, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListActivity(workspaceSID, &tr.ListActivityParams{PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list activities of %s", workspaceSID)
	}
	out := make([]Activity, 0, len(got))
	for _, a := range got {
		out = append(out, activityFrom(a))
	}
	return out, nil
}

// FetchActivity implements Client.
func (c *restClient) FetchActivity(ctx context.Context, workspaceSID, activitySID string) (Activity, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "activity SID", activitySID); err != nil {
		return Activity{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	a, err := k.taskrouter().FetchActivity(workspaceSID, activitySID)
	if err != nil {
		return Activity{}, k.err(err, "fetch activity %s", activitySID)
	}
	return activityFrom(*a), nil
}

// CreateActivity implements Client.
func (c *restClient) CreateActivity(ctx context.Context, workspaceSID, friendlyName string, available bool) (Activity, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return Activity{}, err
	}
	if friendlyName == "" {
		return Activity{}, errors.New("twilio: activity friendly name is required")
	}
	k := c.newCall(ctx, kindCreate)
	a, err := k.taskrouter().CreateActivity(workspaceSID, &tr.CreateActivityParams{FriendlyName: &friendlyName, Available: &available})
	if err != nil {
		return Activity{}, k.err(err, "create activity %q", friendlyName)
	}
	return activityFrom(*a), nil
}

func activityFrom(a tr.TaskrouterV1Activity) Activity {
	return Activity{SID: deref(a.Sid), FriendlyName: deref(a.FriendlyName), Available: deref(a.Available)}
}

// FetchWorker implements Client.
func (c *restClient) FetchWorker(ctx context.Context, workspaceSID, workerSID string) (Worker, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "worker SID", workerSID); err != nil {
		return Worker{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	md, err := k.taskrouter().FetchWorkerWithMetadata(workspaceSID, workerSID)
	if err != nil {
		return Worker{}, k.err(err, "fetch worker %s", workerSID)
	}
	w := workerFrom(md.Resource)
	w.Version = md.GetHeaders().Get("ETag")
	return w, nil
}

// ListWorkers implements Client.
func (c *restClient) ListWorkers(ctx context.Context, workspaceSID string, f WorkerFilter) ([]Worker, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return nil, err
	}
	p := &tr.ListWorkerParams{
		ActivitySid:             nonEmpty(f.ActivitySID),
		ActivityName:            nonEmpty(f.ActivityName),
		FriendlyName:            nonEmpty(f.FriendlyName),
		TargetWorkersExpression: nonEmpty(f.TargetWorkersExpression),
		TaskQueueSid:            nonEmpty(f.TaskQueueSID),
		PageSize:                ptr(listPageSize),
	}
	if f.Available != nil {
		p.Available = ptr(strconv.FormatBool(*f.Available))
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListWorker(workspaceSID, p)
	if err != nil {
		return nil, k.err(err, "list workers of %s", workspaceSID)
	}
	out := make([]Worker, 0, len(got))
	for _, w := range got {
		out = append(out, workerFrom(w))
	}
	return out, nil
}

// UpdateWorker implements Client.
func (c *restClient) UpdateWorker(ctx context.Context, workspaceSID, workerSID string, u WorkerUpdate) (Worker, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "worker SID", workerSID); err != nil {
		return Worker{}, err
	}
	p := &tr.UpdateWorkerParams{
		ActivitySid:               u.ActivitySID,
		Attributes:                u.Attributes,
		FriendlyName:              u.FriendlyName,
		RejectPendingReservations: u.RejectPendingReservations,
		IfMatch:                   nonEmpty(u.IfMatch),
	}
	k := c.newCall(ctx, kindIdempotent)
	md, err := k.taskrouter().UpdateWorkerWithMetadata(workspaceSID, workerSID, p)
	if err != nil {
		return Worker{}, k.err(err, "update worker %s", workerSID)
	}
	w := workerFrom(md.Resource)
	w.Version = md.GetHeaders().Get("ETag")
	return w, nil
}

func workerFrom(w tr.TaskrouterV1Worker) Worker {
	return Worker{
		SID:               deref(w.Sid),
		FriendlyName:      deref(w.FriendlyName),
		ActivitySID:       deref(w.ActivitySid),
		ActivityName:      deref(w.ActivityName),
		Available:         deref(w.Available),
		Attributes:        deref(w.Attributes),
		DateStatusChanged: derefTime(w.DateStatusChanged),
		DateUpdated:       derefTime(w.DateUpdated),
	}
}

// ListTaskChannels implements Client.
func (c *restClient) ListTaskChannels(ctx context.Context, workspaceSID string) ([]TaskChannel, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return nil, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListTaskChannel(workspaceSID, &tr.ListTaskChannelParams{PageSize: ptr(listPageSize)})
	if err != nil {
		return nil, k.err(err, "list task channels of %s", workspaceSID)
	}
	out := make([]TaskChannel, 0, len(got))
	for _, ch := range got {
		out = append(out, TaskChannel{SID: deref(ch.Sid), UniqueName: deref(ch.UniqueName), FriendlyName: deref(ch.FriendlyName)})
	}
	return out, nil
}

// CreateTask implements Client.
func (c *restClient) CreateTask(ctx context.Context, workspaceSID string, t TaskCreate) (Task, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return Task{}, err
	}
	if t.WorkflowSID != "" {
		if err := checkSID("workflow SID", t.WorkflowSID); err != nil {
			return Task{}, err
		}
	}
	if t.Priority != nil && *t.Priority < 0 {
		return Task{}, fmt.Errorf("twilio: task priority %d must not be negative", *t.Priority)
	}
	if t.Timeout != nil && (*t.Timeout < 1 || *t.Timeout > 1209600) {
		return Task{}, fmt.Errorf("twilio: task timeout %d must be 1..1209600 seconds", *t.Timeout)
	}
	p := &tr.CreateTaskParams{
		WorkflowSid: nonEmpty(t.WorkflowSID),
		TaskChannel: nonEmpty(t.TaskChannel),
		Attributes:  nonEmpty(t.Attributes),
		Priority:    t.Priority,
		Timeout:     t.Timeout,
	}
	k := c.newCall(ctx, kindCreate)
	md, err := k.taskrouter().CreateTaskWithMetadata(workspaceSID, p)
	if err != nil {
		return Task{}, k.err(err, "create task")
	}
	task := taskFrom(md.Resource)
	task.Version = md.GetHeaders().Get("ETag")
	return task, nil
}

// FetchTask implements Client.
func (c *restClient) FetchTask(ctx context.Context, workspaceSID, taskSID string) (Task, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "task SID", taskSID); err != nil {
		return Task{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	md, err := k.taskrouter().FetchTaskWithMetadata(workspaceSID, taskSID)
	if err != nil {
		return Task{}, k.err(err, "fetch task %s", taskSID)
	}
	task := taskFrom(md.Resource)
	task.Version = md.GetHeaders().Get("ETag")
	return task, nil
}

// ListTasks implements Client.
func (c *restClient) ListTasks(ctx context.Context, workspaceSID string, f TaskFilter) ([]Task, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return nil, err
	}
	p := &tr.ListTaskParams{
		WorkflowSid:            nonEmpty(f.WorkflowSID),
		WorkflowName:           nonEmpty(f.WorkflowName),
		TaskQueueSid:           nonEmpty(f.TaskQueueSID),
		TaskQueueName:          nonEmpty(f.TaskQueueName),
		EvaluateTaskAttributes: nonEmpty(f.EvaluateTaskAttributes),
		PageSize:               ptr(listPageSize),
	}
	if len(f.AssignmentStatus) > 0 {
		p.AssignmentStatus = &f.AssignmentStatus
	}
	if f.Limit > 0 {
		p.Limit = ptr(f.Limit)
		p.PageSize = ptr(min(f.Limit, listPageSize))
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListTask(workspaceSID, p)
	if err != nil {
		return nil, k.err(err, "list tasks of %s", workspaceSID)
	}
	out := make([]Task, 0, len(got))
	for _, t := range got {
		out = append(out, taskFrom(t))
	}
	return out, nil
}

// UpdateTask implements Client.
func (c *restClient) UpdateTask(ctx context.Context, workspaceSID, taskSID string, u TaskUpdate) (Task, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "task SID", taskSID); err != nil {
		return Task{}, err
	}
	p := &tr.UpdateTaskParams{
		Attributes:       u.Attributes,
		AssignmentStatus: u.AssignmentStatus,
		Reason:           u.Reason,
		Priority:         u.Priority,
		IfMatch:          nonEmpty(u.IfMatch),
	}
	k := c.newCall(ctx, kindIdempotent)
	md, err := k.taskrouter().UpdateTaskWithMetadata(workspaceSID, taskSID, p)
	if err != nil {
		return Task{}, k.err(err, "update task %s", taskSID)
	}
	task := taskFrom(md.Resource)
	task.Version = md.GetHeaders().Get("ETag")
	return task, nil
}

func taskFrom(t tr.TaskrouterV1Task) Task {
	return Task{
		SID:                   deref(t.Sid),
		Attributes:            deref(t.Attributes),
		AssignmentStatus:      deref(t.AssignmentStatus),
		Priority:              t.Priority,
		Reason:                deref(t.Reason),
		Timeout:               t.Timeout,
		Age:                   t.Age,
		TaskQueueSID:          deref(t.TaskQueueSid),
		TaskQueueFriendlyName: deref(t.TaskQueueFriendlyName),
		TaskChannelSID:        deref(t.TaskChannelSid),
		TaskChannelUniqueName: deref(t.TaskChannelUniqueName),
		WorkflowSID:           deref(t.WorkflowSid),
		WorkflowFriendlyName:  deref(t.WorkflowFriendlyName),
		DateCreated:           derefTime(t.DateCreated),
		DateUpdated:           derefTime(t.DateUpdated),
	}
}

// ListReservations implements Client.
func (c *restClient) ListReservations(ctx context.Context, workspaceSID string, f ReservationFilter) ([]Reservation, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return nil, err
	}
	k := c.newCall(ctx, kindIdempotent)
	switch {
	case f.TaskSID != "":
		if err := checkSID("task SID", f.TaskSID); err != nil {
			return nil, err
		}
		got, err := k.taskrouter().ListTaskReservation(workspaceSID, f.TaskSID, &tr.ListTaskReservationParams{
			ReservationStatus: nonEmpty(f.Status),
			WorkerSid:         nonEmpty(f.WorkerSID),
			PageSize:          ptr(listPageSize),
		})
		if err != nil {
			return nil, k.err(err, "list reservations of task %s", f.TaskSID)
		}
		out := make([]Reservation, 0, len(got))
		for _, r := range got {
			out = append(out, reservationFrom(r))
		}
		return out, nil
	case f.WorkerSID != "":
		if err := checkSID("worker SID", f.WorkerSID); err != nil {
			return nil, err
		}
		got, err := k.taskrouter().ListWorkerReservation(workspaceSID, f.WorkerSID, &tr.ListWorkerReservationParams{
			ReservationStatus: nonEmpty(f.Status),
			PageSize:          ptr(listPageSize),
		})
		if err != nil {
			return nil, k.err(err, "list reservations of worker %s", f.WorkerSID)
		}
		out := make([]Reservation, 0, len(got))
		for _, r := range got {
			// Same JSON shape as a task's reservation.
			out = append(out, reservationFrom(tr.TaskrouterV1TaskReservation{
				Sid: r.Sid, TaskSid: r.TaskSid, WorkerSid: r.WorkerSid, WorkerName: r.WorkerName,
				ReservationStatus: r.ReservationStatus, DateCreated: r.DateCreated, DateUpdated: r.DateUpdated,
			}))
		}
		return out, nil
	default:
		return nil, errors.New("twilio: list reservations needs a task SID or a worker SID")
	}
}

// FetchReservation implements Client.
func (c *restClient) FetchReservation(ctx context.Context, workspaceSID, taskSID, reservationSID string) (Reservation, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "task SID", taskSID, "reservation SID", reservationSID); err != nil {
		return Reservation{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	md, err := k.taskrouter().FetchTaskReservationWithMetadata(workspaceSID, taskSID, reservationSID)
	if err != nil {
		return Reservation{}, k.err(err, "fetch reservation %s", reservationSID)
	}
	r := reservationFrom(md.Resource)
	r.Version = md.GetHeaders().Get("ETag")
	return r, nil
}

// UpdateReservation implements Client.
func (c *restClient) UpdateReservation(ctx context.Context, workspaceSID, taskSID, reservationSID string, u ReservationUpdate) (Reservation, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "task SID", taskSID, "reservation SID", reservationSID); err != nil {
		return Reservation{}, err
	}
	p := &tr.UpdateTaskReservationParams{
		ReservationStatus:           u.Status,
		WorkerActivitySid:           u.WorkerActivitySID,
		Instruction:                 u.Instruction,
		To:                          u.To,
		From:                        u.From,
		PostWorkActivitySid:         u.PostWorkActivitySID,
		EndConferenceOnExit:         u.EndConferenceOnExit,
		EndConferenceOnCustomerExit: u.EndConferenceOnCustomerExit,
		ConferenceStatusCallback:    u.ConferenceStatusCallback,
		IfMatch:                     nonEmpty(u.IfMatch),
	}
	if len(u.ConferenceStatusCallbackEvent) > 0 {
		p.ConferenceStatusCallbackEvent = &u.ConferenceStatusCallbackEvent
	}
	// An instruction (conference, dequeue, call, redirect) places calls:
	// sent twice it could dial twice, so it is retried like a create.
	kind := kindIdempotent
	if u.Instruction != nil {
		kind = kindCreate
	}
	k := c.newCall(ctx, kind)
	md, err := k.taskrouter().UpdateTaskReservationWithMetadata(workspaceSID, taskSID, reservationSID, p)
	if err != nil {
		return Reservation{}, k.err(err, "update reservation %s", reservationSID)
	}
	r := reservationFrom(md.Resource)
	r.Version = md.GetHeaders().Get("ETag")
	return r, nil
}

func reservationFrom(r tr.TaskrouterV1TaskReservation) Reservation {
	return Reservation{
		SID:         deref(r.Sid),
		TaskSID:     deref(r.TaskSid),
		WorkerSID:   deref(r.WorkerSid),
		WorkerName:  deref(r.WorkerName),
		Status:      deref(r.ReservationStatus),
		DateCreated: derefTime(r.DateCreated),
		DateUpdated: derefTime(r.DateUpdated),
	}
}

// FindTaskQueue implements Client.
func (c *restClient) FindTaskQueue(ctx context.Context, workspaceSID, friendlyName string) (TaskQueue, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return TaskQueue{}, err
	}
	if friendlyName == "" {
		return TaskQueue{}, errors.New("twilio: task queue friendly name is required")
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListTaskQueue(workspaceSID, &tr.ListTaskQueueParams{FriendlyName: &friendlyName, PageSize: ptr(listPageSize)})
	if err != nil {
		return TaskQueue{}, k.err(err, "find task queue %q", friendlyName)
	}
	// The filter is applied again here so that a server matching loosely
	// can never hand back someone else's queue.
	for _, q := range got {
		if deref(q.FriendlyName) == friendlyName {
			return taskQueueFrom(q), nil
		}
	}
	return TaskQueue{}, fmt.Errorf("find task queue %q: %w", friendlyName, ErrNotFound)
}

// CreateTaskQueue implements Client.
func (c *restClient) CreateTaskQueue(ctx context.Context, workspaceSID string, q TaskQueueCreate) (TaskQueue, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return TaskQueue{}, err
	}
	if q.FriendlyName == "" {
		return TaskQueue{}, errors.New("twilio: task queue friendly name is required")
	}
	if q.MaxReservedWorkers < 0 || q.MaxReservedWorkers > 50 {
		return TaskQueue{}, fmt.Errorf("twilio: max reserved workers %d must be 1..50", q.MaxReservedWorkers)
	}
	p := &tr.CreateTaskQueueParams{
		FriendlyName:  &q.FriendlyName,
		TargetWorkers: nonEmpty(q.TargetWorkers),
		TaskOrder:     nonEmpty(q.TaskOrder),
	}
	if q.MaxReservedWorkers > 0 {
		p.MaxReservedWorkers = ptr(q.MaxReservedWorkers)
	}
	k := c.newCall(ctx, kindCreate)
	got, err := k.taskrouter().CreateTaskQueue(workspaceSID, p)
	if err != nil {
		return TaskQueue{}, k.err(err, "create task queue %q", q.FriendlyName)
	}
	return taskQueueFrom(*got), nil
}

func taskQueueFrom(q tr.TaskrouterV1TaskQueue) TaskQueue {
	return TaskQueue{
		SID:                deref(q.Sid),
		FriendlyName:       deref(q.FriendlyName),
		TargetWorkers:      deref(q.TargetWorkers),
		MaxReservedWorkers: q.MaxReservedWorkers,
		TaskOrder:          deref(q.TaskOrder),
	}
}

// FindWorkflow implements Client.
func (c *restClient) FindWorkflow(ctx context.Context, workspaceSID, friendlyName string) (Workflow, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return Workflow{}, err
	}
	if friendlyName == "" {
		return Workflow{}, errors.New("twilio: workflow friendly name is required")
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().ListWorkflow(workspaceSID, &tr.ListWorkflowParams{FriendlyName: &friendlyName, PageSize: ptr(listPageSize)})
	if err != nil {
		return Workflow{}, k.err(err, "find workflow %q", friendlyName)
	}
	for _, w := range got {
		if deref(w.FriendlyName) == friendlyName {
			return workflowFrom(w), nil
		}
	}
	return Workflow{}, fmt.Errorf("find workflow %q: %w", friendlyName, ErrNotFound)
}

// FetchWorkflow implements Client.
func (c *restClient) FetchWorkflow(ctx context.Context, workspaceSID, workflowSID string) (Workflow, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "workflow SID", workflowSID); err != nil {
		return Workflow{}, err
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().FetchWorkflow(workspaceSID, workflowSID)
	if err != nil {
		return Workflow{}, k.err(err, "fetch workflow %s", workflowSID)
	}
	return workflowFrom(*got), nil
}

// CreateWorkflow implements Client.
func (c *restClient) CreateWorkflow(ctx context.Context, workspaceSID string, w WorkflowCreate) (Workflow, error) {
	if err := checkSID("workspace SID", workspaceSID); err != nil {
		return Workflow{}, err
	}
	if w.FriendlyName == "" || w.Configuration == "" {
		return Workflow{}, errors.New("twilio: workflow friendly name and configuration are required")
	}
	if w.TaskReservationTimeout < 0 || w.TaskReservationTimeout > 86400 {
		return Workflow{}, fmt.Errorf("twilio: task reservation timeout %d must be 1..86400 seconds", w.TaskReservationTimeout)
	}
	p := &tr.CreateWorkflowParams{
		FriendlyName:          &w.FriendlyName,
		Configuration:         &w.Configuration,
		AssignmentCallbackUrl: nonEmpty(w.AssignmentCallbackURL),
	}
	if w.TaskReservationTimeout > 0 {
		p.TaskReservationTimeout = ptr(w.TaskReservationTimeout)
	}
	k := c.newCall(ctx, kindCreate)
	got, err := k.taskrouter().CreateWorkflow(workspaceSID, p)
	if err != nil {
		return Workflow{}, k.err(err, "create workflow %q", w.FriendlyName)
	}
	return workflowFrom(*got), nil
}

// UpdateWorkflowConfiguration implements Client.
func (c *restClient) UpdateWorkflowConfiguration(ctx context.Context, workspaceSID, workflowSID, configuration string) (Workflow, error) {
	if err := checkSIDs("workspace SID", workspaceSID, "workflow SID", workflowSID); err != nil {
		return Workflow{}, err
	}
	if configuration == "" {
		return Workflow{}, errors.New("twilio: workflow configuration is required")
	}
	k := c.newCall(ctx, kindIdempotent)
	got, err := k.taskrouter().UpdateWorkflow(workspaceSID, workflowSID, &tr.UpdateWorkflowParams{Configuration: &configuration})
	if err != nil {
		return Workflow{}, k.err(err, "update workflow %s", workflowSID)
	}
	return workflowFrom(*got), nil
}

func workflowFrom(w tr.TaskrouterV1Workflow) Workflow {
	return Workflow{
		SID:                    deref(w.Sid),
		FriendlyName:           deref(w.FriendlyName),
		Configuration:          deref(w.Configuration),
		TaskReservationTimeout: w.TaskReservationTimeout,
		AssignmentCallbackURL:  deref(w.AssignmentCallbackUrl),
	}
}

// checkSIDs checks pairs of (what, sid).
func checkSIDs(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := checkSID(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// nonEmpty maps "" to nil so that unset fields are not sent.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
