package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// repoRoot is the repository's top directory, seen from this package.
var repoRoot = filepath.Join("..", "..")

// projectFile is the part of kubebuilder's PROJECT file the layout depends on.
type projectFile struct {
	Layout    []string          `json:"layout"`
	Repo      string            `json:"repo"`
	Resources []projectResource `json:"resources"`
}

type projectResource struct {
	Kind       string `json:"kind"`
	Path       string `json:"path"`
	Controller bool   `json:"controller"`
}

// kubebuilderMarkers are where `kubebuilder create api` writes a new kind's import, scheme
// registration and controller set-up in cmd/main.go; without them it writes nothing there.
var kubebuilderMarkers = []string{
	"// +kubebuilder:scaffold:imports",
	"// +kubebuilder:scaffold:scheme",
	"// +kubebuilder:scaffold:builder",
}

func readProject(t *testing.T, root string) projectFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "PROJECT"))
	if err != nil {
		t.Fatal(err)
	}
	var p projectFile
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatalf("PROJECT: %v", err)
	}
	return p
}

// TestProjectFileMatchesLayout checks that the PROJECT file describes the code as it is laid out:
// kubebuilder's go/v4 layout, every kind where its path says, every controller in
// internal/controller under the name the scaffold gives it, and the scaffold markers in
// cmd/main.go.
func TestProjectFileMatchesLayout(t *testing.T) {
	p := readProject(t, repoRoot)
	if !slices.Contains(p.Layout, "go.kubebuilder.io/v4") {
		t.Fatalf("PROJECT layout %v, want go.kubebuilder.io/v4", p.Layout)
	}
	if len(p.Resources) == 0 {
		t.Fatal("PROJECT lists no resources")
	}
	main, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "main.go"))
	if err != nil {
		t.Fatalf("go/v4 layout: %v", err)
	}
	for _, m := range kubebuilderMarkers {
		if !bytes.Contains(main, []byte(m)) {
			t.Errorf("cmd/main.go lacks %q: kubebuilder create api would not wire a new kind there", m)
		}
	}
	for _, r := range p.Resources {
		apiDir, ok := strings.CutPrefix(r.Path, p.Repo+"/")
		if !ok {
			t.Errorf("%s: path %q is not in repo %q", r.Kind, r.Path, p.Repo)
			continue
		}
		if !dirDeclares(t, filepath.Join(repoRoot, apiDir), regexp.MustCompile(`(?m)^type `+r.Kind+` struct`)) {
			t.Errorf("%s: no `type %s struct` in %s", r.Kind, r.Kind, apiDir)
		}
		if !r.Controller {
			continue
		}
		file := filepath.Join(repoRoot, "internal", "controller", strings.ToLower(r.Kind)+"_controller.go")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: the scaffold's controller file: %v", r.Kind, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^type ` + r.Kind + `Reconciler struct`).Match(b) {
			t.Errorf("%s: %s does not declare %sReconciler", r.Kind, file, r.Kind)
		}
	}
}

func dirDeclares(t *testing.T, dir string, re *regexp.Regexp) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if re.Match(b) {
			return true
		}
	}
	return false
}

// TestKubebuilderCreateAPILandsInTheLayout runs the real kubebuilder (KUBEBUILDER, built by
// `make kubebuilder` from its Go module) on a copy of the repository and checks that a new kind
// lands beside the existing ones and builds: the type in api/v1alpha1, the reconciler in
// internal/controller, its wiring in cmd/main.go, its CRD from `make manifests`.
func TestKubebuilderCreateAPILandsInTheLayout(t *testing.T) {
	kb := os.Getenv("KUBEBUILDER")
	if kb == "" {
		t.Fatal("KUBEBUILDER is not set: run the tests with `make test` (it builds kubebuilder into bin/)")
	}
	kb, err := filepath.Abs(kb)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	work := copyTrackedFiles(t, root)

	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = work
		// make generate/manifests use the repository's bin/ (controller-gen is built there).
		cmd.Env = append(os.Environ(), "LOCALBIN="+filepath.Join(root, "bin"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run(kb, "create", "api", "--group", "contactcenter", "--version", "v1alpha1", "--kind", "Probe",
		"--resource", "--controller")

	for _, f := range []string{"api/v1alpha1/probe_types.go", "internal/controller/probe_controller.go"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("kubebuilder create api did not write %s: %v", f, err)
		}
	}
	main, err := os.ReadFile(filepath.Join(work, "cmd", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(main, []byte("(&controller.ProbeReconciler{")) {
		t.Errorf("cmd/main.go does not set up the new controller:\n%s", main)
	}
	if !slices.ContainsFunc(readProject(t, work).Resources, func(r projectResource) bool { return r.Kind == "Probe" }) {
		t.Error("PROJECT does not list the new kind")
	}
	// The operator, the new kind and its reconciler compile together; the scaffold's Ginkgo test
	// stub is not part of this (the project's tests use the testing package; README "Layout").
	run("go", "build", "./...")
	run("make", "manifests")
	if _, err := os.Stat(filepath.Join(work, "config", "crd", "bases", "contactcenter.flexoperator.io_probes.yaml")); err != nil {
		t.Errorf("make manifests wrote no CRD for the new kind: %v", err)
	}
}

// copyTrackedFiles copies the files git tracks (without the Flex plugin, which Go never reads)
// into a temporary directory.
func copyTrackedFiles(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	work := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" || strings.HasPrefix(f, "flex-plugin/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(work, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return work
}
