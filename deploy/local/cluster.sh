#!/usr/bin/env bash
# The fleet of deploy/compose as local processes: 2 collectors, 2 processors, 2 query
# services and a gateway, each a separate `glimpse` process on its own 127.0.0.1 port, on real
# Consul, Kafka and Cassandra started through deploy/local/{consul,kafka,cassandra}.sh.
#
# Usage: deploy/local/cluster.sh {up|down|status|start MEMBER|stop MEMBER|logs MEMBER [-f]|help}
# See deploy/local/README.md for details.
set -euo pipefail

CLUSTER_CMD="${1:-help}"

# The state dir is needed before lib.sh: `up` records there the settings it was given, and
# every later command reads them back (for variables not set again), so that `start`, `stop`
# and `down` act on the cluster `up` started even from a shell without its environment.
CLUSTER_REPO_ROOT="${GLIMPSE_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CLUSTER_DIR="${GLIMPSE_CLUSTER_DIR:-$CLUSTER_REPO_ROOT/.cache/cluster}"
case "$CLUSTER_DIR" in /*) ;; *) CLUSTER_DIR="$PWD/$CLUSTER_DIR" ;; esac
CLUSTER_ENV="$CLUSTER_DIR/cluster.env"
if [[ "$CLUSTER_CMD" != up && "$CLUSTER_CMD" != help && -f "$CLUSTER_ENV" ]]; then
	# shellcheck source=/dev/null # written by record_settings below
	source "$CLUSTER_ENV"
fi

# Which variables came from the environment (lib.sh gives some of them defaults below).
declare -A CLUSTER_FROM_ENV=()
while IFS= read -r CLUSTER_VAR; do
	CLUSTER_FROM_ENV[$CLUSTER_VAR]=1
done < <(compgen -e GLIMPSE_)

# shellcheck disable=SC2034 # read by lib.sh
LOG_TAG=cluster
# shellcheck disable=SC2034 # read by lib.sh
START_TIMEOUT_VAR=GLIMPSE_CLUSTER_START_TIMEOUT
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_HOST=127.0.0.1
CLUSTER_BASE_PORT="${GLIMPSE_CLUSTER_BASE_PORT:-7080}"
CLUSTER_KEYSPACE="${GLIMPSE_CLUSTER_KEYSPACE:-glimpse_cluster}"
CLUSTER_TOPIC="${GLIMPSE_CLUSTER_TOPIC:-glimpse-cluster-events}"
CLUSTER_GROUP="${GLIMPSE_CLUSTER_GROUP:-glimpse-cluster-processors}"
CLUSTER_PARTITIONS="${GLIMPSE_CLUSTER_PARTITIONS:-6}"
CLUSTER_LOG_LEVEL="${GLIMPSE_CLUSTER_LOG_LEVEL:-info}"
CLUSTER_START_TIMEOUT="${GLIMPSE_CLUSTER_START_TIMEOUT:-90}"
CLUSTER_STOP_TIMEOUT="${GLIMPSE_CLUSTER_STOP_TIMEOUT:-30}"

# Engines: by default the ones the deploy/local scripts run on 127.0.0.1 with their own port
# variables. GLIMPSE_CLUSTER_{KAFKA,CASSANDRA,CONSUL}=host:port names an engine run by
# someone else instead: it is only checked, never started or stopped.
KAFKA_EXTERNAL="${GLIMPSE_CLUSTER_KAFKA:-}"
CASSANDRA_EXTERNAL="${GLIMPSE_CLUSTER_CASSANDRA:-}"
CONSUL_EXTERNAL="${GLIMPSE_CLUSTER_CONSUL:-}"
KAFKA_ADDR="${KAFKA_EXTERNAL:-127.0.0.1:${GLIMPSE_KAFKA_PORT:-9092}}"
CASSANDRA_ADDR="${CASSANDRA_EXTERNAL:-127.0.0.1:${GLIMPSE_CASSANDRA_PORT:-9042}}"
CONSUL_ADDR="${CONSUL_EXTERNAL:-127.0.0.1:${GLIMPSE_CONSUL_HTTP_PORT:-8500}}"

CLUSTER_LOGS="$CLUSTER_DIR/logs"
CLUSTER_DATA="$CLUSTER_DIR/data"
# Engines this cluster's `up` started (see engine_record): `down` stops these and no others.
CLUSTER_ENGINES_FILE="$CLUSTER_DIR/engines-started"
CLUSTER_LOCK="$CLUSTER_DIR.lock"

# Members in start order, and each one's offset from the base port.
MEMBERS=(gateway collector-1 collector-2 processor-1 processor-2 query-1 query-2)
declare -A MEMBER_OFFSET=([gateway]=0 [collector-1]=1 [collector-2]=2 [processor-1]=3 [processor-2]=4 [query-1]=5 [query-2]=6)

# Settings `up` records for the later commands: the cluster's own and those of the engine
# scripts and lib.sh (only the ones that were set, so the defaults stay the scripts' own).
RECORDED_VARS=(
	GLIMPSE_CLUSTER_BASE_PORT GLIMPSE_CLUSTER_KEYSPACE GLIMPSE_CLUSTER_TOPIC GLIMPSE_CLUSTER_GROUP
	GLIMPSE_CLUSTER_PARTITIONS GLIMPSE_CLUSTER_LOG_LEVEL GLIMPSE_CLUSTER_START_TIMEOUT
	GLIMPSE_CLUSTER_STOP_TIMEOUT GLIMPSE_CLUSTER_KAFKA GLIMPSE_CLUSTER_CASSANDRA GLIMPSE_CLUSTER_CONSUL
	GLIMPSE_CACHE_DIR GLIMPSE_RUN_DIR
	GLIMPSE_KAFKA_PORT GLIMPSE_KAFKA_CONTROLLER_PORT GLIMPSE_KAFKA_DIR
	GLIMPSE_CASSANDRA_PORT GLIMPSE_CASSANDRA_STORAGE_PORT GLIMPSE_CASSANDRA_JMX_PORT GLIMPSE_CASSANDRA_DIR
	GLIMPSE_CONSUL_HTTP_PORT GLIMPSE_CONSUL_SERVER_PORT GLIMPSE_CONSUL_SERF_LAN_PORT
	GLIMPSE_CONSUL_SERF_WAN_PORT GLIMPSE_CONSUL_DIR
)

usage() {
	cat <<EOF
Usage: $0 {up|down|status|start MEMBER|stop MEMBER|logs MEMBER [-f]|help}

  up            start Consul, Kafka and Cassandra through deploy/local/{consul,kafka,cassandra}.sh
                (engines already running are only re-checked), build bin/glimpse if missing
                or older than the sources (or use \$GLIMPSE_BIN), run 'glimpse migrate', create
                the topic, then start the members and wait for each one's /readyz; prints the
                gateway URL on stdout and the next steps on stderr
  down          stop every member, then each engine that this cluster's 'up' started (engines
                that were running before, e.g. from 'make engines-up', keep running)
  status        engines and members; exit 0 when every member is ready, 1 when some are not,
                3 when none runs
  start MEMBER  start one member again with the same flags (e.g. after it was killed)
  stop MEMBER   stop one member (SIGTERM, SIGKILL after ${CLUSTER_STOP_TIMEOUT}s)
  logs MEMBER   print the end of a member's JSON log (-f: follow it)

Members and ports (base $CLUSTER_BASE_PORT): gateway +0, collector-1 +1, collector-2 +2,
processor-1 +3, processor-2 +4, query-1 +5, query-2 +6, all on $CLUSTER_HOST.

Environment (defaults in brackets):
  GLIMPSE_CLUSTER_DIR [<repo>/.cache/cluster]  PID files, logs/, data/, settings of 'up'
  GLIMPSE_CLUSTER_BASE_PORT [7080]   GLIMPSE_CLUSTER_KEYSPACE [glimpse_cluster]
  GLIMPSE_CLUSTER_TOPIC [glimpse-cluster-events]   GLIMPSE_CLUSTER_GROUP [glimpse-cluster-processors]
  GLIMPSE_CLUSTER_PARTITIONS [6]   GLIMPSE_CLUSTER_LOG_LEVEL [info]
  GLIMPSE_CLUSTER_START_TIMEOUT [90]   GLIMPSE_CLUSTER_STOP_TIMEOUT [30]
  GLIMPSE_BIN [<repo>/bin/glimpse, built when missing or stale]
  GLIMPSE_CLUSTER_KAFKA, GLIMPSE_CLUSTER_CASSANDRA, GLIMPSE_CLUSTER_CONSUL [unset]
      host:port of an engine run by someone else: used as is, never started or stopped
  The engine scripts' own variables (GLIMPSE_KAFKA_PORT [9092], GLIMPSE_CASSANDRA_PORT [9042],
  GLIMPSE_CONSUL_HTTP_PORT [8500], their other ports and GLIMPSE_{KAFKA,CASSANDRA,CONSUL}_DIR)
  pick the engines; see '$GLIMPSE_LOCAL_DIR/<engine>.sh help'.
  Any other glimpse setting can be given as its GLIMPSE_* variable (e.g.
  GLIMPSE_CONSUL_CHECK_INTERVAL=1s); every member reads it.
EOF
}

check_config() {
	require_port_number "$CLUSTER_BASE_PORT" GLIMPSE_CLUSTER_BASE_PORT
	((CLUSTER_BASE_PORT + 6 <= 65535)) || die "GLIMPSE_CLUSTER_BASE_PORT=$CLUSTER_BASE_PORT leaves no room for 7 ports. Fix: pick a base port of at most 65529."
	[[ "$CLUSTER_KEYSPACE" =~ ^[a-z][a-z0-9_]{0,47}$ ]] ||
		die "GLIMPSE_CLUSTER_KEYSPACE='$CLUSTER_KEYSPACE' is not a Cassandra keyspace name. Fix: use lower-case letters, digits and _ (at most 48, starting with a letter)."
	[[ "$CLUSTER_TOPIC" =~ ^[A-Za-z0-9._-]{1,200}$ ]] ||
		die "GLIMPSE_CLUSTER_TOPIC='$CLUSTER_TOPIC' is not a Kafka topic name. Fix: use letters, digits, '.', '_' and '-'."
	[[ "$CLUSTER_GROUP" =~ ^[A-Za-z0-9._-]{1,200}$ ]] ||
		die "GLIMPSE_CLUSTER_GROUP='$CLUSTER_GROUP' is not a usable consumer group. Fix: use letters, digits, '.', '_' and '-'."
	[[ "$CLUSTER_PARTITIONS" =~ ^[1-9][0-9]{0,3}$ ]] || die "GLIMPSE_CLUSTER_PARTITIONS='$CLUSTER_PARTITIONS' is not a positive number."
	((CLUSTER_PARTITIONS >= 2)) || die "GLIMPSE_CLUSTER_PARTITIONS=$CLUSTER_PARTITIONS leaves one of the 2 processors idle. Fix: set it to 2 or more."
	[[ "$CLUSTER_START_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "GLIMPSE_CLUSTER_START_TIMEOUT='$CLUSTER_START_TIMEOUT' is not a number of seconds."
	[[ "$CLUSTER_STOP_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "GLIMPSE_CLUSTER_STOP_TIMEOUT='$CLUSTER_STOP_TIMEOUT' is not a number of seconds."
	local v
	for v in GLIMPSE_CLUSTER_KAFKA:"$KAFKA_EXTERNAL" GLIMPSE_CLUSTER_CASSANDRA:"$CASSANDRA_EXTERNAL" GLIMPSE_CLUSTER_CONSUL:"$CONSUL_EXTERNAL"; do
		[[ -z "${v#*:}" || "${v#*:}" =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "${v%%:*}='${v#*:}' is not host:port."
	done
}

# --- members -------------------------------------------------------------------------------

require_member() {
	[[ -n "${1:-}" ]] || die "name a member: one of ${MEMBERS[*]}."
	[[ -n "${MEMBER_OFFSET[$1]:-}" ]] || die "unknown member '$1'. Fix: use one of ${MEMBERS[*]}."
}

member_target() { printf '%s\n' "${1%-[0-9]}"; }
member_port() { printf '%s\n' "$((CLUSTER_BASE_PORT + MEMBER_OFFSET[$1]))"; }
member_addr() { printf '%s:%s\n' "$CLUSTER_HOST" "$(member_port "$1")"; }
member_pidfile() { printf '%s/%s.pid\n' "$CLUSTER_DIR" "$1"; }
member_log() { printf '%s/%s.log\n' "$CLUSTER_LOGS" "$1"; }
member_datadir() { printf '%s/%s\n' "$CLUSTER_DATA" "$1"; }
# member_marker: what the member's command line must contain for its PID file to be trusted
# (target, address and this cluster's data dir, so another cluster's members never match).
member_marker() {
	printf '%s --addr=%s --data-dir=%s\n' "$(member_target "$1")" "$(member_addr "$1")" "$(member_datadir "$1")"
}

# member_args MEMBER: the glimpse command line of a member (after the binary).
member_args() {
	local m="$1" target addr
	target="$(member_target "$m")"
	addr="$(member_addr "$m")"
	local -a args=("$target" "--addr=$addr" "--data-dir=$(member_datadir "$m")"
		--log.format=json "--log.level=$CLUSTER_LOG_LEVEL" --registry=consul "--consul.address=$CONSUL_ADDR")
	local -a bus=(--bus=kafka "--kafka.brokers=$KAFKA_ADDR" "--kafka.partitions=$CLUSTER_PARTITIONS")
	local -a store=(--store=cassandra "--cassandra.hosts=$CASSANDRA_ADDR" "--cassandra.keyspace=$CLUSTER_KEYSPACE")
	case "$target" in
	collector) args+=("--advertise-addr=http://$addr" "${bus[@]}" "${store[@]}" "--collector.topic=$CLUSTER_TOPIC") ;;
	processor) args+=("--advertise-addr=http://$addr" "${bus[@]}" "${store[@]}" "--processor.topic=$CLUSTER_TOPIC" "--processor.group=$CLUSTER_GROUP") ;;
	query) args+=("--advertise-addr=http://$addr" "${store[@]}") ;;
		# The gateway has no bus or store: it finds collectors and query services in Consul.
	gateway) ;;
	esac
	printf '%s\n' "${args[@]}"
}

member_ready() {
	curl -fsS --max-time 2 -o /dev/null "http://$(member_addr "$1")/readyz" 2>/dev/null
}

# launch_member MEMBER: start a member in the background unless it runs already; the caller
# waits for readiness (so several members start at once).
launch_member() {
	local m="$1" pidfile marker pid
	pidfile="$(member_pidfile "$m")"
	marker="$(member_marker "$m")"
	pid="$(pid_of "$pidfile" "$marker")"
	if [[ -n "$pid" ]]; then
		log "$m already running (pid $pid)"
		return 0
	fi
	clear_stale_pid "$pidfile" "$marker"
	require_port_free "$m" "$CLUSTER_HOST" "$(member_port "$m")" GLIMPSE_CLUSTER_BASE_PORT
	local -a args
	mapfile -t args < <(member_args "$m")
	mkdir -p "$CLUSTER_LOGS" "$(member_datadir "$m")"
	rotate_log "$(member_log "$m")"
	spawn "$pidfile" "$(member_log "$m")" "$GLIMPSE" "${args[@]}"
	log "started $m on http://$(member_addr "$m") (pid $(cat "$pidfile"), log $(member_log "$m"))"
}

wait_member() {
	local m="$1"
	wait_until "$m /readyz on http://$(member_addr "$m")" "$CLUSTER_START_TIMEOUT" \
		"$(member_pidfile "$m")" "$(member_marker "$m")" "$(member_log "$m")" member_ready "$m"
}

stop_member() {
	stop_process "$1" "$(member_pidfile "$1")" "$(member_marker "$1")" "$CLUSTER_STOP_TIMEOUT" TERM
}

# --- binary --------------------------------------------------------------------------------

# binary_stale BIN: true when BIN is missing or a Go source, go.mod/go.sum or an embedded
# web build is newer than it.
binary_stale() {
	[[ -x "$1" ]] || return 0
	local newer
	newer="$(cd "$GLIMPSE_REPO_ROOT" && find cmd internal services web go.mod go.sum \
		\( -name node_modules -prune \) -o -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -path '*/dist/*' \) \
		-newer "$1" -print -quit 2>/dev/null)"
	[[ -n "$newer" ]]
}

build_binary() {
	local bin="$GLIMPSE_REPO_ROOT/bin/glimpse" tmp version t0=$SECONDS
	if ! binary_stale "$bin"; then
		log "using $bin (up to date with the sources)"
		return 0
	fi
	require_cmd go "install Go (the version named in go.mod), or point GLIMPSE_BIN at a built glimpse binary."
	tmp="$bin.tmp.$$"
	mkdir -p "$(dirname "$bin")"
	log "building $bin (missing or older than the sources)"
	# As `make build` does.
	version="$(cd "$GLIMPSE_REPO_ROOT" && git describe --tags --always --dirty 2>/dev/null || echo dev)"
	if ! (cd "$GLIMPSE_REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$tmp" ./cmd/glimpse) >&2; then
		rm -f "$tmp"
		die "building glimpse failed (see above). Fix the build, or point GLIMPSE_BIN at a built glimpse binary."
	fi
	mv -f "$tmp" "$bin"
	log "built $bin in $(elapsed "$t0")"
}

resolve_binary() {
	if [[ -n "${GLIMPSE_BIN:-}" ]]; then
		GLIMPSE="$(abs_path "$GLIMPSE_BIN")"
		[[ -x "$GLIMPSE" ]] || die "GLIMPSE_BIN=$GLIMPSE_BIN is not an executable. Fix: build it (make build) or unset GLIMPSE_BIN to use bin/glimpse."
		return 0
	fi
	GLIMPSE="$GLIMPSE_REPO_ROOT/bin/glimpse"
	if [[ "$CLUSTER_CMD" == up ]]; then
		with_lock "$GLIMPSE_REPO_ROOT/bin/.glimpse.lock" build_binary
	fi
	[[ -x "$GLIMPSE" ]] || die "$GLIMPSE is missing. Fix: run '$0 up' (it builds it), 'make build', or set GLIMPSE_BIN."
}

# --- engines -------------------------------------------------------------------------------

engine_script() { printf '%s/%s.sh\n' "$GLIMPSE_LOCAL_DIR" "$1"; }

# The record of an engine this cluster's `up` started is the line "<kind> <address> <pid>" in
# $CLUSTER_ENGINES_FILE ("-" as pid while it starts). The pid tells a later `up` or `down`
# whether the engine running now is still that one: one restarted by someone else since
# (e.g. `make engines-up` after a crash) is not this cluster's to stop.

# engine_record KIND: prints "<address> <pid>" recorded for KIND (nothing: none).
engine_record() {
	[[ -f "$CLUSTER_ENGINES_FILE" ]] || return 0
	awk -v k="$1" '$1 == k { print $2, $3; exit }' "$CLUSTER_ENGINES_FILE"
}

# engine_set_record KIND [ADDR PID]: replaces KIND's record (removes it without ADDR).
engine_set_record() {
	local kind="$1" rest=""
	[[ -f "$CLUSTER_ENGINES_FILE" ]] && rest="$(awk -v k="$kind" '$1 != k' "$CLUSTER_ENGINES_FILE")"
	[[ $# -lt 3 ]] || rest="${rest:+$rest$'\n'}$kind $2 $3"
	if [[ -n "$rest" ]]; then
		mkdir -p "$CLUSTER_DIR"
		printf '%s\n' "$rest" >"$CLUSTER_ENGINES_FILE"
	else
		rm -f "$CLUSTER_ENGINES_FILE"
	fi
}

# engine_pid KIND: the pid its script reports as running (nothing: stopped).
engine_pid() {
	"$(engine_script "$1")" status 2>/dev/null | sed -n 's/.*(pid \([0-9][0-9]*\)).*/\1/p' | head -1 || true
}

