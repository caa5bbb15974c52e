"""Unit tests for the syscall layer: attr layouts (offsets from include/uapi/linux/bpf.h and
perf_event.h), error shaping, verifier-log retry, helpers. No root: bpf(2) is replaced by a
recorder except in the one test that only checks an error is raised."""

from __future__ import annotations

import ctypes
import errno
import struct

import pytest

from undertow.errors import BPFError, VerifierError
from undertow.kernel import bpfsys
from undertow.kernel import syscalls as sc
from undertow.kernel.roots import Roots

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


class Recorder:
    """Stands in for bpfsys.bpf (the call every command makes): records (cmd, attr copy, pointed-to data) and returns a result."""

    def __init__(self, results=None):
        self.calls = []
        self.results = list(results or [])

    def __call__(self, cmd, attr):
        self.calls.append((sc.BPFCmd(cmd), bytes(attr)))
        r = self.results.pop(0) if self.results else 42
        if callable(r):
            return r(cmd, attr)
        if isinstance(r, BaseException):
            raise r
        return r


def _cstr_at(addr: int) -> bytes:
    return ctypes.string_at(addr)


@pytest.fixture
def rec(monkeypatch):
    r = Recorder()
    monkeypatch.setattr(bpfsys, "bpf", r)
    return r


def test_prog_load_layout(rec):
    seen = {}

    def grab(cmd, attr):
        # pointers are valid only during the call: read them now
        seen["insns"] = ctypes.string_at(struct.unpack_from("<Q", attr, 8)[0], 16)
        seen["license"] = _cstr_at(struct.unpack_from("<Q", attr, 16)[0])
        return 7

    rec.results = [grab]
    fd = sc.prog_load(sc.ProgType.TRACING, RET0, name="undertow-probe!",
                      expected_attach_type=sc.AttachType.TRACE_RAW_TP, attach_btf_id=10300)
    assert fd == 7
    cmd, attr = rec.calls[0]
    assert cmd == sc.BPFCmd.PROG_LOAD
    assert len(attr) == 152
    prog_type, insn_cnt = struct.unpack_from("<II", attr, 0)
    assert (prog_type, insn_cnt) == (26, 2)
    assert seen == {"insns": RET0, "license": b"GPL"}
    log_level, log_size, log_buf = struct.unpack_from("<IIQ", attr, 24)
    assert (log_level, log_size, log_buf) == (0, 0, 0)  # fast path: no log
    assert attr[48:64] == b"undertow_probe_\0"  # 15 chars max, sanitised
    assert struct.unpack_from("<I", attr, 68)[0] == 23  # BPF_TRACE_RAW_TP
    assert struct.unpack_from("<I", attr, 108)[0] == 10300


def test_prog_load_kprobe_sets_kern_version(rec, monkeypatch):
    monkeypatch.setattr(bpfsys, "kernel_version_code", lambda release=None: 0x060C00)
    sc.prog_load(sc.ProgType.KPROBE, RET0)
    assert struct.unpack_from("<I", rec.calls[0][1], 40)[0] == 0x060C00


def test_prog_load_rejects_partial_instruction():
    with pytest.raises(BPFError):
        sc.prog_load(sc.ProgType.TRACEPOINT, b"\x95\0\0")


def test_prog_load_retries_with_log_and_raises_verifier_error(rec):
    log = b"0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\nprocessed 1 insns (limit 1000000)\n"

    def fail_with_log(cmd, attr):
        level, size, ptr = struct.unpack_from("<IIQ", attr, 24)
        assert level == 1 and size >= 256 and ptr
        ctypes.memmove(ptr, log, len(log))
        raise BPFError("bpf(PROG_LOAD) failed", errno=errno.EACCES)

    rec.results = [BPFError("bpf(PROG_LOAD) failed", errno=errno.EACCES), fail_with_log]
    with pytest.raises(VerifierError) as ei:
        sc.prog_load(sc.ProgType.TRACEPOINT, RET0[8:], name="t")
    e = ei.value
    assert len(rec.calls) == 2
    assert e.errno == errno.EACCES
    assert "R0 !read_ok" in e.log
    # the message quotes the verifier's reason, not its statistics line
    assert e.message.endswith("R0 !read_ok")
    assert "TRACEPOINT program 't'" in e.message


