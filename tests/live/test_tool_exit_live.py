"""`undertow exit`: a child that exits with status 7 and one killed by SIGKILL (by its pid)."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import shutil

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
        code7 = "import time, sys; time.sleep(0.3); sys.exit(7)"
        seven = subprocess.Popen([sys.executable, "-c", code7])
        assert seven.wait(timeout=60) == 7
        quick = subprocess.Popen(["/bin/true", "ut_exit_quick", "x" * 5000])  # gone within a millisecond
        quick.wait(timeout=60)
        inns = None
        if shutil.which("unshare"):  # a process in new network and pid namespaces, which prints them
            r = subprocess.run(["unshare", "--net", "--pid", "--fork", "sh", "-c",
                                "stat -L -c %i /proc/self/ns/net /proc/self/ns/pid; exit 3"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 3, r.stderr
            inns = tuple(int(x) for x in r.stdout.split())
        victim = subprocess.Popen(["/bin/sleep", "60"])
        # a threaded process ended by SIGTERM: every thread takes the group exit
        code_t = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"
        termed = subprocess.Popen([sys.executable, "-c", code_t])
        time.sleep(0.5)
        os.kill(victim.pid, signal.SIGKILL)
        os.kill(termed.pid, signal.SIGTERM)
        victim.wait(timeout=60)
        termed.wait(timeout=60)
        time.sleep(1.0)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    evs = {e["pid"]: e for e in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}
    s = evs.get(seven.pid)
    assert s is not None, (out, err)
    assert s["status"] == 7 and s["signal"] is None and s["ppid"] == os.getpid() and s["uid"] == os.getuid()
    assert 0.25 <= s["lifetime_s"] < 60
    ns = (os.stat("/proc/self/ns/net").st_ino, os.stat("/proc/self/ns/pid").st_ino)
    assert (s["netns"], s["pidns"]) == ns
    # argv read in the kernel: at the tracepoint where the task still has its mm (6.18), else at
    # exit_group(2) (6.1, 6.12); sys.exit() ends by exit_group(2), so every kernel has it
    assert s["argv"] == [sys.executable, "-c", code7] and s["argv_truncated"] is False
    q = evs.get(quick.pid)
    assert q is not None and q["status"] == 0
    assert q["argv_truncated"] and q["argv"][:2] == ["/bin/true", "ut_exit_quick"]
    if inns is not None:
        inner = [e for e in evs.values() if e["comm"] == "sh" and e["status"] == 3 and e["netns"] == inns[0]]
        assert inner and inner[0]["pidns"] == inns[1] and inns[0] != ns[0] and inns[1] != ns[1], evs
    k = evs.get(victim.pid)
    assert k is not None and k["signal"] == "SIGKILL" and k["status"] is None and k["comm"] == "sleep"
    assert k["lifetime_s"] >= 0.4
    # killed by a signal: no exit_group(2); at the tracepoint (6.18) or at the signal's delivery
    assert k["argv"] == ["/bin/sleep", "60"], k
    t = evs.get(termed.pid)
    assert t is not None and t["signal"] == "SIGTERM" and t["argv"] == [sys.executable, "-c", code_t], t
