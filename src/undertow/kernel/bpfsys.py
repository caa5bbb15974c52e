"""bpf(2): the call and its commands (programs, maps, pinning, BTF, links).

This module knows the ABI only: the layouts of ``union bpf_attr`` packed with
:mod:`struct` at the offsets of ``include/uapi/linux/bpf.h`` (each builder lists the
offsets it writes), and how to turn a failing call into a :class:`~undertow.errors.BPFError`
a person can read. It knows nothing about programs (no assembler here: callers pass
instruction bytes). The kernel accepts an attr that is larger than the one it knows as
long as the unknown tail is zero (``bpf_check_uarg_tail_zero()`` in kernel/bpf/syscall.c),
so the same bytes work on older kernels when the newer fields are left at 0.

Every function returns plain ints (file descriptors) that the caller owns; use
:func:`undertow.kernel.rawcall.close_fd` or ``closing_fd`` to release them.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple, Union

from ..errors import BPFError, VerifierError
from .rawcall import Pinned, errno_hints, errno_name, syscall_fn, syscall_numbers
from .uapi import (
    BPF_ANY, BPF_F_KPROBE_MULTI_RETURN, BPF_F_UPROBE_MULTI_RETURN, BPF_OBJ_NAME_LEN, AttachType, BPFCmd, MapType,
    ProgType,
)

__all__ = [
    "bpf", "prog_load", "ProgLoadResult", "map_create", "map_lookup_elem", "map_update_elem", "map_delete_elem",
    "map_get_next_key", "map_lookup_batch", "obj_pin", "obj_get", "btf_load", "link_create",
    "link_create_tracing", "link_create_perf_event", "link_create_kprobe_multi", "link_create_uprobe_multi",
    "iter_create", "raw_tracepoint_open", "raise_memlock_rlimit", "kernel_version_code", "prog_test_run",
    "possible_cpus",
]

LOG_BUF_DEFAULT = 1 << 20
LOG_BUF_MAX = (2 ** 32 - 1) >> 2  # bpf_vlog_init() refuses log_size > UINT_MAX >> 2


# ---------------------------------------------------------------------------
# the call
# ---------------------------------------------------------------------------

def bpf(cmd: int, attr: bytearray) -> int:
    """Call ``bpf(cmd, &attr, len(attr))``; ``attr`` is updated in place (output fields).

    Returns the syscall's non-negative result (an fd for creating commands).
    Raises :class:`BPFError` carrying ``errno`` and a readable message.
    """
    sys_bpf, _ = syscall_numbers()
    n = len(attr)
    buf = (ctypes.c_char * n).from_buffer(attr)
    ret = syscall_fn()(ctypes.c_long(sys_bpf), ctypes.c_long(int(cmd)), buf, ctypes.c_long(n))
    if ret < 0:
        err = ctypes.get_errno()
        try:
            name = BPFCmd(cmd).name
        except ValueError:
            name = str(cmd)
        raise BPFError(f"bpf({name}) failed: {errno_name(err)}", errno=err, hints=errno_hints(err))
    return int(ret)


def _name16(name: str) -> bytes:
    # BPF object names: [A-Za-z0-9_.], at most 15 characters + NUL (bpf_obj_name_cpy()).
    clean = "".join(c if (c.isalnum() and c.isascii()) or c in "_." else "_" for c in name)
    return clean.encode()[: BPF_OBJ_NAME_LEN - 1]


def kernel_version_code(release: Optional[str] = None) -> int:
    """``LINUX_VERSION_CODE`` of ``release`` (default: ``uname -r``).

    Only kernels before 5.0 checked ``kern_version`` for kprobe programs; later
    ones ignore it (commit 6c4fc209fcf9 "bpf: remove useless version check for
    prog load").
    """
    rel = release or os.uname().release
    nums: List[int] = []
    for part in rel.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        nums.append(int(digits or 0))
    while len(nums) < 3:
        nums.append(0)
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)


# ---------------------------------------------------------------------------
# BPF_PROG_LOAD
# ---------------------------------------------------------------------------

# union bpf_attr, BPF_PROG_LOAD: prog_type@0 u32, insn_cnt@4 u32, insns@8 u64, license@16 u64,
# log_level@24 u32, log_size@28 u32, log_buf@32 u64, kern_version@40 u32, prog_flags@44 u32,
# prog_name@48 char[16], prog_ifindex@64, expected_attach_type@68, prog_btf_fd@72,
# func_info_rec_size@76, func_info@80 u64, func_info_cnt@88, line_info_rec_size@92,
# line_info@96 u64, line_info_cnt@104, attach_btf_id@108, attach_prog_fd|attach_btf_obj_fd@112,
# core_relo_cnt@116, fd_array@120 u64, core_relos@128 u64, core_relo_rec_size@136,
# log_true_size@140 (output), prog_token_fd@144, fd_array_cnt@148.
_PROG_LOAD_SIZE = 152


class ProgLoadResult:
    """A loaded program's fd with the verifier's log (``prog_load(..., want_log=True)``)."""

    __slots__ = ("fd", "log")

    def __init__(self, fd: int, log: str) -> None:
        self.fd, self.log = fd, log


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    name: str = "",
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    prog_flags: int = 0,
    kern_version: Optional[int] = None,
    prog_btf_fd: int = 0,
    func_info: Optional[bytes] = None,
    func_info_rec_size: int = 8,
    line_info: Optional[bytes] = None,
    line_info_rec_size: int = 16,
    fd_array: Optional[Sequence[int]] = None,
    log_level: int = 0,
    log_size: int = LOG_BUF_DEFAULT,
    want_log: bool = False,
) -> Union[int, ProgLoadResult]:
    """Load a BPF program (``BPF_PROG_LOAD``); ``insns`` are raw ``struct bpf_insn`` bytes.

    Returns the program fd, or a :class:`ProgLoadResult` (fd + verifier log)
    when ``want_log``. With ``log_level=0`` the first attempt runs without a
    log (fast path, as libbpf does); on failure the load is retried once with
    ``log_level=1`` so the :class:`~undertow.errors.VerifierError` carries the
    verifier's log (possibly empty: e.g. EPERM before verification starts).
    """
    if len(insns) % 8:
        raise BPFError(f"program is {len(insns)} bytes, not a whole number of 8-byte instructions",
                       errno=_errno.EINVAL)
    if kern_version is None:
        kern_version = kernel_version_code() if prog_type == ProgType.KPROBE else 0
    level = log_level or (1 if want_log else 0)
    try:
        return _prog_load_once(prog_type, insns, license, name, expected_attach_type, attach_btf_id,
                               attach_btf_obj_fd or attach_prog_fd, prog_flags, kern_version,
                               prog_btf_fd, func_info, func_info_rec_size, line_info,
                               line_info_rec_size, fd_array, level, log_size, want_log)
    except VerifierError:
        if level:
            raise
        return _prog_load_once(prog_type, insns, license, name, expected_attach_type, attach_btf_id,
                               attach_btf_obj_fd or attach_prog_fd, prog_flags, kern_version,
                               prog_btf_fd, func_info, func_info_rec_size, line_info,
                               line_info_rec_size, fd_array, 1, log_size, want_log)


def _prog_load_once(  # type: ignore[no-untyped-def]
                    prog_type, insns, license, name, eat, btf_id, attach_fd, flags, kver,
                    btf_fd, func_info, fi_size, line_info, li_size, fd_array, level, log_size,
                    want_log):
    pin = Pinned()
    log_ptr, log_buf = (0, None)
    size = 0
    if level:
        size = max(256, min(log_size, LOG_BUF_MAX))
        log_ptr, log_buf = pin.out(size)
    attr = bytearray(_PROG_LOAD_SIZE)
    struct.pack_into("<IIQQIIQII", attr, 0, int(prog_type), len(insns) // 8, pin.buf(insns),
                     pin.cstr(license), level, size, log_ptr, kver, flags)
    attr[48:48 + 16] = _name16(name).ljust(16, b"\0")
    struct.pack_into("<II", attr, 68, int(eat), btf_fd)
    if func_info:
        struct.pack_into("<IQI", attr, 76, fi_size, pin.buf(func_info), len(func_info) // fi_size)
    if line_info:
        struct.pack_into("<IQI", attr, 92, li_size, pin.buf(line_info), len(line_info) // li_size)
    struct.pack_into("<II", attr, 108, btf_id, attach_fd)
    if fd_array:
        struct.pack_into("<Q", attr, 120, pin.buf(struct.pack(f"<{len(fd_array)}i", *fd_array)))
    try:
        fd = bpf(BPFCmd.PROG_LOAD, attr)
    except BPFError as e:
        log = _c_text(log_buf)
        try:
            ptname = ProgType(prog_type).name
        except ValueError:
            ptname = str(prog_type)
        what = f"{ptname} program" + (f" {name!r}" if name else "")
        last = _verifier_reason(log)
        if log:
            msg = f"the BPF verifier rejected the {what}" + (f": {last}" if last else "")
        else:
            msg = f"loading the {what} failed: {errno_name(e.errno)}" + (
                ", empty verifier log" if level else "")
        hints = list(e.hints)
        if log and e.errno == _errno.ENOSPC:
            hints.append("the verifier log did not fit its buffer; "
                         "the program is probably too large")
        raise VerifierError(msg, log=log, errno=e.errno, hints=hints) from None
    if want_log:
        return ProgLoadResult(fd, _c_text(log_buf))
    return fd


_LOG_SUMMARY = ("processed ", "verification time", "stack depth", "mark_read", "max_states")


def _verifier_reason(log: str) -> str:
    """The verifier's own explanation: the last log line that is not a statistics line."""
    for line in reversed(log.splitlines()):
        t = line.strip()
        if t and not t.startswith(_LOG_SUMMARY):
            return t
    return ""


def _c_text(buf: "Optional[ctypes.Array[ctypes.c_char]]") -> str:
    if buf is None:
        return ""
    return buf.value.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# maps
# ---------------------------------------------------------------------------

# BPF_MAP_CREATE: map_type@0, key_size@4, value_size@8, max_entries@12, map_flags@16,
# inner_map_fd@20, numa_node@24, map_name@28 char[16], map_ifindex@44, btf_fd@48,
# btf_key_type_id@52, btf_value_type_id@56, btf_vmlinux_value_type_id@60, map_extra@64 u64,
# value_type_btf_obj_fd@72, map_token_fd@76.
_MAP_CREATE_SIZE = 80


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    map_extra: int = 0,
) -> int:
    """Create a map (``BPF_MAP_CREATE``) and return its fd.

    A ``BPF_MAP_TYPE_RINGBUF`` takes key/value size 0 and ``max_entries`` = the
    buffer size in bytes, a power of two multiple of the page size.
    """
    attr = bytearray(_MAP_CREATE_SIZE)
    struct.pack_into("<7I", attr, 0, int(map_type), key_size, value_size, max_entries, flags,
                     inner_map_fd, numa_node)
    attr[28:44] = _name16(name).ljust(16, b"\0")
    struct.pack_into("<III", attr, 48, btf_fd, btf_key_type_id, btf_value_type_id)
    struct.pack_into("<Q", attr, 64, map_extra)
    try:
        return bpf(BPFCmd.MAP_CREATE, attr)
    except BPFError as e:
        try:
            tname = MapType(map_type).name
        except ValueError:
            tname = str(map_type)
        raise BPFError(f"creating a {tname} map failed: {errno_name(e.errno)}", errno=e.errno,
                       hints=e.hints) from None


