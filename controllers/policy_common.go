package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/credentials"
	"github.com/flexoperator/flex-operator/internal/twilio"
)

// credentialsSecretIndex indexes policies by the name of the Secret they read, so a change to a
// Secret finds its policies without listing every policy of the namespace.
const credentialsSecretIndex = ".spec.twilio.credentialsSecretRef.name"

type twilioPolicyObject interface {
	client.Object
	v1alpha1.TwilioPolicy
}

// indexCredentialsSecret registers credentialsSecretIndex for one policy kind.
func indexCredentialsSecret(ctx context.Context, mgr ctrl.Manager, obj twilioPolicyObject) error {
	return mgr.GetFieldIndexer().IndexField(ctx, obj, credentialsSecretIndex, func(o client.Object) []string {
		return []string{o.(v1alpha1.TwilioPolicy).GetTwilio().CredentialsSecretRef.Name}
	})
}

// watchCredentialsSecrets makes a Secret's creation, change or deletion re-reconcile the policies
// that name it. Only Secret metadata is watched and cached; the data is read on demand.
func watchCredentialsSecrets(b *builder.TypedBuilder[reconcile.Request], c client.Client, list client.ObjectList) *builder.TypedBuilder[reconcile.Request] {
	return b.WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(
		func(ctx context.Context, secret client.Object) []reconcile.Request {
			l := list.DeepCopyObject().(client.ObjectList)
			if err := c.List(ctx, l, client.InNamespace(secret.GetNamespace()),
				client.MatchingFields{credentialsSecretIndex: secret.GetName()}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "List policies for Secret", "secret", secret.GetName())
				return nil
			}
			var requests []reconcile.Request
			items, _ := meta.ExtractList(l)
			for _, item := range items {
				o := item.(client.Object)
				requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
			}
			return requests
		}))
}

// policyClient resolves a policy's Twilio client and records the outcome in CredentialsResolved
// (and Ready on failure). A Secret the user must fix gives errCredentialsUnresolved: the Secret
// watch brings the policy back once it changes.
func policyClient(ctx context.Context, provider *credentials.Provider, rec recorder.EventRecorder, policy twilioPolicyObject, conds *[]metav1.Condition, previous []metav1.Condition) (twilio.Client, error) {
	_, tw, err := provider.For(ctx, policy.GetNamespace(), policy.GetTwilio())
	var cerr *credentials.Error
	switch {
	case errors.As(err, &cerr):
		setCredentialsConditions(conds, policy.GetGeneration(), cerr)
		recordCredentialsFailure(rec, policy, previous, cerr)
		return nil, errCredentialsUnresolved
	case err != nil:
		return nil, fmt.Errorf("resolve credentials: %w", err)
	}
	setCredentialsConditions(conds, policy.GetGeneration(), nil)
	return tw, nil
}

// setCredentialsConditions records the outcome of ResolveCredentials on a policy's conditions.
func setCredentialsConditions(conds *[]metav1.Condition, generation int64, cerr *credentials.Error) {
	if cerr != nil {
		meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionCredentialsResolved, Status: metav1.ConditionFalse, Reason: cerr.Reason, Message: cerr.Message, ObservedGeneration: generation})
		meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: cerr.Reason, Message: cerr.Message, ObservedGeneration: generation})
		return
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: v1alpha1.ConditionCredentialsResolved, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonCredentialsResolved, Message: "Twilio credentials read from the Secret", ObservedGeneration: generation})
}

// allTrue reports whether every one of the condition types is True; if not, the reason and message
// of the first that is not, for Ready to repeat.
func allTrue(conds []metav1.Condition, types ...string) (reason, message string, ok bool) {
	for _, typ := range types {
		c := meta.FindStatusCondition(conds, typ)
		if c == nil {
			return "Unknown", typ + " has not been evaluated", false
		}
		if c.Status != metav1.ConditionTrue {
			return c.Reason, c.Message, false
		}
	}
	return "", "", true
}
