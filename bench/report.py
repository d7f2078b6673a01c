#!/usr/bin/env python3
"""Renders docs/benchmarks.md from docs/benchmarks.json, and its charts (SVG, matplotlib) into
images/ beside it.

usage: report.py benchmarks.json benchmarks.md

"Reading the figures" has one block per run whose figures the page holds
(<!-- reading run=<id> --> … <!-- /reading run=<id> -->), with the placeholder
<!-- reading --> for a person to fill in; rendering again keeps what was written
in the block of every run still on the page.
"""

import json
import os
import re
import statistics
import sys

# (group id, heading, what holds for every row besides the connection count)
GROUPS = [
    ("http", "Tally over HTTP", None),
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
        w("What Redis ran per `FCALL`: the commits' and, with history, the fold's calls (calls per FCALL, first pair, "
          "history on → off; below 0.05 per call left out):")
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


# ---------------------------------------------------------------- side by side (compare group)

# The compare group's subjects in the order the page shows them: (peer, label).
PEERS = [
    ("redis_incr", "Redis INCR, no persistence"),
    ("redis_incr_durable", "Redis INCR, appendfsync always"),
    ("flask_redis", "Flask + Redis (seed service)"),
    ("healthz", "Tally GET /healthz"),
    ("sync_hot", "Tally sync, hot counter"),
    ("sync_hot_nohist", "Tally sync, hot counter, history off"),
    ("async_hot", "Tally async, hot counter"),
    ("async_hot_nohist", "Tally async, hot counter, history off"),
    ("sync_spread", "Tally sync, 10,000 counters"),
    ("sync_spread_nohist", "Tally sync, 10,000 counters, history off"),
    ("async_spread", "Tally async, 10,000 counters"),
    ("async_spread_nohist", "Tally async, 10,000 counters, history off"),
    ("pg_hot", "Tally on PostgreSQL, hot counter"),
    ("redis_hot", "Tally on Redis, hot counter"),
]
PEER_LABEL = dict(PEERS)


def peer_label(peer, spread=None):
    label = PEER_LABEL.get(peer, peer)
    return label.replace("10,000", num(spread)) if spread else label


def compare_rounds(doc):
    """{peer: [row, ...]} of the compare group, by round. A row from before the rounds (id redis_incr, no
    "peer" field) is its own peer's only round."""
    out = {}
    for s in doc["scenarios"]:
        if s["group"] == "compare":
            out.setdefault(s.get("peer") or s["id"], []).append(s)
    for rows in out.values():
        rows.sort(key=lambda s: s.get("rep") or 1)
    return out


def median_row(peer, rows):
    """One row standing for a peer's rounds: the medians of its rates and latencies (over the rounds with
    figures); the first round's other fields."""
    good = [s for s in rows if has_numbers(s)]
    base = dict(good[0] if good else rows[0])
    base["id"] = peer
    base["title"] = re.sub(r" \(round \d+\)$", "", base["title"])
    base["rounds"] = len(rows)
    if len(good) > 1:
        for key in ("requests_per_s", "increments_per_s"):
            vals = [s[key] for s in good if s.get(key) is not None]
            if vals:
                base[key] = statistics.median(vals)
        lat = {}
        for k in ("p50", "p90", "p99", "mean"):
            vals = [(s.get("latency_ms") or {}).get(k) for s in good]
            vals = [v for v in vals if v is not None]
            if vals:
                lat[k] = statistics.median(vals)
        base["latency_ms"] = lat
        base["peak_rss_kb"] = max((s.get("peak_rss_kb") or 0) for s in good) or None
        base["note"] = "; ".join(filter(None, [f"median of {len(good)} rounds", base.get("note")]))
    return base


def round_ratios(rounds, a, b):
    """Per round (same round number, measured minutes apart at most): rate(a) / rate(b)."""
    rb = {s.get("rep") or 1: s for s in rounds.get(b, [])}
    out = []
    for s in rounds.get(a, []):
        t = rb.get(s.get("rep") or 1)
        if t is not None:
            out.append(ratio(s, t))
    return out


def render_compare(doc, rounds, by_key, w, chart):
    if not rounds:
        return
    rows = [s for rs in rounds.values() for s in rs]
    st = run_of(doc, rows[0]).get("settings") or doc["settings"]
    spread_n = st.get("spread_counters")
    w(f"## Side by side ({rows[0].get('connections')} connections, one run)")
    w("")
    from_run(doc, rows, w)
    n = max(len(v) for v in rounds.values())
    w(f"Every subject measured in the same run, {n} round{'s, the order reversed in even rounds' if n != 1 else ''}; "
      "each measurement on fresh instances: a new `redis-server` without persistence for the plain `INCR` and the "
      "Flask + Redis service (`bench/flask_counter/app.py` under gunicorn); the private `appendfsync always` Redis "
      "emptied (`FLUSHALL` and an AOF rewrite) for the durable `INCR` and for Tally on Redis; a new database on a private "
      "PostgreSQL 15 (`fsync=on`) for Tally on PostgreSQL; a new Tally process on a new, empty data directory for "
      "every Tally row (`--Auth off`, rate limit off, history on unless the row says off). Redis rows are "
      "`redis-benchmark -t incr` (no HTTP); the others are wrk with the same script as everywhere on this page. "
      "A figure is the median over the rounds; *min – max* the spread of the rounds.")
    w("")
    if chart:
        w(f"![Increments per second, side by side]({chart})")
        w("")
        w("*The bar is the median of the rounds, the whisker their min – max.*")
        w("")
    ref = rounds.get("sync_hot")
    w("| subject | increments/s (median) | min – max | p50 ms | p99 ms | peak RSS MiB | / Tally sync, hot counter | notes |")
    w("|---|---:|---:|---:|---:|---:|---:|---|")
    order = [p for p, _ in PEERS if p in rounds] + [p for p in rounds if p not in PEER_LABEL]
    for peer in order:
        m = by_key[f"compare/{peer}"]
        good = [rate(s) for s in rounds[peer] if has_numbers(s)]
        if not good:
            text = STATUS_TEXT.get(rounds[peer][0]["status"], rounds[peer][0]["status"])
            w(f"| {peer_label(peer, spread_n)} | {text} | — | — | — | — | — | {notes(rounds[peer][0])} |")
            continue
        lat = m.get("latency_ms") or {}
        rel = "—"
        if ref and peer != "sync_hot":
            rs = [r for r in round_ratios(rounds, peer, "sync_hot") if r is not None]
            if rs:
                rel = f"{statistics.median(rs):.2f}×"
        errs = " ⚠" if any(s["status"] == "errors" for s in rounds[peer]) else ""
        w(f"| {peer_label(peer, spread_n)} | {num(statistics.median(good))}{errs} | {num(min(good))} – {num(max(good))} "
          f"| {ms(lat.get('p50'))} | {ms(lat.get('p99'))} | {mib(m.get('peak_rss_kb'))} | {rel} "
          f"| {'; '.join(filter(None, [s.get('note') for s in rounds[peer][:1]] + [e for s in rounds[peer] for e in [s.get('flush_note')] if e and s.get('increments_per_flush') is not None]))} |")
    w("")
    hist = [(f"{d} {'hot counter' if work == 'hot' else num(spread_n) + ' counters'}", f"{d}_{work}", f"{d}_{work}_nohist")
            for work in ("hot", "spread") for d in ("sync", "async")]
    hist = [h for h in hist if h[1] in rounds and h[2] in rounds]
    if hist:
        w("The cost of history (embedded store, the rows above): increments/s with history on over off, per round.")
        w("")
        w("| workload | on / off per round | median | history costs |")
        w("|---|---|---:|---:|")
        for label, on, off in hist:
            rs = round_ratios(rounds, on, off)
            good = [r for r in rs if r is not None]
            per = ", ".join("n/a" if r is None else f"{r:.2f}" for r in rs)
            med_r = statistics.median(good) if good else None
            if med_r is None:
                cost = "—"
            elif med_r <= 1:
                cost = f"{(1 - med_r) * 100:.0f}%"
            else:
                cost = f"none measured (on {(med_r - 1) * 100:.0f}% faster)"
            w(f"| {label} | {per} | {'—' if med_r is None else f'{med_r:.2f}×'} | {cost} |")
        w("")
    w("Every round's row:")
    w("")
    w("| scenario | requests/s | increments/s | p50 ms | p99 ms | increments per flush | peak RSS MiB | notes |")
    w("|---|---:|---:|---:|---:|---:|---:|---|")
    for peer in order:
        for s in rounds[peer]:
            w(scenario_row(s))
    w("")


# ---------------------------------------------------------------- charts

CHARTS_DIR = "images"
CHARTS = ("connections", "counters", "side")


def chart_setup():
    try:
        import matplotlib
    except ImportError:
        sys.exit("report.py: the charts need matplotlib (Debian: apt-get install python3-matplotlib; "
                 "bench/run.sh installs it and runs this script with /usr/bin/python3)")
    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "svg.hashsalt": "tally-benchmarks",  # fixed ids: the same figures give the same file
        "svg.fonttype": "none",               # text as text: small files
        "font.size": 9,
        "axes.spines.top": False,
    })
    import matplotlib.pyplot as plt
    return plt


