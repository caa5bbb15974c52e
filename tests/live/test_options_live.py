"""Option values on the real commands: `run -c` that cannot exec, `run -o` through a planted link,
`run -p` of a process that exits, bytes of a literal written as they are."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "undertow", "run", *args], capture_output=True, timeout=timeout)


def test_run_c_that_cannot_exec_exits_1_with_the_reason():
    """The program exists and is executable, its interpreter does not: exec fails after attaching."""
    d = tempfile.mkdtemp(prefix="ut_opt_")
    script = os.path.join(d, "bad")
    try:
        with open(script, "w") as f:
            f.write("#!/nonexistent/interpreter\n")
        os.chmod(script, 0o755)
        res = _run("-c", script, "-e", "tracepoint:syscalls:sys_enter_execve /pid == cpid/ { printf(\"x\\n\"); }")
    finally:
        os.unlink(script)
        os.rmdir(d)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert err.strip().splitlines()[-1] == f"undertow run: error: -c: cannot run {script}: No such file or directory"
    assert b"Attaching 1 probe" in res.stdout and "Traceback" not in err


def test_run_c_not_found_is_a_usage_error_before_anything():
    res = _run("-c", "/nonexistent/program", "-e", "BEGIN { exit(); }")
    assert res.returncode == 2 and b"Attaching" not in res.stdout
    assert res.stderr.decode().splitlines()[-1] == "undertow run: error: argument -c: /nonexistent/program: no such file"


def test_run_o_does_not_follow_a_planted_link_and_writes_bytes():
    d = tempfile.mkdtemp(prefix="ut_opt_")
    victim, link, out = (os.path.join(d, n) for n in ("victim", "link", "out"))
    try:
        with open(victim, "w") as f:
            f.write("keep\n")
        os.symlink(victim, link)
        res = _run("-o", link, "-e", "BEGIN { exit(); }")
        assert res.returncode == 2 and b"symbolic link" in res.stderr
        with open(victim) as f:
            assert f.read() == "keep\n"
        res = _run("-o", out, "-e", 'BEGIN { printf("a\\xffb\\n"); exit(); }')
        assert res.returncode == 0, res.stderr
        with open(out, "rb") as f:
            assert f.read().rstrip(b"\n").splitlines()[-1] == b"a\xffb"  # the literal's bytes, as bpftrace writes them
        res = _run("-e", 'BEGIN { printf("a\\xffb\\n"); exit(); }')  # to stdout (a pipe) too
        assert res.returncode == 0 and res.stdout.rstrip(b"\n").splitlines()[-1] == b"a\xffb", res.stderr
    finally:
        for p in (victim, link, out):
            if os.path.lexists(p):
                os.unlink(p)
        os.rmdir(d)


def test_run_p_of_an_exited_process_is_refused():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    res = _run("-p", str(child.pid), "-e", "BEGIN { exit(); }")
    if res.returncode == 0:
        pytest.skip("the pid was reused meanwhile")
    assert res.returncode == 2
    assert res.stderr.decode().splitlines()[-1] == f"undertow run: error: argument -p: no process with pid {child.pid}"
