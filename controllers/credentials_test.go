package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

const waitFor = 20 * time.Second

func conditionIs(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition yet", typ)
	}
	if c.Status != status || c.Reason != reason {
		return fmt.Errorf("%s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

// TestCredentialsConditions walks both policy kinds through a missing Secret, a Secret without
// authToken, and a fixed Secret, without ever touching the policy after it is created.
func TestCredentialsConditions(t *testing.T) {
	ws := "WS" + strings.Repeat("a", 32)
	ref := v1alpha1.TwilioSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "creds"}, WorkspaceSID: ws}
	kinds := []struct {
		name   string
		policy func(ns string) client.Object
	}{
		{"ConferenceRecoveryPolicy", func(ns string) client.Object {
			return &v1alpha1.ConferenceRecoveryPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "voice"},
				Spec:       v1alpha1.ConferenceRecoveryPolicySpec{Twilio: ref, ProtectedWorkflowSIDs: []string{"WW" + strings.Repeat("b", 32)}},
			}
		}},
		{"WorkerActivityPolicy", func(ns string) client.Object {
			return &v1alpha1.WorkerActivityPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agents"},
				Spec:       v1alpha1.WorkerActivityPolicySpec{Twilio: ref},
			}
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNamespace(t)
			policy := k.policy(ns)
			if err := k8sClient.Create(ctx, policy); err != nil {
				t.Fatal(err)
			}
			conds := func() []metav1.Condition {
				switch p := policy.(type) {
				case *v1alpha1.ConferenceRecoveryPolicy:
					return p.Status.Conditions
				case *v1alpha1.WorkerActivityPolicy:
					return p.Status.Conditions
				}
				return nil
			}
			waitCondition := func(typ string, status metav1.ConditionStatus, reason, msgContains string) {
				t.Helper()
				eventually(t, waitFor, func() error {
					if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
						return err
					}
					if err := conditionIs(conds(), typ, status, reason); err != nil {
						return err
					}
					c := meta.FindStatusCondition(conds(), typ)
					if !strings.Contains(c.Message, msgContains) {
						return fmt.Errorf("message %q does not mention %q", c.Message, msgContains)
					}
					if c.ObservedGeneration != policy.GetGeneration() {
						return fmt.Errorf("observedGeneration %d, want %d", c.ObservedGeneration, policy.GetGeneration())
					}
					return nil
				})
			}

			waitCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, `"creds"`)

			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
				Data: map[string][]byte{v1alpha1.SecretKeyAccountSID: []byte("AC" + strings.Repeat("1", 32))}}
			if err := k8sClient.Create(ctx, secret); err != nil {
				t.Fatal(err)
			}
			waitCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretKeyMissing, `"authToken"`)

			secret.Data[v1alpha1.SecretKeyAuthToken] = []byte("token123")
			if err := k8sClient.Update(ctx, secret); err != nil {
				t.Fatal(err)
			}
			waitCondition(v1alpha1.ConditionCredentialsResolved, metav1.ConditionTrue, v1alpha1.ReasonCredentialsResolved, "")
			if _, ok := policy.(*v1alpha1.WorkerActivityPolicy); ok {
				// The credentials are read; Twilio does not know this made-up account.
				waitCondition(v1alpha1.ConditionReady, metav1.ConditionFalse, "TwilioAuthenticationFailed", "credentials")
			}
			// A policy is Ready only once Twilio accepts the credentials and its setup is done
			// (the policy controllers' tests); this made-up account is not.
			if policy.GetGeneration() != 1 {
				t.Fatalf("the policy was changed (generation %d)", policy.GetGeneration())
			}
		})
	}
}

// TestPhaseLabel checks that a recovery carries its phase as a label.
func TestPhaseLabel(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	rec := &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cf" + strings.Repeat("f", 32)},
		Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: "p", ConferenceSID: "CF" + strings.Repeat("f", 32)}}
	if err := k8sClient.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	wantLabel := func(phase v1alpha1.RecoveryPhase) {
		t.Helper()
		eventually(t, waitFor, func() error {
			var list v1alpha1.ConferenceRecoveryList
			if err := k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.PhaseLabel: string(phase)}); err != nil {
				return err
			}
			if len(list.Items) != 1 {
				return fmt.Errorf("%d recoveries labelled %s", len(list.Items), phase)
			}
			return nil
		})
	}
	wantLabel(v1alpha1.PhaseMonitoring)
	// The controller writes status too (the policy is missing): retry on a conflict.
	if err := updateRecoveryStatus(client.ObjectKeyFromObject(rec), func(st *v1alpha1.ConferenceRecoveryStatus) {
		st.Phase = v1alpha1.PhasePinging
	}); err != nil {
		t.Fatal(err)
	}
	wantLabel(v1alpha1.PhasePinging)
}
