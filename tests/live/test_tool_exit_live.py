"""`undertow exit`: a child that exits with status 7 and one killed by SIGKILL (by its pid)."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def test_exit_status_signal_and_lifetime():
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "exit", "--json", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # ready once an exit of ours is reported
            subprocess.run(["/bin/true"])
            if select.select([tool.stdout], [], [], 0.3)[0]:
                break
        seven = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(0.3); sys.exit(7)"])
        assert seven.wait(timeout=60) == 7
        victim = subprocess.Popen(["/bin/sleep", "60"])
        time.sleep(0.5)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=60)
        time.sleep(1.0)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    evs = {e["pid"]: e for e in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}
    s = evs.get(seven.pid)
    assert s is not None, (out, err)
    assert s["status"] == 7 and s["signal"] is None and s["ppid"] == os.getpid() and s["uid"] == os.getuid()
    assert 0.25 <= s["lifetime_s"] < 60
    k = evs.get(victim.pid)
    assert k is not None and k["signal"] == "SIGKILL" and k["status"] is None and k["comm"] == "sleep"
    assert k["lifetime_s"] >= 0.4
