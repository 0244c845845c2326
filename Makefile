# sekisho: `make run` starts the quickstart, `make test` runs every test.
# Tools are built once into bin/ (git-ignored) and reused.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
# controller-tools v0.21 is built against k8s.io/apimachinery v0.36, as go.mod is.
CONTROLLER_GEN_VERSION := v0.21.0
HELM_VERSION := v3.22.0
FUZZTIME ?= 30s
export GOFLAGS := -buildvcs=false

.PHONY: all build run test lint unit conformance-core fuzz bench clean tools debs etcd redis dex chromium generate generate-tools

all: build

build: $(BIN)/sekisho

$(BIN)/sekisho: $(shell find . -name '*.go' -not -path './test/tools/*') go.mod go.sum
	$(GO) build -o $@ ./cmd/sekisho

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Real peers for the Kubernetes-mode tests (test/kube, test/scripts/kube-up.sh):
# kube-apiserver and kubectl built from the separate module test/tools (a few
# minutes each, once per machine: they are only rebuilt when missing), and
# Debian's etcd.
KUBE_VERSION := v1.36.3
KUBE_LDFLAGS := $(foreach pkg,k8s.io/client-go/pkg/version k8s.io/component-base/version,\
	-X $(pkg).gitVersion=$(KUBE_VERSION) -X $(pkg).gitMajor=1 -X $(pkg).gitMinor=36 -X $(pkg).gitTreeState=clean)

tools: $(BIN)/kube-apiserver $(BIN)/kubectl debs dex

$(BIN)/kube-apiserver:
	cd test/tools && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ ./kube-apiserver

$(BIN)/kubectl:
	cd test/tools && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o $@ ./kubectl

# Debian packages of the real peers: etcd (Kubernetes mode), redis-server (the
# rate-limit counters), chromium (the browser of the login tests); one
# apt-get update and install for whichever are missing.
DEBS := /usr/bin/etcd:etcd-server /usr/bin/redis-server:redis-server /usr/bin/chromium:chromium
debs:
	@missing=""; for d in $(DEBS); do test -x "$${d%%:*}" || missing="$$missing $${d#*:}"; done; \
	  if [ -n "$$missing" ]; then apt-get update && apt-get install -y $$missing; fi

etcd redis chromium: debs

# Dex, the OpenID provider of the login tests, built once into bin/dex and
# bin/dex-bcrypt from its Go module (test/tools/dex/build.sh skips the build
# when bin/dex is current).
dex:
	@test/tools/dex/build.sh

# The quickstart: two demo backends (v1 on 127.0.0.1:9001, v2 on :9002) and
# sekisho (control plane + proxy) serving examples/quickstart on :8080, with
# its admin on 127.0.0.1:19000. Ctrl-C stops everything.
run: build
	@$(BIN)/sekisho validate -f examples/quickstart
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM; \
	  $(BIN)/sekisho echo --listen 127.0.0.1:9001 --name v1 & \
	  $(BIN)/sekisho echo --listen 127.0.0.1:9002 --name v2 & \
	  $(BIN)/sekisho run -f examples/quickstart

test: tools lint unit conformance-core

lint: $(BIN)/staticcheck
	@test/scripts/check-tracked-files.sh
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

# controller-gen and helm for `make generate` and its drift test (crds/) and
# the chart's tests (deploy/); each is rebuilt when bin/ holds another version.
generate-tools:
	@$(GO) version -m $(BIN)/controller-gen 2>/dev/null | grep -qE '^\s+mod\s+sigs.k8s.io/controller-tools\s+$(CONTROLLER_GEN_VERSION)\s' || \
	  { echo "building controller-gen $(CONTROLLER_GEN_VERSION)"; GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION); }
	@$(GO) version -m $(BIN)/helm 2>/dev/null | grep -qE '^\s+mod\s+helm.sh/helm/v3\s+$(HELM_VERSION)\s' || \
	  { echo "building helm $(HELM_VERSION)"; GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }

# Regenerates every generated file (crds/doc.go says which): deepcopy
# and CRD YAML of each API package under crds/ (controller-gen), the Gateway API
# standard CRDs copied from the module go.mod pins into crds/gateway-api/, the
# Helm chart's crds/, and deploy/install.yaml (helm template). crds' TestGenerated
# does the work, so `make test` fails whenever a checked-in copy is stale.
generate: generate-tools
	$(GO) test -count=1 -run '^TestGenerated$$' ./crds -update -v

tools: generate-tools

# Unit, golden, fuzz-seed and end-to-end tests.
unit: generate-tools
	$(GO) test -race -count=1 ./...

# Runs each fuzzer for FUZZTIME (the seeds alone run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseBytes$$' -fuzztime $(FUZZTIME) ./gateway/provider/file
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(FUZZTIME) ./gateway/translate
	$(GO) test -run '^$$' -fuzz '^FuzzCodecCheckRequest$$' -fuzztime $(FUZZTIME) ./auth
	$(GO) test -run '^$$' -fuzz '^FuzzCodecUnmarshal$$' -fuzztime $(FUZZTIME) ./ratelimit
	$(GO) test -run '^$$' -fuzz '^FuzzConnection$$' -fuzztime $(FUZZTIME) ./internal/unarygrpc
	for f in FuzzParseRequest FuzzParseResponse FuzzChunkedReader; do \
	  $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./proxy/h1 || exit 1; done

# Benchmarks. Each prints its figures with the baseline measured in the same
# run; docs/benchmarks.md records them with this command. test/bench/kube
# needs the kube-apiserver, kubectl and etcd of `tools`.
bench: build tools
	$(GO) run ./test/bench/controlplane
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./gateway/translate ./xds/translate ./xds/server ./gateway/provider/file
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk nginx)
	test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx)
	$(GO) run ./test/bench/proxy -sekisho $(BIN)/sekisho $(BENCH_PROXY_FLAGS)
	$(GO) run ./test/bench/ratelimit
	$(GO) run ./test/bench/authz
	$(GO) run ./test/bench/kube -sekisho $(BIN)/sekisho

clean:
	rm -rf $(BIN)

# The Gateway API conformance suite's backend, echo-basic, built from the
# conformance module pinned by the separate module test/conformance (its
# go.mod requires sigs.k8s.io/gateway-api{,/conformance} v1.6.3).
.PHONY: conformance-tools
conformance-tools: $(BIN)/echo-basic $(BIN)/sekisho

$(BIN)/echo-basic: test/conformance/go.mod test/conformance/go.sum
	cd test/conformance && $(GO) build -o $@ sigs.k8s.io/gateway-api/conformance/echo-basic

# The GATEWAY-HTTP core tests of the conformance suite (36 in v1.6.3), part of
# `make test`: any failure fails it. The suite's report goes to
# bin/conformance-core.yaml and its counts are printed.
.PHONY: conformance-core
conformance-core: conformance-tools tools
	cd test/conformance && $(GO) test -count=1 -timeout 20m -run '^TestConformance$$' . \
	  -args -sekisho.core-only -report-output=$(BIN)/conformance-core.yaml -sekisho.deadline=15m
	@grep -A6 -- '- core:' $(BIN)/conformance-core.yaml | grep -E 'result|Passed|Failed|Skipped'

# The Gateway API conformance suite (v1.6.3) against `sekisho controller` on
# a real kube-apiserver + etcd, every test of the features sekisho claims,
# in a network namespace (root); writes conformance/report.yaml. One test:
#   cd test/conformance && go test -v -run '^TestConformance$$' . -args -run-test=NAME
.PHONY: conformance
conformance: conformance-tools tools
	mkdir -p conformance
	cd test/conformance && $(GO) test -count=1 -v -timeout 95m -run '^TestConformance$$' . \
	  -args -report-output=$(CURDIR)/conformance/report.yaml -sekisho.deadline=90m
