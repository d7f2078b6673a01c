#!/usr/bin/env bash
# Sets up what the tests need on a fresh Debian machine, then runs every test, in layers (tests/README.md):
#   fast     in-process: API, rules, stores, configuration (no child process, no root)
#   process  tests that start processes: the real server, the README's examples, Prometheus, promtool; a tmpfs (root)
#   browser  the dashboard and a cross-origin page in Debian's Chromium, driven by Playwright, against the real server
#   deploy   checks of the deployment files (deploy/): Dockerfile, compose, Prometheus rules, operations guide
# Every test runs exactly once; every layer runs even when an earlier one failed, and the exit code says whether all passed.
# Usage: ./test.sh [extra dotnet test arguments]     LAYERS="fast" ./test.sh   runs some layers only.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests use (each test runs its own instance on 127.0.0.1): sqlite3, PyYAML and Prometheus
# (promtool) for the deployment checks and metrics; matplotlib for the benchmark report's charts (bench/report.py); curl, jq and python3 for the README's examples; PostgreSQL 15 (initdb and
# postgres in /usr/lib/postgresql/15/bin, not on PATH) for the postgres store; Redis 7 (redis-server) for the redis
# store; nginx in front of several instances; openssl for the secret recipes of deploy/secrets/README.md; chromium for
# the browser tests (Playwright cannot download its browsers here); nodejs and npm, unless an npm is on PATH already, for
# the build of the dashboard (uPlot from npm).
# The tests never use a service these packages may start: each starts private servers of its own (tests/README.md).
packages=(sqlite3 python3 python3-yaml python3-matplotlib prometheus curl jq postgresql-15 redis-server nginx openssl chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing Debian packages (${missing[*]}); run as root or install them first." >&2
    exit 1
  fi
  echo "test.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v dotnet >/dev/null || { echo "test.sh: the .NET 10 SDK is required (dotnet not found)." >&2; exit 1; }

# The OpenAPI linter (@redocly/cli, pinned in tests/tools/package.json and package-lock.json) for the process layer.
command -v npm >/dev/null || { echo "test.sh: npm (Node.js 20.19 or newer, on 22: 22.12 or newer; npm 10 or newer) is required to install the OpenAPI linter (tests/tools)." >&2; exit 1; }
pinned=$(cd tests/tools && node -p "require('./package.json').dependencies['@redocly/cli']")
installed=$(cd tests/tools && node -p "require('./node_modules/@redocly/cli/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$pinned" ]; then
  (cd tests/tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

dotnet build Tally.sln -c Release --nologo -clp:ErrorsOnly

# The filters together select every test once: a test has at most one Layer trait (none: fast).
declare -A filters=(
  [fast]='Layer!=Process&Layer!=Browser&Layer!=Deploy'
  [process]='Layer=Process'
  [browser]='Layer=Browser'
  [deploy]='Layer=Deploy'
)
failed=()
for layer in ${LAYERS:-fast process browser deploy}; do
  [ -n "${filters[$layer]:-}" ] || { echo "test.sh: unknown layer '$layer' (fast, process, browser, deploy)." >&2; exit 2; }
  echo "test.sh: $layer layer"
  # Minimal verbosity: each failure with its message and stack trace, then the summary; nothing for passing tests.
  TALLYTESTS_LAYER="$layer" dotnet test Tally.sln -c Release --no-build --nologo \
    --logger "console;verbosity=minimal" --filter "${filters[$layer]}" "$@" || failed+=("$layer")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: failed layers: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: every layer passed"
