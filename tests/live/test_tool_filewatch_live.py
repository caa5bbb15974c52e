"""`undertow filewatch`: writes to a temp file by a child, through a rename, through a shared
writable mmap, a truncate, and a write on an fd opened before the tool started; every way of
changing or replacing the file in tests/live/fw_techniques.py (default mode), each asserted
with its op, path, pid and comm; the vfs hook set (fentry/kprobes) in the lab."""

import json
import os
import select
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

CHILD = r'''
import mmap, os, sys
p = sys.argv[1]
f = open(p, "r+")
f.write("x"); f.flush()
os.rename(p, p + ".moved")
f.write("y"); f.flush()
fd = os.open(p + ".moved", os.O_RDWR)
m = mmap.mmap(fd, 4, mmap.MAP_SHARED, mmap.PROT_WRITE | mmap.PROT_READ); m[0:1] = b"Z"; m.close()
os.ftruncate(fd, 3); os.close(fd); f.close()
os.rename(p + ".moved", p)
'''


def test_filewatch_writes_rename_mmap_and_early_fd():
    d = tempfile.mkdtemp(prefix="ut_fw_")
    path = os.path.join(d, "watched")
    with open(path, "w") as f:
        f.write("hello\n")
    early = open(path, "a")   # opened before the tool: found in /proc at start
    try:
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "filewatch", "--all", "--json",
                                 "--duration", "120", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 90
        first = []
        while time.monotonic() < deadline and tool.poll() is None:  # ready once a write on the early fd is reported
            early.write("."); early.flush()
            if select.select([tool.stdout], [], [], 0.3)[0]:
                first.append(tool.stdout.readline())
                if '"op": "write"' in first[-1] and f'"pid": {os.getpid()},' in first[-1]:
                    break
        child = subprocess.run([sys.executable, "-c", CHILD, path], timeout=60)
        assert child.returncode == 0
        time.sleep(1.0)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        out = "".join(first) + out
    finally:
        early.close()
        for p in (path, path + ".moved"):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(d)
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    assert any(e["op"] == "write" and e["pid"] == os.getpid() for e in evs), (out, err)   # the early fd
    kid = [e for e in evs if e["pid"] != os.getpid()]
    ops = [e["op"] for e in kid]
    assert ops.count("write") >= 2, (out, err)          # before and after the rename: same inode
    assert "mmap-write" in ops and "ftruncate" in ops and "rename" in ops and "open" in ops
    w = next(e for e in kid if e["op"] == "write")
    assert w["path"] == path and w["bytes"] == 1 and w["comm"].startswith("python")


HOSTILE_CHILD = r'''
import os, sys
target, other = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
with open("/proc/self/comm", "w") as f:
    f.write("x")          # the name the injected condition (comm == "x") would have matched
os.chmod(other, 0o600)    # path-based calls on another file: never this tool's events
os.truncate(other, 0)
os.rename(other, other + b".2"); os.rename(other + b".2", other)
with open(other, "a") as f:
    f.write("o")
os.unlink(other)
os.chmod(target, 0o600)   # the watched file: reported
os.truncate(target, 1)    # the last event: once it is shown, everything before was read
'''

#: Closes the literal and adds ``|| comm == "x"``; a newline, a byte that is not UTF-8 and a
#: trailing backslash (which stopped the tool from starting).
HOSTILE_NAME = os.fsdecode(b'inj" || comm == "x\n\xff $(id) \\')


def test_filewatch_all_on_a_hostile_name_reports_only_that_file():
    """The file is watched as that name: a process named "x" working on another file is not
    reported, its chmod and truncate of the watched file are."""
    import threading

    from undertow.output.jsonl import clean

    d = tempfile.mkdtemp(prefix="ut_fw_hostile_")
    path = os.path.join(d, HOSTILE_NAME)
    other = os.path.join(d, "other")
    for p in (path, other):
        with open(p, "w") as f:
            f.write("hello\n")
    early = open(path, "a")
    lines, got_last = [], threading.Event()
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "filewatch", "--all", "--json",
                             "--duration", "120", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    def read() -> None:
        for line in tool.stdout:
            lines.append(line)
            if '"op": "truncate"' in line:
                got_last.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not lines and tool.poll() is None:
            early.write("."); early.flush()  # ready once this write is reported
            time.sleep(0.3)
        assert lines, tool.stderr.read() if tool.poll() is not None else "not ready"
        child = subprocess.run([sys.executable, "-c", HOSTILE_CHILD, path, other], timeout=60)
        assert child.returncode == 0
        assert got_last.wait(60), "".join(lines)
    finally:
        tool.send_signal(2)
        try:
            tool.communicate(timeout=120)
        finally:
            early.close()
            for p in (path, other, other + ".2"):
                if os.path.exists(p):
                    os.unlink(p)
            os.rmdir(d)
    reader.join(10)
    evs = [json.loads(l) for l in lines if l.startswith("{")]
    want = clean(path)
    assert evs and all(e["path"] == want for e in evs), [e for e in evs if e["path"] != want]
    ops = [e["op"] for e in evs if e["comm"] == "x"]
    assert ops[-2:] in (["chmod", "truncate"], ["fchmodat", "truncate"]), ops  # chmod(2) on x86_64
    assert not [o for o in ops if o in ("unlinkat", "unlink", "rename", "write", "open")], ops


