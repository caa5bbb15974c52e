"""`--backend bpf` on a tracepoint line: user strings read in the kernel and filtered there."""

import subprocess
import sys
import time

import pytest

import undertow
from undertow.events import Event


def test_openat_filename_filtered_in_kernel(tmp_path):
    target = tmp_path / "ut_bpf_target"
    target.write_text("x")
    other = tmp_path / "ut_bpf_other"
    other.write_text("y")
    try:
        t = undertow.trace(f'e syscalls/sys_enter_openat f:filename=="{target}"', backend="bpf", duration=60)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"BPF backend unavailable here: {e}")
    code = f"open({str(other)!r}).close(); open({str(target)!r}).close(); open({str(target)!r}).close()"
    with t:
        child = subprocess.Popen([sys.executable, "-c", code])
        evs = []
        deadline = time.monotonic() + 60
        for rec in t.records():
            if isinstance(rec, Event):
                evs.append(rec)
                if len([e for e in evs if e.pid == child.pid]) >= 2:
                    break
            if time.monotonic() > deadline:
                break
        child.wait()
    mine = [e for e in evs if e.pid == child.pid]
    assert len(mine) == 2
    assert all(e.fields["filename"] == str(target) for e in mine)   # the other file was filtered out
    assert all(e.comm.startswith("python") and e.probe == "syscalls:sys_enter_openat" for e in mine)
    assert t.stats.total_lost == 0


def test_plan_listing_and_refusal():
    t = undertow.trace('e syscalls/sys_enter_openat f:filename=="/etc/hostname"', backend="bpf", offline=True)
    text = t.show()
    assert "call bpf_probe_read_user_str#114" in text and "call bpf_ringbuf_submit#132" in text
    from undertow.errors import UndertowError

    with pytest.raises(UndertowError) as ei:
        undertow.trace("e sched/sched_process_exec f:comm~\"py*\"", backend="bpf")
    assert "Traceback" not in ei.value.render()


def test_data_loc_string_of_exec(tmp_path):
    import shutil

    exe = str(tmp_path / "ut_bpf_exec")
    shutil.copy("/bin/true", exe)
    t = undertow.trace(f'e sched/sched_process_exec f:filename=="{exe}"', backend="bpf", duration=60)
    with t:
        child = subprocess.Popen([exe])
        child.wait()
        evs = []
        deadline = time.monotonic() + 60
        for rec in t.records():
            if isinstance(rec, Event):
                evs.append(rec)
                break
            if time.monotonic() > deadline:
                break
    assert len(evs) == 1
    assert evs[0].fields["filename"] == exe and evs[0].fields["pid"] == child.pid