def test_prog_load_empty_log_says_so(rec):
    rec.results = [BPFError("x", errno=errno.EPERM), BPFError("x", errno=errno.EPERM)]
    with pytest.raises(VerifierError) as ei:
        sc.prog_load(sc.ProgType.TRACING, RET0, expected_attach_type=sc.AttachType.TRACE_FENTRY,
                     attach_btf_id=5)
    assert ei.value.log == ""
    assert "EPERM" in ei.value.message and "empty verifier log" in ei.value.message


def test_prog_load_want_log(rec):
    def ok(cmd, attr):
        ptr = struct.unpack_from("<Q", attr, 32)[0]
        ctypes.memmove(ptr, b"verified\0", 9)
        return 9

    rec.results = [ok]
    res = sc.prog_load(sc.ProgType.TRACEPOINT, RET0, want_log=True)
    assert isinstance(res, sc.ProgLoadResult)
    assert (res.fd, res.log) == (9, "verified")


def test_map_create_layout(rec):
    sc.map_create(sc.MapType.RINGBUF, 0, 0, 4096, name="events", map_extra=3)
    cmd, attr = rec.calls[0]
    assert cmd == sc.BPFCmd.MAP_CREATE
    assert struct.unpack_from("<5I", attr, 0) == (27, 0, 0, 4096, 0)
    assert attr[28:44] == b"events".ljust(16, b"\0")
    assert struct.unpack_from("<Q", attr, 64)[0] == 3


def test_map_create_error_names_map_type(rec):
    rec.results = [BPFError("x", errno=errno.EINVAL)]
    with pytest.raises(BPFError) as ei:
        sc.map_create(sc.MapType.RINGBUF, 0, 0, 4096)
    assert "RINGBUF" in ei.value.message and "EINVAL" in ei.value.message
    assert ei.value.errno == errno.EINVAL


def test_elem_layout_and_enoent(rec):
    def lookup(cmd, attr):
        fd, key_ptr, val_ptr, flags = struct.unpack_from("<IxxxxQQQ", attr, 0)
        assert fd == 5 and ctypes.string_at(key_ptr, 4) == b"\1\0\0\0"
        ctypes.memmove(val_ptr, b"12345678", 8)
        return 0

    rec.results = [lookup, BPFError("x", errno=errno.ENOENT)]
    assert sc.map_lookup_elem(5, b"\1\0\0\0", 8) == b"12345678"
    assert sc.map_lookup_elem(5, b"\2\0\0\0", 8) is None


def test_map_get_next_key_first_key_passes_null(rec):
    rec.results = [0]
    sc.map_get_next_key(3, None, 4)
    assert struct.unpack_from("<Q", rec.calls[0][1], 8)[0] == 0


def test_lookup_batch_layout(rec):
    def batch(cmd, attr):
        in_b, out_b, keys, vals, count, fd = struct.unpack_from("<QQQQII", attr, 0)
        assert in_b == 0 and count == 4 and fd == 9
        ctypes.memmove(keys, b"\1\0\0\0\2\0\0\0", 8)
        ctypes.memmove(vals, b"aaaabbbb", 8)
        struct.pack_into("<I", attr, 32, 2)
        raise BPFError("x", errno=errno.ENOENT)  # exhausted

    rec.results = [batch]
    items, nxt = sc.map_lookup_batch(9, 4, 4, 4)
    assert items == [(b"\1\0\0\0", b"aaaa"), (b"\2\0\0\0", b"bbbb")]
    assert nxt is None


