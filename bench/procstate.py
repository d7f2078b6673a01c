#!/usr/bin/env python3
"""Where a server process spends the wall clock, from /proc (stdlib only; for bench/run.sh).

  procstate.py --out FILE --sample PID [--group NAME=PID[,PID...] ...] [--interval-ms 5] [--max-seconds 600]

Until SIGTERM or SIGINT (or --max-seconds) it samples the state of PID's main thread (R running or
waiting for a CPU, D uninterruptible sleep, which for redis-server with
appendfsync always is mostly its fsync of the AOF, S sleeping: idle in epoll)
and its kernel wait channel. For each group it also sums the threads'
/proc/<pid>/task/<tid>/schedstat between start and end: time on a CPU and time
runnable but waiting for one (run-queue wait). Then it writes one JSON object
to FILE. Costs about 1% of a core at the default 5 ms.
"""

import argparse
import json
import os
import signal
import time
from collections import Counter


def read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def state(pid):
    stat = read(f"/proc/{pid}/task/{pid}/stat")
    if stat is None:
        return None, None
    letter = stat.rsplit(")", 1)[1].split()[0]
    return letter, read(f"/proc/{pid}/task/{pid}/wchan") or "?"


def schedstat(pids):
    """{tid: (on-CPU ns, run-queue wait ns)} over the threads of pids."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            s = read(f"/proc/{pid}/task/{tid}/schedstat")
            if s:
                run, wait, _ = s.split()
                out[tid] = (int(run), int(wait))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--sample", type=int, required=True, help="the process whose main thread is sampled")
    p.add_argument("--group", action="append", default=[], help="NAME=PID[,PID...]")
    p.add_argument("--interval-ms", type=float, default=5)
    p.add_argument("--max-seconds", type=float, default=600, help="stop by itself after this long")
    args = p.parse_args()

    groups = {}
    for g in args.group:
        name, _, pids = g.partition("=")
        groups[name] = [int(x) for x in pids.split(",") if x]
    start = {name: schedstat(pids) for name, pids in groups.items()}
    t0 = time.monotonic()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    states, wchans = Counter(), Counter()
    while not stop and time.monotonic() - t0 < args.max_seconds:
        letter, wchan = state(args.sample)
        if letter is None:
            break
        states[letter] += 1
        if letter != "R":
            wchans[wchan] += 1
        time.sleep(args.interval_ms / 1000)

    window = time.monotonic() - t0
    result = {"window_s": window, "samples": sum(states.values()), "states": dict(states),
              "wchan": dict(wchans.most_common(6)), "groups": {}}
    for name, pids in groups.items():
        end = schedstat(pids)
        run = wait = 0
        for tid, (r1, w1) in end.items():
            r0, w0 = start[name].get(tid, (0, 0))
            run += r1 - r0
            wait += w1 - w0
        result["groups"][name] = {"on_cpu_s": run / 1e9, "runqueue_wait_s": wait / 1e9}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
