"""`undertow exec`: a child with known argv appears with its ppid, uid, cwd and parents."""

import json
import os
import shutil
import subprocess
import sys
import time

from undertow.kernel import Kernel


def ready(pid):
    tfs = Kernel().tracefs()
    for i in tfs.instances():
        if i.startswith(f"undertow_{pid}_"):
            try:
                return (tfs.read(f"instances/{i}/events/sched/sched_process_exec/enable").strip() == "1"
                        and tfs.read(f"instances/{i}/tracing_on").strip() == "1")
            except Exception:  # noqa: BLE001
                return False
    return False


def test_exec_reports_argv_and_parents(tmp_path):
    sleeper = str(tmp_path / "ut_exec_sleep")
    shutil.copy(shutil.which("sleep") or "/bin/sleep", sleeper)
    proc = subprocess.Popen([sys.executable, "-m", "undertow", "exec", "--json", "--comm", "ut_exec_sle*",
                             "--count", "1", "--duration", "120", "--summary"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not ready(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = subprocess.Popen([sleeper, "1.5"], cwd=str(tmp_path))
    out, err = proc.communicate(timeout=120)
    child.wait()
    lines = [json.loads(l) for l in out.splitlines()]
    evs = [l for l in lines if "argv" in l]
    assert evs, err
    ev = evs[0]
    assert ev["pid"] == child.pid and ev["argv"] == [sleeper, "1.5"]
    assert ev["ppid"] == os.getpid() and ev["uid"] == os.getuid() and ev["cwd"] == str(tmp_path)
    assert ev["parents"][0]["pid"] == os.getpid()
    assert any("summary" in l for l in lines)
