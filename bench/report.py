#!/usr/bin/env python3
"""Renders docs/benchmarks.md from docs/benchmarks.json (stdlib only).

usage: report.py benchmarks.json benchmarks.md

"Reading the figures" has one block per run whose figures the page holds
(<!-- reading run=<id> --> … <!-- /reading run=<id> -->), with the placeholder
<!-- reading --> for a person to fill in; rendering again keeps what was written
in the block of every run still on the page.
"""

import json
import re
import statistics
import sys

# (group id, heading, what holds for every row besides the connection count)
GROUPS = [
    ("http", "Tally over HTTP", None),
    ("compare", "Comparison subjects", None),
    ("connections", "Tally: throughput against connections", "Durability=sync, one hot counter"),
    ("counters", "Tally: throughput against the number of counters", "Durability=sync"),
]

# (label, numerator, denominator): "group/id" of two scenarios. Increments are
# compared as increments/s, everything else as requests/s.
RATIOS = [
    ("sync hot increment / healthz", "http/inc_hot_sync", "http/healthz"),
    ("async hot increment / healthz", "http/inc_hot_async", "http/healthz"),
    ("GET counter / healthz", "http/get_hot", "http/healthz"),
    ("sync hot increment / async hot increment", "http/inc_hot_sync", "http/inc_hot_async"),
    ("sync spread increment / sync hot increment", "http/inc_spread_sync", "http/inc_hot_sync"),
    ("async spread increment / async hot increment", "http/inc_spread_async", "http/inc_hot_async"),
    ("sync hot increment, Auth=off / healthz, Auth=off", "http/inc_hot_sync_noauth", "http/healthz_noauth"),
    ("sync hot increment, auth on / Auth=off (cost of authentication)", "http/inc_hot_sync", "http/inc_hot_sync_noauth"),
    ("sync increment / redis INCR", "http/inc_hot_sync", "compare/redis_incr"),
    ("async increment / redis INCR", "http/inc_hot_async", "compare/redis_incr"),
    ("sync increment / Flask + Redis", "http/inc_hot_sync", "compare/flask_redis"),
    ("async increment / Flask + Redis", "http/inc_hot_async", "compare/flask_redis"),
    ("batch increments (sync) / sync hot increment", "http/batch_sync", "http/inc_hot_sync"),
    ("batch increments (sync) / redis INCR", "http/batch_sync", "compare/redis_incr"),
    ("Flask + Redis / redis INCR", "compare/flask_redis", "compare/redis_incr"),
    ("healthz / redis INCR", "http/healthz", "compare/redis_incr"),
]

# PostgreSQL targets: (label, numerator, denominator, target ratio or None).
PG_RATIOS = [
    ("hot counter, 1 instance on PostgreSQL / pgbench naive", "postgres/pg1_hot", "postgres/pgbench_hot", 3.0),
    ("hot counter, 3 instances on PostgreSQL / pgbench naive", "postgres/pg3_hot", "postgres/pgbench_hot", 3.0),
    ("hot counter: 1 instance on PostgreSQL / embedded store (sync, Auth=off)", "postgres/pg1_hot", "http/inc_hot_sync_noauth", 0.5),
    ("hot counter: 1 instance on PostgreSQL / embedded store (sync, auth on)", "postgres/pg1_hot", "http/inc_hot_sync", 0.5),
    ("10,000 names: 1 instance on PostgreSQL / embedded store (sync, auth on)", "postgres/pg1_spread", "http/inc_spread_sync", 0.5),
    ("hot counter: 3 instances / 1 instance", "postgres/pg3_hot", "postgres/pg1_hot", None),
    ("10,000 names: 3 instances / 1 instance", "postgres/pg3_spread", "postgres/pg1_spread", None),
    ("hot counter, 1 instance: Npgsql log at Warning / as shipped", "postgres/pg1_hot_npgsql_warn", "postgres/pg1_hot", None),
    ("hot counter, 3 instances: Npgsql log at Warning / as shipped", "postgres/pg3_hot_npgsql_warn", "postgres/pg3_hot", None),
]
# Redis targets (same run): Tally on Redis against the embedded store, the Flask + Redis
# service and redis-benchmark's INCR (durable: this group's Redis; not durable: the compare group's).
REDIS_RATIOS = [
    ("hot counter: 1 instance on Redis / embedded store (sync, auth on)", "redis/redis1_hot", "http/inc_hot_sync", 0.5),
    ("hot counter: 1 instance on Redis / embedded store (sync, Auth=off)", "redis/redis1_hot", "http/inc_hot_sync_noauth", 0.5),
    ("10,000 names: 1 instance on Redis / embedded store (sync, auth on)", "redis/redis1_spread", "http/inc_spread_sync", 0.5),
    ("hot counter: {n} instances on Redis / embedded store (sync, auth on)", "redis/redis{n}_hot", "http/inc_hot_sync", 0.5),
    ("10,000 names: {n} instances on Redis / embedded store (sync, auth on)", "redis/redis{n}_spread", "http/inc_spread_sync", 0.5),
    ("hot counter: 1 instance on Redis / embedded store measured beside it (sync, Auth=off)", "redis/redis1_hot", "redis/embedded_hot", 0.5),
    ("10,000 names: 1 instance on Redis / embedded store measured beside it (sync, Auth=off)", "redis/redis1_spread", "redis/embedded_spread", 0.5),
    ("hot counter: {n} instances on Redis / embedded store measured beside it (sync, Auth=off)", "redis/redis{n}_hot", "redis/embedded_hot", 0.5),
    ("10,000 names: {n} instances on Redis / embedded store measured beside it (sync, Auth=off)", "redis/redis{n}_spread", "redis/embedded_spread", 0.5),
    ("embedded store measured beside the Redis rows / http group's (hot counter, Auth=off): the drift", "redis/embedded_hot", "http/inc_hot_sync_noauth", None),
    ("hot counter: 1 instance on Redis / Flask + Redis", "redis/redis1_hot", "compare/flask_redis", 5.0),
    ("10,000 names: 1 instance on Redis / Flask + Redis (one key)", "redis/redis1_spread", "compare/flask_redis", 5.0),
    ("hot counter: {n} instances on Redis / Flask + Redis", "redis/redis{n}_hot", "compare/flask_redis", 5.0),
    ("10,000 names: {n} instances on Redis / Flask + Redis (one key)", "redis/redis{n}_spread", "compare/flask_redis", 5.0),
    ("hot counter: 1 instance on Redis / redis-benchmark INCR, appendfsync always", "redis/redis1_hot", "redis/redis_incr_durable", None),
    ("hot counter: {n} instances on Redis / redis-benchmark INCR, appendfsync always", "redis/redis{n}_hot", "redis/redis_incr_durable", None),
    ("hot counter: 1 instance on Redis / redis-benchmark INCR, no persistence", "redis/redis1_hot", "compare/redis_incr", None),
    ("hot counter: {n} instances on Redis / redis-benchmark INCR, no persistence", "redis/redis{n}_hot", "compare/redis_incr", None),
    ("redis-benchmark INCR: appendfsync always / no persistence", "redis/redis_incr_durable", "compare/redis_incr", None),
    ("hot counter: {n} instances / 1 instance", "redis/redis{n}_hot", "redis/redis1_hot", None),
    ("10,000 names: {n} instances / 1 instance", "redis/redis{n}_spread", "redis/redis1_spread", None),
    ("10,000 names / hot counter, 1 instance on Redis", "redis/redis1_spread", "redis/redis1_hot", None),
]
# Rows of other groups shown in the Redis table for comparison (same run).
REDIS_REFERENCE = ["http/inc_hot_sync", "http/inc_hot_sync_noauth", "http/inc_spread_sync", "compare/redis_incr",
                   "compare/flask_redis"]

