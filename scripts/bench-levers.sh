#!/usr/bin/env bash
# The levers of issue 12, each measured against its baseline in the same run, alternating, RUNS
# times each (default 5), on the bench profile over one work connection (--pool-size 2, the shape
# of the one-transaction reset). Run by hand:
#
#   scripts/bench-levers.sh [BASELINE_BINARY...]
#
# 1. builds: each binary given (e.g. copies of older builds) against ./target/release/dbtool:
#    phase times (seed = load + rebuild; record = fingerprint + dbtool.meta) and wall time
# 2. session settings, set for the bench database (ALTER DATABASE ... SET, so every work
#    connection has them): maintenance_work_mem, max_parallel_maintenance_workers,
#    synchronous_commit
# 3. server-side COPY FROM files of the same rows into tables created in the same transaction:
#    text vs binary (the server's parse cost), binary with FREEZE, and the first full scan after
#    the commit (hint bits)
#
# LEVERS=builds,settings,copy (the default: all) picks sections.
#
# Uses DATABASE_URL's server (a local superuser for 3), else a sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
LEVERS=${LEVERS:-builds,settings,copy}
want() { [[ ",$LEVERS," == *",$1,"* ]]; }
cargo build --release --locked -q
if [ -z "${DATABASE_URL:-}" ]; then
    export DBTOOL_SANDBOX=levers
    trap 'scripts/sandbox.sh stop' EXIT
    scripts/sandbox.sh start
    DATABASE_URL=$(scripts/sandbox.sh url)
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
base=${DATABASE_URL%/*}
db=bench_levers
url="$base/$db"
sql() { "$bindir/psql" -q -X -At -v ON_ERROR_STOP=1 "$1" -c "SET client_min_messages = warning" -c "$2"; }
sql "$DATABASE_URL" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
sql "$DATABASE_URL" "CREATE DATABASE $db"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -z "${DBTOOL_SANDBOX:-}" ] || scripts/sandbox.sh stop' EXIT
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }

# One reset; appends "wall seed rebuild record" (s) to $2.
reset_once() {
    local t0 t1
    t0=$(date +%s.%N)
    "$1" --database-url "$url" --pool-size 2 reset --yes --profile bench --log-format json 2>"$work/log" >/dev/null
    t1=$(date +%s.%N)
    ms() { sed -n "s/.*\"ms\":\([0-9]*\),\"phase\":\"$1\".*/\1/p" "$work/log" | tail -n 1; }
    echo "$(echo "$t1 - $t0" | bc -l) $(ms seed) $(ms rebuild) $(ms record)" >> "$2"
}
summary() { # label file [reference file]
    local w s r c
    w=$(cut -d' ' -f1 "$2" | median); s=$(cut -d' ' -f2 "$2" | median)
    r=$(cut -d' ' -f3 "$2" | median); c=$(cut -d' ' -f4 "$2" | median)
    printf '  %-44s wall %6.2fs  load %6.0fms  rebuild %6.0fms  record %6.0fms' "$1" "$w" "$(echo "$s - $r" | bc)" "$r" "$c"
    [ -z "${3:-}" ] || printf '  wall ratio %s' "$(ratio "$w" "$(cut -d' ' -f1 "$3" | median)")"
    echo
}

current=./target/release/dbtool
"$current" --database-url "$url" reset --yes --profile bench >/dev/null 2>&1
if want builds; then
echo "builds (median of $RUNS, bench profile, --pool-size 2):"
i=0
for build in "$@" "$current"; do : > "$work/build$i"; i=$((i + 1)); done
for _ in $(seq "$RUNS"); do
    i=0
    for build in "$@" "$current"; do reset_once "$build" "$work/build$i"; i=$((i + 1)); done
done
i=0
for build in "$@" "$current"; do summary "$build" "$work/build$i" "$work/build0"; i=$((i + 1)); done
fi

