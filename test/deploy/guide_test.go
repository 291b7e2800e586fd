package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/scenario"
)

// What the guide's placeholders stand for in this walk. A placeholder the README gains that is not
// here fails the test: the walk must then be taught what a user would put there.
var guideValues = map[string]string{
	"<registry>":            "registry.example.com/contact",
	"<tag>":                 "v1.4.2",
	"<cert-manager issuer>": "letsencrypt-prod",
	"<namespace>":           "contact-centre",
}

// guideCredentials stand for the account SID and auth token the README elides with "…".
const (
	guideAccountSID = "AC0123456789abcdef0123456789abcdef"
	guideAuthToken  = "0123456789abcdef0123456789abcdef"
)

// TestReadmeDeployWorksAsWritten follows the README's "Deploy" section on a control plane of its own
// (it starts with no CRDs, and the walk deletes what it installs): the Helm command of its sh block
// and the commands it quotes inline, read from README.md (so the walk follows the README when it
// changes) with the placeholders filled in, run with the helm and kubectl binaries and `make` as
// a user runs them: the Helm install (cluster-wide, then confined to namespaces), its CRD upgrade
// and uninstall; make deploy (without and with a kubectl on PATH) and undeploy; the namespace,
// credentials Secret and samples of the policy steps, and the Flex developer's check of what the
// plugin will get (a curl of the operator's /flex/config with a Flex token). Each step's objects
// are checked on the API server. No Pod runs (the test control plane has no kubelet): objects are
// checked, not Pods; the last step runs the operator's binary as a process instead, against the
// policies the guide applied, a Twilio simulator of the guide's account and a stand-in for the
// guide's Ingress (walkPluginConfig).
func TestReadmeDeployWorksAsWritten(t *testing.T) {
	helm := helmBin(t)
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`")
	}
	kubectl := filepath.Join(assets, "kubectl")
	guide := readGuide(t)
	g := startGuideCluster(t)
	ctx := context.Background()

	t.Run("helm", func(t *testing.T) {
		install := guide.block(t, "helm install ")
		args := g.words(t, install)
		release, namespace := args[2], flagValue(args, "-n", "--namespace")
		set := map[string]string{}
		for i, a := range args {
			if a == "--set" && i+1 < len(args) {
				k, v, _ := strings.Cut(args[i+1], "=")
				set[k] = v
			}
		}
		g.run(t, helm, args[1:], nil)
		checkHelmRelease(t, g, release, namespace, set)

		// The CRD upgrade the guide gives, then the uninstall.
		g.run(t, kubectl, g.words(t, guide.inline(t, "kubectl apply --server-side -f charts/"))[1:], nil)
		uninstall := g.words(t, guide.inline(t, "helm uninstall "))
		g.run(t, helm, uninstall[1:], nil)
		for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &networkingv1.IngressList{}, &rbacv1.RoleBindingList{}, &corev1.ServiceAccountList{}} {
			must(t, g.client.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": release}))
			if n := meta.LenList(list); n > 0 {
				t.Errorf("after helm uninstall, %d %T of the release remain", n, list)
			}
		}
		var crbs rbacv1.ClusterRoleBindingList
		must(t, g.client.List(ctx, &crbs, client.MatchingLabels{"app.kubernetes.io/instance": release}))
		if len(crbs.Items) > 0 {
			t.Errorf("after helm uninstall, %d ClusterRoleBindings of the release remain", len(crbs.Items))
		}
		// Helm keeps CRDs, as the guide says.
		checkCRDs(t, g, "after helm uninstall")
	})

	t.Run("helm namespaced", func(t *testing.T) {
		// The guide's install with the option that confines the operator to some namespaces.
		args := append(g.words(t, guide.block(t, "helm install ")), g.words(t, guide.inline(t, "--set 'watchNamespaces="))...)
		release, namespace := args[2], flagValue(args, "-n", "--namespace")
		watched := strings.Split(strings.Trim(strings.TrimPrefix(args[len(args)-1], "watchNamespaces="), "{}"), ",")
		// The guide has the watched namespaces created first (Helm does not create them).
		createNamespace := g.words(t, guide.inline(t, "kubectl create namespace "))
		if !slices.Equal(watched, createNamespace[3:]) {
			t.Errorf("the guide creates namespaces %v for a namespaced install watching %v", createNamespace[3:], watched)
		}
		g.run(t, kubectl, createNamespace[1:], nil)
		g.run(t, helm, args[1:], nil)
		mine := client.MatchingLabels{"app.kubernetes.io/instance": release}
		var crbs rbacv1.ClusterRoleBindingList
		must(t, g.client.List(ctx, &crbs, mine))
		for _, b := range crbs.Items {
			var role rbacv1.ClusterRole
			must(t, g.client.Get(ctx, types.NamespacedName{Name: b.RoleRef.Name}, &role))
			for _, r := range role.Rules {
				if slices.Contains(r.Resources, "secrets") {
					t.Errorf("namespaced install: ClusterRole %s (bound by %s) grants %v on secrets cluster-wide", role.Name, b.Name, r.Verbs)
				}
			}
		}
		for _, ns := range watched {
			var rbs rbacv1.RoleBindingList
			must(t, g.client.List(ctx, &rbs, client.InNamespace(ns), mine))
			if len(rbs.Items) == 0 {
				t.Errorf("namespaced install: no RoleBinding of the release in watched namespace %s", ns)
			}
		}
		var deps appsv1.DeploymentList
		must(t, g.client.List(ctx, &deps, client.InNamespace(namespace), mine))
		if len(deps.Items) != 1 || !slices.Contains(deps.Items[0].Spec.Template.Spec.Containers[0].Args, "--watch-namespaces="+strings.Join(watched, ",")) {
			t.Errorf("namespaced install: the Deployment does not watch %v only", watched)
		}
		g.run(t, helm, g.words(t, guide.inline(t, "helm uninstall "))[1:], nil)
	})

	t.Run("kustomize", func(t *testing.T) {
		deploy := g.words(t, guide.inline(t, "make deploy IMG="))
		img := strings.TrimPrefix(deploy[2], "IMG=")
		undeploy := g.words(t, guide.inline(t, "make undeploy"))

		// No kubectl on PATH: make builds (here: finds built) the test control plane's kubectl,
		// and nothing else of it, and uses it.
		noKubectl := toolsPath(t, "make", "sh", "bash", "awk", "sed", "git", "go", "mkdir", "dirname", "cat", "rm", "mv", "env")
		out := g.run(t, "make", deploy[1:], []string{"PATH=" + noKubectl})
		if !strings.Contains(out, filepath.Join(assets, "kubectl")+" kustomize") || !strings.Contains(out, "setup-envtest: kubectl") {
			t.Errorf("make deploy without a kubectl on PATH did not use the test control plane's (%s):\n%s", assets, out)
		}
		if strings.Contains(out, "etcd") || strings.Contains(out, "kube-apiserver") {
			t.Errorf("make deploy without a kubectl on PATH went for the whole test control plane, not only kubectl:\n%s", out)
		}
		checkKustomizeDeploy(t, g, img)

		// A kubectl on PATH: make uses it, and builds nothing.
		wrapper, calls := kubectlWrapper(t, filepath.Join(assets, "kubectl"))
		withKubectl := wrapper + string(os.PathListSeparator) + noKubectl
		out = g.run(t, "make", deploy[1:], []string{"PATH=" + withKubectl})
		if strings.Contains(out, "setup-envtest") || !strings.Contains(out, filepath.Join(wrapper, "kubectl")) || len(calls()) == 0 {
			t.Errorf("make deploy with a kubectl on PATH did not use it:\n%s", out)
		}
		checkKustomizeDeploy(t, g, img)

		// The namespace's deletion waits for the namespace controller, which the test control
		// plane lacks: the walk plays its last step (the namespace is empty by then).
		stop := g.finalizeNamespaces(t, "flex-operator-system")
		before := len(calls())
		g.run(t, "make", undeploy[1:], []string{"PATH=" + withKubectl})
		stop()
		if len(calls()) == before {
			t.Error("make undeploy did not use the kubectl on PATH")
		}
		var deps appsv1.DeploymentList
		must(t, g.client.List(ctx, &deps, client.InNamespace("flex-operator-system")))
		if len(deps.Items) > 0 {
			t.Errorf("after make undeploy, Deployments remain: %d", len(deps.Items))
		}
		var crds apiextensionsv1.CustomResourceDefinitionList
		must(t, g.client.List(ctx, &crds))
		for _, crd := range crds.Items {
			if crd.Spec.Group == v1alpha1.GroupVersion.Group && crd.DeletionTimestamp == nil {
				t.Errorf("after make undeploy (which the guide says removes the CRDs), CRD %s remains", crd.Name)
			}
		}
	})

	t.Run("credentials and samples", func(t *testing.T) {
		// The CRDs first (make undeploy removed them): the Helm chart's, as the guide upgrades them.
		g.run(t, kubectl, g.words(t, guide.inline(t, "kubectl apply --server-side -f charts/"))[1:], nil)
		checkCRDs(t, g, "before the samples")
		create := g.words(t, guide.inline(t, "kubectl create secret generic "))
		// "if it is new": the namespaced install above made it already.
		if err := g.client.Get(ctx, types.NamespacedName{Name: flagValue(create, "-n", "--namespace")}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
			g.run(t, kubectl, g.words(t, guide.inline(t, "kubectl create namespace "))[1:], nil)
		}
		g.run(t, kubectl, create[1:], nil)
		namespace, secretName := flagValue(create, "-n", "--namespace"), create[4]
		var secret corev1.Secret
		must(t, g.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: secretName}, &secret))
		if string(secret.Data["accountSid"]) != guideAccountSID || string(secret.Data["authToken"]) != guideAuthToken {
			t.Fatalf("Secret %s/%s holds %v, want the account SID and auth token given", namespace, secretName, secret.Data)
		}

		apply := g.words(t, guide.inline(t, "kubectl apply -n "))
		g.run(t, kubectl, apply[1:], nil)
		var after corev1.Secret
		must(t, g.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: secretName}, &after))
		if after.ResourceVersion != secret.ResourceVersion || !slices.Equal(after.Data["authToken"], secret.Data["authToken"]) {
			t.Errorf("applying the samples changed Secret %s/%s", namespace, secretName)
		}
		var secrets corev1.SecretList
		must(t, g.client.List(ctx, &secrets, client.InNamespace(namespace)))
		if len(secrets.Items) != 1 {
			t.Errorf("%d Secrets in %s after the samples, want only the credentials", len(secrets.Items), namespace)
		}
		var crps v1alpha1.ConferenceRecoveryPolicyList
		var waps v1alpha1.WorkerActivityPolicyList
		var recs v1alpha1.ConferenceRecoveryList
		must(t, g.client.List(ctx, &crps, client.InNamespace(namespace)))
		must(t, g.client.List(ctx, &waps, client.InNamespace(namespace)))
		must(t, g.client.List(ctx, &recs, client.InNamespace(namespace)))
		if len(crps.Items) == 0 || len(waps.Items) == 0 {
			t.Errorf("the samples created %d ConferenceRecoveryPolicies and %d WorkerActivityPolicies in %s, want both kinds", len(crps.Items), len(waps.Items), namespace)
		}
		if len(recs.Items) > 0 {
			t.Errorf("the samples created %d ConferenceRecoveries: the operator would act on them against a real account", len(recs.Items))
		}
		// Every policy names the Secret the guide creates.
		for _, p := range crps.Items {
			if p.Spec.Twilio.CredentialsSecretRef.Name != secretName {
				t.Errorf("sample ConferenceRecoveryPolicy %s names Secret %q; the guide creates %q", p.Name, p.Spec.Twilio.CredentialsSecretRef.Name, secretName)
			}
		}
		for _, p := range waps.Items {
			if p.Spec.Twilio.CredentialsSecretRef.Name != secretName {
				t.Errorf("sample WorkerActivityPolicy %s names Secret %q; the guide creates %q", p.Name, p.Spec.Twilio.CredentialsSecretRef.Name, secretName)
			}
		}
	})
	t.Run("plugin configuration", func(t *testing.T) {
		// The operator the guide installed, run as a process against the policies just applied.
		walkPluginConfig(t, g, guide)
	})
}

// guideText is the README's "Deploy" section.
type guideText string

func readGuide(t *testing.T) guideText {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	must(t, err)
	s := string(b)
	start := strings.Index(s, "\n## Deploy\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Deploy" section`)
	}
	s = s[start+1:]
	if end := strings.Index(s[1:], "\n## "); end >= 0 {
		s = s[:end+1]
	}
	return guideText(s)
}