def thousands_axis(axis):
    from matplotlib.ticker import FuncFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def run_caption(doc, rows):
    ids = list(dict.fromkeys(s.get("run") or doc["generated_at"] for s in rows))
    quick = any((run_of(doc, r).get("settings") or {}).get("quick") == 1 for r in ids)
    text = "run of " + ", ".join(short_run(r) for r in ids) + (" (smoke run)" if quick else "")
    return text + (" ⚠ rows of different runs" if len(ids) > 1 else "")


def line_chart(plt, doc, series, xlabel, title, path, logx):
    """Increments/s (left axis, solid) and p99 latency (right axis, dashed) against the x of each row;
    series: [(name, [(x, row), ...]), ...], the first drawn darker."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax2 = ax.twinx()
    ax2.spines["top"].set_visible(False)
    shades = [("#1f77b4", "#d62728"), ("#9ecae1", "#fc9272")]
    handles, xs_all, top, top99, all_rows = [], set(), 0, 0, []
    for k, (name, rows) in enumerate(series):
        pts = sorted(rows, key=lambda p: p[0])
        xs = [x for x, _ in pts]
        xs_all.update(xs)
        all_rows += [s for _, s in pts]
        blue, red = shades[min(k, len(shades) - 1)]
        suffix = f", {name}" if name else ""
        rates = [rate(s) for _, s in pts]
        handles += ax.plot(xs, rates, marker="o", color=blue, label=f"increments/s{suffix}")
        top = max(top, max(rates))
        for x, v in zip(xs, rates if k == 0 else []):  # the first series' figures; the tables hold the others
            ax.annotate(f"{v:,.0f}", (x, v), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=7.5, color=blue)
        p99 = [(s.get("latency_ms") or {}).get("p99") for _, s in pts]
        if all(v is not None for v in p99):
            handles += ax2.plot(xs, p99, marker="s", linestyle="--", color=red, label=f"p99 ms{suffix}")
            top99 = max(top99, max(p99))
    ax.set_ylim(bottom=0, top=top * 1.2 or 1)
    ax2.set_ylim(bottom=0, top=top99 * 1.3 or 1)
    thousands_axis(ax.yaxis)
    ax.set_ylabel("increments/s")
    ax2.set_ylabel("p99 latency, ms", color="#d62728")
    ax.set_xlabel(xlabel)
    if logx:
        ax.set_xscale("log")
    ticks = sorted(xs_all)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{x:,}" for x in ticks])
    ax.minorticks_off()
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", frameon=False, fontsize=7.5)
    ax.set_title(f"{title}\n{run_caption(doc, all_rows)}", fontsize=9)
    save(plt, fig, path)


def peer_color(peer):
    """Grey: Redis itself; orange: the Flask service; light blue: an empty request; blue: the embedded store
    (lighter with history off); green: Tally's other engines."""
    if peer.startswith("redis_incr"):
        return "#7f7f7f"
    if peer == "flask_redis":
        return "#ff7f0e"
    if peer == "healthz":
        return "#aec7e8"
    if peer in ("pg_hot", "redis_hot"):
        return "#2ca02c"
    return "#6baed6" if peer.endswith("_nohist") else "#1f77b4"


