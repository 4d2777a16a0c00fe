#!/usr/bin/env bash
# The one test command (README, .ci/run): fmt, clippy, then every test against a real
# PostgreSQL. A throwaway server is started (and always stopped) unless TEST_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }

# Client tools the tests drive: pg_dump (schema comparison), pgbouncer (proxy tests),
# script (a pseudo-terminal for the progress bars), openssl (the TLS tests' certificates), ss
# (the keepalive test); OpenSSL's headers
# build the TLS connector.
need=()
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
scripts/install-packages.sh "${need[@]}"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings

# The migration tools the format tests drive (tests/dbtool/formats.rs): DBTOOL_TEST_NODE_BIN.
. scripts/test-tools.sh

if [ -z "${TEST_DATABASE_URL:-}" ]; then
    export DBTOOL_SANDBOX=test
    trap 'scripts/sandbox.sh stop' EXIT
    scripts/sandbox.sh start
    TEST_DATABASE_URL=$(scripts/sandbox.sh url)
    export TEST_DATABASE_URL
fi

scripts/check-install.sh
echo "== cargo test" >&2
cargo test --all-targets --locked -- "$@"
