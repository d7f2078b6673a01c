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
  # Every Tally scenario starts a fresh process, which compiles its request path for several seconds
  # (tiered JIT): measured after 2 s of warm-up, a cold process lost to a warm one.
  WARMUP=${BENCH_WARMUP:-4}
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
ONLY=${BENCH_ONLY:-"tally compare big postgres redis history events"}
OUT_DIR=${BENCH_OUT_DIR:-$REPO/docs}
RAW_DIR=${BENCH_RAW_DIR:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}
# 1: the rows of the groups not run now are kept from the previous benchmarks.json, marked with their run.
KEEP_OTHER_GROUPS=${BENCH_KEEP_OTHER_GROUPS:-1}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-120}
BENCH_KEY=${BENCH_KEY:-bench-admin-key-0123456789abcdef}
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-20}
LOAD_TIMEOUT=${BENCH_LOAD_TIMEOUT:-1200}
# PostgreSQL group (see bench/README.md).
PG_BIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_POOL=${BENCH_PG_POOL:-20}
PG_INSTANCES=${BENCH_PG_INSTANCES:-3}
PG_EXTRA_CONNS=${BENCH_PG_EXTRA_CONNS-256} # empty: none
PG_FSYNC_TEST=${BENCH_PG_FSYNC_TEST:-1}
NGINX=${BENCH_NGINX:-/usr/sbin/nginx}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
PG_QUIET_VARIANT=${BENCH_PG_QUIET_VARIANT:-1}
read -ra PG_TALLY_ARGS <<<"${BENCH_PG_TALLY_ARGS:-}"
# Redis group (see bench/README.md).
REDIS_INSTANCES=${BENCH_REDIS_INSTANCES:-2}
if [[ $QUICK == 1 ]]; then
  REDIS_DURABLE_N=${BENCH_REDIS_DURABLE_REQUESTS:-20000}
else
  REDIS_DURABLE_N=${BENCH_REDIS_DURABLE_REQUESTS:-100000}
fi
read -ra REDIS_TALLY_ARGS <<<"${BENCH_REDIS_TALLY_ARGS:-}"
REDIS_EMBEDDED_CONTROL=${BENCH_REDIS_EMBEDDED_CONTROL:-1}
# Compare group (side by side, see bench/README.md).
if [[ $QUICK == 1 ]]; then
  COMPARE_REPS=${BENCH_COMPARE_REPS:-1}
else
  COMPARE_REPS=${BENCH_COMPARE_REPS:-2}
fi
COMPARE_ENGINES=${BENCH_COMPARE_ENGINES-"postgres redis"} # empty: the embedded store only
COMPARE_HISTORY_OFF=${BENCH_COMPARE_HISTORY_OFF:-1}
SWEEP_HISTORY_OFF=${BENCH_SWEEP_HISTORY_OFF:-1} # the connection sweep also with history off
# History and events groups (see bench/README.md): pairs measured A/B, the order alternating.
if [[ $QUICK == 1 ]]; then
  HISTORY_REPS=${BENCH_HISTORY_REPS:-2}
  EVENTS_REPS=${BENCH_EVENTS_REPS:-2}
else
  HISTORY_REPS=${BENCH_HISTORY_REPS:-3}
  EVENTS_REPS=${BENCH_EVENTS_REPS:-3}
fi
HISTORY_STORES=${BENCH_HISTORY_STORES:-"embedded redis postgres"}
EVENTS_STREAMS=${BENCH_EVENTS_STREAMS:-1000}
EVENTS_OPEN_TIMEOUT=${BENCH_EVENTS_OPEN_TIMEOUT:-120}
read -ra EVENTS_TALLY_ARGS <<<"${BENCH_EVENTS_TALLY_ARGS:-}"

RESULTS=$RAW_DIR/results.jsonl
PY_SYS=/usr/bin/python3 # Debian's python: the one apt's flask, redis and gunicorn belong to
LUA=bench/wrk/tally.lua

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }
history_on() { wants history && [[ " $HISTORY_STORES " == *" $1 "* ]]; } # the history group measures this store
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

# stop_pid PID [TIMEOUT [SIGNAL]]: SIGNAL (TERM), then SIGKILL after TIMEOUT seconds.
# Sets STOP_KILLED=1 when SIGKILL was needed.
stop_pid() {
  local pid=$1 timeout=${2:-$STOP_TIMEOUT} sig=${3:-TERM} i
  STOP_KILLED=0
  if alive "$pid"; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "pid $pid still running ${timeout}s after SIG$sig; sending SIGKILL"
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
  # PostgreSQL: SIGINT is its fast shutdown (SIGTERM would wait for its clients).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    if [[ ${PIDS[i]} == "${PG_PID:-}" ]]; then stop_pid "${PIDS[i]}" 10 INT; else stop_pid "${PIDS[i]}" 5; fi
  done
  if [[ ${BENCH_KEEP_TMP:-0} != 1 ]]; then
    [[ -z ${WORK:-} ]] || rm -rf "$WORK"
    [[ -z ${PG_TMP:-} ]] || rm -rf "$PG_TMP"
    [[ -z ${NGINX_DIR:-} ]] || rm -rf "$NGINX_DIR"
    [[ -z ${REDIS_D_TMP:-} ]] || rm -rf "$REDIS_D_TMP"
  fi
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
  $PY_SYS -c 'import matplotlib' 2>/dev/null || pkgs+=(python3-matplotlib) # the report's charts
  if wants postgres || wants redis; then
    [[ -x $NGINX ]] || pkgs+=(nginx)
  fi
  if wants postgres || history_on postgres || { wants compare && [[ " $COMPARE_ENGINES " == *" postgres "* ]]; }; then
    { [[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pgbench && -x $PG_BIN/psql ]]; } || pkgs+=(postgresql-15)
    command -v setpriv >/dev/null || pkgs+=(util-linux)
  fi
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
# TALLY_EXTRA_ARGS (an array, usually empty) is appended to the command line.
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
    --urls "$TALLY_URL" --DataDir "$datadir" --Durability "$durability" "${auth_args[@]}" ${TALLY_EXTRA_ARGS[@]+"${TALLY_EXTRA_ARGS[@]}"}) \
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