var (
	shBlock    = regexp.MustCompile("(?s)```sh\n(.*?)```")
	inlineCode = regexp.MustCompile("`([^`]+)`")
)

// block returns the ```sh block of the section that starts with prefix, continuation lines joined.
func (g guideText) block(t *testing.T, prefix string) string {
	t.Helper()
	for _, m := range shBlock.FindAllStringSubmatch(string(g), -1) {
		cmd := strings.Join(strings.Fields(strings.ReplaceAll(m[1], "\\\n", " ")), " ")
		if strings.HasPrefix(cmd, prefix) {
			return cmd
		}
	}
	t.Fatalf("the README's Deploy section has no sh block starting with %q", prefix)
	return ""
}

// inline returns the section's first inline code span that starts with prefix.
func (g guideText) inline(t *testing.T, prefix string) string {
	t.Helper()
	prose := shBlock.ReplaceAllString(string(g), "")
	for _, m := range inlineCode.FindAllStringSubmatch(prose, -1) {
		cmd := strings.Join(strings.Fields(m[1]), " ")
		if strings.HasPrefix(cmd, prefix) {
			return cmd
		}
	}
	t.Fatalf("the README's Deploy section quotes no command starting with %q", prefix)
	return ""
}

// guideCluster is the walk's own control plane.
type guideCluster struct {
	kubeconfig string
	client     client.Client
	clientset  kubernetes.Interface
	// values are the placeholders whose values the walk makes as it goes (a Flex token), besides
	// guideValues.
	values map[string]string
}

