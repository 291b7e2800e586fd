package twiliosim

import (
	"net/http"
)

// TaskRouter v1 REST: paths, parameters and JSON as twilio-go uses them.

func (s *Sim) taskRouterMux() *http.ServeMux {
	m := http.NewServeMux()
	h := func(pattern string, f handlerFunc) { m.HandleFunc(pattern, s.wrap(f)) }
	const ws = "/v1/Workspaces/{ws}"
	h("GET /v1/Workspaces", s.listWorkspaces)
	h("POST /v1/Workspaces", s.createWorkspaceREST)
	h("GET "+ws, s.fetchWorkspace)
	h("POST "+ws, s.updateWorkspace)
	h("DELETE "+ws, s.deleteWorkspace)
	h("GET "+ws+"/Activities", s.listActivities)
	h("POST "+ws+"/Activities", s.createActivity)
	h("GET "+ws+"/Activities/{sid}", s.fetchActivity)
	h("POST "+ws+"/Activities/{sid}", s.updateActivity)
	h("DELETE "+ws+"/Activities/{sid}", s.deleteActivity)
	h("GET "+ws+"/TaskChannels", s.listTaskChannels)
	h("POST "+ws+"/TaskChannels", s.createTaskChannel)
	h("GET "+ws+"/TaskChannels/{sid}", s.fetchTaskChannel)
	h("GET "+ws+"/Workers", s.listWorkers)
	h("POST "+ws+"/Workers", s.createWorkerREST)
	h("GET "+ws+"/Workers/{sid}", s.fetchWorker)
	h("POST "+ws+"/Workers/{sid}", s.updateWorker)
	h("DELETE "+ws+"/Workers/{sid}", s.deleteWorker)
	h("GET "+ws+"/Workers/{sid}/Channels", s.listWorkerChannels)
	h("GET "+ws+"/Workers/{sid}/Channels/{ch}", s.fetchWorkerChannel)
	h("POST "+ws+"/Workers/{sid}/Channels/{ch}", s.updateWorkerChannel)
	h("GET "+ws+"/Workers/{sid}/Reservations", s.listWorkerReservations)
	h("GET "+ws+"/Workers/{sid}/Reservations/{res}", s.fetchWorkerReservation)
	h("POST "+ws+"/Workers/{sid}/Reservations/{res}", s.updateWorkerReservation)
	h("GET "+ws+"/TaskQueues", s.listTaskQueues)
	h("POST "+ws+"/TaskQueues", s.createTaskQueueREST)
	h("GET "+ws+"/TaskQueues/{sid}", s.fetchTaskQueue)
	h("POST "+ws+"/TaskQueues/{sid}", s.updateTaskQueue)
	h("DELETE "+ws+"/TaskQueues/{sid}", s.deleteTaskQueue)
	h("GET "+ws+"/Workflows", s.listWorkflows)
	h("POST "+ws+"/Workflows", s.createWorkflowREST)
	h("GET "+ws+"/Workflows/{sid}", s.fetchWorkflow)
	h("POST "+ws+"/Workflows/{sid}", s.updateWorkflow)
	h("DELETE "+ws+"/Workflows/{sid}", s.deleteWorkflow)
	h("GET "+ws+"/Tasks", s.listTasks)
	h("POST "+ws+"/Tasks", s.createTaskREST)
	h("GET "+ws+"/Tasks/{sid}", s.fetchTask)
	h("POST "+ws+"/Tasks/{sid}", s.updateTask)
	h("DELETE "+ws+"/Tasks/{sid}", s.deleteTaskREST)
	h("GET "+ws+"/Tasks/{sid}/Reservations", s.listTaskReservations)
	h("GET "+ws+"/Tasks/{sid}/Reservations/{res}", s.fetchTaskReservation)
	h("POST "+ws+"/Tasks/{sid}/Reservations/{res}", s.updateTaskReservation)
	h("GET "+ws+"/Events", s.listEvents)
	h("GET "+ws+"/Events/{sid}", s.fetchEvent)
	return m
}

func (s *Sim) wsOf(rq *request) (*workspace, error) {
	ws, ok := s.workspaces.get(rq.path("ws"))
	if !ok {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return ws, nil
}

func (ws *workspace) channelByRef(ref string) (*taskChannel, bool) {
	if c, ok := ws.channels.get(ref); ok {
		return c, true
	}
	for _, c := range ws.channels.list() {
		if c.unique == ref {
			return c, true
		}
	}
	return nil, false
}

func (ws *workspace) activityByName(name string) (*activity, bool) {
	for _, a := range ws.activities.list() {
		if a.name == name {
			return a, true
		}
	}
	return nil, false
}

func (ws *workspace) workerByName(name string) (*worker, bool) {
	for _, w := range ws.workers.list() {
		if w.name == name {
			return w, true
		}
	}
	return nil, false
}
