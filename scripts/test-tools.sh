#!/usr/bin/env bash
# The migration tools that tests/dbtool/formats.rs drives, installed from npm into a cache folder
# outside the clone: drizzle-kit (with drizzle-orm and pg, which its `migrate` loads) and dbmate.
# And sqlx-cli from crates.io (a few minutes' build, once per cache folder).
# Sourced by scripts/test.sh; exports DBTOOL_TEST_NODE_BIN and DBTOOL_TEST_SQLX_BIN, the folders
# holding their commands. The tests fail (never skip) without them. Prisma's CLI installs from
# npm too, but its schema engine downloads from binaries.prisma.sh at run time, so Prisma's
# fixtures are written to its documented format instead; goose, golang-migrate and Flyway are
# not on npm or crates.io.
tools_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dbtool-test/node"
tools=(drizzle-kit@0.31.11 drizzle-orm@0.45.4 pg@8.23.1 dbmate@2.36.0)
if ! command -v npm >/dev/null 2>&1; then
    scripts/install-packages.sh nodejs npm
fi
mkdir -p "$tools_dir"
if [ ! -x "$tools_dir/node_modules/.bin/drizzle-kit" ] || [ ! -x "$tools_dir/node_modules/.bin/dbmate" ] \
    || [ "$(cat "$tools_dir/.installed" 2>/dev/null)" != "${tools[*]}" ]; then
    echo "== npm install ${tools[*]} into $tools_dir" >&2
    [ -f "$tools_dir/package.json" ] || echo '{"private": true}' >"$tools_dir/package.json"
    (cd "$tools_dir" && npm install --no-audit --no-fund --silent "${tools[@]}")
    echo "${tools[*]}" >"$tools_dir/.installed"
fi
export DBTOOL_TEST_NODE_BIN="$tools_dir/node_modules/.bin"

sqlx_root="${XDG_CACHE_HOME:-$HOME/.cache}/dbtool-test/sqlx"
sqlx_version=0.8.6
if [ "$("$sqlx_root/bin/sqlx" --version 2>/dev/null)" != "sqlx-cli $sqlx_version" ]; then
    echo "== cargo install sqlx-cli $sqlx_version into $sqlx_root (once; a few minutes)" >&2
    cargo install sqlx-cli --version "$sqlx_version" --no-default-features \
        --features postgres,rustls --locked --root "$sqlx_root"
fi
export DBTOOL_TEST_SQLX_BIN="$sqlx_root/bin"
