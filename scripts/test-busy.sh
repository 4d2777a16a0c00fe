#!/usr/bin/env bash
# The busy-machine check (issue 24, point 5): the unit tests and the whole integration suite, N
# times in a row (default 5), against one PostgreSQL major (default 15) in a sandbox of its own,
# while a second process keeps every core busy. Stops at the first failure and shows its log;
# prints one line per run (pass or fail, and how long it took).
#
#   scripts/test-busy.sh [N]
#
# TEST_BUSY_PG=13..18 picks the major. The busy workers (one `sha256sum /dev/zero` per core) run
# in a process group of their own, started after the build, and are stopped by that group on
# the way out, with the sandbox. Arguments after N go to each run of the integration suite (a
# name filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
[ $# -eq 0 ] || shift
case "$runs" in '' | *[!0-9]* | 0) echo "test-busy.sh: N must be a positive number, not '$runs'" >&2; exit 2 ;; esac
major=${TEST_BUSY_PG:-15}
sandbox=test-busy-pg$major

busy=
logs=$(mktemp -d /tmp/dbtool-test-busy-XXXXXX)
stop_all() {
    [ -z "$busy" ] || kill -- "-$busy" 2>/dev/null || true
    DBTOOL_SANDBOX=$sandbox scripts/sandbox.sh stop 2>/dev/null || true
    rm -rf "$logs"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build once, on a quiet machine ---------------------------------------------------------
. scripts/test-tools.sh
echo "== cargo test --no-run" >&2
cargo test --all-targets --locked --no-run
# The integration binary, run directly (no cargo lock, no rebuild between runs).
suite=$(scripts/integration-binary.sh)

# ---- the server ----------------------------------------------------------------------------
bindir=$(scripts/servers.sh bindir "$major")
DBTOOL_SANDBOX=$sandbox DBTOOL_SANDBOX_BINDIR=$bindir scripts/sandbox.sh start
url=$(DBTOOL_SANDBOX=$sandbox scripts/sandbox.sh url)
# The server's own pg_dump where it has one, else the newest (as scripts/test.sh does).
if [ -x "$bindir/pg_dump" ]; then dump=$bindir/pg_dump; else dump=$(scripts/servers.sh pg_dump); fi

# ---- the second process: every core busy ---------------------------------------------------
cores=$(nproc)
# setsid: a process group of its own, whose id is its pid, stopped whole on the way out.
setsid bash -c 'for _ in $(seq "$1"); do sha256sum /dev/zero & done; wait' busy "$cores" &
busy=$!
echo "== $cores busy workers (process group $busy); $runs runs against PostgreSQL $major" >&2

# ---- N runs --------------------------------------------------------------------------------
started=$SECONDS
for i in $(seq "$runs"); do
    log=$logs/run$i.log
    t0=$SECONDS
    if cargo test --lib --bins --examples --locked >"$log" 2>&1 \
        && TEST_DATABASE_URL=$url TEST_PG_BINDIR=$bindir TEST_PG_DUMP=$dump "$suite" "$@" >>"$log" 2>&1; then
        echo "run $i/$runs: pass in $((SECONDS - t0))s"
    else
        echo "run $i/$runs: FAIL in $((SECONDS - t0))s; its output:"
        if grep -q '^failures:$' "$log"; then sed -n '/^failures:$/,$p' "$log"; else tail -n 50 "$log"; fi
        echo "test-busy.sh: failed on run $i of $runs (PostgreSQL $major, $cores busy workers)" >&2
        exit 1
    fi
done
echo "test-busy.sh: $runs runs in a row passed against PostgreSQL $major with $cores cores kept busy, in $((SECONDS - started))s" >&2
