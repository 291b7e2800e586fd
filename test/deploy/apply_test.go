package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// monitoringKinds are the Prometheus Operator's; the test control plane does not have their
// CRDs, so their objects are checked by checkMonitoring (monitoring_test.go) instead.
var monitoringKinds = map[string]bool{"ServiceMonitor": true, "PrometheusRule": true}

// certManagerKinds are cert-manager's (metrics.certManager); the test control plane lacks their
// CRDs too, and TestChartMetricsCertificate checks how they fit the Deployment and ServiceMonitor.
var certManagerKinds = map[string]bool{"Certificate": true, "Issuer": true}

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
		if monitoringKinds[o.GetKind()] || certManagerKinds[o.GetKind()] {
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
	ms := operatorMetrics(t)
	for name, c := range map[string]struct {
		set []string
		// monitoring is how many Prometheus Operator objects the value set renders.
		monitoring int
	}{
		"defaults":   {[]string{"webhook.publicURL=" + publicURL}, 0},
		"everything": {everything, 2},
		"metrics certificate": {append(slices.Clone(everything), "metrics.certManager.enabled=true",
			"metrics.certManager.issuerRef.name=cluster-ca", "metrics.certManager.issuerRef.kind=ClusterIssuer"), 2},
		"namespaced": {[]string{"webhook.publicURL=" + publicURL, "watchNamespaces={team-a,team-b}", "metrics.secure=false",
			"metrics.serviceMonitor.enabled=true"}, 1},
		"no metrics": {[]string{"webhook.publicURL=" + publicURL, "metrics.enabled=false", "podAntiAffinity=hard",
			"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			objs := template(t, c.set...)
			dryRun(t, objs)
			problems, checked := checkMonitoring(ms, objs)
			for _, p := range problems {
				t.Error(p)
			}
			if checked != c.monitoring {
				t.Errorf("%d ServiceMonitors and PrometheusRules rendered, want %d", checked, c.monitoring)
			}
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
		// config/default includes ../prometheus when uncommented, which puts the ServiceMonitor in
		// the operator's namespace next to the metrics Service it selects.
		def := kustomize(t, filepath.Join(configDir, "default"))
		objs := kustomize(t, filepath.Join(configDir, "prometheus"))
		for _, o := range objs {
			o.SetNamespace(named(def, "Deployment", "flex-operator-controller-manager").GetNamespace())
		}
		problems, checked := checkMonitoring(operatorMetrics(t), objs, find(def, "Service")...)
		for _, p := range problems {
			t.Error(p)
		}
		if checked != 1 {
			t.Errorf("config/prometheus holds %d ServiceMonitors, want 1", checked)
		}
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

// TestInstallerSetsThePublicURL runs `make build-installer` as the README says: the public URL and
// the image given on the command line land in the manifests, with the PodDisruptionBudget and
// topology spread the chart also has; without a public URL, or with an http one, it refuses.
func TestInstallerSetsThePublicURL(t *testing.T) {
	out := filepath.Join(t.TempDir(), "install.yaml")
	makeInstaller := func(vars ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-s", "build-installer", "INSTALLER=" + out}, vars...)...)
		cmd.Dir = filepath.Join("..", "..")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	for name, vars := range map[string][]string{
		"no public URL":   nil,
		"http public URL": {"PUBLIC_URL=http://flex.acme.example"},
	} {
		if msg, err := makeInstaller(vars...); err == nil || !strings.Contains(msg, "PUBLIC_URL") {
			t.Errorf("%s: make build-installer: %v\n%s\nwant a refusal naming PUBLIC_URL", name, err, msg)
		}
	}
	if msg, err := makeInstaller("PUBLIC_URL=https://flex.acme.example", "IMG=registry.acme.example/flex-operator:v9.9.9"); err != nil {
		t.Fatalf("make build-installer: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeAll(t, string(b))
	deploy := named(objs, "Deployment", "flex-operator-controller-manager")
	if deploy == nil {
		t.Fatal("no Deployment in the installer")
	}
	if args := containerArgs(t, deploy); !slices.Contains(args, "--webhook-public-url=https://flex.acme.example") {
		t.Errorf("manager args %v lack the public URL given", args)
	}
	if strings.Contains(string(b), "--webhook-public-url=https://flex-operator.example.com") {
		t.Error("the placeholder public URL is still in the installer")
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "registry.acme.example/flex-operator:v9.9.9" {
		t.Errorf("image %v, want the one given", img)
	}
	pdb := named(objs, "PodDisruptionBudget", "flex-operator-controller-manager")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget in the installer")
	}
	if u, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "maxUnavailable"); u != int64(1) {
		t.Errorf("PDB maxUnavailable %v, want 1", u)
	}
	spread, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "topologySpreadConstraints")
	var keys []string
	for _, c := range spread {
		keys = append(keys, c.(map[string]any)["topologyKey"].(string))
	}
	if !slices.Contains(keys, "kubernetes.io/hostname") || !slices.Contains(keys, "topology.kubernetes.io/zone") {
		t.Errorf("topology spread over %v, want hostname and zone", keys)
	}
}