# engine_started_here KIND ADDR: true when the KIND running on ADDR is the one this
# cluster's `up` started.
engine_started_here() {
	local rec pid
	rec="$(engine_record "$1")"
	[[ -n "$rec" && "${rec%% *}" == "$2" ]] || return 1
	pid="$(engine_pid "$1")"
	[[ -n "$pid" && ("${rec##* }" == "$pid" || "${rec##* }" == -) ]]
}

# engine_up KIND ADDR EXTERNAL PORTVAR: make sure the engine answers. An external one is only
# checked; one its script already runs is re-checked by that script; otherwise the script
# starts it and the state dir records that this cluster did, so `down` stops it.
engine_up() {
	local kind="$1" addr="$2" external="$3" portvar="$4" script rc=0
	script="$(engine_script "$kind")"
	if [[ -n "$external" ]]; then
		port_open "${addr%:*}" "${addr##*:}" ||
			die "nothing answers on $addr (GLIMPSE_CLUSTER_${kind^^}). Fix: start that $kind, or unset GLIMPSE_CLUSTER_${kind^^} to let $script run one."
		log "$kind: using $addr as is (GLIMPSE_CLUSTER_${kind^^}; never started or stopped here)"
		return 0
	fi
	"$script" status >/dev/null 2>&1 || rc=$?
	if ((rc == 0 || rc == 1)); then
		if engine_started_here "$kind" "$addr"; then
			log "$kind: running (started by this cluster); re-checking"
		else
			# A record of this address names an engine that was stopped and started again
			# by someone else since; it is no longer this cluster's.
			[[ "$(engine_record "$kind")" != "$addr "* ]] || engine_set_record "$kind"
			log "$kind: already running (not started by this cluster, so 'down' leaves it running); re-checking"
		fi
		"$script" start >/dev/null
		return 0
	fi
	if port_open "${addr%:*}" "${addr##*:}"; then
		die "$addr is taken by a process $script did not start (no live PID file in its data dir). Fix: if it is the $kind you want, set GLIMPSE_CLUSTER_${kind^^}=$addr (then this cluster never stops it); otherwise stop it or pick another port with $portvar=<port>."
	fi
	log "$kind: starting it with $script ('down' will stop it)"
	# Recorded before starting, so that `down` stops it even if this start times out.
	engine_set_record "$kind" "$addr" -
	"$script" start >/dev/null
	engine_set_record "$kind" "$addr" "$(engine_pid "$kind")"
}

