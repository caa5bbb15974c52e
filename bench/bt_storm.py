#!/usr/bin/env python3
"""`undertow run` against bpftrace 0.17 under an openat storm: slowdown, capture, loss, CPU.

The workload is bench/gen/openat_storm.c (N openat+close calls, optionally at a fixed rate).
Two programs, each run by both tools on the same workload, one after the other:

- printf per event: `tracepoint:syscalls:sys_enter_openat /comm == "openat_storm"/ { printf(...) }`
  (output to a file; captured = lines printed, lost = what the tool reports);
- in-kernel count: the same filter with `@ = count();`.

Slowdown = the storm's run time traced / untraced (median of the untraced runs). Tracer CPU
is the tool's user+system time for the whole run (start-up included).

    python3 bench/bt_storm.py [--calls 1000000] [--runs 3]
"""

import argparse
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

PRINTF = 'tracepoint:syscalls:sys_enter_openat /comm == "openat_storm"/ { printf("%d %s\\n", pid, str(args->filename)); }'
COUNT = 'tracepoint:syscalls:sys_enter_openat /comm == "openat_storm"/ { @ = count(); }'



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


def storm(exe, calls, rate=None):
    out = subprocess.run([exe, str(calls)] + ([str(rate)] if rate else []), capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def traced(argv, exe, calls, rate, tmp):
    out_path = os.path.join(tmp, "out.txt")
    with open(out_path, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=SRC))
        rss = PeakRSS(p.pid)
        # both tools print "Attaching" before (bpftrace) or after (undertow) attaching: wait
        # for it, then give both the same settle time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(out_path) as f:
                if "Attaching" in f.read(200):
                    break
            time.sleep(0.02)
        time.sleep(1.0)
        took = storm(exe, calls, rate)
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        t_sig = time.monotonic()
        _pid, _st, ru = os.wait4(p.pid, 0)
        stop_s = time.monotonic() - t_sig
        err = p.stderr.read()
    with open(out_path) as f:
        text = f.read()
    lines = sum(1 for line in text.splitlines() if "/ut_storm" in line or "openat_storm" in line
                or re.match(r"^\d+ ", line))
    count = re.search(r"^@: (\d+)", text, re.M)
    # bpftrace prints "Lost N events"; undertow too, and a "lost N events" total on stderr,
    # plus what a stop left unread ("N events recorded before the stop were not shown")
    lost = max(sum(int(x) for x in re.findall(r"Lost (\d+) events", text + err)),
               sum(int(x) for x in re.findall(r"lost (\d+) events", err))
               + sum(int(x) for x in re.findall(r"(\d+) events recorded before the stop", err)))
    return took, (int(count.group(1)) if count else lines), lost, ru.ru_utime + ru.ru_stime, rss.result(), stop_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000000)
    ap.add_argument("--rate", type=int, default=0, help="calls per second (0: as fast as possible)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--buffer-mb", type=int, default=0, help="undertow's --buffer-mb (0: its default)")
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    tmp = tempfile.mkdtemp(prefix="ut_bench_")
    try:
        exe = build(tmp)
        base = statistics.median(storm(exe, a.calls, a.rate or None) for _ in range(a.runs))
        print(f"untraced: {base:.2f} s for {a.calls} calls")
        bpftrace = shutil.which("bpftrace")
        for label, prog in (("printf", PRINTF), ("count", COUNT)):
            extra = ["--buffer-mb", str(a.buffer_mb)] if a.buffer_mb else []
            tools = [("undertow", [sys.executable, "-m", "undertow", "run", *extra, "-e", prog])]
            if bpftrace:
                tools.append(("bpftrace", [bpftrace, "-e", prog]))
            for tool, argv in tools:
                res = [traced(argv, exe, a.calls, a.rate or None, tmp) for _ in range(a.runs)]
                took = statistics.median(r[0] for r in res)
                got = statistics.median(r[1] for r in res)
                lost = max(r[2] for r in res)
                cpu = statistics.median(r[3] for r in res)
                rss = max(r[4] for r in res)
                stop_s = max(r[5] for r in res)
                print(f"{label:7} {tool:9} slowdown {took / base:5.2f}x  captured {got / a.calls:7.2%}  "
                      f"lost(max) {lost:<8} tracer CPU {cpu:5.2f} s  peak RSS(max) {rss:5.1f} MiB  "
                      f"exit after SIGINT(max) {stop_s:4.2f} s")
                sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
