# flex-operator Makefile. `make help` lists the targets.

# Tools are pinned here and built into ./bin from the Go module proxy (nothing prebuilt is downloaded).
CONTROLLER_TOOLS_VERSION ?= v0.21.0
GOLANGCI_LINT_VERSION ?= v2.15.0
ENVTEST_K8S_VERSION ?= 1.37.2
# kubebuilder: test/deploy checks that `kubebuilder create api` lands where the code is.
KUBEBUILDER_VERSION ?= v4.16.0
# crane (`make pin-base-images`) is go-containerregistry's, at the version go.mod already requires.
CRANE_VERSION := $(shell awk '$$1 == "github.com/google/go-containerregistry" { print $$2 }' go.mod)
# helm is built from hack/tools/helm/go.mod, which pins its version.
HELM_VERSION := $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v4" { print $$3 }' hack/tools/helm/go.mod)

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
KUBEBUILDER ?= $(LOCALBIN)/kubebuilder-$(KUBEBUILDER_VERSION)
CRANE ?= $(LOCALBIN)/crane-$(CRANE_VERSION)
ENVTEST_ASSETS = $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/kubebuilder-envtest/k8s/$(ENVTEST_K8S_VERSION)-linux-amd64
# install/deploy use the kubectl on PATH; without one, the test control plane's, of which only
# kubectl is built (`make envtest-kubectl`) rather than the whole control plane (`make envtest`,
# about 10 minutes on 2 cores).
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),$(ENVTEST_ASSETS)/kubectl)
KUBECTL_DEP = $(if $(shell command -v kubectl 2>/dev/null),,envtest-kubectl)

# The image: `make docker-build docker-push IMG=...` with a container daemon, `make image` without.
# The version defaults to the chart's appVersion, so that `make image` tags the image the chart
# installs by default (image.tag empty: appVersion); REVISION records the commit.
IMG ?= ghcr.io/flexoperator/flex-operator:$(VERSION)
VERSION ?= $(shell awk '$$1 == "appVersion:" { gsub(/"/, "", $$2); print $$2 }' charts/flex-operator/Chart.yaml)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GOARCH ?= $(shell go env GOARCH)
PLATFORMS ?= linux/amd64,linux/arm64
LDFLAGS = -s -w -X github.com/flexoperator/flex-operator/internal/version.Version=$(VERSION) -X github.com/flexoperator/flex-operator/internal/version.Revision=$(REVISION)
IMAGE_TAR ?= $(LOCALBIN)/flex-operator-image-$(GOARCH).tar
CONTAINER_TOOL ?= docker
CHART_DIR = charts/flex-operator
# The Dockerfile's base images are pinned by digest there (`make pin-base-images` refreshes the
# pins); GOLANG_IMAGE=... and BASE_IMAGE=... override them for one build.
GOLANG_IMAGE ?=
BASE_IMAGE ?=
IMAGE_BUILD_ARGS = --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) $(if $(GOLANG_IMAGE),--build-arg GOLANG_IMAGE=$(GOLANG_IMAGE)) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))

GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*## "} /^##@/ { printf "\n%s\n", substr($$0, 5) } /^[a-zA-Z_-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC from the kubebuilder markers, and copy them into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." paths="./webhookserver/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The chart installs the same CRDs and grants the same rules (test/chart checks they agree).
	rm -f $(CHART_DIR)/crds/*.yaml && cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: envtest
envtest: ## Build the test control plane (etcd, kube-apiserver, kubectl) from source, once.
	@bash hack/setup-envtest.sh >/dev/null

.PHONY: envtest-kubectl
envtest-kubectl: ## Build only the test control plane's kubectl from source, once (install/deploy without a kubectl on PATH).
	@bash hack/setup-envtest.sh kubectl >/dev/null

.PHONY: test
test: manifests generate fmt vet envtest helm image kubebuilder plugin ## Run the unit, envtest, chart, image and end-to-end tests, and the Flex plugin's.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" HELM="$(HELM)" IMAGE_TAR="$(IMAGE_TAR)" KUBEBUILDER="$(KUBEBUILDER)" go test $(GO_TEST_FLAGS) ./...

.PHONY: plugin
plugin: ## Install, test and build the Flex companion plugin (flex-plugin/; needs Node and npm).
	@command -v npm >/dev/null || { echo "make plugin: npm (with Node 18 or later) is required to test and build flex-plugin/" >&2; exit 1; }
	cd flex-plugin && npm ci --prefer-offline --no-audit --no-fund && npm test && npm run build

.PHONY: check-generated
check-generated: manifests generate ## Fail if generated files differ from what is committed.
	@git diff --exit-code -- api config charts || (echo "generated files are stale: run make generate manifests and commit" && exit 1)

##@ Build

.PHONY: build
build: ## Build the manager binary, version stamped.
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/manager .

.PHONY: image
image: ## Write the image (tag IMG, version VERSION) as an OCI image layout tarball, bin/flex-operator-image-<arch>.tar (no container daemon needed).
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) go build -trimpath -ldflags "$(LDFLAGS)" -o $(LOCALBIN)/manager-linux-$(GOARCH) .
	go run ./hack/image -binary $(LOCALBIN)/manager-linux-$(GOARCH) -arch $(GOARCH) -out $(IMAGE_TAR) -tag $(IMG) -version $(VERSION) -revision $(REVISION)

.PHONY: docker-build
docker-build: ## Build the image with a container tool (CONTAINER_TOOL, default docker).
	$(CONTAINER_TOOL) build $(IMAGE_BUILD_ARGS) -t $(IMG) .

.PHONY: pin-base-images
pin-base-images: $(CRANE) ## Re-pin the Dockerfile's base images to the digests their tags name now (needs registry access).
	CRANE="$(CRANE)" bash hack/pin-base-images.sh Dockerfile

.PHONY: docker-push
docker-push: ## Push the image.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: docker-buildx
docker-buildx: ## Build and push the image for PLATFORMS (linux/amd64,linux/arm64) with buildx.
	- $(CONTAINER_TOOL) buildx create --name flex-operator-builder
	$(CONTAINER_TOOL) buildx use flex-operator-builder
	$(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) $(IMAGE_BUILD_ARGS) -t $(IMG) .
	- $(CONTAINER_TOOL) buildx rm flex-operator-builder

.PHONY: build-installer
build-installer: manifests $(KUBECTL_DEP) check-public-url ## Write dist/install.yaml: the CRDs and the operator (image IMG, PUBLIC_URL), for kubectl apply.
	@mkdir -p $(dir $(INSTALLER))
	$(KUBECTL) kustomize config/default | $(SET_IMAGE_AND_URL) > $(INSTALLER)

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run . --webhook-bind-address=:9443

.PHONY: demo
demo: envtest ## Play a call whose agent's page refreshes, and watch the operator recover it.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./hack/demo

.PHONY: twiliosim
twiliosim: ## Run the Twilio simulator standalone.
	go run ./hack/twiliosim

##@ Release

.PHONY: release
release: $(HELM) ## Build a release's artefacts, with checksums and changelog, into dist/VERSION/ (VERSION=v1.2.3; README "Releasing").
	MAKE="$(MAKE)" HELM="$(HELM)" GOARCH="$(GOARCH)" $(if $(IMAGE_REPO),IMAGE_REPO="$(IMAGE_REPO)") bash hack/release.sh "$(VERSION)"

##@ Deployment

.PHONY: install
install: $(KUBECTL_DEP) ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: $(KUBECTL_DEP) ## Remove the CRDs from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: $(KUBECTL_DEP) check-public-url ## Deploy the operator (image IMG, PUBLIC_URL) with the default overlay.
	$(KUBECTL) kustomize config/default | $(SET_IMAGE_AND_URL) | $(KUBECTL) apply --server-side -f -

# PUBLIC_URL: the URL at which Twilio reaches the webhook server (--webhook-public-url), replacing
# config/manager's placeholder. https only, unless ALLOW_INSECURE_PUBLIC_URL=true (local
# development: the https Flex page cannot call an http URL).
PUBLIC_URL ?=
# Where build-installer writes.
INSTALLER ?= dist/install.yaml
ALLOW_INSECURE_PUBLIC_URL ?= false
SET_IMAGE_AND_URL = sed -e 's\#controller:latest\#$(IMG)\#' -e 's\#--webhook-public-url=https://flex-operator.example.com\#--webhook-public-url=$(PUBLIC_URL)\#'

.PHONY: check-public-url
check-public-url:
	@case "$(PUBLIC_URL)" in \
	  https://?*) ;; \
	  http://?*) test "$(ALLOW_INSECURE_PUBLIC_URL)" = true || { echo "PUBLIC_URL=$(PUBLIC_URL) is http: browsers block it from the https Flex page; use https, or ALLOW_INSECURE_PUBLIC_URL=true for local development" >&2; exit 1; } ;; \
	  *) echo "set PUBLIC_URL to the https URL at which Twilio reaches the webhook server, e.g. make $(MAKECMDGOALS) PUBLIC_URL=https://flex-operator.example.com" >&2; exit 1 ;; \
	esac

.PHONY: undeploy
undeploy: $(KUBECTL_DEP) ## Remove the operator from the cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: helm
helm: $(HELM) ## Build helm into bin/ from its Go module (bin/helm links to bin/helm-<version>).
	@ln -sf $(notdir $(HELM)) $(LOCALBIN)/helm

.PHONY: kubebuilder
kubebuilder: $(KUBEBUILDER) ## Build kubebuilder into bin/ from its Go module.

.PHONY: create-api
create-api: $(KUBEBUILDER) ## Add a kind: kubebuilder create api, then into this layout (KIND=<Kind>; README "Layout").
	@test -n "$(KIND)" || { echo "make create-api: set KIND, e.g. make create-api KIND=Probe" >&2; exit 1; }
	KUBEBUILDER=$(KUBEBUILDER) go run ./hack/createapi --group contactcenter --version v1alpha1 --kind $(KIND) --resource --controller

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(KUBEBUILDER):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kubebuilder/v4@$(KUBEBUILDER_VERSION)
	mv $(LOCALBIN)/kubebuilder $@

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

$(CRANE):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)
	mv $(LOCALBIN)/crane $@

$(HELM):
	@mkdir -p $(LOCALBIN)
	cd hack/tools/helm && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $@ helm.sh/helm/v4/cmd/helm