# ------------------------------------------------------------------ every technique, default mode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_techniques as T  # noqa: E402


def _run_tool_with(techs, extra=()):
    """Start the tool on a fresh file, wait until it reports, run the techniques in order;
    returns (path, dir, {technique: pid}, events, stderr, original inode)."""
    d = tempfile.mkdtemp(prefix="ut_fw_t_")
    path = os.path.join(d, "watched")
    with open(path, "w") as f:
        f.write("hello\n")
    ino0 = os.stat(path).st_ino
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "filewatch", "--json", "-v", "--duration", "300",
                             *extra, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, pids = [], {}
    try:
        deadline = time.monotonic() + 120
        with open(path, "a") as f:
            while time.monotonic() < deadline and tool.poll() is None:
                f.write("."); f.flush()   # ready once this write is reported
                if select.select([tool.stdout], [], [], 0.3)[0]:
                    lines.append(tool.stdout.readline())
                    break
        assert lines, tool.stderr.read() if tool.poll() is not None else "the tool never reported"
        for t in techs:
            pids[t] = T.run_program(t, path, d)
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write("restored\n")
        time.sleep(1.5)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        lines += out.splitlines()
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))
        os.rmdir(d)
    evs = [json.loads(l) for l in lines if l.startswith("{")]
    return path, d, pids, evs, err, ino0


TECHS = [t for t in T.EXPECT if T.X86_64 or t not in T.RAW]
#: Under the lab's emulation each Python child costs ~9 s: there, the programs and the few
#: techniques whose hooks differ between the hook sets (the host runs them all).
LAB = os.environ.get("UNDERTOW_LAB") == "1"
if LAB:
    TECHS = [t for t in TECHS if t in T.PROGRAMS or t in ("io_uring_write", "unlink_recreate",
                                                          "rename_over_then_write", "inherited_fd")]


@pytest.fixture(scope="module")
def default_run():
    return _run_tool_with(TECHS)


def _mine(run, tech):
    path, d, pids, evs, err, ino0 = run
    ops, comm = T.EXPECT.get(tech) or T.VFS_EXPECT[tech]
    got = [e for e in evs if e.get("pid") == pids[tech]]
    # io_uring runs some requests (renameat always) in an io-wq worker of the same process
    comms = (comm, "iou-wrk-") if tech.startswith("io_uring") else (comm,)
    hit = [e for e in got if e["op"] in ops and e["path"] == path and
           (e["comm"] == comm or e["comm"].startswith(comms[-1]))]
    assert hit, (tech, [(e["op"], e["comm"], e["path"]) for e in got], err)
    return hit, got


@pytest.mark.parametrize("tech", TECHS)
def test_filewatch_sees_technique(default_run, tech):
    """The technique makes an event with the expected op, the watched path, the child's pid
    and comm, and the namespaces."""
    hit, got = _mine(default_run, tech)
    e = hit[0]
    # one change, one row: a vfs hook does not repeat what a syscall probe reported
    assert not [x for x in got if x["op"] in ("vfs-write", "setattr", "vfs-rename", "vfs-unlink", "vfs-link")
                and x["tid"] == e["tid"]], [{k: x.get(k) for k in ("op", "tid", "bytes", "changes", "length", "fd")}
                                            for x in got]
    assert e["tid"] and e["netns"] == os.stat("/proc/self/ns/net").st_ino and e["pidns"] == \
        os.stat("/proc/self/ns/pid").st_ino, e


