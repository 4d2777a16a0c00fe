#!/usr/bin/env bash
# Benchmarks, run by hand (not by CI). Each figure is measured beside its reference in the same
# run, the two alternating, RUNS times each (default 5); the table shows medians.
#
#   dev reset (whole process)      vs  pg_restore --clean of a pg_dump -Fc of the same data
#   bench reset (~1.2M rows) rows/s vs pgbench -i of about as many rows
#   bench reset time               vs  pg_restore -j 2 of a dump of the same data
#   peak RSS of the dev and the bench reset
#
# Uses DATABASE_URL's server when set (it creates and drops databases bench_*), else a sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}

need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
scripts/install-packages.sh "${need[@]}"
cargo build --release --locked -q

if [ -z "${DATABASE_URL:-}" ]; then
    export DBTOOL_SANDBOX=bench
    trap 'scripts/sandbox.sh stop' EXIT
    scripts/sandbox.sh start
    DATABASE_URL=$(scripts/sandbox.sh url)
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg() { "$bindir/$1" "${@:2}"; }
base=${DATABASE_URL%/*}
url() { echo "$base/$1"; }
for db in bench_dbtool bench_restore bench_pgbench; do
    pg psql -q -X "$DATABASE_URL" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${DBTOOL_SANDBOX:-}" ] && scripts/sandbox.sh stop' EXIT

dbtool=./target/release/dbtool
now() { date +%s.%N; }
# seconds of a command; its peak RSS (KB) goes to $work/rss
timed() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
median_int() { median | xargs printf "%.0f"; }

reset() { timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile "$1"; }

dump() { # the data of the last reset, as pg_restore sees it
    pg pg_dump -Fc -n public -f "$work/$1.dump" "$(url bench_dbtool)"
    pg pg_restore --no-owner -d "$(url bench_restore)" "$work/$1.dump" 2>/dev/null || true
}

declare -A t
for profile in dev bench; do
    reset "$profile" >/dev/null
    dump "$profile"
    rows=$("$dbtool" profiles | sed -n "s/^$profile (seed [0-9]*, \([0-9]*\) rows).*/\1/p")
    echo "$rows" > "$work/$profile.rows"
    : > "$work/$profile.dbtool"; : > "$work/$profile.restore"; : > "$work/$profile.rss"
    for _ in $(seq "$RUNS"); do
        reset "$profile" >> "$work/$profile.dbtool"
        cat "$work/rss" >> "$work/$profile.rss"
        if [ "$profile" = dev ]; then
            timed "$bindir/pg_restore" --clean --if-exists --no-owner -d "$(url bench_restore)" "$work/dev.dump" >> "$work/$profile.restore"
        else
            timed "$bindir/pg_restore" -j 2 --clean --if-exists --no-owner -d "$(url bench_restore)" "$work/bench.dump" >> "$work/$profile.restore"
        fi
    done
done
scale=$(( ( $(cat "$work/bench.rows") + 50000 ) / 100000 ))
: > "$work/pgbench"
for _ in $(seq "$RUNS"); do
    timed "$bindir/pgbench" -i -q -s "$scale" -I dtgp "$(url bench_pgbench)" >> "$work/pgbench"
done

dev_t=$(median < "$work/dev.dbtool"); dev_r=$(median < "$work/dev.restore")
big_t=$(median < "$work/bench.dbtool"); big_r=$(median < "$work/bench.restore")
pgb_t=$(median < "$work/pgbench")
big_rows=$(cat "$work/bench.rows"); pgb_rows=$((scale * 100000 + scale * 10 + scale))
dev_rss=$(median_int < "$work/dev.rss"); big_rss=$(median_int < "$work/bench.rss")
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }

printf '\n%-44s %14s %14s %7s %s\n' "measure (median of $RUNS)" dbtool reference ratio goal
printf '%-44s %13ss %13ss %7s %s\n' "dev reset vs pg_restore --clean (same data)" "$dev_t" "$dev_r" "$(ratio "$dev_t" "$dev_r")" "<= 1.0"
printf '%-44s %14s %14s %7s %s\n' "bench rows/s vs pgbench -i -s $scale" "$(rate "$big_rows" "$big_t")" "$(rate "$pgb_rows" "$pgb_t")" "$(ratio "$(rate "$big_rows" "$big_t")" "$(rate "$pgb_rows" "$pgb_t")")" ">= 0.75"
printf '%-44s %13ss %13ss %7s %s\n' "bench reset vs pg_restore -j 2 (same data)" "$big_t" "$big_r" "$(ratio "$big_t" "$big_r")" "<= 1.0"
printf '%-44s %12sKB %14s %7s %s\n' "peak RSS, dev reset" "$dev_rss" "64 MB" "" "<= 64 MB"
printf '%-44s %12sKB %12sKB %7s %s\n' "peak RSS, bench reset vs dev reset" "$big_rss" "$dev_rss" "$(ratio "$big_rss" "$dev_rss")" "<= 2.0"
printf '(bench profile: %s rows; pgbench: %s rows)\n' "$big_rows" "$pgb_rows"

# Where the bench reset's time goes: its own phase timings, and the client's CPU.
/usr/bin/time -f '%U %S' -o "$work/cpu" "$dbtool" --database-url "$(url bench_dbtool)" reset --yes \
    --profile bench --log-format json 2>"$work/phases.json" >/dev/null
printf '\nbench reset, one run, by phase (ms):'
grep '"event":"phase-finished"' "$work/phases.json" \
    | sed -n 's/.*"ms":\([0-9]*\),"phase":"\([a-z]*\)".*/ \2 \1/p' | tr '\n' ';'
phase_ms() { sed -n "s/.*\"ms\":\([0-9]*\),\"phase\":\"$1\".*/\1/p" "$work/phases.json" | tail -n 1; }
printf '\n  seed = loading (COPY) %s ms + rebuilding keys, indexes, foreign keys %s ms; record = fingerprint + dbtool.meta\n' \
    "$(( $(phase_ms seed) - $(phase_ms rebuild) ))" "$(phase_ms rebuild)"
printf '  client CPU (user + sys): %s s; the rest of 2 cores x wall time is the server'"'"'s\n' \
    "$(awk '{print $1 + $2}' "$work/cpu")"
