"""perf_event_open(2): ``struct perf_event_attr``, the event fd and its ioctls, and the
dynamic PMUs (kprobe, uprobe) read from ``/sys/bus/event_source/devices``.

Tracepoint, kprobe, uprobe and software events are what a BPF program attaches to
(``PERF_EVENT_IOC_SET_BPF``, or a perf-event link: :mod:`undertow.kernel.bpfsys`).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from ..errors import BPFError
from .rawcall import Pinned, errno_hints, errno_name, syscall_fn, syscall_numbers
from .roots import Roots
from .uapi import (
    PERF_ATTR_SIZE_VER7, PERF_ATTR_SIZE_VER8, PERF_EVENT_IOC_DISABLE, PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW, PerfSwConfig, PerfType,
)

__all__ = [
    "PerfEventAttr", "perf_event_open", "perf_event_enable", "perf_event_disable", "perf_event_set_bpf",
    "pmu_type", "pmu_format_bit", "parse_format_bit", "kprobe_attr", "uprobe_attr", "tracepoint_attr",
    "software_attr",
]

# struct perf_event_attr: type@0 u32, size@4 u32, config@8 u64, sample_period|freq@16 u64,
# sample_type@24 u64, read_format@32 u64, flag bits@40 u64 (disabled bit0, inherit 1,
# pinned 2, exclusive 3, exclude_user 4, exclude_kernel 5, exclude_hv 6, exclude_idle 7,
# mmap 8, comm 9, freq 10, ..., watermark 14, precise_ip 15-16, ...),
# wakeup_events|wakeup_watermark@48 u32, bp_type@52 u32, config1|kprobe_func|uprobe_path@56 u64,
# config2|probe_offset@64 u64, branch_sample_type@72, sample_regs_user@80, sample_stack_user@88,
# clockid@92, sample_regs_intr@96, aux_watermark@104, sample_max_stack@108 u16, aux_sample_size@112,
# aux_action@116, sig_data@120 u64 (end of VER7 = 128), config3@128 (VER8 = 136).

FLAG_BITS = {
    "disabled": 0, "inherit": 1, "pinned": 2, "exclusive": 3, "exclude_user": 4,
    "exclude_kernel": 5, "exclude_hv": 6, "exclude_idle": 7, "mmap": 8, "comm": 9, "freq": 10,
    "inherit_stat": 11, "enable_on_exec": 12, "task": 13, "watermark": 14,
}


class PerfEventAttr:
    """``struct perf_event_attr``.

    ``config1_str`` (for the kprobe/uprobe PMUs: the function name or the binary
    path) is turned into a pointer stored in ``config1`` for the duration of the
    call; the kernel copies the string in ``perf_event_open``.
    """

    __slots__ = ("type", "config", "sample_period", "sample_type", "read_format", "flags", "wakeup_events",
                 "bp_type", "config1", "config2", "config3", "config1_str", "size")

    def __init__(self, type: int, config: int = 0, sample_period: int = 0, sample_type: int = 0,
                 read_format: int = 0, flags: int = 0, wakeup_events: int = 0, bp_type: int = 0,
                 config1: int = 0, config2: int = 0, config3: int = 0, config1_str: Optional[str] = None,
                 size: int = PERF_ATTR_SIZE_VER7) -> None:
        self.type, self.config, self.sample_period, self.sample_type = type, config, sample_period, sample_type
        self.read_format, self.flags, self.wakeup_events, self.bp_type = read_format, flags, wakeup_events, bp_type
        self.config1, self.config2, self.config3, self.config1_str = config1, config2, config3, config1_str
        self.size = size

    def set_flag(self, name: str, on: bool = True) -> "PerfEventAttr":
        bit = 1 << FLAG_BITS[name]
        self.flags = (self.flags | bit) if on else (self.flags & ~bit)
        return self

    def pack(self, config1: Optional[int] = None) -> bytes:
        size = max(self.size, PERF_ATTR_SIZE_VER8 if self.config3 else self.size)
        buf = bytearray(size)
        struct.pack_into("<IIQQQQQIIQQ", buf, 0, self.type, size, self.config, self.sample_period,
                         self.sample_type, self.read_format, self.flags, self.wakeup_events,
                         self.bp_type, self.config1 if config1 is None else config1, self.config2)
        if self.config3:
            struct.pack_into("<Q", buf, 128, self.config3)
        return bytes(buf)


def perf_event_open(attr: PerfEventAttr, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC) -> int:
    """``perf_event_open(2)``: return the new event fd. Raises :class:`BPFError`."""
    _, sys_perf = syscall_numbers()
    pin = Pinned()
    c1 = pin.cstr(attr.config1_str) if attr.config1_str is not None else None
    raw = attr.pack(c1)
    buf = ctypes.create_string_buffer(raw, len(raw))
    ret = syscall_fn()(ctypes.c_long(sys_perf), buf, ctypes.c_long(pid), ctypes.c_long(cpu),
                        ctypes.c_long(group_fd), ctypes.c_long(flags))
    if ret < 0:
        err = ctypes.get_errno()
        hints = []
        if err in (_errno.EACCES, _errno.EPERM) and os.geteuid() != 0:
            hints.append("perf events need root (or CAP_PERFMON); see kernel.perf_event_paranoid")
        elif err == _errno.ENOENT:
            hints.append("no such event, PMU or probe target on this kernel")
        elif err == _errno.EINVAL:
            hints.append("the kernel does not accept this perf_event_attr (unknown type or field)")
        names = {int(PerfType.SOFTWARE): "software", int(PerfType.TRACEPOINT): "tracepoint",
                 int(PerfType.HARDWARE): "hardware", int(PerfType.BREAKPOINT): "breakpoint"}
        what = names.get(int(attr.type), f"type {attr.type}")
        raise BPFError(f"perf_event_open({what} event) failed: {errno_name(err)}", errno=err,
                       hints=hints)
    return int(ret)


def _ioctl(fd: int, req: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, req, arg)
    except OSError as e:
        err = e.errno or 0
        raise BPFError(f"{what} failed: {errno_name(err)}", errno=err,
                       hints=errno_hints(err)) from None


def perf_event_enable(fd: int) -> None:
    """``ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)``."""
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def perf_event_disable(fd: int) -> None:
    """``ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)``."""
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


def perf_event_set_bpf(fd: int, prog_fd: int) -> None:
    """``ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)``: run ``prog_fd`` on each event.

    The program stays attached until the perf fd is closed.
    """
    _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")


def pmu_type(name: str, roots: Optional[Roots] = None) -> Optional[int]:
    """The dynamic PMU type of ``name`` (``kprobe``, ``uprobe``) from
    ``/sys/bus/event_source/devices/<name>/type``; ``None`` when the PMU is absent."""
    r = roots or Roots()
    try:
        with open(r.sys_path("bus", "event_source", "devices", name, "type")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pmu_format_bit(name: str, field: str, roots: Optional[Roots] = None) -> Optional[int]:
    """The ``config`` bit of a one-bit PMU format field, e.g. ``retprobe`` -> 0 for
    ``/sys/bus/event_source/devices/uprobe/format/retprobe`` = ``config:0``."""
    r = roots or Roots()
    try:
        with open(r.sys_path("bus", "event_source", "devices", name, "format", field)) as f:
            text = f.read().strip()
    except OSError:
        return None
    return parse_format_bit(text)


def parse_format_bit(text: str) -> Optional[int]:
    """``"config:0"`` -> 0; ``"config:32-63"`` -> 32 (the first bit); anything else -> None."""
    if not text.startswith("config:"):
        return None
    spec = text[len("config:"):].split("-", 1)[0].split(",", 1)[0]
    try:
        return int(spec)
    except ValueError:
        return None


def kprobe_attr(pmu: int, func: str, offset: int = 0, *, retprobe_bit: Optional[int] = None,
                retprobe: bool = False) -> PerfEventAttr:
    """perf_event_attr for the ``kprobe`` PMU: ``config1`` = function name, ``config2`` = offset."""
    cfg = (1 << retprobe_bit) if (retprobe and retprobe_bit is not None) else 0
    return PerfEventAttr(type=pmu, config=cfg, config1_str=func, config2=offset,
                         sample_period=1, wakeup_events=1)


def uprobe_attr(pmu: int, path: str, offset: int, *, retprobe_bit: Optional[int] = None,
                retprobe: bool = False, ref_ctr_offset: int = 0) -> PerfEventAttr:
    """perf_event_attr for the ``uprobe`` PMU: ``config1`` = binary path, ``config2`` = file offset;
    the USDT semaphore offset goes in ``config`` bits 32-63 (``format/ref_ctr_offset``)."""
    cfg = (1 << retprobe_bit) if (retprobe and retprobe_bit is not None) else 0
    cfg |= (ref_ctr_offset & 0xFFFFFFFF) << 32
    return PerfEventAttr(type=pmu, config=cfg, config1_str=path, config2=offset,
                         sample_period=1, wakeup_events=1)


def tracepoint_attr(tp_id: int) -> PerfEventAttr:
    """perf_event_attr for ``PERF_TYPE_TRACEPOINT`` (``tp_id`` from tracefs ``events/G/E/id``)."""
    return PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id, sample_period=1, wakeup_events=1,
                         sample_type=PERF_SAMPLE_RAW)


def software_attr(config: int = PerfSwConfig.CPU_CLOCK, freq: int = 0,
                  period: int = 0) -> PerfEventAttr:
    """perf_event_attr for a software event (profile: cpu-clock at ``freq`` Hz)."""
    a = PerfEventAttr(type=PerfType.SOFTWARE, config=int(config), sample_period=freq or period or 1)
    if freq:
        a.set_flag("freq")
    return a
