// Package image checks the container image `make image` writes: its configuration (non-root user,
// the manager as entrypoint), its file system (the binary and the user's passwd entry; no shell),
// and that the binary in it runs. IMAGE_TAR names the tarball (`make test` builds it and sets it).
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func openImage(t *testing.T) v1.Image {
	t.Helper()
	p := os.Getenv("IMAGE_TAR")
	if p == "" {
		t.Fatal("IMAGE_TAR is not set: run the tests with `make test` (it builds the image with `make image`)")
	}
	img, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	return img
}

func TestImageConfig(t *testing.T) {
	img := openImage(t)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cfg.Config.User)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/manager" {
		t.Errorf("entrypoint %q, want /manager", got)
	}
	if len(cfg.Config.Cmd) != 0 {
		t.Errorf("cmd %q, want none", cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture == "" {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if cfg.Config.Labels["org.opencontainers.image.version"] == "" {
		t.Error("no org.opencontainers.image.version label")
	}
}

// files reads the image's flattened file system.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out["/"+strings.TrimSuffix(strings.TrimPrefix(path.Clean("/"+h.Name), "/"), "/")] = h
		}
		_ = rc.Close()
	}
	return out
}

func TestImageHasNoShell(t *testing.T) {
	fs := files(t, openImage(t))
	if _, ok := fs["/manager"]; !ok {
		t.Fatalf("no /manager in the image: %v", keys(fs))
	}
	shells := map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "busybox": true}
	for name, h := range fs {
		if shells[path.Base(name)] {
			t.Errorf("the image has a shell: %s", name)
		}
		if h.Typeflag == tar.TypeReg && h.Mode&0o111 != 0 && name != "/manager" {
			t.Errorf("the image has an executable besides the manager: %s", name)
		}
	}
	if _, ok := fs["/etc/passwd"]; !ok {
		t.Error("no /etc/passwd naming the non-root user")
	}
}

// TestImageBinaryRuns extracts the manager and runs `--version`; the binary must be static, as the
// image has no dynamic loader or libc.
func TestImageBinaryRuns(t *testing.T) {
	img := openImage(t)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var binary []byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if path.Clean("/"+h.Name) == "/manager" {
				if binary, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = rc.Close()
	}
	if binary == nil {
		t.Fatal("no /manager in the image")
	}
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("/manager is not an ELF binary: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/manager is dynamically linked; the image has no loader (build with CGO_ENABLED=0)")
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != runtime.GOARCH {
		t.Skipf("image is for %s, this machine runs %s", cfg.Architecture, runtime.GOARCH)
	}
	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("/manager --version: %v\n%s", err, out)
	}
	want := "flex-operator " + cfg.Config.Labels["org.opencontainers.image.version"] + " "
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("/manager --version printed %q, want it to start with %q (the image's version label)", out, want)
	}
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
