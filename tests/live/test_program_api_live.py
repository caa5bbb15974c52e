"""The Python API for custom programs (undertow.program): BCC-like, no C."""

import os
import subprocess
import sys

import pytest

from undertow.events import Event
from undertow.program import Program, all_, args, comm, pid, str_

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def test_seed_example_process_name_on_every_execve(tmp_path):
    """The seed: on every execve, the process name, in a few lines of Python."""
    exe = tmp_path / "ut_prog_api"   # pytest's tmp paths are long: strlen=128 keeps them whole
    exe.write_bytes(open("/bin/true", "rb").read())
    exe.chmod(0o755)
    prog = Program(strlen=128)
    prog.probe("tracepoint:syscalls:sys_enter_execve").emit(comm=comm, file=str_(args.filename))
    with prog.run() as run:
        child = subprocess.run([str(exe)])
        seen = []
        for rec in run.events(timeout=30):
            if isinstance(rec, Event) and rec.fields["file"] == str(exe):
                seen.append(rec)
                break
    assert seen and seen[0].fields["comm"] == seen[0].comm and seen[0].pid != os.getpid()
    assert child.returncode == 0


def test_maps_filters_and_histograms(tmp_path):
    prog = Program()
    me = os.getpid()
    # this process is excluded by default: trace a child, by its comm
    prog.probe("tracepoint:syscalls:sys_enter_lseek", filter=all_(comm == "ut_seeker", args.whence == 0)) \
        .count("seeks", key=[comm]).hist("offsets", args.offset).sum("total", args.offset)
    code = ("import os, ctypes\n"
            "ctypes.CDLL(None).prctl(15, b'ut_seeker', 0, 0, 0)\n"
            "fd = os.open('/', os.O_RDONLY)\n"
            "for o in (1, 2, 3, 1000):\n    os.lseek(fd, o, 0)\n")
    with prog.run() as run:
        subprocess.run([sys.executable, "-c", code], check=True)
        list(run.events(timeout=0.3))
        seeks, hist, total = run.map("seeks"), run.map("@offsets"), run.map("total")
    assert seeks == {("ut_seeker",): 4}
    assert total == {(): 1006}
    assert hist[()] == {2: 1, 3: 2, 11: 1}          # [1], [2,4), [512,1K)
    assert me != 0
