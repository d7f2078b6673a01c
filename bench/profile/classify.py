"""Breakdown of a `perf record -g` profile of Tally by component (docs/profiles.md).

usage: classify.py PERF.data...   (the JIT's symbols must still be in /tmp/perf-<pid>.map)
Each sample goes to one bucket: kernel samples by the kernel functions on their stack, the others by the first frame,
from the leaf, that belongs to a known component; `[runtime: ...]` marks samples whose leaf is in libcoreclr.
detail(path, bucket) lists the frames that put samples in one bucket.
"""
import sys, re, subprocess, collections
K = "kernel"
CATS = [
 ("JIT compiler", lambda s,d: 'libclrjit' in d),
 ("SQLite (native + Microsoft.Data.Sqlite)", lambda s,d: 'libe_sqlite3' in d or 'SQLitePCL' in s or 'Microsoft.Data.Sqlite' in s or 'Storage.Sqlite' in s),
 ("store: counter cache / log", lambda s,d: 'Tally.Server.Storage' in s),
 ("history", lambda s,d: 'Tally.Server.History' in s),
 ("events / alerts", lambda s,d: 'Tally.Server.Events' in s or 'Tally.Server.Alerts' in s),
 ("batch applier / counter rules", lambda s,d: 'BatchApplier' in s or 'CounterRules' in s or 'CounterChange' in s or 'Tally.Server.Idempotency' in s),
 ("commit pipeline (incl. completing waiters)", lambda s,d: 'Tally.Server.Pipeline' in s),
 ("metrics", lambda s,d: 'Observability' in s or 'System.Diagnostics.Metrics' in s or 'HostingMetrics' in s or 'Diagnostics.DiagnosticListener' in s),
 ("logging", lambda s,d: 'Microsoft.Extensions.Logging' in s or 'RequestLogging' in s),
 ("rate limiting", lambda s,d: 'RateLimit' in s),
 ("request parsing (JSON read, headers, body)", lambda s,d: 'BatchParsing' in s or 'RequestParsing' in s or 'RequestBody' in s or 'JsonDocument' in s or 'Utf8JsonReader' in s or 'BatchRequest' in s),
 ("response writing (JSON)", lambda s,d: 'ResponseRenderer' in s or 'OutcomeResult' in s or 'System.Text.Json' in s or 'Encodings.Web' in s),
 ("authentication", lambda s,d: 'Authentication' in s or 'Tally.Server.Auth' in s or 'Claims' in s),
 ("authorization", lambda s,d: 'Authorization' in s),
 ("health checks", lambda s,d: 'HealthCheck' in s),
 ("routing / endpoint binding", lambda s,d: 'Routing' in s or 'Matcher' in s or 'StrictQuery' in s or 'RequestDelegateFactory' in s or 'EndpointMiddleware' in s),
 ("other middleware (exceptions, status pages, static files, HEAD)", lambda s,d: 'ExceptionHandler' in s or 'StatusCodePages' in s or 'StaticFile' in s or 'DefaultFiles' in s or 'Cors' in s or 'HeadRequests' in s or 'HeadAsGet' in s or 'Program' in s),
 ("endpoint handlers (Tally)", lambda s,d: 'Tally.Server' in s),
 ("Kestrel HTTP/1.1 (parse, headers, write)", lambda s,d: 'Kestrel.Core' in s or 'Microsoft.AspNetCore.Http' in s or 'Microsoft.AspNetCore.Hosting' in s or 'System.IO.Pipelines' in s),
 ("sockets (managed)", lambda s,d: 'Transport.Sockets' in s or 'System.Net.Sockets' in s),
 ("thread pool / async", lambda s,d: 'Threading' in s or 'CompilerServices' in s),
]
def kcat(frames):
    syms = ' '.join(s for s,d in frames if 'kernel' in d)
    if 'sched_yield' in syms: return "kernel: sched_yield (thread pool spinning)"
    if 'futex' in syms: return "kernel: futex (thread wake/wait)"
    if 'fsync' in syms or 'jbd2' in syms or 'ext4' in syms or 'blk_' in syms or 'fdatasync' in syms or 'pwrite' in syms or 'vfs_write' in syms: return "kernel: file write / fsync"
    if 'epoll' in syms: return "kernel: epoll"
    if re.search(r'tcp|sock|inet|skb|ip_|__x64_sys_sendto|recvfrom|sendmsg|recvmsg|net_rx|loopback|__dev_queue', syms): return "kernel: TCP send/recv"
    return "kernel: other (scheduler, page faults, timers)"
def main(path):
    out = subprocess.run(['perf','script','-i',path,'-F','comm,tid,ip,sym,dso'], capture_output=True, text=True).stdout
    counts = collections.Counter(); dsoc = collections.Counter(); total = 0
    for block in out.split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        if not lines: continue
        frames = []
        for l in lines[1:]:
            m = re.match(r'\s*[0-9a-f]+ (.*) \((.*)\)$', l)
            if m: frames.append((m.group(1), m.group(2)))
        if not frames: continue
        total += 1
        leafd = frames[0][1]
        dso = 'kernel' if 'kernel' in leafd else ('JIT-compiled .NET' if 'perf-' in leafd or 'dll' in leafd else leafd.split('/')[-1])
        dsoc[dso] += 1
        if any('libclrjit' in d for s,d in frames):
            counts["JIT compiler"] += 1; continue
        if 'kernel' in leafd:
            counts[kcat(frames)] += 1; continue
        cat = None
        for s,d in frames:
            for name, f in CATS:
                if f(s,d): cat = name; break
            if cat: break
        if cat is None: cat = 'unattributed native (' + dso + ')'
        if 'libcoreclr' in leafd: cat = cat + ' [runtime: GC/alloc/casts]'
        counts[cat] += 1
    return total, counts, dsoc

def detail(path, catname, n=15):
    out = subprocess.run(['perf','script','-i',path,'-F','comm,tid,ip,sym,dso'], capture_output=True, text=True).stdout
    c = collections.Counter(); total=0
    for block in out.split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        frames = []
        for l in lines[1:]:
            m = re.match(r'\s*[0-9a-f]+ (.*) \((.*)\)$', l)
            if m: frames.append((m.group(1), m.group(2)))
        if not frames: continue
        total+=1
        if any('libclrjit' in d for s,d in frames) or 'kernel' in frames[0][1]: continue
        for i,(s,d) in enumerate(frames):
            hit = [name for name,f in CATS if f(s,d)]
            if hit:
                if hit[0] == catname:
                    short = lambda x: re.sub(r'\[[A-Za-z.]+\] ','',re.sub(r'\(.*','',x))[:150]
                    c[short(s) + '  <leaf ' + short(frames[0][0])[-60:] + '>'] += 1
                break
    for k,v in c.most_common(n): print(f"{100*v/total:5.2f}% {k}")

if __name__ == '__main__':
    for p in sys.argv[1:]:
        total, counts, dsoc = main(p)
        print(f"== {p}: {total} samples")
        for k,v in counts.most_common(): print(f"{100*v/total:6.1f}%  {k}")
        print("  by dso:", ', '.join(f"{k} {100*v/total:.1f}%" for k,v in dsoc.most_common(6)))
