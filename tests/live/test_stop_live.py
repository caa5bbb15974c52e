"""Stopping means stopping (backends/loop.py, undertow/stop.py), on this kernel.

Under an openat storm the tests make themselves (a child process named ut_storm*), each
command must end within a second of SIGINT/SIGTERM or of --duration's end, show nothing
recorded after the stop, and account for everything recorded before it: what it printed
plus what it reports as lost (by the kernel, or still unread at the stop) is exactly the
number of calls the storm made.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tracefs, bpf(2))")

#: A stop may take this long (issue 14: "every command exits within 1 s"); CI machines are
#: shared, so the test allows a little for the scheduler on top.
STOP_LIMIT = 1.0
SLACK = 0.25
if os.environ.get("UNDERTOW_LAB") == "1":
    # the lab's guests run under QEMU's single-threaded TCG emulation when the host has no
    # usable KVM (tests/lab/lab.py accel_args), both vCPUs on one host thread: user space is
    # ~15x slower there and shares that thread with the test's storm (measured: the
    # interpreter's own exit 0.3 s instead of 20 ms; filewatch's stop 1.0-1.8 s, it was 9-11 s
    # before the read loop sized its batches to the consumer). Host runs keep the strict limit.
    SLACK = 1.5
#: How long a command may take to get ready (start-up is not what these tests measure). In
#: the lab a tool that builds fentry/kprobe programs starts in 10-40 s, and under the tests'
#: own storms (which take one of the guest's two vCPUs, both on one host thread) twice that:
#: CI's 6.12 guest gave filewatch --all more than 60 s (2026-12-08).
READY_TIMEOUT = 180 if os.environ.get("UNDERTOW_LAB") == "1" else 60

STORM = """
import os, sys
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
n = int(sys.argv[2])
go = os.open
close = os.close
print("go", flush=True)
i = 0
while n < 0 or i < n:
    close(go("/dev/null", os.O_RDONLY))
    i += 1
