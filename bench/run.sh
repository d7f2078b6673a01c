#!/usr/bin/env bash
# Tally benchmark harness. Writes docs/benchmarks.json and docs/benchmarks.md.
# Knobs (environment variables) are listed in bench/README.md.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
cd "$REPO"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  DURATION=${BENCH_DURATION:-2}
  WARMUP=${BENCH_WARMUP:-1}
  CONN_SWEEP=${BENCH_CONN_SWEEP:-"1 64"}
  BIG=${BENCH_BIG_COUNTERS:-20000}
  REDIS_N=${BENCH_REDIS_REQUESTS:-100000}
else
  DURATION=${BENCH_DURATION:-10}
  WARMUP=${BENCH_WARMUP:-2}
  CONN_SWEEP=${BENCH_CONN_SWEEP:-"1 8 64 256"}
  BIG=${BENCH_BIG_COUNTERS:-1000000}
  REDIS_N=${BENCH_REDIS_REQUESTS:-1000000}
fi
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-50}
SPREAD=${BENCH_SPREAD_COUNTERS:-10000}
BATCH=${BENCH_BATCH_SIZE:-1000}
# One worker per core; gthread keeps connections alive (sync workers close
# each one) and measured fastest of the few settings tried on 2 cores.
FLASK_ARGS=${BENCH_FLASK_ARGS:-"-w 2 -k gthread --threads 4"}
ONLY=${BENCH_ONLY:-"tally compare big"}
OUT_DIR=${BENCH_OUT_DIR:-$REPO/docs}
RAW_DIR=${BENCH_RAW_DIR:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-120}
BENCH_KEY=${BENCH_KEY:-bench-admin-key-0123456789abcdef}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-20}
LOAD_TIMEOUT=${BENCH_LOAD_TIMEOUT:-1200}

