#!/usr/bin/env python3
"""`undertow trace` (ftrace backend) against an openat/close storm, beside bpftrace 0.17,
`cat trace_pipe` and trace-cmd, one after the other on the same workload.

Per tracer: events captured / calls made, lost events it reported, the workload's
slowdown against an untraced run, and the tracer's CPU time while the storm runs
(from the storm's start until the tracer's output stops growing, summed over its
threads from /proc/PID/task/*/schedstat) as a share of one core; plus its CPU for
the whole run, start-up included.

Tracers:
  undertow API    `undertow.trace(...)` in a Python process that only counts Events
                  (the reader's own cost)
  undertow trace  the command, text output to a file
  bpftrace        `tracepoint:syscalls:sys_enter_openat /comm == "openat_storm"/` with
                  a printf of the same fields, to a file
  cat trace_pipe  text trace_pipe of its own instance, to a file
  trace-cmd       `trace-cmd record` (splice to a file; reported when it can run)
  surftrace       `surftrace 'e syscalls/sys_enter_openat f:comm=="openat_storm"'` (text
                  trace_pipe of its instance, to a file), when `surftrace` is on PATH or
                  $SURFTRACE names it (e.g. `pip install surftrace` into a venv)

Readiness, not sleeps: each tracer is warmed up with single-call runs of the generator
until it has shown one, and the lines shown by then are subtracted.

    python3 bench/ftrace_read.py [--calls 1000000] [--rate 20000] [--runs 3] [--only NAME]
"""

import argparse
import glob
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TRACING = "/sys/kernel/tracing"
LINE = 'e syscalls/sys_enter_openat f:comm=="openat_storm"'
BT = ('tracepoint:syscalls:sys_enter_openat /comm == "openat_storm"/ '
      '{ printf("openat %d %d %d 0x%lx %d %d\\n", pid, tid, args->dfd, args->filename, args->flags, args->mode); }')

COUNTER = r"""
import sys, time
sys.path.insert(0, %(src)r)
import undertow
from undertow.events import Event
t = undertow.trace(%(line)r, backend="ftrace")
n = 0
with t:
    try:
        while True:
            got = 0
            for rec in t._session.poll(0.1):
                if isinstance(rec, Event):
                    got += 1
            if got:
                n += got
                sys.stdout.write("%%d\n" %% n)
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    sys.stdout.write("lost %%d\n" %% t.stats.total_lost)
"""



class PeakRSS:
    """The peak resident set of a running process, in MiB: ``VmHWM`` of /proc/PID/status,
    polled every 20 ms until it ends (``ru_maxrss`` from wait4 would include the memory of
    this bench process, which the child had before its exec)."""

    def __init__(self, pid):
        import threading

        self.pid, self.peak = pid, 0.0
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                return
            time.sleep(0.02)

    def result(self):
        self._t.join(timeout=1)
        return self.peak

def build(tmp):
    exe = os.path.join(tmp, "openat_storm")
    subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "gen", "openat_storm.c")], check=True)
    return exe