"""


def _storm(name, calls=-1):
    p = subprocess.Popen([sys.executable, "-S", "-c", STORM, name, str(calls)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "go"
    return p


def _undertow(args, out):
    return subprocess.Popen([sys.executable, "-m", "undertow", *args], stdout=out, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(path, what, p, timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            if what in f.read(4096):
                return
        if p.poll() is not None:
            raise AssertionError(f"undertow ended early: {p.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"no {what!r} in {path}")


def _lost(stderr):
    """Everything the command said it did not show: kernel losses and not_drained."""
    n = 0
    m = re.search(r"lost (\d+) events", stderr)
    if m:
        n += int(m.group(1))
    m = re.search(r"(\d+) events recorded before the stop were not shown", stderr)
    if m:
        n += int(m.group(1))
    return n


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_under_a_storm_stops_within_a_second_and_shows_nothing_after_the_stop(sig, tmp_path):
    storm = _storm("ut_storm_run")
    out_path = tmp_path / "out.txt"
    try:
        with open(out_path, "w") as out:
            p = _undertow(["run", "-e", 'tracepoint:syscalls:sys_enter_openat /comm == "ut_storm_run"/ '
                                        '{ printf("%llu\\n", nsecs); }'], out)
            try:
                _wait_for(out_path, "Attaching", p)
                time.sleep(1.0)  # behind the storm by now: the ring and the backlog fill
                t_sig = time.monotonic_ns()
                p.send_signal(sig)
                _out, err = p.communicate(timeout=30)
                took = (time.monotonic_ns() - t_sig) / 1e9
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    finally:
        storm.kill()
        storm.wait()
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert took < STOP_LIMIT + SLACK, f"exit took {took:.2f} s after {sig.name}"
    stamps = [int(x) for x in out_path.read_text().split()[3:] if x.isdigit()]
    assert len(stamps) > 1000
    # the handler notes the stop when it runs (microseconds after the kill in practice)
    late = [t for t in stamps if t > t_sig + 50_000_000]
    assert not late, f"{len(late)} records made after the stop were shown"


@pytest.mark.parametrize("tool", ["run", "trace"])
def test_everything_made_before_the_stop_is_shown_or_counted(tool, tmp_path):
    """A storm of exactly N calls ends, then SIGINT while undertow is still behind:
    lines shown + losses reported (kernel and not_drained) == N."""
    n = 400_000
    out_path = tmp_path / "out.txt"
    if tool == "run":
        args = ["run", "-e", 'tracepoint:syscalls:sys_enter_openat /comm == "ut_storm_acct"/ { printf("x\\n"); }']
        ready = "Attaching"
    else:
        args = ["trace", "--backend", "ftrace", 'e syscalls/sys_enter_openat f:comm=="ut_storm_acct"']
        ready = None
    with open(out_path, "w") as out:
        p = _undertow(args, out)
        try:
            if ready:
                _wait_for(out_path, ready, p)
            else:
                _wait_trace_ready(p)
            storm = _storm("ut_storm_acct", n)
            storm.wait(timeout=120)
            t_sig = time.monotonic()
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=30)
            took = time.monotonic() - t_sig
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    assert took < STOP_LIMIT + SLACK, f"exit took {took:.2f} s"
    text = out_path.read_text()
    if tool == "run":
        shown = text.count("x\n")
        lost = _lost(err)
    else:
        shown = sum(1 for line in text.splitlines() if "sys_enter_openat" in line)
        head = re.search(r"# (\d+) events, (\d+) lost(?:, (\d+) not drained)?", err)
        assert head, err
        assert int(head.group(1)) == shown
        lost = int(head.group(2)) + int(head.group(3) or 0)
        assert "made after the stop" not in err  # the storm ended before the signal
    assert shown + lost == n, f"shown {shown} + lost {lost} != {n}\n{err}"


def _wait_trace_ready(p, timeout=READY_TIMEOUT):
    """`undertow trace` prints nothing before its first event: wait until its instance is on."""
    from undertow.kernel import Kernel

    tfs = Kernel().tracefs()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(os.path.join(tfs.path, "instances")):
            if name.startswith(f"undertow_{p.pid}_"):
                try:
                    with open(os.path.join(tfs.path, "instances", name, "tracing_on")) as f:
                        if f.read().strip() == "1":
                            return
                except OSError:
                    pass
        if p.poll() is not None:
            raise AssertionError(p.stderr.read())
        time.sleep(0.02)
    raise AssertionError("trace did not start")


def test_duration_ends_a_storm_run_on_time(tmp_path):
    storm = _storm("ut_storm_dur")
    out_path = tmp_path / "out.txt"
    try:
        with open(out_path, "w") as out:
            p = _undertow(["run", "--duration", "1", "-e",
                           'tracepoint:syscalls:sys_enter_openat /comm == "ut_storm_dur"/ { printf("%llu\\n", nsecs); }'],
                          out)
            _wait_for(out_path, "Attaching", p)
            t0 = time.monotonic()
            _out, err = p.communicate(timeout=60)
            took = time.monotonic() - t0
    finally:
        storm.kill()
        storm.wait()
    assert p.returncode == 0, err
    assert took < 1.0 + STOP_LIMIT + SLACK, f"--duration 1 took {took:.2f} s from attach to exit"


def test_filewatch_all_under_a_write_storm_ends_with_its_duration(tmp_path):
    target = tmp_path / "watched"
    target.write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-S", "-c",
                               "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\n"
                               "print('go', flush=True)\nwhile True: os.pwrite(fd, b'x', 0)\n", str(target)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "go"
    out_path = tmp_path / "out.txt"
    try:
        with open(out_path, "w") as out:
            p = _undertow(["filewatch", "--all", str(target), "--duration", "1"], out)
            # the header is written once the probes are attached; --duration counts from there
            # (start-up is not what this measures: in the lab's VMs it takes seconds)
            _wait_for(out_path, "TIME", p)
            t_start = time.monotonic()
            _out, err = p.communicate(timeout=120)
            took = time.monotonic() - t_start
    finally:
        writer.kill()
        writer.wait()
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert took < 1.0 + STOP_LIMIT + SLACK, f"filewatch --duration 1 took {took:.2f} s from attach to exit"


def test_sigint_stops_a_run_started_with_sigint_ignored(tmp_path):
    """`undertow run ... &` from a script inherits SIGINT ignored; kill -INT must still stop it."""
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "undertow", "run", "-e",
                              "tracepoint:syscalls:sys_enter_getppid { @ = count(); }"],
                             stdout=out, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            _wait_for(out_path, "Attaching", p)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0 and took < STOP_LIMIT + SLACK, (took, err)


def test_many_tracepoints_detach_without_holding_up_the_exit(tmp_path):
    """Closing a tracepoint perf event waits for RCU (~50-80 ms each): with many, a detached
    process closes them and undertow exits at once; it is gone soon after."""
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        p = _undertow(["run", "-e", "tracepoint:sched:* { @[probe] = count(); }"], out)
        try:
            _wait_for(out_path, "Attaching", p)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=30)
            took = time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    assert took < STOP_LIMIT + SLACK, f"exit took {took:.2f} s"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = [d for d in os.listdir("/proc") if d.isdigit() and _comm(d) == "undertow-detach"]
        if not left:
            break
        time.sleep(0.1)
    assert not left, "the detaching process is still there after 20 s"


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
