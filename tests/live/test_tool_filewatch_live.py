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
