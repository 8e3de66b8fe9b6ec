#!/usr/bin/env bash
# Consul dev agent (single server, in-memory state) for local development and tests, built
# from the Go module proxy via the tools module in deploy/local/consul-tools.
#
# Usage: deploy/local/consul.sh {build|start|stop|status|restart|help}
# See deploy/local/README.md for details.
set -euo pipefail

# shellcheck disable=SC2034 # read by lib.sh
LOG_TAG=consul
# shellcheck disable=SC2034 # read by lib.sh
START_TIMEOUT_VAR=GLIMPSE_CONSUL_START_TIMEOUT
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Must match the version required in consul-tools/go.mod (v1.14.8: the last MPL-2.0 line).
CONSUL_VERSION=1.14.8
CONSUL_HOST=127.0.0.1
CONSUL_HTTP_PORT="${GLIMPSE_CONSUL_HTTP_PORT:-8500}"
CONSUL_SERVER_PORT="${GLIMPSE_CONSUL_SERVER_PORT:-8300}"
CONSUL_SERF_LAN_PORT="${GLIMPSE_CONSUL_SERF_LAN_PORT:-8301}"
CONSUL_SERF_WAN_PORT="${GLIMPSE_CONSUL_SERF_WAN_PORT:-8302}"
CONSUL_START_TIMEOUT="${GLIMPSE_CONSUL_START_TIMEOUT:-60}"
CONSUL_STOP_TIMEOUT="${GLIMPSE_CONSUL_STOP_TIMEOUT:-20}"

CONSUL_TOOLS="$GLIMPSE_LOCAL_DIR/consul-tools"
CONSUL_HOME="$GLIMPSE_CACHE_DIR/consul/$CONSUL_VERSION"
CONSUL_BIN="$CONSUL_HOME/consul"
CONSUL_DIR="$(abs_path "${GLIMPSE_CONSUL_DIR:-$GLIMPSE_RUN_DIR/consul}")"
CONSUL_PIDFILE="$CONSUL_DIR/consul.pid"
CONSUL_LOG="$CONSUL_DIR/logs/consul.log"
# Marker looked for in the process's command line (dev mode keeps no data dir of its own).
CONSUL_MARKER="$CONSUL_BIN agent -dev"
CONSUL_ADDR="$CONSUL_HOST:$CONSUL_HTTP_PORT"

usage() {
	cat <<EOF
Usage: $0 {build|start|stop|status|restart|help}

  build     build Consul v$CONSUL_VERSION into $CONSUL_BIN (skipped when present;
            ~3-5 min cold on 2 cores, seconds with a warm Go build cache)
  start     build if needed, start a dev agent (server, in-memory) on $CONSUL_HOST and wait
            for a leader; prints the HTTP address ($CONSUL_ADDR) on stdout
  stop      graceful stop (SIGTERM), SIGKILL after ${CONSUL_STOP_TIMEOUT}s
  status    exit 0 running with a leader, 1 running but no leader, 3 stopped
  restart   stop then start (dev mode: all state is lost)

Environment (defaults in brackets):
  GLIMPSE_CONSUL_HTTP_PORT [8500]   GLIMPSE_CONSUL_SERVER_PORT [8300]
  GLIMPSE_CONSUL_SERF_LAN_PORT [8301]   GLIMPSE_CONSUL_SERF_WAN_PORT [8302]
  GLIMPSE_CONSUL_DIR [<repo>/.cache/run/consul] (PID file and log only)
  GLIMPSE_CONSUL_START_TIMEOUT [60]   GLIMPSE_CONSUL_STOP_TIMEOUT [20]
  GLIMPSE_CACHE_DIR [<repo>/.cache]
DNS and gRPC are disabled (-dns-port -1 -grpc-port -1 -grpc-tls-port -1).
EOF
}

check_config() {
	local v
	for v in GLIMPSE_CONSUL_HTTP_PORT:"$CONSUL_HTTP_PORT" GLIMPSE_CONSUL_SERVER_PORT:"$CONSUL_SERVER_PORT" \
		GLIMPSE_CONSUL_SERF_LAN_PORT:"$CONSUL_SERF_LAN_PORT" GLIMPSE_CONSUL_SERF_WAN_PORT:"$CONSUL_SERF_WAN_PORT"; do
		require_port_number "${v#*:}" "${v%%:*}"
	done
}

# --- build ---------------------------------------------------------------------------------

do_build() {
	if [[ -x "$CONSUL_BIN" ]]; then
		log "Consul $CONSUL_VERSION already built: $CONSUL_BIN (delete it to rebuild)"
		return 0
	fi
	require_cmd go "install Go (the version named in go.mod) and make sure 'go' is on PATH."
	grep -q "github.com/hashicorp/consul v$CONSUL_VERSION\$" "$CONSUL_TOOLS/go.mod" ||
		die "$CONSUL_TOOLS/go.mod does not require github.com/hashicorp/consul v$CONSUL_VERSION. Fix: keep CONSUL_VERSION in $0 and that go.mod in step."
	local t0=$SECONDS tmp="$CONSUL_BIN.tmp.$$" buildlog="$CONSUL_HOME/build.log"
	mkdir -p "$CONSUL_HOME"
	: >"$buildlog"
	log "building Consul v$CONSUL_VERSION from the Go module proxy (module $CONSUL_TOOLS, log $buildlog); takes a few minutes the first time"
	# GOWORK=off: a go.work elsewhere must not pull this module into a workspace.
	# -mod=readonly: build exactly what consul-tools/go.sum pins; never edit go.mod here.
	if ! (cd "$CONSUL_TOOLS" && GOWORK=off CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
		go build -trimpath -ldflags='-s -w' -o "$tmp" github.com/hashicorp/consul) >>"$buildlog" 2>&1; then
		rm -f "$tmp"
		show_log_tail "$buildlog"
		die "building Consul failed (full log: $buildlog). Fix: check that the Go module proxy is reachable (go env GOPROXY); if go.sum is missing entries, run 'cd $CONSUL_TOOLS && GOWORK=off go mod tidy' and commit go.mod/go.sum."
	fi
	mv -f "$tmp" "$CONSUL_BIN"
	log "built $CONSUL_BIN ($("$CONSUL_BIN" version | head -1), $(du -h "$CONSUL_BIN" | cut -f1)) in $(elapsed "$t0")"
}