func startGuideCluster(t *testing.T) *guideCluster {
	t.Helper()
	te := &envtest.Environment{}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("start a control plane: %v", err)
	}
	t.Cleanup(func() { _ = te.Stop() })
	user, err := te.AddUser(envtest.User{Name: "guide", Groups: []string{"system:masters"}}, nil)
	must(t, err)
	kc, err := user.KubeConfig()
	must(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(path, kc, 0o600))
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, apiextensionsv1.AddToScheme(scheme))
	must(t, v1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	must(t, err)
	return &guideCluster{kubeconfig: path, client: c, clientset: cs, values: map[string]string{}}
}

// words fills in the placeholders and splits a command into words as the shell does (quotes
// included; nothing else of the shell is used by the guide).
func (g *guideCluster) words(t *testing.T, cmd string) []string {
	t.Helper()
	for _, values := range []map[string]string{guideValues, g.values} {
		for k, v := range values {
			cmd = strings.ReplaceAll(cmd, k, v)
		}
	}
	cmd = strings.ReplaceAll(cmd, "AC…", guideAccountSID)
	cmd = strings.ReplaceAll(cmd, "…", guideAuthToken)
	if m := regexp.MustCompile(`<[^>]+>`).FindString(cmd); m != "" {
		t.Fatalf("the guide's command %q has a placeholder %s this walk has no value for", cmd, m)
	}
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range cmd {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in the guide's command %q", cmd)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// run runs a command of the guide in the repository's root, against the walk's control plane
// (KUBECONFIG), with helm's configuration kept apart from the user's; env adds to or overrides
// the environment. It fails the test unless the command succeeds, and returns its output.
func (g *guideCluster) run(t *testing.T, name string, args []string, env []string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	var environ []string
	for _, e := range os.Environ() {
		// Nothing of a calling make (`make test`) reaches the guide's make: its command-line
		// variables and a KUBECTL would override the guide's.
		name, _, _ := strings.Cut(e, "=")
		switch name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "KUBECTL", "IMG":
			continue
		}
		environ = append(environ, e)
	}
	cmd.Env = append(environ,
		"KUBECONFIG="+g.kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	t.Logf("%s %s (%s)", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out.String()
}

// finalizeNamespaces plays the namespace controller's last step for the named namespace: once it
// is being deleted, its finalizer is removed. It stops when the returned function is called.
func (g *guideCluster) finalizeNamespaces(t *testing.T, name string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = scenario.Poll(ctx, time.Minute, func() (bool, error) {
			ns, err := g.clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil || ns.DeletionTimestamp == nil || len(ns.Spec.Finalizers) == 0 {
				return false, nil
			}
			ns.Spec.Finalizers = nil
			_, _ = g.clientset.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
			return false, nil
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// checkHelmRelease checks what the guide's helm install made, against the values it set.
func checkHelmRelease(t *testing.T, g *guideCluster, release, namespace string, set map[string]string) {
	t.Helper()
	ctx := context.Background()
	mine := client.MatchingLabels{"app.kubernetes.io/instance": release}
	checkCRDs(t, g, "after helm install")

	var deps appsv1.DeploymentList
	must(t, g.client.List(ctx, &deps, client.InNamespace(namespace), mine))
	if len(deps.Items) != 1 {
		t.Fatalf("%d Deployments of release %s in %s, want 1", len(deps.Items), release, namespace)
	}
	dep := deps.Items[0]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment %s: replicas %v, want the 2 the guide promises", dep.Name, dep.Spec.Replicas)
	}
	if len(dep.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Errorf("Deployment %s has no topology spread, which the guide promises", dep.Name)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if want := set["image.repository"] + ":" + set["image.tag"]; c.Image != want {
		t.Errorf("Deployment %s runs image %q, want %q", dep.Name, c.Image, want)
	}
	for _, want := range []string{"--webhook-public-url=" + set["webhook.publicURL"], "--leader-elect"} {
		if !slices.ContainsFunc(c.Args, func(a string) bool { return a == want || strings.HasPrefix(a, want+"=") }) {
			t.Errorf("Deployment %s's args %v lack %s", dep.Name, c.Args, want)
		}
	}

	var pdbs policyv1.PodDisruptionBudgetList
	must(t, g.client.List(ctx, &pdbs, client.InNamespace(namespace), mine))
	if len(pdbs.Items) == 0 {
		t.Error("no PodDisruptionBudget, which the guide promises")
	}

	var svcs corev1.ServiceList
	must(t, g.client.List(ctx, &svcs, client.InNamespace(namespace), mine))
	webhookService := ""
	for _, s := range svcs.Items {
		for _, p := range s.Spec.Ports {
			if p.Name == "http" && p.AppProtocol != nil && *p.AppProtocol == "http" {
				webhookService = s.Name
			}
		}
	}
	if webhookService == "" {
		t.Errorf("no Service of the release has a port named http (appProtocol http) for the Ingress: %d Services", len(svcs.Items))
	}

	var ings networkingv1.IngressList
	must(t, g.client.List(ctx, &ings, client.InNamespace(namespace), mine))
	if len(ings.Items) != 1 {
		t.Fatalf("%d Ingresses of the release, want 1", len(ings.Items))
	}
	ing := ings.Items[0]
	host := set["ingress.host"]
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != set["ingress.className"] {
		t.Errorf("Ingress %s: class %v, want %s", ing.Name, ing.Spec.IngressClassName, set["ingress.className"])
	}
	if ing.Annotations["cert-manager.io/cluster-issuer"] != set["ingress.tls.clusterIssuer"] {
		t.Errorf("Ingress %s: annotations %v, want cert-manager.io/cluster-issuer %s", ing.Name, ing.Annotations, set["ingress.tls.clusterIssuer"])
	}
	if len(ing.Spec.TLS) != 1 || !slices.Contains(ing.Spec.TLS[0].Hosts, host) || ing.Spec.TLS[0].SecretName == "" {
		t.Errorf("Ingress %s: TLS %+v, want %s with a Secret for cert-manager to fill", ing.Name, ing.Spec.TLS, host)
	}
	var paths []string
	for _, r := range ing.Spec.Rules {
		if r.Host != host || r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service != nil && p.Backend.Service.Name == webhookService && p.Backend.Service.Port.Name == "http" {
				paths = append(paths, p.Path)
			}
		}
	}
	slices.Sort(paths)
	if !slices.Equal(paths, []string{"/flex/", "/twilio/"}) {
		t.Errorf("Ingress %s routes %v of %s to the webhook Service's http port, want /flex/ and /twilio/", ing.Name, paths, host)
	}

	// The RBAC: a ServiceAccount the Deployment runs as, bound cluster-wide (the default mode)
	// and to the leader-election Role in the namespace.
	sa := dep.Spec.Template.Spec.ServiceAccountName
	must(t, g.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: sa}, &corev1.ServiceAccount{}))
	boundTo := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == namespace
		})
	}
	var crbs rbacv1.ClusterRoleBindingList
	must(t, g.client.List(ctx, &crbs, mine))
	if !slices.ContainsFunc(crbs.Items, func(b rbacv1.ClusterRoleBinding) bool { return boundTo(b.Subjects) }) {
		t.Errorf("no ClusterRoleBinding of the release binds ServiceAccount %s/%s", namespace, sa)
	}
	var rbs rbacv1.RoleBindingList
	must(t, g.client.List(ctx, &rbs, client.InNamespace(namespace), mine))
	if !slices.ContainsFunc(rbs.Items, func(b rbacv1.RoleBinding) bool { return boundTo(b.Subjects) }) {
		t.Errorf("no RoleBinding of the release in %s binds ServiceAccount %s", namespace, sa)
	}
}

