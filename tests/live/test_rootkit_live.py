"""`undertow rootkit` on this kernel (issue 20): techniques planted for real, each reported.

Planted without harming the host (tests/live/rootkit_plant.py): in private mount and network
namespaces, an LD_PRELOAD readdir hider made effective by /etc/ld.so.preload (on an overlay
over /etc of that namespace only), a process it hides, a bind mount over /proc/PID, a packet
socket with a classic BPF filter; on the host, a memfd-executed process, a process whose
binary was deleted, a uprobe and a tracefs instance made by "someone else" (not undertow's
names), a BPF program calling bpf_probe_write_user (loaded, never attached), and an
instance of a running undertow (this process) that must not be reported. Everything is
removed in ``finally``; the namespaces vanish with the helper and its children.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bpf(2), tracefs)")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..", "src")
sys.path.insert(0, HERE)

import rootkit_plant  # noqa: E402


def rootkit(*args, timeout=120):
    res = subprocess.run([sys.executable, "-m", "undertow", "rootkit", "--json", *args], capture_output=True,
                         text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=os.path.abspath(SRC)))
    assert "Traceback" not in res.stderr, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    return res.returncode, lines


def findings(lines):
    return [x for x in lines if x["type"] == "finding"]


def tracefs():
    from undertow.kernel.roots import Roots
    from undertow.kernel.tracefs import find_tracefs

    return find_tracefs(Roots())


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def write_user_program():
    """``(fd, helper)``: a tracepoint program calling bpf_probe_write_user (helper 36),
    loaded, never attached. Under lockdown (integrity) the kernel gives that helper to no
    program (LOCKDOWN_BPF_WRITE_USER, kernel/trace/bpf_trace.c): then one calling
    bpf_send_signal (109), which the check flags the same way."""
    from undertow.errors import VerifierError
    from undertow.kernel import bpfsys

    ins = [(0x7A, 10, -8, 0),   # *(u64 *)(r10 - 8) = 0
           (0xB7, 1, 0, 0),     # r1 = 0 (the user address)
           (0xBF, 2 | 10 << 4, 0, 0),  # r2 = r10
           (0x07, 2, 0, -8),    # r2 += -8
           (0xB7, 3, 0, 1),     # r3 = 1
           (0x85, 0, 0, 36),    # call bpf_probe_write_user
           (0xB7, 0, 0, 0),     # r0 = 0
           (0x95, 0, 0, 0)]     # exit
    raw = b"".join(struct.pack("<BBhi", c, r, o, i) for c, r, o, i in ins)
    try:
        return bpfsys.prog_load(bpfsys.ProgType.TRACEPOINT, raw, license="GPL", name="ut_rk_writeuser"), \
            "bpf_probe_write_user"
    except VerifierError as e:
        if "cannot use helper" not in str(e):
            raise
    ins = [(0xB7, 1, 0, 0),     # r1 = 0 (signal 0)
           (0x85, 0, 0, 109),   # call bpf_send_signal
           (0xB7, 0, 0, 0),
           (0x95, 0, 0, 0)]
    raw = b"".join(struct.pack("<BBhi", c, r, o, i) for c, r, o, i in ins)
    return bpfsys.prog_load(bpfsys.ProgType.TRACEPOINT, raw, license="GPL", name="ut_rk_signal"), \
        "bpf_send_signal"


def prog_id(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("prog_id:"):
                return int(line.split()[1])
    return None


def test_clean_host_has_no_findings():
    rc, lines = rootkit()
    assert not findings(lines), json.dumps(findings(lines), indent=1)
    assert rc in (0, 2), lines[-1]
    assert lines[-1]["type"] == "summary" and lines[-1]["findings"] == 0


def test_planted_techniques_are_reported():
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the LD_PRELOAD hider")
    tfs = tracefs()
    if tfs is None:
        pytest.skip("tracefs is not mounted")
    tmp = tempfile.mkdtemp(prefix="ut-rootkit-")
    kids, helper, prog_fd = [], None, -1
    me = os.getpid()
    uprobe = f"utfx_{me}/p1"
    instance = os.path.join(tfs, "instances", f"utfx_{me}")
    from undertow.backends.leftovers import next_session_name

    own = os.path.join(tfs, "instances", next_session_name())
    made = []
    try:
        rootkit_plant.build_hider(tmp)
        helper = subprocess.Popen([sys.executable, os.path.join(HERE, "rootkit_plant.py"), tmp,
                                   os.path.abspath(SRC)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        ready = helper.stdout.readline().split()
        if not ready or ready[0] != "READY":
            pytest.fail(f"the namespace helper failed: {helper.stderr.read()[-2000:]}")
        hidden_pid, masked_pid, helper_pid = map(int, ready[1:4])
        # on the host: a memfd process, a deleted binary, someone's uprobe and instance, a BPF program
        mfd = os.memfd_create("ut_rk_memfd", 0)
        with open("/bin/sleep", "rb") as f:
            os.write(mfd, f.read())
        kids.append(subprocess.Popen([f"/proc/self/fd/{mfd}", "300"], pass_fds=[mfd]))
        os.close(mfd)
        gone = os.path.join(tmp, "ut_rk_deleted")
        shutil.copy("/bin/sleep", gone)
        kids.append(subprocess.Popen([gone, "300"]))
        os.unlink(gone)
        _append(os.path.join(tfs, "uprobe_events"), f"p:{uprobe} /bin/true:0x1000\n")
        made.append("uprobe")
        os.mkdir(instance)
        made.append("instance")
        os.mkdir(own)
        made.append("own")
        prog_fd, helper_name = write_user_program()
        pid_of_prog = prog_id(prog_fd)

        rc, lines = rootkit()
        got = findings(lines)
        by = {(f["check"], str(f["key"])): f for f in got}

        def expect(check, key, severity, word):
            f = by.get((check, str(key)))
            assert f is not None, f"no {check} finding for {key}: {got}"
            assert f["severity"] == severity and word in f["title"] + json.dumps(f["evidence"]), f
            assert f["evidence"] and f["next"], f

        with open(os.path.join(tmp, "inside.json")) as f:
            inside = findings([json.loads(x) for x in f if x.strip()])
        assert any(f["key"] == hidden_pid and "readdir" in f["title"] for f in inside), inside
        assert any(f["key"] == masked_pid and "mounted over" in f["title"] for f in inside), inside
        mnt = os.readlink(f"/proc/{helper_pid}/ns/mnt").split("[")[1].rstrip("]")
        expect("userspace", f"mnt:{mnt}", "high", "hider.so")
        expect("processes", masked_pid, "high", "mounted over")
        sock = [f for f in got if f["check"] == "sockets" and f"pid {helper_pid} " in f["title"]]
        assert sock and "classic BPF filter" in sock[0]["title"] and sock[0]["severity"] == "medium", got
        expect("userspace", kids[0].pid, "high", "memfd")
        expect("userspace", kids[1].pid, "medium", "deleted")
        expect("hooks", uprobe, "medium", "/bin/true")
        expect("hooks", f"utfx_{me}", "medium", "instance")
        expect("bpf", pid_of_prog, "high", helper_name)
        assert not any(os.path.basename(own) in json.dumps(f) for f in got), got  # a running undertow's
        assert rc == 1 and lines[-1]["exit_status"] == 1
    finally:
        if prog_fd >= 0:
            os.close(prog_fd)
        if "own" in made:
            os.rmdir(own)
        if "instance" in made:
            os.rmdir(instance)
        if "uprobe" in made:
            _append(os.path.join(tfs, "uprobe_events"), f"-:{uprobe}\n")
        for k in kids:
            k.kill()
            k.wait()
        if helper is not None:
            helper.stdin.close()
            try:
                helper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        shutil.rmtree(tmp, ignore_errors=True)
