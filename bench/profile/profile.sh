#!/usr/bin/env bash
# Profiles of Tally's request path (docs/profiles.md). Needs perf, wrk, dotnet-counters and dotnet-trace.
#   bench/profile/profile.sh perf    PUBLISH_DIR SCENARIO DURABILITY OUT   perf record -g of 8 s after WARM s of load
#   bench/profile/profile.sh measure PUBLISH_DIR SCENARIO DURABILITY       req/s, CPU µs and bytes allocated per request
#   bench/profile/profile.sh alloc   PUBLISH_DIR SCENARIO DURABILITY OUT   dotnet-trace allocation samples (6 s)
# SCENARIO: healthz | inc (POST /counters/hot/increment) | spread (10,000 names) | batch (1,000 increments per /batch).
# PUBLISH_DIR: the output of `dotnet publish src/Tally.Server -c Release -o DIR`. 50 connections, 2 wrk threads, as bench/run.sh.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEY=bench-admin-key-0123456789abcdef
WARM=${WARM:-15}
TMP=$(mktemp -d)
trap 'stop_srv; rm -rf "$TMP"' EXIT
SRV_PID=

start_srv() { # DIR DURABILITY
  local port i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # W^X off so that perf can read the JIT's symbols (/tmp/perf-PID.map); the rest as bench/run.sh starts it.
  (cd "$1" && DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 TALLY_RATELIMIT__PERMITSPERSECOND=0 exec dotnet "$1/Tally.Server.dll" \
    --urls "http://127.0.0.1:$port" --DataDir "$TMP/data" --Durability "$2" --AdminKey "$KEY") >"$TMP/server.log" 2>&1 &
  SRV_PID=$!
  SRV_URL=http://127.0.0.1:$port
  for i in $(seq 300); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/readyz" || true) == 200 ]] && return 0
    sleep 0.1
  done
  echo "Tally did not start: $(tail -5 "$TMP/server.log")" >&2
  exit 1
}
stop_srv() { [[ -z $SRV_PID ]] || { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=; }; }

load() { # SECONDS SCENARIO: prints the number of requests answered
  local lua=$BENCH/wrk/tally.lua out=$TMP/wrk.txt
  export WRK_KEY=$KEY
  case $2 in
    healthz) WRK_MODE=get wrk -t2 -c50 -d"$1s" -s "$lua" "$SRV_URL/healthz" ;;
    inc) WRK_MODE=post wrk -t2 -c50 -d"$1s" -s "$lua" "$SRV_URL/counters/hot/increment" ;;
    spread) WRK_MODE=random WRK_PREFIX=c: WRK_NAMES=10000 wrk -t2 -c50 -d"$1s" -s "$lua" "$SRV_URL/" ;;
    batch) WRK_MODE=batch WRK_BATCH=1000 wrk -t2 -c50 -d"$1s" -s "$lua" "$SRV_URL/" ;;
    *) echo "unknown scenario $2" >&2; exit 2 ;;
  esac >"$out" 2>&1
  python3 -c "import json,sys; l=[x for x in open(sys.argv[1]) if x.startswith('WRK_JSON')][0]; print(json.loads(l[9:])['requests'])" "$out"
}

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

mode=$1 dir=$(cd "$2" && pwd) scenario=$3 durability=$4 out=${5:-}
start_srv "$dir" "$durability"
case $mode in
  perf)
    load "$WARM" "$scenario" >/dev/null
    load 10 "$scenario" >"$TMP/requests" &
    loader=$!
    sleep 1
    perf record -F 499 -e cpu-clock -g -p "$SRV_PID" -o "$out.data" -- sleep 8 >/dev/null 2>&1
    wait "$loader"
    cp "/tmp/perf-$SRV_PID.map" "$out.map"
    echo "$scenario $durability: $(cat "$TMP/requests") requests in 10 s; perf data $out.data (symbols: /tmp/perf-$SRV_PID.map)"
    python3 "$BENCH/profile/classify.py" "$out.data"
    ;;
  measure)
    # One run: the allocation counter covers the whole measured run, so bytes and requests are of the same window.
    load 3 "$scenario" >/dev/null
    ~/.dotnet/tools/dotnet-counters collect -p "$SRV_PID" --counters 'System.Runtime[dotnet.gc.heap.total_allocated]' \
      --refresh-interval 1 --format csv -o "$TMP/alloc.csv" --duration 00:00:12 >/dev/null 2>&1 &
    counters=$!
    sleep 1.5
    t0=$(cpu_ticks "$SRV_PID"); requests=$(load 8 "$scenario"); t1=$(cpu_ticks "$SRV_PID")
    wait "$counters" || true
    python3 - "$requests" "$t0" "$t1" "$(getconf CLK_TCK)" "$TMP/alloc.csv" <<'PY'
import csv, sys
requests, t0, t1, hz = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
allocated = sum(float(r[4]) for r in csv.reader(open(sys.argv[5])) if 'total_allocated' in r[2])
print(f"{requests / 8:.0f} req/s, {(t1 - t0) / hz * 1e6 / requests:.1f} us CPU/request, {allocated / requests:.0f} B allocated/request")
PY
    ;;
  alloc)
    load "$WARM" "$scenario" >/dev/null
    load 8 "$scenario" >"$TMP/requests" &
    loader=$!
    sleep 1
    ~/.dotnet/tools/dotnet-trace collect -p "$SRV_PID" --providers 'Microsoft-Windows-DotNETRuntime:0x1:5' \
      --duration 00:00:00:06 -o "$out.nettrace" >/dev/null 2>&1
    wait "$loader"
    echo "$scenario $durability: $(cat "$TMP/requests") requests in 8 s; allocation samples in $out.nettrace"
    dotnet run -c Release --project "$BENCH/profile/alloctypes" -- "$out.nettrace" 25
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
