package controllers

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// writeTracker remembers, per recovery, the resourceVersions this controller has written over. The
// controller's own writes come back as watch events, and the reconcile they trigger may read a
// cache that has not yet seen the last write: such a copy shows an action as still to do, or as
// Pending, when it is already Done. A copy whose resourceVersion was written over is known to be
// stale without comparing resourceVersions (which are opaque), so the reconcile waits for the
// newer copy instead of meeting a conflict after a needless Twilio lookup.
type writeTracker struct {
	mu          sync.Mutex
	writtenOver map[types.NamespacedName][]string
}

// maxTrackedVersions bounds the versions remembered per recovery; a reconcile writes a handful.
const maxTrackedVersions = 32

// wrote records that the object at resourceVersion before has been replaced by a write.
func (w *writeTracker) wrote(key types.NamespacedName, before string) {
	if before == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writtenOver == nil {
		w.writtenOver = map[types.NamespacedName][]string{}
	}
	versions := append(w.writtenOver[key], before)
	if len(versions) > maxTrackedVersions {
		versions = versions[len(versions)-maxTrackedVersions:]
	}
	w.writtenOver[key] = versions
}

// stale reports whether resourceVersion is one this controller has written over.
func (w *writeTracker) stale(key types.NamespacedName, resourceVersion string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.writtenOver[key], resourceVersion)
}

// forget drops what is remembered of a recovery that is finished or gone.
func (w *writeTracker) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.writtenOver, key)
}

func statusEqual(a, b v1alpha1.ConferenceRecoveryStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// mergeOwned copies the fields the controller owns from src onto dst, a status just read from the
// API server, leaving the webhook server's observations in dst as they are (see the ownership table
// in the design: the webhook writes participants, the customer call, sequence numbers, the ping's
// outcome and the reconnect task's progress).
//
// The controller's fields are taken whole from src, so a Pending step on the server that src lacks
// is dropped. Its only possible writer is a second leader in the moments of a hand-over (the
// webhook server never writes actions), and keeping it alone would be worse than dropping it: a
// Pending step is resolved by a lookup built from the Disconnect it was taken for, which src
// replaces, so the kept step would look for the wrong incident. The writer that took the step puts
// its record back with its own next save (its fields win the same way), and leader election keeps
// that overlap to a paused old leader's last reconcile.
func mergeOwned(dst *v1alpha1.ConferenceRecoveryStatus, src v1alpha1.ConferenceRecoveryStatus) {
	src = *src.DeepCopy()
	dst.ObservedGeneration = src.ObservedGeneration
	dst.Phase, dst.Reason, dst.Message = src.Phase, src.Reason, src.Message
	dst.Conditions = src.Conditions
	dst.Disconnect = src.Disconnect
	dst.Actions = src.Actions
	dst.Timings = src.Timings
	dst.FinishedAt = src.FinishedAt
	if src.Disconnect == nil {
		// The ping and the reconnect belong to an incident; with none (never started, or closed
		// because an agent came back) there are none, whatever the webhook recorded for the old.
		dst.Ping, dst.Reconnect = nil, nil
		return
	}
	if p := src.Ping; p != nil {
		if dst.Ping == nil {
			dst.Ping = &v1alpha1.PingStatus{}
		}
		if p.TaskSID != "" {
			dst.Ping.TaskSID = p.TaskSID
		}
		if p.CreatedAt != nil {
			dst.Ping.CreatedAt = p.CreatedAt
		}
	}
	if rc := src.Reconnect; rc != nil {
		if dst.Reconnect == nil {
			dst.Reconnect = &v1alpha1.ReconnectStatus{}
		}
		dst.Reconnect.Fallback = rc.Fallback
		dst.Reconnect.TargetWorkerSID = rc.TargetWorkerSID
		if rc.EnqueuedAt != nil {
			dst.Reconnect.EnqueuedAt = rc.EnqueuedAt
		}
		if rc.OriginalReservationCompletedAt != nil {
			dst.Reconnect.OriginalReservationCompletedAt = rc.OriginalReservationCompletedAt
		}
		if rc.ReroutedAt != nil {
			dst.Reconnect.ReroutedAt, dst.Reconnect.RerouteReason = rc.ReroutedAt, rc.RerouteReason
		}
	}
}