def bar_chart(plt, doc, rounds, path, spread_n):
    order = [p for p, _ in PEERS if p in rounds] + [p for p in rounds if p not in PEER_LABEL]
    data = []
    for peer in order:
        vals = [rate(s) for s in rounds[peer] if has_numbers(s)]
        if vals:
            data.append((peer_label(peer, spread_n), statistics.median(vals), min(vals), max(vals), peer_color(peer)))
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * len(data) + 1.2))
    ys = list(range(len(data)))[::-1]
    ax.barh(ys, [d[1] for d in data], color=[d[4] for d in data],
            xerr=[[d[1] - d[2] for d in data], [d[3] - d[1] for d in data]], ecolor="#333333", capsize=2)
    for y, d in zip(ys, data):
        ax.text(d[3], y, f"  {d[1]:,.0f}", va="center", fontsize=7.5)
    ax.set_yticks(ys)
    ax.set_yticklabels([d[0] for d in data])
    ax.set_xlabel("increments/s (GET /healthz: requests/s)")
    ax.set_xlim(0, max(d[3] for d in data) * 1.18)
    thousands_axis(ax.xaxis)
    rows = [s for rs in rounds.values() for s in rs]
    ax.set_title(f"Side by side, {rows[0].get('connections')} connections\n{run_caption(doc, rows)}", fontsize=9)
    save(plt, fig, path)
    return True


