#!/usr/bin/env python3
"""Time from launching `undertow trace` to its first event, and its peak RSS.

A helper execs /bin/true every 5 ms; the first `sched_process_exec` line printed ends
the clock. Peak RSS is the child's ru_maxrss at exit.

    python3 bench/trace_startup.py [--runs 5]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def one():
    env = dict(os.environ, PYTHONPATH=SRC)
    stop = threading.Event()

    def spawner():
        while not stop.is_set():
            subprocess.run(["/bin/true"])
            time.sleep(0.005)

    th = threading.Thread(target=spawner, daemon=True)
    th.start()
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "undertow", "trace", "--count", "1", "--no-summary",
                          "e sched/sched_process_exec"], stdout=subprocess.PIPE, text=True, env=env)
    first = None
    for line in p.stdout:
        if "sched_process_exec" in line:
            first = time.monotonic() - t0
    p.wait()
    stop.set()
    th.join()
    return first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    times = [one() for _ in range(a.runs)]
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"first event after launch: median {statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f})")
    print(f"peak RSS of a trace process: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
