package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestReleaseCommand runs `make release` as a releaser would, on a copy of the repository: it
// refuses a version it cannot ship (malformed, without a changelog section, a plugin at another
// version) before building anything, then builds every artefact of the version, and the versions
// recorded in the artefacts — the image's tag and label, install.yaml's image, the chart's version
// and appVersion, the plugin's package — all agree, as do the checksums.
func TestReleaseCommand(t *testing.T) {
	helm := helmBin(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm (with Node 18 or later) is required: the release builds the Flex plugin")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	work := copyTracked(t, root, true)
	// The packages of the plugin are the work tree's, installed from the same lock file (a
	// second `npm ci` would test npm, not the release); the release builds the bundle afresh.
	if _, err := os.Stat(filepath.Join(root, "flex-plugin", "node_modules")); err == nil {
		if err := os.Symlink(filepath.Join(root, "flex-plugin", "node_modules"), filepath.Join(work, "flex-plugin", "node_modules")); err != nil {
			t.Fatal(err)
		}
	}
	makeArgs := []string{"HELM=" + helm}
	// The tools the work tree has already built (bin/ is not tracked), so the copy does not build
	// them again.
	if gens, _ := filepath.Glob(filepath.Join(root, "bin", "controller-gen-*")); len(gens) > 0 {
		makeArgs = append(makeArgs, "CONTROLLER_GEN="+gens[0])
	}
	release := func(version string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", append([]string{"release", "VERSION=" + version}, makeArgs...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "RELEASE_REUSE_NODE_MODULES=1", "MAKEFLAGS=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Versions it cannot ship are refused before anything is built.
	for _, tc := range []struct{ version, message string }{
		{"0.2.0", `VERSION must be a release tag, v and a semantic version`},
		{"v9.9.9", `CHANGELOG.md has no "## v9.9.9" section`},
		{"v0.2.0", `flex-plugin/package.json is at 0.1.0, not 0.2.0`},
	} {
		out, err := release(tc.version)
		if err == nil || !strings.Contains(out, tc.message) {
			t.Fatalf("make release VERSION=%s: %v, want a refusal saying %q; output:\n%s", tc.version, err, tc.message, out)
		}
		if _, err := os.Stat(filepath.Join(work, "dist", tc.version)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("make release VERSION=%s was refused but left dist/%s behind", tc.version, tc.version)
		}
	}

	// The releaser sets the plugin's version, as the refusal says, and releases.
	const version, semver = "v0.2.0", "0.2.0"
	pkgPath := filepath.Join(work, "flex-plugin", "package.json")
	pkg, err := os.ReadFile(pkgPath)
	if err != nil {
		t.Fatal(err)
	}
	pkg = regexp.MustCompile(`"version": "[^"]*"`).ReplaceAll(pkg, []byte(`"version": "`+semver+`"`))
	if err := os.WriteFile(pkgPath, pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := release(version); err != nil {
		t.Fatalf("make release VERSION=%s: %v\n%s", version, err, out)
	}

	dist := filepath.Join(work, "dist", version)
	imageTar := "flex-operator-" + version + "-image-" + goArch(t) + ".tar"
	want := []string{"CHANGELOG.md", "SHA256SUMS", imageTar, "flex-operator-" + semver + ".tgz", "install.yaml", "plugin-flex-operator-" + semver + ".tgz"}
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("dist/%s holds %v, want %v", version, got, want)
	}

	t.Run("README", func(t *testing.T) {
		// The README's "Releasing" section gives this command and names every artefact it builds.
		readme := readFile(t, filepath.Join(root, "README.md"))
		start := strings.Index(readme, "\n## Releasing\n")
		if start < 0 {
			t.Fatal("README.md has no Releasing section")
		}
		section, _, _ := strings.Cut(readme[start+1:], "\n## ")
		if !strings.Contains(section, "make release VERSION="+version+"\n") {
			t.Errorf("README's Releasing section does not give `make release VERSION=%s`", version)
		}
		for _, name := range want {
			if !strings.Contains(section, "`"+strings.Replace(name, goArch(t), "<arch>", 1)+"`") {
				t.Errorf("README's Releasing section does not name %s", name)
			}
		}
	})

	t.Run("checksums", func(t *testing.T) {
		sums := readFile(t, filepath.Join(dist, "SHA256SUMS"))
		var listed []string
		sc := bufio.NewScanner(strings.NewReader(sums))
		for sc.Scan() {
			sum, name, ok := strings.Cut(sc.Text(), "  ")
			if !ok {
				t.Fatalf("SHA256SUMS line %q is not \"<sum>  <file>\"", sc.Text())
			}
			b, err := os.ReadFile(filepath.Join(dist, name))
			if err != nil {
				t.Fatal(err)
			}
			actual := sha256.Sum256(b)
			if hex.EncodeToString(actual[:]) != sum {
				t.Errorf("SHA256SUMS says %s of %s, the file's is %x", sum, name, actual)
			}
			listed = append(listed, name)
		}
		wantListed := slices.DeleteFunc(slices.Clone(want), func(n string) bool { return n == "SHA256SUMS" })
		slices.Sort(listed)
		if !slices.Equal(listed, wantListed) {
			t.Errorf("SHA256SUMS lists %v, want %v", listed, wantListed)
		}
	})

	t.Run("versions agree", func(t *testing.T) {
		changelog := readFile(t, filepath.Join(dist, "CHANGELOG.md"))
		if first, _, _ := strings.Cut(changelog, "\n"); !strings.HasPrefix(first+" ", "## "+version+" ") {
			t.Errorf("the changelog section starts %q, want the heading of %s", first, version)
		}
		if strings.Contains(changelog, "## v0.1.0") {
			t.Errorf("the changelog section runs into the next one:\n%s", changelog)
		}

		// The image: its tag (OCI ref.name and the legacy RepoTags) and its version label.
		files := tarFiles(t, filepath.Join(dist, imageTar), false)
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		mustUnmarshal(t, files["index.json"], &index)
		if len(index.Manifests) != 1 || index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
			t.Errorf("the image's index names %+v, want the tag %s", index.Manifests, version)
		}
		var legacy []struct {
			Config   string
			RepoTags []string
		}
		mustUnmarshal(t, files["manifest.json"], &legacy)
		image := "ghcr.io/flexoperator/flex-operator:" + version
		if len(legacy) != 1 || !slices.Equal(legacy[0].RepoTags, []string{image}) {
			t.Fatalf("the image's manifest.json names %+v, want %s", legacy, image)
		}
		var config struct {
			Config struct {
				Labels map[string]string
			} `json:"config"`
		}
		mustUnmarshal(t, files[legacy[0].Config], &config)
		if v := config.Config.Labels["org.opencontainers.image.version"]; v != version {
			t.Errorf("the image's version label is %q, want %s", v, version)
		}

		// install.yaml runs that image, and no other of the operator.
		images := regexp.MustCompile(`(?m)^\s*image:\s*"?(\S+?)"?\s*$`).FindAllStringSubmatch(readFile(t, filepath.Join(dist, "install.yaml")), -1)
		if len(images) == 0 {
			t.Fatal("install.yaml runs no image")
		}
		for _, m := range images {
			if m[1] != image {
				t.Errorf("install.yaml runs %s, want %s", m[1], image)
			}
		}

		// The chart: its version and appVersion.
		chart := tarFiles(t, filepath.Join(dist, "flex-operator-"+semver+".tgz"), true)
		var meta struct {
			Version    string `json:"version"`
			AppVersion string `json:"appVersion"`
		}
		if err := yaml.Unmarshal(chart["flex-operator/Chart.yaml"], &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Version != semver || meta.AppVersion != version {
			t.Errorf("the chart is version %q, appVersion %q; want %s and %s", meta.Version, meta.AppVersion, semver, version)
		}

		// The plugin: its package and the bundle built from it.
		plugin := tarFiles(t, filepath.Join(dist, "plugin-flex-operator-"+semver+".tgz"), true)
		var pluginPkg struct{ Name, Version string }
		mustUnmarshal(t, plugin["package.json"], &pluginPkg)
		if pluginPkg.Name != "plugin-flex-operator" || pluginPkg.Version != semver {
			t.Errorf("the plugin archive holds %s@%s, want plugin-flex-operator@%s", pluginPkg.Name, pluginPkg.Version, semver)
		}
		bundle := plugin["plugin-flex-operator.js"]
		if len(bundle) == 0 || !bytes.Contains(bundle, []byte(`"`+semver+`"`)) && !bytes.Contains(bundle, []byte(`'`+semver+`'`)) {
			t.Errorf("the plugin bundle (%d bytes) does not carry the version %s", len(bundle), semver)
		}
		if len(plugin["plugin-flex-operator.js.map"]) == 0 || len(plugin["plugin-flex-operator.js.LICENSE.txt"]) == 0 {
			t.Error("the plugin archive lacks the source map or the licences of what it bundles")
		}
	})
}

func goArch(t *testing.T) string {
	t.Helper()
	if a := os.Getenv("GOARCH"); a != "" {
		return a
	}
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %.200s", err, b)
	}
}

// tarFiles reads the regular files of a tarball (gzipped when gz), by name without a leading "./".
func tarFiles(t *testing.T, path string, gz bool) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
}
