#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine, then runs every test.
# Usage: ./test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages that tests start privately (each test runs its own instance on 127.0.0.1).
packages=(sqlite3 python3-yaml prometheus)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
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

dotnet build Tally.sln -c Release --nologo -clp:ErrorsOnly
dotnet test Tally.sln -c Release --no-build --nologo --logger "console;verbosity=normal" "$@"
