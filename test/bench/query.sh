#!/usr/bin/env bash
# Query and memory benchmark: publish N events spread over 30 days to the embedded bus of a
# fresh data directory (test/bench/bulkload), start `glimpse all` on it, let its processor
# consume them all (reported as processor throughput), then measure the dashboard's 30-day
# time series + top pages queries (test/bench/querybench) and the RSS of glimpse all.
# Usage: test/bench/query.sh [events] [data-dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-10000000}
data=${2:-$(mktemp -d)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# Built as `make build` builds it (no cgo: Pebble's caches then live in the Go heap, under
# --memory-limit, as in the released binary).
export CGO_ENABLED=0
go build -o "$work/glimpse" ./cmd/glimpse
go build -o "$work/bulkload" ./test/bench/bulkload
go build -o "$work/querybench" ./test/bench/querybench

echo "== bulk load of $events events into $data/bus"
"$work/bulkload" --data-dir="$data" --events="$events" | tee "$work/load.txt"
pageviews=$(sed -n 's/.*(\([0-9]*\) page views).*/\1/p' "$work/load.txt")

echo "== glimpse all consumes them"
"$work/glimpse" all --addr=127.0.0.1:18081 --data-dir="$data" --log.level=warn --query.auth=false \
  --gateway.rate-limit.ip=0 --gateway.rate-limit.site-api=0 &
pid=$!
for _ in $(seq 1 300); do curl -fsS -o /dev/null http://127.0.0.1:18081/readyz 2>/dev/null && break; sleep 0.2; done
t0=$(date +%s)
(while kill -0 "$pid" 2>/dev/null; do ps -o rss= -p "$pid"; sleep 1; done) > "$work/rss.txt" &
sampler=$!
"$work/querybench" --target=http://127.0.0.1:18081 --wait-pageviews="$pageviews" --n=0 --warmup=0 >/dev/null
t1=$(date +%s)
kill "$sampler" 2>/dev/null || true
echo "processor: $events events in $((t1 - t0)) s ($(( events / (t1 - t0 > 0 ? t1 - t0 : 1) )) events/s)"
echo "RSS after processing: $(ps -o rss= -p "$pid" | awk '{printf "%.0f MB", $1/1024}'), peak while processing: $(sort -n "$work/rss.txt" | tail -1 | awk '{printf "%.0f MB", $1/1024}')"
# From here on: the peak after the load (the first load merges the finished days).
(while kill -0 "$pid" 2>/dev/null; do ps -o rss= -p "$pid"; sleep 1; done) > "$work/rss-after.txt" &

# The first dashboard load right after the load is measured on its own (it merges the
# finished days). The store is still compacting then: wait (at most 5 minutes) until
# glimpse all uses under 10 % of a core, so the 200 measured loads see an idle server.
echo "== first dashboard load after the load"
"$work/querybench" --target=http://127.0.0.1:18081 --n=1 --warmup=0
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
settle0=$(date +%s)
prev=$(cpu)
for _ in $(seq 1 60); do
  sleep 5
  now=$(cpu)
  [ $((now - prev)) -lt 50 ] && break # clock ticks (100/s): under 0.5 s of CPU in 5 s
  prev=$now
done
echo "settled after $(( $(date +%s) - settle0 )) s: $(curl -fsS http://127.0.0.1:18081/metrics | grep -E '^glimpse_store_(compaction_debt_bytes|read_amplification)\{engine="pebble"' | tr '\n' ' ')"
echo "== queries"
"$work/querybench" --target=http://127.0.0.1:18081 --n=200 --warmup=20
echo "RSS after queries: $(ps -o rss= -p "$pid" | awk '{printf "%.0f MB", $1/1024}'), peak after processing: $(sort -n "$work/rss-after.txt" | tail -1 | awk '{printf "%.0f MB", $1/1024}')"
du -sh "$data"/bus "$data"/store
