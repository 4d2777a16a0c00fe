#!/usr/bin/env bash
# Builds dbtool and runs the main job, `dbtool reset --profile dev --yes`. With DATABASE_URL
# unset, it first starts a throwaway PostgreSQL (scripts/sandbox.sh) and points at it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "quickstart.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
# The TLS connector builds against OpenSSL.
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
scripts/install-packages.sh "${need[@]}"
cargo build --release --locked

if [ -z "${DATABASE_URL:-}" ]; then
    scripts/sandbox.sh start
    DATABASE_URL=$(scripts/sandbox.sh url)
    export DATABASE_URL
    started=1
fi

./target/release/dbtool reset --profile dev --yes
./target/release/dbtool status

if [ -n "${started:-}" ]; then
    cat <<MSG

The dev data is in a throwaway PostgreSQL:
    export DATABASE_URL=$DATABASE_URL
    psql "\$DATABASE_URL" -c 'select * from staff'
Stop it (and delete its data) with:
    scripts/sandbox.sh stop
MSG
fi
