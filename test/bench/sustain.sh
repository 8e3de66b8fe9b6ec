#!/usr/bin/env bash
# Sustained ingest: runs `glimpse loadgen` at full speed several times, one run after another,
# against one `glimpse all`, and prints after each run the rate, the CPU per beacon, the heap
# and the open visits the processor holds (a visit stays open for 30 minutes after its last
# event). Extra arguments go to `glimpse all`, e.g. --memory-limit=1GiB.
# Usage: test/bench/sustain.sh [events per run] [runs] [glimpse all flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-150000}
runs=${2:-4}
shift $(( $# < 2 ? $# : 2 ))
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

export CGO_ENABLED=0 # built as `make build` builds it
go build -o "$work/glimpse" ./cmd/glimpse
"$work/glimpse" all --addr=127.0.0.1:18080 --data-dir="$work/data" --log.level=warn --query.auth=false --gateway.rate-limit.site-events=0 --gateway.rate-limit.ip=0 "$@" &
pid=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:18080/readyz 2>/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
for run in $(seq 1 "$runs"); do
  t0=$(ticks)
  rate=$("$work/glimpse" loadgen --target=http://127.0.0.1:18080 --events="$events" --concurrency=256 --sites="bench-$run.example" --seed="$run" | grep -oE '\([0-9]+ acknowledged/s' | grep -oE '[0-9]+')
  t1=$(ticks)
  sleep 4 # the processor's next flush and checkpoint
  m=$(curl -fsS http://127.0.0.1:18080/metrics)
  heap=$(echo "$m" | awk '/^go_memstats_heap_inuse_bytes/ {printf "%.0f", $2/1048576}')
  visits=$(echo "$m" | awk '/^glimpse_processor_open_sessions/ {s += $2} END {print s}')
  rss=$(ps -o rss= -p "$pid" | awk '{printf "%.0f", $1/1024}')
  echo "run $run: $rate acknowledged/s, $(python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$events))") µs CPU per beacon, heap in use $heap MB, RSS $rss MB, open visits $visits"
done
