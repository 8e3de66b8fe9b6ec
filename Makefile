# Glimpse — `make help` lists the targets.
GO       ?= go
BIN      := bin/glimpse
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s

.DEFAULT_GOAL := help
.PHONY: help build run test check unit e2e fuzz bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

build: ## Build bin/glimpse
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/glimpse

run: build ## Run `glimpse all` on http://localhost:8080 with data in ./data
	./$(BIN) all --addr=:8080 --data-dir=./data

test: check unit fuzz ## Everything CI runs: vet, format, all tests (incl. end-to-end and crash), short fuzzing

check: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit: ## All Go tests (unit, conformance, end-to-end, crash)
	$(GO) test -count=1 -timeout 20m ./...

e2e: ## Only the end-to-end and crash tests against the built binary
	$(GO) test -count=1 -timeout 15m -v ./test/e2e/

fuzz: ## Short fuzz runs of the beacon decoder and the query parser (FUZZTIME=10s)
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeBeacon$$' -fuzztime=$(FUZZTIME) ./services/collector/
	$(GO) test -run='^$$' -fuzz='^FuzzParseQuery$$' -fuzztime=$(FUZZTIME) ./services/query/

bench: ## Go benchmarks of the hot paths
	$(GO) test -run='^$$' -bench=. -benchmem ./services/... ./internal/...

clean: ## Remove build output (keeps ./data)
	rm -rf bin
