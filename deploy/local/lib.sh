# shellcheck shell=bash
# Shared helpers for deploy/local/{kafka,cassandra,consul}.sh.
#
# Source it after setting LOG_TAG; it is not meant to be run on its own. Everything here is
# plain bash + coreutils/util-linux (flock, setsid, timeout); no nc/lsof needed.

if [[ -n "${GLIMPSE_LOCAL_LIB_LOADED:-}" ]]; then
	return 0
fi
GLIMPSE_LOCAL_LIB_LOADED=1

LOG_TAG="${LOG_TAG:-local}"

# --- logging -------------------------------------------------------------------------------

# Progress goes to stderr so that stdout only carries results (e.g. the bootstrap address
# printed by `start`), which lets callers do ADDR=$(deploy/local/kafka.sh start).
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2
	exit 1
}

# --- locations -----------------------------------------------------------------------------

GLIMPSE_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The repo root is two levels up from deploy/local; override with GLIMPSE_REPO_ROOT.
GLIMPSE_REPO_ROOT="${GLIMPSE_REPO_ROOT:-$(cd "$GLIMPSE_LOCAL_DIR/../.." && pwd)}"
# Downloads/builds (git-ignored). Override with GLIMPSE_CACHE_DIR to share one across clones.
GLIMPSE_CACHE_DIR="${GLIMPSE_CACHE_DIR:-$GLIMPSE_REPO_ROOT/.cache}"
# Default parent of the per-service data dirs (each also has its own override).
GLIMPSE_RUN_DIR="${GLIMPSE_RUN_DIR:-$GLIMPSE_CACHE_DIR/run}"

# abs_path DIR: prints DIR as an absolute path (DIR need not exist yet).
abs_path() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

# --- prerequisites -------------------------------------------------------------------------

# require_cmd NAME HINT: fail with HINT when NAME is not on PATH.
require_cmd() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH. Fix: $2"
}

# java_bin: the java to use ($JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH).
java_bin() {
	if [[ -n "${JAVA_HOME:-}" ]]; then
		printf '%s\n' "$JAVA_HOME/bin/java"
	else
		command -v java || true
	fi
}

