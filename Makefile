# externalsource-controller

# Pinned code generator, run with `go run` so nothing needs installing.
CONTROLLER_GEN ?= go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

# Binaries the tests run (kube-apiserver, etcd, ...) are built by hack/tools.sh
# into a cache outside the clone and linked here.
BIN := $(CURDIR)/bin
export KUBEBUILDER_ASSETS := $(BIN)

# Per-package timeout of the test binaries; the whole suite stays well below it.
TEST_TIMEOUT ?= 20m
TEST_FLAGS ?=

.PHONY: all
all: build

##@ Development

# dev is built and run, not `go run`: go run exits 1 whenever it receives
# the terminal's SIGINT, whatever its program's status, and make would then
# report an error after a clean Ctrl-C.
.PHONY: dev
dev: build ## Run the controller on a local control plane with the memory store and a sample source.
	hack/tools.sh etcd kube-apiserver crds
	go build -o $(BIN)/dev ./hack/dev
	$(BIN)/dev

# Scenarios of `make bench` (tests/bench/cmd: n5, n1000, n5000, large, floor1000,
# floor5000, hooks1000, hooks5000, n10000, n10000fs, restart-fs, restart-s3, restart-mem, shard6000,
# failing; docs/benchmarks.md) and
# extra flags (e.g. BENCH_FLAGS="-qps 50 -burst 300 -suffix -qps50").
BENCH_SCENARIOS ?= floor1000,floor5000,n10000,n10000fs,restart-fs,restart-s3,restart-mem,shard6000,failing
BENCH_FLAGS ?=

.PHONY: bench
bench: ## Run the scale benchmark: real control plane, controller process, N sources; writes tests/bench/out and docs/benchmarks/*.png.
	hack/tools.sh etcd kube-apiserver versitygw yq crds
	@test -x /usr/bin/jq || { echo "make bench: the hooks scenarios need jq at /usr/bin/jq (apt-get install jq)"; exit 1; }
	go run ./tests/bench/cmd -scenarios $(BENCH_SCENARIOS) -out tests/bench/out -docs docs/benchmarks $(BENCH_FLAGS)

.PHONY: test
test: tools size-check generate-check vet fuzz ## Run every test against a real kube-apiserver and etcd.
	cd api && go test -count=1 ./...
	go test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...

# Fuzz targets (package:target), each run for FUZZ_TIME (an execution count:
# a duration makes Go's fuzzer fail with "context deadline exceeded" on a
# loaded machine, and an execution count does not); their seed corpora
# and any failure they ever found live in testdata/fuzz and run with the
# ordinary tests too.
FUZZ_TARGETS := internal/archive:FuzzCleanPath internal/archive:FuzzWrite \
	internal/server:FuzzCleanRequestPath internal/server:FuzzHandler \
	internal/hook:FuzzCheck internal/generator/http:FuzzSecretHeaders \
	internal/redact:FuzzSetString internal/generator/http:FuzzTransportErrorRedaction \
	internal/extract:FuzzExtract
FUZZ_TIME ?= 3000x

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZ_TIME.
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$fn ($$pkg) for $(FUZZ_TIME)"; \
		go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_TIME) ./$$pkg; \
	done

# The tools `make test` runs; goreleaser is built by release-check (and by
# `make tools EXTRA_TOOLS=goreleaser` in .ci/run, beside the others).
# CLUSTER_TOOLS are the node's parts tests/cluster and `make cluster` run.
CLUSTER_TOOLS := kubelet kube-controller-manager kube-scheduler kube-proxy coredns
TEST_TOOLS := etcd kube-apiserver versitygw kustomize-controller helm-controller notification-controller flux yq kube-state-metrics gitea $(CLUSTER_TOOLS)

.PHONY: tools
tools: ## Build the binaries the tests run (idempotent; seconds when warm).
	hack/tools.sh $(TEST_TOOLS) $(EXTRA_TOOLS) crds debs

.PHONY: cluster
cluster: ## Bring up the tests' one-node cluster (root, Linux) until Ctrl-C; KUBECONFIG=bin/cluster.kubeconfig.
	hack/tools.sh etcd kube-apiserver $(CLUSTER_TOOLS) kustomize-controller helm-controller yq crds debs
	go run ./hack/cluster

.PHONY: size-check
size-check: ## Fail when a tracked file is over 5 MB (binaries do not belong in git).
	hack/check-size.sh

##@ Build

.PHONY: build
build: ## Build the controller binary into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/externalsource-controller .

.PHONY: release-check
# RELEASE_SINGLE_TARGET=true builds the snapshot for this machine's platform
# only (goreleaser build --single-target): CI uses it to keep a fresh
# machine's run within its budget; releases build the whole matrix.
RELEASE_SINGLE_TARGET ?= false
release-check: ## Validate the release configuration and make a snapshot release into dist/ (nothing published).
	hack/tools.sh goreleaser
	$(BIN)/goreleaser check
ifeq ($(RELEASE_SINGLE_TARGET),true)
	$(BIN)/goreleaser build --snapshot --clean --single-target
else
	$(BIN)/goreleaser release --snapshot --clean --skip=publish,docker
endif
	@test -s build/manifests/externalsource-controller.crds.yaml
	@test -s build/manifests/externalsource-controller.deployment.yaml

.PHONY: image
image: build ## Write an OCI image layout of the controller to dist/image (no container engine needed).
	go run ./hack/image -binary $(BIN)/externalsource-controller -out dist/image -tag $(or $(VERSION),dev)

.PHONY: generate
generate: ## Regenerate deepcopy functions.
	cd api && $(CONTROLLER_GEN) object:headerFile="../hack/boilerplate.go.txt" paths="./..."

.PHONY: manifests
manifests: ## Regenerate CRDs and RBAC from the markers.
	cd api && $(CONTROLLER_GEN) crd paths="./..." output:crd:artifacts:config="../config/crd/bases"
	$(CONTROLLER_GEN) rbac:roleName=externalsource-controller paths="./internal/..." output:rbac:artifacts:config="config/rbac"

.PHONY: monitoring-rules
monitoring-rules: ## Render config/monitoring/prometheusrule.yaml from config/monitoring/rules (template and thresholds).
	go run ./hack/monitoring-rules

.PHONY: generate-check
generate-check: generate manifests monitoring-rules ## Fail when generated files are stale.
	@if ! git diff --quiet -- api config; then \
		echo "generated files are stale; run 'make generate manifests' and commit:"; \
		git --no-pager diff --stat -- api config; exit 1; fi

.PHONY: fmt
fmt:
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd api && go vet ./...

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