def test_link_create_uprobe_multi_layout(rec):
    seen = {}

    def grab(cmd, attr):
        prog_fd, target_fd, attach_type, flags = struct.unpack_from("<IiII", attr, 0)
        path, offs, refs, cookies, cnt, uflags, pid = struct.unpack_from("<QQQQIII", attr, 16)
        seen.update(prog=prog_fd, attach=attach_type, cnt=cnt, pid=pid, refs=refs,
                    path=_cstr_at(path), offs=ctypes.string_at(offs, 16), flags=uflags)
        return 11

    rec.results = [grab]
    fd = sc.link_create_uprobe_multi(4, "/lib/libc.so.6", [0x10, 0x20], pid=77, retprobe=True)
    assert fd == 11
    assert seen == {"prog": 4, "attach": 48, "cnt": 2, "pid": 77, "refs": 0,
                    "path": b"/lib/libc.so.6", "offs": struct.pack("<QQ", 0x10, 0x20), "flags": 1}
    assert len(rec.calls[0][1]) == 64


def test_link_create_kprobe_multi_layout(rec):
    seen = {}

    def grab(cmd, attr):
        flags, cnt, syms = struct.unpack_from("<IIQ", attr, 16)
        first = struct.unpack_from("<Q", ctypes.string_at(syms, 8))[0]
        seen.update(cnt=cnt, sym=_cstr_at(first), attach=struct.unpack_from("<I", attr, 8)[0])
        return 3

    rec.results = [grab]
    sc.link_create_kprobe_multi(4, ["vfs_read"])
    assert seen == {"cnt": 1, "sym": b"vfs_read", "attach": 42}


def test_link_create_tracing_cookie_offset(rec):
    sc.link_create_tracing(4, sc.AttachType.TRACE_FENTRY, cookie=0xABCD)
    attr = rec.calls[0][1]
    assert struct.unpack_from("<I", attr, 8)[0] == 24
    assert struct.unpack_from("<Q", attr, 24)[0] == 0xABCD


def test_raw_tracepoint_open_layout(rec):
    seen = {}

    def grab(cmd, attr):
        name_ptr, prog = struct.unpack_from("<QI", attr, 0)
        seen.update(name=_cstr_at(name_ptr) if name_ptr else None, prog=prog, size=len(attr))
        return 5

    rec.results = [grab, grab]
    sc.raw_tracepoint_open("sched_switch", 8)
    assert seen == {"name": b"sched_switch", "prog": 8, "size": 16}
    sc.raw_tracepoint_open(None, 9)
    assert seen == {"name": None, "prog": 9, "size": 16}


def test_raw_tracepoint_error_is_readable(rec):
    rec.results = [BPFError("x", errno=errno.ENOENT)]
    with pytest.raises(BPFError) as ei:
        sc.raw_tracepoint_open("nope", 3)
    assert ei.value.message == \
        "attaching raw tracepoint nope failed: ENOENT (No such file or directory)"


def test_btf_load_error_carries_log(rec):
    def fail(cmd, attr):
        ptr = struct.unpack_from("<Q", attr, 8)[0]
        ctypes.memmove(ptr, b"magic: 0xeb9f\nInvalid name\0", 27)
        raise BPFError("x", errno=errno.EINVAL)

    rec.results = [fail]
    with pytest.raises(VerifierError) as ei:
        sc.btf_load(b"\x9f\xeb\x01\x00")
    assert ei.value.message == "the kernel rejected BTF: Invalid name"


def test_perf_event_attr_pack():
    a = sc.software_attr(sc.PerfSwConfig.CPU_CLOCK, freq=49)
    raw = a.pack()
    assert len(raw) == sc.PERF_ATTR_SIZE_VER7 == 128
    typ, size, config, period = struct.unpack_from("<IIQQ", raw, 0)
    assert (typ, size, config, period) == (1, 128, 0, 49)
    assert struct.unpack_from("<Q", raw, 40)[0] == 1 << 10  # freq bit
    a.set_flag("disabled").set_flag("freq", False)
    assert struct.unpack_from("<Q", a.pack(), 40)[0] == 1


