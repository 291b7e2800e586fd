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

// walk calls fn for every entry of every layer of the image, in order, with the entry's clean
// absolute path and a reader of its content.
func walk(t *testing.T, img v1.Image, fn func(name string, h *tar.Header, content io.Reader)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
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
			fn(path.Clean("/"+h.Name), h, tr)
		}
		_ = rc.Close()
	}
}

// files reads the image's flattened file system.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	walk(t, img, func(name string, h *tar.Header, _ io.Reader) { out[name] = h })
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
	var binary []byte
	walk(t, img, func(name string, _ *tar.Header, content io.Reader) {
		if name != "/manager" {
			return
		}
		var err error
		if binary, err = io.ReadAll(content); err != nil {
			t.Fatal(err)
		}
	})
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
