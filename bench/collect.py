#!/usr/bin/env python3
"""Collects benchmark results for bench/run.sh (stdlib only).

Each scenario is appended as one JSON line to a results file while the run goes
on; `finish` then adds the machine description and writes benchmarks.json,
which bench/report.py turns into Markdown.

  collect.py add     --results F --group G --id ID --title T [--wrk FILE | --redis-csv FILE] ...
  collect.py alias   --results F --source G/ID --group G --id ID --title T [--counters N]
  collect.py extra   --results F --key K [--field name=value ...]
  collect.py pgextra --results F --rtt FILE --commit1 FILE [--pg-test-fsync FILE] [--field name=value ...]
  collect.py redisextra --results F --ping1 CSV --incr1 CSV [--field name=value ...]
  collect.py finish  --results F --out benchmarks.json [--previous benchmarks.json] [--setting name=value ...]

With --previous, the rows (and extras) of the groups this run did not measure
are kept from that file, each marked with the run it comes from; "runs" lists
every run whose figures the new file holds.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone


def parse_wrk(path):
    """The WRK_JSON line printed by bench/wrk/tally.lua's done()."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("WRK_JSON "):
                    return json.loads(line[len("WRK_JSON "):])
    except FileNotFoundError:
        pass
    return None


def parse_redis_csv(path):
    """redis-benchmark --csv: a header row, then one row per test."""
    import csv

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = list(csv.reader(line for line in f if line.strip()))
    except FileNotFoundError:
        return None
    if len(rows) < 2:
        return None
    header = rows[0]
    for row in rows[1:]:
        rec = dict(zip(header, row))
        if rec.get("test", "").upper().startswith("INCR"):
            return rec
    return None


_METRIC = re.compile(r"^(tally_commit_batch_size\w*?)_(sum|count)(\{[^}]*\})?\s+(\S+)")
# Disk flushes: with Durability=async one flush holds many in-memory commits.
_WRITES = re.compile(r"^tally_store_writes_total(\{[^}]*\})?\s+(\S+)")


def parse_commit_metrics(path):
    """(operations, commits) summed over label sets, or None if unavailable.

    Accepts an exporter's unit suffix (tally_commit_batch_size_ops_sum etc.).
    An empty file means /metrics did not answer 200.
    """
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    ops = commits = writes = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = _WRITES.match(line)
            if w:
                writes = (writes or 0) + float(w.group(2))
                continue
            m = _METRIC.match(line)
            if not m:
                continue
            try:
                v = float(m.group(4))
            except ValueError:
                continue
            if m.group(2) == "sum":
                ops = (ops or 0) + v
            else:
                commits = (commits or 0) + v
    if ops is None or commits is None:
        return "missing"
    return ops, writes if writes is not None else commits


_SUMS = {
    "commit_seconds": re.compile(r"^tally_commit_duration\w*_(sum|count)(\{[^}]*\})?\s+(\S+)"),
    "store_errors": re.compile(r"^tally_store_errors_total()(\{[^}]*\})?\s+(\S+)"),
}


def parse_sums(path):
    """{name: {part: value}} for the series in _SUMS, summed over label sets and
    over instances (run.sh concatenates the /metrics of several instances)."""
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for name, rx in _SUMS.items():
                m = rx.match(line)
                if m:
                    try:
                        v = float(m.group(3))
                    except ValueError:
                        continue
                    part = m.group(1) or "value"
                    out.setdefault(name, {}).setdefault(part, 0.0)
                    out[name][part] += v
    return out


_EVENTS = {
    "events_published": re.compile(r"^tally_events_published_total(\{[^}]*\})?\s+(\S+)"),
    "streams_dropped": re.compile(r"^tally_events_streams_dropped_total(\{[^}]*\})?\s+(\S+)"),
    "streams_open": re.compile(r"^tally_events_streams(\{[^}]*\})?\s+(\S+)"),
}


def parse_events(path):
    """{name: value} of the live-event series, summed over label sets; None when /metrics did not answer."""
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    out = {name: 0.0 for name in _EVENTS}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for name, rx in _EVENTS.items():
                m = rx.match(line)
                if m:
                    try:
                        out[name] += float(m.group(2))
                    except ValueError:
                        pass
    return out


