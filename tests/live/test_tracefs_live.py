"""tracefs on the running kernel: find/mount it, list and parse every event format,
instances, and decode a real record from trace_pipe_raw against ground truth we make."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import glob
import os
import shutil
import struct
import subprocess
import time

import pytest

from undertow.errors import TracefsError, UnknownEventError
from undertow.kernel.formats import parse_format
from undertow.kernel.roots import Roots
from undertow.kernel.tracefs import Tracefs, mount_tracefs, open_tracefs


@pytest.fixture(scope="module")
def tfs() -> Tracefs:
    try:
        return open_tracefs(Roots())
    except TracefsError as e:
        pytest.skip(f"tracefs unusable here: {e.render()}")


def _umount(path: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.umount2(os.fsencode(path), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def test_open_finds_or_mounts_tracefs(tfs: Tracefs) -> None:
    assert os.path.exists(os.path.join(tfs.path, "available_events"))
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2:3] in (["tracefs"], ["debugfs"])]
    assert any(tfs.path == m or tfs.path.startswith(m + "/") for m in mounts)


def test_mount_tracefs_on_a_private_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "tracing")
    os.mkdir(target)
    try:
        mount_tracefs(target)
    except TracefsError as e:
        pytest.skip(f"cannot mount tracefs here: {e.message}")
    try:
        assert os.path.exists(os.path.join(target, "available_events"))
        assert Tracefs(target).events("sched:sched_switch") == [("sched", "sched_switch")]
    finally:
        _umount(target)
    assert not os.path.exists(os.path.join(target, "available_events"))


def test_list_syscall_open_events(tfs: Tracefs) -> None:
    if not tfs.has("events/syscalls"):
        pytest.skip("no syscalls:* tracepoints (CONFIG_FTRACE_SYSCALLS off)")
    evs = tfs.events("syscalls:sys_enter_open*")
    assert ("syscalls", "sys_enter_openat") in evs
    assert all(g == "syscalls" and e.startswith("sys_enter_open") for g, e in evs)
    assert evs == sorted(evs)
    fmt = tfs.event_format("syscalls", "sys_enter_openat")
    assert fmt.field("filename").is_pointer and fmt.field("filename").size == 8


def test_every_format_on_this_kernel_parses(tfs: Tracefs) -> None:
    paths = glob.glob(os.path.join(tfs.path, "events", "*", "*", "format"))
    assert len(paths) > 100
    texts = []
    for p in paths:
        with open(p) as f:
            texts.append((p, f.read()))
    t0 = time.perf_counter()
    fmts = [parse_format(text, p.split(os.sep)[-3], p.split(os.sep)[-2]) for p, text in texts]
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for fmt in fmts:
        fmt.decoder()(bytes(fmt.fixed_size + 16))
    compile_s = time.perf_counter() - t0
    print(f"\n{len(fmts)} formats: parse {parse_s * 1000:.0f} ms, compile+decode {compile_s * 1000:.0f} ms")
    ids = {}
    for (p, _), fmt in zip(texts, fmts):
        assert fmt.id >= 0, p
        assert [f.name for f in fmt.fields[:4]] == ["common_type", "common_flags",
                                                    "common_preempt_count", "common_pid"], p
        id_file = os.path.join(os.path.dirname(p), "id")
        if os.path.exists(id_file):
            with open(id_file) as f:
                assert int(f.read()) == fmt.id, p
        ids[fmt.id] = p
    assert len(ids) == len(fmts)  # event ids are unique


def test_unknown_event_hint(tfs: Tracefs) -> None:
    with pytest.raises(UnknownEventError) as ei:
        tfs.event_format("sched", "sched_swtich")
    assert "did you mean sched:sched_switch?" in ei.value.hints


def test_instance_create_and_remove(tfs: Tracefs) -> None:
    name = f"undertow_test_{os.getpid()}"
    inst = tfs.create_instance(name)
    try:
        assert name in tfs.instances()
        assert inst.has("trace") and inst.has("events/sched/sched_switch/enable")
        inst.write("events/sched/sched_switch/enable", "1")
        assert inst.read("events/sched/sched_switch/enable").strip() == "1"
        # the global instance is untouched
        assert tfs.read("events/sched/sched_switch/enable").strip() in ("0", "1")
    finally:
        tfs.remove_instance(name)
    assert name not in tfs.instances()
    assert not os.path.exists(inst.path)


def test_bad_filter_error_is_explained(tfs: Tracefs) -> None:
    name = f"undertow_test_{os.getpid()}_f"
    inst = tfs.create_instance(name)
    try:
        with pytest.raises(TracefsError) as ei:
            inst.write("events/sched/sched_switch/filter", "no_such_field == 1", append=False)
        assert ei.value.errno == errno.EINVAL
        if tfs.has("error_log"):
            assert "no_such_field" in ei.value.kernel_log or "Field not found" in ei.value.kernel_log
    finally:
        tfs.remove_instance(name)


def _raw_records(inst_path: str, hp) -> list:  # type: ignore[no-untyped-def]
    """Walk every per-CPU trace_pipe_raw page (minimal ring-buffer page walker for this test)."""
    out = []
    for cpu in sorted(os.listdir(os.path.join(inst_path, "per_cpu"))):
        fd = os.open(os.path.join(inst_path, "per_cpu", cpu, "trace_pipe_raw"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            while True:
                try:
                    page = os.read(fd, hp.page_size)
                except BlockingIOError:
                    break
                if not page:
                    break
                commit = int.from_bytes(page[hp.commit_offset : hp.commit_offset + hp.commit_size], "little")
                end = min(len(page), hp.data_offset + (commit & 0x3FFFFFFF))
                pos = hp.data_offset
                while pos + 4 <= end:
                    word = struct.unpack_from("<I", page, pos)[0]
                    tl = word & 31
                    if tl == 0:
                        ln = struct.unpack_from("<I", page, pos + 4)[0]
                        out.append((page, pos + 8, pos + 4 + ln))
                        nxt = pos + 4 + ln
                    elif tl <= 28:
                        out.append((page, pos + 4, pos + 4 + tl * 4))
                        nxt = pos + 4 + tl * 4
                    elif tl == 29:
                        if word >> 5 == 0:
                            break
                        nxt = pos + 4 + struct.unpack_from("<I", page, pos + 4)[0]
                    else:
                        nxt = pos + 8
                    if nxt <= pos:
                        break
                    pos = nxt
        finally:
            os.close(fd)
    return out


def test_decode_real_exec_record(tfs: Tracefs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not tfs.has_event("sched", "sched_process_exec"):
        pytest.skip("no sched:sched_process_exec tracepoint")
    fmt = tfs.event_format("sched", "sched_process_exec")
    hp = tfs.header_page()
    exe = str(tmp_path / "undertow_probe_true")
    shutil.copy("/bin/true", exe)
    name = f"undertow_test_{os.getpid()}_x"
    inst = tfs.create_instance(name)
    try:
        inst.write("events/sched/sched_process_exec/enable", "1")
        child = subprocess.Popen([exe])
        child.wait()
        inst.write("events/sched/sched_process_exec/enable", "0")
        dec = fmt.decoder()
        got = [dec(page, start, end) for page, start, end in _raw_records(inst.path, hp)]
        got = [r for r in got if r.get("common_type") == fmt.id]
    finally:
        tfs.remove_instance(name)
    mine = [r for r in got if r["pid"] == child.pid]
    assert mine, f"no exec record for pid {child.pid} among {got}"
    assert mine[0]["filename"] == exe and mine[0]["common_pid"] == child.pid
