"""`undertow filewatch`: writes to a temp file by a child, through a rename, through a shared
writable mmap, a truncate, and a write on an fd opened before the tool started."""

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
        while time.monotonic() < deadline:  # ready once a write on the early fd is reported
            early.write("."); early.flush()
            if select.select([tool.stdout], [], [], 0.3)[0]:
                break
        child = subprocess.run([sys.executable, "-c", CHILD, path], timeout=60)
        assert child.returncode == 0
        time.sleep(1.0)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
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
