package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/activity"
)

// Reasons of Ready, EventsFlowing and WorkersOverlap that come from the engine.
const (
	reasonEngineNotRunning = "EngineNotRunning"
	reasonEngineStarting   = "EngineStarting"
	reasonEngineSyncing    = "EngineSyncing"
	reasonEventsReceived   = "EventsReceived"
	reasonNoEventYet       = "NoEventYet"
	reasonSinkNotReady     = "SinkNotReady"
	reasonOlderPolicy      = "OlderPolicyGoverns"
	reasonNoOverlap        = "NoOverlap"
	reasonEnforcementFails = "EnforcementFailed"
)

// engineState is what the engine said about the policy in this reconcile.
type engineState int

const (
	engineAbsent engineState = iota // no engine in this manager
	engineWaiting
	engineSyncing
	engineRunning
)

// applyStats copies the engine's aggregates into status and sets EventsFlowing and WorkersOverlap.
// The counters are the engine's, read every StatsInterval: the status changes (and is written)
// only when they moved, never once per event.
func (s *activitySync) applyStats(ctx context.Context) (engineState, activity.PolicyStats) {
	st := &s.policy.Status
	if s.r.Stats == nil {
		s.setConditionStatus(v1alpha1.ConditionEventsFlowing, metav1.ConditionUnknown, reasonEngineNotRunning,
			"The activity engine does not run in this manager: no TaskRouter event is read")
		return engineAbsent, activity.PolicyStats{}
	}
	key := types.NamespacedName{Namespace: s.policy.Namespace, Name: s.policy.Name}
	stats, ok := s.r.Stats.Stats(key)
	if !ok {
		msg := "The activity engine has not taken the policy yet"
		if !conditionTrue(st.Conditions, v1alpha1.ConditionActivitiesResolved) {
			msg = "The activity engine takes the policy once ActivitiesResolved is True"
		}
		s.setConditionStatus(v1alpha1.ConditionEventsFlowing, metav1.ConditionUnknown, reasonEngineStarting, msg)
		return engineWaiting, stats
	}
	s.reportFailures(stats)
	st.WorkersGoverned, st.Busy, st.PendingChanges = stats.WorkersGoverned, stats.Busy, stats.PendingChanges
	st.Enforcements, st.Conflicts, st.Failures = stats.Enforcements, stats.Conflicts, stats.Failures
	st.LastEventTime = nil
	if !stats.LastEventTime.IsZero() {
		// Whole seconds, as the API server keeps them: otherwise every refresh would look like a change.
		t := metav1.NewTime(stats.LastEventTime.UTC().Truncate(time.Second))
		st.LastEventTime = &t
	}
	s.setEventsFlowing(stats)
	s.setOverlap(ctx, stats)
	if !stats.Synced {
		return engineSyncing, stats
	}
	return engineRunning, stats
}

// setEventsFlowing says whether TaskRouter events reach the engine: a person reading it wants to
// know whether the sink works and whether anything has come through it.
func (s *activitySync) setEventsFlowing(stats activity.PolicyStats) {
	st := &s.policy.Status
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionEventStreamReady); c == nil || c.Status != metav1.ConditionTrue {
		why := "the Event Streams sink is not set up yet"
		if c != nil {
			why = c.Message
		}
		s.setCondition(v1alpha1.ConditionEventsFlowing, false, reasonSinkNotReady, "Events cannot arrive: "+why)
		return
	}
	via := "the policy's Event Streams sink " + st.SinkSID
	if st.SinkSID == "" {
		via = st.WebhookURL
		if via == "" {
			via = "the policy's webhook path"
		}
	}
	if stats.LastEventTime.IsZero() {
		s.setConditionStatus(v1alpha1.ConditionEventsFlowing, metav1.ConditionUnknown, reasonNoEventYet,
			"No TaskRouter event about a governed worker has arrived through "+via+" since the engine took the policy")
		return
	}
	s.setCondition(v1alpha1.ConditionEventsFlowing, true, reasonEventsReceived,
		"TaskRouter events arrive through "+via+" (the last at status.lastEventTime)")
}

