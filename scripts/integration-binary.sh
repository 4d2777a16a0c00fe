#!/usr/bin/env bash
# Prints the path of the integration test binary (tests/dbtool), built if it is not: scripts that
# run it directly, once per server or once per run, share one build and no cargo lock.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=$(cargo test --test dbtool --locked --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "dbtool" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["executable"])')
[ -x "$suite" ] || { echo "integration-binary.sh: the integration test binary was not found" >&2; exit 1; }
echo "$suite"
