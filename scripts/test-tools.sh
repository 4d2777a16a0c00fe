#!/usr/bin/env bash
# The migration tools that tests/dbtool/formats.rs drives, installed from npm into a cache folder
# outside the clone: drizzle-kit (with drizzle-orm and pg, which its `migrate` loads) and dbmate.
# Sourced by scripts/test.sh; exports DBTOOL_TEST_NODE_BIN, the folder holding their commands.
# The tests fail (never skip) without it. Prisma's CLI installs from npm too, but its schema
# engine downloads from binaries.prisma.sh at run time, so Prisma's fixtures are written to its
# documented format instead; goose, golang-migrate, sqlx-cli and Flyway are not on npm.
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