# engine_down KIND ADDR PORTVAR: stop KIND if the one running on ADDR is the one this
# cluster's `up` started.
engine_down() {
	local kind="$1" addr="$2" portvar="$3" script rec pid
	script="$(engine_script "$kind")"
	rec="$(engine_record "$kind")"
	[[ -n "$rec" ]] || return 0
	if [[ "${rec%% *}" != "$addr" ]]; then
		warn "$kind: 'up' started one on ${rec%% *}, but the settings now point at $addr; leaving both alone. Fix: run '$0 down' with $portvar (and the other variables 'up' had) as they were, or stop it with '$script stop' and those variables."
		return 0
	fi
	pid="$(engine_pid "$kind")"
	if [[ -z "$pid" ]]; then
		log "$kind: not running any more"
	elif [[ "${rec##* }" != - && "${rec##* }" != "$pid" ]]; then
		log "$kind: the one running now (pid $pid) is not the one this cluster started (pid ${rec##* }); leaving it running"
	else
		log "$kind: stopping it (this cluster's 'up' started it)"
		"$script" stop
	fi
	engine_set_record "$kind"
}

create_topic() {
	if [[ -n "$KAFKA_EXTERNAL" ]]; then
		log "topic $CLUSTER_TOPIC: created by the first collector or processor with $CLUSTER_PARTITIONS partitions if missing (external Kafka)"
		return 0
	fi
	local t0=$SECONDS out
	log "creating topic $CLUSTER_TOPIC ($CLUSTER_PARTITIONS partitions) unless it exists"
	"$(engine_script kafka)" topics --create --if-not-exists --topic "$CLUSTER_TOPIC" \
		--partitions "$CLUSTER_PARTITIONS" --replication-factor 1 >&2 ||
		die "creating topic $CLUSTER_TOPIC failed (see above). Fix: check Kafka on $KAFKA_ADDR ('$(engine_script kafka) status')."
	out="$("$(engine_script kafka)" topics --describe --topic "$CLUSTER_TOPIC" 2>/dev/null | grep -o 'PartitionCount: *[0-9]*' | head -1 || true)"
	out="${out##*[ :]}"
	if [[ -n "$out" ]] && ((out < 2)); then
		warn "topic $CLUSTER_TOPIC exists with $out partition(s): one processor will be idle. Fix: pick another GLIMPSE_CLUSTER_TOPIC, or add partitions with '$(engine_script kafka) topics --alter --topic $CLUSTER_TOPIC --partitions $CLUSTER_PARTITIONS'."
	fi
	log "topic $CLUSTER_TOPIC ready (${out:-?} partitions) in $(elapsed "$t0")"
}

