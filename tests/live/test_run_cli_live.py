"""`undertow run`'s bpftrace command line on this kernel (issue 16): the attach notice, -q,
the program on stdin, SIGUSR1, -k, --info."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

RUN = [sys.executable, "-m", "undertow", "run"]
NOTICE = "__BPFTRACE_NOTIFY_PROBES_ATTACHED"


def test_attach_notice_on_stderr_once_attached_and_quiet():
    env = dict(os.environ, **{NOTICE: "1"})
    res = subprocess.run(RUN + ["-q", "-e", 'BEGIN { printf("hi\\n"); exit(); }'], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\n\n\n"  # -q: no "Attaching 1 probe..." (the two blank lines at exit, as bpftrace)
    assert res.stderr.splitlines().count(NOTICE) == 1
    res = subprocess.run(RUN + ["-e", "BEGIN { exit(); }"], capture_output=True, text=True, timeout=120)
    assert NOTICE not in res.stderr + res.stdout and res.stdout == "Attaching 1 probe...\n\n\n"


def test_program_from_stdin():
    res = subprocess.run(RUN + ["-"], input='BEGIN { printf("from stdin\\n"); exit(); }', capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("from stdin\n\n\n")  # and the two blank lines at exit, as bpftrace


#: Found by the lab on Debian's 6.1 (2026-12-07), not understood yet: a -k helper error record
#: is never shown there (the same program shows it on 6.12 and on this host: the generated code
#: is identical, `run -d`). An expected failure there, strict: it reports when fixed.
KNOWN_ON_6_1 = pytest.mark.xfail(os.uname().release.startswith("6.1."), strict=True,
                                 reason="open on Linux 6.1: see the comment above KNOWN_ON_6_1 (issue 16)")


def test_sigusr1_prints_the_maps_and_the_run_goes_on():
    env = dict(os.environ, **{NOTICE: "1"})
    p = subprocess.Popen(RUN + ["-f", "json", "-e", "BEGIN { @scalar = 5; } interval:s:3 { exit(); }"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while p.stderr.readline().strip() != NOTICE:
            assert p.poll() is None, p.communicate()
        p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    maps = [json.loads(line) for line in out.splitlines() if '"map"' in line]
    assert maps == [{"type": "map", "data": {"@scalar": 5}}] * 2


@KNOWN_ON_6_1
def test_helper_errors_with_k():
    res = subprocess.run(RUN + ["-k", "-f", "json", "-e", "i:ms:100 { @[1] = 1; delete(@[2]); exit(); }"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '{"type": "helper_error", "helper": "map_delete_elem", "retcode": -2, "line": 1, "col": 22}' \
        in res.stdout.splitlines()
    res = subprocess.run(RUN + ["-kk", "-e", 'i:ms:100 { @[1] = 1; printf("%d\\n", @[2]); exit(); }'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "-e:1:37: warning: Failed to map_lookup_elem: 0" in res.stderr


def test_info_reports_this_kernel():
    t0 = time.monotonic()
    res = subprocess.run(RUN + ["--info"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "perf_event_array: yes" in res.stderr and "tracepoint: yes" in res.stderr
    assert "libdw (DWARF support): yes" in res.stderr and "skboutput: no" in res.stderr
    # iterators: as the feature probe says (tests/live/test_run_iter_live.py)
    assert re.search(r"^  iter:task: (yes|no)$", res.stderr, re.M), res.stderr
    refcount = "yes" if os.path.exists("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset") else "no"
    assert f"uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): {refcount}" in res.stderr
    assert time.monotonic() - t0 < 60


def test_helper_error_of_a_number_cast_to_a_pointer_is_bpftraces():
    """bpftrace's json-output.helper_error: BEGIN reads a pointer with no address space with
    bpf_probe_read (-EFAULT at 0), at the member's place, its parentheses included."""
    res = subprocess.run(RUN + ["-kk", "-q", "-f", "json", "-e",
                                "struct foo {int a;}; BEGIN { $tmp = ((struct foo*) 0)->a; exit(); }"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert '{"type": "helper_error", "helper": "probe_read", "retcode": -14, "line": 1, "col": 37}' \
        in res.stdout.splitlines()


def test_exit_leaves_the_other_probes_counting_until_read_and_hides_later_records():
    """As bpftrace 0.17: after exit() the probes run on until its record is read and they are
    detached (a burst of 3000 getppid calls, far shorter than the reader's 20 ms timer, is
    counted beyond the first call); what they print after the record is not shown."""
    burst = "import os\nfor _ in range(3000): os.getppid()\n"
    res = subprocess.run(RUN + ["-c", f"{sys.executable} -c '{burst}'", "-e",
                                'tracepoint:syscalls:sys_enter_getppid /pid == cpid/ '
                                '{ @n = count(); printf("hit\\n"); exit(); } END { printf("end\\n"); }'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines.count("hit") == 1 and "end" in lines, res.stdout
    n = int(next(x for x in lines if x.startswith("@n: ")).split()[1])
    assert n > 1, res.stdout
    assert "not shown" not in res.stderr


def test_debugf_writes_to_the_kernels_trace_buffer():
    """bpftrace's call.debugf*: bpf_trace_printk's line in tracefs ``trace`` (read, not
    cleared: the one line this leaves there is what debugf() is for)."""
    trace = "/sys/kernel/tracing/trace"
    if not os.path.exists(trace):
        pytest.skip("no tracefs at /sys/kernel/tracing")
    # loading the program makes the kernel enable this global event; undertow turns it off
    # again when it was off (the test puts it back itself if undertow did not)
    enable = "/sys/kernel/tracing/events/bpf_trace/bpf_trace_printk/enable"
    before = open(enable).read().strip() if os.path.exists(enable) else None
    mark = f"undertow-debugf-{os.getpid()}-{time.monotonic_ns()}"
    try:
        res = subprocess.run(RUN + ["-e", f'i:ms:1 {{ debugf("{mark} %s %d %x", "a", 1, 16); exit(); }}'],
                             capture_output=True, text=True, timeout=120)
        after = open(enable).read().strip() if before is not None else None
    finally:
        if before is not None:
            with open(enable, "w") as f:
                f.write(before)
    assert res.returncode == 0, res.stderr
    assert "The debugf() builtin is not recommended for production use" in res.stderr
    with open(trace, errors="replace") as f:
        assert any(f"bpf_trace_printk: {mark} a 1 10" in line for line in f)
    assert after == before, f"bpf_trace_printk's global event left {after!r} (was {before!r})"


def test_a_listing_ends_at_once_on_sigterm():
    """`run -l` creates nothing: a stop signal ends it at once, even while it is blocked
    writing to a full pipe (bpftrace's suite stops `-lv "kfunc:*"` this way)."""
    import signal

    p = subprocess.Popen(RUN + ["-lv", "tracepoint:*"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert p.stdout.read(100)  # listing; the pipe then fills as nobody reads it
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        assert time.monotonic() - t0 < 1.0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
