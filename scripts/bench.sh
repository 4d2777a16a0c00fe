#!/usr/bin/env bash
# Benchmarks, run by hand (not by CI): the table of issue 12. Each figure is measured beside its
# reference in the same run, the two alternating, RUNS times each (default 5); the table shows
# medians and the ratio dbtool / reference.
#
#   dev reset (whole process)     vs  pg_restore --single-transaction --clean of a dump of the same data:
#                                     warm (the path a repeated reset takes) and --cold
#   bench reset (atomic)          vs  pg_restore --single-transaction into an empty schema
#   bench reset --parallel N      vs  pg_restore -j N --clean   (N = cores, at least 2; n/a until
#                                     `dbtool reset --parallel` exists)
#   load reset (5.8M rows)        vs  pg_restore --single-transaction into an empty schema
#                                     (LOAD_RUNS times, default 3; BENCH_SKIP_LOAD=1 skips it)
#   server floor                  bench reset vs one transaction of server-side COPY ... FROM the
#                                     binary files of the same rows (written once with COPY ... TO)
#                                     plus the same index and key builds (superuser, local server)
#   peak RSS                      dev and load reset
#   partitioned reset (1M rows)   a Pagila-shaped project (tests/pagila, bench/pagila/profiles:
#                                     payment partitioned by month) vs pg_restore
#                                     --single-transaction of a dump of the same data into an empty
#                                     schema (PARTITIONED_RUNS times, default RUNS;
#                                     BENCH_SKIP_PARTITIONED=1 skips it)
#   huge reset (10M rows)         the example app with 3M visits (bench/huge/profiles): peak RSS
#                                     and that no row limit is hit, once (BENCH_SKIP_HUGE=1 skips it)
#   unique column (10M rows)      peak RSS and time of `dbtool profiles` on bench/unique (the
#                                     unique check of a 10M-row column, no database)
#   generation alone              rows/s of the bench profile on one core, no database
#                                     (cargo run --release --example generate): text COPY, and
#                                     binary COPY with the client's digest as a reset sends it;
#                                     and the spec `dbtool init` infers for the same schema
# Then, for one bench reset: client CPU, server CPU and WAL by phase.
#
# Uses DATABASE_URL's server when set (it creates and drops databases bench_*), else a sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
LOAD_RUNS=${LOAD_RUNS:-3}
BENCH_SKIP_LOAD=${BENCH_SKIP_LOAD:-0}
PARTITIONED_RUNS=${PARTITIONED_RUNS:-$RUNS}
BENCH_SKIP_PARTITIONED=${BENCH_SKIP_PARTITIONED:-0}
BENCH_SKIP_HUGE=${BENCH_SKIP_HUGE:-0}