def events_deltas(before, after):
    """Events made and streams dropped during the measurement (a counter not exported yet counts 0), open streams at both ends."""
    b, a = parse_events(before), parse_events(after)
    if b is None or a is None:
        return {}
    return {"events_published": a["events_published"] - b["events_published"],
            "streams_dropped": a["streams_dropped"] - b["streams_dropped"],
            "streams_open_before": b["streams_open"], "streams_open_after": a["streams_open"]}


def reader_fields(path):
    """bench/sse_reader.py's figures, written at the end of the measurement window."""
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except (OSError, ValueError):
        return {"reader_note": f"no figures from the stream reader ({path})"}
    w = r.get("window") or {}
    return {
        "reader_streams": r.get("streams"), "reader_opened": r.get("opened"), "reader_open_s": r.get("open_seconds"),
        "reader_window_s": w.get("seconds"), "reader_received": w.get("received_total"),
        "reader_per_stream": {k: w.get(f"per_stream_{k}") for k in ("min", "median", "max")},
        "reader_streams_with_none": w.get("streams_with_none"), "reader_stream_ends": w.get("stream_ends"),
        "reader_open_at_start": w.get("open_at_start"), "reader_open_at_end": w.get("open_at_end"),
        "reader_lag_max_events": w.get("lag_max_events"), "reader_sequence_advance": w.get("sequence_advance"),
        "reader_reconnects": r.get("reconnects"), "reader_skipped": r.get("skipped_total"),
        "reader_streams_skipping": r.get("streams_skipping"), "reader_connect_errors": r.get("connect_errors"),
        "reader_heartbeats": r.get("heartbeats_total"),
    }


def sum_deltas(before, after):
    b, a = parse_sums(before), parse_sums(after)
    if b is None or a is None:
        return {}
    res = {}
    ca, cb = a.get("commit_seconds", {}), b.get("commit_seconds", {})
    n = ca.get("count", 0) - cb.get("count", 0)
    if n > 0:
        res["commit_ms_mean"] = (ca.get("sum", 0) - cb.get("sum", 0)) / n * 1000
    if "store_errors" in a:
        res["store_errors"] = a["store_errors"].get("value", 0) - b.get("store_errors", {}).get("value", 0)
    return res


def parse_pgbench(path):
    """pgbench's summary: tps, latency average, transactions, failures."""
    out = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    for key, rx in (
        ("tps", r"^tps = ([0-9.]+) \(without initial connection time\)"),
        ("latency_avg_ms", r"^latency average = ([0-9.]+) ms"),
        ("transactions", r"^number of transactions actually processed: (\d+)"),
        ("failed", r"^number of failed transactions: (\d+)"),
        ("duration_s", r"^duration: (\d+) s"),
    ):
        m = re.search(rx, text, re.M)
        if m:
            out[key] = float(m.group(1))
    return out if "tps" in out else None


