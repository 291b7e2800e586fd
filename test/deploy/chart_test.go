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
// operator that refuses every callback, and one whose Ingress host is not the public URL's one
// whose signatures all fail; one whose shutdown is shorter than the drain would be killed
// mid-drain; a PDB keeping every replica blocks node drains; a misspelt or mistyped value
// (values.schema.json) would be ignored or break the Pod.
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
		// Browsers block an http URL from the https Flex page (mixed content).
		"http public URL": {[]string{"webhook.publicURL=http://flex-operator.example.com"}, "webhook.allowInsecurePublicURL=true for local development only"},
		// Twilio signs the URL it calls: an Ingress on another host fails every signature.
		"ingress host not the public URL's": {[]string{"webhook.publicURL=" + publicURL, "ingress.enabled=true",
			"ingress.host=flex.example.org", "ingress.tls.clusterIssuer=letsencrypt"}, "is not the host of webhook.publicURL"},
		"https public URL, Ingress without TLS": {[]string{"webhook.publicURL=" + publicURL, "ingress.enabled=true",
			"ingress.host=flex-operator.example.com"}, "the Ingress has no TLS"},
		"PDB that blocks every drain": {[]string{"webhook.publicURL=" + publicURL, "replicaCount=2", "podDisruptionBudget.minAvailable=2"},
			"every node drain would block"},
		"metrics certificate without HTTPS": {[]string{"webhook.publicURL=" + publicURL, "metrics.certManager.enabled=true", "metrics.secure=false"},
			"needs metrics.secure"},
		"misspelt issuer kind": {[]string{"webhook.publicURL=" + publicURL, "metrics.certManager.issuerRef.kind=Issur"}, "/metrics/certManager/issuerRef/kind"},
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

// TestChartPublicURLForLocalDevelopment: an http public URL renders only when asked for, and the
// Ingress then needs no TLS.
func TestChartPublicURLForLocalDevelopment(t *testing.T) {
	objs := template(t, "webhook.publicURL=http://flex.localtest.me:8080", "webhook.allowInsecurePublicURL=true",
		"ingress.enabled=true", "ingress.host=flex.localtest.me")
	if args := containerArgs(t, named(objs, "Deployment", releaseName)); !slices.Contains(args, "--webhook-public-url=http://flex.localtest.me:8080") {
		t.Errorf("manager args %v lack the http public URL", args)
	}
	if named(objs, "Ingress", releaseName) == nil {
		t.Error("no Ingress")
	}
}

// TestChartDisruptionBudget: two replicas may lose one to a drain, never both; one replica gets no
// PDB (minAvailable 1 would block every drain); an explicit minAvailable below the replicas stands.
func TestChartDisruptionBudget(t *testing.T) {
	for name, c := range map[string]struct {
		set          []string
		pdb          bool
		field        string
		value        any
		absentFields []string
	}{
		"two replicas":            {nil, true, "maxUnavailable", int64(1), []string{"minAvailable"}},
		"one replica":             {[]string{"replicaCount=1"}, false, "", nil, nil},
		"three, minAvailable two": {[]string{"replicaCount=3", "podDisruptionBudget.minAvailable=2"}, true, "minAvailable", int64(2), []string{"maxUnavailable"}},
		"percentage":              {[]string{"replicaCount=4", "podDisruptionBudget.maxUnavailable=50%"}, true, "maxUnavailable", "50%", nil},
	} {
		t.Run(name, func(t *testing.T) {
			objs := template(t, append([]string{"webhook.publicURL=" + publicURL}, c.set...)...)
			pdb := named(objs, "PodDisruptionBudget", releaseName)
			if (pdb != nil) != c.pdb {
				t.Fatalf("PodDisruptionBudget rendered: %v, want %v", pdb != nil, c.pdb)
			}
			if pdb == nil {
				return
			}
			spec, _, _ := unstructured.NestedMap(pdb.Object, "spec")
			if spec[c.field] != c.value {
				t.Errorf("spec.%s %v (%T), want %v", c.field, spec[c.field], spec[c.field], c.value)
			}
			for _, f := range c.absentFields {
				if _, ok := spec[f]; ok {
					t.Errorf("spec.%s set as well: %v", f, spec)
				}
			}
		})
	}
}

// TestChartMetricsCertificate: with metrics.certManager the manager serves cert-manager's
// certificate (--metrics-cert-dir on the mounted Secret) and the ServiceMonitor verifies it against
// the CA for the name the certificate is for, with the non-deprecated authorization when a token
// Secret is named; the objects still decode strictly into the Prometheus Operator's types.
func TestChartMetricsCertificate(t *testing.T) {
	objs := template(t, append(slices.Clone(everything), "metrics.certManager.enabled=true",
		"metrics.serviceMonitor.authorization.credentials.name=prometheus-scraper-token")...)
	cert := named(objs, "Certificate", releaseName+"-metrics")
	if cert == nil {
		t.Fatal("no Certificate")
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if named(objs, "Issuer", issuer) == nil {
		t.Errorf("the Certificate's issuer %q is not rendered (no issuerRef given: a self-signed one)", issuer)
	}
	svc := releaseName + "-metrics." + releaseNamespace + ".svc"
	if !slices.Contains(dnsNames, svc) {
		t.Errorf("certificate names %v lack the metrics Service %s", dnsNames, svc)
	}

	deploy := named(objs, "Deployment", releaseName)
	var dir string
	for _, a := range containerArgs(t, deploy) {
		if v, ok := strings.CutPrefix(a, "--metrics-cert-dir="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatal("no --metrics-cert-dir")
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	mounts, _, _ := unstructured.NestedSlice(containers[0].(map[string]any), "volumeMounts")
	volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	mounted := false
	for _, m := range mounts {
		m := m.(map[string]any)
		if m["mountPath"] != dir {
			continue
		}
		for _, v := range volumes {
			v := v.(map[string]any)
			if v["name"] == m["name"] && v["secret"].(map[string]any)["secretName"] == secret {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the Secret %s is not mounted at %s (mounts %v, volumes %v)", secret, dir, mounts, volumes)
	}

	sm := find(objs, "ServiceMonitor")[0]
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ep := eps[0].(map[string]any)
	tls := ep["tlsConfig"].(map[string]any)
	if tls["insecureSkipVerify"] == true {
		t.Error("the ServiceMonitor skips verification of a certificate it could verify")
	}
	if tls["serverName"] != svc {
		t.Errorf("tlsConfig serverName %v, want %s", tls["serverName"], svc)
	}
	if ca, _, _ := unstructured.NestedString(tls, "ca", "secret", "name"); ca != secret {
		t.Errorf("tlsConfig CA from %q, want the certificate's Secret %q", ca, secret)
	}
	if _, ok := ep["bearerTokenFile"]; ok {
		t.Error("bearerTokenFile (deprecated) set although a token Secret is named")
	}
	if name, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name"); name != "prometheus-scraper-token" {
		t.Errorf("authorization %v, want the named token Secret", ep["authorization"])
	}
	if problems, checked := checkMonitoring(operatorMetrics(t), objs); len(problems) != 0 || checked != 2 {
		t.Errorf("%d checked, problems %v", checked, problems)
	}
}