need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null 2>&1 || need+=(bc)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
ls /usr/lib/postgresql/*/bin/pg_restore >/dev/null 2>&1 || need+=(postgresql-client)
scripts/install-packages.sh "${need[@]}"
cargo build --release --locked -q
cargo build --release --locked -q --example generate

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
sql() { pg psql -q -X -At -v ON_ERROR_STOP=1 "$(url "$1")" -c "SET client_min_messages = warning" -c "$2"; }
for db in bench_dbtool bench_restore bench_floor bench_pagila bench_huge; do
    sql postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    sql postgres "CREATE DATABASE $db"
done
work=$(mktemp -d)
floor_dir=""
cleanup() {
    rm -rf "$work"
    [ -z "$floor_dir" ] || rm -rf "$floor_dir"
    [ -z "${DBTOOL_SANDBOX:-}" ] || scripts/sandbox.sh stop
}
trap cleanup EXIT

# DBTOOL_BIN compares another build (e.g. a copy of an older one) against the same references.
dbtool=${DBTOOL_BIN:-./target/release/dbtool}
cores=$(nproc)
jobs=$((cores < 2 ? 2 : cores))
has_parallel=0
"$dbtool" reset --help | grep -q -- --parallel && has_parallel=1
has_cold=0
"$dbtool" reset --help | grep -q -- --cold && has_cold=1
: > "$work/dev.cold"; : > "$work/bench.cold"

now() { date +%s.%N; }
# Seconds of a command; its peak RSS (KB) goes to $work/rss, its user and system CPU seconds to
# $work/cpu.
timed() {
    local t0 t1
    t0=$(now)
    /usr/bin/time -f "%M %U %S" -o "$work/rusage" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(now)
    cut -d' ' -f1 "$work/rusage" > "$work/rss"
    cut -d' ' -f2- "$work/rusage" > "$work/cpu"
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
median_int() { median | xargs printf "%.0f"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }

reset() { "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile "$@"; }
rows_of() { "$dbtool" profiles | sed -n "s/^$1 (seed [0-9]*, \([0-9]*\) rows).*/\1/p"; }
# The dump (pg_dump -n public) creates the schema itself.
empty_schema() { sql "$1" "DROP SCHEMA IF EXISTS public CASCADE"; }
restore_into_empty() { # pg_restore --single-transaction of $1's dump into an empty public schema
    empty_schema bench_restore
    timed "$bindir/pg_restore" --single-transaction --no-owner -d "$(url bench_restore)" "$work/$1.dump"
}
dump() { # the data of the last reset, as pg_restore sees it
    pg pg_dump -Fc -n public -f "$work/$1.dump" "$(url bench_dbtool)"
}
# Profile $1's atomic reset beside pg_restore --single-transaction of its data into an empty
# schema, $2 times each, alternating: seconds in $work/$1.dbtool and $work/$1.restore, the
# reset's peak RSS in $work/$1.rss.
reset_vs_restore() {
    reset "$1" >/dev/null 2>&1
    dump "$1"
    for _ in $(seq "$2"); do
        timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile "$1" >> "$work/$1.dbtool"
        cat "$work/rss" >> "$work/$1.rss"
        restore_into_empty "$1" >> "$work/$1.restore"
        if [ "$1" = bench ] && [ "$has_cold" = 1 ]; then
            timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile "$1" --cold >> "$work/$1.cold"
        fi
    done
}

# ---- dev: whole process vs pg_restore --single-transaction --clean
reset dev >/dev/null 2>&1
dump dev
empty_schema bench_restore
pg pg_restore --single-transaction --no-owner -d "$(url bench_restore)" "$work/dev.dump"
# The physical floor of a warm dev reset: one psql session doing only what a reset must (BEGIN,
# the lock, TRUNCATE of the tables, binary COPY of the same rows parents first, the meta row,
# COMMIT, unlock): no digests, no checks of the catalog, foreign keys not checked (superuser:
# session_replication_role = replica; else checked row by row). One connection where dbtool
# opens two: a lower bound. If it is above 0.5x pg_restore, so is every warm reset.
dev_floor_sql=$work/dev-floor.sql
mkdir -p "$work/dev-floor"
{
    echo "BEGIN;"
    [ "$(sql postgres "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] &&
        echo "SET LOCAL session_replication_role = replica;"
    echo "SELECT pg_catalog.pg_advisory_lock(4242);"
    echo "TRUNCATE TABLE $(sql bench_dbtool "SELECT string_agg(format('public.%I', relname), ', ') FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'");"
    # Parents first: dbtool's own load order (its plan's levels).
    for t in $(sql bench_dbtool "WITH RECURSIVE d(oid, depth) AS (
                 SELECT c.oid, 0 FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                 UNION ALL SELECT f.conrelid, d.depth + 1 FROM pg_constraint f JOIN d ON f.confrelid = d.oid
                  WHERE f.contype = 'f' AND f.conrelid <> f.confrelid AND d.depth < 20)
               SELECT relname FROM d JOIN pg_class c USING (oid) GROUP BY relname ORDER BY max(depth), relname"); do
        sql bench_dbtool "COPY public.\"$t\" TO STDOUT (FORMAT binary)" > "$work/dev-floor/$t.bin"
        echo "\\copy public.\"$t\" FROM '$work/dev-floor/$t.bin' (FORMAT binary, FREEZE)"
    done
    echo "UPDATE dbtool.meta SET updated_at = pg_catalog.now() WHERE key = 'last_reset:public';"
    echo "COMMIT;"
    echo "SELECT pg_catalog.pg_advisory_unlock(4242);"
} > "$dev_floor_sql"
: > "$work/dev.floor"
for _ in $(seq "$RUNS"); do
    timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile dev >> "$work/dev.dbtool"
    timed "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -f "$dev_floor_sql" "$(url bench_dbtool)" >> "$work/dev.floor"
    cat "$work/rss" >> "$work/dev.rss"
    timed "$bindir/pg_restore" --single-transaction --clean --if-exists --no-owner \
        -d "$(url bench_restore)" "$work/dev.dump" >> "$work/dev.restore"
    if [ "$has_cold" = 1 ]; then
        timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile dev --cold >> "$work/dev.cold"
        # The next (timed) reset is warm again: the cold one recorded what the migrations left.
    fi
