#!/usr/bin/env python3
"""Collects benchmark results for bench/run.sh (stdlib only).

Each scenario is appended as one JSON line to a results file while the run goes
on; `finish` then adds the machine description and writes benchmarks.json,
which bench/report.py turns into Markdown.

  collect.py add     --results F --group G --id ID --title T [--wrk FILE | --redis-csv FILE] ...
  collect.py alias   --results F --source G/ID --group G --id ID --title T [--counters N]
  collect.py extra   --results F --key K [--field name=value ...]
  collect.py finish  --results F --out benchmarks.json [--setting name=value ...]
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
        "raw": relative(args.wrk or args.redis_csv),
    }
    if args.status == "ok":
        if args.wrk:
            w = parse_wrk(args.wrk)
            if w is None or w["requests"] == 0:
                rec["status"] = "failed"
                rec["note"] = "; ".join(filter(None, [rec["note"], "wrk produced no result"]))
            else:
                secs = w["duration_us"] / 1e6
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
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)


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
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = None
    return {
        "nproc": run("nproc"),
        "memory_total_mib": round(int(mem_kb.split()[0]) / 1024) if mem_kb else None,
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "os": first("/etc/os-release", "PRETTY_NAME=", "="),
        "dotnet": run("dotnet", "--version"),
        "loadavg_at_end": load,
    }


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
    a.set_defaults(func=cmd_add)

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
    a.add_argument("--setting", action="append")
    a.set_defaults(func=cmd_finish)

    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
