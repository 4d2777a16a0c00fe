#!/usr/bin/env bash
# Where one reset's time goes, by hand: `perf record` of the whole machine during one reset,
# then the top symbols of dbtool and of the reset's own server backends, and the WAL it wrote.
#
#   DATABASE_URL=postgres://... scripts/profile-reset.sh [PROFILE (bench)] [dbtool args...]
#
# Needs root (or perf_event_paranoid <= 0) and a local server; installs linux-perf if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-bench}
shift || true
command -v perf >/dev/null 2>&1 || scripts/install-packages.sh linux-perf
: "${DATABASE_URL:?set DATABASE_URL}"
cargo build --release --locked -q
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
sql() { "$bindir/psql" -q -X -At -v ON_ERROR_STOP=1 "$1" -c "SET client_min_messages = warning" -c "$2"; }
db=bench_profile
url="${DATABASE_URL%/*}/$db"
sql "$DATABASE_URL" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
sql "$DATABASE_URL" "CREATE DATABASE $db"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# PERF_DATA=FILE keeps the recording for perf report.
[ -z "${PERF_DATA:-}" ] || trap 'mv "$work/perf.data" "$PERF_DATA"; rm -rf "$work"' EXIT
dbtool=./target/release/dbtool
"$dbtool" --database-url "$url" reset --yes --profile "$profile" "$@" >/dev/null 2>&1

lsn=$(sql "$DATABASE_URL" "SELECT pg_current_wal_lsn()")
perf record -a -g -F 499 -o "$work/perf.data" -- \
    "$dbtool" --database-url "$url" reset --yes --profile "$profile" "$@" 2>"$work/log" >/dev/null &
recorder=$!
# The reset's backends: its work connections show up in pg_stat_activity under its name.
while kill -0 "$recorder" 2>/dev/null; do
    sql "$DATABASE_URL" "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND application_name LIKE 'dbtool reset%'" >> "$work/pids" || true
    sleep 0.05
done
wait "$recorder"
wal=$(sql "$DATABASE_URL" "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn'))")
pids=$(sort -u "$work/pids" | paste -sd, -)
report() { perf report -i "$work/perf.data" --no-children --stdio --percentage relative --percent-limit 1 -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 25; }
echo "== dbtool (client), by symbol"
report --comm dbtool --sort sym
echo "== the reset's backends ($pids), by symbol"
report --pid "$pids" --sort sym
echo "== samples by command, whole machine"
perf report -i "$work/perf.data" --no-children --stdio --sort comm -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12
echo "== WAL written by the reset: $wal"
grep -o '"ms":[0-9]*,"phase":"[a-z]*"' "$work/log" | tr '\n' ' '
echo
sql "$DATABASE_URL" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
