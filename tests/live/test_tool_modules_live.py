"""`undertow modules`: says whether the kernel can load modules, and reports a harmless
delete_module("ut_nonexistent") attempt by a child with its result (ENOSYS where the kernel
has no module support, ENOENT where it has)."""

import json
import os
import select
import subprocess
import sys
import time

import pytest

from undertow.tools.modules import SYSCALLS, capability

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

ATTEMPT = "import ctypes, sys; ctypes.CDLL(None).syscall(int(sys.argv[1]), b'ut_nonexistent', 0)"


def test_modules_capability_and_attempt():
    import platform

    nrs = SYSCALLS.get(platform.machine())
    if nrs is None:
        pytest.skip(f"no module syscall numbers for {platform.machine()}")
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "modules", "--json", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # ready once an attempt is reported
            subprocess.run([sys.executable, "-c", ATTEMPT, str(nrs[1])])
            if select.select([tool.stdout], [], [], 0.3)[0]:
                break
        child = subprocess.Popen([sys.executable, "-c", ATTEMPT, str(nrs[1])])
        child.wait(timeout=60)
        time.sleep(1.0)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    can, why = capability()
    assert why in err
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    mine = [e for e in evs if e.get("pid") == child.pid]
    assert mine, (out, err)
    e = mine[0]
    assert e["event"] == "delete_module" and e["module"] == "ut_nonexistent" and e["result"] < 0
    assert e["error"] == ("ENOENT" if can else "ENOSYS")
