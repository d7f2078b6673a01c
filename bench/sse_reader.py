#!/usr/bin/env python3
"""Holds many Server-Sent Event streams open on Tally and counts what arrives (stdlib only; for bench/run.sh).

  sse_reader.py --url http://127.0.0.1:PORT/counters/hot/events --streams 1000 --out FILE
                [--ready FILE] [--open-batch 100] [--max-seconds 900] [--no-reconnect]
                [--read-every-ms 20]

Opens --streams HTTP/1.1 connections to the URL (GET, `Accept: text/event-stream`,
`Connection: close`) and reads them all in one thread with epoll. Once every
stream is open it reads in rounds, at most one every --read-every-ms: a round
takes everything that arrived on every stream since the last (0: read each
stream as soon as it has data). The reader shares the machine's cores with
Tally, and waking it for each stream's write costs both sides CPU the benchmark
would otherwise count against Tally; a round every 20 ms, a fifth of Tally's
default Events:CoalesceMs, leaves what each stream receives unchanged. Per stream it
counts the events (`event: counter` lines; Kestrel sends each event as one chunk,
so the chunk framing never splits one, and a line cut between two reads is
counted once) and heartbeats, and keeps the last event id. The number in an id
(`<instance>-<n>`) is the instance's event sequence, so the ids show how far
each stream has got and how many events it skipped (with Tally's conflation,
`Events:CoalesceMs`, a stream gets the latest state at most every CoalesceMs
and skips the states in between by design). A stream that ends (Tally dropped it
as too slow, or it stopped) is opened again with `Last-Event-ID`, as a browser's
EventSource does, unless --no-reconnect.

Signals: SIGUSR1 marks the start of the measurement window, SIGUSR2 its end:
the figures are written to --out at once (and again on exit). SIGTERM or SIGINT
closes every stream, writes --out and exits. --ready is written once every stream
has its answer (200, or a refusal such as 429 too_many_streams).
"""

import argparse
import errno
import json
import os
import resource
import select
import signal
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit

EVENT = b"event: counter\n"
HEARTBEAT = b": heartbeat\n"
ID = b"\nid: "


class Stream:
    __slots__ = ("n", "sock", "state", "head", "events", "heartbeats", "tail", "last_id", "first_seq", "last_seq",
                 "ends", "opens", "status")

    def __init__(self, n):
        self.n = n
        self.sock = None
        self.state = "new"  # new, connecting, headers, body, refused, closed
        self.head = b""
        self.events = 0
        self.heartbeats = 0
        self.tail = b""
        self.last_id = None
        self.first_seq = None
        self.last_seq = None
        self.ends = 0
        self.opens = 0
        self.status = None


