"""`undertow exec` on this kernel: what an attacker does to hide a program must show, with the
kernel's name for it (issue 18): exec chains, ``exec -a``, memfd + execve/fexecve, a deleted
file, a process gone within a millisecond, argv longer than 4 KiB, other namespaces.

Each test starts the tool with ``--pid`` of this test process (the tool follows its children),
makes the thing happen and asserts the event's fields. Processes started here are waited for
or killed by their pid; files live in pytest's tmp_path."""

import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from undertow.commands.exec import _bpf_usable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

READY = "ut_exec_ready_marker"


class Tool:
    """``undertow exec --json --pid <us>`` (+ options) running until :meth:`stop`; ready once it
    reported a marker exec of ours (``marker``: a program whose name the options let through)."""

    def __init__(self, *opts, marker="/bin/true"):
        self.p = subprocess.Popen([sys.executable, "-m", "undertow", "exec", "--json", "--pid", str(os.getpid()),
                                   "--duration", "120", *opts],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.p.poll() is None:
            subprocess.run([marker, READY])
            if select.select([self.p.stdout], [], [], 0.3)[0]:
                line = self.p.stdout.readline()
                if line:
                    self.lines.append(line)
                break
        assert self.lines, self.p.stderr.read() if self.p.poll() is not None else "not ready"

    def stop(self):
        time.sleep(0.5)
        self.p.send_signal(2)
        out, err = self.p.communicate(timeout=120)
        evs = [json.loads(x) for x in self.lines + out.splitlines() if x.startswith("{")]
        return [e for e in evs if "pid" in e and READY not in (e.get("argv") or [])], err


@pytest.fixture
def target(tmp_path):
    """A copy of sleep under a name of ours."""
    path = tmp_path / "ut_exec_tgt"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", path)
    return str(path)


@pytest.fixture
def marker(tmp_path):
    """A copy of true whose name matches ``--comm 'ut_exec_tg*'``."""
    path = tmp_path / "ut_exec_tg_ready"
    shutil.copy(shutil.which("true") or "/bin/true", path)
    return str(path)


def _by_pid(evs, pid):
    return [e for e in evs if e["pid"] == pid]


def _ns():
    return os.stat("/proc/self/ns/net").st_ino, os.stat("/proc/self/ns/pid").st_ino


needs_bpf = pytest.mark.skipif(os.geteuid() == 0 and not _bpf_usable(),
                               reason="no BPF on tracepoints/BTF here: exec runs on ftrace, argv from /proc")


def test_exec_reports_argv_and_parents(tmp_path, target):
    tool = Tool("--summary")
    try:
        child = subprocess.Popen([target, "0.5"], cwd=str(tmp_path))
        child.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    ev = _by_pid(evs, child.pid)
    assert ev, err
    ev = ev[0]
    assert ev["argv"] == [target, "0.5"] and ev["comm"] == "ut_exec_tgt" and ev["exe"] == target
    assert ev["ppid"] == os.getpid() and ev["uid"] == os.getuid() and ev["cwd"] == str(tmp_path)
    assert ev["parents"][0]["pid"] == os.getpid()
    assert (ev["netns"], ev["pidns"]) == _ns() and ev["fileless"] is None and ev["argv_truncated"] is False


@needs_bpf
def test_exec_chain_and_exec_a_show_the_new_name_and_comm_matches_it(target, marker):
    # only the target's name: the shells before it in the same pid must not match
    tool = Tool("--comm", "ut_exec_tg*", marker=marker)
    try:
        a = subprocess.Popen(["bash", "-c", f"true; exec -a ut_fake_name {target} 0.2"])
        b = subprocess.Popen(["sh", "-c", f"exec bash -c 'true; exec {target} 0.1'"])
        a.wait(timeout=60)
        b.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    ea, eb = _by_pid(evs, a.pid), _by_pid(evs, b.pid)
    assert len(ea) == 1 and len(eb) == 1, (evs, err)
    assert ea[0]["comm"] == "ut_exec_tgt" and ea[0]["argv"] == ["ut_fake_name", "0.2"] and ea[0]["exe"] == target
    assert eb[0]["comm"] == "ut_exec_tgt" and eb[0]["argv"] == [target, "0.1"]
    assert all(e["comm"] == "ut_exec_tgt" for e in evs), evs


@needs_bpf
def test_memfd_execve_and_fexecve_are_fileless(target):
    # os.execve(fd, ...) is fexecve: execveat(fd, "", AT_EMPTY_PATH)
    code = ("import os, sys\nfd = os.memfd_create(sys.argv[1], 0)\n"
            "os.write(fd, open(sys.argv[2], 'rb').read())\n"
            "if sys.argv[3] == 'fd':\n    os.execve(fd, ['ut_memfd_fd', '0.1'], {})\n"
            "os.execve('/proc/self/fd/%d' % fd, ['ut_memfd_path', '0.1'], {})\n")
    tool = Tool()
    try:
        byfd = subprocess.Popen([sys.executable, "-c", code, "ut_payload_a", target, "fd"])
        bypath = subprocess.Popen([sys.executable, "-c", code, "ut_payload_b", target, "path"])
        assert byfd.wait(timeout=60) == 0 and bypath.wait(timeout=60) == 0
    finally:
        evs, err = tool.stop()
    fd = [e for e in _by_pid(evs, byfd.pid) if e["argv"] == ["ut_memfd_fd", "0.1"]]
    path = [e for e in _by_pid(evs, bypath.pid) if e["argv"] == ["ut_memfd_path", "0.1"]]
    assert fd and path, (evs, err)
    assert fd[0]["fileless"] == "memfd" and fd[0]["exe"] == "/memfd:ut_payload_a (deleted)"
    assert fd[0]["filename"].startswith("/dev/fd/")
    # the kernel names the program after the file (memfd:NAME, 15 bytes) or, before about 6.14, the fd number
    assert fd[0]["comm"] in ("memfd:ut_payloa", fd[0]["filename"].rsplit("/", 1)[1])
    assert path[0]["fileless"] == "memfd" and path[0]["exe"] == "/memfd:ut_payload_b (deleted)"
    assert path[0]["filename"].startswith("/proc/self/fd/")


@needs_bpf
def test_deleted_file_executed_through_its_fd(tmp_path, target):
    code = ("import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nos.unlink(sys.argv[1])\n"
            "os.execve(fd, ['ut_deleted', '0.1'], {})\n")
    victim = str(tmp_path / "ut_dropper")
    shutil.copy(target, victim)
    tool = Tool()
    try:
        p = subprocess.Popen([sys.executable, "-c", code, victim])
        assert p.wait(timeout=60) == 0
    finally:
        evs, err = tool.stop()
    ev = [e for e in _by_pid(evs, p.pid) if e["argv"] == ["ut_deleted", "0.1"]]
    assert ev, (evs, err)
    assert ev[0]["fileless"] == "deleted" and ev[0]["exe"] == victim + " (deleted)"


@needs_bpf
def test_process_gone_within_a_millisecond_keeps_its_argv():
    tool = Tool()
    try:
        kids = [subprocess.Popen(["/bin/true", "ut_short", str(i), "x" * i]) for i in range(20)]
        for k in kids:
            k.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    for i, k in enumerate(kids):
        ev = _by_pid(evs, k.pid)
        assert ev and ev[0]["argv"] == ["/bin/true", "ut_short", str(i), "x" * i], (k.pid, ev, err)
        assert ev[0]["comm"] == "true" and ev[0]["argv_truncated"] is False


@needs_bpf
def test_argv_longer_than_4k_is_marked_truncated():
    args = ["ut_long_%03d_" % i + "y" * 90 for i in range(60)]
    area = len(b"/bin/true\x00") + sum(len(a) + 1 for a in args)
    tool = Tool()
    try:
        p = subprocess.Popen(["/bin/true", *args])
        p.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    ev = _by_pid(evs, p.pid)
    assert ev, err
    ev = ev[0]
    assert area > 4096 and ev["argv_truncated"] is True and ev["argv_bytes"] == area
    got = "\x00".join(ev["argv"]).encode()
    assert len(got) == 4096 and ("\x00".join(["/bin/true", *args])).encode().startswith(got)


@needs_bpf
def test_namespaces_of_a_process_in_new_net_and_pid_namespaces(target, marker):
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1) here")
    tool = Tool("--comm", "ut_exec_tg*", marker=marker)
    try:
        p = subprocess.Popen(["unshare", "--net", "--pid", "--fork", target, "3"])
        deadline = time.monotonic() + 30
        ev = None
        while ev is None and time.monotonic() < deadline:  # read while the target still runs
            if select.select([tool.p.stdout], [], [], 0.2)[0]:
                line = tool.p.stdout.readline()
                tool.lines.append(line)
                got = json.loads(line)
                if got.get("pid") and READY not in got["argv"]:
                    ev = got
        assert ev is not None
        ns = (os.stat(f"/proc/{ev['pid']}/ns/net").st_ino, os.stat(f"/proc/{ev['pid']}/ns/pid").st_ino)
        p.kill()
        p.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    assert (ev["netns"], ev["pidns"]) == ns and ns[0] != _ns()[0] and ns[1] != _ns()[1]