migrate() {
	local t0=$SECONDS
	log "migrating keyspace $CLUSTER_KEYSPACE on $CASSANDRA_ADDR"
	"$GLIMPSE" migrate --store=cassandra "--cassandra.hosts=$CASSANDRA_ADDR" "--cassandra.keyspace=$CLUSTER_KEYSPACE" >&2 ||
		die "glimpse migrate failed (see above). Fix: check Cassandra on $CASSANDRA_ADDR ('$(engine_script cassandra) status')."
	log "keyspace ready in $(elapsed "$t0")"
}

# --- commands ------------------------------------------------------------------------------

record_settings() {
	local v tmp="$CLUSTER_ENV.tmp.$$"
	mkdir -p "$CLUSTER_DIR"
	{
		echo "# Written by deploy/local/cluster.sh up; read back by its other commands for each"
		echo "# variable not set in their environment. Do not edit: run 'up' again instead."
		# shellcheck disable=SC2016 # the ${...+set} tests are for the reader of the file
		for v in "${RECORDED_VARS[@]}"; do
			if [[ -n "${CLUSTER_FROM_ENV[$v]:-}" ]]; then
				printf '[[ -n "${%s+set}" ]] || export %s=%q\n' "$v" "$v" "${!v}"
			fi
		done
		# The binary `start` must run: the one `up` used, also when it was bin/glimpse.
		# shellcheck disable=SC2016
		printf '[[ -n "${GLIMPSE_BIN+set}" ]] || export GLIMPSE_BIN=%q\n' "$GLIMPSE"
	} >"$tmp"
	mv -f "$tmp" "$CLUSTER_ENV"
}

