package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/internal/twilio"
)

// twilioMemo is what a policy reconciler remembers between reconciles about its Twilio calls.
type twilioMemo struct {
	// pending remembers creates whose outcome was unknown (a 5xx or a broken connection), so that
	// the object found by name on the next attempt is recorded as created, not adopted.
	pending sync.Map
	// sinkTests remembers when each sink was last asked for a test event (wall clock).
	sinkTests sync.Map
}

// ownership is one reconcile's view of the Twilio objects the operator created for a policy: the
// policy's status.createdSids (deleted with the policy; what was adopted is not listed and is
// kept) and what this reconcile added to it. If the status write meets a newer policy, the
// additions are carried over onto it, so no record of ownership is lost.
type ownership struct {
	// createdSIDs points at the policy's status.createdSids.
	createdSIDs *[]string
	// createdNow is what this reconcile created.
	createdNow []string
	// memo is the reconciler's; keyPrefix names the policy in its pending-create keys.
	memo      *twilioMemo
	keyPrefix string
}

func newOwnership(kind string, policy client.Object, createdSIDs *[]string, memo *twilioMemo) ownership {
	return ownership{createdSIDs: createdSIDs, memo: memo, keyPrefix: kind + "/" + policy.GetNamespace() + "/" + policy.GetName()}
}

// created reports whether the operator created the Twilio object sid.
func (o *ownership) created(sid string) bool {
	return sid != "" && slices.Contains(*o.createdSIDs, sid)
}

// markCreated records that the operator created sid.
func (o *ownership) markCreated(sid string) {
	if !o.created(sid) {
		*o.createdSIDs = append(*o.createdSIDs, sid)
	}
	o.createdNow = append(o.createdNow, sid)
}

// forget drops sid from the objects the operator created (deleted, or handed over).
func (o *ownership) forget(sid string) {
	*o.createdSIDs = slices.DeleteFunc(*o.createdSIDs, func(c string) bool { return c == sid })
}

// createdWithPrefix lists the created objects of one kind (WA, WQ, WW, DG, DF).
func (o *ownership) createdWithPrefix(prefix string) []string {
	var out []string
	for _, sid := range *o.createdSIDs {
		if strings.HasPrefix(sid, prefix) {
			out = append(out, sid)
		}
	}
	return out
}

// pendingKey names a create whose outcome is unknown, per policy and object.
func (o *ownership) pendingKey(kind, name string) string {
	return o.keyPrefix + "/" + kind + "/" + name
}

// rememberIfUnknown remembers a create that failed without saying whether it happened.
func (o *ownership) rememberIfUnknown(key string, err error) {
	if errors.Is(err, twilio.ErrOutcomeUnknown) {
		o.memo.pending.Store(key, struct{}{})
	}
}

// wasPending reports, once, whether a create under key had an unknown outcome: the object found
// now is then the operator's.
func (o *ownership) wasPending(key string) bool {
	_, ok := o.memo.pending.LoadAndDelete(key)
	return ok
}

// carryCreated adds what this reconcile created to another copy of status.createdSids.
func (o *ownership) carryCreated(createdSIDs *[]string) {
	for _, sid := range o.createdNow {
		if !slices.Contains(*createdSIDs, sid) {
			*createdSIDs = append(*createdSIDs, sid)
		}
	}
}

// writeOwnedStatus writes a policy's status, if it changed, as a merge patch that carries the
// resourceVersion read at the start. A reconcile that worked from a stale copy (the cache had not
// yet seen the previous reconcile's write) then gets a conflict instead of overwriting what that
// reconcile recorded; what this one created in Twilio is recorded on the current policy instead
// (carry, when not nil, adds it to the freshly read object), and requeue asks for a fresh look.
func writeOwnedStatus(ctx context.Context, c client.Client, reader client.Reader, before, after client.Object, changed bool, carry func(current client.Object)) (requeue bool, err error) {
	if !changed {
		return false, nil
	}
	err = c.Status().Patch(ctx, after, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case err == nil || apierrors.IsNotFound(err):
		return false, nil
	case !apierrors.IsConflict(err):
		return false, fmt.Errorf("patch status: %w", err)
	case carry == nil:
		return true, nil
	}
	current := after.DeepCopyObject().(client.Object)
	if err := reader.Get(ctx, client.ObjectKeyFromObject(after), current); err != nil {
		return false, fmt.Errorf("re-read the policy to record what was created: %w", client.IgnoreNotFound(err))
	}
	base := current.DeepCopyObject().(client.Object)
	carry(current)
	if err := c.Status().Patch(ctx, current, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("record what was created on the current policy: %w", err)
	}
	return true, nil
}

// recordEvent records a Kubernetes Event on a policy; rec may be nil (tests of pure parts).
func recordEvent(rec recorder.EventRecorder, obj client.Object, warning bool, reason, action, format string, args ...any) {
	if rec == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	rec.Eventf(obj, nil, typ, reason, action, format, args...)
}
