#!/usr/bin/env bash
# System (Debian) packages that CI and the full test suite need. Idempotent: installs only what
# is missing, so it is cheap to run before every CI run. Add a package as one line of PACKAGES.
set -euo pipefail

PACKAGES=(
    chromium          # headless browser for tests/browser (the Connection form in the Airflow UI)
    chromium-driver   # its WebDriver: /usr/bin/chromedriver
    postgresql        # initdb/postgres/psql for the SQL transfer's tests and benchmark (private servers
                      # on 127.0.0.1 started by the tests; the packaged cluster is never used)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "ci-system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
echo "ci-system-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q "${missing[@]}"