class Reader:
    def __init__(self, args):
        u = urlsplit(args.url)
        self.addr = (u.hostname, u.port or 80)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.host = u.netloc
        self.args = args
        self.ep = select.epoll()
        self.by_fd = {}
        self.streams = [Stream(i) for i in range(args.streams)]
        self.pending = list(reversed(self.streams))  # to open, popped from the end
        self.opening = 0
        self.answered = 0
        self.refused = {}
        self.refusal_sample = None
        self.connect_errors = 0
        self.t0 = time.monotonic()
        self.ready_at = None
        self.stopping = False
        self.flags = set()
        self.window_start = None
        self.window_end = None

    # ------------------------------------------------------------ connections

    def request(self, s):
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}", "Accept: text/event-stream",
                 "Cache-Control: no-cache", "Connection: close"]
        if s.last_id:
            lines.append("Last-Event-ID: " + s.last_id.decode("ascii", "replace"))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def open(self, s):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.connect_errors += 1
            self.pending.insert(0, s)
            return
        s.sock = sock
        s.state = "connecting"
        s.head = b""
        s.opens += 1
        self.opening += 1
        self.by_fd[sock.fileno()] = s
        self.ep.register(sock.fileno(), select.EPOLLOUT)

    def fill(self):
        while self.pending and self.opening < self.args.open_batch and not self.stopping:
            self.open(self.pending.pop())

    def forget(self, s):
        fd = s.sock.fileno()
        try:
            self.ep.unregister(fd)
        except (OSError, ValueError):
            pass
        self.by_fd.pop(fd, None)
        s.sock.close()
        s.sock = None

    def drop(self, s, reopen):
        """The stream's connection is gone: count it, and open it again."""
        if s.sock is not None:
            self.forget(s)
        if s.state in ("connecting", "headers"):
            self.opening -= 1
        if s.state == "body" and not self.stopping:
            s.ends += 1
        s.state = "closed"
        s.tail = b""
        if reopen and self.args.reconnect and not self.stopping:
            self.pending.insert(0, s)

    # ------------------------------------------------------------ reading

    def on_ready(self, s, mask):
        if s.state == "connecting":
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_errors += 1
                self.drop(s, reopen=True)
                return
            s.sock.send(self.request(s))  # ~150 bytes into an empty socket buffer: sent whole
            s.state = "headers"
            self.ep.modify(s.sock.fileno(), select.EPOLLIN)
            return
        try:
            data = s.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if s.state == "headers":
                self.connect_errors += 1  # closed before it answered
            self.drop(s, reopen=True)
            return
        if s.state == "headers":
            s.head += data
            end = s.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = s.head.split(b" ", 2)[1].decode("ascii", "replace") if s.head.startswith(b"HTTP/") else "?"
            body, s.head = s.head[end + 4:], b""
            self.opening -= 1
            if s.status is None:
                self.answered += 1
            s.status = status
            if status != "200":
                self.refused[status] = self.refused.get(status, 0) + 1
                if self.refusal_sample is None:
                    self.refusal_sample = body[:300].decode("utf-8", "replace")
                s.state = "refused"
                self.forget(s)
                return
            s.state = "body"
            if not body:
                return
            data = body
        self.count(s, data)

    def count(self, s, data):
        s.events += data.count(EVENT)
        s.heartbeats += data.count(HEARTBEAT)
        if s.tail:
            # A line cut between two reads: only matches that span the cut (the tail is shorter than the pattern).
            joint = s.tail + data[:len(EVENT) - 1]
            s.events += joint.count(EVENT)
        s.tail = data[-(len(EVENT) - 1):]
        i = data.rfind(ID)
        if i >= 0:
            j = data.find(b"\n", i + len(ID))
            if j >= 0:
                s.last_id = data[i + len(ID):j]
                parts = s.last_id.split(b"-")
                if len(parts) >= 2 and parts[1].isdigit():
                    s.last_seq = int(parts[1])
                    if s.first_seq is None:
                        s.first_seq = s.last_seq

    # ------------------------------------------------------------ figures

    def snapshot(self):
        return {"t": time.monotonic(), "events": [s.events for s in self.streams],
                "seq": [s.last_seq for s in self.streams], "ends": sum(s.ends for s in self.streams),
                "open": sum(1 for s in self.streams if s.state == "body")}

    def figures(self):
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out = {
            "url": self.args.url,
            "streams": len(self.streams),
            "answered": self.answered,
            "opened": sum(1 for s in self.streams if s.status == "200"),
            "refused": self.refused,
            "refusal_sample": self.refusal_sample,
            "open_seconds": None if self.ready_at is None else round(self.ready_at - self.t0, 3),
            "open_now": sum(1 for s in self.streams if s.state == "body"),
            "events_total": sum(s.events for s in self.streams),
            "heartbeats_total": sum(s.heartbeats for s in self.streams),
            "stream_ends": sum(s.ends for s in self.streams),
            "reconnects": sum(max(0, s.opens - 1) for s in self.streams),
            "connect_errors": self.connect_errors,
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "reconnect": self.args.reconnect,
            "read_every_ms": self.args.read_every_ms,
        }
        # Per stream over its life: events counted against the span of ids it saw (first to last, inclusive);
        # fewer counted than the span means events it skipped (the initial state may cover one).
        spans = [(s.last_seq - s.first_seq + 1, s.events) for s in self.streams if s.first_seq is not None]
        if spans:
            out["skipped_total"] = sum(max(0, span - n) for span, n in spans)
            out["streams_skipping"] = sum(1 for span, n in spans if span - n > 1)
        a, b = self.window_start, self.window_end
        if a is not None and b is not None:
            got = [y - x for x, y in zip(a["events"], b["events"])]
            seqs = [q for q in b["seq"] if q is not None]
            newest = max(seqs) if seqs else None
            out["window"] = {
                "seconds": round(b["t"] - a["t"], 3),
                "received_total": sum(got),
                "per_stream_min": min(got),
                "per_stream_median": statistics.median(got),
                "per_stream_max": max(got),
                "streams_with_none": sum(1 for g in got if g == 0),
                "stream_ends": b["ends"] - a["ends"],
                "open_at_start": a["open"],
                "open_at_end": b["open"],
                # How far the slowest stream's last id was behind the newest any stream had, at the window's end.
                "lag_max_events": (newest - min(seqs)) if seqs else None,
                "sequence_advance": (newest - max(q for q in a["seq"] if q is not None))
                if newest is not None and any(q is not None for q in a["seq"]) else None,
            }
        return out

    def write(self):
        tmp = self.args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.figures(), f, indent=1)
            f.write("\n")
        os.replace(tmp, self.args.out)

    # ------------------------------------------------------------ loop

    def run(self):
        deadline = self.t0 + self.args.max_seconds
        every = self.args.read_every_ms / 1000
        next_round = 0.0
        while not self.stopping and time.monotonic() < deadline:
            self.fill()
            timeout = 0.2
            if every and self.ready_at is not None:
                # Rounds: wait for the next one asleep (not in epoll), so the streams' writes do not wake this
                # process one by one; then take all that is ready at once.
                pause = next_round - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                next_round = time.monotonic() + every
                timeout = 0
            ready = self.ep.poll(timeout, len(self.streams) + 16)
            for fd, mask in ready:
                s = self.by_fd.get(fd)
                if s is not None:
                    self.on_ready(s, mask)
            if self.ready_at is None and self.answered == len(self.streams):
                self.ready_at = time.monotonic()
                if self.args.ready:
                    tmp = self.args.ready + ".tmp"
                    with open(tmp, "w", encoding="utf-8") as f:
                        json.dump(self.figures(), f)
                    os.replace(tmp, self.args.ready)
            if self.flags:
                if "start" in self.flags:
                    self.window_start = self.snapshot()
                if "end" in self.flags:
                    self.window_end = self.snapshot()
                    self.write()
                self.flags.clear()
        self.stopping = True
        for s in self.streams:
            if s.sock is not None:
                self.drop(s, reopen=False)
        self.write()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--ready")
    p.add_argument("--open-batch", type=int, default=100, help="connections being opened at once")
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--no-reconnect", dest="reconnect", action="store_false")
    p.add_argument("--read-every-ms", type=float, default=20,
                   help="once all streams are open, read them in rounds at most this often (0: as data comes)")
    args = p.parse_args()
    reader = Reader(args)

    def stop(*_):
        reader.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, lambda *_: reader.flags.add("start"))
    signal.signal(signal.SIGUSR2, lambda *_: reader.flags.add("end"))
    reader.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
