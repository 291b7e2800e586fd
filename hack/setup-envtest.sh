#!/usr/bin/env bash
# Builds the envtest control plane (etcd, kube-apiserver, kubectl) from pinned Go module sources
# into the directory setup-envtest would use, so that `make test` and `make demo` work on machines
# that cannot download prebuilt binaries. Prints the asset directory on stdout; progress on stderr.
# A binary that is already present is not rebuilt. Arguments name the binaries to build (etcd,
# kube-apiserver, kubectl); none means all three. `make install`/`deploy` build only kubectl.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${K8S_VERSION}-linux-amd64"
mkdir -p "$assets"

say() { echo "setup-envtest: $*" >&2; }

# The Kubernetes binaries carry the version they are built from, as release builds do: the API
# server reports it at /version (Helm checks a chart's kubeVersion against it) and kubectl prints it.
major=${K8S_VERSION%%.*}
minor=${K8S_VERSION#*.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

build() { # build <name> <tools module dir> <package> [command printing the version]
  local name=$1 dir=$2 pkg=$3 version_cmd=${4:-}
  if [ -x "$assets/$name" ]; then
    local reported=""
    if [ -n "$version_cmd" ]; then
      reported=$("$assets/$name" $version_cmd 2>/dev/null || true)
    fi
    if [ -z "$version_cmd" ] || [[ $reported == *"v$K8S_VERSION"* ]]; then
      say "$name present in $assets"
      return
    fi
    say "$name in $assets does not report v$K8S_VERSION (built before versions were stamped): building it again"
  fi
  say "building $name from $pkg (first build of kube-apiserver takes about 10 minutes on 2 cores)"
  local start=$SECONDS ldflags="-s -w"
  if [ -n "$version_cmd" ]; then
    ldflags+="$stamp"
  fi
  (cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$assets/$name.tmp" "$pkg")
  mv "$assets/$name.tmp" "$assets/$name"
  say "built $name in $((SECONDS - start))s"
}

wanted() { # wanted <name>: asked for on the command line, or nothing was
  [ ${#want[@]} -eq 0 ] || [[ " ${want[*]} " == *" $1 "* ]]
}
want=("$@")
for name in "${want[@]}"; do
  case $name in
    etcd|kube-apiserver|kubectl) ;;
    *) echo "setup-envtest: unknown binary $name (etcd, kube-apiserver or kubectl)" >&2; exit 2 ;;
  esac
done

if wanted etcd; then build etcd etcd go.etcd.io/etcd/server/v3; fi
if wanted kube-apiserver; then build kube-apiserver envtest k8s.io/kubernetes/cmd/kube-apiserver --version; fi
if wanted kubectl; then build kubectl envtest k8s.io/kubernetes/cmd/kubectl "version --client"; fi
echo "$assets"
