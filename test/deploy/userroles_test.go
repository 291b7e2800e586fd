package deploy

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
)

// TestUserRoles installs config/rbac's admin, editor and viewer ClusterRoles (the chart's are the
// same, TestChartUserRolesMatchConfig) in the test control plane, which authorises with RBAC, and
// checks what people holding them can do.
//
// The test control plane runs no kube-controller-manager, so the ClusterRole aggregation
// controller does not fill the built-in admin, edit and view roles. The test therefore checks the
// two halves separately: that the built-in roles' own aggregation selectors, as the API server
// bootstrapped them, pick exactly the intended roles (and so, through edit and view being
// aggregated into admin and edit, what each built-in role ends up with); and, binding to each person
// the roles that built-in role would carry, what they may do.
func TestUserRoles(t *testing.T) {
	e := environment(t)
	ctx := context.Background()

	roles := map[string]*rbacv1.ClusterRole{}
	for _, file := range userRoleFiles(t) {
		role := configRole(t, file)
		must(t, ignoreExists(e.Client.Create(ctx, &role)))
		roles[role.Name] = &role
	}

	// What the aggregation controller would give each built-in role, from the API server's own
	// selectors: the roles a built-in role selects, then those of the built-in roles it selects.
	builtin := map[string]*rbacv1.ClusterRole{}
	for _, name := range []string{"admin", "edit", "view"} {
		cr := &rbacv1.ClusterRole{}
		must(t, e.Client.Get(ctx, client.ObjectKey{Name: name}, cr))
		if cr.AggregationRule == nil || len(cr.AggregationRule.ClusterRoleSelectors) == 0 {
			t.Fatalf("the built-in %s ClusterRole has no aggregation rule", name)
		}
		builtin[name] = cr
	}
	if len(builtin["view"].Rules) == 0 {
		t.Log("the built-in view ClusterRole has no rules: no aggregation controller runs here, the roles are bound directly")
	}
	selects := func(agg *rbacv1.ClusterRole, labels map[string]string) bool {
		for _, s := range agg.AggregationRule.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&s)
			must(t, err)
			if sel.Matches(klabels.Set(labels)) {
				return true
			}
		}
		return false
	}
	carried := map[string][]string{}
	for name, agg := range builtin {
		for roleName, role := range roles {
			if selects(agg, role.Labels) {
				carried[name] = append(carried[name], roleName)
			}
		}
		for other, otherRole := range builtin {
			if other != name && selects(agg, otherRole.Labels) {
				carried[name] = append(carried[name], "builtin:"+other)
			}
		}
	}
	resolve := func(name string) []string {
		var out []string
		var walk func(string)
		walk = func(n string) {
			for _, r := range carried[n] {
				if b, ok := strings.CutPrefix(r, "builtin:"); ok {
					walk(b)
				} else if !slices.Contains(out, r) {
					out = append(out, r)
				}
			}
		}
		walk(name)
		slices.Sort(out)
		return out
	}
	want := func(kinds ...string) []string {
		var out []string
		for _, role := range kinds {
			for _, k := range []string{"conferencerecovery", "conferencerecoverypolicy", "workeractivitypolicy"} {
				out = append(out, k+"-"+role+"-role")
			}
		}
		slices.Sort(out)
		return out
	}
	for name, w := range map[string][]string{
		"view":  want("viewer"),
		"edit":  want("editor", "viewer"),
		"admin": want("admin", "editor", "viewer"),
	} {
		if got := resolve(name); !slices.Equal(got, w) {
			t.Errorf("the built-in %s ClusterRole would carry %v, want %v", name, got, w)
		}
	}

	// People, each bound in one namespace to the roles the built-in role they hold would carry.
	const ns, elsewhere = "centre-people", "centre-other"
	for _, n := range []string{ns, elsewhere} {
		must(t, ignoreExists(e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})))
	}
	for _, holder := range []string{"view", "edit", "admin"} {
		for _, role := range resolve(holder) {
			must(t, ignoreExists(e.Client.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: holder + "-" + role, Namespace: ns},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: holder + "-person"}},
			})))
		}
	}

	// What each may do: the intent, not read back from the roles. ConferenceRecoveries are the
	// operator's own state: people read them, and an admin may delete a stuck one.
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	allowedOn := map[string]map[string][]string{
		"policies": {
			"view":  {"get", "list", "watch"},
			"edit":  {"get", "list", "watch", "create", "update", "patch", "delete"},
			"admin": all,
		},
		"conferencerecoveries": {
			"view":  {"get", "list", "watch"},
			"edit":  {"get", "list", "watch"},
			"admin": {"get", "list", "watch", "delete", "deletecollection"},
		},
	}
	type access struct{ user, namespace, group, resource, subresource, verb string }
	may := func(a access) bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: a.user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: a.namespace, Group: a.group, Resource: a.resource, Subresource: a.subresource, Verb: a.verb,
			},
		}}
		must(t, e.Client.Create(ctx, sar))
		return sar.Status.Allowed
	}
	for _, holder := range []string{"view", "edit", "admin"} {
		user := holder + "-person"
		for _, resource := range []string{"conferencerecoveries", "conferencerecoverypolicies", "workeractivitypolicies"} {
			verbs := allowedOn["policies"][holder]
			if resource == "conferencerecoveries" {
				verbs = allowedOn["conferencerecoveries"][holder]
			}
			for _, verb := range all {
				a := access{user, ns, v1alpha1.GroupVersion.Group, resource, "", verb}
				if got, want := may(a), slices.Contains(verbs, verb); got != want {
					t.Errorf("%s may %s %s: %t, want %t", user, verb, resource, got, want)
				}
				a.namespace = elsewhere
				if may(a) {
					t.Errorf("%s may %s %s in %s, where it holds no role", user, verb, resource, elsewhere)
				}
			}
			for _, verb := range []string{"get", "update", "patch"} {
				a := access{user, ns, v1alpha1.GroupVersion.Group, resource, "status", verb}
				if got, want := may(a), verb == "get"; got != want {
					t.Errorf("%s may %s %s/status: %t, want %t (only the operator writes status)", user, verb, resource, got, want)
				}
			}
		}
		for _, verb := range []string{"get", "list", "watch"} {
			if may(access{user, ns, "", "secrets", "", verb}) {
				t.Errorf("%s may %s secrets: these roles must grant nothing beyond the operator's kinds", user, verb)
			}
		}
	}

	// The same through real requests, impersonating the people.
	as := func(user string) client.Client {
		cfg := rest.CopyConfig(e.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: e.Client.Scheme()})
		must(t, err)
		return c
	}
	samples := kustomize(t, filepath.Join(configDir, "samples"))
	policies := find(samples, "WorkerActivityPolicy")
	if len(policies) == 0 {
		t.Fatal("config/samples has no WorkerActivityPolicy")
	}
	policy := policies[0]
	for _, holder := range []string{"view", "edit", "admin"} {
		c := as(holder + "-person")
		var recoveries v1alpha1.ConferenceRecoveryList
		if err := c.List(ctx, &recoveries, client.InNamespace(ns)); err != nil {
			t.Errorf("%s-person: kubectl get conferencerecoveries: %v", holder, err)
		}
		if err := c.List(ctx, &recoveries, client.InNamespace(elsewhere)); !apierrors.IsForbidden(err) {
			t.Errorf("%s-person lists conferencerecoveries in %s: %v, want forbidden", holder, elsewhere, err)
		}
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
			t.Errorf("%s-person lists secrets: %v, want forbidden", holder, err)
		}
		p := policy.DeepCopy()
		p.SetNamespace(ns)
		err := c.Create(ctx, p, client.DryRunAll)
		if holder == "view" && !apierrors.IsForbidden(err) {
			t.Errorf("view-person creates a WorkerActivityPolicy: %v, want forbidden", err)
		}
		if holder != "view" && err != nil {
			t.Errorf("%s-person cannot create a WorkerActivityPolicy: %v", holder, err)
		}
		// Nobody but the operator makes a ConferenceRecovery.
		rec := &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Name: "cf-by-hand", Namespace: ns}}
		if err := c.Create(ctx, rec, client.DryRunAll); !apierrors.IsForbidden(err) {
			t.Errorf("%s-person creates a ConferenceRecovery: %v, want forbidden (operator state)", holder, err)
		}
	}

	// A stuck recovery: an admin deletes it, an editor may not.
	const conference = "CF0123456789abcdef0123456789abcdef"
	stuck := &v1alpha1.ConferenceRecovery{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(conference), Namespace: ns},
		Spec:       v1alpha1.ConferenceRecoverySpec{PolicyName: "voice", ConferenceSID: conference},
	}
	must(t, ignoreExists(e.Client.Create(ctx, stuck)))
	if err := as("edit-person").Delete(ctx, stuck.DeepCopy()); !apierrors.IsForbidden(err) {
		t.Errorf("edit-person deletes a ConferenceRecovery: %v, want forbidden", err)
	}
	if err := as("admin-person").Delete(ctx, stuck.DeepCopy()); err != nil {
		t.Errorf("admin-person cannot delete a stuck ConferenceRecovery: %v", err)
	}
	t.Logf("the built-in roles would carry: view %v, edit %v, admin %v", resolve("view"), resolve("edit"), resolve("admin"))
}