def storm(exe, calls, rate=0):
    out = subprocess.run([exe, str(calls)] + ([str(rate)] if rate else []), capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def cpu_ns(pid):
    """CPU time of every thread of ``pid`` so far (schedstat: ns on CPU)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class Peer:
    name = ""

    def argv(self, out_path):
        raise NotImplementedError

    def available(self):
        return True

    def count(self, text):
        """Events shown in the output so far."""
        return sum(1 for line in text.splitlines() if "openat" in line)

    def lost(self, text, err):
        return None

    def cleanup(self):
        pass


class UndertowApi(Peer):
    name = "undertow API"

    def argv(self, out_path):
        return [sys.executable, "-c", COUNTER % {"src": SRC, "line": LINE}]

    def count(self, text):
        nums = re.findall(r"^(\d+)$", text, re.M)
        return int(nums[-1]) if nums else 0

    def lost(self, text, err):
        m = re.search(r"^lost (\d+)", text, re.M)
        return int(m.group(1)) if m else None


class UndertowTrace(Peer):
    name = "undertow trace"

    def argv(self, out_path):
        # the ftrace reader is what this bench measures (auto would take BPF for the filename string)
        return [sys.executable, "-m", "undertow", "trace", "--backend", "ftrace", LINE]

    def lost(self, text, err):
        m = re.search(r"# \d+ events, (\d+) lost", err)
        return int(m.group(1)) if m else None


class Bpftrace(Peer):
    name = "bpftrace"

    def available(self):
        return shutil.which("bpftrace") is not None

    def argv(self, out_path):
        return [shutil.which("bpftrace"), "-e", BT]

    def count(self, text):
        return sum(1 for line in text.splitlines() if line.startswith("openat "))

    def lost(self, text, err):
        return sum(int(x) for x in re.findall(r"Lost (\d+) events", text + err))


class CatPipe(Peer):
    name = "cat trace_pipe"

    def __init__(self):
        self.inst = os.path.join(TRACING, "instances", f"bench_cat_{os.getpid()}")

    def argv(self, out_path):
        os.mkdir(self.inst)
        for rel, val in (("buffer_size_kb", "16384"), ("events/syscalls/sys_enter_openat/filter", 'comm=="openat_storm"'),
                         ("events/syscalls/sys_enter_openat/enable", "1")):
            with open(os.path.join(self.inst, rel), "w") as f:
                f.write(val)
        return ["cat", os.path.join(self.inst, "trace_pipe")]

    def cleanup(self):
        if not os.path.isdir(self.inst):
            return
        try:
            with open(os.path.join(self.inst, "events/syscalls/sys_enter_openat/enable"), "w") as f:
                f.write("0")
        except OSError:
            pass
        for _ in range(50):
            try:
                os.rmdir(self.inst)
                return
            except OSError:
                time.sleep(0.1)


class Surftrace(Peer):
    """surftrace 0.7 (Python, ftrace text): its instance ``surftrace`` is left behind when
    it is stopped by a signal, so it is removed here (events off, then rmdir)."""

    name = "surftrace"

    def exe(self):
        return os.environ.get("SURFTRACE") or shutil.which("surftrace")

    def available(self):
        return bool(self.exe())

    def argv(self, out_path):
        return [self.exe(), 'e syscalls/sys_enter_openat f:comm=="openat_storm"']

    def count(self, text):
        return text.count("sys_openat(")

    def cleanup(self):
        inst = os.path.join(TRACING, "instances", "surftrace")
        if not os.path.isdir(inst):
            return
        for rel in ("events/enable", "tracing_on"):
            try:
                with open(os.path.join(inst, rel), "w") as f:
                    f.write("0")
            except OSError:
                pass
        for _ in range(50):
            try:
                os.rmdir(inst)
                return
            except OSError:
                time.sleep(0.1)


class TraceCmd(Peer):
    """trace-cmd record into a file (splice, no per-event work), counted afterwards.

    On the development machine `trace-cmd record` stops with "Can't enable ftrace:
    Operation not permitted" and leaves its instance behind (removed here)."""

    name = "trace-cmd"

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ut_tc_")
        self.dat = os.path.join(self.tmp, "trace.dat")
        self.inst_name = f"bench_tc_{os.getpid()}"

    def available(self):
        return shutil.which("trace-cmd") is not None

    def argv(self, out_path):
        return ["trace-cmd", "record", "-B", self.inst_name, "-b", "16384", "-e", "syscalls:sys_enter_openat",
                "-f", 'comm=="openat_storm"', "-o", self.dat]

    def final_count(self):
        if not os.path.exists(self.dat):
            return 0
        rep = subprocess.run(["trace-cmd", "report", "-i", self.dat], capture_output=True, text=True)
        return sum(1 for line in rep.stdout.splitlines() if "openat" in line)

    def cleanup(self):
        inst = os.path.join(TRACING, "instances", self.inst_name)
        if os.path.isdir(inst):
            try:
                with open(os.path.join(inst, "events", "enable"), "w") as f:
                    f.write("0")
                os.rmdir(inst)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_settled(pid, out_path, quiet=0.5, limit=180.0):
    """Wait until the tracer is idle: its output has not grown and it has used under 10%
    of a core for ``quiet`` s (a reader decoding a large batch writes nothing for a
    while). Returns the time it last grew or worked."""
    last_size, last_cpu, last_change = -1, cpu_ns(pid), time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.05)
        size, cpu, now = os.path.getsize(out_path), cpu_ns(pid), time.monotonic()
        if size != last_size or cpu - last_cpu > 0.1 * 0.05e9:
            last_change = now
        last_size, last_cpu = size, cpu
        if now - last_change >= quiet:
            break
    return last_change