PG_P99 = ["postgres/pg1_hot", "postgres/pg1_spread", "postgres/pg3_hot", "postgres/pg3_spread"]
PG_P99_TARGET_MS = 20.0

STATUS_TEXT = {
    "not_available": "not available yet",
    "skipped": "skipped",
    "failed": "failed",
}


# ---------------------------------------------------------------- runs

def short_run(rid):
    """2026-11-29T20:42:11Z -> 2026-11-29 20:42 UTC"""
    return f"{rid[:10]} {rid[11:16]} UTC" if rid and len(rid) >= 16 else (rid or "?")


def run_of(doc, s):
    """The run a row (or an extra) comes from."""
    rid = s.get("run") if isinstance(s, dict) else s
    for r in doc.get("runs") or []:
        if r["id"] == rid:
            return r
    return {"id": doc["generated_at"], "generated_at": doc["generated_at"], "settings": doc["settings"],
            "machine": doc["machine"], "revision": doc["settings"].get("tally_revision")}


def runs(doc):
    """The runs whose figures the page holds, newest first (a file from before runs were recorded: one)."""
    return doc.get("runs") or [{"id": doc["generated_at"], "generated_at": doc["generated_at"],
                                "settings": doc["settings"], "machine": doc["machine"],
                                "revision": doc["settings"].get("tally_revision"),
                                "raw_dir": doc["settings"].get("raw_dir"),
                                "bench_command": doc["settings"].get("bench_command")}]


def runs_differing(rs):
    """The older runs whose durations or connections differ from the newest's, for the Settings line."""
    def key(r):
        st = r.get("settings") or {}
        return st.get("duration_s"), st.get("warmup_s"), st.get("connections")

    other = [r for r in rs[1:] if key(r) != key(rs[0])]
    if not other:
        return "" if len(rs) == 1 else " (the same in every run on this page)"
    return f" in the run of {short_run(rs[0]['id'])}; " + "; ".join(
        f"{short_run(r['id'])}: {key(r)[0]} s after {key(r)[1]} s, `-c{key(r)[2]}`" for r in other)


def cross_run(sa, sb):
    """A note for a ratio of two rows taken in different runs (minutes or days apart on a shared machine)."""
    ra, rb = sa.get("run"), sb.get("run")
    if ra and rb and ra != rb:
        return f" ⚠ rows of different runs ({short_run(ra)} / {short_run(rb)})"
    return ""


def from_run(doc, rows, w):
    """Under a section's heading, when the page holds several runs: which run its rows come from."""
    if len(runs(doc)) < 2 or not rows:
        return
    ids = list(dict.fromkeys(s.get("run") for s in rows))
    parts = []
    for rid in ids:
        r = run_of(doc, rid)
        q = " (smoke run)" if (r.get("settings") or {}).get("quick") == 1 else ""
        parts.append(f"{short_run(rid)}, revision `{r.get('revision') or '?'}`{q}")
    w(f"*From the run of {'; '.join(parts)}.*")
    w("")


