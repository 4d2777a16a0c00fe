#!/usr/bin/env bash
# The one test command (README, .ci/run): fmt, clippy, then every test against real servers.
#
# Unless TEST_DATABASE_URL is set (one server of your own: the suite runs once against it), the
# whole suite runs against throwaway servers of PostgreSQL 13, 14, 15, 16, 17 and 18, two at a
# time, and the Citus tests against a coordinator with two workers (DESIGN.md §9). Everything it
# starts is stopped on the way out. TEST_PG_VERSIONS="15 18" narrows the versions;
# TEST_CITUS=0 skips Citus. Arguments go to each version's run of the integration tests (a name
# filter, --nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }

# ---- packages ------------------------------------------------------------------------------
# Client tools the tests drive: pg_dump (schema comparison), pgbouncer (proxy tests),
# script (a pseudo-terminal for the progress bars), openssl (the TLS tests' certificates), ss
# (the keepalive test), python3 with venv and pip (scripts/check-install.sh; pg_dump for
# the newer servers); OpenSSL's headers build the TLS connector. Server binaries come from
# scripts/servers.sh (Debian's PostgreSQL 15, npm's for the other majors, Citus built from
# ../shared/vendor), cached outside the clone.
need=()
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
[ -n "${TEST_DATABASE_URL:-}" ] || [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v npm >/dev/null 2>&1 || need+=(npm)
scripts/install-packages.sh "${need[@]}"

# ---- static checks -------------------------------------------------------------------------
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings

# ---- install and CI files -----------------------------------------------------------------
# The workflows, CI snippets, Kubernetes examples and Dockerfiles, offline, and the release
# binary's size and --version.
scripts/check-install.sh

# ---- test tools ----------------------------------------------------------------------------
# The migration tools the format tests drive (tests/dbtool/formats.rs): DBTOOL_TEST_NODE_BIN,
# DBTOOL_TEST_SQLX_BIN.
. scripts/test-tools.sh

# ---- build once ----------------------------------------------------------------------------
echo "== cargo test --no-run" >&2
cargo test --all-targets --locked --no-run
if [ -n "${TEST_DATABASE_URL:-}" ]; then
    echo "== cargo test against TEST_DATABASE_URL" >&2
    exec cargo test --all-targets --locked -- "$@"
fi
echo "== unit tests" >&2
cargo test --lib --bins --examples --locked
# The integration binary, run directly once per server (one build, no cargo lock between runs).
suite=$(scripts/integration-binary.sh)

# ---- servers -------------------------------------------------------------------------------
started=()
logs=$(mktemp -d /tmp/dbtool-test-logs-XXXXXX)
stop_all() {
    local name
    for name in "${started[@]}"; do
        DBTOOL_SANDBOX=$name scripts/sandbox.sh stop 2>/dev/null || true
    done
    [ -z "${citus_build:-}" ] || kill -- "-$citus_build" 2>/dev/null || true
    rm -rf "$logs"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME BINDIR [server settings]: a sandbox server, stopped on exit.
start() {
    local name=$1 bindir=$2
    shift 2
    started+=("$name")
    DBTOOL_SANDBOX=$name DBTOOL_SANDBOX_BINDIR=$bindir DBTOOL_SANDBOX_OPTIONS="$*" scripts/sandbox.sh start
}
url() { DBTOOL_SANDBOX=$1 scripts/sandbox.sh url; }

versions=${TEST_PG_VERSIONS:-13 14 15 16 17 18}
# Citus builds (the first time: minutes) while the versions' tests run.
if [ "${TEST_CITUS:-1}" != 0 ]; then
    # A process group of its own, so that an interrupted run stops the whole build.
    setsid scripts/servers.sh citus >"$logs/citus-bindir" 2>"$logs/citus-build.log" &
    citus_build=$!
fi
pg_dump=$(scripts/servers.sh pg_dump)
# The server's own pg_dump where it has one (Debian's hides what Debian's server adds to the
# catalog), else the newest, which dumps every older server.
dump_for() { if [ -x "$1/pg_dump" ]; then echo "$1/pg_dump"; else echo "$pg_dump"; fi; }
declare -A bindirs
for v in $versions; do bindirs[$v]=$(scripts/servers.sh bindir "$v"); done

# ---- the whole suite against each PostgreSQL major, two at a time --------------------------
failed=()
pending=($versions)
while [ ${#pending[@]} -gt 0 ]; do
    batch=("${pending[@]:0:2}")
    pending=("${pending[@]:2}")
    pids=()
    for v in "${batch[@]}"; do
        echo "== tests against PostgreSQL $v" >&2
        start "test-pg$v" "${bindirs[$v]}"
        TEST_DATABASE_URL=$(url "test-pg$v") TEST_PG_BINDIR=${bindirs[$v]} TEST_PG_DUMP=$(dump_for "${bindirs[$v]}") \
            "$suite" "$@" >"$logs/pg$v.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!batch[@]}"; do
        v=${batch[$i]}
        if wait "${pids[$i]}"; then status=0; else status=$?; fi
        echo "== PostgreSQL $v:" >&2
        cat "$logs/pg$v.log"
        [ "$status" -eq 0 ] || failed+=("PostgreSQL $v")
        DBTOOL_SANDBOX="test-pg$v" scripts/sandbox.sh stop 2>/dev/null || true
    done
done

# ---- Citus: a coordinator and two workers --------------------------------------------------
if [ "${TEST_CITUS:-1}" != 0 ]; then
    echo "== tests against Citus (a coordinator and two workers)" >&2
    if wait "$citus_build"; then
        citus_build=
        citus_bin=$(cat "$logs/citus-bindir")
        for node in coordinator worker1 worker2; do
            start "test-citus-$node" "$citus_bin" -c shared_preload_libraries=citus -c max_prepared_transactions=100
        done
        # Each test makes its own database a Citus one (tests/dbtool/citus.rs): Citus keeps its
        # nodes per database.
        coordinator=$(url test-citus-coordinator)
        TEST_DATABASE_URL=$coordinator TEST_CITUS_URL=$coordinator \
            TEST_CITUS_WORKER_URLS="$(url test-citus-worker1) $(url test-citus-worker2)" \
            TEST_PG_BINDIR=$citus_bin TEST_PG_DUMP=$(dump_for "$citus_bin") \
            "$suite" citus:: || failed+=("Citus")
    else
        citus_build=
        cat "$logs/citus-build.log" >&2
        failed+=("Citus (the build failed)")
    fi
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "test.sh: tests failed against: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: every test passed against PostgreSQL ${versions// /, }$([ "${TEST_CITUS:-1}" != 0 ] && echo ' and Citus')" >&2