# refuse_other_settings: fail when a member of this state dir runs with other settings than
# the ones given now (another base port, binary, ...): `up` would lose track of it.
refuse_other_settings() {
	local m pid cmdline
	for m in "${MEMBERS[@]}"; do
		[[ -f "$(member_pidfile "$m")" ]] || continue
		pid="$(tr -dc '0-9' <"$(member_pidfile "$m")")"
		if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
			continue
		fi
		cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
		if [[ "$cmdline" == *"--data-dir=$(member_datadir "$m") "* && "$cmdline" != *"$(member_marker "$m")"* ]]; then
			die "$m of the cluster in $CLUSTER_DIR runs with other settings (pid $pid: $cmdline). Fix: '$0 down' first (it reads that cluster's settings from $CLUSTER_ENV), or give this one its own GLIMPSE_CLUSTER_DIR."
		fi
	done
}

do_up() {
	local t0=$SECONDS m
	check_config
	require_cmd curl "apt-get install -y curl"
	mkdir -p "$CLUSTER_DIR" "$CLUSTER_LOGS" "$CLUSTER_DATA"
	refuse_other_settings
	# Check the members' ports before anything slow happens.
	for m in "${MEMBERS[@]}"; do
		if [[ -z "$(pid_of "$(member_pidfile "$m")" "$(member_marker "$m")")" ]]; then
			require_port_free "$m" "$CLUSTER_HOST" "$(member_port "$m")" GLIMPSE_CLUSTER_BASE_PORT
		fi
	done
	engine_up consul "$CONSUL_ADDR" "$CONSUL_EXTERNAL" GLIMPSE_CONSUL_HTTP_PORT
	engine_up kafka "$KAFKA_ADDR" "$KAFKA_EXTERNAL" GLIMPSE_KAFKA_PORT
	engine_up cassandra "$CASSANDRA_ADDR" "$CASSANDRA_EXTERNAL" GLIMPSE_CASSANDRA_PORT
	resolve_binary
	record_settings
	migrate
	create_topic
	# Back ends first, the gateway last: it is ready once it can route.
	for m in collector-1 collector-2 processor-1 processor-2 query-1 query-2 gateway; do
		launch_member "$m"
	done
	for m in collector-1 collector-2 processor-1 processor-2 query-1 query-2 gateway; do
		wait_member "$m"
	done
	log "cluster up in $(elapsed "$t0"): gateway http://$(member_addr gateway), state in $CLUSTER_DIR"
	next_steps
	printf 'http://%s\n' "$(member_addr gateway)"
}

