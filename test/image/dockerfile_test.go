package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var repoRoot = filepath.Join("..", "..")

// dockerfileStage is one FROM of the Dockerfile, with its image reference as the build resolves it
// (build args replaced by their defaults).
type dockerfileStage struct {
	line  int
	image string
}

// readDockerfile returns the Dockerfile's global build args (their defaults) and its FROM lines.
func readDockerfile(t *testing.T, path string) (map[string]string, []dockerfileStage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	args := map[string]string{}
	var stages []dockerfileStage
	stageNames := map[string]bool{}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			// Only the args before the first FROM can be used in a FROM.
			if len(stages) == 0 && len(fields) == 2 {
				k, v, _ := strings.Cut(fields[1], "=")
				args[k] = v
			}
		case "FROM":
			rest := fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				t.Fatalf("%s:%d: FROM without an image", path, n)
			}
			image := expand(rest[0])
			if !stageNames[image] { // not an earlier stage of this Dockerfile
				stages = append(stages, dockerfileStage{line: n, image: image})
			}
			if len(rest) == 3 && strings.EqualFold(rest[1], "AS") {
				stageNames[rest[2]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return args, stages
}

var pinnedImage = regexp.MustCompile(`^[^@\s]+:[A-Za-z0-9_][A-Za-z0-9_.-]*@sha256:[0-9a-f]{64}$`)

// TestDockerfileBaseImagesPinned: every image the Dockerfile builds FROM is pinned by digest, as
// <image>:<tag>@sha256:<64 hex digits> (the tag for readers and `make pin-base-images`, the
// digest for the build), with the build args at their defaults; and the Go of the builder image
// is at least go.mod's go line, since the image's GOTOOLCHAIN=local makes an older Go refuse the
// module.
func TestDockerfileBaseImagesPinned(t *testing.T) {
	args, stages := readDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(stages) == 0 {
		t.Fatal("the Dockerfile builds FROM no image")
	}
	for _, s := range stages {
		if !pinnedImage.MatchString(s.image) {
			t.Errorf("Dockerfile:%d: FROM %q is not <image>:<tag>@sha256:<digest>", s.line, s.image)
			continue
		}
		tagged, digest, _ := strings.Cut(s.image, "@")
		if _, err := gname.NewTag(tagged, gname.WeakValidation); err != nil {
			t.Errorf("Dockerfile:%d: FROM %q: %v", s.line, s.image, err)
		}
		if _, err := v1.NewHash(digest); err != nil {
			t.Errorf("Dockerfile:%d: FROM %q: %v", s.line, s.image, err)
		}
	}

	golang, ok := args["GOLANG_IMAGE"]
	if !ok {
		t.Fatal("the Dockerfile has no GOLANG_IMAGE build arg (the builder image)")
	}
	tag := strings.TrimPrefix(strings.SplitN(golang, "@", 2)[0], "golang:")
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(string(b))
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if !version.IsValid("go"+tag) || version.Compare("go"+tag, "go"+goLine[1]) < 0 {
		t.Errorf("GOLANG_IMAGE %s: its tag %q is not a Go release at least go.mod's go %s", golang, tag, goLine[1])
	}
}

// TestPinBaseImagesRewritesPins runs hack/pin-base-images.sh (`make pin-base-images`) on a copy of
// the Dockerfile, with a crane that answers a digest of its own per tag: each base image's line
// becomes its tag at that digest and nothing else changes; when a tag does not resolve, the
// Dockerfile is left as it was and the script fails saying which.
func TestPinBaseImagesRewritesPins(t *testing.T) {
	original, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dockerfile := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(dockerfile, original, 0o644); err != nil {
		t.Fatal(err)
	}
	// The stand-in for `crane digest <ref>`: a digest that depends on the ref, or a failure for
	// refs containing "unreachable".
	crane := filepath.Join(dir, "crane")
	script := "#!/bin/sh\n[ \"$1\" = digest ] || exit 2\ncase $2 in *unreachable*) echo \"no route to host\" >&2; exit 1;; esac\n" +
		"printf 'sha256:%s\\n' \"$(printf '%s' \"$2\" | sha256sum | cut -d' ' -f1)\"\n"
	if err := os.WriteFile(crane, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() (string, error) {
		cmd := exec.Command("bash", filepath.Join(repoRoot, "hack", "pin-base-images.sh"), dockerfile)
		cmd.Env = append(os.Environ(), "CRANE="+crane)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	if out, err := run(); err != nil {
		t.Fatalf("pin-base-images.sh: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	before, after := strings.Split(string(original), "\n"), strings.Split(string(got), "\n")
	if len(before) != len(after) {
		t.Fatalf("the Dockerfile went from %d lines to %d", len(before), len(after))
	}
	pinned := 0
	for i := range before {
		k, ref, isPin := strings.Cut(strings.TrimPrefix(before[i], "ARG "), "=")
		if !strings.HasPrefix(before[i], "ARG ") || !isPin || !strings.HasSuffix(k, "_IMAGE") {
			if after[i] != before[i] {
				t.Errorf("line %d changed: %q → %q", i+1, before[i], after[i])
			}
			continue
		}
		tagged := strings.SplitN(ref, "@", 2)[0]
		sum := sha256.Sum256([]byte(tagged))
		if want := "ARG " + k + "=" + tagged + "@sha256:" + hex.EncodeToString(sum[:]); after[i] != want {
			t.Errorf("line %d: %q, want %q", i+1, after[i], want)
		}
		pinned++
	}
	if pinned < 2 {
		t.Errorf("%d base image pins rewritten, want the builder's and the runtime's", pinned)
	}

	// A tag that does not resolve: nothing is written.
	broken := strings.Replace(string(got), "ARG BASE_IMAGE=", "ARG BASE_IMAGE=unreachable.example/", 1)
	if err := os.WriteFile(dockerfile, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run()
	if err == nil || !strings.Contains(out, "cannot resolve unreachable.example/") {
		t.Errorf("pin-base-images.sh with an unreachable tag: %v\n%s\nwant a failure naming it", err, out)
	}
	if now, _ := os.ReadFile(dockerfile); string(now) != broken {
		t.Error("pin-base-images.sh changed the Dockerfile although a tag did not resolve")
	}
}