@needs_bpf
def test_text_lines_are_not_cut(target):
    args = ["ut_text_%02d" % i + "z" * 40 for i in range(6)]
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "exec", "--comm", "ut_exec_tg*", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tool.stdout.readline().startswith("TIME")  # the header comes once the program is attached
        p = subprocess.Popen(["bash", "-c", f"exec -a ut_disguised {target} 0 {' '.join(args)}"])
        p.wait(timeout=60)
        time.sleep(0.5)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    line = [x for x in out.splitlines() if "ut_disguised" in x]
    assert line, (out, err)
    assert line[0].endswith(f"[exe {target}] ut_disguised 0 " + " ".join(args)) and len(line[0]) > 300


@needs_bpf
def test_chrooted_program_path_is_as_the_process_sees_it(tmp_path):
    """``exe`` stops at the task's root (fs->root), as d_path() does: /bin/busybox in a chroot."""
    busybox = shutil.which("busybox")
    if not busybox or b"statically linked" not in subprocess.run(["file", busybox], capture_output=True).stdout:
        pytest.skip("no static busybox here to run in a chroot (Debian: busybox-static)")
    root = tmp_path / "jail"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    tool = Tool()
    try:
        p = subprocess.Popen(["chroot", str(root), "/bin/busybox", "true", "ut_jailed"])
        assert p.wait(timeout=60) == 0
    finally:
        evs, err = tool.stop()
    ev = [e for e in _by_pid(evs, p.pid) if e["comm"] == "busybox"]
    assert ev, (evs, err)
    assert ev[0]["exe"] == "/bin/busybox" and ev[0]["filename"] == "/bin/busybox"
    assert ev[0]["argv"] == ["/bin/busybox", "true", "ut_jailed"] and ev[0]["fileless"] is None