done

# ---- bench: atomic reset vs pg_restore --single-transaction; parallel vs pg_restore -j
reset_vs_restore bench "$RUNS"
: > "$work/bench.par"; : > "$work/bench.parref"
if [ "$has_parallel" = 1 ]; then
    for _ in $(seq "$RUNS"); do
        timed "$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile bench --parallel "$jobs" >> "$work/bench.par"
        timed "$bindir/pg_restore" -j "$jobs" --clean --if-exists --no-owner \
            -d "$(url bench_restore)" "$work/bench.dump" >> "$work/bench.parref"
    done
fi

# ---- server floor: COPY FROM binary files written once by the server, plus the same builds
floor_ok=0
: > "$work/floor"
datadir=$(sql postgres "SHOW data_directory" 2>/dev/null || true)
if [ "$(sql postgres "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] && [ -d "$datadir" ]; then
    floor_dir=$(mktemp -d /tmp/dbtool-bench-floor-XXXXXX)
    chown "$(stat -c %U "$datadir")" "$floor_dir"
    reset bench >/dev/null 2>&1
    {
        echo "SET client_min_messages = warning;"
        echo "BEGIN;"
        pg pg_restore --section=pre-data --no-owner -f - "$work/bench.dump"
        for t in $(sql bench_dbtool "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                     WHERE nspname = 'public' AND relkind = 'r' ORDER BY 1"); do
            sql bench_dbtool "COPY public.$t TO '$floor_dir/$t.bin' (FORMAT binary)"
            echo "COPY public.$t FROM '$floor_dir/$t.bin' (FORMAT binary, FREEZE);"
        done
        # The dump's post-data: primary keys, unique constraints, indexes, foreign keys.
        pg pg_restore --section=post-data --no-owner -f - "$work/bench.dump"
        echo "COMMIT;"
    } | grep -v '^SELECT pg_catalog.set_config' > "$work/floor.sql"
    for _ in $(seq "$RUNS"); do
        empty_schema bench_floor
        timed "$bindir/psql" -q -X -v ON_ERROR_STOP=1 "$(url bench_floor)" -f "$work/floor.sql" >> "$work/floor"
    done
    floor_ok=1
fi

# ---- load profile: atomic reset vs pg_restore --single-transaction
: > "$work/load.dbtool"; : > "$work/load.restore"; : > "$work/load.rss"
if [ "$BENCH_SKIP_LOAD" != 1 ]; then
    reset_vs_restore load "$LOAD_RUNS"
fi

# ---- partitioned: a Pagila-shaped project, 1M payment rows in monthly partitions (issue 20)
pagila=(--migrations-dir tests/pagila/migrations --seeds-dir tests/pagila/seeds --profiles-dir bench/pagila/profiles)
: > "$work/payment.dbtool"; : > "$work/payment.restore"; : > "$work/payment.rss"
: > "$work/payment.dbtool.cpu"; : > "$work/payment.restore.cpu"
# The client's CPU seconds (user + system) of the last `timed` command.
client_cpu() { awk '{printf "%.2f\n", $1 + $2}' "$work/cpu"; }
if [ "$BENCH_SKIP_PARTITIONED" != 1 ]; then
    "$dbtool" --database-url "$(url bench_pagila)" "${pagila[@]}" reset --yes --profile payment >/dev/null 2>&1
    pg pg_dump -Fc -n public -f "$work/payment.dump" "$(url bench_pagila)"
    for _ in $(seq "$PARTITIONED_RUNS"); do
        timed "$dbtool" --database-url "$(url bench_pagila)" "${pagila[@]}" reset --yes --profile payment >> "$work/payment.dbtool"
        cat "$work/rss" >> "$work/payment.rss"
        client_cpu >> "$work/payment.dbtool.cpu"
        restore_into_empty payment >> "$work/payment.restore"
        client_cpu >> "$work/payment.restore.cpu"
    done
