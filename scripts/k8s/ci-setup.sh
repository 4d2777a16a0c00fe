#!/usr/bin/env bash
# A CI setup step: wait for the service database, then give it the `ci` data.
# Parallel jobs that share one database take turns on dbtool's lock instead of colliding.
#
#   DATABASE_URL=postgres://postgres:postgres@localhost:5432/app scripts/k8s/ci-setup.sh
# Without dbtool on PATH it installs the release DBTOOL_VERSION (a static binary, checked
# against the release's SHA256SUMS) from DBTOOL_RELEASES into a temporary directory.
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to the CI service database}"
if ! command -v dbtool >/dev/null 2>&1; then
    version=${DBTOOL_VERSION:-v0.1.0}
    releases=${DBTOOL_RELEASES:-https://github.com/OWNER/dbtool/releases/download}
    case "$(uname -s)/$(uname -m)" in
        Linux/x86_64) target=x86_64-unknown-linux-musl ;;
        Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
        Darwin/arm64) target=aarch64-apple-darwin ;;
        Darwin/x86_64) target=x86_64-apple-darwin ;;
        *) echo "ci-setup.sh: no prebuilt dbtool for $(uname -sm): cargo install --locked (README, Install)" >&2; exit 1 ;;
    esac
    dir=$(mktemp -d)
    echo "ci-setup.sh: dbtool is not on PATH; installing $version ($target) into $dir" >&2
    (cd "$dir" \
        && curl -fsSLO --retry 3 "$releases/$version/dbtool-$target.tar.gz" \
        && curl -fsSLO --retry 3 "$releases/$version/SHA256SUMS" \
        && grep " dbtool-$target.tar.gz\$" SHA256SUMS | { sha256sum -c - 2>/dev/null || shasum -a 256 -c -; } >&2 \
        && tar -xzf "dbtool-$target.tar.gz" --strip-components=1)
    PATH="$dir:$PATH"
fi
dbtool --version
dbtool wait --wait-for-db 60s
dbtool reset --profile ci --yes --lock-timeout 5m --log-format text
dbtool status