// checkKustomizeDeploy checks what make deploy made in flex-operator-system.
func checkKustomizeDeploy(t *testing.T, g *guideCluster, img string) {
	t.Helper()
	ctx := context.Background()
	const namespace = "flex-operator-system"
	checkCRDs(t, g, "after make deploy")
	var dep appsv1.Deployment
	must(t, g.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "flex-operator-controller-manager"}, &dep))
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != img {
		t.Errorf("make deploy IMG=%s: the Deployment runs %q", img, got)
	}
	// The guide has the user set --webhook-public-url in config/manager/manager.yaml: it is there
	// to be set.
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--webhook-public-url=") }) {
		t.Errorf("the kustomize Deployment has no --webhook-public-url for the user to set: %v", dep.Spec.Template.Spec.Containers[0].Args)
	}
	var svc corev1.Service
	must(t, g.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "flex-operator-webhook"}, &svc))
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http" }) {
		t.Errorf("Service flex-operator-webhook (the guide routes the Ingress to its port http) has ports %+v", svc.Spec.Ports)
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	var crbs rbacv1.ClusterRoleBindingList
	must(t, g.client.List(ctx, &crbs))
	bound := slices.ContainsFunc(crbs.Items, func(b rbacv1.ClusterRoleBinding) bool {
		return slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Name == sa && s.Namespace == namespace })
	})
	if !bound {
		t.Errorf("no ClusterRoleBinding binds the Deployment's ServiceAccount %s/%s", namespace, sa)
	}
}