# fetch_metrics FILE: GET /metrics of TALLY_URL, or of every URL in METRICS_URLS
# (several instances: their texts are concatenated, and collect.py sums over
# lines). Empty when any of them did not answer 200.
fetch_metrics() {
  local code u part=$1.part urls=("$TALLY_URL")
  ((${#METRICS_URLS[@]})) && urls=("${METRICS_URLS[@]}")
  : >"$1"
  for u in "${urls[@]}"; do
    code=$(curl -s -o "$part" -w '%{http_code}' --max-time 30 "$u/metrics" || true)
    if [[ $code != 200 ]]; then : >"$1"; rm -f "$part"; return 0; fi
    cat "$part" >>"$1"
  done
  rm -f "$part"
}
METRICS_URLS=() # set while several instances serve one scenario
RSS_PIDS=()     # likewise: the server processes whose RSS is summed

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
# SCENARIO_FIELDS (an array of "--field name=value" words) goes into the record as is.
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
  local pids=("$TALLY_PID") p
  ((${#RSS_PIDS[@]})) && pids=("${RSS_PIDS[@]}")
  fetch_metrics "$raw.metrics-before.txt"
  [[ -z ${SCENARIO_BEFORE_HOOK:-} ]] || $SCENARIO_BEFORE_HOOK "$raw"
  reset_peak "${pids[@]}"
  run_wrk "$raw.txt" "$conns" "$DURATION" "$TALLY_URL$path" "$@"
  fetch_metrics "$raw.metrics-after.txt"
  local peak extra_fields=()
  peak=$(proc_kb VmHWM "${pids[@]}")
  for p in "${pids[@]}"; do alive "$p" || die "Tally (pid $p) died during $group/$id (see $RAW_DIR)"; done
  # The hook prints "--field name=value" words for collect.py (PostgreSQL counters).
  [[ -z ${SCENARIO_AFTER_HOOK:-} ]] || read -ra extra_fields <<<"$($SCENARIO_AFTER_HOOK "$raw")"
  python3 bench/collect.py add "${common[@]}" --wrk "$raw.txt" \
    --metrics-before "$raw.metrics-before.txt" --metrics-after "$raw.metrics-after.txt" \
    --peak-rss-kb "$peak" --peak-rss-scope "$PEAK_SCOPE" --command "$WRK_CMD" ${note:+--note "$note"} \
    ${extra_fields[@]+"${extra_fields[@]}"} ${SCENARIO_FIELDS[@]+"${SCENARIO_FIELDS[@]}"}
  grep -E '^Requests/sec' "$raw.txt" | sed "s|^|[bench] $group/$id: |" >&2 || true
}

BATCH_PROBE='POST /batch {"ops":[{"op":"increment","name":"b:0","by":1}]}'

# tally_fresh LABEL DURABILITY [AUTH]: a new Tally on a new, empty data directory, so a scenario
# inherits nothing from an earlier one (counters, the SQLite WAL, a backlog of the counter log).
tally_fresh() {
  READY_NOTE=
  FRESH_DIR=$WORK/data-$1
  rm -rf "$FRESH_DIR"
  start_tally "$1" "$2" "$FRESH_DIR" "${3:-on}"
}

# tally_retire: stops it, removes its data directory and writes back dirty pages, so the next
# scenario does not pay for this one's disk writes.
tally_retire() {
  stop_tally
  [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || rm -rf "$FRESH_DIR"
  sync
}

# Every scenario on a fresh instance and data directory; sync and async of one workload back to back.
group_tally() {
  local d
  DURABILITY=sync
  tally_fresh http-healthz sync
  tally_scenario http healthz "GET /healthz" "$CONNS" /healthz "GET /healthz" 0 WRK_MODE=get
  tally_retire
  for d in sync async; do
    DURABILITY=$d
    tally_fresh "http-inc_hot_$d" "$d"
    COUNTERS=1 tally_scenario http "inc_hot_$d" "POST /counters/hot/increment, $d" "$CONNS" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
    tally_retire
  done
  for d in sync async; do
    DURABILITY=$d
    tally_fresh "http-inc_spread_$d" "$d"
    COUNTERS=$SPREAD tally_scenario http "inc_spread_$d" "increment over $(thousands "$SPREAD") counters, $d" "$CONNS" / \
      "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
    tally_retire
  done
  DURABILITY=sync
  tally_fresh http-get_hot sync
  # The counter read must exist (the probe would see 404 on a fresh instance).
  http_code POST "$TALLY_URL/counters/hot/increment" >/dev/null
  COUNTERS=1 tally_scenario http get_hot "GET /counters/hot" "$CONNS" /counters/hot "GET /counters/hot" 0 WRK_MODE=get
  tally_retire
  tally_fresh http-batch_sync sync
  COUNTERS=$BATCH tally_scenario http batch_sync "POST /batch, $(thousands "$BATCH") increments per request, sync" "$CONNS" / \
    "$BATCH_PROBE" "$BATCH" WRK_MODE=batch WRK_BATCH="$BATCH"
  tally_retire

  # The cost of authentication: the same two requests with Auth=off.
  tally_fresh http-healthz_noauth sync off
  tally_scenario http healthz_noauth "GET /healthz, Auth=off" "$CONNS" /healthz "GET /healthz" 0 WRK_MODE=get
  tally_retire
  tally_fresh http-inc_hot_sync_noauth sync off
  COUNTERS=1 tally_scenario http inc_hot_sync_noauth "POST /counters/hot/increment, sync, Auth=off" "$CONNS" \
    /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
  tally_retire

  # The sweep with history on (the default) and, with SWEEP_HISTORY_OFF=1, off: the two back to back,
  # the order alternating from one connection count to the next.
  local c h i=0 modes
  for c in $CONN_SWEEP; do
    modes=(on)
    if [[ $SWEEP_HISTORY_OFF == 1 ]]; then
      if ((i % 2)); then modes=(off on); else modes=(on off); fi
    fi
    for h in "${modes[@]}"; do
      local id="c$c" title="$c connection$( ((c == 1)) || echo s), hot counter, sync"
      TALLY_EXTRA_ARGS=()
      if [[ $h == off ]]; then
        id="c${c}_nohist" title="$title, history off"
        TALLY_EXTRA_ARGS=(--History:Enabled false)
      fi
      tally_fresh "connections-$id" sync
      TALLY_EXTRA_ARGS=()
      SCENARIO_FIELDS=(--field "history=$h")
      COUNTERS=1 tally_scenario connections "$id" "$title" "$c" \
        /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
      SCENARIO_FIELDS=()
      tally_retire
    done
    i=$((i + 1))
  done
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

# redis_plain_start: a redis-server without persistence on a free port (the compare group's INCR
# peer and the Flask service's store). Sets PLAIN_REDIS_PID, PLAIN_REDIS_PORT.
redis_plain_start() {
  local i
  PLAIN_REDIS_PORT=$(free_port)
  local cmd=(redis-server --port "$PLAIN_REDIS_PORT" --save '' --appendonly no --bind 127.0.0.1)
  "${cmd[@]}" --logfile "$RAW_DIR/redis.log" &
  PLAIN_REDIS_PID=$!
  PIDS+=("$PLAIN_REDIS_PID")
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$PLAIN_REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  alive "$PLAIN_REDIS_PID" || die "redis-server did not start (see $RAW_DIR/redis.log)"
  REDIS_SERVER_CMD=$(shell_words "${cmd[@]}")
}

# compare_fields PEER REP: what every compare row carries besides its figures.
compare_fields() {
  SCENARIO_FIELDS=(--field "peer=$1" --field "rep=$2" ${3:+--field "history=$3"})
}

# compare_redis_benchmark ID TITLE PORT PID N NOTE [durable]: redis-benchmark -t incr, 50 clients.
compare_redis_benchmark() {
  local id=$1 title=$2 port=$3 pid=$4 n=$5 note=$6 raw=$RAW_DIR/compare-$1
  redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -n "$((n / 5 < 20000 ? n / 5 : 20000))" -t incr -q >/dev/null 2>&1 || true
  [[ -z ${7:-} ]] || redis_fresh
  reset_peak "$pid"
  local cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" -n "$n" -t incr --csv)
  timeout 300 "${cmd[@]}" >"$raw.csv" 2>&1 || log "redis-benchmark exited with status $?"
  python3 bench/collect.py add --results "$RESULTS" --group compare --id "$id" --title "$title" --subject redis \
    --connections "$CONNS" --counters 1 --ops-per-request 1 --redis-csv "$raw.csv" \
    --peak-rss-kb "$(proc_kb VmHWM "$pid")" --peak-rss-scope "$PEAK_SCOPE" \
    --command "$(shell_words "${cmd[@]}")" --note "$note" ${SCENARIO_FIELDS[@]+"${SCENARIO_FIELDS[@]}"}
  log "compare/$id: $(tail -1 "$raw.csv")"
}

# compare_measure PEER REP: one subject of the side-by-side group on fresh instances.
compare_measure() {
  local peer=$1 rep=$2 id="$1_r$2" d hist=on what
  case $peer in
    redis_incr)
      compare_fields "$peer" "$rep"
      redis_plain_start
      compare_redis_benchmark "$id" "Redis INCR (redis-benchmark), no persistence (round $rep)" "$PLAIN_REDIS_PORT" \
        "$PLAIN_REDIS_PID" "$REDIS_N" "redis-server --save '' --appendonly no: no disk work at all"
      stop_pid "$PLAIN_REDIS_PID"
      ;;
    redis_incr_durable)
      compare_fields "$peer" "$rep"
      redis_fresh
      compare_redis_benchmark "$id" "Redis INCR (redis-benchmark), appendfsync always (round $rep)" "$REDIS_D_PORT" \
        "$REDIS_D_PID" "$REDIS_DURABLE_N" "redis-server --appendonly yes --appendfsync always: each reply after its AOF write is fsynced" durable
      ;;
    flask_redis)
      compare_fields "$peer" "$rep"
      redis_plain_start
      local fport flask_args i raw=$RAW_DIR/compare-$id
      fport=$(free_port)
      read -ra flask_args <<<"$FLASK_ARGS"
      local gcmd=($PY_SYS -m gunicorn "${flask_args[@]}" -b "127.0.0.1:$fport" --chdir bench/flask_counter app:app)
      REDIS_PORT=$PLAIN_REDIS_PORT "${gcmd[@]}" --error-logfile "$RAW_DIR/gunicorn.log" &
      local gpid=$!
      PIDS+=("$gpid")
      for ((i = 0; i < 300; i++)); do
        [[ $(http_code POST "http://127.0.0.1:$fport/counters/ready/increment") == 200 ]] && break
        alive "$gpid" || die "gunicorn exited (see $RAW_DIR/gunicorn.log)"
        sleep 0.1
      done
      GUNICORN_CMD="REDIS_PORT=<port> $(shell_words "${gcmd[@]}")"
      local url=http://127.0.0.1:$fport/counters/hot/increment
      if ((WARMUP > 0)); then run_wrk "$raw.warmup.txt" "$CONNS" "$WARMUP" "$url" WRK_MODE=post; fi
      # shellcheck disable=SC2046 # one pid per word
      local gpids=("$gpid" $(pgrep -P "$gpid" || true))
      reset_peak "${gpids[@]}"
      run_wrk "$raw.txt" "$CONNS" "$DURATION" "$url" WRK_MODE=post
      python3 bench/collect.py add --results "$RESULTS" --group compare --id "$id" \
        --title "Flask + Redis INCR under gunicorn (round $rep)" --subject flask --connections "$CONNS" --counters 1 \
        --threads "$((CONNS < THREADS ? CONNS : THREADS))" --ops-per-request 1 --wrk "$raw.txt" \
        --peak-rss-kb "$(proc_kb VmHWM "${gpids[@]}")" --peak-rss-scope "$PEAK_SCOPE" --command "$WRK_CMD" \
        --note "bench/flask_counter/app.py; gunicorn ${FLASK_ARGS}; RSS summed over master and workers" "${SCENARIO_FIELDS[@]}"
      grep -E '^Requests/sec' "$raw.txt" | sed "s|^|[bench] compare/$id: |" >&2 || true
      stop_pid "$gpid"
      stop_pid "$PLAIN_REDIS_PID"
      ;;
    healthz)
      compare_fields "$peer" "$rep"
      DURABILITY=sync
      tally_fresh "compare-$id" sync off
      tally_scenario compare "$id" "Tally GET /healthz (round $rep)" "$CONNS" /healthz "GET /healthz" 0 WRK_MODE=get
      tally_retire
      ;;
    sync_* | async_*)
      d=${peer%%_*}
      [[ $peer != *_nohist ]] || hist=off
      compare_fields "$peer" "$rep" "$hist"
      DURABILITY=$d
      TALLY_EXTRA_ARGS=()
      [[ $hist == on ]] || TALLY_EXTRA_ARGS=(--History:Enabled false)
      tally_fresh "compare-$id" "$d" off
      TALLY_EXTRA_ARGS=()
      if [[ $peer == *_hot* ]]; then
        COUNTERS=1 tally_scenario compare "$id" "Tally embedded, $d, hot counter, history $hist (round $rep)" "$CONNS" \
          /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
      else
        COUNTERS=$SPREAD tally_scenario compare "$id" "Tally embedded, $d, $(thousands "$SPREAD") counters, history $hist (round $rep)" "$CONNS" / \
          "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
      fi
      tally_retire
      ;;
    pg_hot | redis_hot)
      compare_fields "$peer" "$rep" on
      DURABILITY=sync
      if [[ $peer == pg_hot ]]; then
        pg_tally_start "compare_pg_hot_r$rep" 1
        what="Tally on PostgreSQL"
      else
        redis_tally_start "compare-hot-r$rep" 1
        what="Tally on Redis (appendfsync always)"
      fi
      COUNTERS=1 tally_scenario compare "$id" "$what, 1 instance, hot counter (round $rep)" "$CONNS" \
        /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
      if [[ $peer == pg_hot ]]; then pg_tally_stop; else redis_tally_stop; fi
      ;;
    *) die "compare: unknown peer $peer" ;;
  esac
  SCENARIO_FIELDS=()
}

