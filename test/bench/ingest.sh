#!/usr/bin/env bash
# Ingest benchmark: `glimpse loadgen` against a bare net/http handler (the ceiling) and then
# against a fresh `glimpse all`, with the same traffic, in alternating rounds; each round
# checks that every acknowledged event was counted. Each `glimpse all` run is bracketed by a
# ceiling run before and after it and compared with their mean, since the speed of a small
# shared machine drifts within seconds. Prints each round's share of the ceiling and the
# median over the rounds: one round alone says little. (How a long run at full speed behaves
# as open visits pile up is in docs/benchmarks.md, "Sustained".)
# Usage: test/bench/ingest.sh [events per run] [concurrency] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-150000}
conc=${2:-256}
rounds=${3:-5}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

export CGO_ENABLED=0 # built as `make build` builds it
go build -o "$work/glimpse" ./cmd/glimpse
go build -o "$work/ceiling" ./test/bench/ceiling

wait_http() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
# rate <loadgen output>: the acknowledged/s of a run
rate() { grep -oE '\([0-9]+ acknowledged/s\)' "$1" | grep -oE '[0-9]+'; }
cpu_seconds() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }

"$work/ceiling" -addr 127.0.0.1:18090 2>/dev/null &
ceiling_pid=$!
day=$(date -u +%F)
shares=()
for round in $(seq 1 "$rounds"); do
  site="bench-$round.example"
  if [ "$round" = 1 ]; then
    echo "== ceiling (bare net/http handler answering 202)"
    "$work/glimpse" loadgen --target=http://127.0.0.1:18090 --events="$events" --concurrency="$conc" --sites="$site" --seed="$round" > "$work/ceiling.txt"
    grep -E '^(sent|latency)' "$work/ceiling.txt"
  fi
  before=$(rate "$work/ceiling.txt")
  echo "== round $round: glimpse all (embedded bus and store, durable writes)"
  "$work/glimpse" all --addr=127.0.0.1:18080 --data-dir="$work/data-$round" --log.level=warn --query.auth=false --gateway.rate-limit.site-events=0 --gateway.rate-limit.ip=0 &
  glimpse_pid=$!
  wait_http http://127.0.0.1:18080/readyz
  cpu0=$(cpu_seconds "$glimpse_pid")
  "$work/glimpse" loadgen --target=http://127.0.0.1:18080 --events="$events" --concurrency="$conc" --sites="$site" --seed="$round" --expect > "$work/run.txt"
  cpu1=$(cpu_seconds "$glimpse_pid")
  grep -E '^(sent|latency)' "$work/run.txt"
  want=$(python3 -c "import json; t=open('$work/run.txt').read(); j=json.loads(t[t.index('{'):]); print(j['$site']['pageviews'])")
  got=0
  for _ in $(seq 1 120); do
    got=$(curl -fsS -X POST http://127.0.0.1:18080/api/v1/query -d "{\"site_id\":\"$site\",\"metrics\":[\"pageviews\"],\"date_range\":[\"$day\",\"$day\"]}" | python3 -c "import json,sys; r=json.load(sys.stdin)['results']; print(int(r[0]['metrics'][0]) if r else 0)")
    [ "$got" = "$want" ] && break
    sleep 1
  done
  echo "counted page views: $got of $want acknowledged"
  [ "$got" = "$want" ]
  rss=$(ps -o rss= -p "$glimpse_pid" | awk '{printf "%.0f MB", $1/1024}')
  kill "$glimpse_pid"
  wait "$glimpse_pid" 2>/dev/null || true
  rm -rf "$work/data-$round"
  echo "== ceiling again (bare net/http handler answering 202)"
  "$work/glimpse" loadgen --target=http://127.0.0.1:18090 --events="$events" --concurrency="$conc" --sites="$site" --seed="$round" > "$work/ceiling.txt"
  grep -E '^(sent|latency)' "$work/ceiling.txt"
  after=$(rate "$work/ceiling.txt") # also the next round's "before"
  c=$(( (before + after) / 2 ))
  g=$(rate "$work/run.txt")
  share=$(python3 -c "print(round(100*$g/$c, 1))")
  shares+=("$share")
  echo "round $round: ceiling $before/s before and $after/s after (mean $c/s), glimpse all $g/s = $share % of the ceiling; glimpse all CPU while sending $(python3 -c "print(round(($cpu1-$cpu0)*1e6/$events))") µs per beacon; RSS $rss"
done
kill "$ceiling_pid"
echo "share of the ceiling per round: ${shares[*]} %; median $(printf '%s\n' "${shares[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}') %"