def test_perf_event_attr_config3_grows_to_ver8():
    a = sc.PerfEventAttr(type=9, config3=5)
    raw = a.pack()
    assert len(raw) == 136 and struct.unpack_from("<I", raw, 4)[0] == 136
    assert struct.unpack_from("<Q", raw, 128)[0] == 5


def test_uprobe_attr_fields():
    a = sc.uprobe_attr(8, "/bin/true", 0x1234, retprobe_bit=0, retprobe=True, ref_ctr_offset=0x40)
    raw = a.pack(config1=0xDEAD)
    assert struct.unpack_from("<I", raw, 0)[0] == 8
    assert struct.unpack_from("<Q", raw, 8)[0] == (0x40 << 32) | 1
    assert struct.unpack_from("<QQ", raw, 56) == (0xDEAD, 0x1234)
    assert a.config1_str == "/bin/true"


def test_tracepoint_attr():
    raw = sc.tracepoint_attr(321).pack()
    assert struct.unpack_from("<IIQ", raw, 0) == (2, 128, 321)
    assert struct.unpack_from("<Q", raw, 24)[0] == sc.PERF_SAMPLE_RAW


def test_ioctl_numbers():
    # _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32)
    assert sc.PERF_EVENT_IOC_ENABLE == (ord("$") << 8) | 0
    assert sc.PERF_EVENT_IOC_DISABLE == (ord("$") << 8) | 1
    assert sc.PERF_EVENT_IOC_SET_BPF == (1 << 30) | (4 << 16) | (ord("$") << 8) | 8


def test_syscall_numbers():
    assert sc.syscall_numbers("x86_64") == (321, 298)
    assert sc.syscall_numbers("aarch64") == (280, 241)
    with pytest.raises(BPFError) as ei:
        sc.syscall_numbers("pdp11")
    assert ei.value.hints


def test_pmu_type_and_format(tmp_path):
    d = tmp_path / "bus" / "event_source" / "devices" / "uprobe"
    (d / "format").mkdir(parents=True)
    (d / "type").write_text("8\n")
    (d / "format" / "retprobe").write_text("config:0\n")
    (d / "format" / "ref_ctr_offset").write_text("config:32-63\n")
    roots = Roots(sys=str(tmp_path), live=False)
    assert sc.pmu_type("uprobe", roots) == 8
    assert sc.pmu_type("kprobe", roots) is None
    assert sc.pmu_format_bit("uprobe", "retprobe", roots) == 0
    assert sc.pmu_format_bit("uprobe", "ref_ctr_offset", roots) == 32
    assert sc.pmu_format_bit("uprobe", "nope", roots) is None
    assert sc.parse_format_bit("config1:0") is None


def test_kernel_version_code():
    assert sc.kernel_version_code("6.18.44-fc-v657") == (6 << 16) | (18 << 8) | 44
    assert sc.kernel_version_code("4.19.300") == (4 << 16) | (19 << 8) | 255
    assert sc.kernel_version_code("5.10") == (5 << 16) | (10 << 8)


def test_errno_name():
    assert sc.errno_name(errno.EPERM) == "EPERM (Operation not permitted)"


def test_raise_memlock_never_raises(monkeypatch):
    import resource

    def boom(*a):
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda r: (8 << 20, 8 << 20))
    monkeypatch.setattr(resource, "setrlimit", boom)
    assert sc.raise_memlock_rlimit() is False


def test_close_fd_ignores_bad_fds():
    sc.close_fd(None)
    sc.close_fd(-1)
    sc.close_fd(999999)


def test_real_bpf_bad_command_raises():
    # Root gets EINVAL for an unknown command; others EPERM (or ENOSYS without bpf(2)).
    with pytest.raises(BPFError) as ei:
        sc.bpf(4000, bytearray(8))
    assert ei.value.errno in (errno.EINVAL, errno.EPERM, errno.ENOSYS)
    assert ei.value.message.startswith("bpf(4000) failed: E")