# Side by side in one run: Redis INCR without persistence and with appendfsync always, the seed's
# Flask + Redis service, Tally's GET /healthz and its embedded store (sync and async, hot counter and
# SPREAD names, history on and off), and the PostgreSQL and Redis engines. Every subject on fresh
# instances (Tally: a new data directory; Redis emptied; PostgreSQL: a new database); COMPARE_REPS
# rounds, the order reversed in even rounds, so a drift of the machine's load falls on all alike.
group_compare() {
  local peers=(redis_incr redis_incr_durable flask_redis healthz sync_hot async_hot sync_spread async_spread)
  [[ $COMPARE_HISTORY_OFF != 1 ]] || peers+=(sync_hot_nohist async_hot_nohist sync_spread_nohist async_spread_nohist)
  [[ " $COMPARE_ENGINES " != *" postgres "* ]] || peers+=(pg_hot)
  [[ " $COMPARE_ENGINES " != *" redis "* ]] || peers+=(redis_hot)
  local rep i order
  REDIS_INST_PIDS=() REDIS_TALLY_LOGS=()
  redis_durable_start
  [[ " $COMPARE_ENGINES " != *" postgres "* ]] || pg_start
  for ((rep = 1; rep <= COMPARE_REPS; rep++)); do
    order=("${peers[@]}")
    if ((rep % 2 == 0)); then
      order=()
      for ((i = ${#peers[@]} - 1; i >= 0; i--)); do order+=("${peers[i]}"); done
    fi
    for i in "${order[@]}"; do compare_measure "$i" "$rep"; done
  done
  [[ " $COMPARE_ENGINES " != *" postgres "* ]] || pg_stop
  redis_durable_stop
}

# ---------------------------------------------------------------- PostgreSQL

PG_PID=
PG_TMP=
PG_AS=()

# pg_sql DB SQL: runs SQL as the superuser over TCP; prints rows unaligned.
pg_sql() {
  PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}

# A private PostgreSQL: temp data dir, 127.0.0.1 and a free port, trust auth,
# fsync and synchronous_commit on (what a 2xx from Tally promises). initdb
# refuses root, so as root both run as the postgres OS user.
pg_start() {
  PG_TMP=$(mktemp -d /tmp/tally-bench-pg.XXXXXX)
  PG_PORT=$(free_port)
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no postgres OS user (the postgresql-15 package creates it)"
    chown postgres:postgres "$PG_TMP"
    PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  chmod 700 "$PG_TMP"
  (cd "$PG_TMP" && ${PG_AS[@]+"${PG_AS[@]}"} mkdir "$PG_TMP/sock" &&
    ${PG_AS[@]+"${PG_AS[@]}"} "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -E UTF8 --locale=C \
      --auth-local=trust --auth-host=trust) >"$RAW_DIR/postgres-initdb.log" 2>&1 ||
    { tail -20 "$RAW_DIR/postgres-initdb.log" >&2; die "initdb failed"; }
  PG_MAX_CONN=$((PG_INSTANCES * (PG_POOL + 1) + CONNS + 30))
  local cmd=("$PG_BIN/postgres" -D "$PG_TMP/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1
    -c "unix_socket_directories=$PG_TMP/sock" -c fsync=on -c synchronous_commit=on
    -c "max_connections=$PG_MAX_CONN")
  PG_SERVER_CMD=$(shell_words "${cmd[@]}")
  # setpriv execs, so $! is postgres itself.
  (cd "$PG_TMP" && exec ${PG_AS[@]+"${PG_AS[@]}"} "${cmd[@]}") >>"$RAW_DIR/postgres.log" 2>&1 &
  PG_PID=$!
  PIDS+=("$PG_PID")
  local i
  for ((i = 0; i < 300; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    alive "$PG_PID" || { tail -20 "$RAW_DIR/postgres.log" >&2; die "postgres exited during start-up"; }
    sleep 0.1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || die "postgres not ready after 30 s"
  log "PostgreSQL $(pg_sql postgres 'SHOW server_version' | awk '{print $1}') ready on 127.0.0.1:$PG_PORT, pid $PG_PID, data $PG_TMP/data"
}

pg_stop() {
  [[ -n $PG_PID ]] || return 0
  stop_pid "$PG_PID" 30 INT
  PG_PID=
  [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || { rm -rf "$PG_TMP"; PG_TMP=; }
}

pg_fresh_db() {
  pg_sql postgres "DROP DATABASE IF EXISTS $1" && pg_sql postgres "CREATE DATABASE $1"
}

# Per-scenario hooks for tally_scenario: WAL written, and the errors
# PostgreSQL logged (deadlocks, serialization failures, unique violations:
# Tally retries those) and warnings or errors Tally logged, during the measurement.
# cpu_ticks PID...: user + system clock ticks of these processes and their
# children (PostgreSQL's backends, nginx's workers), waited-for ones included.
cpu_ticks() {
  local p c total=0
  for p; do
    for c in "$p" $(pgrep -P "$p" || true); do
      total=$((total + $(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] + f[14] + f[15] }' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}

pg_cpu_snapshot() {
  echo "$(cpu_ticks "${PG_INST_PIDS[@]}") $(cpu_ticks "$PG_PID") $(cpu_ticks ${NGINX_PID:-}) $(now_ms)"
}

pg_before() {
  pg_cpu_snapshot >"$1.cpu-before"
  pg_sql postgres 'SELECT pg_current_wal_lsn()' >"$1.pg-lsn-before"
  wc -l <"$RAW_DIR/postgres.log" >"$1.pg-log-lines"
  local f
  for f in "${PG_TALLY_LOGS[@]}"; do wc -l <"$f"; done >"$1.tally-log-lines"
}

pg_after() {
  local raw=$1 lsn0 wal seg dl ser uq err tw i=0 f n c0 c1 hz
  read -ra c1 <<<"$(pg_cpu_snapshot)"
  read -ra c0 <"$raw.cpu-before"
  hz=$(getconf CLK_TCK)
  lsn0=$(cat "$raw.pg-lsn-before")
  wal=$(pg_sql postgres "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')::bigint")
  seg=$(tail -n +"$(($(cat "$raw.pg-log-lines") + 1))" "$RAW_DIR/postgres.log")
  printf '%s\n' "$seg" >"$raw.postgres-log.txt"
  dl=$(grep -c 'ERROR:  deadlock detected' <<<"$seg" || true)
  ser=$(grep -c 'ERROR:  could not serialize' <<<"$seg" || true)
  uq=$(grep -c 'ERROR:  duplicate key' <<<"$seg" || true)
  err=$(grep -cE '(ERROR|FATAL|PANIC):' <<<"$seg" || true)
  tw=0
  mapfile -t n <"$raw.tally-log-lines"
  for f in "${PG_TALLY_LOGS[@]}"; do
    tail -n +"$((n[i] + 1))" "$f" >>"$raw.tally-log.txt"
    tw=$((tw + $(tail -n +"$((n[i] + 1))" "$f" | grep -cE '^(warn|fail|crit):' || true)))
    i=$((i + 1))
  done
  echo "--field instances=$PG_SCEN_INSTANCES --field wal_bytes=$wal --field pg_errors=$err" \
    "--field pg_deadlocks=$dl --field pg_serialization_failures=$ser --field pg_unique_violations=$uq" \
    "--field tally_log_warnings=$tw --field cpu_window_s=$(awk -v a="${c0[3]}" -v b="${c1[3]}" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" \
    "--field cpu_tally_s=$(awk -v a="${c0[0]}" -v b="${c1[0]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "--field cpu_postgres_s=$(awk -v a="${c0[1]}" -v b="${c1[1]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "--field cpu_nginx_s=$(awk -v a="${c0[2]}" -v b="${c1[2]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
}

# pg_tally_start DB N: N Tally instances on database DB; with N > 1 a private
# nginx in front. Sets TALLY_URL (nginx's with N > 1), METRICS_URLS, RSS_PIDS.
pg_tally_start() {
  local db=$1 n=$2 i
  pg_fresh_db "$db"
  TALLY_EXTRA_ARGS=(--Store postgres --Postgres
    "Host=127.0.0.1;Port=$PG_PORT;Database=$db;Username=postgres;Maximum Pool Size=$PG_POOL"
    ${PG_TALLY_ARGS[@]+"${PG_TALLY_ARGS[@]}"})
  PG_INST_PIDS=() METRICS_URLS=() PG_TALLY_LOGS=()
  for ((i = 1; i <= n; i++)); do
    READY_NOTE=
    start_tally "pg-$db-$i" sync "$WORK/data-pg-$db-$i" off
    PG_INST_PIDS+=("$TALLY_PID")
    METRICS_URLS+=("$TALLY_URL")
    PG_TALLY_LOGS+=("$RAW_DIR/tally-pg-$db-$i.log")
  done
  TALLY_EXTRA_ARGS=()
  RSS_PIDS=("${PG_INST_PIDS[@]}")
  PG_SCEN_INSTANCES=$n
  if ((n > 1)); then nginx_start "${METRICS_URLS[@]}"; TALLY_URL=$NGINX_URL; fi
}

pg_tally_stop() {
  local p
  [[ -z ${NGINX_PID:-} ]] || { stop_pid "$NGINX_PID" 10; NGINX_PID=; }
  [[ -z ${NGINX_DIR:-} || ${BENCH_KEEP_TMP:-0} == 1 ]] || { rm -rf "$NGINX_DIR"; NGINX_DIR=; }
  for p in "${PG_INST_PIDS[@]}"; do
    stop_pid "$p"
    ((STOP_KILLED == 0)) || log "Tally (pid $p) needed SIGKILL to stop"
  done
  PG_INST_PIDS=() METRICS_URLS=() RSS_PIDS=()
}

# nginx_start URL...: a private nginx (generated config in a temp prefix) on a
# free port, upstream of the given instances as in deploy/nginx/tally-cluster.conf
# (least_conn, keep-alive, passive health checks, retries only before a request
# reached an instance). Sets NGINX_PID, NGINX_URL.
nginx_start() {
  local dir port u servers="" i code
  dir=$(mktemp -d /tmp/tally-bench-nginx.XXXXXX)
  NGINX_DIR=$dir
  chmod 755 "$dir"
  mkdir -p "$dir/tmp"
  port=$(free_port)
  for u in "$@"; do servers+="        server ${u#http://} max_fails=2 fail_timeout=10s;"$'\n'; done
  cat >"$dir/nginx.conf" <<NGINX
worker_processes $NGINX_WORKERS;
pid $dir/nginx.pid;
error_log $RAW_DIR/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream tally {
        zone tally 64k;
$servers        least_conn;
        keepalive 64;
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 2m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_connect_timeout 5s;
        proxy_read_timeout 60s;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 10s;
        location / { proxy_pass http://tally; }
    }
}
NGINX
  cp "$dir/nginx.conf" "$RAW_DIR/nginx.conf"
  local cmd=("$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$RAW_DIR/nginx-error.log" -g 'daemon off;')
  NGINX_CMD=$(shell_words "${cmd[@]}")
  "${cmd[@]}" -t >>"$RAW_DIR/nginx-error.log" 2>&1 || { tail -20 "$RAW_DIR/nginx-error.log" >&2; die "nginx -t failed"; }
  "${cmd[@]}" >>"$RAW_DIR/nginx-error.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  NGINX_URL=http://127.0.0.1:$port
  for ((i = 0; i < 100; i++)); do
    code=$(http_code GET "$NGINX_URL/readyz")
    [[ $code == 200 ]] && break
    alive "$NGINX_PID" || { tail -20 "$RAW_DIR/nginx-error.log" >&2; die "nginx exited"; }
    sleep 0.1
  done
  [[ $code == 200 ]] || die "nginx at $NGINX_URL: /readyz answered $code"
  log "nginx ready at $NGINX_URL, pid $NGINX_PID, upstream $*"
}

# pgbench_run OUT CLIENTS SECONDS SCRIPT DB [pgbench args...]
pgbench_run() {
  local out=$1 clients=$2 secs=$3 script=$4 db=$5
  shift 5
  local jobs=$((clients < 2 ? clients : 2))
  local cmd=("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c "$clients" -j "$jobs" -T "$secs"
    -f "$script" "$@" "$db")
  PGBENCH_CMD=$(shell_words "${cmd[@]}")
  "${cmd[@]}" >"$out" 2>&1 || log "pgbench exited with status $? (see $out)"
}

group_postgres() {
  local raw=$RAW_DIR/postgres
  DURABILITY=sync
  pg_start

  # The naive baseline: one UPDATE of one row per transaction, a separate
  # database so that Tally's schema is untouched.
  pg_fresh_db pgbench_naive
  pg_sql pgbench_naive "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL); INSERT INTO counters VALUES ('hot', 0)"
  local hot_sql=$RAW_DIR/pgbench-hot.sql one_sql=$RAW_DIR/pgbench-select1.sql
  echo "UPDATE counters SET value = value + 1 WHERE name = 'hot';" >"$hot_sql"
  echo "SELECT 1;" >"$one_sql"

  # Round trip and one commit's cost, single client (for docs/scaling.md).
  local t=$((DURATION < 3 ? DURATION : 3))
  pgbench_run "$raw-rtt.txt" 1 "$t" "$one_sql" pgbench_naive
  pgbench_run "$raw-commit1.txt" 1 "$t" "$hot_sql" pgbench_naive
  local fsync_fields=()
  if [[ $PG_FSYNC_TEST == 1 ]]; then
    log "pg_test_fsync -s 1 on the PostgreSQL data directory's file system"
    (cd "$PG_TMP" && ${PG_AS[@]+"${PG_AS[@]}"} "$PG_BIN/pg_test_fsync" -s 1 -f "$PG_TMP/data/pg_test_fsync.tmp") \
      >"$raw-pg_test_fsync.txt" 2>&1 || log "pg_test_fsync failed (see $raw-pg_test_fsync.txt)"
    fsync_fields=(--pg-test-fsync "$raw-pg_test_fsync.txt")
  fi
  python3 bench/collect.py pgextra --results "$RESULTS" --rtt "$raw-rtt.txt" --commit1 "$raw-commit1.txt" \
    ${fsync_fields[@]+"${fsync_fields[@]}"} --field "server_command=$PG_SERVER_CMD" \
    --field "server_version=$(pg_sql postgres 'SHOW server_version' | awk '{print $1}')" \
    --field "pool=$PG_POOL" --field "max_connections=$PG_MAX_CONN"

  if ((WARMUP > 0)); then pgbench_run "$raw-pgbench_hot.warmup.txt" "$CONNS" "$WARMUP" "$hot_sql" pgbench_naive; fi
  local lsn0 wal
  lsn0=$(pg_sql postgres 'SELECT pg_current_wal_lsn()')
  reset_peak "$PG_PID"
  pgbench_run "$raw-pgbench_hot.txt" "$CONNS" "$DURATION" "$hot_sql" pgbench_naive -l --log-prefix="$raw-pgbench_hot.log"
  wal=$(pg_sql postgres "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')::bigint")
  python3 bench/collect.py add --results "$RESULTS" --group postgres --id pgbench_hot \
    --title "pgbench, naive: one UPDATE of one row per transaction" --subject pgbench --connections "$CONNS" \
    --threads 2 --counters 1 --durability sync --ops-per-request 1 --pgbench "$raw-pgbench_hot.txt" \
    --pgbench-log-prefix "$raw-pgbench_hot.log" --command "$PGBENCH_CMD" \
    --field instances=0 --field "wal_bytes=$wal" \
    --note "script: $(cat "$hot_sql") (one transaction per request, no HTTP)"
  rm -f "$raw-pgbench_hot.log".*
  grep -E '^(tps|latency average)' "$raw-pgbench_hot.txt" | sed 's|^|[bench] postgres/pgbench_hot: |' >&2 || true

  SCENARIO_BEFORE_HOOK=pg_before SCENARIO_AFTER_HOOK=pg_after
  local n c
  for n in 1 "$PG_INSTANCES"; do
    local via="" s=""
    ((n == 1)) || { via=" behind nginx"; s=s; }
    pg_tally_start "tally_hot_$n" "$n"
    COUNTERS=1 tally_scenario postgres "pg${n}_hot" "$n instance$s$via, POST /counters/hot/increment" "$CONNS" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
    pg_tally_stop
    pg_tally_start "tally_spread_$n" "$n"
    COUNTERS=$SPREAD tally_scenario postgres "pg${n}_spread" "$n instance$s$via, increment over $(thousands "$SPREAD") counters" "$CONNS" / \
      "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
    pg_tally_stop
    if ((n == 1)); then
      for c in $PG_EXTRA_CONNS; do
        pg_tally_start "tally_hot_1_c$c" 1
        COUNTERS=1 tally_scenario postgres "pg1_hot_c$c" "1 instance, POST /counters/hot/increment, $c connections" "$c" \
          /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
        pg_tally_stop
      done
      pg_tally_start tally_batch_1 1
      COUNTERS=$BATCH tally_scenario postgres pg1_batch "1 instance, POST /batch, $(thousands "$BATCH") increments over $(thousands "$BATCH") names" "$CONNS" / \
        "$BATCH_PROBE" "$BATCH" WRK_MODE=batch WRK_BATCH="$BATCH"
      pg_tally_stop
    fi
  done
  # As shipped, appsettings.json logs Npgsql at Information: every SQL command
  # a line on the console. The same hot scenarios with that category at Warning:
  if [[ $PG_QUIET_VARIANT == 1 ]]; then
    PG_TALLY_ARGS=(--Logging:LogLevel:Npgsql Warning)
    for n in 1 "$PG_INSTANCES"; do
      local via="" s=""
      ((n == 1)) || { via=" behind nginx"; s=s; }
      pg_tally_start "tally_hot_${n}_quiet" "$n"
      COUNTERS=1 tally_scenario postgres "pg${n}_hot_npgsql_warn" "$n instance$s$via, POST /counters/hot/increment, Npgsql log level Warning" "$CONNS" \
        /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
      pg_tally_stop
    done
    PG_TALLY_ARGS=()
  fi
  SCENARIO_BEFORE_HOOK= SCENARIO_AFTER_HOOK=
  pg_stop
}

# ---------------------------------------------------------------- Redis

REDIS_D_PID=
REDIS_D_TMP=

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_D_PORT" "$@"; }

# A private Redis with what Store=redis demands (Tally refuses anything less
# without RedisAllowDataLoss): AOF on and fsynced before every reply, no RDB
# snapshots, no eviction; a temp dir for the AOF, 127.0.0.1 and a free port.
redis_durable_start() {
  local major i
  major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  ((${major:-0} >= 7)) || die "the redis group needs Redis 7 or later (Functions); redis-server is v${major:-?}"
  REDIS_D_TMP=$(mktemp -d /tmp/tally-bench-redis.XXXXXX)
  REDIS_D_PORT=$(free_port)
  local cmd=(redis-server --port "$REDIS_D_PORT" --bind 127.0.0.1 --dir "$REDIS_D_TMP" --appendonly yes
    --appendfsync always --save '' --maxmemory-policy noeviction)
  REDIS_DURABLE_CMD=$(shell_words "${cmd[@]}")
  "${cmd[@]}" --logfile "$RAW_DIR/redis-durable.log" &
  REDIS_D_PID=$!
  PIDS+=("$REDIS_D_PID")
  for ((i = 0; i < 100; i++)); do
    [[ $(rcli ping 2>/dev/null) == PONG ]] && break
    alive "$REDIS_D_PID" || { tail -20 "$RAW_DIR/redis-durable.log" >&2; die "redis-server (durable) exited during start-up"; }
    sleep 0.1
  done
  [[ $(rcli ping 2>/dev/null) == PONG ]] || die "redis-server (durable) not answering after 10 s"
  log "redis-server (appendfsync always) ready on 127.0.0.1:$REDIS_D_PORT, pid $REDIS_D_PID, dir $REDIS_D_TMP"
}

redis_durable_stop() {
  [[ -n $REDIS_D_PID ]] || return 0
  stop_pid "$REDIS_D_PID" 30
  REDIS_D_PID=
  [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || { rm -rf "$REDIS_D_TMP"; REDIS_D_TMP=; }
}

# Every scenario starts on an empty Redis with a compacted AOF: FLUSHALL (the
# tally_v1 functions stay; Tally loads them again at start anyway), then an AOF
# rewrite so the previous scenario's log is not rewritten during this one.
redis_fresh() {
  local i
  rcli flushall sync >/dev/null
  rcli bgrewriteaof >/dev/null
  for ((i = 0; i < 300; i++)); do
    rcli info persistence | grep -qE '^aof_rewrite_(in_progress|scheduled):1' || return 0
    sleep 0.1
  done
  log "the AOF rewrite after FLUSHALL still runs after 30 s; going on"
}

redis_cpu_snapshot() {
  echo "$(cpu_ticks ${REDIS_INST_PIDS[@]+"${REDIS_INST_PIDS[@]}"}) $(cpu_ticks "$REDIS_D_PID") $(cpu_ticks ${NGINX_PID:-}) $(now_ms)"
}

# Hooks for tally_scenario (and the redis-benchmark run): CPU of Tally, Redis
# and nginx; Redis's INFO (commandstats: calls and usec per command, FCALL
# included; persistence: AOF size) before and after; warn/fail lines Tally logged.
redis_before() {
  # Zeroes commandstats and latencystats, so the percentiles Redis reports after are this measurement's.
  rcli config resetstat >/dev/null
  redis_cpu_snapshot >"$1.cpu-before"
  rcli info all >"$1.redis-info-before.txt"
  # Redis's main thread: running, in the fsync (D state) or idle, sampled every 5 ms; and the
  # run-queue wait of Tally's and Redis's threads. Stopped by redis_after, reaped by redis_sampler_reap.
  local tally_pids
  tally_pids=$(IFS=,; echo "${REDIS_INST_PIDS[*]+"${REDIS_INST_PIDS[*]}"}")
  python3 bench/procstate.py --out "$1.procstate.json" --sample "$REDIS_D_PID" --max-seconds $((DURATION + 60)) \
    --group "redis=$REDIS_D_PID" ${tally_pids:+--group "tally=$tally_pids"} &
  REDIS_SAMPLER_PID=$!
  PIDS+=("$REDIS_SAMPLER_PID")
  local f
  for f in ${REDIS_TALLY_LOGS[@]+"${REDIS_TALLY_LOGS[@]}"}; do wc -l <"$f"; done >"$1.tally-log-lines"
}

redis_after() {
  local raw=$1 c0 c1 hz tw=0 i=0 f n
  # A subshell ($(...) in tally_scenario): signal the sampler and wait for its file; the parent reaps it.
  kill -TERM "$REDIS_SAMPLER_PID" 2>/dev/null || true
  read -ra c1 <<<"$(redis_cpu_snapshot)"
  rcli info all >"$raw.redis-info-after.txt"
  for ((i = 0; i < 100; i++)); do alive "$REDIS_SAMPLER_PID" || break; sleep 0.05; done
  i=0
  read -ra c0 <"$raw.cpu-before"
  hz=$(getconf CLK_TCK)
  mapfile -t n <"$raw.tally-log-lines"
  for f in ${REDIS_TALLY_LOGS[@]+"${REDIS_TALLY_LOGS[@]}"}; do
    tail -n +"$((n[i] + 1))" "$f" >>"$raw.tally-log.txt"
    tw=$((tw + $(tail -n +"$((n[i] + 1))" "$f" | grep -cE '^(warn|fail|crit):' || true)))
    i=$((i + 1))
  done
  echo "--redis-info-before $raw.redis-info-before.txt --redis-info-after $raw.redis-info-after.txt" \
    "--procstate $raw.procstate.json" \
    "--field instances=${REDIS_SCEN_INSTANCES:-0} --field tally_log_warnings=$tw" \
    "--field cpu_window_s=$(awk -v a="${c0[3]}" -v b="${c1[3]}" 'BEGIN { printf "%.2f", (b - a) / 1000 }')" \
    "--field cpu_tally_s=$(awk -v a="${c0[0]}" -v b="${c1[0]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "--field cpu_redis_s=$(awk -v a="${c0[1]}" -v b="${c1[1]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "--field cpu_nginx_s=$(awk -v a="${c0[2]}" -v b="${c1[2]}" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
}

# redis_tally_start LABEL N: N Tally instances on the durable Redis, emptied
# first; with N > 1 a private nginx in front. Sets TALLY_URL (nginx's with
# N > 1), METRICS_URLS, RSS_PIDS.
redis_tally_start() {
  local label=$1 n=$2 i
  redis_fresh
  TALLY_EXTRA_ARGS=(--Store redis --Redis "127.0.0.1:$REDIS_D_PORT" ${REDIS_TALLY_ARGS[@]+"${REDIS_TALLY_ARGS[@]}"})
  REDIS_INST_PIDS=() METRICS_URLS=() REDIS_TALLY_LOGS=()
  for ((i = 1; i <= n; i++)); do
    READY_NOTE=
    start_tally "redis-$label-$i" sync "$WORK/data-redis-$label-$i" off
    REDIS_INST_PIDS+=("$TALLY_PID")
    METRICS_URLS+=("$TALLY_URL")
    REDIS_TALLY_LOGS+=("$RAW_DIR/tally-redis-$label-$i.log")
  done
  TALLY_EXTRA_ARGS=()
  RSS_PIDS=("${REDIS_INST_PIDS[@]}")
  REDIS_SCEN_INSTANCES=$n
  if ((n > 1)); then nginx_start "${METRICS_URLS[@]}"; TALLY_URL=$NGINX_URL; fi
}

redis_sampler_reap() {
  [[ -z ${REDIS_SAMPLER_PID:-} ]] || stop_pid "$REDIS_SAMPLER_PID" 5
  REDIS_SAMPLER_PID=
}

redis_tally_stop() {
  local p
  redis_sampler_reap
  [[ -z ${NGINX_PID:-} ]] || { stop_pid "$NGINX_PID" 10; NGINX_PID=; }
  [[ -z ${NGINX_DIR:-} || ${BENCH_KEEP_TMP:-0} == 1 ]] || { rm -rf "$NGINX_DIR"; NGINX_DIR=; }
  for p in "${REDIS_INST_PIDS[@]}"; do
    stop_pid "$p"
    ((STOP_KILLED == 0)) || log "Tally (pid $p) needed SIGKILL to stop"
  done
  REDIS_INST_PIDS=() METRICS_URLS=() RSS_PIDS=() REDIS_TALLY_LOGS=()
}

# The embedded store's control runs use the same hooks, for Tally's CPU time and
# run-queue wait (Redis sits idle then); instances=0 marks them.
redis_embedded_hooks() {
  REDIS_INST_PIDS=("$TALLY_PID") REDIS_TALLY_LOGS=("$RAW_DIR/tally-$1.log") REDIS_SCEN_INSTANCES=0
  SCENARIO_BEFORE_HOOK=redis_before SCENARIO_AFTER_HOOK=redis_after
}

group_redis() {
  local raw=$RAW_DIR/redis n
  DURABILITY=sync
  REDIS_INST_PIDS=() REDIS_TALLY_LOGS=()
  redis_durable_start

  # One client, for the reading: a round trip (PING) and one durable INCR
  # (round trip + AOF write + fsync), a few seconds at most each.
  local n1=$((QUICK == 1 ? 500 : 3000))
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_D_PORT" -c 1 -n "$((n1 * 4))" -t ping_mbulk --csv >"$raw-ping1.csv" 2>&1 ||
    log "redis-benchmark PING (1 client) exited with status $?"
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_D_PORT" -c 1 -n "$n1" -t incr --csv >"$raw-incr1.csv" 2>&1 ||
    log "redis-benchmark INCR (1 client) exited with status $?"
  python3 bench/collect.py redisextra --results "$RESULTS" --ping1 "$raw-ping1.csv" --incr1 "$raw-incr1.csv" \
    --field "server_command=$REDIS_DURABLE_CMD" --field "instances=$REDIS_INSTANCES" \
    --field "server_version=$(rcli info server | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"

  # The durable peer: redis-benchmark's INCR on the same Redis (one key).
  redis_fresh
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_D_PORT" -c "$CONNS" -n "$((REDIS_DURABLE_N / 5))" -t incr -q >/dev/null 2>&1 || true
  redis_fresh
  local bench_cmd=(redis-benchmark -h 127.0.0.1 -p "$REDIS_D_PORT" -c "$CONNS" -n "$REDIS_DURABLE_N" -t incr --csv)
  local extra_fields=()
  REDIS_SCEN_INSTANCES=0
  redis_before "$raw-redis_incr_durable"
  reset_peak "$REDIS_D_PID"
  timeout 300 "${bench_cmd[@]}" >"$raw-redis_incr_durable.csv" 2>&1 || log "redis-benchmark exited with status $?"
  read -ra extra_fields <<<"$(redis_after "$raw-redis_incr_durable")"
  redis_sampler_reap
  python3 bench/collect.py add --results "$RESULTS" --group redis --id redis_incr_durable \
    --title "Redis INCR (redis-benchmark), appendfsync always" --subject redis --connections "$CONNS" --counters 1 \
    --durability sync --ops-per-request 1 --redis-csv "$raw-redis_incr_durable.csv" \
    --peak-rss-kb "$(proc_kb VmHWM "$REDIS_D_PID")" --peak-rss-scope "$PEAK_SCOPE" \
    --command "$(shell_words "${bench_cmd[@]}")" ${extra_fields[@]+"${extra_fields[@]}"} \
    --note "redis-server --appendonly yes --appendfsync always: each reply after its AOF write is fsynced (one fsync per event-loop pass)"
  log "redis/redis_incr_durable: $(tail -1 "$raw-redis_incr_durable.csv")"

  for n in 1 "$REDIS_INSTANCES"; do
    local via="" s=""
    ((n == 1)) || { via=" behind nginx"; s=s; }
    # The embedded store, measured right before the 1-instance Redis runs: the
    # load on a shared machine drifts within minutes, and the http group's rows
    # were taken several minutes earlier.
    if ((n == 1)) && [[ $REDIS_EMBEDDED_CONTROL == 1 ]]; then
      READY_NOTE=
      start_tally redis-embedded-hot sync "$WORK/data-redis-embedded-hot" off
      redis_embedded_hooks redis-embedded-hot
      COUNTERS=1 tally_scenario redis embedded_hot "embedded store (sync, Auth=off), POST /counters/hot/increment, measured beside the Redis rows" "$CONNS" \
        /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
      redis_sampler_reap
      stop_tally
    fi
    SCENARIO_BEFORE_HOOK=redis_before SCENARIO_AFTER_HOOK=redis_after
    redis_tally_start "hot_$n" "$n"
    COUNTERS=1 tally_scenario redis "redis${n}_hot" "$n instance$s$via, POST /counters/hot/increment" "$CONNS" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
    redis_tally_stop
    SCENARIO_BEFORE_HOOK= SCENARIO_AFTER_HOOK=
    if ((n == 1)) && [[ $REDIS_EMBEDDED_CONTROL == 1 ]]; then
      READY_NOTE=
      start_tally redis-embedded-spread sync "$WORK/data-redis-embedded-spread" off
      redis_embedded_hooks redis-embedded-spread
      COUNTERS=$SPREAD tally_scenario redis embedded_spread "embedded store (sync, Auth=off), increment over $(thousands "$SPREAD") counters, measured beside the Redis rows" "$CONNS" / \
        "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
      redis_sampler_reap
      stop_tally
    fi
    SCENARIO_BEFORE_HOOK=redis_before SCENARIO_AFTER_HOOK=redis_after
    redis_tally_start "spread_$n" "$n"
    COUNTERS=$SPREAD tally_scenario redis "redis${n}_spread" "$n instance$s$via, increment over $(thousands "$SPREAD") counters" "$CONNS" / \
      "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
    redis_tally_stop
  done
  SCENARIO_BEFORE_HOOK= SCENARIO_AFTER_HOOK=
  REDIS_SCEN_INSTANCES=
  redis_durable_stop
}

# ---------------------------------------------------------------- history and events

# sched_threads PID...: "tid run-ns wait-ns slices" per thread (/proc/<pid>/task/*/schedstat).
sched_threads() {
  local p f
  for p; do
    for f in "/proc/$p/task/"*/schedstat; do
      if [[ -r $f ]]; then f=${f%/schedstat}; echo "${f##*/} $(cat "$f/schedstat" 2>/dev/null || true)"; fi
    done
  done
  return 0
}

# sched_delta BEFORE AFTER: run-queue wait (ns) and time slices between two sched_threads listings,
# per thread (a thread started in between counts from 0; one that ended in between is missing).
sched_delta() {
  awk 'FILENAME == ARGV[1] { w[$1] = $3; n[$1] = $4; next } NF >= 4 { dw += $3 - w[$1]; dn += $4 - n[$1] }
    END { printf "%.0f %.0f", dw, dn }' "$1" "$2"
}

# proc_snapshot: CPU ticks of Tally (HOOK_PIDS) and of the stream reader (HOOK_READER_PID, if any),
# Tally's bytes sent to storage (/proc/<pid>/io), the time.
io_write_bytes() {
  local p total=0 v
  for p; do
    v=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$p/io" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
proc_snapshot() {
  echo "$(cpu_ticks "${HOOK_PIDS[@]}") $(cpu_ticks ${HOOK_READER_PID:-}) $(io_write_bytes "${HOOK_PIDS[@]}") $(now_ms)"
}

# Hooks for tally_scenario with the embedded store (history, events): the snapshot before and after,
# and with a stream reader running, the start and end of its window (SIGUSR1, SIGUSR2).
proc_before() {
  [[ -z ${HOOK_READER_PID:-} ]] || kill -USR1 "$HOOK_READER_PID"
  proc_snapshot >"$1.proc-before"
  sched_threads "${HOOK_PIDS[@]}" >"$1.sched-tally-before"
  [[ -z ${HOOK_READER_PID:-} ]] || sched_threads "$HOOK_READER_PID" >"$1.sched-reader-before"
}

proc_after() {
  local raw=$1 a b st hz i fields
  [[ -z ${HOOK_READER_PID:-} ]] || { rm -f "$HOOK_READER_OUT"; kill -USR2 "$HOOK_READER_PID"; }
  read -ra b <<<"$(proc_snapshot)"
  read -ra a <"$raw.proc-before"
  sched_threads "${HOOK_PIDS[@]}" >"$raw.sched-tally-after"
  read -ra st <<<"$(sched_delta "$raw.sched-tally-before" "$raw.sched-tally-after")"
  hz=$(getconf CLK_TCK)
  fields="--field cpu_window_s=$(awk -v x="${a[3]}" -v y="${b[3]}" 'BEGIN { printf "%.2f", (y - x) / 1000 }')"
  fields+=" --field cpu_tally_s=$(awk -v x="${a[0]}" -v y="${b[0]}" -v hz="$hz" 'BEGIN { printf "%.2f", (y - x) / hz }')"
  fields+=" --field runqueue_wait_tally_s=$(awk -v x="${st[0]}" 'BEGIN { printf "%.2f", x / 1e9 }')"
  fields+=" --field timeslices_tally=${st[1]} --field tally_write_bytes=$((b[2] - a[2]))"
  fields+=" --field tally_threads=$(wc -l <"$raw.sched-tally-after")"
  if [[ -n ${HOOK_READER_PID:-} ]]; then
    sched_threads "$HOOK_READER_PID" >"$raw.sched-reader-after"
    read -ra st <<<"$(sched_delta "$raw.sched-reader-before" "$raw.sched-reader-after")"
    fields+=" --field cpu_reader_s=$(awk -v x="${a[1]}" -v y="${b[1]}" -v hz="$hz" 'BEGIN { printf "%.2f", (y - x) / hz }')"
    fields+=" --field runqueue_wait_reader_s=$(awk -v x="${st[0]}" 'BEGIN { printf "%.2f", x / 1e9 }')"
    # The reader writes its window's figures on SIGUSR2.
    for ((i = 0; i < 200; i++)); do [[ -s $HOOK_READER_OUT ]] && break; sleep 0.05; done
    cp "$HOOK_READER_OUT" "$raw.reader-window.json" 2>/dev/null || true
    fields+=" --events-reader $raw.reader-window.json"
  fi
  echo "$fields"
}

# history_measure STORE WORKLOAD on|off REP: one fresh Tally (and fresh store) with history on or off, one scenario.
history_measure() {
  local store=$1 work=$2 mode=$3 rep=$4 hist=() what
  local id="${store}_${work}_${mode}_r${rep}"
  [[ $mode == on ]] || hist=(--History:Enabled false)
  case $work in
    hot) what="POST /counters/hot/increment" ;;
    *) what="increment over $(thousands "$SPREAD") counters" ;;
  esac
  SCENARIO_FIELDS=(--field "store=$store" --field "workload=$work" --field "history=$mode" --field "rep=$rep")
  READY_NOTE=
  case $store in
    embedded)
      TALLY_EXTRA_ARGS=(${hist[@]+"${hist[@]}"})
      start_tally "history-$id" sync "$WORK/data-history-$id" off
      TALLY_EXTRA_ARGS=()
      HOOK_PIDS=("$TALLY_PID") HOOK_READER_PID=
      SCENARIO_BEFORE_HOOK=proc_before SCENARIO_AFTER_HOOK=proc_after
      ;;
    redis)
      REDIS_TALLY_ARGS=(${HISTORY_SAVED_REDIS_ARGS[@]+"${HISTORY_SAVED_REDIS_ARGS[@]}"} ${hist[@]+"${hist[@]}"})
      redis_tally_start "history-$id" 1
      SCENARIO_BEFORE_HOOK=redis_before SCENARIO_AFTER_HOOK=redis_after
      ;;
    postgres)
      PG_TALLY_ARGS=(${HISTORY_SAVED_PG_ARGS[@]+"${HISTORY_SAVED_PG_ARGS[@]}"} ${hist[@]+"${hist[@]}"})
      pg_tally_start "history_$id" 1
      SCENARIO_BEFORE_HOOK=pg_before SCENARIO_AFTER_HOOK=pg_after
      ;;
  esac
  local title="$store store, $what, history $mode (pair $rep)"
  [[ $store != embedded ]] || title="embedded store (sync), $what, history $mode (pair $rep)"
  if [[ $work == hot ]]; then
    COUNTERS=1 tally_scenario history "$id" "$title" "$CONNS" \
      /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
  else
    COUNTERS=$SPREAD tally_scenario history "$id" "$title" "$CONNS" / \
      "POST /counters/c:0/increment" 1 WRK_MODE=random WRK_PREFIX=c: WRK_NAMES="$SPREAD"
  fi
  SCENARIO_BEFORE_HOOK= SCENARIO_AFTER_HOOK= SCENARIO_FIELDS=()
  case $store in
    embedded) stop_tally ;;
    redis) redis_tally_stop ;;
    postgres) pg_tally_stop ;;
  esac
}

# The cost of history: each store, hot counter and 10,000 names, history on and off on fresh
# instances, HISTORY_REPS pairs; the pairs are spread over the group (repetition outermost) and
# the order within a pair alternates, so a drift of the machine's load hits both sides alike.
group_history() {
  local rep store work first second
  DURABILITY=sync
  HISTORY_SAVED_REDIS_ARGS=(${REDIS_TALLY_ARGS[@]+"${REDIS_TALLY_ARGS[@]}"})
  HISTORY_SAVED_PG_ARGS=(${PG_TALLY_ARGS[@]+"${PG_TALLY_ARGS[@]}"})
  REDIS_INST_PIDS=() REDIS_TALLY_LOGS=()
  if history_on redis; then redis_durable_start; fi
  if history_on postgres; then pg_start; fi
  for ((rep = 1; rep <= HISTORY_REPS; rep++)); do
    if ((rep % 2)); then first=on second=off; else first=off second=on; fi
    for store in $HISTORY_STORES; do
      for work in hot spread; do
        history_measure "$store" "$work" "$first" "$rep"
        [[ $store != redis ]] || redis_sampler_reap
        history_measure "$store" "$work" "$second" "$rep"
        [[ $store != redis ]] || redis_sampler_reap
      done
    done
  done
  REDIS_TALLY_ARGS=(${HISTORY_SAVED_REDIS_ARGS[@]+"${HISTORY_SAVED_REDIS_ARGS[@]}"})
  PG_TALLY_ARGS=(${HISTORY_SAVED_PG_ARGS[@]+"${HISTORY_SAVED_PG_ARGS[@]}"})
  REDIS_SCEN_INSTANCES=
  if history_on postgres; then pg_stop; fi
  if history_on redis; then redis_durable_stop; fi
}

# events_reader_start RAW: bench/sse_reader.py holding EVENTS_STREAMS streams on the hot counter of
# TALLY_URL; waits until every one has answered. Sets HOOK_READER_PID and HOOK_READER_OUT.
events_reader_start() {
  local raw=$1 t0 opened
  HOOK_READER_OUT=$raw.reader.json
  rm -f "$raw.reader-ready.json" "$HOOK_READER_OUT"
  python3 bench/sse_reader.py --url "$TALLY_URL/counters/hot/events" --streams "$EVENTS_STREAMS" \
    --out "$HOOK_READER_OUT" --ready "$raw.reader-ready.json" --max-seconds $((EVENTS_OPEN_TIMEOUT + WARMUP + DURATION + 120)) \
    2>"$raw.reader.log" &
  HOOK_READER_PID=$!
  PIDS+=("$HOOK_READER_PID")
  t0=$(now_ms)
  while [[ ! -s $raw.reader-ready.json ]]; do
    alive "$HOOK_READER_PID" || { cat "$raw.reader.log" >&2; die "the stream reader exited while opening its streams"; }
    (($(now_ms) - t0 < EVENTS_OPEN_TIMEOUT * 1000)) || die "$EVENTS_STREAMS streams not all answered after ${EVENTS_OPEN_TIMEOUT}s"
    sleep 0.1
  done
  opened=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["opened"])' "$raw.reader-ready.json")
  ((opened == EVENTS_STREAMS)) || die "only $opened of $EVENTS_STREAMS streams opened (see $raw.reader-ready.json)"
  log "events: $opened streams open on $TALLY_URL/counters/hot/events in $(($(now_ms) - t0)) ms (reader pid $HOOK_READER_PID)"
}

events_reader_stop() {
  stop_pid "$HOOK_READER_PID" 30
  HOOK_READER_PID=
}

# events_measure with|without REP: a fresh Tally, the hot counter created, with or without the
# streams, then the hot-counter scenario. Both sides run with the same settings.
events_measure() {
  local mode=$1 rep=$2 id title
  id="hot_${mode}_streams_r$rep"
  title="POST /counters/hot/increment, $( [[ $mode == with ]] && echo "$(thousands "$EVENTS_STREAMS") streams open on it" || echo "no stream") (pair $rep)"
  READY_NOTE=
  TALLY_EXTRA_ARGS=(--Events:MaxStreamsPerKey "$EVENTS_STREAMS" ${EVENTS_TALLY_ARGS[@]+"${EVENTS_TALLY_ARGS[@]}"})
  start_tally "events-$id" sync "$WORK/data-events-$id" off
  TALLY_EXTRA_ARGS=()
  [[ $(http_code POST "$TALLY_URL/counters/hot/increment") == 2* ]] || die "Tally did not create the hot counter"
  HOOK_PIDS=("$TALLY_PID") HOOK_READER_PID=
  if [[ $mode == with ]]; then events_reader_start "$RAW_DIR/events-$id"; fi
  SCENARIO_BEFORE_HOOK=proc_before SCENARIO_AFTER_HOOK=proc_after
  SCENARIO_FIELDS=(--field "streams=$( [[ $mode == with ]] && echo "$EVENTS_STREAMS" || echo 0)" --field "rep=$rep" --events-metrics)
  COUNTERS=1 tally_scenario events "$id" "$title" "$CONNS" \
    /counters/hot/increment "POST /counters/hot/increment" 1 WRK_MODE=post
  SCENARIO_BEFORE_HOOK= SCENARIO_AFTER_HOOK= SCENARIO_FIELDS=()
  if [[ -n $HOOK_READER_PID ]]; then events_reader_stop; fi
  stop_tally
}

# Live events: the hot counter at full speed with EVENTS_STREAMS streams open on it, against the
# same without streams, EVENTS_REPS pairs, the order alternating.
group_events() {
  local rep
  DURABILITY=sync
  for ((rep = 1; rep <= EVENTS_REPS; rep++)); do
    if ((rep % 2)); then
      events_measure with "$rep"
      events_measure without "$rep"
    else
      events_measure without "$rep"
      events_measure with "$rep"
    fi
  done
}

# ---------------------------------------------------------------- main

# The command that repeats this run: the BENCH_* knobs set in the environment,
# and the groups always (benchmarks.md prints it).
bench_command() {
  local v out=""
  for v in $(compgen -e | grep '^BENCH_' | sort); do
    case $v in BENCH_ONLY | BENCH_RAW_DIR | BENCH_OUT_DIR | BENCH_KEY | BENCH_KEEP_TMP | BENCH_KEEP_OTHER_GROUPS) continue ;; esac
    out+="$v=\"${!v}\" "
  done
  echo "${out}BENCH_ONLY=\"$ONLY\" bench/run.sh"
}

main() {
  mkdir -p "$RAW_DIR" "$OUT_DIR"
  : >"$RESULTS"
  WORK=$(mktemp -d)
  log "raw output: $RAW_DIR"
  install_missing
  if wants tally || wants compare || wants big || wants postgres || wants redis || wants history || wants events; then build_tally; fi

  local rev
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
  [[ -z $(git status --porcelain -- src 2>/dev/null) ]] || rev="$rev + uncommitted changes in src/"

  if wants tally; then group_tally; fi
  if wants compare; then group_compare; fi
  if wants big; then group_big; fi
  if wants postgres; then group_postgres; fi
  if wants redis; then group_redis; fi
  if wants history; then group_history; fi
  if wants events; then group_events; fi

  # A partial run (BENCH_ONLY) keeps the other groups' rows of the previous file, marked with their run.
  local previous=()
  if [[ $KEEP_OTHER_GROUPS == 1 && -s $OUT_DIR/benchmarks.json ]]; then previous=(--previous "$OUT_DIR/benchmarks.json"); fi
  python3 bench/collect.py finish --results "$RESULTS" --out "$OUT_DIR/benchmarks.json" ${previous[@]+"${previous[@]}"} \
    --setting "quick=$QUICK" --setting "duration_s=$DURATION" --setting "warmup_s=$WARMUP" \
    --setting "wrk_threads=$THREADS" --setting "connections=$CONNS" --setting "connection_sweep=$CONN_SWEEP" \
    --setting "spread_counters=$SPREAD" --setting "big_counters=$BIG" --setting "batch_size=$BATCH" \
    --setting "redis_requests=$REDIS_N" --setting "flask_gunicorn_args=$FLASK_ARGS" \
    --setting "compare_reps=$COMPARE_REPS" --setting "compare_engines=$COMPARE_ENGINES" --setting "compare_history_off=$COMPARE_HISTORY_OFF" \
    --setting "sweep_history_off=$SWEEP_HISTORY_OFF" \
    --setting "groups=$ONLY" --setting "tally_revision=$rev" --setting "peak_rss_scope=$PEAK_SCOPE" \
    --setting "tally_command=cd <publish> && TALLY_RATELIMIT__PERMITSPERSECOND=0 dotnet Tally.Server.dll --urls http://127.0.0.1:<port> --DataDir <fresh dir> --Durability <sync|async> --AdminKey <key> (every request sends it; the *, Auth=off* rows use --Auth off)" \
    --setting "redis_server_command=${REDIS_SERVER_CMD:-}" --setting "gunicorn_command=${GUNICORN_CMD:-}" \
    --setting "postgres_server_command=${PG_SERVER_CMD:-}" --setting "nginx_command=${NGINX_CMD:-}" \
    --setting "pg_pool=$PG_POOL" --setting "pg_instances=$PG_INSTANCES" --setting "nginx_workers=$NGINX_WORKERS" \
    --setting "redis_instances=$REDIS_INSTANCES" --setting "redis_durable_requests=$REDIS_DURABLE_N" \
    --setting "redis_durable_server_command=${REDIS_DURABLE_CMD:-}" \
    --setting "history_reps=$HISTORY_REPS" --setting "history_stores=$HISTORY_STORES" \
    --setting "events_streams=$EVENTS_STREAMS" --setting "events_reps=$EVENTS_REPS" \
    --setting "tally_events_command=cd <publish> && TALLY_RATELIMIT__PERMITSPERSECOND=0 dotnet Tally.Server.dll --urls http://127.0.0.1:<port> --DataDir <fresh dir> --Durability sync --Auth off --Events:MaxStreamsPerKey $EVENTS_STREAMS${EVENTS_TALLY_ARGS[*]:+ ${EVENTS_TALLY_ARGS[*]}}" \
    --setting "sse_reader_command=python3 bench/sse_reader.py --url http://127.0.0.1:<port>/counters/hot/events --streams $EVENTS_STREAMS --out <file> --ready <file>" \
    --setting "tally_redis_command=cd <publish> && TALLY_RATELIMIT__PERMITSPERSECOND=0 dotnet Tally.Server.dll --urls http://127.0.0.1:<port> --DataDir <fresh dir> --Durability sync --Auth off --Store redis --Redis 127.0.0.1:<redis port>${REDIS_TALLY_ARGS[*]:+ ${REDIS_TALLY_ARGS[*]}}" \
    --setting "bench_command=$(bench_command)" --setting "raw_dir=$(basename "$RAW_DIR")" \
    --setting "tally_pg_command=cd <publish> && TALLY_RATELIMIT__PERMITSPERSECOND=0 dotnet Tally.Server.dll --urls http://127.0.0.1:<port> --DataDir <fresh dir> --Durability sync --Auth off --Store postgres --Postgres 'Host=127.0.0.1;Port=<pg port>;Database=<fresh database>;Username=postgres;Maximum Pool Size=$PG_POOL'" \
    --setting "build_command=dotnet publish src/Tally.Server -c Release -o <publish>" \
    --setting "wrk_version=$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
    --setting "redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')" \
    --setting "gunicorn_version=$($PY_SYS -c 'import gunicorn; print(gunicorn.__version__)' 2>/dev/null || echo '?')" \
    --setting "flask_version=$($PY_SYS -c 'import importlib.metadata as m; print(m.version("flask"))' 2>/dev/null || echo '?')"
  $PY_SYS bench/report.py "$OUT_DIR/benchmarks.json" "$OUT_DIR/benchmarks.md"
  log "wrote $OUT_DIR/benchmarks.json and $OUT_DIR/benchmarks.md"
}

main "$@"
