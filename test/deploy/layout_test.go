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
// registration and controller set-up in the command (main.go here, reached through the temporary
// cmd/main.go that hack/createapi makes); without them it writes nothing there.
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

// checkLayout checks the top level the project's design card names: the command in main.go
// with kubebuilder's markers, the reconcilers in controllers/ (package controllers) under the
// names kubebuilder gives them, the webhook server in webhookserver/, and none of kubebuilder's
// own places (cmd/, internal/controller, internal/webhookserver).
func checkLayout(t *testing.T, root string, p projectFile) {
	t.Helper()
	main, err := os.ReadFile(filepath.Join(root, "main.go"))
	if err != nil {
		t.Fatalf("the command: %v", err)
	}
	if !regexp.MustCompile(`(?m)^package main$`).Match(main) {
		t.Error("main.go is not package main")
	}
	for _, m := range kubebuilderMarkers {
		if !bytes.Contains(main, []byte(m)) {
			t.Errorf("main.go lacks %q: kubebuilder create api would not wire a new kind there", m)
		}
	}
	for _, gone := range []string{"cmd", "internal/controller", "internal/webhookserver"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("%s exists; the layout has main.go, controllers/ and webhookserver/ instead", gone)
		}
	}
	for dir, pkg := range map[string]string{"controllers": "controllers", "webhookserver": "webhookserver"} {
		if !dirDeclares(t, filepath.Join(root, dir), regexp.MustCompile(`(?m)^package `+pkg+`$`)) {
			t.Errorf("%s/ holds no package %s", dir, pkg)
		}
	}
	for _, r := range p.Resources {
		if !r.Controller {
			continue
		}
		file := filepath.Join(root, "controllers", strings.ToLower(r.Kind)+"_controller.go")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: the reconciler's file: %v", r.Kind, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^type ` + r.Kind + `Reconciler struct`).Match(b) {
			t.Errorf("%s: %s does not declare %sReconciler", r.Kind, file, r.Kind)
		}
	}
}

// apiKinds lists the kinds api/ declares: the types marked as root objects, without their lists.
func apiKinds(t *testing.T, root string) map[string]string {
	t.Helper()
	kinds := map[string]string{}
	rootType := regexp.MustCompile(`(?m)^// \+kubebuilder:object:root=true\n(?://.*\n)*type (\w+) struct`)
	err := filepath.WalkDir(filepath.Join(root, "api"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range rootType.FindAllSubmatch(b, -1) {
			if kind := string(m[1]); !strings.HasSuffix(kind, "List") {
				rel, _ := filepath.Rel(root, filepath.Dir(path))
				kinds[kind] = filepath.ToSlash(rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// TestProjectFileMatchesLayout checks that the PROJECT file tells kubebuilder the truth: its
// go/v4 layout, every kind in api/ listed once with the package it is in, nothing listed that
// api/ does not declare, and the layout as the README describes it.
func TestProjectFileMatchesLayout(t *testing.T) {
	p := readProject(t, repoRoot)
	if !slices.Contains(p.Layout, "go.kubebuilder.io/v4") {
		t.Fatalf("PROJECT layout %v, want go.kubebuilder.io/v4", p.Layout)
	}
	kinds := apiKinds(t, repoRoot)
	if len(kinds) == 0 {
		t.Fatal("api/ declares no kinds")
	}
	listed := map[string]bool{}
	for _, r := range p.Resources {
		if listed[r.Kind] {
			t.Errorf("PROJECT lists %s twice", r.Kind)
		}
		listed[r.Kind] = true
		dir, ok := kinds[r.Kind]
		if !ok {
			t.Errorf("PROJECT lists %s, which api/ does not declare", r.Kind)
			continue
		}
		if want := p.Repo + "/" + dir; r.Path != want {
			t.Errorf("PROJECT: %s path %q, but the type is in %q", r.Kind, r.Path, want)
		}
	}
	for kind := range kinds {
		if !listed[kind] {
			t.Errorf("api/ declares %s, which PROJECT does not list", kind)
		}
	}
	checkLayout(t, repoRoot, p)
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

// TestKubebuilderCreateAPILandsInTheLayout runs the project's documented command for a new kind
// (hack/createapi: the real kubebuilder, KUBEBUILDER, built by `make kubebuilder` from its Go
// module, then the move into this layout) on a copy of the repository, and checks that the kind
// lands beside the existing ones and builds: the type in api/v1alpha1, the reconciler in
// controllers/, its set-up in app.NewManager, main.go as it was, its CRD from `make manifests`.
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
	mainBefore, err := os.ReadFile(filepath.Join(work, "main.go"))
	if err != nil {
		t.Fatal(err)
	}

	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = work
		// make generate/manifests use the repository's bin/ (controller-gen is built there).
		cmd.Env = append(os.Environ(), "LOCALBIN="+filepath.Join(root, "bin"), "KUBEBUILDER="+kb)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "run", "./hack/createapi", "--group", "contactcenter", "--version", "v1alpha1", "--kind", "Probe",
		"--resource", "--controller")

	for _, f := range []string{"api/v1alpha1/probe_types.go", "controllers/probe_controller.go"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("the new kind did not land at %s: %v", f, err)
		}
	}
	p := readProject(t, work)
	if !slices.ContainsFunc(p.Resources, func(r projectResource) bool { return r.Kind == "Probe" && r.Controller }) {
		t.Error("PROJECT does not list the new kind with its controller")
	}
	checkLayout(t, work, p)
	mainAfter, err := os.ReadFile(filepath.Join(work, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mainBefore, mainAfter) {
		t.Errorf("main.go changed; the set-up belongs in app.NewManager:\n%s", mainAfter)
	}
	app, err := os.ReadFile(filepath.Join(work, "internal", "app", "app.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(app, []byte("(&controllers.ProbeReconciler{")) {
		t.Errorf("app.NewManager does not set up the new controller:\n%s", app)
	}
	// The operator, the new kind and its reconciler compile and vet together (the Ginkgo stubs
	// kubebuilder writes are gone: the project's tests use the testing package).
	run("go", "build", "./...")
	run("go", "vet", "./controllers/", "./internal/app/", ".")
	run("make", "manifests")
	if _, err := os.Stat(filepath.Join(work, "config", "crd", "bases", "contactcenter.flexoperator.io_probes.yaml")); err != nil {
		t.Errorf("make manifests wrote no CRD for the new kind: %v", err)
	}
}

// copyTrackedFiles copies the files git tracks (without the Flex plugin, which Go never reads)
// into a temporary directory.
func copyTrackedFiles(t *testing.T, root string) string {
	t.Helper()
	return copyTracked(t, root, false)
}

// copyTracked copies the files git tracks into a temporary directory, the Flex plugin's only when
// withPlugin.
func copyTracked(t *testing.T, root string, withPlugin bool) string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	work := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" || (!withPlugin && strings.HasPrefix(f, "flex-plugin/")) {
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