// checkCRDs checks the project's CRDs are installed and established.
func checkCRDs(t *testing.T, g *guideCluster, when string) {
	t.Helper()
	for _, plural := range []string{"conferencerecoverypolicies", "conferencerecoveries", "workeractivitypolicies"} {
		var crd apiextensionsv1.CustomResourceDefinition
		name := plural + "." + v1alpha1.GroupVersion.Group
		if err := g.client.Get(context.Background(), types.NamespacedName{Name: name}, &crd); err != nil {
			t.Errorf("%s: CRD %s: %v", when, name, err)
			continue
		}
		established := slices.ContainsFunc(crd.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
			return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
		})
		if !established {
			// Established follows creation within moments.
			err := scenario.Poll(context.Background(), scenario.Wait, func() (bool, error) {
				if err := g.client.Get(context.Background(), types.NamespacedName{Name: name}, &crd); err != nil {
					return false, err
				}
				return slices.ContainsFunc(crd.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
					return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
				}), nil
			})
			if err != nil {
				t.Errorf("%s: CRD %s not established: %v", when, name, err)
			}
		}
	}
}

// flagValue returns the value of the first of names in args ("" when absent).
func flagValue(args []string, names ...string) string {
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v
			}
		}
	}
	return ""
}

// toolsPath is a directory holding only the named programs (links to the ones on the test's PATH),
// for a PATH without kubectl.
func toolsPath(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			t.Fatalf("%s is needed on PATH: %v", n, err)
		}
		must(t, os.Symlink(p, filepath.Join(dir, n)))
	}
	return dir
}

// kubectlWrapper is a directory with a kubectl that records each call and runs real; calls
// returns the calls so far.
func kubectlWrapper(t *testing.T, real string) (dir string, calls func() []string) {
	t.Helper()
	dir = t.TempDir()
	log := filepath.Join(dir, "calls.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", log, real)
	must(t, os.WriteFile(filepath.Join(dir, "kubectl"), []byte(script), 0o755))
	return dir, func() []string {
		b, err := os.ReadFile(log)
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}
