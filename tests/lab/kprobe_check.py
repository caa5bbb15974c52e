"""Guest-side smoke check for the kernel lab: kprobes and kretprobes from plain Python.

Run inside the lab (``python3 tests/lab/lab.py kprobe-check --kernel all``). It prints the
kernel release and the number of available trace events, then adds a kprobe and a kretprobe on
do_sys_openat2 through tracefs ``kprobe_events``, opens a file itself (ground truth), and
expects both events for its own pid in the trace buffer. Everything it creates is removed, also
on failure. Exit 0 when both fired; 1 otherwise (the reason is printed).

Tracefs files are opened with ``os.open(O_WRONLY|O_APPEND)``: ``open(path, "a")`` seeks and
fails with EINVAL on 6.12, and ``"w"`` truncates kprobe_events (removing every probe).
"""

from __future__ import annotations

import os
import sys
import time

TRACEFS = "/sys/kernel/tracing"
FUNC = "do_sys_openat2"


def append(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def main() -> int:
    print("release", os.uname().release)
    with open(os.path.join(TRACEFS, "available_events")) as f:
        print("available_events", sum(1 for _ in f))
    kev = os.path.join(TRACEFS, "kprobe_events")
    if not os.path.exists(kev):
        print("FAIL: no %s (CONFIG_KPROBE_EVENTS off?)" % kev)
        return 1
    pid = os.getpid()
    name = "lab_test_%d" % pid
    rname = "lab_test_ret_%d" % pid
    created = []
    t0 = time.monotonic()
    try:
        append(kev, "p:kprobes/%s %s\n" % (name, FUNC))
        created.append(name)
        append(kev, "r:kprobes/%s %s ret=$retval\n" % (rname, FUNC))
        created.append(rname)
        # Truncating "trace" clears the buffer (Documentation/trace/ftrace.rst).
        os.close(os.open(os.path.join(TRACEFS, "trace"), os.O_WRONLY | os.O_TRUNC))
        for n in created:
            append(os.path.join(TRACEFS, "events", "kprobes", n, "enable"), "1")
        probe_file = "/tmp/undertow-lab-kprobe-%d" % pid
        for _ in range(3):
            with open(probe_file, "w") as f:
                f.write("x")
        os.unlink(probe_file)
        for n in created:
            append(os.path.join(TRACEFS, "events", "kprobes", n, "enable"), "0")
        with open(os.path.join(TRACEFS, "trace")) as f:
            lines = [ln for ln in f if "-%d " % pid in ln or "-%d]" % pid in ln]
        hits = sum(1 for ln in lines if (" %s:" % name) in ln)
        rhits = sum(1 for ln in lines if (" %s:" % rname) in ln)
        print("kprobe hits", hits, "kretprobe hits", rhits, "in %.2f s" % (time.monotonic() - t0))
        for ln in lines[:4]:
            print("  " + ln.rstrip())
        if hits < 3 or rhits < 3:
            print("FAIL: expected >= 3 kprobe and kretprobe hits on %s for pid %d" % (FUNC, pid))
            return 1
        print("OK: kprobe and kretprobe on %s fired" % FUNC)
        return 0
    finally:
        for n in reversed(created):
            try:
                append(os.path.join(TRACEFS, "events", "kprobes", n, "enable"), "0")
            except OSError:
                pass
            try:
                append(kev, "-:kprobes/%s\n" % n)
            except OSError as e:
                print("cleanup: could not remove %s: %s" % (n, e))


if __name__ == "__main__":
    sys.exit(main())
