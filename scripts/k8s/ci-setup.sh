#!/usr/bin/env bash
# A CI setup step: wait for the service database, then give it the `ci` data.
# Parallel jobs that share one database take turns on dbtool's lock instead of colliding.
#
#   DATABASE_URL=postgres://postgres:postgres@localhost:5432/app scripts/k8s/ci-setup.sh
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to the CI service database}"
dbtool wait --wait-for-db 60s
dbtool reset --profile ci --yes --lock-timeout 5m --log-format text
dbtool status
