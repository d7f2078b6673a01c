#!/usr/bin/env bash
# Measures what Durability=async can lose: increments are acknowledged, the server is killed
# with SIGKILL in the middle of the load, restarted, and the counter compared with the number
# of acknowledged increments. Prints one line per round; with Durability=sync it should lose 0.
#
# Usage: bench/loss_window.sh [rounds] [async|sync]   (needs wrk and the .NET SDK)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
MODE=${2:-async}
KEY=bench-admin-key-0123456789abcdef
WORK=$(mktemp -d)
trap 'pkill -f "$WORK/tally/Tally.Server.dll" 2>/dev/null || true; rm -rf "$WORK"' EXIT

dotnet publish "$REPO/src/Tally.Server" -c Release -o "$WORK/tally" >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port

start() {
  (cd "$WORK/tally" && exec dotnet Tally.Server.dll --urls "$url" --DataDir "$WORK/data" --Durability "$MODE" \
    --AdminKey "$KEY" --RateLimit:PermitsPerSecond 0) >>"$WORK/tally.log" 2>&1 &
  pid=$!
  until curl -sf "$url/readyz" >/dev/null; do sleep 0.05; done
}

printf 'round\tdurability\tacknowledged\tvalue after restart\tlost\tthroughput/s\tlost as time (ms)\n'
for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/data"
  start
  WRK_KEY=$KEY wrk -t2 -c50 -d6s -s "$REPO/bench/wrk/acked.lua" "$url/counters/loss/increment" >"$WORK/wrk.txt" 2>&1 &
  wrk_pid=$!
  sleep 3
  kill -9 "$pid"
  wait "$wrk_pid" || true
  acked=$(awk '/^ACKED/{print $2}' "$WORK/wrk.txt")
  start
  value=$(curl -s -H "Authorization: Bearer $KEY" "$url/counters/loss" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rate=$(python3 -c "print(round($acked / 3.0))")
  lost=$((acked - value))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$MODE" "$acked" "$value" "$lost" "$rate" \
    "$(python3 -c "print(round(max($lost, 0) / $rate * 1000, 2) if $rate else 0)")"
done
