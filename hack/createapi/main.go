// Command createapi adds a kind to flex-operator the way kubebuilder adds one, then puts what
// kubebuilder wrote into this project's layout.
//
//	go run ./hack/createapi --group contactcenter --version v1alpha1 --kind Probe   (or: make create-api KIND=Probe)
//
// kubebuilder's go/v4 plugin insists on cmd/main.go and writes reconcilers into
// internal/controller. This project keeps the command in main.go and the reconcilers in
// controllers/ (README "Layout and dependencies"). createapi therefore
//  1. points a temporary cmd/main.go at main.go and runs `kubebuilder create api` with the
//     arguments it was given (KUBEBUILDER names the binary; `make create-api` builds it);
//  2. moves each reconciler kubebuilder wrote in internal/controller into controllers/ (package
//     controllers) and deletes the Ginkgo stubs beside it (this project's tests use the testing
//     package against the test control plane);
//  3. moves the reconciler's set-up that kubebuilder inserted into main.go into app.NewManager
//     (internal/app), at its scaffold marker, so that the end-to-end tests, which start
//     app.NewManager, run the new controller as the binary does.
//
// It refuses to start when cmd/ or internal/controller exist, and removes the temporary cmd/ on
// every exit. With -adopt-only it skips step 1 (kubebuilder already ran with a cmd/main.go of
// its own link).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// appMarker is where step 3 inserts a reconciler's set-up in internal/app/app.go.
const appMarker = "// +flexoperator:scaffold:controllers"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "createapi: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	adoptOnly := len(args) > 0 && args[0] == "-adopt-only"
	if adoptOnly {
		args = args[1:]
	} else if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: go run ./hack/createapi --group contactcenter --version v1alpha1 --kind <Kind> [other `kubebuilder create api` flags]")
		return errors.New("no arguments for kubebuilder create api")
	}
	module, err := modulePath()
	if err != nil {
		return err
	}
	if !adoptOnly {
		if err := kubebuilder(args); err != nil {
			return err
		}
	}
	moved, err := moveReconcilers()
	if err != nil {
		return err
	}
	setups, err := takeSetups(module)
	if err != nil {
		return err
	}
	if err := addSetups(setups); err != nil {
		return err
	}
	for _, f := range moved {
		fmt.Printf("createapi: %s\n", f)
	}
	fmt.Printf("createapi: %d controller set-up(s) moved from main.go into internal/app/app.go\n", len(setups))
	fmt.Println("createapi: next, write the kind's test in controllers/ (the testing package, as the others) and run `make manifests`")
	return nil
}

func modulePath() (string, error) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		return "", fmt.Errorf("run from the repository's root: %w", err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		return "", errors.New("go.mod names no module")
	}
	return string(m[1]), nil
}

// kubebuilder runs `kubebuilder create api` with a cmd/main.go that is main.go.
func kubebuilder(args []string) error {
	for _, d := range []string{"cmd", filepath.Join("internal", "controller")} {
		if _, err := os.Stat(d); err == nil {
			return fmt.Errorf("%s exists: this layout has none (remove it, or finish an earlier run with -adopt-only)", d)
		}
	}
	bin := os.Getenv("KUBEBUILDER")
	if bin == "" {
		bin = "kubebuilder"
	}
	if err := os.Mkdir("cmd", 0o755); err != nil {
		return err
	}
	defer os.RemoveAll("cmd")
	if err := os.Symlink(filepath.Join("..", "main.go"), filepath.Join("cmd", "main.go")); err != nil {
		return err
	}
	cmd := exec.Command(bin, append([]string{"create", "api"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s create api: %w", bin, err)
	}
	return nil
}

// moveReconcilers moves internal/controller's reconcilers into controllers/ and deletes its
// Ginkgo stubs. It returns what it did, a line each.
func moveReconcilers() ([]string, error) {
	src := filepath.Join("internal", "controller")
	entries, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []string
	for _, e := range entries {
		from := filepath.Join(src, e.Name())
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			return done, fmt.Errorf("%s: not a Go file kubebuilder writes; move it by hand", from)
		}
		if strings.HasSuffix(e.Name(), "_test.go") {
			if err := os.Remove(from); err != nil {
				return done, err
			}
			done = append(done, "deleted the Ginkgo stub "+from)
			continue
		}
		to := filepath.Join("controllers", e.Name())
		if _, err := os.Stat(to); err == nil {
			return done, fmt.Errorf("%s exists; not overwriting it with %s", to, from)
		}
		b, err := os.ReadFile(from)
		if err != nil {
			return done, err
		}
		b = regexp.MustCompile(`(?m)^package controller$`).ReplaceAll(b, []byte("package controllers"))
		if err := os.WriteFile(to, b, 0o644); err != nil {
			return done, err
		}
		if err := os.Remove(from); err != nil {
			return done, err
		}
		done = append(done, fmt.Sprintf("moved %s to %s", from, to))
	}
	return done, os.Remove(src)
}

// setupBlock matches the set-up kubebuilder inserts at the builder marker.
var setupBlock = regexp.MustCompile(`(?ms)^\tif err := \(&controller\.(\w+)Reconciler\{\n(.*?)\n\t\}\)\.SetupWithManager\(mgr\); err != nil \{\n.*?\n\t\}\n`)

type setup struct {
	kind   string
	fields string
}

// takeSetups removes kubebuilder's controller set-ups and the internal/controller import from
// main.go and returns the set-ups.
func takeSetups(module string) ([]setup, error) {
	b, err := os.ReadFile("main.go")
	if err != nil {
		return nil, err
	}
	var out []setup
	for _, m := range setupBlock.FindAllSubmatch(b, -1) {
		out = append(out, setup{kind: string(m[1]), fields: string(m[2])})
	}
	b = setupBlock.ReplaceAll(b, nil)
	b = bytes.ReplaceAll(b, []byte("\t\""+module+"/internal/controller\"\n"), nil)
	if bytes.Contains(b, []byte("controller.")) && bytes.Contains(b, []byte(module+"/internal/controller")) {
		return nil, errors.New("main.go still uses internal/controller after the set-ups were taken out; move the rest by hand")
	}
	b, err = format.Source(b)
	if err != nil {
		return nil, fmt.Errorf("main.go: %w", err)
	}
	return out, os.WriteFile("main.go", b, 0o644)
}

// addSetups inserts the set-ups into app.NewManager, returning an error as the others do.
func addSetups(setups []setup) error {
	if len(setups) == 0 {
		return nil
	}
	path := filepath.Join("internal", "app", "app.go")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte(appMarker))
	if i < 0 {
		return fmt.Errorf("%s lacks the marker %q", path, appMarker)
	}
	// Insert before the marker's line, with its indentation.
	lineStart := bytes.LastIndexByte(b[:i], '\n') + 1
	var code strings.Builder
	for _, s := range setups {
		fmt.Fprintf(&code, "\tif err := (&controllers.%sReconciler{\n%s\n\t}).SetupWithManager(mgr); err != nil {\n\t\treturn nil, fmt.Errorf(\"set up %s controller: %%w\", err)\n\t}\n", s.kind, s.fields, s.kind)
	}
	out := append([]byte{}, b[:lineStart]...)
	out = append(out, code.String()...)
	out = append(out, b[lineStart:]...)
	out, err = format.Source(out)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}
