#!/usr/bin/env bash
# Builds the artefacts of one release into dist/<version>/, all carrying that version:
#
#   flex-operator-<version>-image-<arch>.tar   the container image, an OCI image layout (make image)
#   install.yaml                               CRDs and operator for kubectl apply (make build-installer)
#   flex-operator-<chart version>.tgz          the Helm chart, version and appVersion set (helm package)
#   plugin-flex-operator-<plugin version>.tgz  the Flex plugin bundle (npm run build) and its package.json
#   CHANGELOG.md                               the version's section of CHANGELOG.md
#   SHA256SUMS                                 the checksums of the files above
#
# Usage: make release VERSION=v1.2.3 (or hack/release.sh v1.2.3). The version is a tag, v and semver;
# the chart and the plugin take it without the v. CHANGELOG.md must have a "## v1.2.3" section and
# flex-plugin/package.json the version 1.2.3 (commit both before tagging), so that what is released
# is what the tag holds. Environment: MAKE, HELM (the helm binary; `make helm` builds it), IMAGE_REPO
# (default ghcr.io/flexoperator/flex-operator), GOARCH, and RELEASE_REUSE_NODE_MODULES=1 to build the
# plugin with the node_modules already installed instead of a fresh `npm ci`.
set -euo pipefail

die() {
	echo "release: $*" >&2
	exit 1
}

version=${1:-}
[[ $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]] ||
	die "VERSION must be a release tag, v and a semantic version (v1.2.3, v1.2.3-rc.1), not \"$version\""
semver=${version#v}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
make=${MAKE:-make}
helm=${HELM:-}
repo=${IMAGE_REPO:-ghcr.io/flexoperator/flex-operator}
arch=${GOARCH:-$(go env GOARCH)}
img="$repo:$version"
out="dist/$version"

# Check every input before building anything: a release stopped half-way leaves nothing to clean.
[[ -n $helm && -x $helm ]] || die "HELM must name the helm binary (make helm builds it into bin/)"
command -v npm >/dev/null || die "npm (with Node 18 or later) is required to build the Flex plugin"
changelog=$(awk -v heading="## $version" '
	$0 == heading || index($0, heading " ") == 1 { found = 1; print; next }
	found && /^## / { exit }
	found { print }
' CHANGELOG.md)
[[ -n $changelog ]] || die "CHANGELOG.md has no \"## $version\" section: write what the release changes, then run again"
plugin_version=$(node -p 'require("./flex-plugin/package.json").version')
[[ $plugin_version == "$semver" ]] ||
	die "flex-plugin/package.json is at $plugin_version, not $semver: run (cd flex-plugin && npm version $semver --no-git-tag-version) and commit"

rm -rf "$out"
mkdir -p "$out"
printf '%s\n' "$changelog" >"$out/CHANGELOG.md"

echo "release $version: image"
"$make" image VERSION="$version" IMG="$img" GOARCH="$arch" IMAGE_TAR="$root/$out/flex-operator-$version-image-$arch.tar"

echo "release $version: install.yaml"
# build-installer needs the public URL; a release is for every installation, so its install.yaml
# carries the placeholder (config/manager's) unless PUBLIC_URL is given: an installer replaces it
# (README, Deploy: `make build-installer PUBLIC_URL=...` writes one with theirs).
"$make" build-installer VERSION="$version" IMG="$img" PUBLIC_URL="${PUBLIC_URL:-https://flex-operator.example.com}"
mv dist/install.yaml "$out/install.yaml"

echo "release $version: chart"
"$helm" package charts/flex-operator --version "$semver" --app-version "$version" --destination "$out" >/dev/null

echo "release $version: Flex plugin"
(
	cd flex-plugin
	if [[ ${RELEASE_REUSE_NODE_MODULES:-} == 1 && -d node_modules ]]; then
		echo "release: building the plugin with the node_modules already installed (RELEASE_REUSE_NODE_MODULES=1)"
	else
		npm ci --prefer-offline --no-audit --no-fund
	fi
	npm run build
)
# The bundle, its source map and the licences of what it bundles, with the package.json it was built from.
bundle=$(cd flex-plugin/build && ls plugin-flex-operator.js*)
# shellcheck disable=SC2086 # the bundle's file names have no spaces
tar -czf "$out/plugin-flex-operator-$semver.tgz" -C flex-plugin package.json -C build $bundle

(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "release $version: done, in $out:"
ls -l "$out"
