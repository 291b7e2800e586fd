package activity

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// EventsPathFormat is the webhook path (after the public base URL) at which a WorkerActivityPolicy's
// Event Streams sink delivers: fmt.Sprintf(EventsPathFormat, namespace, policy). It differs in shape
// from a ConferenceRecoveryPolicy's /twilio/{namespace}/{policy}/events so that the two kinds may
// share names in a namespace.
const EventsPathFormat = "/twilio/%s/activity/%s/events"

// PolicyStats is what the engine knows of one WorkerActivityPolicy, as the controller writes it to
// status.
type PolicyStats struct {
	// Synced is true once the engine has a complete picture of the policy's workspace, read from
	// TaskRouter in the background when it starts (workers with events are enforced before that,
	// each read on its own).
	Synced bool
	// Generation is the policy's metadata.generation the engine runs with (0 until it runs it).
	Generation int64
	// WorkersGoverned counts the workers this policy governs (matched by spec.workers and not
	// governed by an older policy of the same workspace).
	WorkersGoverned int32
	// Busy counts governed workers holding a reservation on the policy's channels.
	Busy int32
	// PendingChanges counts governed workers with a pending activity.
	PendingChanges int32
	// Overlapping counts workers this policy selects that an older policy governs.
	Overlapping int32
	// Enforcements counts activity changes the engine made (or, in Observe mode, would have made).
	Enforcements int64
	// Conflicts counts writes refused with 412 (the worker changed under the engine).
	Conflicts int64
	// Failures counts writes that failed for another reason.
	Failures int64
	// LastEventTime is when the last TaskRouter event for a governed worker was received.
	LastEventTime time.Time
	// LastError describes the last error the engine met for this policy, if any.
	LastError string
}

// StatsSource gives the engine's aggregates for a policy; ok is false when the engine does not run
// the policy (not the leader, or not started yet).
type StatsSource interface {
	Stats(policy types.NamespacedName) (stats PolicyStats, ok bool)
}