# BPF_MAP_*_ELEM: map_fd@0 u32, key@8 u64, value|next_key@16 u64, flags@24 u64.
def _elem_attr(fd: int, key_ptr: int, val_ptr: int, flags: int = 0) -> bytearray:
    attr = bytearray(32)
    struct.pack_into("<IxxxxQQQ", attr, 0, fd, key_ptr, val_ptr, flags)
    return attr


def map_lookup_elem(fd: int, key: bytes, value_size: int, flags: int = 0) -> Optional[bytes]:
    """The value at ``key``, or ``None`` when absent (ENOENT).

    ``value_size`` of a per-CPU map is ``round_up(value_size, 8) * possible CPUs``.
    """
    pin = Pinned()
    vptr, vbuf = pin.out(value_size)
    try:
        bpf(BPFCmd.MAP_LOOKUP_ELEM, _elem_attr(fd, pin.buf(key), vptr, flags))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return vbuf.raw[:value_size]


def map_update_elem(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """Set ``key`` to ``value`` (``BPF_ANY``/``BPF_NOEXIST``/``BPF_EXIST``)."""
    pin = Pinned()
    bpf(BPFCmd.MAP_UPDATE_ELEM, _elem_attr(fd, pin.buf(key), pin.buf(value), flags))


def map_delete_elem(fd: int, key: bytes) -> bool:
    """Delete ``key``; ``False`` when it was not there."""
    pin = Pinned()
    try:
        bpf(BPFCmd.MAP_DELETE_ELEM, _elem_attr(fd, pin.buf(key), 0))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_get_next_key(fd: int, key: Optional[bytes], key_size: int) -> Optional[bytes]:
    """The key after ``key`` (the first key when ``key`` is None); ``None`` at the end."""
    pin = Pinned()
    nptr, nbuf = pin.out(key_size)
    try:
        bpf(BPFCmd.MAP_GET_NEXT_KEY, _elem_attr(fd, pin.buf(key) if key is not None else 0, nptr))
    except BPFError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return nbuf.raw[:key_size]


def map_lookup_batch(
    fd: int, key_size: int, value_size: int, count: int, in_batch: Optional[bytes] = None,
    *, batch_key_size: Optional[int] = None, delete: bool = False,
) -> Tuple[List[Tuple[bytes, bytes]], Optional[bytes]]:
    """One ``BPF_MAP_LOOKUP_BATCH`` (or ``..._AND_DELETE_BATCH``) call.

    Returns ``(items, next_batch)``; ``next_batch`` is ``None`` when the map
    was exhausted. ``batch_key_size`` is the opaque batch token size (the key
    size for hash maps, 4 for arrays). Raises :class:`BPFError` with EINVAL on
    kernels/map types without batch support (added in 5.6).
    """
    # batch: in_batch@0 u64, out_batch@8 u64, keys@16 u64, values@24 u64, count@32 u32,
    # map_fd@36 u32, elem_flags@40 u64, flags@48 u64.
    pin = Pinned()
    bks = batch_key_size or key_size
    out_ptr, out_buf = pin.out(bks)
    kptr, kbuf = pin.out(key_size * count)
    vptr, vbuf = pin.out(value_size * count)
    attr = bytearray(56)
    in_ptr = pin.buf(in_batch) if in_batch else 0
    struct.pack_into("<QQQQIIQQ", attr, 0, in_ptr, out_ptr, kptr, vptr, count, fd, 0, 0)
    done = False
    cmd = BPFCmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else BPFCmd.MAP_LOOKUP_BATCH
    try:
        bpf(cmd, attr)
    except BPFError as e:
        if e.errno != _errno.ENOENT:
            raise
        done = True
    n = struct.unpack_from("<I", attr, 32)[0]
    keys, vals = kbuf.raw, vbuf.raw
    items = [(keys[i * key_size:(i + 1) * key_size], vals[i * value_size:(i + 1) * value_size])
             for i in range(n)]
    return items, (None if done else out_buf.raw[:bks])


# ---------------------------------------------------------------------------
# pinning, BTF, links, raw tracepoints
# ---------------------------------------------------------------------------

def obj_pin(fd: int, path: str) -> None:
    """Pin ``fd`` at ``path`` in a bpffs (``BPF_OBJ_PIN``)."""
    # BPF_OBJ_*: pathname@0 u64, bpf_fd@8 u32, file_flags@12 u32, path_fd@16 s32.
    pin = Pinned()
    attr = bytearray(20)
    struct.pack_into("<QII", attr, 0, pin.cstr(path), fd, 0)
    bpf(BPFCmd.OBJ_PIN, attr)


def obj_get(path: str, file_flags: int = 0) -> int:
    """Open a pinned object (``BPF_OBJ_GET``) and return its fd."""
    pin = Pinned()
    attr = bytearray(20)
    struct.pack_into("<QII", attr, 0, pin.cstr(path), 0, file_flags)
    return bpf(BPFCmd.OBJ_GET, attr)


def btf_load(data: bytes, *, log_level: int = 1, log_size: int = 1 << 16) -> int:
    """Load a BTF blob (``BPF_BTF_LOAD``) and return its fd; the error carries the BTF log."""
    # BPF_BTF_LOAD: btf@0 u64, btf_log_buf@8 u64, btf_size@16 u32, btf_log_size@20 u32,
    # btf_log_level@24 u32, btf_log_true_size@28 u32 (out), btf_flags@32, btf_token_fd@36.
    pin = Pinned()
    log_ptr, log_buf = pin.out(log_size) if log_level else (0, None)
    attr = bytearray(40)
    struct.pack_into("<QQIII", attr, 0, pin.buf(data), log_ptr, len(data),
                     log_size if log_level else 0, log_level)
    try:
        return bpf(BPFCmd.BTF_LOAD, attr)
    except BPFError as e:
        log = _c_text(log_buf)
        last = [l for l in log.splitlines() if l.strip()]
        msg = f"the kernel rejected BTF: {last[-1]}" if last else \
            f"loading BTF failed: {errno_name(e.errno)}"
        raise VerifierError(msg, log=log, errno=e.errno, hints=e.hints) from None


# BPF_LINK_CREATE: prog_fd@0, target_fd@4, attach_type@8, flags@12, then a union at 16:
#   target_btf_id@16 | perf_event.bpf_cookie@16 u64 | tracing{target_btf_id@16, cookie@24 u64}
#   | kprobe_multi{flags@16, cnt@20, syms@24 u64, addrs@32 u64, cookies@40 u64}
#   | uprobe_multi{path@16 u64, offsets@24 u64, ref_ctr_offsets@32 u64, cookies@40 u64,
#                  cnt@48 u32, flags@52 u32, pid@56 u32, path_fd@60 u32}.
_LINK_CREATE_SIZE = 64


def link_create(prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                tail: bytes = b"") -> int:
    """Generic ``BPF_LINK_CREATE``; ``tail`` is the packed union at offset 16."""
    attr = bytearray(max(_LINK_CREATE_SIZE, 16 + len(tail)))
    struct.pack_into("<IiII", attr, 0, prog_fd, target_fd, int(attach_type), flags)
    attr[16:16 + len(tail)] = tail
    try:
        return bpf(BPFCmd.LINK_CREATE, attr)
    except BPFError as e:
        try:
            aname = AttachType(attach_type).name
        except ValueError:
            aname = str(attach_type)
        raise BPFError(f"attaching a {aname} link failed: {errno_name(e.errno)}", errno=e.errno,
                       hints=e.hints) from None


def link_create_tracing(prog_fd: int, attach_type: int, *, target_btf_id: int = 0,
                        cookie: int = 0) -> int:
    """Attach a loaded ``BPF_PROG_TYPE_TRACING`` program (fentry/fexit/tp_btf) as a link.

    The attach target was fixed at load time (``attach_btf_id``); ``target_btf_id``
    stays 0 unless re-targeting an extension program.
    """
    return link_create(prog_fd, 0, attach_type, tail=struct.pack("<IxxxxQ", target_btf_id, cookie))


def link_create_perf_event(prog_fd: int, perf_fd: int, cookie: int = 0) -> int:
    """Attach a program to a perf event fd as a ``BPF_LINK_TYPE_PERF_EVENT`` link (5.15+)."""
    return link_create(prog_fd, perf_fd, AttachType.PERF_EVENT, tail=struct.pack("<Q", cookie))


def link_create_kprobe_multi(prog_fd: int, syms: Sequence[str] = (), addrs: Sequence[int] = (),
                             cookies: Sequence[int] = (), retprobe: bool = False) -> int:
    """Attach a ``BPF_PROG_TYPE_KPROBE`` program (loaded with ``BPF_TRACE_KPROBE_MULTI``)
    to many kernel functions at once (fprobe-based, 5.18+)."""
    pin = Pinned()
    cnt = len(syms) or len(addrs)
    sym_ptrs = [pin.cstr(s) for s in syms]
    syms_p = pin.buf(struct.pack(f"<{len(sym_ptrs)}Q", *sym_ptrs)) if sym_ptrs else 0
    addrs_p = pin.buf(struct.pack(f"<{len(addrs)}Q", *addrs)) if addrs else 0
    cookies_p = pin.buf(struct.pack(f"<{len(cookies)}Q", *cookies)) if cookies else 0
    tail = struct.pack("<IIQQQ", BPF_F_KPROBE_MULTI_RETURN if retprobe else 0, cnt, syms_p,
                       addrs_p, cookies_p)
    return link_create(prog_fd, 0, AttachType.TRACE_KPROBE_MULTI, tail=tail)


def link_create_uprobe_multi(prog_fd: int, path: str, offsets: Sequence[int], *,
                             ref_ctr_offsets: Sequence[int] = (), cookies: Sequence[int] = (),
                             pid: int = 0, retprobe: bool = False) -> int:
    """Attach a ``BPF_PROG_TYPE_KPROBE`` program (loaded with ``BPF_TRACE_UPROBE_MULTI``)
    at file ``offsets`` of ``path`` (6.6+); ``pid`` 0 means every process."""
    pin = Pinned()
    offs = pin.buf(struct.pack(f"<{len(offsets)}Q", *offsets))
    refs = 0
    if ref_ctr_offsets:
        refs = pin.buf(struct.pack(f"<{len(ref_ctr_offsets)}Q", *ref_ctr_offsets))
    cks = pin.buf(struct.pack(f"<{len(cookies)}Q", *cookies)) if cookies else 0
    tail = struct.pack("<QQQQIIII", pin.cstr(path), offs, refs, cks, len(offsets),
                       BPF_F_UPROBE_MULTI_RETURN if retprobe else 0, pid, 0)
    return link_create(prog_fd, 0, AttachType.TRACE_UPROBE_MULTI, tail=tail)


def iter_create(link_fd: int) -> int:
    """``BPF_ITER_CREATE``: a new iterator of a ``BPF_TRACE_ITER`` link (Linux 5.8+). Each
    ``read(2)`` of the returned fd runs the link's program over the next objects (tasks,
    files...); it reads 0 bytes (EOF) once every object was visited. See the kernel's
    Documentation/bpf/bpf_iterators.rst."""
    # iter_create: link_fd@0 u32, flags@4 u32.
    attr = bytearray(8)
    struct.pack_into("<II", attr, 0, link_fd, 0)
    try:
        return bpf(BPFCmd.ITER_CREATE, attr)
    except BPFError as e:
        raise BPFError(f"creating an iterator failed: {errno_name(e.errno)}", errno=e.errno,
                       hints=e.hints) from None


def raw_tracepoint_open(name: Optional[str], prog_fd: int, cookie: int = 0) -> int:
    """``BPF_RAW_TRACEPOINT_OPEN``: attach a raw tracepoint program to tracepoint ``name``
    (e.g. ``sched_switch``), or, with ``name=None``, attach a loaded TRACING program
    (tp_btf/fentry/fexit) at the target chosen at load time. Returns the link fd."""
    # raw_tracepoint: name@0 u64, prog_fd@8 u32, pad, cookie@16 u64 (6.10+; zero is accepted
    # by older kernels as tail padding).
    pin = Pinned()
    attr = bytearray(24 if cookie else 16)
    struct.pack_into("<QI", attr, 0, pin.cstr(name), prog_fd)
    if cookie:
        struct.pack_into("<Q", attr, 16, cookie)
    try:
        return bpf(BPFCmd.RAW_TRACEPOINT_OPEN, attr)
    except BPFError as e:
        what = f"raw tracepoint {name}" if name else "the tracing program"
        raise BPFError(f"attaching {what} failed: {errno_name(e.errno)}", errno=e.errno,
                       hints=e.hints) from None


# ---------------------------------------------------------------------------
# rlimit
# ---------------------------------------------------------------------------

def raise_memlock_rlimit() -> bool:
    """Try to lift ``RLIMIT_MEMLOCK`` (needed before 5.11, when BPF memory was charged to
    it; since commit 97306be45fbe "Merge branch 'switch to memcg-based memory accounting'"
    memcg accounting replaced it). Returns whether the limit is now unlimited; never raises
    (without CAP_SYS_RESOURCE raising fails with EPERM, which is harmless on 5.11+)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return False
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if soft == resource.RLIM_INFINITY:
            return True
        inf = resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (inf, inf))
        return True
    except (ValueError, OSError):
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        except (ValueError, OSError):
            pass
        return False


# ---------------------------------------------------------------------------
# test run, possible CPUs
# ---------------------------------------------------------------------------

def prog_test_run(prog_fd: int, ctx: bytes = b"", *, flags: int = 0, cpu: int = 0) -> int:
    """``BPF_PROG_TEST_RUN`` with a context only (raw tracepoint / syscall programs); returns R0.

    Raw tracepoint programs can be run this way since Linux 5.10 (commit 1b4d60ec162f,
    "bpf: Enable BPF_PROG_TEST_RUN for raw_tracepoint"): undertow runs BEGIN/END
    blocks so, in its own process.
    """
    # test: prog_fd@0 retval@4 data_size_in@8 data_size_out@12 data_in@16 data_out@24
    # repeat@32 duration@36 ctx_size_in@40 ctx_size_out@44 ctx_in@48 ctx_out@56 flags@64 cpu@68
    pin = Pinned()
    attr = bytearray(80)
    struct.pack_into("<I", attr, 0, prog_fd)
    if ctx:
        struct.pack_into("<I", attr, 40, len(ctx))
        struct.pack_into("<Q", attr, 48, pin.buf(ctx))
    struct.pack_into("<II", attr, 64, flags, cpu)
    bpf(BPFCmd.PROG_TEST_RUN, attr)
    return struct.unpack_from("<I", attr, 4)[0]


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """How many CPUs per-CPU maps hold values for (``0-3`` -> 4)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            n = max(n, int(b) + 1)
        elif part:
            n = max(n, int(part) + 1)
    return max(n, 1)
