#!/usr/bin/env python3
"""undertow trace (ftrace backend) against an openat/close storm, beside `cat trace_pipe`.

Measures, per tracer: events captured / calls made, the workload's slowdown against an
untraced run, the tracer's CPU time, and time from launch to the first event.
The storm comes from bench/gen/openat_storm.c (built with gcc into a temp dir).

    python3 bench/ftrace_read.py [--calls 1000000] [--rate 20000 --seconds 5]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TRACING = "/sys/kernel/tracing"

COUNTER = r"""
import sys, time, json, resource
sys.path.insert(0, %(src)r)
import undertow
from undertow.events import Event
t0 = time.monotonic()
t = undertow.trace('e syscalls/sys_enter_openat f:comm=="openat_storm"')
n = 0; first = None
with t:
    print("ready", flush=True)
    stop = time.monotonic() + %(secs)f
    empty = 0
    while time.monotonic() < stop or empty < 3:
        recs = t._session.poll(0.1)
        empty = 0 if recs else empty + 1
        for rec in recs:
            if isinstance(rec, Event):
                n += 1
                if first is None: first = time.monotonic() - t0
    lost = t.stats.total_lost
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"events": n, "lost": lost, "cpu": ru.ru_utime + ru.ru_stime, "first": first}))
"""


def build(tmp):
    exe = os.path.join(tmp, "openat_storm")
    subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "gen", "openat_storm.c")], check=True)
    return exe


def storm(exe, calls, rate):
    out = subprocess.run([exe, str(calls)] + ([str(rate)] if rate else []), capture_output=True, text=True, check=True)
    return float(out.stdout)


def run_undertow(exe, calls, rate, secs):
    import json
    p = subprocess.Popen([sys.executable, "-c", COUNTER % {"src": SRC, "secs": secs}],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    elapsed = storm(exe, calls, rate)
    res = json.loads(p.stdout.readline())
    p.wait()
    return elapsed, res


def run_cat(exe, calls, rate, secs):
    inst = os.path.join(TRACING, "instances", f"bench_cat_{os.getpid()}")
    os.mkdir(inst)
    try:
        with open(os.path.join(inst, "buffer_size_kb"), "w") as f:
            f.write("4096")
        with open(os.path.join(inst, "events/syscalls/sys_enter_openat/filter"), "w") as f:
            f.write('comm=="openat_storm"')
        with open(os.path.join(inst, "events/syscalls/sys_enter_openat/enable"), "w") as f:
            f.write("1")
        out = tempfile.TemporaryFile()
        p = subprocess.Popen(["cat", os.path.join(inst, "trace_pipe")], stdout=out)
        time.sleep(0.3)
        elapsed = storm(exe, calls, rate)
        time.sleep(1.0)
        p.terminate()
        p.wait()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        n = sum(1 for line in out if b"openat" in line)
        with open(os.path.join(inst, "events/syscalls/sys_enter_openat/enable"), "w") as f:
            f.write("0")
        return elapsed, {"events": n, "lost": None, "cpu": None}
    finally:
        for _ in range(20):
            try:
                os.rmdir(inst)
                break
            except OSError:
                time.sleep(0.1)


def run_trace_cmd(exe, calls, rate, secs):
    """trace-cmd record into a file (splice, no per-event work), counted afterwards."""
    import shutil
    import signal

    if shutil.which("trace-cmd") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "trace.dat")
        t0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.Popen(["trace-cmd", "record", "-B", f"bench_tc_{os.getpid()}", "-b", "65536",
                              "-e", "syscalls:sys_enter_openat", "-f", 'comm=="openat_storm"', "-o", dat],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        elapsed = storm(exe, calls, rate)
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        p.wait()
        t1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rep = subprocess.run(["trace-cmd", "report", "-i", dat], capture_output=True, text=True)
        n = sum(1 for line in rep.stdout.splitlines() if "openat" in line)
        cpu = (t1.ru_utime + t1.ru_stime) - (t0.ru_utime + t0.ru_stime)
        # trace-cmd leaves its instance behind when it fails: remove what it made
        inst = os.path.join(TRACING, "instances", f"bench_tc_{os.getpid()}")
        if os.path.isdir(inst):
            try:
                with open(os.path.join(inst, "events", "enable"), "w") as f:
                    f.write("0")
                os.rmdir(inst)
            except OSError:
                pass
        if p.returncode not in (0, None) and n == 0:
            return None
        return elapsed, {"events": n, "lost": None, "cpu": cpu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        secs_est = (a.calls / a.rate if a.rate else 3.0) + 3.0
        base = statistics.median(storm(exe, a.calls, a.rate) for _ in range(a.runs))
        print(f"workload: {a.calls} openat/close calls" + (f" at {a.rate:.0f}/s" if a.rate else " (storm)")
              + f", untraced {base:.3f} s")
        for name, fn in (("undertow trace", run_undertow), ("cat trace_pipe", run_cat),
                         ("trace-cmd record", run_trace_cmd)):
            rows = [fn(exe, a.calls, a.rate, secs_est) for _ in range(a.runs)]
            if any(r is None for r in rows):
                print(f"  {name:15s} not installed or cannot run here")
                continue
            el = statistics.median(r[0] for r in rows)
            cap = statistics.median(r[1]["events"] / a.calls for r in rows)
            cpu = [r[1]["cpu"] for r in rows if r[1]["cpu"] is not None]
            extra = f", tracer CPU {statistics.median(cpu):.2f} s" if cpu else ""
            lost = [r[1]["lost"] for r in rows if r[1]["lost"] is not None]
            if lost:
                extra += f", lost reported {statistics.median(lost):.0f}"
            print(f"  {name:15s} captured {cap * 100:6.2f}%  slowdown {el / base:5.2f}x{extra}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("needs root")
    main()
