"""Commands run by an unprivileged user (uid 65534) say what is true: tracefs is mounted but
permission is denied (not "not mounted"), bpf(2) needs root or CAP_BPF+CAP_PERFMON."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
NOBODY = 65534


def _drop() -> None:  # runs in the child before exec
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.fixture(scope="module")
def as_nobody():
    """Run ``undertow ARGS`` as uid/gid 65534 with an interpreter that user can execute."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    if not os.access(SRC, os.R_OK) or stat.S_IMODE(os.stat(SRC).st_mode) & 0o005 != 0o005:
        pytest.skip(f"{SRC} is not readable by other users")
    home = tempfile.mkdtemp(prefix="ut_nobody_")
    os.chown(home, NOBODY, NOBODY)
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "PYTHONPATH": SRC, "UNDERTOW_CACHE_DIR": home,
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    python = None
    for cand in (sys.executable, "/usr/bin/python3"):
        try:
            ok = subprocess.run([cand, "-c", "import sys, undertow; assert sys.version_info >= (3, 9)"],
                                env=env, preexec_fn=_drop, capture_output=True, timeout=60).returncode == 0
        except OSError:
            ok = False
        if ok:
            python = cand
            break
    if python is None:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip("no Python >= 3.9 that uid 65534 can run with undertow importable")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, "-m", "undertow", *args], env=env, preexec_fn=_drop,
                              capture_output=True, text=True, timeout=120)

    try:
        yield run
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _tracefs() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "tracefs":
                return parts[1]
    pytest.skip("tracefs is not mounted")
    return ""


def test_tracefs_mounted_but_unreadable_says_permission_denied(as_nobody):
    path = _tracefs()
    if stat.S_IMODE(os.stat(path).st_mode) & 0o005 == 0o005:
        pytest.skip(f"{path} is readable by other users here")
    for args in (["exec", "--duration", "1"], ["trace", "--duration", "1", "e sched/sched_process_exec"]):
        res = as_nobody(*args)
        assert res.returncode == 1, res
        assert "Traceback" not in res.stderr
        assert f"permission denied: tracefs is mounted at {path}" in res.stderr, res.stderr
        assert "not mounted" not in res.stderr and "run as root" in res.stderr


def test_bpf_without_privileges_says_what_is_needed(as_nobody):
    res = as_nobody("run", "-e", "BEGIN { printf(\"hi\\n\"); exit(); }")
    if res.returncode == 0:
        pytest.skip("unprivileged BPF is allowed here")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "EPERM" in res.stderr and "CAP_BPF" in res.stderr and "root" in res.stderr, res.stderr


def test_usage_errors_come_before_privileges(as_nobody):
    res = as_nobody("dns", "--duration", "0")
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1] == "undertow dns: error: argument --duration: must be > 0 (seconds), not '0'"
