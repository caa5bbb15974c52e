"""The cache directory under attack (issue 14), with `undertow run`/`doctor` as root.

- A cache dir of another user (UNDERTOW_CACHE_DIR, or HOME kept by `sudo -E`) with a
  symlinked programs/<x>: root's run used to delete the target's files. Now no cache is used
  and `-v` says so once.
- A world-writable UNDERTOW_CACHE_DIR: root used to create programs/ in it.
- A planted member offset (task_struct.thread_info.status, read by the syscall dispatcher to
  skip 32-bit compat calls) used to make a run with 4+ syscall probes see none of a chosen
  process's calls. The test plants offsets of a field that has the TS_COMPAT bit set for its
  own process (comm "bbdisp": 'b' is 0x62) and checks every openat is still counted.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest

from undertow.kernel import Kernel
from undertow.kernel.cache import boot_id
from undertow.kernel.roots import Roots

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), chown)")

NOTE = "not using the cache"
PROG = 'BEGIN { printf("hi\\n"); exit(); }'


def _undertow(*args, env):
    res = subprocess.run([sys.executable, "-m", "undertow", *args], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="ut-cache-live-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _victim(tmp):
    v = os.path.join(tmp, "victim")
    os.mkdir(v)
    for i in range(3):
        with open(os.path.join(v, f"{i:016x}"), "w") as f:
            f.write("precious")
    return v


def test_a_cache_dir_of_another_user_is_not_used_and_verbose_says_so_once(tmp):
    victim = _victim(tmp)
    home = os.path.join(tmp, "bob-cache")
    os.makedirs(os.path.join(home, "programs"))
    os.symlink(victim, os.path.join(home, "programs", "an-old-boot"))
    for p in (home, os.path.join(home, "programs")):
        os.chown(p, 65534, 65534)
    os.lchown(os.path.join(home, "programs", "an-old-boot"), 65534, 65534)
    env = dict(os.environ, UNDERTOW_CACHE_DIR=home)
    for _ in range(2):  # a second run would load the first one's program if it had been kept
        err = _undertow("run", "-v", "-e", PROG, env=env).stderr
        notes = [line for line in err.splitlines() if NOTE in line]
        assert notes == [f"undertow run: {NOTE} {home}: {home} is owned by uid 65534, not root "
                         '(set UNDERTOW_CACHE_DIR to a directory of your own, or to "" for none)'], err
        assert "from this boot's cache" not in err and "kept for the next run" not in err
    assert sorted(os.listdir(victim)) == [f"{i:016x}" for i in range(3)]
    assert sorted(os.listdir(home)) == ["programs"] and os.listdir(os.path.join(home, "programs")) == ["an-old-boot"]
    err = _undertow("doctor", "-v", env=env).stderr
    assert sum(NOTE in line for line in err.splitlines()) == 1, err
    assert NOTE not in _undertow("run", "-e", PROG, env=env).stderr  # only with -v
    assert sorted(os.listdir(home)) == ["programs"]


def test_a_world_writable_cache_dir_is_not_used(tmp):
    shared = os.path.join(tmp, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    env = dict(os.environ, UNDERTOW_CACHE_DIR=shared)
    err = _undertow("run", "-v", "-e", PROG, env=env).stderr
    assert f"{NOTE} {shared}: {shared} is writable by others (mode 1777)" in err
    assert os.listdir(shared) == []


def test_a_planted_member_offset_does_not_blind_the_syscall_dispatcher(tmp):
    if os.uname().machine != "x86_64":
        pytest.skip("the compat check (thread_info.status) is x86_64's")
    cache = os.path.join(tmp, "cache")
    roots = Roots(cache_dir=cache)
    k = Kernel(roots)
    try:
        btf = k.btf()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no vmlinux BTF: {e}")
    status = k.member_offset("task_struct", "thread_info.status")
    entry = os.path.join(cache, f"member-{boot_id(roots)}-task_struct-thread_info.status")
    with open(entry, "rb") as f:
        genuine = f.read()
    size, _off, chain = genuine.decode().split(" ")
    comm = btf.member("task_struct", "comm").offset
    comm_chain = btf.member_witness("task_struct", "comm").decode().split(" ")[2]
    assert comm != status and struct.unpack("<I", b"bbdi")[0] & 0x2  # TS_COMPAT set at "comm"
    planted = {
        "the old format": str(comm).encode(),
        "comm's records": f"{size} {comm} {comm_chain}".encode(),
        "status's records, comm's offset": f"{size} {comm} {chain}".encode(),
    }
    exe = os.path.join(tmp, "bbdisp")
    shutil.copy(os.path.realpath(sys.executable), exe)
    script = os.path.join(tmp, "work.py")
    with open(script, "w") as f:
        f.write("import os, sys\nsys.stdin.readline()\n"
                "for i in range(1000): os.close(os.open('/etc/hostname', os.O_RDONLY))\n")
    prog = ("tracepoint:syscalls:sys_enter_openat { @opens = count(); } "
            "tracepoint:syscalls:sys_enter_getpid { @getpid = count(); } "
            "tracepoint:syscalls:sys_enter_getppid { @getppid = count(); } "
            "tracepoint:syscalls:sys_enter_lseek { @lseek = count(); }")
    env = dict(os.environ, UNDERTOW_CACHE_DIR=cache)
    for what, value in planted.items():
        with open(entry, "wb") as f:
            f.write(value)
        child = subprocess.Popen([exe, "-S", script], stdin=subprocess.PIPE, text=True)
        run = None
        try:
            run = subprocess.Popen([sys.executable, "-m", "undertow", "run", "-v", "-p", str(child.pid), "-e", prog],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            first = run.stdout.readline()
            assert "Attaching 4 probes" in first, (first, run.communicate(timeout=60))
            child.stdin.write("go\n")
            child.stdin.flush()
            child.wait(timeout=60)
            run.send_signal(2)
            out, err = run.communicate(timeout=120)
        finally:
            for p in (child, run):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        assert "tail-called from a single raw_syscalls:sys_enter program" in err, err
        counts = {line.split(":")[0]: int(line.split(":")[1]) for line in out.splitlines() if line.startswith("@")}
        assert counts.get("@opens", 0) >= 1000, (what, out, err)
        with open(entry, "rb") as f:
            assert f.read() == genuine, what  # the miss was computed again from BTF and rewritten
