#!/usr/bin/env bash
# Container health check for Tally, for images without curl or wget (mcr.microsoft.com/dotnet/aspnet
# has neither). It makes a real HTTP request with bash's /dev/tcp redirection (Ubuntu's and Debian's
# bash are built with it) and passes only on a 200 answer, so it checks more than an open port.
# No extra package, no second runtime started every interval, nothing an attacker could reuse to
# download a payload. It needs bash: a chiseled (shell-less) image needs another probe instead
# (for example a small AOT-compiled one), or none where the orchestrator probes HTTP itself.
#
# Usage: tally-healthcheck [path]     path defaults to /healthz (liveness); /readyz is readiness.
# HEALTHCHECK_PORT (default 8080) is the port Tally listens on inside the container.
set -u
path="${1:-/healthz}"
port="${HEALTHCHECK_PORT:-8080}"

if ! exec 3<>"/dev/tcp/127.0.0.1/${port}"; then
  echo "unhealthy: nothing listens on 127.0.0.1:${port}" >&2
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
status=""
IFS= read -r -t 5 status <&3
exec 3<&-
status="${status%$'\r'}"
case "$status" in
  "HTTP/1."?" 200 "*) echo "$status"; exit 0 ;;
esac
echo "unhealthy: GET ${path} answered '${status:-nothing}'" >&2
exit 1
