# flex-operator Makefile. `make help` lists the targets.

# Tools are pinned here and built into ./bin from the Go module proxy (nothing prebuilt is downloaded).
CONTROLLER_TOOLS_VERSION ?= v0.21.0
GOLANGCI_LINT_VERSION ?= v2.15.0
ENVTEST_K8S_VERSION ?= 1.37.2

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBECTL ?= $(ENVTEST_ASSETS)/kubectl
ENVTEST_ASSETS = $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/kubebuilder-envtest/k8s/$(ENVTEST_K8S_VERSION)-linux-amd64

IMG ?= ghcr.io/flexoperator/flex-operator:latest
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: all
all: build

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." paths="./webhookserver/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

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

.PHONY: test
test: manifests generate fmt vet envtest plugin ## Run the unit, envtest and end-to-end tests, and the Flex plugin's.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) ./...

.PHONY: plugin
plugin: ## Install, test and build the Flex companion plugin (flex-plugin/; needs Node and npm).
	@command -v npm >/dev/null || { echo "make plugin: npm (with Node 18 or later) is required to test and build flex-plugin/" >&2; exit 1; }
	cd flex-plugin && npm ci --prefer-offline --no-audit --no-fund && npm test && npm run build

.PHONY: check-generated
check-generated: manifests generate ## Fail if generated files differ from what is committed.
	@git diff --exit-code -- api config || (echo "generated files are stale: run make generate manifests and commit" && exit 1)

##@ Build

.PHONY: build
build: ## Build the manager binary.
	go build -o bin/manager .

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run . --webhook-bind-address=:9443

.PHONY: demo
demo: envtest ## Play a call whose agent's page refreshes, and watch the operator recover it.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./hack/demo

.PHONY: twiliosim
twiliosim: ## Run the Twilio simulator standalone.
	go run ./hack/twiliosim

##@ Deployment

.PHONY: install
install: manifests envtest ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: envtest ## Remove the CRDs from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests envtest ## Deploy the operator (image $(IMG)) with the default overlay.
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	$(KUBECTL) kustomize config/default | sed 's#controller:latest#$(IMG)#' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: envtest ## Remove the operator from the cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@