fi

# ---- huge: the example app with 3M visits and about 10M rows, once: peak RSS, no row limit hit
huge_rss=n/a; huge_t=n/a; huge_rows=n/a
if [ "$BENCH_SKIP_HUGE" != 1 ]; then
    huge_t=$(timed "$dbtool" --database-url "$(url bench_huge)" --profiles-dir bench/huge/profiles reset --yes --profile huge)
    huge_rss=$(cat "$work/rss")
    # Every row the profile promises is in the database (a limit would have been exit 2).
    huge_rows=$("$dbtool" --database-url "$(url bench_huge)" fingerprint --json \
                | sed -n 's/.*"rows": *\([0-9]*\).*/\1/p' | paste -sd+ | bc)
fi

# ---- a 10M-row unique column: the unique check's peak RSS, no database
uniq_t=$(timed "$dbtool" --seeds-dir bench/unique/seeds --profiles-dir bench/unique/profiles profiles)
uniq_rss=$(cat "$work/rss")

# ---- generation alone, one core, no database
gen_rate() { taskset -c 0 ./target/release/examples/generate --profile bench "$@" | sed -n 's/.* \([0-9]*\) rows\/s.*/\1/p'; }
gen_text=$(gen_rate)
# As a reset sends them: binary COPY typed from the catalog, and the client's digest.
gen_reset=$(gen_rate --types-from "$(url bench_dbtool)" --binary --digest)
# The spec `dbtool init` infers from the same schema, counted to about the bench profile's rows
# (200,000 a counted table, 1 to 4 a parent): generation alone, text, as above.
inferred=$work/inferred
./target/release/dbtool -q --database-url "$(url bench_dbtool)" --seeds-dir "$inferred/seeds" \
    --profiles-dir "$inferred/profiles" init --from-database
sed -e 's/^\([a-z_]*\) = 50$/\1 = 200000/' "$inferred/profiles/dev.toml" > "$inferred/profiles/bench.toml"
gen_inferred=$(gen_rate --project "$inferred")
# On 1, 2, 4 and 8 threads, as an atomic reset generates rows (chunk by chunk, written in key
# order): rows/s, and whether every byte of COPY and every digest equals the 1-thread run's.
gen_threads=()
for n in 1 2 4 8; do
    line=$(./target/release/examples/generate --profile bench --types-from "$(url bench_dbtool)" \
        --binary --digest --threads "$n")
    hashes=$(echo "$line" | sed -n 's/.*COPY md5 \([0-9a-f]*\), digests md5 \([0-9a-f]*\).*/\1 \2/p')
    [ "$n" = 1 ] && hashes_1=$hashes
    same=no; [ -n "$hashes" ] && [ "$hashes" = "$hashes_1" ] && same=yes
    gen_threads+=("$n $(echo "$line" | sed -n 's/.* \([0-9]*\) rows\/s.*/\1/p') $same")
done