def num(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def ms(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def mib(kb):
    return "—" if not kb else f"{kb / 1024:,.0f}"


def has_numbers(s):
    return s.get("requests_per_s") is not None and s["status"] in ("ok", "errors")


def rate(s):
    """Increments/s for mutations, requests/s for reads."""
    if s.get("increments_per_s") is not None:
        return s["increments_per_s"]
    return s.get("requests_per_s")


def per_flush(s):
    if s.get("subject") != "tally":
        return "n/a"
    if s.get("increments_per_flush") is not None:
        return num(s["increments_per_flush"], 1)
    note = s.get("flush_note")
    if note == "no commits":
        return "—"
    return note or "—"


def notes(s):
    parts = [s.get("note")]
    if s.get("increments_per_flush") is not None and s.get("flush_note"):
        parts.append("per flush: " + s["flush_note"])
    return "; ".join(p for p in parts if p)


def scenario_row(s):
    if not has_numbers(s):
        text = STATUS_TEXT.get(s["status"], s["status"])
        return f"| {s['title']} | {text} | — | — | — | — | — | {notes(s)} |"
    lat = s.get("latency_ms") or {}
    rps = num(s["requests_per_s"])
    if s["status"] == "errors":
        rps += " ⚠"
    incs = num(s.get("increments_per_s")) if s.get("ops_per_request") else "—"
    return (
        f"| {s['title']} | {rps} | {incs} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} "
        f"| {per_flush(s)} | {mib(s.get('peak_rss_kb'))} | {notes(s)} |"
    )


def cores(s, key):
    w = s.get("cpu_window_s")
    v = s.get(key)
    if not w or v is None:
        return "—"
    return f"{v / w:.2f}"


def pg_row(s):
    if not has_numbers(s):
        text = STATUS_TEXT.get(s["status"], s["status"])
        return f"| {s['title']} | {s.get('instances', '—')} | {text} | — | — | — | — | — | — | — | — | {notes(s)} |"
    lat = s.get("latency_ms") or {}
    rps = num(s["requests_per_s"])
    if s["status"] == "errors":
        rps += " ⚠"
    fl = s.get("flush") or {}
    commits = fl.get("commits")
    cps = num(commits / s["duration_s"]) if commits and s.get("duration_s") else "—"
    per_commit = num(s["increments_per_flush"], 1) if s.get("increments_per_flush") is not None else (
        "n/a" if s.get("subject") != "tally" else "—")
    commit_ms = ms(s.get("commit_ms_mean")) if s.get("commit_ms_mean") is not None else (
        ms(lat.get("mean")) + " (one transaction)" if s.get("subject") == "pgbench" else "—")
    wal = "—"
    if s.get("wal_bytes") is not None and s.get("requests"):
        wal = num(s["wal_bytes"] / s["requests"])
    cpu = (f"{cores(s, 'cpu_tally_s')} / {cores(s, 'cpu_postgres_s')} / {cores(s, 'cpu_nginx_s')}"
           if s.get("cpu_window_s") else "—")
    errs = []
    if s.get("errors"):
        errs.append(", ".join(f"{v} {k}" for k, v in s["errors"].items()))
    for key, label in (("pg_deadlocks", "deadlocks"), ("pg_serialization_failures", "serialization failures"),
                       ("pg_unique_violations", "unique violations"), ("pg_errors", "PostgreSQL errors logged"),
                       ("store_errors", "store errors"), ("tally_log_warnings", "Tally warnings logged")):
        if s.get(key):
            errs.append(f"{int(s[key])} {label}")
    if not errs and s.get("subject") == "tally":
        errs.append("none")
    inst = "—" if s.get("subject") == "pgbench" else s.get("instances", "—")
    return (
        f"| {s['title']} | {inst} | {rps} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} "
        f"| {per_commit} | {commit_ms} | {cps} | {wal} | {cpu} | {'; '.join(errs) or '—'} | {notes(s)} |"
    )


def render_postgres(doc, by_key, w):
    rows = [s for s in doc["scenarios"] if s["group"] == "postgres"]
    if not rows:
        return
    st = run_of(doc, rows[0]).get("settings") or doc["settings"]
    x = doc.get("extras", {}).get("postgres", {})
    w(f"## Tally on PostgreSQL (`Store=postgres`, {rows[0].get('connections')} connections unless the title says otherwise)")
    w("")
    from_run(doc, rows, w)
    w(f"One private PostgreSQL {x.get('server_version', '15')} started by the harness (temporary data directory, "
      "127.0.0.1, `fsync=on`, `synchronous_commit=on`, otherwise defaults); every scenario on a fresh database. "
      f"Tally instances with `--Auth off`, rate limit off, `Maximum Pool Size={st.get('pg_pool')}`; "
      f"{st.get('pg_instances')} instances behind a private nginx ({st.get('nginx_workers')} worker, "
      "upstream as in `deploy/nginx/tally-cluster.conf`: `least_conn`, keep-alive 64). The naive baseline is "
      "`pgbench` with one `UPDATE counters SET value = value + 1 WHERE name = 'hot'` per transaction, "
      "in a database of its own with a one-row table, no HTTP in front.")
    w("")
    w("- *increments per commit*: `tally_commit_batch_size` sum over `tally_store_writes_total` in `/metrics` "
      "(summed over the instances); *commit ms*: mean of `tally_commit_duration_seconds` (apply and commit one batch, "
      "including the wait for the row locks); *commits/s*: Tally's commits over the measurement.")
    w("- *WAL bytes per request*: `pg_current_wal_lsn()` before and after, over the requests answered.")
    w("- *CPU cores*: user + system time of the Tally processes / PostgreSQL (postmaster and backends) / nginx "
      "during the measurement, over its wall time; the machine has "
      f"{doc['machine'].get('nproc') or '?'} cores in all, and wrk takes what is left.")
    w("- *errors, retries*: non-2xx answers counted by wrk; deadlocks, serialization failures and unique violations "
      "PostgreSQL logged (Tally retries those commits; its own retry log line is at Debug and not shown); "
      "`warn`/`fail` lines in Tally's logs.")
    w("")
    w("| scenario | instances | requests/s | p50 ms | p99 ms | increments per commit | commit ms | commits/s "
      "| WAL bytes per request | CPU cores Tally / PostgreSQL / nginx | errors, retries | notes |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for s in rows:
        w(pg_row(s))
    w("")
    if x:
        w("PostgreSQL on this machine, one client (pgbench, "
          f"{st.get('duration_s') if (st.get('duration_s') or 0) < 3 else 3} s each):")
        w("")
        w("| | |")
        w("|---|---:|")
        if x.get("rtt_latency_ms") is not None:
            w(f"| round trip, `SELECT 1` over TCP on 127.0.0.1 | {x['rtt_latency_ms'] * 1000:,.0f} µs |")
        if x.get("commit1_latency_ms") is not None:
            w(f"| one-row `UPDATE` committed (round trip + WAL flush) | {x['commit1_latency_ms']:.2f} ms "
              f"({num(x.get('commit1_tps'))} commits/s) |")
        if x.get("fdatasync_us") is not None:
            w(f"| `pg_test_fsync -s 1`, fdatasync of one 8 kB write | {x['fdatasync_us']:,.0f} µs "
              f"({num(x.get('fdatasync_ops_per_s'))} ops/s) |")
        w("")
    w("### PostgreSQL: ratios and targets (same run)")
    w("")
    w("| ratio | value | target | |")
    w("|---|---:|---:|---|")
    for label, a, b, target in PG_RATIOS:
        sa, sb = by_key.get(a), by_key.get(b)
        if not sa:
            continue
        if not sb:
            w(f"| {label} | n/a ({b} not in this run) | {'≥ ' + format(target, '.1f') + '×' if target else '—'} | |")
            continue
        if has_numbers(sa) and has_numbers(sb) and rate(sb):
            v = rate(sa) / rate(sb)
            verdict = "" if target is None else ("met" if v >= target else "**missed**")
            w(f"| {label} | {v:.2f}× | {'≥ ' + format(target, '.1f') + '×' if target else '—'} | {verdict}{cross_run(sa, sb)} |")
    for key in PG_P99:
        s = by_key.get(key)
        if not s or not has_numbers(s):
            continue
        p99 = (s.get("latency_ms") or {}).get("p99")
        if p99 is None:
            continue
        verdict = "met" if p99 < PG_P99_TARGET_MS else "**missed**"
        w(f"| p99, {s['title']} | {ms(p99)} ms | < {PG_P99_TARGET_MS:.0f} ms | {verdict} |")
    s = by_key.get("postgres/pgbench_hot")
    if s and has_numbers(s) and (s.get("latency_ms") or {}).get("p99") is not None:
        w(f"| p99, {s['title']} (for reference) | {ms(s['latency_ms']['p99'])} ms | — | |")
    w("")


def redis_row(s, group_label=None):
    title = s["title"] + (f" *({group_label})*" if group_label else "")
    if not has_numbers(s):
        text = STATUS_TEXT.get(s["status"], s["status"])
        return f"| {title} | {s.get('instances', '—')} | {text} |" + " — |" * 9 + f" {notes(s)} |"
    lat = s.get("latency_ms") or {}
    rps = num(s["requests_per_s"])
    if s["status"] == "errors":
        rps += " ⚠"
    fl = s.get("flush") or {}
    commits = fl.get("commits")
    tally = s.get("subject") == "tally"
    cps = num(commits / s["duration_s"]) if commits and s.get("duration_s") else "—"
    per_commit = num(s["increments_per_flush"], 1) if s.get("increments_per_flush") is not None else (
        "—" if tally else "n/a")
    commit_ms = ms(s.get("commit_ms_mean")) if s.get("commit_ms_mean") is not None else "—"
    call = redis_call_stats(s)
    aof = "—"
    if tally and not call:
        pass  # the embedded store's control rows: nothing goes to Redis
    elif s.get("aof_bytes") is not None and s.get("requests"):
        aof = num(s["aof_bytes"] / s["requests"])
    elif s.get("aof_bytes") is not None and call:
        aof = num(s["aof_bytes"] / call["calls"])  # redis-benchmark: one INCR per request
    cpu = (f"{cores(s, 'cpu_tally_s')} / {cores(s, 'cpu_redis_s')} / {cores(s, 'cpu_nginx_s')}"
           if s.get("cpu_window_s") else "—")
    errs = []
    if s.get("errors"):
        errs.append(", ".join(f"{v} {k}" for k, v in s["errors"].items()))
    for key, label in (("store_errors", "store errors"), ("tally_log_warnings", "Tally warnings logged"),
                       ("aof_rewrites", "AOF rewrites during the measurement")):
        if s.get(key):
            errs.append(f"{int(s[key])} {label}")
    if not errs and s.get("group") == "redis":
        errs.append("none")
    inst = (s.get("instances") or "—") if tally and s.get("group") == "redis" else "—"
    return (
        f"| {title} | {inst} | {rps} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} "
        f"| {per_commit} | {commit_ms} | {cps} | {aof} | {cpu} | {(s.get('loadavg') or '—').split()[0]} "
        f"| {'; '.join(errs) or '—'} | {notes(s)} |"
    )


def redis_call_stats(s):
    """commandstats of the call a row's requests become in Redis (FCALL for Tally, INCR for redis-benchmark)."""
    if s.get("group") != "redis":
        return None
    call = (s.get("redis_commands") or {}).get("fcall" if s.get("subject") == "tally" else "incr")
    return call if call and call["calls"] else None


def redis_profile_row(s):
    call = redis_call_stats(s)
    tally = s.get("subject") == "tally"
    usec = f"{call['usec'] / call['calls']:,.1f}" if call else "—"
    lat = s.get("redis_call_latency_usec") or {}
    pct = f"{lat['p50']:,.0f} / {lat['p99']:,.0f}" if "p50" in lat and "p99" in lat else "—"
    inner = "—"
    if call and tally:
        others = sum(v["calls"] for k, v in s["redis_commands"].items() if k not in ("fcall", "select"))
        inner = f"{others / call['calls']:.1f}"
    net_in = f"{s['redis_net_in_bytes'] / call['calls']:,.0f}" if call and s.get("redis_net_in_bytes") else "—"
    st = s.get("redis_main_thread") or {}
    share = "—"
    if st:
        share = f"{st.get('R', 0) * 100:.0f}% / {st.get('D', 0) * 100:.0f}% / {st.get('S', 0) * 100:.0f}%"
    wchan = ", ".join(f"`{k}` {v * 100:.0f}%" for k, v in (s.get("redis_main_thread_wchan") or {}).items()
                      if v >= 0.02) or "—"
    w = s.get("procstate_window_s")
    rq = "—"
    if w and s.get("runqueue_wait_redis_s") is not None:
        t = s.get("runqueue_wait_tally_s")
        rq = f"{t / w:.2f}" if t is not None else "—"
        rq += f" / {s['runqueue_wait_redis_s'] / w:.2f}"
    return f"| {s['title']} | {usec} | {pct} | {inner} | {net_in} | {share} | {wchan} | {rq} |"


def render_redis(doc, by_key, w):
    rows = [s for s in doc["scenarios"] if s["group"] == "redis"]
    if not rows:
        return
    st = run_of(doc, rows[0]).get("settings") or doc["settings"]
    x = doc.get("extras", {}).get("redis", {})
    n = st.get("redis_instances") or 2
    w(f"## Tally on Redis (`Store=redis`, {rows[0].get('connections')} connections)")
    w("")
    from_run(doc, rows, w)
    w(f"One private Redis {x.get('server_version') or st.get('redis_version') or ''} started by the harness for this "
      "group: temporary directory, 127.0.0.1, `--appendonly yes --appendfsync always --save '' "
      "--maxmemory-policy noeviction` (what Tally demands without `RedisAllowDataLoss`: every reply after its AOF "
      "write is fsynced). Every scenario starts on an emptied Redis (`FLUSHALL`, then an AOF rewrite) with fresh "
      f"Tally instances (`--Store redis --Auth off`, rate limit off, as the PostgreSQL group); {n} instances "
      f"behind a private nginx ({st.get('nginx_workers')} worker, upstream as in `deploy/nginx/tally-cluster.conf`). "
      "The durable peer is `redis-benchmark -t incr` against the same Redis; the one without persistence is the "
      "compare group's (`--save '' --appendonly no`). The embedded store (`--Auth off`, fresh data directory) is "
      "measured again inside this group, right before each 1-instance Redis scenario, since the load on a shared "
      "machine drifts within minutes. Rows marked *(… group)* are other groups' of the same run, repeated here to "
      "read side by side.")
    w("")
    w("- *increments per commit*: `tally_commit_batch_size` sum over `tally_store_writes_total` (one `FCALL "
      "tally_v1_commit` per commit; summed over the instances); *commit ms*: mean of `tally_commit_duration_seconds` "
      "(write the batch's JSON, the FCALL round trip including Redis's AOF write and fsync, read the answers); "
      "*commits/s*: Tally's commits over the measurement.")
    w("- *AOF bytes per request*: growth of `aof_current_size` over the requests answered.")
    w("- *CPU cores*: user + system time of the Tally processes / redis-server / nginx during the measurement "
      f"(`/proc/<pid>/stat`), over its wall time; the machine has {doc['machine'].get('nproc') or '?'} cores in all.")
    w("- *load average*: the 1-minute figure of `/proc/loadavg` right after the measurement (other tenants included).")
    w("")
    w("| scenario | instances | requests/s | p50 ms | p99 ms | increments per commit | commit ms | commits/s "
      "| AOF bytes per request | CPU cores Tally / Redis / nginx | load average | errors | notes |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for s in rows:
        w(redis_row(s))
    for key in REDIS_REFERENCE:
        s = by_key.get(key)
        if s:
            other = s.get("run") != rows[0].get("run") and s.get("run")
            w(redis_row(s, f"{s['group']} group" + (f", run of {short_run(s['run'])}" if other else "")))
    w("")
    w("### Redis: where the time goes")
    w("")
    w("- *Redis µs per call*: `INFO commandstats` usec / calls of `FCALL` (Tally) or `INCR` (redis-benchmark): "
      "Redis executing it, without the AOF write and fsync (done once per event-loop pass, before the replies go "
      "out); *p50 / p99*: `INFO latencystats` of that command over the measurement (`CONFIG RESETSTAT` before it), "
      "execution only as well.")
    w("- *commands per FCALL*: calls of the commands the function ran (counted under their own names), per FCALL "
      "(without the `SELECT` Redis counts once per call); *bytes to Redis per call*: `total_net_input_bytes` per "
      "FCALL or INCR (the commit's JSON document).")
    w("- *Redis main thread*: its state sampled every 5 ms from `/proc` (`bench/procstate.py`): running or "
      "waiting for a CPU (R) / in uninterruptible sleep (D: with `appendfsync always`, its fsync of the AOF) / "
      "sleeping (S: idle in `epoll_wait`); *wait channels*: the kernel functions it slept in, share of samples.")
    w("- *run-queue wait*: time the threads were runnable but had no CPU (`/proc/<pid>/task/*/schedstat`), in "
      "cores: Tally's threads / Redis's.")
    w("")
    w("| scenario | Redis µs per call | call p50 / p99 µs | commands per FCALL | bytes to Redis per call "
      "| Redis main thread R / D / S | wait channels | run-queue wait, cores Tally / Redis |")
    w("|---|---:|---:|---:|---:|---:|---|---:|")
    for s in rows:
        if s.get("redis_commands") or s.get("procstate_window_s"):
            w(redis_profile_row(s))
    w("")
    fcalls = [s for s in rows if redis_call_stats(s) and s.get("subject") == "tally"]
    if fcalls:
        w("What one `FCALL tally_v1_commit` ran (calls per FCALL; commands below 0.005 per call left out, "
          "among them those of the instances' once-a-second heartbeat):")
        w("")
        for s in fcalls:
            cmds = s["redis_commands"]
            f = cmds["fcall"]["calls"]
            inner = ", ".join(f"`{k}` {v['calls'] / f:.2f}" for k, v in cmds.items()
                              if k not in ("fcall", "select") and v["calls"] / f >= 0.005)
            w(f"- {s['title']}: {inner or 'none counted'}")
        w("")
    if x:
        w("This Redis, one client (redis-benchmark `-c 1`, before the scenarios):")
        w("")
        w("| | |")
        w("|---|---:|")
        if x.get("ping1_avg_ms") is not None:
            w(f"| round trip, `PING` | {x['ping1_avg_ms'] * 1000:,.0f} µs mean, {x.get('ping1_p50_ms', 0) * 1000:,.0f} µs "
              f"p50 ({num(x.get('ping1_rps'))}/s) |")
        if x.get("incr1_avg_ms") is not None:
            w(f"| one `INCR`, appendfsync always (round trip + AOF write + fsync) | {x['incr1_avg_ms']:.2f} ms mean, "
              f"{x.get('incr1_p50_ms', 0):.2f} ms p50, {x.get('incr1_p99_ms', 0):.2f} ms p99 ({num(x.get('incr1_rps'))}/s) |")
        w("")
    w("### Redis: ratios and targets (same run)")
    w("")
    w("| ratio | value | target | |")
    w("|---|---:|---:|---|")
    seen = set()
    for label, a, b, target in REDIS_RATIOS:
        label, a, b = label.format(n=n), a.format(n=n), b.format(n=n)
        if (a, b) in seen:
            continue  # with BENCH_REDIS_INSTANCES=1 the {n} rows repeat the 1-instance ones
        seen.add((a, b))
        sa, sb = by_key.get(a), by_key.get(b)
        tgt = "≥ " + format(target, ".1f") + "×" if target else "—"
        if not sa:
            continue
        if not sb:
            w(f"| {label} | n/a ({b} not in this run) | {tgt} | |")
            continue
        if has_numbers(sa) and has_numbers(sb) and rate(sb):
            v = rate(sa) / rate(sb)
            verdict = "" if target is None else ("met" if v >= target else "**missed**")
            # 0.498 would print as 0.50 beside "missed": a third decimal where two hide the verdict.
            text = f"{v:.3f}" if target is not None and v < target and round(v, 2) >= target else f"{v:.2f}"
            w(f"| {label} | {text}× | {tgt} | {verdict}{cross_run(sa, sb)} |")
        else:
            missing = sa if not has_numbers(sa) else sb
            w(f"| {label} | n/a ({missing['title']}: {STATUS_TEXT.get(missing['status'], missing['status'])}) | {tgt} | |")
    w("")


# ---------------------------------------------------------------- history and events

HISTORY_TARGET = 0.85  # "the hot path loses at most 15% with history on"
EVENTS_TARGET = 0.8    # "commit throughput ≥ 0.8× the same run without streams"


def per_request(s, key, scale=1.0):
    v = s.get(key)
    if v is None or not s.get("requests"):
        return None
    return v / s["requests"] * scale


def commits_per_s(s):
    fl = s.get("flush") or {}
    c = fl.get("commits")
    return c / s["duration_s"] if c and s.get("duration_s") else None


def disk_bytes(s):
    """Bytes to disk per request: Tally's own writes (SQLite), the WAL (PostgreSQL), the AOF's growth (Redis)."""
    key = {"embedded": "tally_write_bytes", "postgres": "wal_bytes", "redis": "aof_bytes"}.get(s.get("store"))
    return per_request(s, key) if key else None


def fcall_usec(s):
    call = (s.get("redis_commands") or {}).get("fcall")
    return call["usec"] / call["calls"] if call and call.get("calls") else None


def fcall_commands(s):
    """Commands the commit function ran per FCALL (without the SELECT Redis counts once per call)."""
    cmds = s.get("redis_commands") or {}
    call = cmds.get("fcall")
    if not call or not call.get("calls"):
        return None
    return sum(v["calls"] for k, v in cmds.items() if k not in ("fcall", "select")) / call["calls"]


def spread(values, digits=2):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return "—", "—"
    return f"{statistics.median(vals):.{digits}f}", f"{vals[0]:.{digits}f} – {vals[-1]:.{digits}f}"


def pairs(rows, side_key, a, b, group_key):
    """{group: [(rep, row a, row b)]} for rows that have both sides of a pair."""
    out = {}
    for s in rows:
        if s.get(side_key) != a:
            continue
        for t in rows:
            if t.get(side_key) == b and t.get("rep") == s.get("rep") and group_key(t) == group_key(s):
                out.setdefault(group_key(s), []).append((s.get("rep"), s, t))
    for v in out.values():
        v.sort(key=lambda x: x[0])
    return out


def ratio(sa, sb):
    if has_numbers(sa) and has_numbers(sb) and rate(sb):
        return rate(sa) / rate(sb)
    return None


def verdict(values, target):
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    below = sum(1 for v in vals if v < target)
    if med >= target:
        return "met" + (f" by the median; {below} of {len(vals)} pairs below" if below else f" in all {len(vals)} pairs")
    return "**missed**" + (f" ({len(vals) - below} of {len(vals)} pairs at or above)" if below < len(vals) else f" in all {len(vals)} pairs")


STORE_NAME = {"embedded": "embedded store (SQLite, sync)", "redis": "Redis", "postgres": "PostgreSQL"}
WORKLOAD_NAME = {"hot": "hot counter", "spread": "10,000 names"}


def med(rows, f):
    vals = [f(s) for s in rows]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def render_history(doc, by_key, w):
    rows = [s for s in doc["scenarios"] if s["group"] == "history"]
    if not rows:
        return
    st = run_of(doc, rows[0]).get("settings") or doc["settings"]
    w(f"## History: its cost on the hot path (`History:Enabled` true / false, {rows[0].get('connections')} connections)")
    w("")
    from_run(doc, rows, w)
    stores = list(dict.fromkeys(s.get("store") for s in rows))
    w(f"Each store ({', '.join(STORE_NAME.get(x, x) for x in stores)}) with history on (the default) and off "
      "(`--History:Enabled false`), on the hot counter and over "
      f"{num(st.get('spread_counters'))} names: {st.get('history_reps')} pairs per case, each side on a fresh "
      "instance with a fresh store (data directory, Redis emptied, new PostgreSQL database), `--Auth off`, "
      "rate limit off, `Durability=sync`. The pairs are spread over the group (all cases of pair 1, then of pair 2, …) and "
      "the order within a pair alternates (on first in odd pairs, off first in even ones), so a drift of the "
      "machine's load falls on both sides alike. Redis and PostgreSQL are the private servers of the `redis` and "
      "`postgres` groups (`appendfsync always`; `fsync=on`, `synchronous_commit=on`), one Tally instance.")
    w("")
    w("- *increments per commit*, *commit ms*, *commits/s*: as in the other tables (`tally_commit_batch_size`, "
      "`tally_commit_duration_seconds`, `tally_store_writes_total`).")
    w("- *Tally CPU µs per request*: user + system time of the Tally process during the measurement "
      "(`/proc/<pid>/stat`) over the requests answered.")
    w("- *disk bytes per request*: embedded store: bytes the Tally process sent to storage (`write_bytes` of "
      "`/proc/<pid>/io`: the SQLite WAL and its checkpoints); PostgreSQL: WAL written (`pg_current_wal_lsn()`); "
      "Redis: growth of the AOF.")
    w("")
    w("| scenario | requests/s | p50 ms | p99 ms | increments per commit | commit ms | commits/s "
      "| Tally CPU µs per request | disk bytes per request | load average | notes |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in rows:
        if not has_numbers(s):
            w(f"| {s['title']} | {STATUS_TEXT.get(s['status'], s['status'])} |" + " — |" * 8 + f" {notes(s)} |")
            continue
        lat = s.get("latency_ms") or {}
        rps = num(s["requests_per_s"]) + (" ⚠" if s["status"] == "errors" else "")
        w(f"| {s['title']} | {rps} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} "
          f"| {fmt(s.get('increments_per_flush'), 1)} | {ms(s.get('commit_ms_mean')) if s.get('commit_ms_mean') is not None else '—'} "
          f"| {fmt(commits_per_s(s))} | {fmt(per_request(s, 'cpu_tally_s', 1e6))} | {fmt(disk_bytes(s))} "
          f"| {(s.get('loadavg') or '—').split()[0]} | {notes(s)} |")
    w("")
    groups = pairs(rows, "history", "on", "off", lambda s: (s.get("store"), s.get("workload")))
    w("### History: ratios and target (same run, pairs measured side by side)")
    w("")
    w(f"Increments/s with history on over off, per pair; the target is ≥ {HISTORY_TARGET:.2f}× "
      "(\"the hot path loses at most 15%\"), read on the median of the pairs.")
    w("")
    w("| store, workload | on / off per pair | median | min – max | mean on / mean off | target | |")
    w("|---|---|---:|---:|---:|---:|---|")
    for (store, work), ps in groups.items():
        rs = [ratio(a, b) for _, a, b in ps]
        per = ", ".join("n/a" if r is None else f"{r:.2f}" for r in rs)
        m, mm = spread(rs)
        on = [rate(a) for _, a, _ in ps if has_numbers(a)]
        off = [rate(b) for _, _, b in ps if has_numbers(b)]
        means = f"{(sum(on) / len(on)) / (sum(off) / len(off)):.2f}" if on and off else "—"
        w(f"| {STORE_NAME.get(store, store)}, {WORKLOAD_NAME.get(work, work)} | {per} | {m}× | {mm} | {means}× "
          f"| ≥ {HISTORY_TARGET:.2f}× | {verdict(rs, HISTORY_TARGET)} |")
    w("")
    w("What history adds per commit and per request (medians over the pairs, history on → off):")
    w("")
    w("| store, workload | increments/s | increments per commit | commit ms | Tally CPU µs per request "
      "| disk bytes per request | Redis µs per FCALL | Redis commands per FCALL |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (store, work), ps in groups.items():
        on = [a for _, a, _ in ps if has_numbers(a)]
        off = [b for _, _, b in ps if has_numbers(b)]

        def both(f, digits=0):
            x, y = med(on, f), med(off, f)
            return "—" if x is None and y is None else f"{fmt(x, digits)} → {fmt(y, digits)}"

        w(f"| {STORE_NAME.get(store, store)}, {WORKLOAD_NAME.get(work, work)} | {both(rate)} "
          f"| {both(lambda s: s.get('increments_per_flush'), 1)} | {both(lambda s: s.get('commit_ms_mean'), 2)} "
          f"| {both(lambda s: per_request(s, 'cpu_tally_s', 1e6))} | {both(disk_bytes)} "
          f"| {both(fcall_usec) if store == 'redis' else '—'} | {both(fcall_commands, 1) if store == 'redis' else '—'} |")
    w("")
    first = [(key, a, b) for key, ps in groups.items() for _, a, b in ps[:1] if key[0] == "redis" and fcall_commands(a)]
    if first:
        w("What one `FCALL tally_v1_commit` ran with Redis (calls per FCALL, first pair, history on → off; "
          "below 0.05 per call left out):")
        w("")
        for (store, work), a, b in first:
            fa, fb = a["redis_commands"]["fcall"]["calls"], b["redis_commands"]["fcall"]["calls"]
            names = [k for k in a["redis_commands"] if k not in ("fcall", "select")]
            names += [k for k in b.get("redis_commands", {}) if k not in names and k not in ("fcall", "select")]
            parts = []
            for k in names:
                x = a["redis_commands"].get(k, {}).get("calls", 0) / fa
                y = b.get("redis_commands", {}).get(k, {}).get("calls", 0) / fb if fb else 0
                if max(x, y) >= 0.05:
                    parts.append(f"`{k}` {x:.2f} → {y:.2f}")
            w(f"- {WORKLOAD_NAME.get(work, work)}: {', '.join(parts)}")
        w("")


def render_events(doc, by_key, w):
    rows = [s for s in doc["scenarios"] if s["group"] == "events"]
    if not rows:
        return
    st = run_of(doc, rows[0]).get("settings") or doc["settings"]
    n = st.get("events_streams") or max((s.get("streams") or 0) for s in rows)
    w(f"## Live events: {num(n)} streams on a hot counter ({rows[0].get('connections')} connections)")
    w("")
    from_run(doc, rows, w)
    w(f"The sync hot increment (embedded store, `--Auth off`, rate limit off) with {num(n)} Server-Sent Event "
      "streams open on that counter (`GET /counters/hot/events`), against the same without streams: "
      f"{st.get('events_reps')} pairs, each side on a fresh instance, the order alternating (with streams first in odd pairs). "
      f"Both sides run with `--Events:MaxStreamsPerKey {n}`: with `Auth=off` every stream counts against one key, "
      "`anonymous`, whose default limit is 100. The streams are held by `bench/sse_reader.py` (Python, one thread, "
      "epoll): it opens them all (and waits for every answer) before the warm-up, reads them during the "
      "measurement and counts the events of each; a stream that ends is opened again with `Last-Event-ID`, as "
      "EventSource does.")
    w("")
    w("- *commits/s*: `tally_store_writes_total` over the measurement; every commit changes the hot counter, so "
      "it makes one event: *events made* is `tally_events_published_total` over the measurement, *per stream* "
      "what the reader counted on each stream in the same window (min / median / max), *delivered* the events "
      "counted over streams × events made. A stream receives the counter's latest state at most every "
      "`Events:CoalesceMs` (100 ms unless the command sets it; 0: every event), so a stream gets at most one event "
      "per CoalesceMs and *delivered* is below 100% by design; the states in between are skipped (counted as "
      "missing below), and the slowest stream's lag at the end shows whether the streams keep up.")
    w("- *dropped*: `tally_events_streams_dropped_total` (streams ended because their client was too slow: "
      "`Events:StreamBuffer` pending, or a write not taken for `Events:WriteTimeoutMs`); *ended / reopened*: "
      "streams the reader saw end, and reopened.")
    w("- *CPU cores*: user + system time of Tally / of the reader over the measurement's wall time "
      f"({doc['machine'].get('nproc') or '?'} cores in all, wrk and other tenants take the rest); *run-queue wait*: "
      "time Tally's threads were runnable but had no CPU (`/proc/<pid>/task/*/schedstat`), in cores.")
    w("")
    w("| scenario | increments/s | p50 ms | p99 ms | increments per commit | commits/s | commit ms "
      "| CPU cores Tally / reader | Tally CPU µs per request | run-queue wait, cores | events made "
      "| per stream min / median / max | delivered | dropped / ended / reopened | load average |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in rows:
        if not has_numbers(s):
            w(f"| {s['title']} | {STATUS_TEXT.get(s['status'], s['status'])} |" + " — |" * 13 + f" {notes(s)} |")
            continue
        lat = s.get("latency_ms") or {}
        incs = num(s.get("increments_per_s")) + (" ⚠" if s["status"] == "errors" else "")
        cpu = cores(s, "cpu_tally_s") + (f" / {cores(s, 'cpu_reader_s')}" if s.get("cpu_reader_s") is not None else "")
        wait = f"{s['runqueue_wait_tally_s'] / s['cpu_window_s']:.2f}" if s.get("runqueue_wait_tally_s") is not None and s.get("cpu_window_s") else "—"
        made = s.get("events_published")
        per = s.get("reader_per_stream") or {}
        per_txt = (f"{fmt(per.get('min'))} / {fmt(per.get('median'))} / {fmt(per.get('max'))}"
                   if per.get("median") is not None else "—")
        delivered = "—"
        if s.get("reader_received") is not None and made and s.get("reader_streams"):
            delivered = f"{s['reader_received'] / (made * s['reader_streams']) * 100:.1f}%"
        drops = "—"
        if s.get("streams"):
            drops = (f"{fmt(s.get('streams_dropped'))} / {fmt(s.get('reader_stream_ends'))} / "
                     f"{fmt(s.get('reader_reconnects'))}")
        w(f"| {s['title']} | {incs} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} | {fmt(s.get('increments_per_flush'), 1)} "
          f"| {fmt(commits_per_s(s))} | {ms(s.get('commit_ms_mean')) if s.get('commit_ms_mean') is not None else '—'} "
          f"| {cpu} | {fmt(per_request(s, 'cpu_tally_s', 1e6))} | {wait} | {fmt(made)} | {per_txt} | {delivered} "
          f"| {drops} | {(s.get('loadavg') or '—').split()[0]} |")
    w("")
    checks = []
    for s in rows:
        if not s.get("streams"):
            continue
        if s.get("streams_open_before") is not None:
            checks.append(f"{s['title']}: `tally_events_streams` {fmt(s.get('streams_open_before'))} before the "
                          f"measurement and {fmt(s.get('streams_open_after'))} after; the reader had "
                          f"{fmt(s.get('reader_open_at_start'))} and {fmt(s.get('reader_open_at_end'))} open, opened "
                          f"them in {s.get('reader_open_s')} s; at the end its slowest stream was "
                          f"{fmt(s.get('reader_lag_max_events'))} events behind the newest; over the stream's life "
                          f"{fmt(s.get('reader_skipped'))} events were missing between the first and last id it saw"
                          + (f"; {s['reader_note']}" if s.get("reader_note") else ""))
    if checks:
        w("Streams, checked:")
        w("")
        for c in checks:
            w(f"- {c}.")
        w("")
    w("### Live events: ratio and target (same run, pairs measured side by side)")
    w("")
    w("*Tally CPU per event delivered*: Tally's CPU time with the streams, less what its requests cost at the "
      "CPU per request of the run without streams of the same pair, over the events the reader counted.")
    w("")
    w("| pair | with streams, increments/s | without, increments/s | with / without | commits/s with / without "
      "| Tally CPU µs per event delivered |")
    w("|---|---:|---:|---:|---:|---:|")
    groups = pairs(rows, "streams", n, 0, lambda s: "hot")
    ps = groups.get("hot", [])
    rs = []
    for rep, a, b in ps:
        r = ratio(a, b)
        rs.append(r)
        per_event = "—"
        base = per_request(b, "cpu_tally_s")
        if base is not None and a.get("cpu_tally_s") is not None and a.get("requests") and a.get("reader_received"):
            per_event = fmt((a["cpu_tally_s"] - base * a["requests"]) / a["reader_received"] * 1e6, 1)
        w(f"| {rep} | {num(rate(a)) if has_numbers(a) else '—'} | {num(rate(b)) if has_numbers(b) else '—'} "
          f"| {'n/a' if r is None else f'{r:.2f}×'} | {fmt(commits_per_s(a))} / {fmt(commits_per_s(b))} | {per_event} |")
    w("")
    if rs:
        m, mm = spread(rs)
        w(f"Median {m}× (min – max {mm}) against a target of ≥ {EVENTS_TARGET:.1f}×: {verdict(rs, EVENTS_TARGET)}.")
        w("")


def render(doc):
    m, st = doc["machine"], doc["settings"]
    scen = doc["scenarios"]
    by_key = {f"{s['group']}/{s['id']}": s for s in scen}
    out = []
    w = out.append

    w("# Tally benchmarks")
    w("")
    rs = runs(doc)
    if len(rs) == 1:
        w(f"Generated by `bench/run.sh` on {doc['generated_at']}; the figures come from "
          "`docs/benchmarks.json`, this page from `bench/report.py`.")
        if st.get("bench_command"):
            w(f"Every figure below is from this one run (groups `{st.get('groups')}`, Tally revision "
              f"`{st.get('tally_revision', '?')}`, raw output in `bench/results/{st.get('raw_dir', '?')}`, not in git). "
              f"To repeat it: `{st['bench_command']}`.")
    else:
        w(f"Generated by `bench/run.sh` on {doc['generated_at']}; the figures come from "
          "`docs/benchmarks.json`, this page from `bench/report.py`.")
        w(f"The figures come from {len(rs)} runs. A run with `BENCH_ONLY` replaces the rows of its own groups "
          "and keeps the others' from the file it found, so each section says which run its rows come from. "
          "Rows of different runs were taken at different times on a shared machine: compare rows of one run; "
          "a ratio of two rows from different runs is marked ⚠.")
        w("")
        w("| run | groups on this page | Tally revision | load average when it ended | raw output (not in git) | to repeat it |")
        w("|---|---|---|---|---|---|")
        for r in rs:
            mine = list(dict.fromkeys(x["group"] for x in scen if x.get("run") == r["id"]))
            rst = r.get("settings") or {}
            quick = " (**smoke run**)" if rst.get("quick") == 1 else ""
            w(f"| {short_run(r['id'])}{quick} | {', '.join(f'`{g}`' for g in mine) or '—'} | `{r.get('revision') or '?'}` "
              f"| {(r.get('machine') or {}).get('loadavg_at_end') or '?'} | `bench/results/{r.get('raw_dir') or '?'}` "
              f"| `{r.get('bench_command') or '?'}` |")
    if any((r.get("settings") or {}).get("quick") == 1 for r in rs):
        w("")
        w("> **Smoke run (`BENCH_QUICK=1`)**" + ("" if len(rs) == 1 else " in the table above") +
          ": short durations and fewer scenarios; "
          "these numbers check the harness, they are not measurements to quote.")
    w("")

    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| CPU | {m.get('cpu_model') or '?'} |")
    w(f"| cores (`nproc`) | {m.get('nproc') or '?'} |")
    w(f"| memory | {num(m.get('memory_total_mib'))} MiB |")
    w(f"| kernel | {m.get('kernel') or '?'} |")
    w(f"| OS | {m.get('os') or '?'} |")
    w(f"| .NET SDK (`dotnet --version`) | {m.get('dotnet') or '?'} |")
    if len(rs) == 1:
        w(f"| load average when the run ended | {m.get('loadavg_at_end') or '?'} |")
        w(f"| Tally revision | {st.get('tally_revision', '?')} |")
    w(f"| wrk / redis / gunicorn / Flask | {st.get('wrk_version', '?')} / {st.get('redis_version', '?')} / "
      f"{st.get('gunicorn_version', '?')} / {st.get('flask_version', '?')} |")
    w("")
    w("Load generator and servers share the same cores, all on 127.0.0.1."
      + ("" if len(rs) == 1 else " The machine is the newest run's; the runs were on the same host."))
    w("")

    w("## Settings")
    w("")
    w(f"- {st.get('duration_s')} s per scenario after a {st.get('warmup_s')} s warm-up with the same load; "
      f"wrk `-t{st.get('wrk_threads')} -c{st.get('connections')}` unless a table says otherwise "
      "(never more threads than connections)" + runs_differing(rs) + ".")
    def of_group(group, key):
        """A setting of the run the group's rows come from."""
        row = next((x for x in scen if x["group"] == group), None)
        return (run_of(doc, row).get("settings") or {}).get(key) if row else None

    w(f"- Spread increments pick a random name out of {num(st.get('spread_counters'))}; "
      f"`/batch` carries {num(of_group('http', 'batch_size') or st.get('batch_size'))} increments per request"
      + (f"; redis-benchmark sends {num(of_group('compare', 'redis_requests'))} INCRs" if of_group("compare", "redis_requests") else "")
      + ".")
    if of_group("compare", "flask_gunicorn_args"):
        w(f"- Flask comparison: gunicorn `{of_group('compare', 'flask_gunicorn_args')}`.")
    scope = st.get("peak_rss_scope")
    w("- Peak RSS is VmHWM of the server process(es) "
      + ("reset before each scenario (`/proc/<pid>/clear_refs`), so it is the scenario's own peak."
         if scope == "scenario" else "since the process started (resetting it was refused)."))
    w("- Increments per flush: the change of `tally_commit_batch_size_sum` over the change of "
      "`tally_store_writes_total` in `GET /metrics` during the scenario (operations per durable write transaction; with `Durability=async` one write holds many in-memory commits).")
    w("- Latency is wrk's: per request, measured from the client, closed loop (each connection waits for "
      "its answer before sending the next request).")
    w("")

    for gid, title, qualifier in GROUPS:
        rows = [s for s in scen if s["group"] == gid]
        if not rows:
            continue
        quals = [qualifier] if qualifier else []
        conns = {s.get("connections") for s in rows if s.get("connections")}
        if len(conns) == 1:
            quals.append(f"{conns.pop()} connections")
        w(f"## {title}" + (f" ({', '.join(quals)})" if quals else ""))
        w("")
        from_run(doc, rows, w)
        w("| scenario | requests/s | increments/s | p50 ms | p99 ms | increments per flush | peak RSS MiB | notes |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for s in rows:
            w(scenario_row(s))
        w("")
        if gid == "counters" and "counters_load" in doc.get("extras", {}):
            x = doc["extras"]["counters_load"]
            w(f"Loading {num(x.get('counters_target'))} counters ({x.get('load_method')}):")
            w("")
            w("| | |")
            w("|---|---:|")
            w(f"| counters created | {num(x.get('counters_loaded'))} |")
            w(f"| time to load | {x.get('load_seconds')} s |")
            w(f"| RSS after loading | {mib(x.get('rss_after_load_kb'))} MiB |")
            w(f"| peak RSS from start to end of loading | {mib(x.get('peak_rss_during_load_kb'))} MiB |")
            w(f"| data directory after loading | {mib(x.get('data_dir_kb'))} MiB |")
            w(f"| start on an empty data dir until `/readyz` 200 | {num(x.get('start_empty_to_ready_ms'))} ms |")
            w(f"| restart on the loaded data dir until `/readyz` 200 | {num(x.get('restart_to_ready_ms'))} ms |")
            w(f"| RSS right after that restart | {mib(x.get('rss_after_restart_kb'))} MiB |")
            if x.get("stop_needed_sigkill") == 1:
                w("| stop before the restart | needed SIGKILL |")
            w("")

    render_postgres(doc, by_key, w)
    render_redis(doc, by_key, w)
    render_history(doc, by_key, w)
    render_events(doc, by_key, w)

    w("## Side by side")
    w("")
    for label, a, b in RATIOS:
        sa, sb = by_key.get(a), by_key.get(b)
        if not sa or not sb:
            continue
        if has_numbers(sa) and has_numbers(sb) and rate(sb):
            w(f"- {label} = {rate(sa) / rate(sb):.2f}{cross_run(sa, sb)}")
        else:
            missing = sa if not has_numbers(sa) else sb
            w(f"- {label} = n/a ({missing['title']}: {STATUS_TEXT.get(missing['status'], missing['status'])})")
    w("")

    w("## Reading the figures")
    w("")
    for r in rs:
        if len(rs) > 1:
            mine = list(dict.fromkeys(x["group"] for x in scen if x.get("run") == r["id"]))
            w(f"### The run of {short_run(r['id'])} ({', '.join(f'`{g}`' for g in mine) or 'extras only'})")
            w("")
        w(f"<!-- reading run={r['id']} -->")
        w("<!-- reading -->")
        w(f"<!-- /reading run={r['id']} -->")
        w("")

    w("## Commands")
    w("")
    w("Everything above is " + ("one run" if len(rs) == 1 else f"{len(rs)} runs") + " of `bench/run.sh`. Build and servers:")
    w("")
    w("```")
    for r in rs:
        rst = r.get("settings") or {}
        if len(rs) > 1:
            w(f"# run of {short_run(r['id'])}")
        w(rst.get("build_command", ""))
        w(rst.get("tally_command", ""))
        for key in ("redis_server_command", "gunicorn_command", "postgres_server_command", "tally_pg_command",
                    "redis_durable_server_command", "tally_redis_command", "nginx_command", "tally_events_command",
                    "sse_reader_command"):
            if rst.get(key) and (key not in ("tally_events_command", "sse_reader_command")
                                 or any(x["group"] == "events" and x.get("run") == r["id"] for x in scen)):
                w(rst[key])
    w("```")
    w("")
    w("Load, per scenario (ports were picked free for the run):")
    w("")
    w("```")
    for s in scen:
        if s.get("command") and not s.get("same_as"):
            w(f"# {s['group']}/{s['id']}" + (f" (run of {short_run(s.get('run'))})" if len(rs) > 1 else ""))
            w(s["command"])
    x = doc.get("extras", {}).get("counters_load")
    if x and x.get("load_command"):
        w("# counters/load")
        w(x["load_command"])
    w("```")
    w("")
    return "\n".join(out)


READING = "## Reading the figures\n"
BLOCK = re.compile(r"<!-- reading run=(\S+) -->\n(.*?)\n?<!-- /reading run=\1 -->", re.S)
PLACEHOLDER = "<!-- reading -->"


def written_readings(old):
    """{run id: text} of what was written under "Reading the figures", per run. A page from before the
    per-run blocks holds one text, for the run in its first line ("Generated by `bench/run.sh` on <id>;")."""
    if READING not in old:
        return {}
    section = old.split(READING, 1)[1].split("\n## ", 1)[0]
    blocks = {rid: text.strip("\n") for rid, text in BLOCK.findall(section)}
    if blocks:
        return {rid: text for rid, text in blocks.items() if text.strip() and text.strip() != PLACEHOLDER}
    m = re.search(r"^Generated by `bench/run.sh` on (\S+);", old, re.M)
    text = section.strip("\n")
    if m and text and text != PLACEHOLDER:
        return {m.group(1): text}
    return {}


def keep_reading(text, path):
    """Each run's block under "Reading the figures" keeps what a person wrote there for that run, as long
    as the page holds figures of that run; a new run's block gets the placeholder."""
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        return text
    kept = written_readings(old)

    def fill(m):
        rid = m.group(1)
        body = kept.get(rid, PLACEHOLDER)
        return f"<!-- reading run={rid} -->\n{body}\n<!-- /reading run={rid} -->"

    return BLOCK.sub(fill, text)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    text = keep_reading(render(doc), sys.argv[2])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