# require_java MIN MAX: check the Java feature version is within [MIN, MAX]; sets JAVA.
require_java() {
	local min="$1" max="$2" ver major
	JAVA="$(java_bin)"
	[[ -n "$JAVA" && -x "$JAVA" ]] ||
		die "java not found. Fix: apt-get install -y openjdk-17-jdk-headless (or set JAVA_HOME to a JDK ${min}..${max})."
	ver="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
	major="${ver%%.*}"
	[[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
	[[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell the Java version of $JAVA (got '$ver')."
	if ((major < min || major > max)); then
		die "$JAVA is Java $major; this service needs Java ${min}..${max}. Fix: set JAVA_HOME to a JDK 17 (e.g. /usr/lib/jvm/java-17-openjdk-amd64)."
	fi
}

# --- locking -------------------------------------------------------------------------------

# with_lock FILE CMD...: run CMD while holding an exclusive flock on FILE, so that two
# concurrent invocations (e.g. parallel test jobs) don't fetch or start the same thing twice.
with_lock() {
	local file="$1"
	shift
	mkdir -p "$(dirname "$file")"
	(
		flock -w 900 9 || die "timed out waiting for lock $file (another run is stuck?). Fix: check for a hung fetch/start, or remove $file."
		"$@"
	) 9>"$file"
}

# --- ports ---------------------------------------------------------------------------------

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# require_port_free NAME HOST PORT ENVVAR: fail with a fix when PORT is already taken.
require_port_free() {
	local name="$1" host="$2" port="$3" var="$4"
	if port_open "$host" "$port"; then
		die "$name port $host:$port is already in use by another process ($(ss -Htlnp "sport = :$port" 2>/dev/null | awk '{print $NF}' | head -1)). Fix: stop that process, or pick another port with $var=<port>."
	fi
}

# require_port_number VALUE ENVVAR
require_port_number() {
	if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
		die "$2='$1' is not a TCP port number (1-65535)."
	fi
}

# --- processes / PID files -----------------------------------------------------------------

# pid_of PIDFILE MARKER: prints the PID recorded in PIDFILE if that process is alive and its
# command line contains MARKER (guards against a recycled PID); prints nothing otherwise.
pid_of() {
	local file="$1" marker="$2" pid
	[[ -f "$file" ]] || return 0
	pid="$(tr -dc '0-9' <"$file")"
	[[ -n "$pid" ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	local cmdline
	cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
	if [[ "$cmdline" == *"$marker"* ]]; then
		printf '%s\n' "$pid"
	fi
}

# clear_stale_pid PIDFILE MARKER: removes PIDFILE when it names no live matching process.
clear_stale_pid() {
	if [[ -f "$1" && -z "$(pid_of "$1" "$2")" ]]; then
		log "removing stale PID file $1"
		rm -f "$1"
	fi
}

# rotate_log FILE: keep the previous run's log as FILE.1 so each start begins a fresh log
# (readiness checks grep the fresh one).
rotate_log() {
	if [[ -s "$1" ]]; then
		mv -f "$1" "$1.1"
	fi
	: >"$1"
}

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, stdin closed, stdout+stderr
# appended to LOGFILE) and record its PID. The wrapper shell writes its own PID and then execs
# CMD, so the PID file names the service process itself. fd 9 (with_lock's lock) is closed
# so the service does not keep holding the lock.
spawn() {
	local pidfile="$1" logfile="$2"
	shift 2
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # $$ and $0 are meant for the inner shell
	setsid bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
		>>"$logfile" 2>&1 </dev/null 9>&- &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$pidfile" ]] && return 0
		sleep 0.1
	done
	die "process did not start (no PID file $pidfile after 5 s); see $logfile"
}

# stop_process NAME PIDFILE MARKER TIMEOUT [SIGNAL]: graceful stop (SIGNAL, default TERM),
# then SIGKILL after TIMEOUT seconds. Idempotent: succeeds when nothing is running.
stop_process() {
	local name="$1" pidfile="$2" marker="$3" timeout="$4" sig="${5:-TERM}" pid start
	pid="$(pid_of "$pidfile" "$marker")"
	if [[ -z "$pid" ]]; then
		clear_stale_pid "$pidfile" "$marker"
		log "$name is not running"
		return 0
	fi
	start=$SECONDS
	log "stopping $name (pid $pid, SIG$sig, up to ${timeout}s before SIGKILL)"
	kill -"$sig" "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - start >= timeout)); then
			warn "$name did not exit within ${timeout}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 1
			break
		fi
		sleep 0.5
	done
	kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) is still alive after SIGKILL."
	rm -f "$pidfile"
	log "$name stopped in $((SECONDS - start))s"
}

# wait_until DESC TIMEOUT PIDFILE MARKER LOGFILE CHECK...: poll CHECK (a command) every
# second until it succeeds. Fails fast, with the tail of LOGFILE, if the process dies, and
# fails after TIMEOUT seconds with a hint.
wait_until() {
	local desc="$1" timeout="$2" pidfile="$3" marker="$4" logfile="$5" start=$SECONDS
	shift 5
	log "waiting up to ${timeout}s for $desc"
	while true; do
		if "$@"; then
			log "$desc: ok after $((SECONDS - start))s"
			return 0
		fi
		if [[ -z "$(pid_of "$pidfile" "$marker")" ]]; then
			show_log_tail "$logfile"
			die "the process exited before $desc. See the log above (full: $logfile)."
		fi
		if ((SECONDS - start >= timeout)); then
			show_log_tail "$logfile"
			die "timed out after ${timeout}s waiting for $desc. It is still running (pid file $pidfile): look at $logfile, then stop it with '$0 stop'; on a busy machine raise ${START_TIMEOUT_VAR:-the timeout} (now ${timeout}s)."
		fi
		sleep 1
	done
}

show_log_tail() {
	[[ -f "$1" ]] || return 0
	printf '[%s] ---- last 40 lines of %s ----\n' "$LOG_TAG" "$1" >&2
	tail -n 40 "$1" >&2 || true
	printf '[%s] ----\n' "$LOG_TAG" >&2
}

# log_has FILE TEXT: fixed-string grep.
log_has() { [[ -f "$1" ]] && grep -qF -- "$2" "$1"; }

# --- Maven ---------------------------------------------------------------------------------

# maven_copy_deps POM LIBDIR LOGFILE [MVN ARGS...]: copy POM's runtime dependencies into
# LIBDIR atomically (into a temp dir first, then renamed), logging Maven's output to LOGFILE.
maven_copy_deps() {
	local pom="$1" lib="$2" logfile="$3" tmp
	shift 3
	require_cmd mvn "apt-get install -y maven (Maven 3.6+; it reaches Maven Central by itself)."
	tmp="$lib.tmp.$$"
	rm -rf "$tmp"
	log "resolving jars with Maven into $lib (log: $logfile)"
	if ! mvn -B -ntp "$@" -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >>"$logfile" 2>&1; then
		rm -rf "$tmp"
		show_log_tail "$logfile"
		die "Maven could not fetch the jars (see above, full log: $logfile). Fix: check that Maven Central is reachable (mvn -v; proxy settings in ~/.m2/settings.xml), then re-run '$0 fetch'."
	fi
	rm -rf "$lib"
	mv "$tmp" "$lib"
}

# maven_tree_has POM LOGFILE PATTERN [MVN ARGS...]: true when `mvn dependency:tree` of POM
# contains an artifact matching the extended regex PATTERN; the tree is saved next to POM.
maven_tree_has() {
	local pom="$1" logfile="$2" pattern="$3" tree
	shift 3
	tree="$(dirname "$pom")/dependency-tree.txt"
	if ! mvn -B -ntp "$@" -f "$pom" dependency:tree -DoutputFile="$tree" >>"$logfile" 2>&1; then
		show_log_tail "$logfile"
		die "mvn dependency:tree failed (full log: $logfile). Fix: check that Maven Central is reachable, then re-run '$0 fetch'."
	fi
	grep -Eq -- "$pattern" "$tree"
}

# elapsed START: "Ns" since START (a $SECONDS value).
elapsed() { printf '%ss' "$((SECONDS - $1))"; }
