# Builds the operator image with a container tool (`make docker-build`, `make docker-buildx` for
# several platforms). `make image` writes the same image without a daemon.
#
# The base images are NOT pinned by digest in this file: the digests could not be looked up and
# checked where it was written (no registry access), and an unverified digest is worse than a tag.
# Pin them when you build: `make docker-build GOLANG_IMAGE=golang:1.26@sha256:<digest>
# BASE_IMAGE=gcr.io/distroless/static:nonroot@sha256:<digest>`, with the digests that
# `crane digest <image>` or `docker buildx imagetools inspect <image>` prints.
ARG GOLANG_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static:nonroot

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