// setOverlap reports workers this policy selects that an older policy of the workspace governs,
// naming the older policies.
func (s *activitySync) setOverlap(ctx context.Context, stats activity.PolicyStats) {
	if stats.Overlapping == 0 {
		s.setCondition(v1alpha1.ConditionWorkersOverlap, false, reasonNoOverlap, "No worker this policy selects is governed by another policy")
		return
	}
	older := "an older policy"
	if names := s.olderPolicies(ctx); len(names) > 0 {
		older = "the older " + strings.Join(names, ", ")
	}
	msg := fmt.Sprintf("%d worker(s) selected by spec.workers are governed by %s of workspace %s: the older policy governs a worker both select",
		stats.Overlapping, older, s.policy.Spec.Twilio.WorkspaceSID)
	old := meta.FindStatusCondition(s.persisted.Conditions, v1alpha1.ConditionWorkersOverlap)
	if old == nil || old.Status != metav1.ConditionTrue {
		s.event(true, reasonOlderPolicy, "Govern", "%s", msg)
	}
	s.setCondition(v1alpha1.ConditionWorkersOverlap, true, reasonOlderPolicy, msg)
}

// olderPolicies names the policies of the same workspace created before this one, oldest first.
func (s *activitySync) olderPolicies(ctx context.Context) []string {
	others, err := s.otherPoliciesOfWorkspace(ctx)
	if err != nil {
		return nil
	}
	older := slices.DeleteFunc(others, func(p v1alpha1.WorkerActivityPolicy) bool { return !olderThan(&p, s.policy) })
	slices.SortFunc(older, func(a, b v1alpha1.WorkerActivityPolicy) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	var names []string
	for _, p := range older {
		names = append(names, "policy "+p.Namespace+"/"+p.Name)
	}
	return names
}

// olderThan orders policies by creation, then by namespace, then by name (the creation timestamp
// has one-second precision), as the engine decides which policy governs a worker.
func olderThan(a, b *v1alpha1.WorkerActivityPolicy) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// reportFailures emits one Warning event per refresh in which the engine's failed writes grew.
func (s *activitySync) reportFailures(stats activity.PolicyStats) {
	if grown := stats.Failures - s.persisted.Failures; grown > 0 {
		last := stats.LastError
		if last == "" {
			last = "no detail"
		}
		s.event(true, reasonEnforcementFails, "Enforce", "%d worker update(s) failed since the last report (%d in all); the last: %s", grown, stats.Failures, last)
	}
}

// setReady sums the policy up. It is Ready when its credentials, activities and event stream are in
// place and the engine runs it; a workspace that is not multi-tasking leaves it Ready but says so.
func (s *activitySync) setReady(engine engineState, stats activity.PolicyStats) {
	conds := s.policy.Status.Conditions
	if _, err := activity.WorkersExpression(s.policy.Spec.Workers); err != nil {
		s.setCondition(v1alpha1.ConditionReady, false, reasonInvalidWorkersExpression, err.Error())
		return
	}
	if reason, message, ok := allTrue(conds, v1alpha1.ConditionActivitiesResolved, v1alpha1.ConditionEventStreamReady); !ok {
		s.setCondition(v1alpha1.ConditionReady, false, reason, message)
		return
	}
	if s.setup != nil {
		s.setCondition(v1alpha1.ConditionReady, false, s.setup.reason, s.setup.message)
		return
	}
	switch engine {
	case engineAbsent:
		s.setCondition(v1alpha1.ConditionReady, false, reasonEngineNotRunning, "Set up in Twilio, but the activity engine does not run in this manager")
		return
	case engineWaiting:
		s.setCondition(v1alpha1.ConditionReady, false, reasonEngineStarting, "Set up in Twilio; waiting for the activity engine to take the policy")
		return
	case engineSyncing:
		msg := "The activity engine is reading the workspace's workers and live tasks from TaskRouter in the background; workers with events are enforced meanwhile, each read on its own"
		if stats.LastError != "" {
			msg += "; last error: " + stats.LastError
		}
		s.setCondition(v1alpha1.ConditionReady, false, reasonEngineSyncing, msg)
		return
	}
	msg := "Enforcing: governed workers' activities follow their work"
	if s.policy.Spec.Mode == v1alpha1.ModeObserve {
		msg = "Observing: what Enforce would change is counted and reported, nothing is changed"
	}
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionMultitaskingEnabled); c != nil && c.Status == metav1.ConditionFalse {
		msg += "; warning: the workspace is not multi-tasking (see MultitaskingEnabled)"
	}
	s.setCondition(v1alpha1.ConditionReady, true, v1alpha1.ReasonReconciled, msg)
}

func conditionTrue(conds []metav1.Condition, typ string) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == metav1.ConditionTrue
}