# ---- the table
dev_t=$(median < "$work/dev.dbtool"); dev_r=$(median < "$work/dev.restore")
big_t=$(median < "$work/bench.dbtool"); big_r=$(median < "$work/bench.restore")
dev_rss=$(median_int < "$work/dev.rss")
row() { # measure dbtool reference goal
    if [ "$2" = n/a ] || [ "$3" = n/a ]; then
        printf '%-58s %9s %9s %7s %s\n' "$1" "$2" "$3" n/a "$4"
    else
        printf '%-58s %8ss %8ss %7s %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")" "$4"
    fi
}
printf '\n%-58s %9s %9s %7s %s\n' "measure (median of $RUNS, alternating)" dbtool reference ratio goal
if [ "$has_cold" = 1 ]; then
    row "dev reset, warm path, vs pg_restore -1 --clean" "$dev_t" "$dev_r" "<= 0.5"
    row "dev reset --cold vs pg_restore -1 --clean" "$(median < "$work/dev.cold")" "$dev_r" "<= 1.0"
    row "dev floor (psql: truncate, COPY, commit) vs pg_restore -1" "$(median < "$work/dev.floor")" "$dev_r" "(the warm goal's floor)"
    row "bench atomic reset, warm, vs pg_restore -1 into empty" "$big_t" "$big_r" "<= 0.85"
    row "bench atomic reset --cold vs pg_restore -1 into empty" "$(median < "$work/bench.cold")" "$big_r" "<= 0.85"
else
    row "dev reset vs pg_restore -1 --clean" "$dev_t" "$dev_r" "<= 0.7"
    row "bench atomic reset vs pg_restore -1 into empty schema" "$big_t" "$big_r" "<= 0.9"
fi
if [ "$has_parallel" = 1 ]; then
    row "bench reset --parallel $jobs vs pg_restore -j $jobs --clean" "$(median < "$work/bench.par")" "$(median < "$work/bench.parref")" "<= 0.8"
else
    row "bench reset --parallel vs pg_restore -j $jobs (no --parallel)" n/a n/a "<= 0.8"
fi
if [ "$BENCH_SKIP_LOAD" != 1 ]; then
    row "load reset vs pg_restore -1 (median of $LOAD_RUNS)" "$(median < "$work/load.dbtool")" "$(median < "$work/load.restore")" "<= 0.85"
else
    row "load reset (skipped: BENCH_SKIP_LOAD=1)" n/a n/a "<= 0.85"
fi
if [ "$floor_ok" = 1 ]; then
    row "bench reset vs server floor (COPY FROM binary + builds)" "$big_t" "$(median < "$work/floor")" "<= 1.15"
else
    row "server floor (needs a local server and a superuser)" n/a n/a "<= 1.15"
fi
printf '%-58s %8sKB %9s %7s %s\n' "peak RSS, dev reset" "$dev_rss" "64 MB" "" "<= 64 MB"
if [ "$BENCH_SKIP_LOAD" != 1 ]; then
    load_rss=$(median_int < "$work/load.rss")
    printf '%-58s %8sKB %7sKB %7s %s\n' "peak RSS, load reset vs dev reset" "$load_rss" "$dev_rss" "$(ratio "$load_rss" "$dev_rss")" "<= 64 MB and <= 2.0"
fi
if [ "$BENCH_SKIP_PARTITIONED" != 1 ]; then
    row "partitioned reset (1M payment rows) vs pg_restore -1 (median of $PARTITIONED_RUNS)" \
        "$(median < "$work/payment.dbtool")" "$(median < "$work/payment.restore")" "<= 1.0"
    row "  ... client CPU (user + system) of each" \
        "$(median < "$work/payment.dbtool.cpu")" "$(median < "$work/payment.restore.cpu")" "report"
else
    row "partitioned reset (skipped: BENCH_SKIP_PARTITIONED=1)" n/a n/a "<= 1.0"
fi
if [ "$BENCH_SKIP_HUGE" != 1 ]; then
    printf '%-58s %8sKB %9s %7s %s\n' "peak RSS, huge reset ($huge_rows rows in ${huge_t}s)" "$huge_rss" "64 MB" "" "<= 64 MB, every row"
else
    printf '%-58s %9s %9s %7s %s\n' "peak RSS, huge reset (skipped: BENCH_SKIP_HUGE=1)" n/a "" "" "<= 64 MB"
fi
printf '%-58s %8sKB %9s %7s %s\n' "peak RSS, 10M-row unique column checked (${uniq_t}s)" "$uniq_rss" "64 MB" "" "<= 64 MB"
printf '%-58s %9s %9s %7s %s\n' "generation alone, bench profile, one core (rows/s): text" "$gen_text" "" "" "report"
printf '%-58s %9s %9s %7s %s\n' "  ... binary COPY and digest, as a reset sends rows" "$gen_reset" "" "" "report"
printf '%-58s %9s %9s %7s %s\n' "generation alone, the spec dbtool init infers (text)" "$gen_inferred" "" "" "report"
for entry in "${gen_threads[@]}"; do
    read -r n r same <<< "$entry"
    printf '%-58s %9s %9s %7s %s\n' "  ... on $n threads (binary + digest; same bytes: $same)" "$r" "" "" "near-linear, same bytes"