next_steps() {
	local flags="--store=cassandra --cassandra.hosts=$CASSANDRA_ADDR --cassandra.keyspace=$CLUSTER_KEYSPACE" gw
	gw="http://$(member_addr gateway)"
	cat >&2 <<EOF

Gateway: $gw (tracker at $gw/js/glimpse.js, query API at $gw/api/v1/query)

Next steps:
  1. Add a site (the hostnames its pages are served from count for it):
       $GLIMPSE sites add example.com --hostnames='example.com,*.example.com,localhost,127.0.0.1' $flags
  2. Create an admin API key for the query API (shown once):
       $GLIMPSE keys create --admin --name=local-cluster $flags
  3. Put the tracker on a page:
       <script defer data-site="example.com" data-local src="$gw/js/glimpse.js"></script>
  4. Ask for numbers:
       curl -s -H "Authorization: Bearer <key>" -H 'Content-Type: application/json' \\
         -d '{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d"}' $gw/api/v1/query
  Status: $0 status    Logs: $0 logs MEMBER    Stop everything: $0 down

EOF
}

do_down() {
	local m pids=() failed=0
	# Members stop in parallel: each may take its shutdown timeout to drain.
	for m in "${MEMBERS[@]}"; do
		stop_member "$m" &
		pids+=($!)
	done
	for m in "${pids[@]}"; do
		wait "$m" || failed=1
	done
	((failed == 0)) || die "some members did not stop (see above); run '$0 down' again."
	engine_down cassandra "$CASSANDRA_ADDR" GLIMPSE_CASSANDRA_PORT
	engine_down kafka "$KAFKA_ADDR" GLIMPSE_KAFKA_PORT
	engine_down consul "$CONSUL_ADDR" GLIMPSE_CONSUL_HTTP_PORT
	log "cluster down (state and logs kept in $CLUSTER_DIR)"
}

