// Package deploy tests what deploys the operator: the Helm chart (charts/flex-operator) and the
// kustomize manifests (config/). It lints and renders the chart under several value sets, dry-runs
// every rendered object against a real API server, checks the chart agrees with config/ on CRDs
// and RBAC, runs the operator with nothing but the chart's RBAC (API-server impersonation of its
// ServiceAccount) through a conference recovery in both modes, and checks the alerts and dashboard
// use only metrics the operator registers. HELM names the helm binary (`make test` builds it into
// bin/ and sets it) and KUBEBUILDER_ASSETS the control plane.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var (
	chartDir  = filepath.Join("..", "..", "charts", "flex-operator")
	configDir = filepath.Join("..", "..", "config")
)

const (
	releaseName      = "flex-operator"
	releaseNamespace = "flex-system"
	publicURL        = "https://flex-operator.example.com"
)

// helmBin is the helm built from hack/tools/helm.
func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set: run the tests with `make test` (it builds helm into bin/ with `make helm`)")
	}
	return h
}

// runHelm runs helm with an empty home so no user configuration or repository leaks in.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), errors.New(strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// template renders the chart (with its CRDs) under the given --set values.
func template(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := templateErr(t, set...)
	if err != nil {
		t.Fatalf("helm template %v: %v", set, err)
	}
	return out
}

func templateErr(t *testing.T, set ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return render(t, releaseName, releaseNamespace, set...)
}

// render runs helm template for a release of the chart (CRDs included).
func render(t *testing.T, release, namespace string, set ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := runHelm(t, args...)
	if err != nil {
		return nil, err
	}
	return decodeAll(t, out), nil
}

// decodeAll splits a multi-document YAML stream into objects, skipping empty documents.
func decodeAll(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decode rendered YAML: %v", err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			continue
		}
		// Unstructured's own decoding keeps integers as int64, as the API machinery does.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			t.Fatalf("decode rendered object: %v\n%s", err, raw)
		}
		objs = append(objs, obj)
	}
}

// find returns the rendered objects of a kind.
func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// named returns the object of a kind and name (nil when there is none).
func named(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range find(objs, kind) {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// kustomize renders a kustomization with the control plane's kubectl.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
	}
	out, err := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	return decodeAll(t, string(out))
}

// containerArgs returns the manager container's args of a rendered Deployment.
func containerArgs(t *testing.T, deploy *unstructured.Unstructured) []string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatal("the Deployment has no containers")
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}
