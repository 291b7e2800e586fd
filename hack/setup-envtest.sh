#!/usr/bin/env bash
# Builds the envtest control plane (etcd, kube-apiserver, kubectl) from pinned Go module sources
# into the directory setup-envtest would use, so that `make test` and `make demo` work on machines
# that cannot download prebuilt binaries. Prints the asset directory on stdout; progress on stderr.
# A binary that is already present is not rebuilt.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${K8S_VERSION}-linux-amd64"
mkdir -p "$assets"

say() { echo "setup-envtest: $*" >&2; }

build() { # build <name> <tools module dir> <package>
  local name=$1 dir=$2 pkg=$3
  if [ -x "$assets/$name" ]; then
    say "$name present in $assets"
    return
  fi
  say "building $name from $pkg (first build of kube-apiserver takes about 10 minutes on 2 cores)"
  local start=$SECONDS
  (cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$assets/$name.tmp" "$pkg")
  mv "$assets/$name.tmp" "$assets/$name"
  say "built $name in $((SECONDS - start))s"
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver envtest k8s.io/kubernetes/cmd/kube-apiserver
build kubectl envtest k8s.io/kubernetes/cmd/kubectl
echo "$assets"
