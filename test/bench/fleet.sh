#!/usr/bin/env bash
# Fleet benchmarks on the engines of `make engines-up`: collector → Kafka publish
# throughput, processor drain from Kafka into Cassandra, and dashboard queries on Cassandra
# (test/bench/fleetbench). Usage: test/bench/fleet.sh [fleetbench flags], e.g.
#   test/bench/fleet.sh --events=200000 --concurrency=16,64 --bulk=2000000
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 # built as `make build` builds it
go build -o "$work/glimpse" ./cmd/glimpse
go build -o "$work/bulkload" ./test/bench/bulkload
go build -o "$work/querybench" ./test/bench/querybench
go build -o "$work/fleetbench" ./test/bench/fleetbench
go build -o "$work/ceiling" ./test/bench/ceiling
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/fleetbench" --bin="$work" --kafka="${KAFKA_ADDR:-127.0.0.1:9092}" --cassandra="${CASSANDRA_ADDR:-127.0.0.1:9042}" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