def make_charts(doc, rounds, md_path):
    """Writes the page's charts into images/ beside it; {name: path relative to the page}."""
    plt = chart_setup()
    out_dir = os.path.join(os.path.dirname(os.path.abspath(md_path)), CHARTS_DIR)
    os.makedirs(out_dir, exist_ok=True)
    made = {}
    st = doc["settings"]

    def target(name):
        made[name] = f"{CHARTS_DIR}/bench-{name}.svg"
        return os.path.join(out_dir, f"bench-{name}.svg")

    conn = [s for s in doc["scenarios"] if s["group"] == "connections" and has_numbers(s) and s.get("connections")]
    on = [(s["connections"], s) for s in conn if s.get("history") != "off"]
    off = [(s["connections"], s) for s in conn if s.get("history") == "off"]
    if len(on) >= 2:
        series = [("history on" if off else "", on)] + ([("history off", off)] if off else [])
        line_chart(plt, doc, series, "connections (wrk -c)", "Tally, sync, hot counter: throughput against connections",
                   target("connections"), True)
    cnt = [(s["counters"], s) for s in doc["scenarios"]
           if s["group"] == "counters" and has_numbers(s) and s.get("counters")]
    if len(cnt) >= 2:
        line_chart(plt, doc, [("", cnt)], "counters the increments spread over",
                   "Tally, sync: throughput against the number of counters", target("counters"), True)
    if rounds:
        spread_n = (run_of(doc, next(iter(rounds.values()))[0]).get("settings") or st).get("spread_counters")
        path = target("side")
        if not bar_chart(plt, doc, rounds, path, spread_n):
            del made["side"]
    for name in CHARTS:
        stale = os.path.join(out_dir, f"bench-{name}.svg")
        if name not in made and os.path.exists(stale):
            os.remove(stale)  # its group is no longer on the page
    return made


# ---------------------------------------------------------------- targets (issue 14)

