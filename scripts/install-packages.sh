#!/usr/bin/env bash
# Installs Debian packages for the project's scripts: scripts/install-packages.sh PACKAGE...
# A package's own service (PostgreSQL's default cluster, pgbouncer) is kept from starting: the
# scripts start exactly what they need and stop exactly what they started.
set -euo pipefail
[ $# -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
echo "installing $*" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
