package controllers

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// activityRole is one of the six activities a policy names: the spec field, the name, the
// availability the engine relies on, and where its SID goes in status.
type activityRole struct {
	field     string
	name      string
	available bool
	sid       *string
}

// activityRoles lists the policy's six activities in the order they are reported. On a Task and
// Wrap Up keep the agent available to other channels' work, as the seed's do; the No ACD variants
// and Extended Wrap Up hold the agent out of routing.
func activityRoles(spec *v1alpha1.ActivityNames, st *v1alpha1.ResolvedActivities) []activityRole {
	return []activityRole{
		{"spec.activities.available", cmp.Or(spec.Available, "Available"), true, &st.Available},
		{"spec.activities.onATask", cmp.Or(spec.OnATask, "On a Task"), true, &st.OnATask},
		{"spec.activities.onATaskNoAcd", cmp.Or(spec.OnATaskNoAcd, "On a Task, No ACD"), false, &st.OnATaskNoAcd},
		{"spec.activities.wrapup", cmp.Or(spec.Wrapup, "Wrap Up"), true, &st.Wrapup},
		{"spec.activities.wrapupNoAcd", cmp.Or(spec.WrapupNoAcd, "Wrap Up, No ACD"), false, &st.WrapupNoAcd},
		{"spec.activities.extendedWrapup", cmp.Or(spec.ExtendedWrapup, "Extended Wrap Up"), false, &st.ExtendedWrapup},
	}
}

func availability(available bool) string {
	if available {
		return "available"
	}
	return "unavailable"
}

// resolveActivities finds each named activity — names compared without case, as Flex compares
// them — checks its availability, and with spec.createMissingActivities creates what is missing.
// Every activity is looked at; the problem names each one that is wrong. An existing activity is
// never changed: Twilio cannot change an activity's availability, and other tools may rely on it.
func (s *activitySync) resolveActivities(ctx context.Context) *problem {
	ws := s.policy.Spec.Twilio.WorkspaceSID
	existing, err := s.tw.ListActivities(ctx, ws)
	if err != nil {
		return s.workspaceProblem("list the activities of workspace "+ws, err)
	}
	byName := map[string][]twilio.Activity{}
	for _, a := range existing {
		key := strings.ToLower(a.FriendlyName)
		byName[key] = append(byName[key], a)
	}
	var problems []*problem
	var made []string
	// One Event for all the activities created: the recorder folds Events of one reason and
	// action on an object into the first one's series.
	defer func() {
		if len(made) > 0 {
			s.event(false, "Created", "CreateActivity", "Created activities %s", strings.Join(made, ", "))
		}
	}()
	for _, role := range activityRoles(&s.policy.Spec.Activities, &s.policy.Status.Activities) {
		*role.sid = ""
		key := s.pendingKey("activity", strings.ToLower(role.name))
		matches := byName[strings.ToLower(role.name)]
		switch {
		case len(matches) > 1:
			var found []string
			for _, a := range matches {
				found = append(found, fmt.Sprintf("%q (%s)", a.FriendlyName, a.SID))
			}
			problems = append(problems, &problem{reason: reasonActivityAmbiguous, retry: twilioRecheckInterval,
				message: fmt.Sprintf("%s: %q matches %s, which differ only by case; rename one in Twilio", role.field, role.name, strings.Join(found, " and "))})
			continue
		case len(matches) == 1:
			if s.wasPending(key) {
				s.markCreated(matches[0].SID)
			}
		case !s.policy.Spec.CreateMissingActivities:
			problems = append(problems, &problem{reason: reasonActivityNotFound, retry: twilioRecheckInterval,
				message: fmt.Sprintf("%s: no activity named %q in workspace %s (names compared without case); create it as an %s activity, or set spec.createMissingActivities: true",
					role.field, role.name, ws, availability(role.available))})
			continue
		default:
			created, err := s.tw.CreateActivity(ctx, ws, role.name, role.available)
			if err != nil {
				s.rememberIfUnknown(key, err)
				problems = append(problems, s.workspaceProblem(fmt.Sprintf("%s: create activity %q", role.field, role.name), err))
				continue
			}
			s.markCreated(created.SID)
			made = append(made, fmt.Sprintf("%q (%s, %s) for %s", created.FriendlyName, created.SID, availability(role.available), role.field))
			matches = []twilio.Activity{created}
		}
		a := matches[0]
		if a.Available != role.available {
			problems = append(problems, &problem{reason: reasonActivityAvailability, retry: twilioRecheckInterval,
				message: fmt.Sprintf("%s: activity %q (%s) is %s but must be %s; Twilio cannot change an activity's availability, so name an %s activity here or recreate it",
					role.field, a.FriendlyName, a.SID, availability(a.Available), availability(role.available), availability(role.available))})
			continue
		}
		*role.sid = a.SID
	}
	if len(problems) == 0 {
		return nil
	}
	message, retry := summarize(problems, 0)
	return &problem{reason: problems[0].reason, message: message, retry: retry}
}