# --- start ---------------------------------------------------------------------------------

# leader: prints the raft leader address reported by the agent (empty when none).
leader() {
	local out
	out="$(curl -fsS --max-time 2 "http://$CONSUL_ADDR/v1/status/leader" 2>/dev/null)" || return 0
	out="${out//\"/}"
	printf '%s\n' "$out"
}

consul_ready() {
	[[ -n "$(leader)" ]]
}

do_start() {
	local t0=$SECONDS pid
	check_config
	require_cmd curl "apt-get install -y curl"
	pid="$(pid_of "$CONSUL_PIDFILE" "$CONSUL_MARKER")"
	if [[ -n "$pid" ]]; then
		log "Consul already running (pid $pid)"
		wait_until "a Consul leader on $CONSUL_ADDR" "$CONSUL_START_TIMEOUT" "$CONSUL_PIDFILE" "$CONSUL_MARKER" "$CONSUL_LOG" consul_ready
		printf '%s\n' "$CONSUL_ADDR"
		return 0
	fi
	clear_stale_pid "$CONSUL_PIDFILE" "$CONSUL_MARKER"
	with_lock "$GLIMPSE_CACHE_DIR/consul/.lock" do_build
	require_port_free "Consul HTTP" "$CONSUL_HOST" "$CONSUL_HTTP_PORT" GLIMPSE_CONSUL_HTTP_PORT
	require_port_free "Consul server RPC" "$CONSUL_HOST" "$CONSUL_SERVER_PORT" GLIMPSE_CONSUL_SERVER_PORT
	require_port_free "Consul serf LAN" "$CONSUL_HOST" "$CONSUL_SERF_LAN_PORT" GLIMPSE_CONSUL_SERF_LAN_PORT
	require_port_free "Consul serf WAN" "$CONSUL_HOST" "$CONSUL_SERF_WAN_PORT" GLIMPSE_CONSUL_SERF_WAN_PORT
	mkdir -p "$CONSUL_DIR/logs"
	rotate_log "$CONSUL_LOG"
	log "starting Consul $CONSUL_VERSION dev agent, HTTP on $CONSUL_ADDR (log $CONSUL_LOG)"
	spawn "$CONSUL_PIDFILE" "$CONSUL_LOG" "$CONSUL_BIN" agent -dev \
		-node glimpse-local -bind "$CONSUL_HOST" -client "$CONSUL_HOST" \
		-http-port "$CONSUL_HTTP_PORT" -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
		-server-port "$CONSUL_SERVER_PORT" -serf-lan-port "$CONSUL_SERF_LAN_PORT" \
		-serf-wan-port "$CONSUL_SERF_WAN_PORT" -log-level info
	log "pid $(cat "$CONSUL_PIDFILE")"
	wait_until "a Consul leader on $CONSUL_ADDR (GET /v1/status/leader non-empty)" \
		"$CONSUL_START_TIMEOUT" "$CONSUL_PIDFILE" "$CONSUL_MARKER" "$CONSUL_LOG" consul_ready
	log "Consul ready in $(elapsed "$t0"); leader $(leader); HTTP API http://$CONSUL_ADDR"
	printf '%s\n' "$CONSUL_ADDR"
}

do_stop() {
	stop_process Consul "$CONSUL_PIDFILE" "$CONSUL_MARKER" "$CONSUL_STOP_TIMEOUT" TERM
}

do_status() {
	local pid lead
	pid="$(pid_of "$CONSUL_PIDFILE" "$CONSUL_MARKER")"
	if [[ -z "$pid" ]]; then
		echo "consul: stopped"
		return 3
	fi
	lead="$(leader)"
	if [[ -n "$lead" ]]; then
		echo "consul: running (pid $pid), HTTP http://$CONSUL_ADDR, leader $lead"
		return 0
	fi
	echo "consul: running (pid $pid) but no leader on $CONSUL_ADDR yet; log $CONSUL_LOG"
	return 1
}

main() {
	local cmd="${1:-help}"
	case "$cmd" in
	build) with_lock "$GLIMPSE_CACHE_DIR/consul/.lock" do_build ;;
	start) with_lock "$CONSUL_DIR.lock" do_start ;;
	stop) with_lock "$CONSUL_DIR.lock" do_stop ;;
	restart) with_lock "$CONSUL_DIR.lock" do_stop && with_lock "$CONSUL_DIR.lock" do_start ;;
	status) do_status ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		die "unknown command '$cmd'"
		;;
	esac
}

main "$@"