done
printf '%-58s %9s\n' "bench reset rows/s" "$(rate "$(rows_of bench)" "$big_t")"
printf '(rows: dev %s, bench %s, load %s; %s cores)\n' "$(rows_of dev)" "$(rows_of bench)" "$(rows_of load)" "$cores"
printf '(rows: partitioned %s, huge %s expected)\n' \
    "$("$dbtool" "${pagila[@]}" profiles | sed -n 's/^payment (seed [0-9]*, \([0-9]*\) rows).*/\1/p')" \
    "$("$dbtool" --profiles-dir bench/huge/profiles profiles | sed -n 's/^huge (seed [0-9]*, \([0-9]*\) rows).*/\1/p')"

# ---- where one bench reset's time goes: CPU of dbtool and of the server, and WAL, by phase
# Samples /proc every 0.1 s: dbtool's own CPU ticks, and the server's (every process of the
# postmaster, plus the children it has reaped). Needs a local server; else only the client.
postmaster=""
[ -r "$datadir/postmaster.pid" ] && postmaster=$(head -n 1 "$datadir/postmaster.pid")
server_ticks() {
    [ -n "$postmaster" ] || { echo 0; return; }
    local total pid
    total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
    for pid in $(pgrep -P "$postmaster"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
wal_lsn() { sql postgres "SELECT pg_current_wal_lsn()"; }
lsn0=$(wal_lsn)
"$dbtool" --database-url "$(url bench_dbtool)" reset --yes --profile bench --log-format json \
    2>"$work/phases.json" >/dev/null &
client=$!
while kill -0 "$client" 2>/dev/null; do
    c=$(awk '{print $14 + $15}' "/proc/$client/stat" 2>/dev/null || echo "")
    [ -n "$c" ] && echo "$(now) $c $(server_ticks)"
    sleep 0.1
done > "$work/samples"
wait "$client"
wal=$(sql postgres "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0'))")
hz=$(getconf CLK_TCK)
printf '\nbench reset, one run, by phase: wall, dbtool CPU, server CPU (s; %s cores)\n' "$cores"
grep -E '"event":"phase-(started|finished)"' "$work/phases.json" \
    | sed -n 's/.*"phase":"\([a-z]*\)".*"ts":"\([^"]*\)".*/\1 \2/p; s/.*"ts":"\([^"]*\)".*"phase":"\([a-z]*\)".*/\2 \1/p' \
    | while read -r phase ts; do echo "$phase $(date -d "$ts" +%s.%N)"; done > "$work/phase_times"
awk -v hz="$hz" '
    NR == FNR { if (!($1 in start)) start[$1] = $2; else end[$1] = $2; if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 } next }
    # CPU time only grows: a backend that has exited but is not yet reaped drops out of the
    # sum for a moment, so each sample keeps at least the one before it.
    { t[++m] = $1; c[m] = $2; s[m] = (m > 1 && s[m - 1] > $3) ? s[m - 1] : $3 }
    function at(x, arr,   i) { for (i = 1; i <= m; i++) if (t[i] >= x) return arr[i]; return arr[m] }
    END {
        for (i = 1; i <= n; i++) {
            p = order[i]; if (!(p in end)) continue
            printf "  %-10s %6.2f %6.2f %6.2f\n", p, end[p] - start[p],
                (at(end[p], c) - at(start[p], c)) / hz, (at(end[p], s) - at(start[p], s)) / hz
        }
        printf "  %-10s %6.2f %6.2f %6.2f\n", "total", t[m] - t[1], (c[m] - c[1]) / hz, (s[m] - s[1]) / hz
    }' "$work/phase_times" "$work/samples"
printf '  WAL written: %s\n' "$wal"
