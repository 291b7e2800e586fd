# Builds the operator image with a container tool (`make docker-build`, `make docker-buildx` for
# several platforms). `make image` writes the same image without a daemon (and without these base
# images: one layer holding the static binary).
#
# The base images are pinned by digest: the digest of each tag's multi-platform index, so one pin
# serves every platform (buildx picks each platform's manifest from it). The tag stays for readers;
# with a digest the tag is not looked up. `make pin-base-images` re-resolves each tag below to the
# digest it names today and rewrites the pin (it needs registry access; change the tag first to
# move to another Go release). GOLANG_IMAGE=... and BASE_IMAGE=... on the make line override them.
#
# Where the pins come from (no registry was reachable where they were written; each is the digest
# published for the tag, not one computed here):
# - golang:1.26.8: docker-library/repo-info, repos/golang/remote/1.26.8.md at commit 274d39a5
#   (the index of the 1 September 2026 build, GOLANG_VERSION=1.26.8, 16 platforms), the digest
#   other public Dockerfiles pin for golang:1.26 and golang:1.26.8. The Go of the tag must be at
#   least go.mod's go line (1.26.7): the image sets GOTOOLCHAIN=local, so an older Go stops at
#   `go mod download` (test/image checks it).
# - gcr.io/distroless/static:nonroot (static-debian13:nonroot): the digest a registry pull of the
#   tag reported in a public record dated late September 2026, and that public Dockerfiles pin for
#   both tags.
ARG GOLANG_IMAGE=golang:1.26.8@sha256:9d2f36f06329b2a141b9db99ffa32765cf695ee57b813ca29e245e8670bcbfff
ARG BASE_IMAGE=gcr.io/distroless/static:nonroot@sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3

FROM --platform=$BUILDPLATFORM ${GOLANG_IMAGE} AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=devel
ARG REVISION=unknown

WORKDIR /workspace
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY webhookserver/ webhookserver/
COPY internal/ internal/

# Static: the runtime image has no libc.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags "-s -w -X github.com/flexoperator/flex-operator/internal/version.Version=${VERSION} -X github.com/flexoperator/flex-operator/internal/version.Revision=${REVISION}" \
    -o manager .

# distroless/static: CA certificates and a passwd entry for the non-root user, no shell.
FROM ${BASE_IMAGE}
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
