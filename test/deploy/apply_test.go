package deploy

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// monitoringKinds are the Prometheus Operator's; the test control plane does not have their
// CRDs, so their objects are checked by checkMonitoring instead of the API server.
var monitoringKinds = map[string]bool{"ServiceMonitor": true, "PrometheusRule": true}

// dryRun creates every object with dryRun=All and strict field validation, so the API server
// checks each against its schema (unknown fields included) without keeping it. Namespaces the
// objects live in are created for real first.
func dryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(environment(t).Config, client.Options{FieldValidation: metav1.FieldValidationStrict})
	if err != nil {
		t.Fatal(err)
	}
	namespaces := map[string]bool{}
	for _, o := range objs {
		if o.GetNamespace() != "" {
			namespaces[o.GetNamespace()] = true
		}
	}
	for ns := range namespaces {
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
	checked := 0
	for _, o := range objs {
		if monitoringKinds[o.GetKind()] {
			continue
		}
		obj := o.DeepCopy()
		err := c.Create(ctx, obj, client.DryRunAll)
		if apierrors.IsAlreadyExists(err) {
			// A namespace created above, or a CRD the control plane was started with.
			continue
		}
		if err != nil {
			t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no object was checked")
	}
	t.Logf("the API server accepted %d objects", checked)
}

// TestChartObjectsAreValid renders the chart under several value sets and dry-runs the result.
func TestChartObjectsAreValid(t *testing.T) {
	for name, set := range map[string][]string{
		"defaults":   {"webhook.publicURL=" + publicURL},
		"everything": everything,
		"namespaced": {"webhook.publicURL=" + publicURL, "watchNamespaces={team-a,team-b}", "metrics.secure=false"},
		"no metrics": {"webhook.publicURL=" + publicURL, "metrics.enabled=false", "podAntiAffinity=hard"},
	} {
		t.Run(name, func(t *testing.T) {
			objs := template(t, set...)
			dryRun(t, objs)
			checkMonitoring(t, objs)
		})
	}
}

// TestKustomizeObjectsAreValid does the same for the kustomize path (make deploy,
// dist/install.yaml) and the samples.
func TestKustomizeObjectsAreValid(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		objs := kustomize(t, filepath.Join(configDir, "default"))
		if named(objs, "Deployment", "flex-operator-controller-manager") == nil {
			t.Fatal("config/default has no Deployment")
		}
		dryRun(t, objs)
	})
	t.Run("prometheus", func(t *testing.T) {
		checkMonitoring(t, kustomize(t, filepath.Join(configDir, "prometheus")))
	})
	t.Run("samples", func(t *testing.T) {
		objs := kustomize(t, filepath.Join(configDir, "samples"))
		for _, o := range objs {
			switch o.GetKind() {
			case "Secret":
				t.Errorf("the samples hold Secret %s: `kubectl apply -k` would overwrite real credentials", o.GetName())
			case "ConferenceRecovery":
				t.Errorf("the samples hold ConferenceRecovery %s: the operator would act on it against a real account", o.GetName())
			}
			o.SetNamespace("samples")
		}
		dryRun(t, objs)
	})
}

// checkMonitoring checks the Prometheus Operator objects' shape: a ServiceMonitor selecting the
// metrics Service's port, and alerting rules each with an expression, a severity and text.
func checkMonitoring(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceMonitor":
			eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
			sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
			if len(eps) != 1 || len(sel) == 0 {
				t.Errorf("ServiceMonitor %s: endpoints %v, selector %v", o.GetName(), eps, sel)
				continue
			}
			ep := eps[0].(map[string]any)
			if ep["scheme"] == "https" && ep["bearerTokenFile"] == nil {
				t.Errorf("ServiceMonitor %s scrapes HTTPS without a token: the metrics filter would refuse it", o.GetName())
			}
		case "PrometheusRule":
			groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
			rules := 0
			for _, g := range groups {
				for _, r := range g.(map[string]any)["rules"].([]any) {
					rule := r.(map[string]any)
					rules++
					labels, _ := rule["labels"].(map[string]any)
					ann, _ := rule["annotations"].(map[string]any)
					if rule["alert"] == nil || rule["expr"] == nil || labels["severity"] == nil || ann["summary"] == nil || ann["description"] == nil {
						t.Errorf("PrometheusRule %s: incomplete rule %v", o.GetName(), rule)
					}
				}
			}
			if rules == 0 {
				t.Errorf("PrometheusRule %s has no rules", o.GetName())
			}
		}
	}
}