RESULTS=$RAW_DIR/results.jsonl
PY_SYS=/usr/bin/python3 # Debian's python: the one apt's flask, redis and gunicorn belong to
LUA=bench/wrk/tally.lua

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }
shell_words() { local s; s=$(printf '%q ' "$@"); echo "${s% }"; } # a command line to paste
thousands() { sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta' <<<"$1"; }

# ---------------------------------------------------------------- processes

PIDS=() # servers started by this script, stopped by cleanup() in reverse order

untrack() {
  local p keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# A child that has exited stays a zombie until waited for, and kill -0 still
# succeeds on a zombie, so look at its state instead.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# stop_pid PID [TIMEOUT]: SIGTERM, then SIGKILL after TIMEOUT seconds.
# Sets STOP_KILLED=1 when SIGKILL was needed.
stop_pid() {
  local pid=$1 timeout=${2:-$STOP_TIMEOUT} i
  STOP_KILLED=0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "pid $pid still running ${timeout}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      STOP_KILLED=1
    fi
  fi
  wait "$pid" 2>/dev/null || true
  untrack "$pid"
}

cleanup() {
  local rc=$? i
  trap - EXIT
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 5; done
  if [[ ${BENCH_KEEP_TMP:-0} != 1 && -n ${WORK:-} ]]; then rm -rf "$WORK"; fi
  if ((rc)); then log "failed (exit $rc); raw output and server logs are in $RAW_DIR"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_code METHOD URL [JSON-BODY]: the status code, 000 when nothing answered.
# A POST without body is sent as wrk sends it: Content-Length 0, no Content-Type.
http_code() {
  local method=$1 url=$2 body=${3-}
  local args=(-s -o /dev/null -w '%{http_code}' --max-time 30 -X "$method")
  [[ -n ${BENCH_KEY_ACTIVE-} ]] && args+=(-H "Authorization: Bearer $BENCH_KEY_ACTIVE")
  if [[ -n $body ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  elif [[ $method == POST ]]; then
    args+=(-H 'Content-Type:' --data-binary '')
  fi
  curl "${args[@]}" "$url" || true
}

# VmHWM (peak) or VmRSS (current) in kB, summed over the given pids.
proc_kb() {
  local field=$1 total=0 pid v
  shift
  for pid; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# Writing 5 to clear_refs resets VmHWM (Linux 4.0+), so the peak is the
# scenario's own; where that is refused the peak is since the process started.
PEAK_SCOPE=scenario
reset_peak() {
  local pid
  for pid; do
    { echo 5 >"/proc/$pid/clear_refs"; } 2>/dev/null || PEAK_SCOPE=process
  done
}

# ---------------------------------------------------------------- setup

install_missing() {
  local pkgs=()
  command -v wrk >/dev/null || pkgs+=(wrk)
  { command -v redis-server && command -v redis-benchmark && command -v redis-cli; } >/dev/null || pkgs+=(redis-server)
  command -v curl >/dev/null || pkgs+=(curl)
  [[ -x $PY_SYS ]] || pkgs+=(python3)
  $PY_SYS -c 'import flask' 2>/dev/null || pkgs+=(python3-flask)
  $PY_SYS -c 'import redis' 2>/dev/null || pkgs+=(python3-redis)
  $PY_SYS -c 'import gunicorn' 2>/dev/null || pkgs+=(gunicorn)
  ((${#pkgs[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing packages: ${pkgs[*]}; run as root or install them"
  log "installing ${pkgs[*]}"
  apt_get update || log "apt-get update failed; trying the install anyway"
  apt_get install -y "${pkgs[@]}"
}

# apt_get ARGS...: another apt-get may hold the dpkg or lists lock; wait for it.
apt_get() {
  local i out
  for ((i = 0; i < 60; i++)); do
    if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1); then
      return 0
    fi
    if ! grep -qi 'lock' <<<"$out"; then
      printf '%s\n' "$out" | tail -20 >&2
      return 1
    fi
    log "apt-get $1: lock held by another apt/dpkg, waiting"
    sleep 10
  done
  return 1
}

build_tally() {
  local src=$WORK/src f files=(src)
  # Build from a copy so the work tree's bin/ and obj/ are left to whoever is
  # building there at the same time.
  for f in Directory.Build.props Directory.Packages.props Directory.Build.targets global.json \
    .editorconfig nuget.config NuGet.Config; do
    [[ -e $f ]] && files+=("$f")
  done
  mkdir -p "$src"
  tar -C "$REPO" --exclude=bin --exclude=obj -cf - "${files[@]}" | tar -C "$src" -xf -
  log "building Tally (dotnet publish -c Release), log: $RAW_DIR/build.log"
  if ! DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    dotnet publish "$src/src/Tally.Server" -c Release -o "$WORK/tally" >"$RAW_DIR/build.log" 2>&1; then
    tail -30 "$RAW_DIR/build.log" >&2
    die "the Tally build failed"
  fi
  TALLY_DLL=$WORK/tally/Tally.Server.dll
  [[ -f $TALLY_DLL ]] || die "no $TALLY_DLL after publish"
}

# ---------------------------------------------------------------- Tally

# start_tally LABEL DURABILITY DATADIR [AUTH]: sets TALLY_PID, TALLY_URL, READY_MS.
# AUTH is on (default: one admin key, sent by every request) or off.
start_tally() {
  local label=$1 durability=$2 datadir=$3 auth=${4:-on} t0 code
  local auth_args=(--AdminKey "$BENCH_KEY")
  BENCH_KEY_ACTIVE=$BENCH_KEY
  if [[ $auth == off ]]; then
    auth_args=(--Auth off)
    BENCH_KEY_ACTIVE=
  fi
  export WRK_KEY=$BENCH_KEY_ACTIVE
  mkdir -p "$datadir"
  TALLY_PORT=$(free_port)
  TALLY_URL=http://127.0.0.1:$TALLY_PORT
  t0=$(now_ms)
  # From the publish directory, as deployed: the content root is the working
  # directory, and the shipped appsettings.json (log levels) is read from it.
  (cd "$(dirname "$TALLY_DLL")" && TALLY_RATELIMIT__PERMITSPERSECOND=0 exec dotnet "$TALLY_DLL" \
    --urls "$TALLY_URL" --DataDir "$datadir" --Durability "$durability" "${auth_args[@]}") \
    >>"$RAW_DIR/tally-$label.log" 2>&1 &
  TALLY_PID=$!
  PIDS+=("$TALLY_PID")
  while :; do
    alive "$TALLY_PID" || { tail -20 "$RAW_DIR/tally-$label.log" >&2; die "Tally ($label) exited during start-up"; }
    code=$(http_code GET "$TALLY_URL/readyz")
    [[ $code == 200 ]] && break
    if [[ $code == 404 && $(http_code GET "$TALLY_URL/healthz") == 200 ]]; then
      READY_NOTE="/readyz answered 404; readiness taken from /healthz"
      break
    fi
    (($(now_ms) - t0 < READY_TIMEOUT * 1000)) || die "Tally ($label) not ready after ${READY_TIMEOUT}s"
    sleep 0.05
  done
  READY_MS=$(($(now_ms) - t0))
  # The subshell execs dotnet, so $! is dotnet itself; check rather than
  # trust, since RSS must come from the runtime's process.
  local exe
  exe=$(readlink "/proc/$TALLY_PID/exe" || true)
  [[ $exe == */dotnet ]] || die "pid $TALLY_PID is $exe, not dotnet"
  log "Tally ($label, Durability=$durability) ready at $TALLY_URL in ${READY_MS} ms, pid $TALLY_PID"
}

stop_tally() {
  stop_pid "$TALLY_PID"
  ((STOP_KILLED == 0)) || log "Tally needed SIGKILL to stop"
}

fetch_metrics() {
  local code
  code=$(curl -s -o "$1" -w '%{http_code}' --max-time 30 "$TALLY_URL/metrics" || true)
  [[ $code == 200 ]] || : >"$1"
}

# run_wrk OUT CONNS SECONDS URL [VAR=VALUE ...]: runs wrk with the Lua script,
# the variables in its environment; sets WRK_CMD to the command line.
run_wrk() {
  local out=$1 conns=$2 secs=$3 url=$4
  shift 4
  local threads=$((conns < THREADS ? conns : THREADS))
  local cmd=(env "$@" WRK_THREADS="$threads" wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$LUA" "$url")
  WRK_CMD=$(shell_words "${cmd[@]:1}")
  "${cmd[@]}" >"$out" 2>&1 || log "wrk exited with status $? (see $out)"
}

# tally_scenario GROUP ID TITLE CONNS PATH PROBE OPS [VAR=VALUE ...]
#   PATH     the URL path wrk is given (modes random and batch build their own)
#   PROBE    "METHOD PATH [JSON]": one request sent first; 404 or 405 there
#            records "not available yet" instead of measuring error answers
#   OPS      increments per request (0 for reads), for increments/s
#   VAR=...  WRK_MODE etc. for bench/wrk/tally.lua
tally_scenario() {
  local group=$1 id=$2 title=$3 conns=$4 path=$5 probe=$6 ops=$7
  shift 7
  local raw=$RAW_DIR/$group-$id method ppath pbody code note=${READY_NOTE:-}
  local common=(--results "$RESULTS" --group "$group" --id "$id" --title "$title" --subject tally
    --connections "$conns" --threads "$((conns < THREADS ? conns : THREADS))" --durability "$DURABILITY"
    --ops-per-request "$ops")
  [[ -z ${COUNTERS:-} ]] || common+=(--counters "$COUNTERS")
  read -r method ppath pbody <<<"$probe"
  code=$(http_code "$method" "$TALLY_URL$ppath" "$pbody")
  log "$group/$id: probe $method $ppath -> $code"
  [[ $code != 000 ]] || die "Tally did not answer $method $ppath"
  if [[ $code == 404 || $code == 405 ]]; then
    python3 bench/collect.py add "${common[@]}" --status not_available \
      --note "not available yet: $method $ppath answered $code"
    return 0
  fi
  [[ $code == 2* ]] || note="${note:+$note; }probe $method $ppath answered $code"
  if ((WARMUP > 0)); then run_wrk "$raw.warmup.txt" "$conns" "$WARMUP" "$TALLY_URL$path" "$@"; fi
  fetch_metrics "$raw.metrics-before.txt"
  reset_peak "$TALLY_PID"
  run_wrk "$raw.txt" "$conns" "$DURATION" "$TALLY_URL$path" "$@"
  fetch_metrics "$raw.metrics-after.txt"
  local peak
  peak=$(proc_kb VmHWM "$TALLY_PID")
  alive "$TALLY_PID" || die "Tally died during $group/$id (see $RAW_DIR)"
  python3 bench/collect.py add "${common[@]}" --wrk "$raw.txt" \
    --metrics-before "$raw.metrics-before.txt" --metrics-after "$raw.metrics-after.txt" \
    --peak-rss-kb "$peak" --peak-rss-scope "$PEAK_SCOPE" --command "$WRK_CMD" ${note:+--note "$note"}
  grep -E '^Requests/sec' "$raw.txt" | sed "s|^|[bench] $group/$id: |" >&2 || true
}

BATCH_PROBE='POST /batch {"ops":[{"op":"increment","name":"b:0","by":1}]}'

group_tally() {
  local d
  for d in sync async; do
    DURABILITY=$d
    READY_NOTE=
    start_tally "http-$d" "$d" "$WORK/data-http-$d"
    if [[ $d == sync ]]; then
      tally_scenario http healthz "GET /healthz" "$CONNS" /healthz "GET /healthz" 0 WRK_MODE=get
    fi
    COUNTERS=1 tally_scenario http "inc_hot_$d" "POST /counters/hot/increment, $d" "$CONNS" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
    COUNTERS=$SPREAD tally_scenario http "inc_spread_$d" "increment over $(thousands "$SPREAD") counters, $d" "$CONNS" / \
      "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
    if [[ $d == sync ]]; then
      COUNTERS=1 tally_scenario http get_hot "GET /counters/hot" "$CONNS" /counters/hot "GET /counters/hot" 0 WRK_MODE=get
      COUNTERS=$BATCH tally_scenario http batch_sync "POST /batch, $(thousands "$BATCH") increments per request, sync" "$CONNS" / \
        "$BATCH_PROBE" "$BATCH" WRK_MODE=batch WRK_BATCH="$BATCH"
    fi
    stop_tally
  done

  # The cost of authentication: the same two requests with Auth=off.
  DURABILITY=sync
  READY_NOTE=
  start_tally http-noauth sync "$WORK/data-http-noauth" off
  tally_scenario http healthz_noauth "GET /healthz, Auth=off" "$CONNS" /healthz "GET /healthz" 0 WRK_MODE=get
  COUNTERS=1 tally_scenario http inc_hot_sync_noauth "POST /counters/hot/increment, sync, Auth=off" "$CONNS" \
    /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
  stop_tally

  DURABILITY=sync
  READY_NOTE=
  start_tally connections sync "$WORK/data-connections"
  local c
  for c in $CONN_SWEEP; do
    COUNTERS=1 tally_scenario connections "c$c" "$c connection$( ((c == 1)) || echo s), hot counter, sync" "$c" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
  done
  stop_tally
}

# wrk_load COUNT OPS_PER_REQUEST CONNS: creates counters m:0 .. m:COUNT-1;
# sets LOAD_MS and LOADED (requests answered 2xx x OPS_PER_REQUEST, capped).
wrk_load() {
  local count=$1 ops=$2 conns=$3 threads done_dir out wpid ok
  threads=$((conns < THREADS ? conns : THREADS))
  done_dir=$(mktemp -d -p "$WORK")
  out=$RAW_DIR/counters-load.txt
  local cmd=(env WRK_MODE=load WRK_PREFIX=m: WRK_TOTAL="$count" WRK_BATCH="$ops" WRK_THREADS="$threads"
    WRK_DONE_DIR="$done_dir" wrk -t"$threads" -c"$conns" -d"${LOAD_TIMEOUT}s" --timeout 60s -s "$LUA" "$TALLY_URL/")
  LOAD_CMD=$(shell_words "${cmd[@]:1}")
  local t0
  t0=$(now_ms)
  "${cmd[@]}" >"$out" 2>&1 &
  wpid=$!
  PIDS+=("$wpid")
  # wrk's main thread sleeps for all of -d even when every thread has stopped;
  # SIGINT ends that sleep and wrk prints its summary.
  while alive "$wpid" && (($(find "$done_dir" -name 'thread-*' | wc -l) < threads)); do sleep 0.1; done
  LOAD_MS=$(($(now_ms) - t0))
  kill -INT "$wpid" 2>/dev/null || true
  wait "$wpid" || true
  untrack "$wpid"
  ok=$(sed -n 's/^WRK_JSON .*"load_ok_requests":\([0-9]*\).*/\1/p' "$out")
  LOADED=$((${ok:-0} * ops))
  ((LOADED <= count)) || LOADED=$count
}

group_big() {
  local dir=$WORK/data-counters
  DURABILITY=sync
  READY_NOTE=
  start_tally counters sync "$dir"
  local empty_ready_ms=$READY_MS

  if wants tally; then
    python3 bench/collect.py alias --results "$RESULTS" --source http/inc_hot_sync \
      --group counters --id n1 --title "1 counter (hot), sync" --counters 1
    python3 bench/collect.py alias --results "$RESULTS" --source http/inc_spread_sync \
      --group counters --id "n$SPREAD" --title "$(thousands "$SPREAD") counters, sync" --counters "$SPREAD"
  fi

  local ops conns method code
  code=$(http_code POST "$TALLY_URL/batch" '{"ops":[{"op":"increment","name":"m:0","by":1}]}')
  if [[ $code == 2* ]]; then
    ops=$BATCH conns=8 method="POST /batch, $(thousands "$BATCH") increments per request"
  elif [[ $(http_code POST "$TALLY_URL/counters/m:0/increment") == 2* ]]; then
    ops=1 conns=$CONNS method="single increments (POST /batch answered $code)"
  fi
  if [[ -z ${ops:-} ]]; then
    python3 bench/collect.py add --results "$RESULTS" --group counters --id "n$BIG" \
      --title "$(thousands "$BIG") counters, sync" --status not_available --counters "$BIG" \
      --note "not available yet: neither /batch nor increment answered 2xx"
    stop_tally
    return 0
  fi

  log "loading $BIG counters with $method"
  wrk_load "$BIG" "$ops" "$conns"
  log "loaded $LOADED counters in ${LOAD_MS} ms"
  local rss_load hwm_load du_load
  rss_load=$(proc_kb VmRSS "$TALLY_PID")
  hwm_load=$(proc_kb VmHWM "$TALLY_PID")
  du_load=$(du -sk "$dir" | cut -f1)

  COUNTERS=$BIG tally_scenario counters "n$BIG" "$(thousands "$BIG") counters, sync" "$CONNS" / \
    "POST /counters/m:1/increment" 1 WRK_MODE=random WRK_PREFIX=m: WRK_NAMES="$BIG"

  stop_tally
  local stop_killed=$STOP_KILLED
  READY_NOTE=
  start_tally counters-restart sync "$dir"
  local restart_ms=$READY_MS rss_restart
  rss_restart=$(proc_kb VmRSS "$TALLY_PID")
  stop_tally

  python3 bench/collect.py extra --results "$RESULTS" --key counters_load \
    --field "counters_target=$BIG" --field "counters_loaded=$LOADED" --field "load_method=$method" \
    --field "load_seconds=$(awk -v ms="$LOAD_MS" 'BEGIN { printf "%.2f", ms / 1000 }')" \
    --field "load_command=$LOAD_CMD" \
    --field "rss_after_load_kb=$rss_load" --field "peak_rss_during_load_kb=$hwm_load" \
    --field "data_dir_kb=$du_load" \
    --field "start_empty_to_ready_ms=$empty_ready_ms" \
    --field "restart_to_ready_ms=$restart_ms" --field "rss_after_restart_kb=$rss_restart" \
    --field "stop_needed_sigkill=$stop_killed"
}

# ---------------------------------------------------------------- comparison

group_compare() {
  local port raw=$RAW_DIR/compare i
  port=$(free_port)
  local redis_cmd=(redis-server --port "$port" --save '' --appendonly no --bind 127.0.0.1)
  "${redis_cmd[@]}" --logfile "$RAW_DIR/redis.log" &
  local redis_pid=$!
  PIDS+=("$redis_pid")
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  alive "$redis_pid" || die "redis-server did not start (see $RAW_DIR/redis.log)"
  log "redis-server ready on 127.0.0.1:$port, pid $redis_pid"
  REDIS_SERVER_CMD=$(shell_words "${redis_cmd[@]}")

  redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -n 20000 -t incr -q >/dev/null 2>&1 || true
  reset_peak "$redis_pid"
  local bench_cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -n "$REDIS_N" -t incr --csv)
  "${bench_cmd[@]}" >"$raw-redis-incr.csv" 2>&1 || log "redis-benchmark exited with status $?"
  python3 bench/collect.py add --results "$RESULTS" --group compare --id redis_incr \
    --title "Redis INCR (redis-benchmark)" --subject redis --connections "$CONNS" --ops-per-request 1 \
    --redis-csv "$raw-redis-incr.csv" --peak-rss-kb "$(proc_kb VmHWM "$redis_pid")" \
    --peak-rss-scope "$PEAK_SCOPE" --command "$(shell_words "${bench_cmd[@]}")" \
    --note "redis-server without persistence (--save '' --appendonly no): no disk work at all"
  log "compare/redis_incr: $(tail -1 "$raw-redis-incr.csv")"

  local fport flask_args
  fport=$(free_port)
  read -ra flask_args <<<"$FLASK_ARGS"
  local gcmd=($PY_SYS -m gunicorn "${flask_args[@]}" -b "127.0.0.1:$fport" --chdir bench/flask_counter app:app)
  REDIS_PORT=$port "${gcmd[@]}" --error-logfile "$RAW_DIR/gunicorn.log" &
  local gpid=$!
  PIDS+=("$gpid")
  for ((i = 0; i < 300; i++)); do
    [[ $(http_code POST "http://127.0.0.1:$fport/counters/ready/increment") == 200 ]] && break
    alive "$gpid" || die "gunicorn exited (see $RAW_DIR/gunicorn.log)"
    sleep 0.1
  done
  log "Flask + Redis under gunicorn ready on 127.0.0.1:$fport ($FLASK_ARGS)"
  GUNICORN_CMD="REDIS_PORT=$port $(shell_words "${gcmd[@]}")"
  local url=http://127.0.0.1:$fport/counters/hot/increment
  if ((WARMUP > 0)); then run_wrk "$raw-flask.warmup.txt" "$CONNS" "$WARMUP" "$url" WRK_MODE=post; fi
  # shellcheck disable=SC2046 # one pid per word
  local gpids=("$gpid" $(pgrep -P "$gpid" || true))
  reset_peak "${gpids[@]}"
  run_wrk "$raw-flask.txt" "$CONNS" "$DURATION" "$url" WRK_MODE=post
  python3 bench/collect.py add --results "$RESULTS" --group compare --id flask_redis \
    --title "Flask + Redis INCR under gunicorn" --subject flask --connections "$CONNS" \
    --threads "$((CONNS < THREADS ? CONNS : THREADS))" --ops-per-request 1 --wrk "$raw-flask.txt" \
    --peak-rss-kb "$(proc_kb VmHWM "${gpids[@]}")" --peak-rss-scope "$PEAK_SCOPE" --command "$WRK_CMD" \
    --note "bench/flask_counter/app.py; gunicorn ${FLASK_ARGS}; RSS summed over master and workers"
  grep -E '^Requests/sec' "$raw-flask.txt" | sed 's|^|[bench] compare/flask_redis: |' >&2 || true
  stop_pid "$gpid"
  stop_pid "$redis_pid"
}

# ---------------------------------------------------------------- main

main() {
  mkdir -p "$RAW_DIR" "$OUT_DIR"
  : >"$RESULTS"
  WORK=$(mktemp -d)
  log "raw output: $RAW_DIR"
  install_missing
  if wants tally || wants big; then build_tally; fi

  local rev
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
  [[ -z $(git status --porcelain -- src 2>/dev/null) ]] || rev="$rev + uncommitted changes in src/"

  if wants tally; then group_tally; fi
  if wants compare; then group_compare; fi
  if wants big; then group_big; fi

  python3 bench/collect.py finish --results "$RESULTS" --out "$OUT_DIR/benchmarks.json" \
    --setting "quick=$QUICK" --setting "duration_s=$DURATION" --setting "warmup_s=$WARMUP" \
    --setting "wrk_threads=$THREADS" --setting "connections=$CONNS" --setting "connection_sweep=$CONN_SWEEP" \
    --setting "spread_counters=$SPREAD" --setting "big_counters=$BIG" --setting "batch_size=$BATCH" \
    --setting "redis_requests=$REDIS_N" --setting "flask_gunicorn_args=$FLASK_ARGS" \
    --setting "groups=$ONLY" --setting "tally_revision=$rev" --setting "peak_rss_scope=$PEAK_SCOPE" \
    --setting "tally_command=cd <publish> && TALLY_RATELIMIT__PERMITSPERSECOND=0 dotnet Tally.Server.dll --urls http://127.0.0.1:<port> --DataDir <fresh dir> --Durability <sync|async> --AdminKey <key> (every request sends it; the *, Auth=off* rows use --Auth off)" \
    --setting "redis_server_command=${REDIS_SERVER_CMD:-}" --setting "gunicorn_command=${GUNICORN_CMD:-}" \
    --setting "build_command=dotnet publish src/Tally.Server -c Release -o <publish>" \
    --setting "wrk_version=$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
    --setting "redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')" \
    --setting "gunicorn_version=$($PY_SYS -c 'import gunicorn; print(gunicorn.__version__)' 2>/dev/null || echo '?')" \
    --setting "flask_version=$($PY_SYS -c 'import importlib.metadata as m; print(m.version("flask"))' 2>/dev/null || echo '?')"
  python3 bench/report.py "$OUT_DIR/benchmarks.json" "$OUT_DIR/benchmarks.md"
  log "wrote $OUT_DIR/benchmarks.json and $OUT_DIR/benchmarks.md"
}

main "$@"