def pgbench_latencies(prefix):
    """Per-transaction latencies (ms) from pgbench -l files PREFIX.<pid>[.<n>]."""
    import glob

    lat = []
    for path in glob.glob(prefix + ".*"):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000)
    return sorted(lat)


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def parse_test_fsync(path):
    """pg_test_fsync: fdatasync of one 8 kB write (the first section), ops/s and µs/op."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^\s+fdatasync\s+([0-9.,]+) ops/sec\s+([0-9.,]+) usecs/op", line)
                if m:
                    return float(m.group(1).replace(",", "")), float(m.group(2).replace(",", ""))
    except FileNotFoundError:
        pass
    return None


def parse_redis_info(path):
    """`redis-cli info all`: {"fields": {name: value}, "cmd": {command: (calls, usec)},
    "latency": {command: {"p50": usec, ...}}}, or None when the file is missing or empty."""
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    fields, cmd, latency = {}, {}, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            if name.startswith("cmdstat_"):
                kv = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
                cmd[name[len("cmdstat_"):]] = (int(kv.get("calls", 0)), int(kv.get("usec", 0)))
            elif name.startswith("latency_percentiles_usec_"):
                kv = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
                latency[name[len("latency_percentiles_usec_"):]] = {k: float(v) for k, v in kv.items()}
            else:
                fields[name] = value
    return {"fields": fields, "cmd": cmd, "latency": latency}


def redis_deltas(before, after):
    """What Redis did between two INFO snapshots: calls and usec per command (commands that a
    function calls are counted under their own names), bytes in and out, AOF growth, forks."""
    b, a = parse_redis_info(before), parse_redis_info(after)
    if b is None or a is None:
        return {}

    def number(info, key):
        try:
            return float(info["fields"].get(key, ""))
        except ValueError:
            return None

    res = {}
    cmds = {}
    for name, (calls, usec) in a["cmd"].items():
        c0, u0 = b["cmd"].get(name, (0, 0))
        # CONFIG RESETSTAT before the measurement zeroes the counters; a negative delta cannot happen then.
        if calls - c0 > 0:
            cmds[name] = {"calls": calls - c0, "usec": usec - u0}
    res["redis_commands"] = dict(sorted(cmds.items(), key=lambda kv: -kv[1]["calls"]))
    for key, field in (("redis_net_in_bytes", "total_net_input_bytes"), ("redis_net_out_bytes", "total_net_output_bytes"),
                       ("aof_bytes", "aof_current_size"), ("redis_forks", "total_forks"),
                       ("aof_rewrites", "aof_rewrites"), ("redis_commands_processed", "total_commands_processed")):
        x, y = number(b, field), number(a, field)
        if x is not None and y is not None:
            res[key] = y - x
    # Percentiles since CONFIG RESETSTAT, i.e. of this measurement alone.
    lat = a["latency"].get("fcall") or a["latency"].get("incr")
    if lat:
        res["redis_call_latency_usec"] = lat
    return res


def procstate_fields(path):
    """bench/procstate.py's output: the sampled main thread's share of R/D/S, and run-queue wait per group."""
    try:
        with open(path, encoding="utf-8") as f:
            p = json.load(f)
    except (OSError, ValueError):
        return {}
    n = p.get("samples") or 0
    res = {"procstate_window_s": p.get("window_s")}
    if n:
        res["redis_main_thread"] = {k: v / n for k, v in sorted(p["states"].items())}
        res["redis_main_thread_wchan"] = {k: v / n for k, v in p.get("wchan", {}).items()}
    for name, g in p.get("groups", {}).items():
        res[f"runqueue_wait_{name}_s"] = g["runqueue_wait_s"]
        res[f"on_cpu_{name}_s"] = g["on_cpu_s"]
    return res


def parse_redis_csv_any(path):
    """The first data row of redis-benchmark --csv, whatever the test."""
    import csv

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = list(csv.reader(line for line in f if line.strip()))
    except FileNotFoundError:
        return None
    if len(rows) < 2:
        return None
    return dict(zip(rows[0], rows[1]))


def flush_stats(before, after, mutates):
    b, a = parse_commit_metrics(before), parse_commit_metrics(after)
    if b is None or a is None:
        return None, None, "n/a (/metrics not available)"
    if a == "missing" and mutates:
        return None, None, "n/a (no tally_commit_batch_size metric)"
    # A histogram with no observations yet is not exported at all.
    b = (0, 0) if b == "missing" else b
    a = (0, 0) if a == "missing" else a
    ops, commits = a[0] - b[0], a[1] - b[1]
    if commits <= 0:
        return ops, commits, "no commits"
    return ops, commits, None


def cmd_add(args):
    rec = {
        "group": args.group,
        "id": args.id,
        "title": args.title,
        "subject": args.subject,
        "status": args.status,
        "note": args.note or None,
        "command": args.command or None,
        "connections": args.connections,
        "threads": args.threads,
        "counters": args.counters,
        "durability": args.durability,
        "ops_per_request": args.ops_per_request,
        "requests_per_s": None,
        "increments_per_s": None,
        "latency_ms": None,
        "requests": None,
        "errors": None,
        "increments_per_flush": None,
        "flush_note": None,
        "peak_rss_kb": args.peak_rss_kb,
        "peak_rss_scope": args.peak_rss_scope,
        "raw": relative(args.wrk or args.redis_csv or args.pgbench),
        "loadavg": loadavg(),
    }
    if args.status == "ok":
        if args.wrk:
            w = parse_wrk(args.wrk)
            if w is None or w["requests"] == 0:
                rec["status"] = "failed"
                rec["note"] = "; ".join(filter(None, [rec["note"], "wrk produced no result"]))
            else:
                secs = w["duration_us"] / 1e6
                rec["duration_s"] = secs
                lat = w["latency_us"]
                rec["requests"] = w["requests"]
                rec["requests_per_s"] = w["requests"] / secs
                rec["latency_ms"] = {k: lat[k] / 1000 for k in ("p50", "p90", "p99", "p999", "mean", "max")}
                errs = {k: v for k, v in w["errors"].items() if v}
                rec["errors"] = errs or None
                if errs:
                    rec["status"] = "errors"
                    desc = ", ".join(f"{v} {k}" for k, v in errs.items())
                    rec["note"] = "; ".join(filter(None, [rec["note"], f"errors: {desc} (status = non-2xx/3xx answers)"]))
        elif args.pgbench:
            r = parse_pgbench(args.pgbench)
            if r is None:
                rec["status"] = "failed"
                rec["note"] = "; ".join(filter(None, [rec["note"], "pgbench produced no tps line"]))
            else:
                rec["requests_per_s"] = r["tps"]
                rec["requests"] = int(r.get("transactions", 0))
                rec["duration_s"] = r.get("duration_s")
                lat = pgbench_latencies(args.pgbench_log_prefix) if args.pgbench_log_prefix else []
                rec["latency_ms"] = {"mean": r.get("latency_avg_ms")}
                if lat:
                    rec["latency_ms"].update({"p50": pct(lat, 0.5), "p90": pct(lat, 0.9), "p99": pct(lat, 0.99),
                                              "p999": pct(lat, 0.999), "max": lat[-1]})
                if r.get("failed"):
                    rec["status"] = "errors"
                    rec["errors"] = {"failed": int(r["failed"])}
                    rec["note"] = "; ".join(filter(None, [rec["note"], f"{int(r['failed'])} failed transactions"]))
        elif args.redis_csv:
            r = parse_redis_csv(args.redis_csv)
            if r is None:
                rec["status"] = "failed"
                rec["note"] = "; ".join(filter(None, [rec["note"], "redis-benchmark produced no INCR row"]))
            else:
                rec["requests_per_s"] = float(r["rps"])
                rec["latency_ms"] = {
                    "p50": float(r["p50_latency_ms"]),
                    "p99": float(r["p99_latency_ms"]),
                    "mean": float(r["avg_latency_ms"]),
                    "max": float(r["max_latency_ms"]),
                }
        if rec["requests_per_s"] is not None and args.ops_per_request:
            rec["increments_per_s"] = rec["requests_per_s"] * args.ops_per_request
        if args.metrics_before or args.metrics_after:
            ops, commits, why = flush_stats(args.metrics_before, args.metrics_after, bool(args.ops_per_request))
            rec["flush"] = {"operations": ops, "commits": commits}
            if why is None:
                rec["increments_per_flush"] = ops / commits
            rec["flush_note"] = why
            rec.update(sum_deltas(args.metrics_before, args.metrics_after))
            if args.events_metrics:
                rec.update(events_deltas(args.metrics_before, args.metrics_after))
    if args.events_reader:
        rec.update(reader_fields(args.events_reader))
    if args.redis_info_before or args.redis_info_after:
        rec.update(redis_deltas(args.redis_info_before, args.redis_info_after))
    if args.procstate:
        rec.update(procstate_fields(args.procstate))
    for kv in args.field or []:
        k, _, v = kv.partition("=")
        rec[k] = convert(v)
    append(args.results, {"type": "scenario", **rec})


def cmd_alias(args):
    group, _, sid = args.source.partition("/")
    src = None
    for rec in read(args.results):
        if rec["type"] == "scenario" and rec["group"] == group and rec["id"] == sid:
            src = rec
    if src is None:
        print(f"collect.py alias: no scenario {args.source}", file=sys.stderr)
        return
    rec = dict(src, group=args.group, id=args.id, title=args.title, same_as=args.source)
    if args.counters is not None:
        rec["counters"] = args.counters
    rec["note"] = "; ".join(filter(None, [f"same measurement as {args.source}", src.get("note")]))
    append(args.results, rec)


def cmd_extra(args):
    fields = {}
    for kv in args.field or []:
        k, _, v = kv.partition("=")
        fields[k] = convert(v)
    append(args.results, {"type": "extra", "key": args.key, "fields": fields})


def cmd_pgextra(args):
    fields = {}
    for name, path in (("rtt", args.rtt), ("commit1", args.commit1)):
        r = parse_pgbench(path) if path else None
        if r:
            fields[f"{name}_latency_ms"] = r.get("latency_avg_ms")
            fields[f"{name}_tps"] = r["tps"]
    if args.pg_test_fsync:
        r = parse_test_fsync(args.pg_test_fsync)
        if r:
            fields["fdatasync_ops_per_s"], fields["fdatasync_us"] = r
    for kv in args.field or []:
        k, _, v = kv.partition("=")
        fields[k] = convert(v)
    append(args.results, {"type": "extra", "key": "postgres", "fields": fields})


def cmd_redisextra(args):
    fields = {}
    for name, path in (("ping1", args.ping1), ("incr1", args.incr1)):
        r = parse_redis_csv_any(path) if path else None
        if r and r.get("rps"):
            fields[f"{name}_rps"] = float(r["rps"])
            for k in ("avg", "p50", "p99"):
                if r.get(f"{k}_latency_ms"):
                    fields[f"{name}_{k}_ms"] = float(r[f"{k}_latency_ms"])
    for kv in args.field or []:
        k, _, v = kv.partition("=")
        fields[k] = convert(v)
    append(args.results, {"type": "extra", "key": "redis", "fields": fields})


def cmd_finish(args):
    records = read(args.results)
    settings = {}
    for kv in args.setting or []:
        k, _, v = kv.partition("=")
        settings[k] = convert(v)
    extras = {}
    for rec in records:
        if rec["type"] == "extra":
            extras.setdefault(rec["key"], {}).update(rec["fields"])
    doc = {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "settings": settings,
        "scenarios": [r for r in records if r["type"] == "scenario"],
        "extras": extras,
    }
    for r in doc["scenarios"]:
        del r["type"]
        r["run"] = doc["generated_at"]
    doc["extras_run"] = {key: doc["generated_at"] for key in extras}
    doc["runs"] = [run_record(doc)]
    if args.previous:
        keep_previous(doc, args.previous)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)


# The groups of BENCH_ONLY and the scenario groups (and extras) each one writes.
SCENARIO_GROUPS = {"tally": ["http", "connections"], "compare": ["compare"], "big": ["counters"],
                   "postgres": ["postgres"], "redis": ["redis"], "history": ["history"], "events": ["events"]}
EXTRA_GROUP = {"counters_load": "big", "postgres": "postgres", "redis": "redis"}


def run_record(doc):
    """What the page says about one run: when, which code, which groups, its settings and machine."""
    st = doc.get("settings", {})
    return {
        "id": doc["generated_at"],
        "generated_at": doc["generated_at"],
        "groups": str(st.get("groups", "")).split(),
        "revision": st.get("tally_revision"),
        "raw_dir": st.get("raw_dir"),
        "bench_command": st.get("bench_command"),
        "quick": st.get("quick"),
        "settings": st,
        "machine": doc.get("machine", {}),
    }


def keep_previous(doc, path):
    """Adds the previous file's rows and extras of the groups this run did not measure, each with its run."""
    try:
        with open(path, encoding="utf-8") as f:
            prev = json.load(f)
    except (OSError, ValueError) as e:
        print(f"collect.py finish: previous results not read ({e}); the page will hold this run only", file=sys.stderr)
        return
    ran = doc["runs"][0]["groups"]
    measured = {g for name in ran for g in SCENARIO_GROUPS.get(name, [name])}
    runs = {r["id"]: r for r in prev.get("runs") or [run_record(prev)]}
    used = []
    for s in prev.get("scenarios", []):
        if s["group"] in measured:
            continue
        s = dict(s)
        s.setdefault("run", prev["generated_at"])
        doc["scenarios"].append(s)
        used.append(s["run"])
    for key, fields in prev.get("extras", {}).items():
        if EXTRA_GROUP.get(key, key) in ran or key in doc["extras"]:
            continue
        doc["extras"][key] = fields
        doc["extras_run"][key] = (prev.get("extras_run") or {}).get(key, prev["generated_at"])
        used.append(doc["extras_run"][key])
    for rid in dict.fromkeys(used):
        run = runs.get(rid) or {"id": rid, "generated_at": rid, "groups": [], "settings": {}, "machine": {}}
        doc["runs"].append(run)


