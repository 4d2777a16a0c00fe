#!/usr/bin/env bash
# Builds dbtool, starts a throwaway PostgreSQL (scripts/sandbox.sh, named "quickstart") and runs
# the main job against a database of its own there: `dbtool reset --profile dev --yes`.
#
# It never uses an inherited DATABASE_URL (nor PGHOST and the other libpq variables, nor a
# .env file): that may well point at a database you care about. To reset another server's
# database instead, name it in the script's own variable:
#   QUICKSTART_DATABASE_URL=postgres://me@localhost/app_dev scripts/quickstart.sh
# DBTOOL_BIN=path/to/dbtool uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

# Measured: 10 minutes for the first release build on a busy 2-core machine (README, Install).
first_build="about 10 minutes on 2 cores (less with more)"

if [ -n "${DATABASE_URL:-}" ]; then
    echo "quickstart: DATABASE_URL is set in your environment; the quickstart ignores it (set QUICKSTART_DATABASE_URL to reset another server's database)" >&2
fi
# Nothing inherited names a server for dbtool: the --database-url flag below is the only input.
for var in DATABASE_URL $(compgen -e | grep '^PG' || true); do
    unset "$var"
done

if [ -n "${DBTOOL_BIN:-}" ]; then
    dbtool=$DBTOOL_BIN
    [ -x "$dbtool" ] || { echo "quickstart.sh: DBTOOL_BIN=$dbtool is not an executable" >&2; exit 1; }
else
    command -v cargo >/dev/null 2>&1 || { echo "quickstart.sh: cargo is required (https://rustup.rs), or a prebuilt dbtool: README, Install" >&2; exit 1; }
    # The TLS connector builds against OpenSSL.
    need=()
    command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
    pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
    scripts/install-packages.sh "${need[@]}"
    echo "quickstart: building dbtool (release): a first build takes $first_build, a rebuild a few; a prebuilt binary skips it (README, Install)" >&2
    cargo build --release --locked
    dbtool=./target/release/dbtool
fi

if [ -n "${QUICKSTART_DATABASE_URL:-}" ]; then
    url=$QUICKSTART_DATABASE_URL
    where="the server QUICKSTART_DATABASE_URL names"
else
    export DBTOOL_SANDBOX=${QUICKSTART_SANDBOX:-quickstart}
    scripts/sandbox.sh start
    url="$(scripts/sandbox.sh url | sed 's|/postgres$|/app_dev|')"
    where="a throwaway PostgreSQL of the quickstart's own (scripts/sandbox.sh, DBTOOL_SANDBOX=$DBTOOL_SANDBOX)"
    started=1
fi
shown=$(printf '%s' "$url" | sed -E 's|://([^:/@]*):[^@]*@|://\1:***@|')
echo "quickstart: resetting $shown, on $where" >&2

"$dbtool" --database-url "$url" reset --profile dev --yes --create-database
"$dbtool" --database-url "$url" status

echo
echo "quickstart: the dev data is in $shown ($where)."
if [ -n "${started:-}" ]; then
    cat <<MSG
    export DATABASE_URL=$url
    psql "\$DATABASE_URL" -c 'select * from staff'
Stop it (and delete its data) with:
    DBTOOL_SANDBOX=$DBTOOL_SANDBOX scripts/sandbox.sh stop
MSG
fi
