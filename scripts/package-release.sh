#!/usr/bin/env bash
# Checks a release build of TARGET and packs it: dist/dbtool-TARGET.tar.gz holding
# dbtool-TARGET/{dbtool, README.md, LICENSE-MIT, LICENSE-APACHE}. The binary must be at most
# 15 MB, and, where it runs here, name the commit in `dbtool --version`.
#   scripts/package-release.sh TARGET [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/package-release.sh TARGET [TAG]}
tag=${2:-}
bin=target/$target/release/dbtool
[ -x "$bin" ] || { echo "package-release.sh: no $bin; build it first" >&2; exit 1; }
scripts/check-release-binary.sh --check-only "$bin"
if [ -n "$tag" ] && "$bin" --version >/dev/null 2>&1; then
    "$bin" --version | grep -q "^dbtool ${tag#v} " \
        || { echo "package-release.sh: $("$bin" --version) is not version ${tag#v} (Cargo.toml and the tag disagree)" >&2; exit 1; }
fi
name=dbtool-$target
stage=$(mktemp -d)
mkdir -p "$stage/$name" dist
cp "$bin" README.md LICENSE-MIT LICENSE-APACHE "$stage/$name/"
tar -C "$stage" -czf "dist/$name.tar.gz" "$name"
rm -rf "$stage"
echo "dist/$name.tar.gz"
