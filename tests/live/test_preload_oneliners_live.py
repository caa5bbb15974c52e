"""The seed's LD_PRELOAD example (../shared/seeds/002: a shim that overrides libc's `open` and
prints "Opening file: PATH") as one-liners with no preload and no restart: a uprobe on libc's
`open` (first argument) and `openat` (second argument) with the path read as a user string
(docs/probe-lines.md and docs/bpftrace.md, "The LD_PRELOAD example"). The workload opens a
file of its own with `open(2)` through libc's open() and another with openat() (a dir fd)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (uprobes)"),
    # uprobes on libc read the same way on every kernel the lab has; the host runs them
    pytest.mark.skipif(os.environ.get("UNDERTOW_LAB") == "1", reason="host only: no kernel-specific hook"),
]

#: names itself, opens PATH with open() and NAME relative to DIR with openat()
WORK = """
import os, sys
with open("/proc/self/comm", "w") as f:
    f.write("seedopen")
os.close(os.open(sys.argv[1], os.O_RDONLY))
d = os.open(sys.argv[2], os.O_RDONLY)
os.close(os.open(sys.argv[3], os.O_RDONLY, dir_fd=d))
"""

TRACE_LINES = ["P libc:open path=+0(%di):ustring f:comm==seedopen",
               "P libc:openat path=+0(%si):ustring f:comm==seedopen"]

RUN_PROGRAM = ('uprobe:libc:open /pid == cpid/ { printf("Opening file: %s\\n", str(arg0)); } '
               'uprobe:libc:openat /pid == cpid/ { printf("Opening file: %s\\n", str(arg1)); }')


@pytest.fixture
def files():
    # short paths: a string is read up to 64 bytes by default (pytest's tmp_path is longer)
    d = tempfile.mkdtemp(prefix="ut")
    try:
        for n, text in (("open.txt", "a"), ("openat.txt", "b"), ("work.py", WORK)):
            with open(os.path.join(d, n), "w") as f:
                f.write(text)
        yield os.path.join(d, "open.txt"), d, "openat.txt"
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
def test_trace_form(backend, files):
    path, folder, name = files
    tr = subprocess.Popen([sys.executable, "-m", "undertow", "trace", "-v", "--json", "--backend", backend,
                           "--duration", "120", *TRACE_LINES],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_head = []
    try:
        for line in tr.stderr:
            err_head.append(line)
            if "undertow trace: attached" in line:
                break
        else:
            out, err = tr.communicate(timeout=60)
            pytest.fail(f"the tracer ended before attaching: {''.join(err_head)}{err}")
        subprocess.run([sys.executable, os.path.join(folder, "work.py"), path, folder, name], check=True, timeout=60)
        tr.send_signal(signal.SIGINT)
        out, err = tr.communicate(timeout=60)
    finally:
        if tr.poll() is None:
            tr.kill()
            tr.wait()
    events = [json.loads(line) for line in out.splitlines() if line.startswith('{"ts"')]
    # the probe's name, the same on both backends
    opens = [e["fields"]["path"] for e in events if e["probe"] == "uprobe:libc:open"]
    openats = [e["fields"]["path"] for e in events if e["probe"] == "uprobe:libc:openat"]
    assert path in opens and folder in opens, (events, err)
    assert name in openats, (events, err)
    assert all(e["comm"] == "seedopen" for e in events)


def test_run_form(files):
    path, folder, name = files
    r = subprocess.run([sys.executable, "-m", "undertow", "run", "-c",
                        f"{sys.executable} {folder}/work.py {path} {folder} {name}",
                        "-e", RUN_PROGRAM], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert f"Opening file: {path}" in lines, r.stdout
    assert f"Opening file: {name}" in lines and f"Opening file: {folder}" in lines, r.stdout