def render_targets(doc, by_key, rounds, extras_run, w):
    """Issue 14's targets, each with its measured figure and met/missed, each from rows of one run."""
    st = doc["settings"]
    rows_out = []

    def add(label, figure, target, ok, srcs, note=""):
        ids = list(dict.fromkeys(s.get("run") if isinstance(s, dict) else s for s in srcs if s))
        if len(ids) > 1:
            verdict_text, figure = "n/a: rows of different runs", f"({figure})"
        elif ok is None:
            verdict_text = "n/a"
        else:
            verdict_text = "met" if ok else "**missed**"
        run = ", ".join(short_run(r) for r in ids) or "—"
        quick = any((run_of(doc, r).get("settings") or {}).get("quick") == 1 for r in ids)
        rows_out.append(f"| {label} | {figure} | {target} | {verdict_text} | {run}{' (smoke)' if quick else ''} "
                        f"| {note} |")

    def missing(label, target, why):
        rows_out.append(f"| {label} | not measured | {target} | n/a | — | {why} |")

    def cmp_ratio(label, a, b, target, fallback=None):
        """Median of the per-round ratios of two compare peers; else the fallback rows of one group."""
        if a in rounds and b in rounds:
            rs = [r for r in round_ratios(rounds, a, b) if r is not None]
            if rs:
                v = statistics.median(rs)
                per = ", ".join(f"{r:.2f}" for r in rs)
                add(label, f"{v:.2f}×", f"≥ {target:.2f}×", v >= target,
                    rounds[a] + rounds[b], f"compare group, median of the rounds ({per})")
                return
        if fallback:
            sa, sb = by_key.get(fallback[0]), by_key.get(fallback[1])
            if sa and sb and ratio(sa, sb) is not None:
                v = ratio(sa, sb)
                add(label, f"{v:.2f}×", f"≥ {target:.2f}×", v >= target, [sa, sb], f"`{fallback[0]}` / `{fallback[1]}`")
                return
        missing(label, f"≥ {target:.2f}×", f"no `compare` rows of `{a}` and `{b}`"
                + (f", nor `{fallback[0]}` and `{fallback[1]}`" if fallback else ""))

    spread_n = num(st.get("spread_counters") or 10000)
    cmp_ratio("sync increment, hot counter / `GET /healthz`", "sync_hot", "healthz", 0.85,
              ("http/inc_hot_sync", "http/healthz"))
    cmp_ratio("↳ same, history off", "sync_hot_nohist", "healthz", 0.85)
    cmp_ratio(f"sync increment over {spread_n} counters / `GET /healthz`", "sync_spread", "healthz", 0.8,
              ("http/inc_spread_sync", "http/healthz"))
    cmp_ratio("↳ same, history off", "sync_spread_nohist", "healthz", 0.8)
    s = by_key.get("connections/c64")
    if s and has_numbers(s) and (s.get("latency_ms") or {}).get("p99") is not None:
        p99 = s["latency_ms"]["p99"]
        add("p99 at 64 connections (sync, hot counter)", f"{ms(p99)} ms", "< 5 ms", p99 < 5, [s], "`connections/c64`")
    else:
        missing("p99 at 64 connections (sync, hot counter)", "< 5 ms", "no `connections/c64` row (tally group, sweep without 64)")
    s = by_key.get("connections/c64_nohist")
    if s and has_numbers(s) and (s.get("latency_ms") or {}).get("p99") is not None:
        p99 = s["latency_ms"]["p99"]
        add("↳ same, history off", f"{ms(p99)} ms", "< 5 ms", p99 < 5, [s], "`connections/c64_nohist`")
    for work, fb in (("hot", ("http/inc_hot_async", "http/inc_hot_sync")),
                     ("spread", ("http/inc_spread_async", "http/inc_spread_sync"))):
        what = "hot counter" if work == "hot" else f"{spread_n} counters"
        cmp_ratio(f"async / sync, {what}", f"async_{work}", f"sync_{work}", 1.0, fb)
        cmp_ratio("↳ same, history off", f"async_{work}_nohist", f"sync_{work}_nohist", 1.0)
    big = [s for s in doc["scenarios"] if s["group"] == "counters" and (s.get("counters") or 0) > 100000]
    big = big[0] if big else None
    if not big:
        big = next((s for s in doc["scenarios"] if s["group"] == "counters"
                    and s.get("counters") and not s.get("same_as") and s["counters"] > (st.get("spread_counters") or 10000)), None)
    mid = next((s for s in doc["scenarios"] if s["group"] == "counters" and s.get("counters") == (st.get("spread_counters") or 10000)), None)
    if big:
        nb = num(big.get("counters"))
        small = " (smoke run: fewer counters than 1,000,000)" if big.get("counters", 0) < 1000000 else ""
        if mid and ratio(big, mid) is not None:
            v = ratio(big, mid)
            add(f"{nb} counters / {num(mid.get('counters'))} counters, increments/s", f"{v:.2f}×", "≥ 0.80×", v >= 0.8,
                [big, mid], f"`counters/{big['id']}` / `{mid.get('same_as') or 'counters/' + mid['id']}`{small}")
        else:
            missing(f"{nb} counters / {spread_n} counters", "≥ 0.80×", "the 10,000-counter row is missing (run `tally` with `big`)")
        p99 = (big.get("latency_ms") or {}).get("p99") if has_numbers(big) else None
        if p99 is not None:
            add(f"p99 over {nb} counters", f"{ms(p99)} ms", "< 10 ms", p99 < 10, [big],
                f"`counters/{big['id']}`{small}")
        if big.get("peak_rss_kb"):
            mb = big["peak_rss_kb"] * 1024 / 1e6
            add(f"RSS serving {nb} counters (peak during the measurement)", f"{mb:,.0f} MB", "< 250 MB", mb < 250, [big],
                f"`counters/{big['id']}`, VmHWM {mib(big['peak_rss_kb'])} MiB{small}")
    else:
        missing("1,000,000 counters / 10,000 counters", "≥ 0.80×", "the `big` group was not run")
    x = doc.get("extras", {}).get("counters_load")
    if x and x.get("restart_to_ready_ms") is not None:
        sec = x["restart_to_ready_ms"] / 1000
        add(f"restart to ready with {num(x.get('counters_loaded'))} counters", f"{sec:.2f} s", "< 2 s", sec < 2,
            [extras_run.get("counters_load", doc["generated_at"])], "until `/readyz` answers 200")
    else:
        missing("restart to ready with 1,000,000 counters", "< 2 s", "the `big` group was not run")
    s = by_key.get("http/batch_sync")
    if s and has_numbers(s) and s.get("increments_per_s"):
        add(f"`POST /batch` of {num(s.get('ops_per_request'))} increments, sync", f"{num(s['increments_per_s'])} increments/s",
            "≥ 1,000,000/s", s["increments_per_s"] >= 1e6, [s], "`http/batch_sync`")
    else:
        missing("`POST /batch` of 1,000 increments", "≥ 1,000,000/s", "no `http/batch_sync` row")

    w("## Targets (issue 14)")
    w("")
    w("Each figure from rows of one run (a ratio of rows from different runs is not judged). The throughput ratios "
      "come from the side-by-side group (its rounds, alternating), else from the `http` group; "
      "\"↳ same, history off\": the same figure with `--History:Enabled false` on the Tally side.")
    w("")
    w("| what | measured | target | | run | from |")
    w("|---|---:|---:|---|---|---|")
    for r in rows_out:
        w(r)
    w("")

def render(doc, charts=None):
    m, st = doc["machine"], doc["settings"]
    scen = doc["scenarios"]
    charts = charts or {}
    by_key = {f"{s['group']}/{s['id']}": s for s in scen}
    rounds = compare_rounds(doc)
    for peer, rows in rounds.items():
        by_key[f"compare/{peer}"] = median_row(peer, rows)
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
    w("- Every Tally scenario of the `http`, `connections` and `compare` groups runs on a new Tally process with a "
      "new, empty data directory, stopped and removed after it (and the page cache written back with `sync`), so "
      "no scenario inherits another's data, counters or backlog.")
    w("")
    render_targets(doc, by_key, rounds, doc.get("extras_run") or {}, w)
    render_compare(doc, rounds, by_key, w, charts.get("side"))

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
        if charts.get(gid):
            w(f"![{title}]({charts[gid]})")
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

    w("## Ratios")
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
    charts = make_charts(doc, compare_rounds(doc), sys.argv[2])
    text = keep_reading(render(doc, charts), sys.argv[2])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
