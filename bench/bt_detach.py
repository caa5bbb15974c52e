#!/usr/bin/env python3
"""Detach time with 1, 10, 100 and all (~360) syscall tracepoint probes: `undertow run`
against bpftrace 0.17.

The program counts on N syscall entry tracepoints; each tool is started, given time to
attach, then sent SIGINT; the clock runs from the signal to the process's exit (maps
printed, probes detached). Closing a tracepoint's perf event waits for an RCU grace period
under the kernel's event_mutex, so for bpftrace this grows with N; undertow carries 4 or
more syscall probes in one raw_syscalls program (backends/bpf/dispatch.py): one detach.

    python3 bench/bt_detach.py [--counts 1,10,100,all]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
EVENTS = "/sys/kernel/tracing/events/syscalls"


def program(n):
    names = sorted(e for e in os.listdir(EVENTS) if e.startswith("sys_enter_"))
    names = names[:n] if n else names
    return "\n".join(f"tracepoint:syscalls:{e} {{ @[probe] = count(); }}" for e in names)


def detach_time(argv, settle):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, PYTHONPATH=SRC))
    first = p.stdout.readline()
    if "Attaching" not in first:
        p.kill()
        p.wait()
        return None
    time.sleep(settle)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=600)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,10,100,all")
    a = ap.parse_args()
    bpftrace = shutil.which("bpftrace")
    for n in (0 if x == "all" else int(x) for x in a.counts.split(",")):
        prog = program(n)
        row = [f"{prog.count(chr(10)) + 1:>4} probes"]
        for tool, argv, settle in (("undertow", [sys.executable, "-m", "undertow", "run", "-e", prog], 1.0),
                                   ("bpftrace", [bpftrace, "-e", prog] if bpftrace else None, 2.0 + (n or 360) * 0.05)):
            if argv is None:
                continue
            t = detach_time(argv, settle)
            row.append(f"{tool} {t:.2f} s" if t is not None else f"{tool} failed")
        print("  ".join(row))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
