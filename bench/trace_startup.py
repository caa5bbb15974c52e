#!/usr/bin/env python3
"""Time from launching a tracer to its first event, and its peak RSS: `undertow trace`
beside bpftrace (and `undertow.trace()` from Python, without the command line).

A helper thread execs /bin/true every 5 ms; the first `sched_process_exec` line printed
stops the clock. Peak RSS is the tracer's ru_maxrss (os.wait4). Tracers run one after
the other, --runs times each; medians (and minimum) are printed.

  undertow trace   `python3 -m undertow trace --count 1 --no-summary 'e sched/sched_process_exec'`
  undertow API     `python3 -c 'import undertow; ...trace("e sched/sched_process_exec")...'`
                   (no argparse, no subcommand modules)
  bpftrace         `bpftrace -B line -e 'tracepoint:sched:sched_process_exec { printf(...); exit(); }'`

    python3 bench/trace_startup.py [--runs 5]
"""

import argparse
import os
import signal
import shutil
import statistics
import subprocess
import sys
import threading
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

API = """
import undertow
from undertow.events import Event
with undertow.trace("e sched/sched_process_exec", count=1) as t:
    for ev in t:
        print(ev.probe, ev.fields.get("filename"), flush=True)
"""

BT = 'tracepoint:sched:sched_process_exec { printf("sched_process_exec %s\\n", str(args->filename)); exit(); }'


def tracers():
    out = [("undertow trace", [sys.executable, "-m", "undertow", "trace", "--count", "1", "--no-summary",
                               "e sched/sched_process_exec"]),
           ("undertow API", [sys.executable, "-c", API])]
    bt = shutil.which("bpftrace")
    if bt:
        out.append(("bpftrace", [bt, "-B", "line", "-e", BT]))
    st = os.environ.get("SURFTRACE") or shutil.which("surftrace")
    if st:  # e.g. `pip install surftrace` into a venv, SURFTRACE=venv/bin/surftrace
        out.append(("surftrace", [st, "e sched/sched_process_exec"]))
    return out


def remove_surftrace_instance():
    """surftrace leaves its ``surftrace`` instance behind when it is signalled."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ftrace_read import Surftrace

    Surftrace().cleanup()


def one(argv, timeout=90.0):
    env = dict(os.environ, PYTHONPATH=SRC)
    stop = threading.Event()

    def spawner():
        while not stop.is_set():
            subprocess.run(["/bin/true"])
            time.sleep(0.005)

    th = threading.Thread(target=spawner, daemon=True)
    th.start()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    first = None
    try:
        for line in p.stdout:
            if "sched_process_exec" in line and first is None:
                first = time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                break
    finally:
        # not p.poll()/p.terminate(): both reap an exited tracer, and wait4 needs it unreaped
        # for its rusage (a zombie still takes the signal harmlessly)
        os.kill(p.pid, signal.SIGTERM)
        _pid, st, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(st)
        stop.set()
        th.join()
    return first, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    for name, argv in tracers():
        res = []
        for _ in range(a.runs):
            res.append(one(argv))
            if name == "surftrace":
                remove_surftrace_instance()
        times = [r[0] for r in res if r[0] is not None]
        if not times:
            print(f"{name:15s} no event seen")
            continue
        rss = statistics.median(r[1] for r in res)
        print(f"{name:15s} first event after launch: median {statistics.median(times) * 1e3:4.0f} ms "
              f"(min {min(times) * 1e3:4.0f})  peak RSS {rss:5.1f} MiB")


if __name__ == "__main__":
    main()
