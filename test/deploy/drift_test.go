package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// permission is one grant: a verb on a resource of an API group (or on a non-resource URL). Rules
// are compared as sets of these, so that the same grants written in another order or grouping agree.
type permission struct {
	group, resource, name, url, verb string
}

func expand(rules []rbacv1.PolicyRule) []permission {
	var out []permission
	for _, r := range rules {
		for _, verb := range r.Verbs {
			for _, u := range r.NonResourceURLs {
				out = append(out, permission{url: u, verb: verb})
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					names := r.ResourceNames
					if len(names) == 0 {
						names = []string{""}
					}
					for _, n := range names {
						out = append(out, permission{group: g, resource: res, name: n, verb: verb})
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b permission) int {
		return cmpStrings(fmt.Sprint(a), fmt.Sprint(b))
	})
	return slices.Compact(out)
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rulesOf expands a rendered Role or ClusterRole.
func rulesOf(t *testing.T, obj *unstructured.Unstructured) []permission {
	t.Helper()
	var role rbacv1.ClusterRole // a Role's rules have the same shape
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return expand(role.Rules)
}

// configRole reads a Role or ClusterRole of config/rbac.
func configRole(t *testing.T, file string) rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(configDir, "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("%s has no rules", file)
	}
	return role
}

// configRules expands a Role or ClusterRole of config/rbac.
func configRules(t *testing.T, file string) []permission {
	t.Helper()
	return expand(configRole(t, file).Rules)
}

// TestChartRBACMatchesConfig: the chart grants what config/rbac grants — the operator's rules
// generated from the code's kubebuilder markers (in both modes), leader election's, and the
// metrics roles'. A marker added without `make manifests`, or a chart edited by hand, fails here.
func TestChartRBACMatchesConfig(t *testing.T) {
	manager := configRules(t, "role.yaml")
	for name, c := range map[string]struct {
		set   []string
		kind  string
		count int
	}{
		"cluster-wide": {[]string{"webhook.publicURL=" + publicURL}, "ClusterRole", 1},
		"namespaced":   {[]string{"webhook.publicURL=" + publicURL, "watchNamespaces={team-a,team-b}"}, "Role", 2},
	} {
		t.Run(name, func(t *testing.T) {
			objs := template(t, c.set...)
			n := 0
			for _, role := range find(objs, c.kind) {
				if role.GetName() != releaseName+"-manager" {
					continue
				}
				n++
				if diff := cmp.Diff(manager, rulesOf(t, role), cmp.AllowUnexported(permission{})); diff != "" {
					t.Errorf("%s %s/%s differs from config/rbac/role.yaml (-config +chart):\n%s", c.kind, role.GetNamespace(), role.GetName(), diff)
				}
			}
			if n != c.count {
				t.Errorf("%d manager %ss, want %d", n, c.kind, c.count)
			}
			for file, obj := range map[string]*unstructured.Unstructured{
				"leader_election_role.yaml": named(objs, "Role", releaseName+"-leader-election"),
				"metrics_auth_role.yaml":    named(objs, "ClusterRole", releaseName+"-metrics-auth"),
				"metrics_reader_role.yaml":  named(objs, "ClusterRole", releaseName+"-metrics-reader"),
			} {
				if obj == nil {
					t.Errorf("the chart has no counterpart of config/rbac/%s", file)
					continue
				}
				if diff := cmp.Diff(configRules(t, file), rulesOf(t, obj), cmp.AllowUnexported(permission{})); diff != "" {
					t.Errorf("%s %s differs from config/rbac/%s (-config +chart):\n%s", obj.GetKind(), obj.GetName(), file, diff)
				}
			}
		})
	}
}

// userRoles are the roles for people kubebuilder's create api scaffolds for each kind, and the
// built-in ClusterRole each is aggregated into.
var userRoles = map[string]string{"admin": "admin", "editor": "edit", "viewer": "view"}

// userRoleFiles names config/rbac's <kind>_<role>_role.yaml for every kind in config/crd/bases.
func userRoleFiles(t *testing.T) []string {
	t.Helper()
	crds, err := filepath.Glob(filepath.Join(configDir, "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	var files []string
	for _, p := range crds {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for role := range userRoles {
			files = append(files, crd.Spec.Names.Singular+"_"+role+"_role.yaml")
		}
	}
	slices.Sort(files)
	return files
}

// aggregation is the part of a role's labels that aggregates it into other ClusterRoles.
func aggregation(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			out[k] = v
		}
	}
	return out
}

// TestChartUserRolesMatchConfig: for every kind, config/rbac and the chart have the same admin,
// editor and viewer ClusterRoles, with the same rules and, while rbac.aggregateClusterRoles is on
// (the default), the same aggregation into the built-in admin, edit and view roles; off, the
// chart's carry no aggregation label.
func TestChartUserRolesMatchConfig(t *testing.T) {
	files := userRoleFiles(t)
	for _, aggregate := range []bool{true, false} {
		t.Run(fmt.Sprintf("aggregateClusterRoles=%t", aggregate), func(t *testing.T) {
			set := []string{"webhook.publicURL=" + publicURL}
			if !aggregate {
				set = append(set, "rbac.aggregateClusterRoles=false")
			}
			objs := template(t, set...)
			for _, file := range files {
				role := configRole(t, file)
				if want := strings.ReplaceAll(strings.TrimSuffix(file, ".yaml"), "_", "-"); role.Name != want {
					t.Errorf("config/rbac/%s names its role %s, want %s as kubebuilder does", file, role.Name, want)
				}
				base := strings.TrimSuffix(file, "_role.yaml")
				roleName := base[strings.LastIndex(base, "_")+1:]
				wantAgg := map[string]string{"rbac.authorization.k8s.io/aggregate-to-" + userRoles[roleName]: "true"}
				if diff := cmp.Diff(wantAgg, aggregation(role.Labels)); diff != "" {
					t.Errorf("config/rbac/%s aggregation (-want +got):\n%s", file, diff)
				}
				obj := named(objs, "ClusterRole", releaseName+"-"+role.Name)
				if obj == nil {
					t.Errorf("the chart has no counterpart of config/rbac/%s", file)
					continue
				}
				if diff := cmp.Diff(expand(role.Rules), rulesOf(t, obj), cmp.AllowUnexported(permission{})); diff != "" {
					t.Errorf("ClusterRole %s differs from config/rbac/%s (-config +chart):\n%s", obj.GetName(), file, diff)
				}
				if !aggregate {
					wantAgg = map[string]string{}
				}
				if diff := cmp.Diff(wantAgg, aggregation(obj.GetLabels())); diff != "" {
					t.Errorf("ClusterRole %s aggregation (-want +chart):\n%s", obj.GetName(), diff)
				}
			}
			n := 0
			for _, cr := range find(objs, "ClusterRole") {
				for role := range userRoles {
					if strings.HasSuffix(cr.GetName(), "-"+role+"-role") {
						n++
					}
				}
			}
			if n != len(files) {
				t.Errorf("the chart has %d admin, editor and viewer ClusterRoles, config/rbac %d", n, len(files))
			}
		})
	}
}

// TestLeaderElectionMayRecordEvents: client-go's leader election records through core/v1 Events.
func TestLeaderElectionMayRecordEvents(t *testing.T) {
	want := permission{group: "", resource: "events", verb: "create"}
	if !slices.Contains(configRules(t, "leader_election_role.yaml"), want) {
		t.Errorf("config/rbac/leader_election_role.yaml does not grant %v", want)
	}
}

// TestChartCRDsMatchConfig: the chart's crds/ are config/crd/bases, file for file.
func TestChartCRDsMatchConfig(t *testing.T) {
	config, err := filepath.Glob(filepath.Join(configDir, "crd", "bases", "*.yaml"))
	if err != nil || len(config) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	chart, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if diff := cmp.Diff(base(config), base(chart)); diff != "" {
		t.Fatalf("CRD files differ (-config +chart); run make manifests:\n%s", diff)
	}
	for _, p := range config {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("charts/flex-operator/crds/%s differs from config/crd/bases; run make manifests", filepath.Base(p))
		}
	}
}
