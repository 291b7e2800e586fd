package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// policyFinalizer holds a policy of either kind until what the operator added in Twilio is removed.
const policyFinalizer = "contactcenter.flexoperator.io/cleanup"

// cleanupTimeout bounds how long a deleted policy waits for a Twilio that keeps refusing or failing:
// after it, what is left is reported in a Warning event and the policy is let go.
const cleanupTimeout = 10 * time.Minute

// reasonCleaningUp is Ready's reason while a deleted policy's Twilio objects are being removed.
const reasonCleaningUp = "CleaningUp"

// policyCleanup is the finalizer's work for one deleted policy, whatever its kind.
type policyCleanup struct {
	client  client.Client
	twilio  *credentials.Provider
	policy  twilioPolicyObject
	deleted time.Time
	// teardown removes what the operator added, with the policy's Twilio client, and returns what
	// could not be removed yet.
	teardown func(tw twilio.Client) []*problem
	// leftInTwilio lists what the operator added and has not removed, for the Warning event.
	leftInTwilio func() string
	// cleaning reports, on Ready, what is still being removed.
	cleaning func(message string)
	event    func(warning bool, reason, action, format string, args ...any)
	// writeStatus writes the policy's status while it is still held; requeue asks for a fresh look.
	writeStatus func() (requeue bool, err error)
}

// finalize runs the cleanup and, while the policy is still held, writes its status: the result for
// the reconcile of a deleted policy.
func (c *policyCleanup) finalize(ctx context.Context) (ctrl.Result, error) {
	released, wait, err := c.run(ctx)
	if released {
		return ctrl.Result{}, err
	}
	requeue, perr := c.writeStatus()
	if perr != nil && err == nil {
		err = perr
	}
	if requeue {
		wait = soonest(wait, time.Second)
	}
	return ctrl.Result{RequeueAfter: wait}, err
}

// run removes what the operator added in Twilio and then the finalizer. Objects it adopted are left
// alone. Without usable credentials nothing can be removed: the policy is released with a Warning
// event naming what was left, rather than blocking its deletion forever; so it is when Twilio
// rejects the credentials or keeps failing for cleanupTimeout. released says the finalizer is off
// (the policy's status must then not be written); wait, when to try again.
func (c *policyCleanup) run(ctx context.Context) (released bool, wait time.Duration, err error) {
	_, tw, err := c.twilio.For(ctx, c.policy.GetNamespace(), c.policy.GetTwilio())
	var cerr *credentials.Error
	if errors.As(err, &cerr) {
		c.event(true, "CleanupSkipped", "Cleanup", "Cannot reach Twilio to clean up (%s); left in Twilio: %s", cerr.Message, c.leftInTwilio())
		return true, 0, releasePolicy(ctx, c.client, c.policy)
	}
	if err != nil {
		return false, 0, fmt.Errorf("resolve credentials: %w", err)
	}
	problems := c.teardown(tw)
	if len(problems) == 0 {
		if err := releasePolicy(ctx, c.client, c.policy); err != nil {
			if apierrors.IsConflict(err) {
				return false, time.Second, nil // all is removed; only the write was stale
			}
			return false, 0, err
		}
		return true, 0, nil
	}
	message, wait := summarize(problems, cleanupTimeout)
	authFailed := slices.ContainsFunc(problems, func(p *problem) bool { return p.reason == reasonTwilioAuthFailed })
	if authFailed || time.Since(c.deleted) > cleanupTimeout {
		c.event(true, "CleanupIncomplete", "Cleanup", "Gave up cleaning up (%s); left in Twilio: %s", message, c.leftInTwilio())
		return true, 0, releasePolicy(ctx, c.client, c.policy)
	}
	c.cleaning("Removing what the operator added in Twilio: " + message)
	return false, min(wait, twilioRecheckInterval), nil
}

// addFinalizer puts the finalizer on before anything is created in Twilio, so nothing can be left
// behind. It is a patch of the finalizers alone: an Update would send the spec back re-encoded
// ("24h" as "24h0m0s") and bump the generation. requeue asks for a fresh copy after a conflict.
func addFinalizer(ctx context.Context, c client.Client, policy client.Object) (requeue bool, err error) {
	unchanged := policy.DeepCopyObject().(client.Object)
	if !controllerutil.AddFinalizer(policy, policyFinalizer) {
		return false, nil
	}
	if err := c.Patch(ctx, policy, client.MergeFromWithOptions(unchanged, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil // a stale copy; the next read is fresher
		}
		return false, err
	}
	return false, nil
}

// releasePolicy removes the finalizer, with a patch that carries the resourceVersion: on a stale
// copy it fails rather than dropping a finalizer another controller added meanwhile.
func releasePolicy(ctx context.Context, c client.Client, policy client.Object) error {
	unchanged := policy.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(policy, policyFinalizer)
	if err := c.Patch(ctx, policy, client.MergeFromWithOptions(unchanged, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}
