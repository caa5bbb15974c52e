"""`undertow run` with kprobe, kretprobe, kfunc/kretfunc and tcpconnect.bt.

This machine's kernel has no kprobes and refuses fentry, so these tests skip here with the
reason and run in the kernel lab (tests/lab: Debian 6.1 and 6.12 under QEMU).
"""

import os
import socket
import subprocess
import sys

import pytest

from undertow.kernel import Kernel
from undertow.kernel import syscalls as sc

HAS_KPROBES = sc.pmu_type("kprobe") is not None
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))"),
    pytest.mark.skipif(not HAS_KPROBES, reason="this kernel has no kprobes (CONFIG_KPROBES=n); runs in the lab"),
]

READER = ("import os, sys\n"
          "p = sys.argv[1]\n"
          "for _ in range(3):\n"
          "    fd = os.open(p, os.O_RDONLY); os.read(fd, 65536); os.close(fd)\n")


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "undertow", "run", *args], capture_output=True, text=True,
                          timeout=timeout)


def _reader_cmd(path):
    script = os.path.join(os.path.dirname(path), "ut_reader.py")
    with open(script, "w") as f:
        f.write(READER)
    return f"{sys.executable} {script} {path}"


def test_kprobe_kretprobe_with_struct_casts(tmp_path):
    data = tmp_path / "ut_kp_data"
    data.write_bytes(b"x" * 4321)
    res = _run("-c", _reader_cmd(str(data)), "-e",
               "kprobe:vfs_read /pid == cpid/ { "
               "  @names[str(((struct file *)arg0)->f_path.dentry->d_name.name)] = count(); @start[tid] = nsecs; } "
               "kretprobe:vfs_read /pid == cpid && retval == 4321/ { @n = count(); @lat = hist(nsecs - @start[tid]); }")
    assert res.returncode == 0, res.stderr
    assert "@n: 3" in res.stdout, res.stdout + res.stderr
    assert "@names[ut_kp_data]: " in res.stdout
    assert "@lat:" in res.stdout


def test_kprobe_wildcard_on_one_kprobe_multi_link(tmp_path):
    """kprobe:vfs_rea* names each function (probe, func); with kprobe_multi (CONFIG_FPROBE,
    5.18+) the functions share one program on one link, names read by cookie; a block that
    reads arguments keeps one program per function (their BTF types differ)."""
    data = tmp_path / "ut_kp_multi"
    data.write_bytes(b"m" * 1111)
    res = _run("-v", "-c", _reader_cmd(str(data)), "-e",
               "kprobe:vfs_rea* /pid == cpid/ { @[probe] = count(); @f[func] = count(); } "
               "kprobe:vfs_rea* /pid == cpid && arg2 == 65536/ { @big[func] = count(); }")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    n = int(out.split("@f[vfs_read]: ")[1].split()[0])
    assert n >= 3 and f"@[kprobe:vfs_read]: {n}" in out, out
    assert int(out.split("@big[vfs_read]: ")[1].split()[0]) >= 3   # os.read(fd, 65536) x3
    f = Kernel().features().get("bpf_kprobe_multi")
    if f is not None and f.available:
        assert res.stderr.count("functions on one kprobe_multi link") == 1, res.stderr


def test_kprobes_through_kprobe_events(tmp_path):
    """The pre-4.17 way (no kprobe PMU): kprobe_events definitions opened as tracepoint perf
    events; forced with UNDERTOW_KPROBE_ATTACH=tracefs. Same counts; no definition left."""
    data = tmp_path / "ut_kp_legacy"
    data.write_bytes(b"z" * 2345)
    env = dict(os.environ, UNDERTOW_KPROBE_ATTACH="tracefs")
    res = subprocess.run([sys.executable, "-m", "undertow", "run", "-v", "-c", _reader_cmd(str(data)), "-e",
                          "kprobe:vfs_read /pid == cpid/ { @calls = count(); } "
                          "kretprobe:vfs_read /pid == cpid && retval == 2345/ { @n = count(); }"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "@n: 3" in res.stdout and "@calls: " in res.stdout, res.stdout + res.stderr
    assert "attached through kprobe_events (undertow_" in res.stderr
    tfs = Kernel().tracefs()
    assert "undertow_" not in tfs.read("kprobe_events")


def test_kfunc_reads_typed_arguments(tmp_path):
    f = Kernel().features().get("bpf_fentry")
    if f is None or not f.available:
        pytest.skip("this kernel refuses fentry programs")
    data = tmp_path / "ut_kf_data"
    data.write_bytes(b"y" * 1234)
    res = _run("-c", _reader_cmd(str(data)), "-e",
               "kfunc:vfs_read /pid == cpid/ { @names[str(args.file->f_path.dentry->d_name.name)] = count(); } "
               "kretfunc:vfs_read /pid == cpid && retval == 1234/ { @n = count(); }")
    assert res.returncode == 0, res.stderr
    assert "@n: 3" in res.stdout and "@names[ut_kf_data]: " in res.stdout, res.stdout + res.stderr


def test_tcpconnect_bt_reports_a_loopback_connect():
    tool = os.path.join(os.path.dirname(__file__), "..", "fixtures", "bt", "tools", "tcpconnect.bt")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        client = (f"{sys.executable} -c 'import socket; s = socket.create_connection((\"127.0.0.1\", {port})); "
                  "s.close()'")
        res = _run("-c", client, tool)
    finally:
        srv.close()
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if f" {port} " in l + " "]
    assert lines and "127.0.0.1" in lines[0], res.stdout + res.stderr
