package expr

import "maps"

// WorkerEnv is the environment TaskRouter evaluates a worker expression in when it lists workers
// (TargetWorkersExpression) or places a task with a target expression: the worker's attributes,
// plus its built-in fields sid, friendly_name, activity_sid and activity_name, so that
// `activity_name == 'Available'` or `sid IN ['WK…']` select workers as TaskRouter does. A built-in
// field hides an attribute of the same name. attrs is not modified.
func WorkerEnv(attrs map[string]any, sid, friendlyName, activitySID, activityName string) map[string]any {
	env := make(map[string]any, len(attrs)+4)
	maps.Copy(env, attrs)
	env["sid"] = sid
	env["friendly_name"] = friendlyName
	if activitySID != "" {
		env["activity_sid"] = activitySID
		env["activity_name"] = activityName
	}
	return env
}