def run_peer(peer, exe, calls, rate, tmp):
    """One traced run: ``(slowdown numerator, events, lost, storm CPU s, storm wall s, total CPU s)``."""
    out_path = os.path.join(tmp, "out.txt")
    err_path = os.path.join(tmp, "err.txt")
    try:
        with open(out_path, "w") as out, open(err_path, "w") as err:
            p = subprocess.Popen(peer.argv(out_path), stdout=out, stderr=err, env=dict(os.environ, PYTHONPATH=SRC))
        rss = PeakRSS(p.pid)
        try:
            # readiness: single-call runs until the tracer shows one (at most 90 s)
            deadline = time.monotonic() + 90
            seen = 0
            while time.monotonic() < deadline and p.poll() is None:
                storm(exe, 1)
                time.sleep(0.1)
                if isinstance(peer, TraceCmd):
                    time.sleep(1.5)  # trace-cmd shows nothing until it stops: give it a fixed start
                    break
                seen = peer.count(read(out_path))
                if seen:
                    break
            if p.poll() is not None:
                return None
            wait_settled(p.pid, out_path)
            before = peer.count(read(out_path))
            c0, t0 = cpu_ns(p.pid), time.monotonic()
            took = storm(exe, calls, rate)
            t_end = max(wait_settled(p.pid, out_path), t0 + took)
            c1 = cpu_ns(p.pid)
            p.send_signal(signal.SIGINT)
            _pid, _st, ru = os.wait4(p.pid, 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        text, errs = read(out_path), read(err_path)
        if isinstance(peer, TraceCmd):
            got, before = peer.final_count(), 0
            if got == 0:
                return None
        else:
            got = peer.count(text)
        return took, got - before, peer.lost(text, errs), (c1 - c0) / 1e9, t_end - t0, ru.ru_utime + ru.ru_stime, \
            rss.result()
    finally:
        peer.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", action="append", help="run only this tracer (repeatable)")
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    tmp = tempfile.mkdtemp(prefix="ut_bench_")
    try:
        exe = build(tmp)
        # the generator's own loader opens files too (ld.so.cache, libc): count them once
        extra = 0
        base = statistics.median(storm(exe, a.calls, a.rate) for _ in range(a.runs))
        print(f"workload: {a.calls} openat/close calls" + (f" at {a.rate:.0f}/s" if a.rate else " (storm)")
              + f", untraced {base:.3f} s")
        for cls in (UndertowApi, UndertowTrace, Bpftrace, CatPipe, Surftrace, TraceCmd):
            if a.only and cls.name not in a.only:
                continue
            if not cls().available():
                print(f"  {cls.name:15s} not installed")
                continue
            rows = [run_peer(cls(), exe, a.calls, a.rate, tmp) for _ in range(a.runs)]
            if any(r is None for r in rows):
                print(f"  {cls.name:15s} cannot run here")
                continue
            if not extra:
                extra = max(0, round(statistics.median(r[1] for r in rows)) - a.calls) if cls is UndertowApi else 0
            el = statistics.median(r[0] for r in rows)
            cap = statistics.median(min(r[1], a.calls + extra) / (a.calls + extra) for r in rows)
            share = statistics.median(r[3] / r[4] for r in rows)
            lost = [r[2] for r in rows if r[2] is not None]
            print(f"  {cls.name:15s} captured {cap * 100:6.2f}%  slowdown {el / base:5.2f}x  "
                  f"CPU during the storm {statistics.median(r[3] for r in rows):6.2f} s ({share * 100:5.1f}% of a core)  "
                  f"whole run {statistics.median(r[5] for r in rows):6.2f} s  peak RSS(max) {max(r[6] for r in rows):5.1f} MiB"
                  + (f"  lost reported {max(lost)}" if lost else ""))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("needs root")
    main()
