# Glimpse — `make help` lists the targets.
GO       ?= go
BIN      := bin/glimpse
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# Executions per fuzz target. A count, not a duration: Go 1.26's fuzzing coordinator can
# fail a run that ends on a -fuzztime duration with a spurious "context deadline exceeded"
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x

.DEFAULT_GOAL := help
# Real engines for the fleet tests, started by deploy/local as local processes (no Docker).
KAFKA_ADDR     ?= 127.0.0.1:9092
CASSANDRA_ADDR ?= 127.0.0.1:9042
CONSUL_ADDR    ?= 127.0.0.1:8500
ENGINE_ENV := GLIMPSE_TEST_KAFKA=$(KAFKA_ADDR) GLIMPSE_TEST_CASSANDRA=$(CASSANDRA_ADDR) GLIMPSE_TEST_CONSUL=$(CONSUL_ADDR) \
              GLIMPSE_TEST_KAFKA_SCRIPT=$(CURDIR)/deploy/local/kafka.sh GLIMPSE_TEST_CASSANDRA_SCRIPT=$(CURDIR)/deploy/local/cassandra.sh

.PHONY: help build run test check unit unit-fast e2e fuzz browser web bench engines-up engines-down check-deploy cluster cluster-down cluster-status clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

build: ## Build bin/glimpse
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/glimpse

run: build ## Run `glimpse all` on http://localhost:8080 with data in ./data
	./$(BIN) all --addr=:8080 --data-dir=./data

test: check check-deploy engines-up unit fuzz browser ## Everything CI runs: vet, format, all tests on real Kafka/Cassandra/Consul, short fuzzing

check: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit: ## All Go tests (unit, conformance, end-to-end, crash), with the real engines of engines-up
	$(ENGINE_ENV) $(GO) test -count=1 -timeout 30m ./...

unit-fast: ## Go tests without the real engines (those tests skip)
	$(GO) test -count=1 -timeout 20m ./...

check-deploy: ## Check deploy/compose (compose file, alerts, dashboard) against the code; promtool on the Prometheus files
	$(GO) test -count=1 -run 'Compose|Prometheus|Deploy|Metric|Alerts|Dashboard|Healthcheck' ./cmd/glimpse/
	deploy/compose/check.sh

engines-up: ## Start real Kafka, Cassandra and Consul as local processes (fetched/built on first use)
	deploy/local/kafka.sh start
	deploy/local/cassandra.sh start
	deploy/local/consul.sh start

engines-down: ## Stop the engines engines-up started
	-deploy/local/consul.sh stop
	-deploy/local/cassandra.sh stop
	-deploy/local/kafka.sh stop

cluster: ## Run the fleet as local processes: 2 collectors, 2 processors, 2 query, a gateway (deploy/local/cluster.sh up)
	deploy/local/cluster.sh up

cluster-down: ## Stop the fleet of `make cluster`, and only the engines it started
	deploy/local/cluster.sh down

cluster-status: ## Engines and fleet members of `make cluster`
	deploy/local/cluster.sh status

e2e: ## Only the end-to-end and crash tests against the built binary
	$(GO) test -count=1 -timeout 15m -v ./test/e2e/

fuzz: ## Short fuzz runs of the beacon decoders, the JSON scanner, the bus event decoder and the query parser (FUZZTIME=100000x executions each)
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeBeacon$$' -fuzztime=$(FUZZTIME) ./services/collector/
	$(GO) test -run='^$$' -fuzz='^FuzzWireBeacon$$' -fuzztime=$(FUZZTIME) ./services/collector/
	$(GO) test -run='^$$' -fuzz='^FuzzSplitPlainReferrer$$' -fuzztime=$(FUZZTIME) ./services/collector/
	$(GO) test -run='^$$' -fuzz='^FuzzParseQuery$$' -fuzztime=$(FUZZTIME) ./services/query/
	$(GO) test -run='^$$' -fuzz='^FuzzBeaconSiteFields$$' -fuzztime=$(FUZZTIME) ./services/gateway/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/event/
	$(GO) test -run='^$$' -fuzz='^FuzzObject$$' -fuzztime=$(FUZZTIME) ./internal/jsonscan/

browser: ## Browser tests of the tracker and the dashboard (Debian chromium + playwright-core)
	test/browser/run.sh

web: ## Rebuild web/tracker/dist and web/dashboard/dist from their sources (commit the result)
	cd web && npm ci --no-audit --no-fund && npm run build

bench: ## Go benchmarks of the hot paths
	$(GO) test -run='^$$' -bench=. -benchmem ./services/... ./internal/...

clean: ## Remove build output (keeps ./data)
	rm -rf bin
