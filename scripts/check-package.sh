#!/usr/bin/env bash
# Release check: build the sdist and the wheel from the committed/working source files, run
# `twine check --strict`, then install the wheel into a FRESH virtual environment together with
# Airflow (pinned by constraints/airflow-$AIRFLOW_VERSION.txt when it exists) and prove that the
# installed package works outside the checkout: Airflow registers the provider, the sandbox ships
# in the wheel, and the hook's test_connection() passes against it. Finally the sdist is
# reinstalled over it (built from source by pip) and imported again.
#
# Usage: scripts/check-package.sh            (Airflow 3.3.2)
#        AIRFLOW_VERSION=3.0.6 scripts/check-package.sh
# Env:   PYTHON (default python3.11), AIRFLOW_VERSION (default 3.3.2), KEEP_WORK=1 keeps the temp dir.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3.11}
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
CONSTRAINTS="$REPO/constraints/airflow-$AIRFLOW_VERSION.txt"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/engagelab-package.XXXXXX")
if [[ "${KEEP_WORK:-0}" != 1 ]]; then trap 'rm -rf "$WORK"' EXIT; fi
step() { printf '\n== %s\n' "$*"; }

step "source tree -> $WORK/src (files git tracks or would track)"
mkdir -p "$WORK/src"
git ls-files --cached --others --exclude-standard -z | while IFS= read -r -d '' f; do
    if [[ -f "$f" ]]; then
        mkdir -p "$WORK/src/$(dirname "$f")"
        cp -p "$f" "$WORK/src/$f"
    fi
done

step "python -m build (sdist + wheel)"
"$PYTHON" -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/pip" install -q --upgrade pip build twine
"$WORK/build-venv/bin/python" -m build --outdir "$WORK/dist" "$WORK/src"
ls -l "$WORK/dist"

step "twine check --strict"
"$WORK/build-venv/bin/twine" check --strict "$WORK"/dist/*

WHEEL=$(ls "$WORK"/dist/*.whl)
SDIST=$(ls "$WORK"/dist/*.tar.gz)

step "wheel contents"
"$WORK/build-venv/bin/python" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["airflow_provider_engagelab/py.typed", "airflow_provider_engagelab/testing/sandbox/__init__.py",
        "airflow_provider_engagelab/testing/sandbox/__main__.py"]
missing = [n for n in need if n not in names]
tests = [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
print(f"{len(names)} files; sandbox and py.typed present: {not missing}; test files: {len(tests)}")
sys.exit(1 if missing or tests else 0)
EOF

step "fresh venv: apache-airflow==$AIRFLOW_VERSION + the wheel"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --upgrade pip
constraint_args=()
if [[ -f "$CONSTRAINTS" ]]; then constraint_args=(-c "$CONSTRAINTS"); echo "constraints: $CONSTRAINTS"; fi
"$WORK/venv/bin/pip" install -q "${constraint_args[@]}" "apache-airflow==$AIRFLOW_VERSION" "$WHEEL"
"$WORK/venv/bin/pip" check

check_installed() {
    # Run from an empty directory so the checkout cannot shadow the installed package.
    mkdir -p "$WORK/run" "$WORK/airflow-home"
    (
        cd "$WORK/run"
        export AIRFLOW_HOME="$WORK/airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False
        unset PYTHONPATH
        "$WORK/venv/bin/python" - <<'EOF'
import json, os
import airflow_provider_engagelab as pkg
assert "site-packages" in pkg.__file__, f"imported from {pkg.__file__}, not the installed wheel"
from airflow_provider_engagelab.testing.sandbox import Sandbox
with Sandbox(api_key="check-key", api_secret="check-secret") as sb:
    os.environ["AIRFLOW_CONN_ENGAGELAB_DEFAULT"] = json.dumps(sb.airflow_connection())
    from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
    ok, message = EngageLabHook().test_connection()
    assert ok, message
    rows = EngageLabHook().get_stats("journey", [1, 2], "DAY", "2026-06-01", "2026-06-03").rows
    assert rows == sb.expected_rows("journey", [1, 2], "DAY", "2026-06-01", "2026-06-03"), "rows differ"
print(f"installed {pkg.__version__} from {os.path.dirname(pkg.__file__)}: test_connection ok, {len(rows)} rows")
EOF
        "$WORK/venv/bin/airflow" providers get airflow-provider-engagelab -o json >"$WORK/get.json" 2>&1
        grep -q '"airflow-provider-engagelab"' "$WORK/get.json" \
            || { echo "airflow providers get: provider not registered"; cat "$WORK/get.json"; exit 1; }
        echo "airflow providers get: registered"
        "$WORK/venv/bin/airflow" providers hooks -o json >"$WORK/hooks.json" 2>&1
        grep -q 'airflow_provider_engagelab.hooks.engagelab.EngageLabHook' "$WORK/hooks.json" \
            || { echo "airflow providers hooks: EngageLabHook missing"; exit 1; }
        echo "airflow providers hooks: EngageLabHook"
    )
}

step "installed wheel works outside the checkout"
check_installed

step "sdist installs too (built from source by pip)"
"$WORK/venv/bin/pip" install -q --force-reinstall --no-deps "$SDIST"
check_installed

step "package check passed: $(basename "$WHEEL") $(basename "$SDIST") on Airflow $AIRFLOW_VERSION"