@needs_bpf
def test_failed_execs_show_with_their_error(tmp_path):
    """A non-executable file (EACCES), a file that is no program (ENOEXEC) and a missing path
    (ENOENT): no sched_process_exec, but a row each with the caller's pid/comm and the errno."""
    plain = tmp_path / "ut_not_exec"
    plain.write_text("data\n")  # mode 0644: EACCES
    junk = tmp_path / "ut_junk_exec"
    junk.write_bytes(b"\x00\x01\x02\x03 no program\n")
    junk.chmod(0o755)  # executable but no known format and no #!: ENOEXEC
    missing = str(tmp_path / "ut_missing" / "prog")
    code = ("import os, sys\nfor p in sys.argv[1:]:\n    try:\n        os.execv(p, [p, 'ut_failarg'])\n"
            "    except OSError as e:\n        print(e.errno)\n")
    tool = Tool()
    try:
        p = subprocess.Popen([sys.executable, "-c", code, str(plain), str(junk), missing], stdout=subprocess.PIPE,
                             text=True)
        got = p.communicate(timeout=60)[0].split()
    finally:
        evs, err = tool.stop()
    assert got == ["13", "8", "2"], got
    rows = [e for e in _by_pid(evs, p.pid) if e.get("error")]
    by_file = {e["filename"]: e for e in rows}
    comm = os.path.basename(sys.executable)[:15]  # the name the child was exec()ed under
    for path, error in ((str(plain), "EACCES"), (str(junk), "ENOEXEC"), (missing, "ENOENT")):
        e = by_file.get(path)
        assert e is not None, (path, rows, err)
        assert e["error"] == error and e["argv"] == [path, "ut_failarg"] and e["syscall"] == "execve", e
        assert e["comm"] == comm and e["ppid"] == os.getpid() and e["uid"] == os.getuid(), e
        assert e["result"] < 0 and (e["netns"], e["pidns"]) == _ns()


@needs_bpf
def test_ld_preload_is_flagged(target):
    env = dict(os.environ, LD_PRELOAD="/nonexistent/ut_evil.so", LD_AUDIT="/nonexistent/ut_audit.so")
    tool = Tool()
    try:
        p = subprocess.Popen([target, "0"], env=env, stderr=subprocess.DEVNULL)  # ld.so warns, runs on
        p.wait(timeout=60)
        q = subprocess.Popen([target, "0"])
        q.wait(timeout=60)
    finally:
        evs, err = tool.stop()
    ev, clean = _by_pid(evs, p.pid), _by_pid(evs, q.pid)
    assert ev and clean, (evs, err)
    assert ev[0]["ld_preload"] == "/nonexistent/ut_evil.so" and ev[0]["ld_audit"] == "/nonexistent/ut_audit.so"
    assert clean[0]["ld_preload"] is None and clean[0]["error"] is None
    from undertow.commands.exec import line

    assert "[LD_PRELOAD=/nonexistent/ut_evil.so] [LD_AUDIT=/nonexistent/ut_audit.so]" in line(ev[0])
