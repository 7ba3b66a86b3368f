# certbound — build, generate, test.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
ROOT := $(shell pwd)
BIN := $(ROOT)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
export KUBEBUILDER_ASSETS := $(BIN)
# Short fuzz runs that `make test` includes; `make fuzz FUZZTIME=5m` goes deeper.
# The default is a count of executions, not a duration: with a duration, Go 1.26's
# fuzz coordinator can end a clean run in "context deadline exceeded" on a loaded
# machine (golang.org/issue/75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME ?= 20000x
IMG ?= ghcr.io/certbound/certbound:latest

.PHONY: all
all: build

##@ Tools

.PHONY: tools
tools: ## Build controller-gen, kube-apiserver and etcd into bin/ (only when missing or their pins changed).
	hack/build-tools.sh

##@ Generate

.PHONY: generate
generate: tools ## Generate deepcopy code and server-side apply configurations.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) applyconfiguration paths=./api/...

.PHONY: manifests
manifests: tools ## Generate CRDs, RBAC and webhook configuration from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases \
		rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac \
		webhook paths=./webhook/... output:webhook:artifacts:config=config/webhook

.PHONY: static-manifest
static-manifest: ## Refresh the Helm chart's copies of config/ (CRDs, ClusterRole, webhooks), deploy/certbound.yaml and deploy/monitoring/prometheusrule.yaml.
	cd test/helm && go run ./cmd/generate

.PHONY: verify-generated
verify-generated: ## Fail when generated files differ from what the markers produce.
	hack/verify-generated.sh

##@ Build

.PHONY: build
build: ## Build bin/certbound the way the Dockerfile does (static, CGO off).
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o $(BIN)/certbound .

.PHONY: vet
vet:
	go vet ./...

##@ Test

.PHONY: test
test: tools verify-generated vet build ## Everything CI runs: generated files fresh, vet, all tests, short fuzz runs.
	go test ./... -count=1 -timeout 25m
	cd test/helm && go vet ./... && go test ./... -count=1 -timeout 15m
	$(MAKE) fuzz

.PHONY: e2e
e2e: tools build ## The end-to-end suite alone (also part of make test).
	go test ./test/e2e/ -count=1 -v -timeout 15m

.PHONY: test-helm
test-helm: tools ## The Helm chart, static manifest, alert and dashboard tests alone (a nested module: test/helm).
	cd test/helm && go test ./... -count=1 -timeout 15m

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME.
	hack/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: tools ## Run the benchmarks into docs/benchmarks.md (BENCH_ONLY=go|token|operator: one part).
	hack/bench.sh

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Deploy (needs kubectl on PATH and a cluster with cert-manager)

.PHONY: deploy
deploy: ## Install certbound into the current kubectl context (config/default).
	@kubectl get crd certificates.cert-manager.io >/dev/null 2>&1 || { \
		echo "cert-manager is not installed in this cluster (no certificates.cert-manager.io CRD): install cert-manager first, see README"; exit 1; }
	kubectl apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove certbound (and its CRDs, which deletes every OAuthClient and AuthorizationServer).
	kubectl delete --ignore-not-found -k config/default

.PHONY: docker-build
docker-build: ## Build the image (needs a container engine; not run in CI here).
	docker build -t $(IMG) .

##@ Demo

.PHONY: demo
demo: tools build ## Run the whole system locally and play the demo story; ARGS=--once exits after it.
	go run ./hack/devcluster $(ARGS)

##@ OLM bundle

# make bundle IMG=<registry>/certbound:v<VERSION> VERSION=<semver> for a
# release; without them the bundle deploys ghcr.io/certbound/certbound:v0.1.0.
# Only values given on the command line are passed on, so an IMG or VERSION
# in the environment cannot make the committed bundle look stale.
BUNDLE_FLAGS = $(if $(filter command line,$(origin IMG)),--image=$(IMG)) $(if $(filter command line,$(origin VERSION)),--version=$(VERSION))
BUNDLE_IMG ?= ghcr.io/certbound/certbound-bundle:v0.1.0

.PHONY: bundle
bundle: ## Generate the OLM bundle (bundle/) from config/ (go run ./hack/bundle).
	go run ./hack/bundle $(BUNDLE_FLAGS)

.PHONY: bundle-build
bundle-build: ## Build the bundle image (needs a container engine; not run in CI here).
	docker build -f bundle/bundle.Dockerfile -t $(BUNDLE_IMG) bundle