do_start() {
	require_member "${1:-}"
	resolve_binary
	launch_member "$1"
	wait_member "$1"
}

do_stop() {
	require_member "${1:-}"
	stop_member "$1"
}

do_status() {
	local kind script m pid running=0 ready=0
	for kind in consul kafka cassandra; do
		local var="${kind^^}_EXTERNAL" addr_var="${kind^^}_ADDR"
		if [[ -n "${!var}" ]]; then
			if port_open "${!addr_var%:*}" "${!addr_var##*:}"; then
				echo "$kind: external ${!addr_var}, answering"
			else
				echo "$kind: external ${!addr_var}, NOT answering"
			fi
			continue
		fi
		script="$(engine_script "$kind")"
		local line
		line="$("$script" status 2>/dev/null || true)"
		if engine_started_here "$kind" "${!addr_var}"; then
			echo "$line [started by this cluster]"
		else
			echo "$line"
		fi
	done
	for m in "${MEMBERS[@]}"; do
		pid="$(pid_of "$(member_pidfile "$m")" "$(member_marker "$m")")"
		if [[ -z "$pid" ]]; then
			echo "$m: stopped (http://$(member_addr "$m"))"
			continue
		fi
		running=$((running + 1))
		if member_ready "$m"; then
			ready=$((ready + 1))
			echo "$m: ready (pid $pid) http://$(member_addr "$m"), log $(member_log "$m")"
		else
			echo "$m: running (pid $pid) but not ready on http://$(member_addr "$m"); log $(member_log "$m")"
		fi
	done
	echo "keyspace $CLUSTER_KEYSPACE on $CASSANDRA_ADDR, topic $CLUSTER_TOPIC and group $CLUSTER_GROUP on $KAFKA_ADDR, Consul $CONSUL_ADDR"
	if ((running == 0)); then
		return 3
	fi
	((ready == ${#MEMBERS[@]})) || return 1
}

do_logs() {
	require_member "${1:-}"
	local file
	file="$(member_log "$1")"
	[[ -f "$file" ]] || die "no log for $1 yet ($file). Fix: '$0 up' or '$0 start $1'."
	if [[ "${2:-}" == -f ]]; then
		exec tail -n 100 -F "$file"
	fi
	tail -n 100 "$file"
}

main() {
	[[ $# -gt 0 ]] && shift
	case "$CLUSTER_CMD" in
	up) with_lock "$CLUSTER_LOCK" do_up ;;
	down) with_lock "$CLUSTER_LOCK" do_down ;;
	start) with_lock "$CLUSTER_LOCK" do_start "$@" ;;
	stop) with_lock "$CLUSTER_LOCK" do_stop "$@" ;;
	status) do_status ;;
	logs) do_logs "$@" ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		die "unknown command '$CLUSTER_CMD'"
		;;
	esac
}

main "$@"
