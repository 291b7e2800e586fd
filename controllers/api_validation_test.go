package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// TestSamplesAccepted applies every sample in config/samples to the real API server and checks
// that the defaults come back filled in.
func TestSamplesAccepted(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "config", "samples", "*.yaml"))
	// The two policies and the kustomization: the samples hold no Secret (applying them with -k
	// must not overwrite a real one) and no ConferenceRecovery (the operator creates those).
	if err != nil || len(files) < 3 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "kustomization.yaml") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		u.SetNamespace(ns)
		if err := k8sClient.Create(ctx, &u); err != nil {
			t.Errorf("%s rejected: %v", filepath.Base(f), err)
		}
	}

	var wap v1alpha1.WorkerActivityPolicy
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agents"}, &wap); err != nil {
		t.Fatal(err)
	}
	wantNames := v1alpha1.ActivityNames{
		Available: "Available", OnATask: "On a Task", OnATaskNoAcd: "On a Task, No ACD",
		Wrapup: "Wrap Up", WrapupNoAcd: "Wrap Up, No ACD", ExtendedWrapup: "Extended Wrap Up",
	}
	if d := cmp.Diff(wantNames, wap.Spec.Activities); d != "" {
		t.Errorf("activity defaults (-want +got):\n%s", d)
	}
	if wap.Spec.ActivityChangeWhileBusy != v1alpha1.BusyChangeDefer || wap.Spec.PendingActivityAttribute != "pendingActivity" ||
		wap.Spec.EventStream.Managed == nil || !*wap.Spec.EventStream.Managed {
		t.Errorf("WorkerActivityPolicy defaults not filled: %+v", wap.Spec)
	}

	var crp v1alpha1.ConferenceRecoveryPolicy
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "voice"}, &crp); err != nil {
		t.Fatal(err)
	}
	got := crp.Spec
	if got.Ping.TTL.Duration != 15*time.Second || got.Ping.Priority != 1000 || got.Ping.QueueName != "Recovery Ping" ||
		got.Ping.WorkflowName != "Recovery Ping" || got.Reconnect.Priority != 1000 || got.Retention.Duration != 24*time.Hour ||
		got.Reporting.FollowedBy != "Reconnect Agent" || got.Management.TaskRouter == nil || !*got.Management.TaskRouter {
		t.Errorf("ConferenceRecoveryPolicy defaults not filled: %+v", got)
	}
}