def machine():
    def first(path, key, sep=":"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(sep, 1)[1].strip().strip('"')
        except OSError:
            pass
        return None

    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    mem_kb = first("/proc/meminfo", "MemTotal")
    load = loadavg()
    return {
        "nproc": run("nproc"),
        "memory_total_mib": round(int(mem_kb.split()[0]) / 1024) if mem_kb else None,
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "os": first("/etc/os-release", "PRETTY_NAME=", "="),
        "dotnet": run("dotnet", "--version"),
        "loadavg_at_end": load,
    }


def loadavg():
    """/proc/loadavg's 1, 5 and 15 minute figures when the row is recorded (right after its measurement)."""
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def relative(path):
    """Paths inside the repository (bench/results/...) relative to it."""
    if path and os.path.abspath(path).startswith(os.getcwd() + os.sep):
        return os.path.relpath(path)
    return path


def convert(v):
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def append(path, obj):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def read(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("add")
    a.add_argument("--results", required=True)
    a.add_argument("--group", required=True)
    a.add_argument("--id", required=True)
    a.add_argument("--title", required=True)
    a.add_argument("--subject", default="tally")
    a.add_argument("--status", default="ok", help="ok, not_available, skipped or failed")
    a.add_argument("--note")
    a.add_argument("--command")
    a.add_argument("--wrk")
    a.add_argument("--redis-csv")
    a.add_argument("--metrics-before")
    a.add_argument("--metrics-after")
    a.add_argument("--peak-rss-kb", type=int)
    a.add_argument("--peak-rss-scope")
    a.add_argument("--connections", type=int)
    a.add_argument("--threads", type=int)
    a.add_argument("--counters", type=int)
    a.add_argument("--durability")
    a.add_argument("--ops-per-request", type=int)
    a.add_argument("--pgbench")
    a.add_argument("--pgbench-log-prefix")
    a.add_argument("--redis-info-before", help="redis-cli info all, before the measurement")
    a.add_argument("--redis-info-after")
    a.add_argument("--procstate", help="bench/procstate.py output")
    a.add_argument("--events-metrics", action="store_true", help="record the live-event series of /metrics")
    a.add_argument("--events-reader", help="bench/sse_reader.py output for the measurement window")
    a.add_argument("--field", action="append", help="name=value, stored in the record as is")
    a.set_defaults(func=cmd_add)

    a = sub.add_parser("redisextra")
    a.add_argument("--results", required=True)
    a.add_argument("--ping1", help="redis-benchmark --csv, PING at one client")
    a.add_argument("--incr1", help="redis-benchmark --csv, INCR at one client")
    a.add_argument("--field", action="append")
    a.set_defaults(func=cmd_redisextra)

    a = sub.add_parser("pgextra")
    a.add_argument("--results", required=True)
    a.add_argument("--rtt")
    a.add_argument("--commit1")
    a.add_argument("--pg-test-fsync")
    a.add_argument("--field", action="append")
    a.set_defaults(func=cmd_pgextra)

    a = sub.add_parser("alias")
    a.add_argument("--results", required=True)
    a.add_argument("--source", required=True)
    a.add_argument("--group", required=True)
    a.add_argument("--id", required=True)
    a.add_argument("--title", required=True)
    a.add_argument("--counters", type=int)
    a.set_defaults(func=cmd_alias)

    a = sub.add_parser("extra")
    a.add_argument("--results", required=True)
    a.add_argument("--key", required=True)
    a.add_argument("--field", action="append")
    a.set_defaults(func=cmd_extra)

    a = sub.add_parser("finish")
    a.add_argument("--results", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--previous", help="the last benchmarks.json: its rows of the groups not run now are kept")
    a.add_argument("--setting", action="append")
    a.set_defaults(func=cmd_finish)

    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