def test_filewatch_technique_details(default_run):
    """The fields that say what happened: rename rows name both sides (absolute, also when the
    program gave relative names), the truncate length, chown ids, the punch-hole flag, a
    replaced or recreated file's new inode."""
    if LAB:
        pytest.skip("runs on the host: every technique in the lab would cost minutes of emulated Python starts")
    path, d, pids, evs, err, ino0 = default_run

    def one(tech, op):
        return next(e for e in evs if e["pid"] == pids[tech] and e["op"] == op)

    mv = one("mv", "rename")
    assert (mv["from"], mv["to"], mv["path"]) == (os.path.join(d, "other.mv"), path, path), mv
    away = one("rename_away", "rename")
    assert (away["from"], away["to"]) == (path, path + ".away"), away
    assert one("truncate_path", "truncate")["length"] == 3
    assert one("truncate_relative", "truncate")["arg"] == path
    ch = one("fchownat_dirfd", "fchownat")
    assert (ch["uid"], ch["gid"], ch["arg"]) == (0, 0, path), ch
    assert one("chmod_dirfd", "fchmodat")["mode"] == "0o644"
    assert one("chmod_relative_prog", "fchmodat")["mode"] == "0o600"
    fa = one("fallocate", "fallocate")
    assert fa["punch_hole"] and fa["length"] == 4096, fa
    assert one("cp", "open-trunc")["write"] is True
    assert one("cp", "ioctl")["cmd"] == "FICLONE"   # coreutils 9 tries a clone first
    assert one("sendfile", "sendfile")["bytes"] == 5 and one("splice", "splice")["bytes"] == 8
    assert one("io_uring_write", "io_uring-write")["opcode"] == 23 if "io_uring_write" in pids else True
    # after unlink + create, the new inode at the path is watched: its writes are shown
    cr = one("unlink_recreate", "create")
    w = [e for e in evs if e["pid"] == pids["unlink_recreate"] and e["op"] == "write"]
    # (ext4 may give the new file the number the unlinked one had: the inode is not compared with ino0)
    assert len(w) >= 2 and {e["inode"] for e in w} == {cr["inode"]} and min(e["ts"] for e in w) > cr["ts"], (cr, w)
    # after a rename over the path, the file moved there is watched: the write after it is shown
    ro = one("rename_over_then_write", "rename")
    wr = one("rename_over_then_write", "write")
    assert ro["to"] == path and ro["from"] == os.path.join(d, "other.mvw") and wr["ts"] > ro["ts"], (ro, wr)
    # a file hard-linked onto the path (after an unlink) is watched: the write after it is shown
    lk = one("link_over_then_write", "link")
    wl = one("link_over_then_write", "write")
    assert (lk["from"], lk["to"]) == (os.path.join(d, "other.lnk"), path) and wl["ts"] > lk["ts"], (lk, wl)
    # a write through a hard link is the watched inode's: shown with the watched path
    assert one("hardlink_write", "write")["path"] == path
    assert one("hardlink_write", "link")["to"] == os.path.join(d, "hardlink")


def test_filewatch_text_lines_cut_no_field(tmp_path):
    """A long path and a long rename target are printed whole in text mode."""
    sub = tmp_path / ("d" * 90)
    sub.mkdir()
    path = str(sub / ("f" * 60))
    with open(path, "w") as f:
        f.write("x")
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "filewatch", "--duration", "120", path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 90
        with open(path, "a") as f:
            while time.monotonic() < deadline and tool.poll() is None and len(lines) < 2:
                f.write("."); f.flush()
                if select.select([tool.stdout], [], [], 0.3)[0]:
                    lines.append(tool.stdout.readline())
        os.rename(path, path + ".moved-away-with-a-long-suffix")
        time.sleep(1.0)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        for p in (path, path + ".moved-away-with-a-long-suffix"):
            if os.path.exists(p):
                os.unlink(p)
    text = "".join(lines) + out
    assert path in text, (text, err)
    row = next(l for l in text.splitlines() if " rename " in l)
    assert "to=" + path + ".moved-away-with-a-long-suffix" in row, row


# ------------------------------------------------------------------ the vfs hook set (lab)


def _vfs_reason():
    from undertow.kernel import Kernel
    from undertow.tools.filewatch import hook_set

    try:
        if hook_set(Kernel()) == "vfs":
            return ""
    except Exception as e:  # noqa: BLE001
        return f"cannot tell the hook set: {e}"
    return ("the vfs hook set needs fentry or BPF kprobes and the VFS functions in BTF: this kernel has "
            "neither (run it in the lab: tests/lab/lab.py run --kernel 6.12 ... -k vfs)")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_filewatch_vfs_hooks_lab():
    """Where fentry/kprobes work: -v names the vfs hook set; an io_uring rename onto the path
    and a truncate through a symlinked directory (what the syscall probes cannot match) are
    seen, and a syscall seen by its tracepoint is not reported twice."""
    why = _vfs_reason()
    if why:
        pytest.skip(why)
    techs = ["splice", "chmod_relative", "truncate_via_symlink", "mv", "io_uring_write", "io_uring_renameat"]
    if not T.X86_64:
        techs = [t for t in techs if t not in T.RAW]
    run = _run_tool_with(techs)
    path, d, pids, evs, err, ino0 = run
    assert "hooks: vfs:" in err, err
    _mine(run, "truncate_via_symlink")
    _mine(run, "splice")
    _mine(run, "mv")
    for t in ("splice", "chmod_relative", "mv"):   # the tracepoint reported it: the kernel hook stays quiet
        ops = [e["op"] for e in evs if e["pid"] == pids[t]]
        assert not [o for o in ops if o in ("vfs-write", "setattr", "vfs-rename")], (t, ops)
    if "io_uring_write" in pids:
        _mine(run, "io_uring_write")
        hit, _ = _mine(run, "io_uring_renameat")   # no syscall, no io_uring tracepoint op: vfs_rename
        assert (hit[0]["from"], hit[0]["to"]) == (os.path.join(d, "other.uring"), path), hit
