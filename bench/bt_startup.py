#!/usr/bin/env python3
"""`undertow run` against bpftrace on the same scripts: time to the first event, peak RSS.

undertow is measured twice: compiling the script (``--no-cache``: what the first run of a
script on a boot pays) and loading the programs an earlier run compiled (the default from
the second run on; backends/bpf/progcache.py). bpftrace compiles every time.

For each script a trigger thread keeps making the activity one of its probes reports
(exec /bin/true, open a file, call getppid) every 5 ms; the clock stops at the first line
that activity prints. That is "time to attached" as a user sees it: parse, compile,
verify, attach, read. Peak RSS is the tool's ru_maxrss (os.wait4). Both tools run the
same script text, one after the other, several times; medians are printed.

undertow runs under the interpreter that runs this script. An interpreter's `site` can cost
more than undertow itself (this development VM's Python imports certifi from a .pth file,
~27 ms); run it from a virtual environment to measure what a plain install pays:
`python3 -m venv /tmp/v && /tmp/v/bin/python bench/bt_startup.py`.

    python3 bench/bt_startup.py [--runs 5]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TOOLS = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "bt", "tools")

FIVE = """
tracepoint:syscalls:sys_enter_openat { @o = count(); }
tracepoint:syscalls:sys_enter_close { @c = count(); }
tracepoint:syscalls:sys_enter_read { @r = count(); }
tracepoint:syscalls:sys_enter_write { @w = count(); }
tracepoint:syscalls:sys_enter_getppid { printf("getppid %d\\n", pid); }
"""

CASTS = """
tracepoint:sched:sched_process_exec {
  $t = (struct task_struct *)curtask;
  printf("exec %s parent %s %d\\n", comm, $t->real_parent->comm, $t->real_parent->pid);
}
"""


ENTRY = "import re, sys; from undertow.cli import main; sys.argv[0] = 'undertow'; sys.exit(main())"


def _exec_true():
    subprocess.run(["/bin/true"])


def _open_file(path=os.path.join(tempfile.gettempdir(), "ut_bench_open")):
    with open(path, "w"):
        pass


def _getppid():
    os.getppid()


CASES = [
    ("execsnoop.bt", os.path.join(TOOLS, "execsnoop.bt"), _exec_true, "/bin/true"),
    ("opensnoop.bt", os.path.join(TOOLS, "opensnoop.bt"), _open_file, "ut_bench_open"),
    ("5 tracepoints", FIVE, _getppid, "getppid"),
    ("struct casts", CASTS, _exec_true, "exec true"),
]


def one(argv, trigger, marker, timeout=60.0):
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            trigger()
            time.sleep(0.005)

    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, PYTHONPATH=SRC))
    th = threading.Thread(target=loop, daemon=True)
    th.start()
    first = None
    deadline = t0 + timeout
    try:
        for line in p.stdout:
            if marker in line:
                first = time.monotonic() - t0
                break
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        th.join()
        p.send_signal(signal.SIGINT)
        try:
            p.stdout.read()
        except Exception:  # noqa: BLE001
            pass
        _pid, _st, ru = os.wait4(p.pid, 0)
    return first, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    bpftrace = shutil.which("bpftrace")
    print(f"{'script':16} {'tool':17} {'first event (median, min)':>26} {'peak RSS':>10}")
    for name, script, trigger, marker in CASES:
        args = [script] if os.path.exists(script) else ["-e", script]
        # what the console script `undertow` runs (pip's entry point: `import re`, then
        # undertow.cli.main); `-m undertow` would add runpy (~4 ms) that users do not pay.
        # "compiles": every run parses, resolves and compiles (--no-cache), as a first run of
        # a script on a boot does; "cached": later runs load what the first one compiled
        # (backends/bpf/progcache.py), warmed by one run before the timed ones.
        undertow = [sys.executable, "-c", ENTRY, "run"]
        tools = [("undertow compiles", undertow + ["--no-cache", *args], False),
                 ("undertow cached", undertow + args, True)]
        if bpftrace:
            tools.append(("bpftrace", [bpftrace, *args], False))
        for tool, argv, warm in tools:
            times, rss = [], []
            if warm:
                one(argv, trigger, marker)
            for _ in range(a.runs):
                t, r = one(argv, trigger, marker)
                if t is not None:
                    times.append(t * 1000)
                rss.append(r)
            med = f"{statistics.median(times):.0f} ms ({min(times):.0f})" if times else "no event"
            print(f"{name:16} {tool:17} {med:>26} {statistics.median(rss):>7.1f} MiB")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
