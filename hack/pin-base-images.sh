#!/usr/bin/env bash
# Re-pins the base images of a Dockerfile (`make pin-base-images`): for each default of a global
# `ARG <NAME>_IMAGE=<image>:<tag>[@sha256:<digest>]`, asks the registry (crane digest, with the
# crane of $CRANE) for the digest the tag names now, the digest of its multi-platform index, and
# rewrites the line as <image>:<tag>@sha256:<that digest>. The tag itself is kept: change it first
# to move to another release. Nothing is written unless every tag resolves.
set -euo pipefail

dockerfile=${1:?usage: CRANE=<crane> pin-base-images.sh <Dockerfile>}
crane=${CRANE:?set CRANE to a crane binary (make pin-base-images builds one)}

pins=$(grep -E '^ARG [A-Z0-9_]+_IMAGE=' "$dockerfile" || true)
if [ -z "$pins" ]; then
  echo "pin-base-images: $dockerfile has no ARG <NAME>_IMAGE=<image> line to pin" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
cp "$dockerfile" "$out"
while IFS= read -r line; do
  arg=${line#ARG }
  name=${arg%%=*}
  ref=${arg#*=}
  tagged=${ref%%@*}
  case $tagged in
    *:*) ;;
    *) echo "pin-base-images: $name=$ref names no tag; write <image>:<tag>" >&2; exit 1 ;;
  esac
  if ! digest=$("$crane" digest "$tagged"); then
    echo "pin-base-images: cannot resolve $tagged (registry access is needed)" >&2
    exit 1
  fi
  if ! [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-base-images: crane digest $tagged answered \"$digest\", not a sha256 digest" >&2
    exit 1
  fi
  new="ARG $name=$tagged@$digest"
  # Whole-line replacement, matched literally.
  awk -v old="$line" -v new="$new" '$0 == old { print new; next } { print }' "$out" > "$out.next"
  mv "$out.next" "$out"
  if [ "$ref" = "$tagged@$digest" ]; then
    echo "$name: $tagged@$digest (unchanged)"
  else
    echo "$name: $tagged@$digest (was $ref)"
  fi
done <<< "$pins"
cat "$out" > "$dockerfile"
