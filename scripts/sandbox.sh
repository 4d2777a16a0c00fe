#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 and a free port of its own.
#
#   scripts/sandbox.sh start   initdb + start (installs Debian's postgresql when no server exists)
#   scripts/sandbox.sh url     print its DATABASE_URL
#   scripts/sandbox.sh stop    stop it (by its own pid file) and delete its data
#
# DBTOOL_SANDBOX=NAME runs several side by side (the tests use "test"). As root, the server runs
# as the `postgres` user, with its data in a directory under /tmp that user owns; where it is
# is recorded in .sandbox/NAME.env (git-ignored). DBTOOL_SANDBOX_BINDIR=DIR starts the server
# binaries in DIR (scripts/servers.sh prints one per PostgreSQL major) instead of the newest one
# installed; DBTOOL_SANDBOX_OPTIONS adds server settings ("-c shared_preload_libraries=citus").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
name=${DBTOOL_SANDBOX:-default}
state_dir="$root/.sandbox"
state="$state_dir/$name.env"

die() { echo "sandbox: $*" >&2; exit 1; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir)
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    fi
    return 1
}

install_server() {
    echo "sandbox: no PostgreSQL server binaries found; installing Debian's postgresql package" >&2
    "$root/scripts/install-packages.sh" postgresql postgresql-client
}

# Runs a server binary as the postgres user when we are root (initdb refuses root).
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below the kernel's ephemeral range (32768 and up by default), so that no client
# connection's own port takes the one a server is about to bind; from FROM on.
free_port() {
    local port
    for port in $(seq "${1:-25432}" 25531); do
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    die "no free port between ${1:-25432} and 25531"
}

start() {
    if [ -f "$state" ]; then
        # shellcheck disable=SC1090
        . "$state"
        if [ -f "$DATA/postmaster.pid" ] && kill -0 "$(head -n 1 "$DATA/postmaster.pid")" 2>/dev/null; then
            echo "sandbox: $name is already running: $URL" >&2
            return 0
        fi
        rm -rf "$DATA"
        rm -f "$state"
    fi
    local bindir=${DBTOOL_SANDBOX_BINDIR:-}
    [ -z "$bindir" ] || [ -x "$bindir/initdb" ] || die "no initdb in DBTOOL_SANDBOX_BINDIR=$bindir"
    [ -n "$bindir" ] || bindir=$(find_bindir) || { install_server; bindir=$(find_bindir) || die "postgresql installed, but no initdb found"; }
    local data port
    data=$(mktemp -d /tmp/dbtool-sandbox-XXXXXX)
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$data"
    fi
    chmod 700 "$data"
    as_server_user "$bindir/initdb" -D "$data/pgdata" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$data/initdb.log" 2>&1 \
        || { cat "$data/initdb.log" >&2; rm -rf "$data"; die "initdb failed"; }
    # Another server may take the free port first (sandboxes start side by side): then another.
    local try port=25431
    for try in 1 2 3; do
        port=$(free_port $((port + 1)))
        as_server_user "$bindir/pg_ctl" -D "$data/pgdata" -l "$data/server.log" -w -t 60 \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${DBTOOL_SANDBOX_OPTIONS:-}" \
            start >/dev/null && break
        if [ "$try" -eq 3 ] || ! grep -q "could not bind" "$data/server.log"; then
            cat "$data/server.log" >&2; rm -rf "$data"; die "the server did not start"
        fi
        sleep 1
    done
    mkdir -p "$state_dir"
    cat >"$state" <<STATE
BINDIR=$bindir
DATA=$data/pgdata
ROOT=$data
PORT=$port
URL=postgres://postgres@127.0.0.1:$port/postgres
STATE
    echo "sandbox: $name started on 127.0.0.1:$port (data in $data)" >&2
}

stop() {
    [ -f "$state" ] || { echo "sandbox: $name is not running" >&2; return 0; }
    # shellcheck disable=SC1090
    . "$state"
    if [ -f "$DATA/postmaster.pid" ]; then
        as_server_user "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$ROOT"
    rm -f "$state"
    echo "sandbox: $name stopped" >&2
}

url() {
    [ -f "$state" ] || die "$name is not running; run: scripts/sandbox.sh start"
    # shellcheck disable=SC1090
    . "$state"
    echo "$URL"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    *) echo "usage: scripts/sandbox.sh start|stop|url" >&2; exit 2 ;;
esac
