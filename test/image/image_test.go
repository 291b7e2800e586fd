// Package image checks the container image `make image` writes: its configuration (non-root user,
// the manager as entrypoint), its file system (the binary and the user's passwd entry; no shell),
// that the binary in it runs, and that the tarball is an OCI image layout that Docker's older
// loader reads as the same image. IMAGE_TAR names the tarball (`make test` builds it and sets it).
// It also checks the Dockerfile (`make docker-build`): its base images pinned by digest, and the
// script that refreshes the pins (dockerfile_test.go).
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

	gname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func imageTar(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IMAGE_TAR")
	if p == "" {
		t.Fatal("IMAGE_TAR is not set: run the tests with `make test` (it builds the image with `make image`)")
	}
	return p
}

// openImage reads the image as an OCI image layout (podman, skopeo, containerd and Docker 25 do):
// the tarball unpacked, its index holding exactly one image manifest.
func openImage(t *testing.T) v1.Image {
	t.Helper()
	img, _ := openLayout(t)
	return img
}

func openLayout(t *testing.T) (v1.Image, v1.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	unpack(t, imageTar(t), dir)
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || !strings.Contains(string(b), `"imageLayoutVersion"`) {
		t.Fatalf("not an OCI image layout: oci-layout file %q, %v", b, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index manifests %+v, want one OCI image manifest", im.Manifests)
	}
	desc := im.Manifests[0]
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, desc
}

// unpack extracts the tarball's regular files and directories into dir.
func unpack(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("entry %q leaves the archive", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("entry %q of type %c: an image layout holds files and directories only", h.Name, h.Typeflag)
		}
	}
}

// TestImageArchiveFormats checks the tarball names the image the way each loader looks for it:
// containerd by io.containerd.image.name, the OCI spec by ref.name, Docker before 25 through
// manifest.json, which must lead to the very same image (same digest).
func TestImageArchiveFormats(t *testing.T) {
	img, desc := openLayout(t)
	name := desc.Annotations["io.containerd.image.name"]
	ref, err := gname.NewTag(name, gname.StrictValidation)
	if err != nil {
		t.Fatalf("io.containerd.image.name %q: %v", name, err)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != ref.TagStr() {
		t.Errorf("org.opencontainers.image.ref.name %q, want the tag %q", got, ref.TagStr())
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index platform %+v, want linux/%s", desc.Platform, runtime.GOARCH)
	}
	legacy, err := tarball.ImageFromPath(imageTar(t), &ref)
	if err != nil {
		t.Fatalf("manifest.json (docker load before 25) does not name %s: %v", ref, err)
	}
	// manifest.json holds no manifest (the loader writes its own), so the same image means the
	// same config (Docker's image ID) and the same layers.
	for what, get := range map[string]func(v1.Image) (any, error){
		"config": func(i v1.Image) (any, error) { return i.ConfigName() },
		"layers": func(i v1.Image) (any, error) {
			m, err := i.Manifest()
			if err != nil {
				return nil, err
			}
			var ds []string
			for _, l := range m.Layers {
				ds = append(ds, l.Digest.String())
			}
			return strings.Join(ds, ","), nil
		},
	} {
		want, err := get(img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := get(legacy)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("manifest.json leads to %s %v, the OCI index to %v", what, got, want)
		}
	}
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %q (%v), want %s", mt, err, types.OCIManifestSchema1)
	}
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