// TestInvalidSpecsRejected applies one broken spec per validation rule; each must be refused with
// a message naming the field.
func TestInvalidSpecsRejected(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	ws := "WS" + strings.Repeat("a", 32)
	ww := "WW" + strings.Repeat("b", 32)
	crp := func(spec string) string {
		return `{"apiVersion":"contactcenter.flexoperator.io/v1alpha1","kind":"ConferenceRecoveryPolicy","metadata":{"name":"p"},"spec":` + spec + `}`
	}
	wap := func(spec string) string {
		return `{"apiVersion":"contactcenter.flexoperator.io/v1alpha1","kind":"WorkerActivityPolicy","metadata":{"name":"w"},"spec":` + spec + `}`
	}
	twilio := `"twilio":{"credentialsSecretRef":{"name":"s"},"workspaceSid":"` + ws + `"}`
	okCRP := twilio + `,"protectedWorkflowSids":["` + ww + `"]`
	cf := "CF" + strings.Repeat("c", 32)
	cases := []struct {
		name, obj, wantField string
	}{
		{"missing twilio", crp(`{"protectedWorkflowSids":["` + ww + `"]}`), "spec.twilio"},
		{"bad workspace sid", crp(`{"twilio":{"credentialsSecretRef":{"name":"s"},"workspaceSid":"WS123"},"protectedWorkflowSids":["` + ww + `"]}`), "spec.twilio.workspaceSid"},
		{"upper-case hex in sid", crp(`{"twilio":{"credentialsSecretRef":{"name":"s"},"workspaceSid":"WS` + strings.Repeat("A", 32) + `"},"protectedWorkflowSids":["` + ww + `"]}`), "spec.twilio.workspaceSid"},
		{"missing secret name", crp(`{"twilio":{"credentialsSecretRef":{},"workspaceSid":"` + ws + `"},"protectedWorkflowSids":["` + ww + `"]}`), "spec.twilio.credentialsSecretRef.name"},
		{"no protected workflows", crp(`{` + twilio + `,"protectedWorkflowSids":[]}`), "spec.protectedWorkflowSids"},
		{"bad workflow sid", crp(`{` + twilio + `,"protectedWorkflowSids":["WQ` + strings.Repeat("b", 32) + `"]}`), "spec.protectedWorkflowSids[0]"},
		{"ping ttl too short", crp(`{` + okCRP + `,"ping":{"ttl":"1s"}}`), "spec.ping.ttl"},
		{"ping ttl fractional", crp(`{` + okCRP + `,"ping":{"ttl":"15.5s"}}`), "spec.ping.ttl"},
		{"ping ttl not a duration", crp(`{` + okCRP + `,"ping":{"ttl":"soon"}}`), "spec.ping.ttl"},
		{"ping priority negative", crp(`{` + okCRP + `,"ping":{"priority":-1}}`), "spec.ping.priority"},
		{"ping priority too big", crp(`{` + okCRP + `,"ping":{"priority":2147483648}}`), "spec.ping.priority"},
		{"reconnect priority too big", crp(`{` + okCRP + `,"reconnect":{"priority":2147483648}}`), "spec.reconnect.priority"},
		{"reconnect target timeout too short", crp(`{` + okCRP + `,"reconnect":{"targetTimeout":"1s"}}`), "spec.reconnect.targetTimeout"},
		{"reconnect target timeout too long", crp(`{` + okCRP + `,"reconnect":{"targetTimeout":"2h"}}`), "spec.reconnect.targetTimeout"},
		{"reconnect target timeout fractional", crp(`{` + okCRP + `,"reconnect":{"targetTimeout":"7.5s"}}`), "spec.reconnect.targetTimeout"},
		{"announcement url and text", crp(`{` + okCRP + `,"customer":{"announcementUrl":"https://x/a.mp3","announcementText":"hi"}}`), "spec.customer"},
		{"announcement url not http", crp(`{` + okCRP + `,"customer":{"announcementUrl":"ftp://x/a.mp3"}}`), "spec.customer.announcementUrl"},
		{"public url with query", crp(`{` + okCRP + `,"publicBaseUrl":"https://x.example.com/?a=b"}`), "spec.publicBaseUrl"},
		{"retention too long", crp(`{` + okCRP + `,"retention":"1000h"}`), "spec.retention"},
		{"activity names not distinct", wap(`{` + twilio + `,"activities":{"wrapup":"on a task"}}`), "spec.activities"},
		{"empty activity name", wap(`{` + twilio + `,"activities":{"available":""}}`), "spec.activities.available"},
		{"bad mode", wap(`{` + twilio + `,"mode":"Sometimes"}`), "spec.mode"},
		{"bad busy policy", wap(`{` + twilio + `,"activityChangeWhileBusy":"Ignore"}`), "spec.activityChangeWhileBusy"},
		{"bad pending attribute", wap(`{` + twilio + `,"pendingActivityAttribute":"pending-activity"}`), "spec.pendingActivityAttribute"},
		{"bad channel", wap(`{` + twilio + `,"channels":["voice channel"]}`), "spec.channels[0]"},
		{"activity name too long", wap(`{` + twilio + `,"activities":{"onATask":"` + strings.Repeat("x", 65) + `"}}`), "spec.activities.onATask"},
		{"empty workers expression", wap(`{` + twilio + `,"workers":""}`), "spec.workers"},
		{"workers reads activity_name", wap(`{` + twilio + `,"workers":"skills HAS 'voice' AND activity_name == 'Available'"}`), "workers may not read activity_sid or activity_name"},
		{"workers reads activity_sid", wap(`{` + twilio + `,"workers":"activity_sid!='WA1'"}`), "workers may not read activity_sid or activity_name"},
		{"activity public url not http", wap(`{` + twilio + `,"publicBaseUrl":"flex-operator.example.com"}`), "spec.publicBaseUrl"},
		{"activity public url with fragment", wap(`{` + twilio + `,"publicBaseUrl":"https://x.example.com/#top"}`), "spec.publicBaseUrl"},
		{"recovery bad conference sid", `{"apiVersion":"contactcenter.flexoperator.io/v1alpha1","kind":"ConferenceRecovery","metadata":{"name":"r"},"spec":{"policyName":"p","conferenceSid":"CF1"}}`, "spec.conferenceSid"},
		{"recovery bad phase", `{"apiVersion":"contactcenter.flexoperator.io/v1alpha1","kind":"ConferenceRecovery","metadata":{"name":"r2"},"spec":{"policyName":"p","conferenceSid":"` + cf + `","taskSid":"WK` + strings.Repeat("d", 32) + `"}}`, "spec.taskSid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var u unstructured.Unstructured
			if err := u.UnmarshalJSON([]byte(tc.obj)); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			err := k8sClient.Create(ctx, &u)
			if err == nil {
				_ = k8sClient.Delete(ctx, &u)
				t.Fatalf("accepted; want a rejection naming %s", tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("error does not name %s: %v", tc.wantField, err)
			}
		})
	}
}

// TestConferenceRecoverySpecImmutable checks that a recovery's identity cannot be edited.
func TestConferenceRecoverySpecImmutable(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	rec := &v1alpha1.ConferenceRecovery{}
	rec.Namespace, rec.Name = ns, "cf"+strings.Repeat("e", 32)
	rec.Spec = v1alpha1.ConferenceRecoverySpec{PolicyName: "p", ConferenceSID: "CF" + strings.Repeat("e", 32)}
	if err := k8sClient.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	before := rec.DeepCopy()
	rec.Spec.PolicyName = "other"
	if err := k8sClient.Patch(ctx, rec, client.MergeFrom(before)); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("spec change accepted or wrong error: %v", err)
	}
}
