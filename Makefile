# sekisho: `make run` starts the quickstart, `make test` runs every test.
# Tools are built once into bin/ (git-ignored) and reused.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
FUZZTIME ?= 30s
export GOFLAGS := -buildvcs=false

.PHONY: all build run test lint unit fuzz bench clean

all: build

build: $(BIN)/sekisho

$(BIN)/sekisho: $(shell find . -name '*.go' -not -path './test/tools/*') go.mod go.sum
	$(GO) build -o $@ ./cmd/sekisho

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The quickstart: two demo backends (v1 on 127.0.0.1:9001, v2 on :9002) and
# sekisho (control plane + proxy) serving examples/quickstart on :8080, with
# its admin on 127.0.0.1:19000. Ctrl-C stops everything.
run: build
	@$(BIN)/sekisho validate -f examples/quickstart
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM; \
	  $(BIN)/sekisho echo --listen 127.0.0.1:9001 --name v1 & \
	  $(BIN)/sekisho echo --listen 127.0.0.1:9002 --name v2 & \
	  $(BIN)/sekisho run -f examples/quickstart

test: lint unit

lint: $(BIN)/staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

# Unit, golden, fuzz-seed and end-to-end tests.
unit:
	$(GO) test -race -count=1 ./...

# Runs each fuzzer for FUZZTIME (the seeds alone run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseBytes$$' -fuzztime $(FUZZTIME) ./gateway/provider/file
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(FUZZTIME) ./gateway/translate

# Benchmarks. Each prints its figures with the baseline measured in the same
# run; docs/benchmarks.md records them with this command.
bench: build
	$(GO) run ./test/bench/controlplane
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./gateway/translate ./xds/translate ./xds/server
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk nginx)
	test -x /usr/sbin/nginx || (apt-get update && apt-get install -y nginx)
	$(GO) run ./test/bench/proxy -sekisho $(BIN)/sekisho $(BENCH_PROXY_FLAGS)

clean:
	rm -rf $(BIN)
