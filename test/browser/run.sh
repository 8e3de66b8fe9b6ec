#!/usr/bin/env bash
# Browser tests of the tracker and the dashboard: Debian's chromium driven by playwright-core,
# against the real glimpse binary. Exits non-zero when a test fails.
#
#   test/browser/run.sh                      everything (about a minute and a half)
#   test/browser/run.sh tracker.test.mjs     one file
#
# Needs Go, Node >= 20 and /usr/bin/chromium (as root, a missing chromium is installed with
# apt-get). npm dependencies (playwright-core here, esbuild in web/) are installed from their
# lockfiles when missing. Screenshots go to test-artifacts/ at the repository root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: sudo apt-get update && sudo apt-get install -y chromium (or set CHROMIUM)" >&2
    exit 1
  fi
fi

# npm ci when node_modules is missing or older than the lockfile.
install() {
  if [ ! -f "$1/node_modules/.package-lock.json" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    echo "== npm ci in ${1#"$repo"/}"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
install "$here"
install "$repo/web"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "== go build ./cmd/glimpse"
(cd "$repo" && go build -o "$bin/glimpse" ./cmd/glimpse)
export GLIMPSE_BIN="$bin/glimpse" CHROMIUM="$chromium"
mkdir -p "$repo/test-artifacts"

cd "$here"
if [ $# -eq 0 ]; then set -- build.test.mjs tracker.test.mjs dashboard.test.mjs; fi
# One file at a time and a bound on each test: the machine is small and shared.
node --test --test-concurrency=1 --test-timeout=120000 "$@"
