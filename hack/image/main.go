// Command image writes the operator's container image as a tarball without a container daemon
// (`make image`): one layer holding the static manager binary and the passwd/group entries of the
// non-root user it runs as, nothing else (no shell, no package manager).
//
// The tarball is an OCI image layout (oci-layout, index.json, blobs/sha256/…), the format of
// `docker buildx build --output type=oci`: `podman load`, `skopeo copy oci-archive:…`,
// `kind load image-archive` (containerd's import) and `docker load` (Docker 25 and later) take it.
// It also carries a manifest.json naming the same blobs, which is what older `docker load` reads.
// go-containerregistry builds the image and writes the layout; archive/tar builds the layer's
// file system and packs the layout directory.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user distroless' "nonroot" images use; the Deployment's securityContext names it too.
const (
	nonRootUID = 65532
	binaryPath = "/manager"
)

func main() {
	binary := flag.String("binary", "", "the static manager binary (linux, CGO_ENABLED=0)")
	out := flag.String("out", "", "the tarball to write")
	tag := flag.String("tag", "controller:latest", "the image reference recorded in the tarball")
	arch := flag.String("arch", "amd64", "the binary's GOARCH")
	version := flag.String("version", "", "the version label")
	revision := flag.String("revision", "", "the revision label")
	flag.Parse()
	if *binary == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: image -binary bin/manager-linux-amd64 -out bin/flex-operator-image.tar [-tag ref]")
		os.Exit(2)
	}
	if err := write(*binary, *out, *tag, *arch, *version, *revision); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func write(binary, out, tag, arch, version, revision string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	files, err := rootFS(bin)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.User = fmt.Sprintf("%d:%d", nonRootUID, nonRootUID)
	cfg.Config.Entrypoint = []string{binaryPath}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "flex-operator",
		"org.opencontainers.image.source":   "https://github.com/flexoperator/flex-operator",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Same inputs, same image digest.
	img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()})
	if err != nil {
		return err
	}
	return writeArchive(out, ref, img, arch)
}

// writeArchive writes img as an OCI image layout tarball at out, named ref.
func writeArchive(out string, ref name.Tag, img v1.Image, arch string) error {
	dir, err := os.MkdirTemp("", "flex-operator-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	// containerd (kind, nerdctl) names the image from io.containerd.image.name; the OCI spec's
	// ref.name holds the tag alone.
	if err := p.AppendImage(img,
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}),
		layout.WithAnnotations(map[string]string{
			"io.containerd.image.name":          ref.Name(),
			"org.opencontainers.image.ref.name": ref.TagStr(),
		})); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	// Docker before 25 loads only what manifest.json names: the same blobs, by path.
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	legacy := tarball.Descriptor{Config: blobPath(cfgName), RepoTags: []string{ref.Name()}}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		legacy.Layers = append(legacy.Layers, blobPath(d))
	}
	m, err := json.Marshal(tarball.Manifest{legacy})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644); err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pack(f, dir); err != nil {
		f.Close()
		return fmt.Errorf("archive: %w", err)
	}
	return f.Close()
}

// pack writes the directory as a tar stream with the same owner, modes and time on every entry,
// so the tarball depends on the image alone.
func pack(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// rootFS is the layer's file system: the binary, and /etc/passwd and /etc/group naming the
// non-root user so that tools showing the user have a name for it. Times are zero so the layer's
// digest depends on the binary alone.
func rootFS(binary []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		body []byte
		dir  bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonRootUID, nonRootUID)},
		{name: "etc/group", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", nonRootUID)},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: binaryPath[1:], mode: 0o755, body: binary},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
