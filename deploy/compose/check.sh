#!/usr/bin/env bash
# Validates the compose deployment's Prometheus files with promtool (and the compose file with
# `docker compose config` when a compose plugin is installed). The Go tests in cmd/glimpse
# check the compose file against the real targets and settings, and the dashboards and alerts
# against the metric names in the code; this script covers what only promtool can check: that
# the scrape config and the rules are well formed, that the alerts fire on the series their
# unit tests (prometheus/alerts_test.yml) give them, and that the dashboard's PromQL parses.
#
# promtool is built from the Go module proxy into .cache/bin on first use (a few minutes cold;
# reused afterwards). Override the location with PROMTOOL=/path/to/promtool.
set -euo pipefail

PROMTOOL_VERSION="v0.316.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
cache_bin="${GLIMPSE_CACHE_DIR:-$repo_root/.cache}/bin"

log() { printf '[check-deploy] %s\n' "$*" >&2; }
die() {
	printf '[check-deploy] ERROR: %s\n' "$*" >&2
	exit 1
}

install_promtool() {
	command -v go >/dev/null 2>&1 || die "'go' not found on PATH. Fix: install Go 1.26 or set PROMTOOL to an existing promtool binary."
	mkdir -p "$cache_bin"
	log "installing promtool $PROMTOOL_VERSION into $cache_bin (first run only; a few minutes cold)"
	local started=$SECONDS
	GOBIN="$cache_bin" GOFLAGS=-buildvcs=false \
		go install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" ||
		die "building promtool failed. Fix: check network access to the Go module proxy (GOPROXY=$(go env GOPROXY)), or set PROMTOOL to an existing promtool binary."
	log "promtool installed in $((SECONDS - started))s"
}

promtool="${PROMTOOL:-$cache_bin/promtool}"
if [[ ! -x "$promtool" ]]; then
	[[ -n "${PROMTOOL:-}" ]] && die "PROMTOOL=$PROMTOOL is not an executable file. Fix: point it at a promtool binary or unset it to build one into $cache_bin."
	install_promtool
fi

log "promtool check config prometheus/prometheus.yml"
# Also loads the rule files it names (alerts.yml, resolved next to prometheus.yml).
"$promtool" check config "$here/prometheus/prometheus.yml"

log "promtool check rules prometheus/alerts.yml"
"$promtool" check rules "$here/prometheus/alerts.yml"

if [[ -f "$here/prometheus/alerts_test.yml" ]]; then
	log "promtool test rules prometheus/alerts_test.yml"
	"$promtool" test rules "$here/prometheus/alerts_test.yml"
fi

# The dashboard's queries are PromQL too; Grafana's interval variables become 5m for parsing.
if command -v python3 >/dev/null 2>&1; then
	log "promtool promql format: the queries of grafana/dashboards/*.json"
	bad=0
	for dashboard in "$here"/grafana/dashboards/*.json; do
		while IFS= read -r expr; do
			expr="${expr//\$__rate_interval/5m}"
			expr="${expr//\$__interval/5m}"
			expr="${expr//\$__range/5m}"
			if ! "$promtool" --experimental promql format "$expr" >/dev/null; then
				printf '[check-deploy] %s: query does not parse: %s\n' "$(basename "$dashboard")" "$expr" >&2
				bad=1
			fi
		done < <(python3 -c '
import json, sys
def walk(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            print(node["expr"].replace("\n", " "))
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(json.load(open(sys.argv[1])))
' "$dashboard")
	done
	[[ $bad == 0 ]] || die "fix the dashboard queries above"
else
	log "no python3 here: the dashboard's queries are not parsed (their metric names are still checked by the Go tests)"
fi

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
	log "docker compose config -q"
	docker compose -f "$here/docker-compose.yml" config -q
else
	log "no docker compose plugin here; the compose file is validated by the Go test (compose-go loader with the compose-spec schema)"
fi

log "ok"