if want settings; then
echo "session settings (median of $RUNS, $current):"
settings=(
    ""
    "maintenance_work_mem = '512MB'"
    "max_parallel_maintenance_workers = 0"
    "synchronous_commit = off"
)
for s in "${!settings[@]}"; do : > "$work/set$s"; done
for _ in $(seq "$RUNS"); do
    for s in "${!settings[@]}"; do
        sql "$DATABASE_URL" "ALTER DATABASE $db RESET ALL"
        [ -z "${settings[$s]}" ] || sql "$DATABASE_URL" "ALTER DATABASE $db SET ${settings[$s]}"
        reset_once "$current" "$work/set$s"
    done
done
sql "$DATABASE_URL" "ALTER DATABASE $db RESET ALL"
printf '  (server defaults: maintenance_work_mem %s, max_parallel_maintenance_workers %s, synchronous_commit %s)\n' \
    "$(sql "$url" "SHOW maintenance_work_mem")" "$(sql "$url" "SHOW max_parallel_maintenance_workers")" "$(sql "$url" "SHOW synchronous_commit")"
for s in "${!settings[@]}"; do summary "${settings[$s]:-defaults}" "$work/set$s" "$work/set0"; done
fi
want copy || exit 0

# COPY FROM files, server side, of the rows of the last reset.
datadir=$(sql "$DATABASE_URL" "SHOW data_directory" 2>/dev/null || true)
if [ "$(sql "$DATABASE_URL" "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" != t ] || [ ! -d "$datadir" ]; then
    echo "COPY FREEZE: n/a (needs a local server and a superuser)"
    exit 0
fi
files=$(mktemp -d /tmp/dbtool-levers-XXXXXX)
chown "$(stat -c %U "$datadir")" "$files"
trap 'rm -rf "$work" "$files"; [ -z "${DBTOOL_SANDBOX:-}" ] || scripts/sandbox.sh stop' EXIT
tables=$(sql "$url" "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE nspname = 'public' AND relkind = 'r' AND relname <> 'refinery_schema_history' ORDER BY 1")
for t in $tables; do
    sql "$url" "COPY public.$t TO '$files/$t.text'"
    sql "$url" "COPY public.$t TO '$files/$t.binary' (FORMAT binary)"
done
load_sql() { # $1: text | binary | freeze
    local format=$1 options="FORMAT $1"
    [ "$1" = freeze ] && { format=binary; options="FORMAT binary, FREEZE"; }
    echo "BEGIN;"
    for t in $tables; do
        echo "CREATE TABLE scratch.$t (LIKE public.$t);"
        echo "COPY scratch.$t FROM '$files/$t.$format' ($options);"
    done
    echo "COMMIT;"
}
scan_sql() { for t in $tables; do echo "SELECT count(*) FROM scratch.$t;"; done; }
timed_psql() {
    local t0 t1
    t0=$(date +%s.%N)
    "$bindir/psql" -q -X -v ON_ERROR_STOP=1 "$url" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
variants="text binary freeze"
for v in $variants; do : > "$work/$v.load"; : > "$work/$v.scan"; done
for _ in $(seq "$RUNS"); do
    for v in $variants; do
        sql "$url" "DROP SCHEMA IF EXISTS scratch CASCADE; CREATE SCHEMA scratch; CHECKPOINT"
        load_sql "$v" | timed_psql >> "$work/$v.load"
        scan_sql | timed_psql >> "$work/$v.scan"
    done
done
sql "$url" "DROP SCHEMA IF EXISTS scratch CASCADE"
echo "server-side COPY FROM files (median of $RUNS; tables created in the transaction, no indexes):"
for v in $variants; do
    printf '  %-8s load %6.3fs (%s of text)  first full scan %6.3fs (%s of text)\n' "$v" \
        "$(median < "$work/$v.load")" "$(ratio "$(median < "$work/$v.load")" "$(median < "$work/text.load")")" \
        "$(median < "$work/$v.scan")" "$(ratio "$(median < "$work/$v.scan")" "$(median < "$work/text.scan")")"
done
