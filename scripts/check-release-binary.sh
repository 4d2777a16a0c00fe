#!/usr/bin/env bash
# The shipped build: builds the release binary (unless --check-only BINARY), then checks that it
# is at most 15 MB and that `dbtool --version` names the commit it was built from.
#   scripts/check-release-binary.sh                 build target/release/dbtool and check it
#   scripts/check-release-binary.sh --check-only BIN
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((15 * 1000 * 1000))
if [ "${1:-}" = "--check-only" ]; then
    bin=${2:?usage: --check-only BINARY}
else
    start=$(date +%s)
    cargo build --release --locked
    echo "release build: $(( $(date +%s) - start ))s" >&2
    bin=target/release/dbtool
fi
size=$(wc -c <"$bin")
echo "release binary $bin: $size bytes (limit $limit)" >&2
[ "$size" -le "$limit" ] || { echo "check-release-binary.sh: $bin is $size bytes, over $limit" >&2; exit 1; }
if ! "$bin" --version >/dev/null 2>&1; then
    echo "check-release-binary.sh: $bin does not run here (another architecture): version not checked" >&2
    exit 0
fi
version=$("$bin" --version)
commit=${DBTOOL_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
commit=${commit:0:12}
case "$version" in
    *"(commit $commit)"*) echo "$version" >&2 ;;
    *) echo "check-release-binary.sh: '$version' does not name commit $commit" >&2; exit 1 ;;
esac
