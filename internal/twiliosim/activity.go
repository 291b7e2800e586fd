package twiliosim

import (
	"fmt"
	"maps"
)

// This file holds the control API for worker activity scenarios: what an agent or a supervisor
// does in Flex that the activity engine reacts to. An agent's or a supervisor's activity change is
// SetWorkerActivity (Flex makes the same REST update either way); wrap-up and completion are
// Wrapup and Complete.

// ExtendWrapup is the agent pressing Flex's "Extend wrap-up" (the companion plugin): the task gets
// the attribute key (extendedWrapup by default) set to true, as a task update through the API
// would, with its task.updated event.
func (s *Sim) ExtendWrapup(taskSID, key string) error {
	if key == "" {
		key = "extendedWrapup"
	}
	return s.SetTaskAttribute(taskSID, key, true)
}

// SetTaskAttribute sets one attribute of a live task, keeping the others, with the task.updated
// event TaskRouter sends for an attributes update.
func (s *Sim) SetTaskAttribute(taskSID, key string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ws := range s.workspaces.list() {
		t, ok := ws.tasks.get(taskSID)
		if !ok {
			continue
		}
		if t.status == taskCompleted || t.status == taskCanceled {
			return fmt.Errorf("twiliosim: task %s is %s and cannot be changed", taskSID, t.status)
		}
		attrs := maps.Clone(t.attrs)
		if attrs == nil {
			attrs = map[string]any{}
		}
		attrs[key] = value
		s.updateTaskAttributes(ws, t, attrs)
		t.version++
		t.updated = s.now()
		s.emitTR(ws, "task.updated", evCtx{task: t})
		return nil
	}
	return fmt.Errorf("task %s: %w", taskSID, ErrNotFound)
}

// SetWorkerAttributes replaces a worker's attributes (Flex's or an admin's update), with the
// worker.attributes.update event.
func (s *Sim) SetWorkerAttributes(workerSID string, attrs map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, w, err := s.findWorker(workerSID)
	if err != nil {
		return err
	}
	given, err := parseAttributes(mustJSON(attrs))
	if err != nil {
		return fmt.Errorf("twiliosim: worker attributes: %w", err)
	}
	if given == nil {
		given = map[string]any{}
	}
	s.applyWorkerUpdate(ws, w, nil, given, "", false)
	return nil
}
