package deploy

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// everything turns on every optional part of the chart.
var everything = []string{
	"webhook.publicURL=" + publicURL,
	"ingress.enabled=true", "ingress.className=nginx", "ingress.host=flex-operator.example.com",
	"ingress.tls.clusterIssuer=letsencrypt",
	"networkPolicy.enabled=true",
	"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true",
	"podAntiAffinity=soft", "priorityClassName=system-cluster-critical",
	"extraEnv[0].name=HTTPS_PROXY", "extraEnv[0].value=http://proxy.example.com:3128",
}

func TestChartLint(t *testing.T) {
	for name, set := range map[string][]string{
		"defaults":   {"webhook.publicURL=" + publicURL},
		"everything": everything,
		"namespaced": {"webhook.publicURL=" + publicURL, "watchNamespaces={team-a,team-b}"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", chartDir, "--strict", "--namespace", releaseNamespace}
			for _, s := range set {
				args = append(args, "--set", s)
			}
			if out, err := runHelm(t, args...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// TestChartRefusesUnsafeValues: a chart that renders without the public URL would install an
// operator that refuses every callback; one whose shutdown is shorter than the drain would be killed
// mid-drain; a misspelt or mistyped value (values.schema.json) would be ignored or break the Pod.
func TestChartRefusesUnsafeValues(t *testing.T) {
	for name, c := range map[string]struct {
		set  []string
		want string
	}{
		"no public URL":        {nil, "webhook.publicURL is required"},
		"shutdown below drain": {[]string{"webhook.publicURL=" + publicURL, "webhook.drainDelaySeconds=25", "gracefulShutdownSeconds=30"}, "gracefulShutdownSeconds must exceed"},
		"ingress without host": {[]string{"webhook.publicURL=" + publicURL, "ingress.enabled=true"}, "ingress.host is required"},
		// values.schema.json: a mistake is refused, never silently ignored.
		"misspelt value":            {[]string{"webhook.publicURL=" + publicURL, "replicas=3"}, "additional properties 'replicas' not allowed"},
		"misspelt nested value":     {[]string{"webhook.publicURL=" + publicURL, "ingress.tls.issuer=letsencrypt"}, "additional properties 'issuer' not allowed"},
		"public URL with a path":    {[]string{"webhook.publicURL=" + publicURL + "/ops"}, "/webhook/publicURL"},
		"public URL not a URL":      {[]string{"webhook.publicURL=flex-operator.example.com"}, "/webhook/publicURL"},
		"replicas not a number":     {[]string{"webhook.publicURL=" + publicURL, "replicaCount=two"}, "/replicaCount"},
		"no replicas":               {[]string{"webhook.publicURL=" + publicURL, "replicaCount=0"}, "/replicaCount"},
		"unknown log level":         {[]string{"webhook.publicURL=" + publicURL, "logLevel=verbose"}, "/logLevel"},
		"bad namespace name":        {[]string{"webhook.publicURL=" + publicURL, "watchNamespaces={Team_A}"}, "/watchNamespaces/0"},
		"unknown anti-affinity":     {[]string{"webhook.publicURL=" + publicURL, "podAntiAffinity=always"}, "/podAntiAffinity"},
		"extra arg not a flag":      {[]string{"webhook.publicURL=" + publicURL, "extraArgs={twilio-rate=5}"}, "/extraArgs/0"},
		"metrics port out of range": {[]string{"webhook.publicURL=" + publicURL, "metrics.port=70000"}, "/metrics/port"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := templateErr(t, c.set...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("helm template: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestChartHighAvailability: two replicas spread over nodes and zones, a PodDisruptionBudget, a
// rollout that adds before it removes, and a grace period that covers the drain.
func TestChartHighAvailability(t *testing.T) {
	objs := template(t, "webhook.publicURL="+publicURL)
	deploy := named(objs, "Deployment", releaseName)
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	if n, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas"); n != 2 {
		t.Errorf("replicas %d, want 2", n)
	}
	if u, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); u != int64(0) {
		t.Errorf("maxUnavailable %v, want 0", u)
	}
	spread, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "topologySpreadConstraints")
	var keys []string
	for _, c := range spread {
		keys = append(keys, c.(map[string]any)["topologyKey"].(string))
	}
	if !slices.Contains(keys, "kubernetes.io/hostname") || !slices.Contains(keys, "topology.kubernetes.io/zone") {
		t.Errorf("topology spread over %v, want hostname and zone", keys)
	}
	if pdb := named(objs, "PodDisruptionBudget", releaseName); pdb == nil {
		t.Error("no PodDisruptionBudget")
	}

	args := containerArgs(t, deploy)
	for _, want := range []string{"--leader-elect", "--webhook-public-url=" + publicURL, "--webhook-drain-delay=10s",
		"--graceful-shutdown-timeout=30s", "--metrics-secure=true", "--metrics-bind-address=:8443"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args %v lack %s", args, want)
		}
	}
	grace, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
	if grace <= 30 {
		t.Errorf("terminationGracePeriodSeconds %d does not exceed the 30s graceful shutdown", grace)
	}
	sc, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec", "securityContext")
	if sc["runAsNonRoot"] != true || sc["runAsUser"] != int64(65532) {
		t.Errorf("pod securityContext %v, want non-root 65532", sc)
	}

	svc := named(objs, "Service", releaseName+"-webhook")
	if svc == nil {
		t.Fatal("no webhook Service")
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	p := ports[0].(map[string]any)
	if p["name"] != "http" || p["port"] != int64(80) || p["appProtocol"] != "http" {
		t.Errorf("webhook Service port %v, want http/80 with appProtocol http (ingress controllers must not try TLS)", p)
	}
}

// TestChartIngressKeepsPaths: the Ingress forwards /twilio/ and /flex/ as they are (Twilio signs the
// exact URL) with TLS for the host.
func TestChartIngressKeepsPaths(t *testing.T) {
	objs := template(t, everything...)
	ing := named(objs, "Ingress", releaseName)
	if ing == nil {
		t.Fatal("no Ingress")
	}
	for k := range ing.GetAnnotations() {
		if strings.Contains(k, "rewrite") {
			t.Errorf("the Ingress rewrites paths (%s): signatures would not match", k)
		}
	}
	if ing.GetAnnotations()["cert-manager.io/cluster-issuer"] != "letsencrypt" {
		t.Errorf("annotations %v lack the cert-manager issuer", ing.GetAnnotations())
	}
	rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
	paths, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "http", "paths")
	var got []string
	for _, p := range paths {
		got = append(got, p.(map[string]any)["path"].(string))
	}
	if !slices.Equal(got, []string{"/twilio/", "/flex/"}) {
		t.Errorf("ingress paths %v, want /twilio/ and /flex/", got)
	}
	tls, _, _ := unstructured.NestedSlice(ing.Object, "spec", "tls")
	if len(tls) != 1 {
		t.Errorf("ingress tls %v, want one entry", tls)
	}
}

// TestChartNetworkPolicy: only the ingress controller and the other replicas (forwarding to the
// leader) reach the webhook port, and only the monitoring namespace the metrics port.
func TestChartNetworkPolicy(t *testing.T) {
	np := named(template(t, everything...), "NetworkPolicy", releaseName)
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	var ports []string
	for _, r := range rules {
		rule := r.(map[string]any)
		from, _ := rule["from"].([]any)
		if len(from) == 0 {
			t.Errorf("an ingress rule admits every source: %v", rule)
		}
		for _, p := range rule["ports"].([]any) {
			ports = append(ports, p.(map[string]any)["port"].(string))
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"metrics", "webhook", "webhook"}) {
		t.Errorf("admitted ports %v, want webhook and metrics only", ports)
	}
}

// TestChartNamespacedMode: with watchNamespaces the operator's rules are Roles in those namespaces;
// no ClusterRole bound to the operator grants anything on stored objects (only the token and access
// reviews the secure metrics endpoint asks the API server for, which exist only cluster-wide).
func TestChartNamespacedMode(t *testing.T) {
	objs := template(t, "webhook.publicURL="+publicURL, "watchNamespaces={team-a,team-b}")
	bound := map[string]bool{}
	for _, crb := range find(objs, "ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crb.Object, &b); err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == releaseName && s.Namespace == releaseNamespace {
				bound[b.RoleRef.Name] = true
			}
		}
	}
	if len(bound) == 0 {
		t.Fatal("no ClusterRoleBinding names the operator's ServiceAccount")
	}
	for _, cr := range find(objs, "ClusterRole") {
		if !bound[cr.GetName()] {
			continue // the roles for people and for scrapers
		}
		for _, r := range rulesOf(t, cr) {
			if r.resource != "" && r.resource != "tokenreviews" && r.resource != "subjectaccessreviews" {
				t.Errorf("ClusterRole %s grants %v in namespaced mode", cr.GetName(), r)
			}
		}
	}
	var roleNamespaces []string
	for _, role := range find(objs, "Role") {
		if role.GetName() == releaseName+"-manager" {
			roleNamespaces = append(roleNamespaces, role.GetNamespace())
		}
	}
	slices.Sort(roleNamespaces)
	if !slices.Equal(roleNamespaces, []string{"team-a", "team-b"}) {
		t.Errorf("manager Roles in %v, want team-a and team-b", roleNamespaces)
	}
	if args := containerArgs(t, named(objs, "Deployment", releaseName)); !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
		t.Errorf("manager args %v lack --watch-namespaces=team-a,team-b", args)
	}
}
