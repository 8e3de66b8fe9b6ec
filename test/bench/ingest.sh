#!/usr/bin/env bash
# Ingest benchmark: `glimpse loadgen` against a bare net/http handler (the ceiling) and then
# against `glimpse all`, in the same run, with the same traffic; then checks that every
# acknowledged event was counted. Usage: test/bench/ingest.sh [events] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-200000}
conc=${2:-64}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

export CGO_ENABLED=0 # built as `make build` builds it
go build -o "$work/glimpse" ./cmd/glimpse
go build -o "$work/ceiling" ./test/bench/ceiling

wait_http() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }

echo "== ceiling: bare net/http handler answering 202"
"$work/ceiling" -addr 127.0.0.1:18090 2>/dev/null &
sleep 0.3
"$work/glimpse" loadgen --target=http://127.0.0.1:18090 --events="$events" --concurrency="$conc" --sites=bench.example --seed=1
kill %1; wait %1 2>/dev/null || true

echo "== glimpse all (embedded bus and store, durable writes)"
"$work/glimpse" all --addr=127.0.0.1:18080 --data-dir="$work/data" --log.level=warn --query.auth=false --gateway.rate-limit.site-events=0 --gateway.rate-limit.ip=0 &
wait_http http://127.0.0.1:18080/readyz
"$work/glimpse" loadgen --target=http://127.0.0.1:18080 --events="$events" --concurrency="$conc" --sites=bench.example --seed=1 --expect > "$work/run.txt"
head -2 "$work/run.txt"
want=$(python3 -c "import json,sys; t=open('$work/run.txt').read(); j=json.loads(t[t.index('{'):]); print(j['bench.example']['pageviews'])")
echo "waiting until all $want acknowledged page views are counted..."
day=$(date -u +%F)
for _ in $(seq 1 120); do
  got=$(curl -fsS -X POST http://127.0.0.1:18080/api/v1/query -d "{\"site_id\":\"bench.example\",\"metrics\":[\"pageviews\"],\"date_range\":[\"$day\",\"$day\"]}" | python3 -c "import json,sys; r=json.load(sys.stdin)['results']; print(int(r[0]['metrics'][0]) if r else 0)")
  [ "$got" = "$want" ] && break
  sleep 1
done
echo "counted page views: $got of $want acknowledged"
[ "$got" = "$want" ]
echo "RSS of glimpse all: $(ps -o rss= -p $(jobs -p | tail -1) | awk '{printf "%.0f MB", $1/1024}')"
