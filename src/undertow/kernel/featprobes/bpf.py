"""Feature probes of BPF: each loads a two-instruction program (``r0 = 0; exit``) with
:mod:`undertow.kernel.bpfsys` and attaches it to a real target, then closes everything at
once: a probe never leaves a program, link, perf event or map behind. They run only on the
live kernel, after the ``bpf`` probe said bpf(2) works (:meth:`ProbeContext.need_bpf`).
"""

from __future__ import annotations

import errno as _errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

from ...errors import BPFError, UndertowError
from .. import bpfsys, perfevent, rawcall
from ..rawcall import errno_name
from ..uapi import AttachType, MapType, PerfSwConfig, ProgType
from .base import ProbeContext, Refused, Unknown
from .tracefs import no_kprobes_reason

__all__ = ["RET0_PROG", "probe_bpf", "probe_bpf_tracepoint", "probe_bpf_raw_tracepoint", "probe_bpf_tp_btf",
           "attach_targets", "probe_bpf_fentry", "probe_bpf_fexit", "probe_bpf_kprobe", "probe_bpf_kprobe_multi", "probe_bpf_uprobe",
           "probe_bpf_uprobe_multi", "probe_bpf_iter_task", "probe_bpf_iter_task_file", "probe_bpf_perf_event",
           "probe_bpf_ringbuf", "probe_bpf_perf_buffer"]

# r0 = 0 (BPF_ALU64|BPF_MOV|BPF_K = 0xb7); exit (BPF_JMP|BPF_EXIT = 0x95).
# struct bpf_insn: code u8, dst_reg:4|src_reg:4 u8, off s16, imm s32 (little endian).
RET0_PROG = bytes.fromhex("b700000000000000" "9500000000000000")


def _load_ret0(prog_type: int, **kw: Any) -> int:
    fd = bpfsys.prog_load(prog_type, RET0_PROG, license="GPL", name="undertow_probe", **kw)
    assert isinstance(fd, int)
    return fd


def probe_bpf(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if not ctx.roots.live:
        raise Unknown("unknown: not the running kernel's files (BPF is probed only live)")
    try:
        fd = bpfsys.map_create(MapType.ARRAY, 4, 4, 1, name="undertow_probe")
    except BPFError as e:
        if e.errno == _errno.ENOSYS:
            return False, "no bpf(2) syscall (CONFIG_BPF_SYSCALL=n)"
        if e.errno == _errno.EPERM and ctx.euid != 0:
            raise Unknown("unknown: needs root (bpf(2) refused with EPERM: no CAP_BPF)") from None
        return False, f"bpf(2) refused: {errno_name(e.errno)}"
    rawcall.close_fd(fd)
    return True, "bpf(2) creates maps"


def _tracepoint_target(ctx: ProbeContext) -> Tuple[str, int]:
    t = ctx.tracefs()
    for ev in ("sched/sched_switch", "syscalls/sys_enter_getpid", "raw_syscalls/sys_enter"):
        if t.has(f"events/{ev}/id"):
            try:
                return ev, int(t.read(f"events/{ev}/id").strip())
            except (ValueError, UndertowError, OSError):
                continue
    raise Unknown("unknown: no tracepoint id readable in tracefs")


def probe_bpf_tracepoint(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    ev, tp_id = _tracepoint_target(ctx)
    prog = pfd = -1
    try:
        prog = _load_ret0(ProgType.TRACEPOINT)
        pfd = perfevent.perf_event_open(perfevent.tracepoint_attr(tp_id), pid=-1, cpu=0)
        perfevent.perf_event_set_bpf(pfd, prog)
    finally:
        rawcall.close_fd(pfd)
        rawcall.close_fd(prog)
    return True, f"loaded and attached to {ev.replace('/', ':')}"


def probe_bpf_raw_tracepoint(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = link = -1
    try:
        prog = _load_ret0(ProgType.RAW_TRACEPOINT)
        link = bpfsys.raw_tracepoint_open("sched_switch", prog)
    finally:
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, "loaded and attached to sched_switch"


def probe_bpf_tp_btf(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    # tp_btf programs name their tracepoint by the BTF id of the typedef
    # btf_trace_<tracepoint> (include/trace/bpf_probe.h).
    try:
        tid = ctx.btf_id("btf_trace_sched_switch", "typedef")
    except Unknown as e:
        if str(e).startswith("unknown:"):
            raise
        raise Refused(f"needs kernel BTF: {e}")
    if tid is None:
        return False, "BTF has no btf_trace_sched_switch typedef (kernel < 5.5)"
    prog = link = -1
    try:
        prog = _load_ret0(ProgType.TRACING, expected_attach_type=AttachType.TRACE_RAW_TP,
                     attach_btf_id=tid)
        link = bpfsys.raw_tracepoint_open(None, prog)
    finally:
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, "loaded and attached to sched_switch"


_FENTRY_TARGETS = ("do_sys_openat2", "vfs_read", "do_sys_open", "ksys_read")


def attach_targets() -> Tuple[str, ...]:
    """The kernel functions these probes attach fentry/fexit, kprobe and kprobe_multi
    programs to. ftrace's ``touched_functions`` keeps listing them after the probes are
    closed: the rootkit check explains those lines with this."""
    return _FENTRY_TARGETS


def _tracing_func(ctx: ProbeContext, attach: int, label: str) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    try:
        target = None
        for name in _FENTRY_TARGETS:
            fid = ctx.btf_id(name, "func")
            if fid:
                target = (name, fid)
                break
    except Unknown as e:
        if str(e).startswith("unknown:"):
            raise
        raise Refused(f"needs kernel BTF: {e}")
    if target is None:
        raise Unknown(f"unknown: none of {', '.join(_FENTRY_TARGETS)} is a BTF FUNC")
    name, fid = target
    prog = link = -1
    try:
        try:
            prog = _load_ret0(ProgType.TRACING, expected_attach_type=attach, attach_btf_id=fid)
        except BPFError as e:
            log = getattr(e, "log", "")
            why = f"loading an {label} program for {name} failed: {errno_name(e.errno)}"
            why += ", empty verifier log" if not log.strip() else f": {e.message}"
            if e.errno == _errno.EPERM and ctx.euid == 0 and ctx.is_available("bpf_tp_btf"):
                why += (" (tp_btf, the same program type, loads:"
                        " the kernel refuses this attach type)")
            return False, why
        try:
            link = bpfsys.raw_tracepoint_open(None, prog)
        except BPFError as e:
            return False, (f"{label} for {name} loaded but attaching failed: "
                           f"{errno_name(e.errno)}")
    finally:
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, f"loaded and attached to {name}"


def probe_bpf_fentry(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    return _tracing_func(ctx, AttachType.TRACE_FENTRY, "fentry")


def probe_bpf_fexit(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    return _tracing_func(ctx, AttachType.TRACE_FEXIT, "fexit")


def _iterator(ctx: ProbeContext, target: str) -> Tuple[Optional[bool], str]:
    """A ``bpf_iter_<target>`` iterator (Documentation/bpf/bpf_iterators.rst): a TRACING
    program loaded with ``BPF_TRACE_ITER`` and ``attach_btf_id`` = the BTF FUNC
    ``bpf_iter_<target>``, a ``BPF_LINK_CREATE`` link, and ``BPF_ITER_CREATE`` on it (the
    fd whose read(2) would run the program; not read here)."""
    ctx.need_bpf()
    func = "bpf_iter_" + target
    try:
        fid = ctx.btf_id(func, "func")
    except Unknown as e:
        if str(e).startswith("unknown:"):
            raise
        raise Refused(f"needs kernel BTF: {e}")
    if not fid:
        return False, f"BTF has no FUNC {func} (BPF iterators: Linux 5.8+)"
    prog = link = it = -1
    try:
        try:
            prog = _load_ret0(ProgType.TRACING, expected_attach_type=AttachType.TRACE_ITER, attach_btf_id=fid)
        except BPFError as e:
            log = getattr(e, "log", "")
            why = f"loading a {target} iterator program failed: {errno_name(e.errno)}"
            return False, why + (", empty verifier log" if not log.strip() else f": {e.message}")
        try:
            link = bpfsys.link_create(prog, 0, AttachType.TRACE_ITER)
            it = bpfsys.iter_create(link)
        except BPFError as e:
            return False, f"the {target} iterator loaded but {e.message}"
    finally:
        rawcall.close_fd(it)
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, f"{func} iterator created"


def probe_bpf_iter_task(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    return _iterator(ctx, "task")


def probe_bpf_iter_task_file(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    return _iterator(ctx, "task_file")


def probe_bpf_kprobe(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    pmu = perfevent.pmu_type("kprobe", ctx.roots)
    if pmu is None:
        return False, no_kprobes_reason(ctx)
    prog = pfd = -1
    last: Optional[BPFError] = None
    try:
        prog = _load_ret0(ProgType.KPROBE)
        for name in _FENTRY_TARGETS:
            try:
                pfd = perfevent.perf_event_open(perfevent.kprobe_attr(pmu, name), pid=-1, cpu=0)
            except BPFError as e:
                last = e
                continue
            perfevent.perf_event_set_bpf(pfd, prog)
            return True, f"loaded and attached to {name} through the kprobe PMU"
    finally:
        rawcall.close_fd(pfd)
        rawcall.close_fd(prog)
    assert last is not None
    return False, f"kprobe PMU refused every test function: {errno_name(last.errno)}"


def probe_bpf_kprobe_multi(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = link = -1
    try:
        try:
            prog = _load_ret0(ProgType.KPROBE, expected_attach_type=AttachType.TRACE_KPROBE_MULTI)
        except BPFError as e:
            return False, f"loading a kprobe_multi program failed: {errno_name(e.errno)}"
        try:
            link = bpfsys.link_create_kprobe_multi(prog, ["vfs_read"])
        except BPFError as e:
            extra = " (CONFIG_FPROBE=n)" if e.errno in (_errno.EOPNOTSUPP, _errno.ENOTSUP) else ""
            return False, f"creating a kprobe_multi link failed: {errno_name(e.errno)}{extra}"
    finally:
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, "kprobe_multi link on vfs_read"


def _uprobe_target() -> Tuple[str, int]:
    """libc's getpid, a uprobe target every machine has (the ELF reader is imported here:
    doctor needs it, a run that reads the cached answers does not)."""
    from ..elffile import ELFFile
    from ..libraries import find_library

    try:
        path = find_library("libc")
        with ELFFile(path) as f:
            off = f.symbol_file_offset("getpid")
    except UndertowError as e:
        raise Unknown(f"unknown: no libc getpid to probe: {e.message}") from None
    except OSError as e:
        raise Unknown(f"unknown: no libc to probe: {e}") from None
    return str(path), int(off)


def probe_bpf_uprobe(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    pmu = perfevent.pmu_type("uprobe", ctx.roots)
    if pmu is None:
        return False, "no uprobe PMU in /sys/bus/event_source/devices (CONFIG_UPROBE_EVENTS=n)"
    path, off = _uprobe_target()
    prog = pfd = -1
    try:
        prog = _load_ret0(ProgType.KPROBE)
        # pid = ourselves, any cpu: the probe only fires in this process.
        pfd = perfevent.perf_event_open(perfevent.uprobe_attr(pmu, path, off), pid=os.getpid(), cpu=-1)
        perfevent.perf_event_set_bpf(pfd, prog)
    finally:
        rawcall.close_fd(pfd)
        rawcall.close_fd(prog)
    return True, f"loaded and attached to {os.path.basename(path)}:getpid through the uprobe PMU"


def probe_bpf_uprobe_multi(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    path, off = _uprobe_target()
    prog = link = -1
    try:
        try:
            prog = _load_ret0(ProgType.KPROBE, expected_attach_type=AttachType.TRACE_UPROBE_MULTI)
        except BPFError as e:
            return False, f"loading a uprobe_multi program failed: {errno_name(e.errno)}"
        try:
            link = bpfsys.link_create_uprobe_multi(prog, path, [off], pid=os.getpid())
        except BPFError as e:
            return False, f"creating a uprobe_multi link failed: {errno_name(e.errno)}"
    finally:
        rawcall.close_fd(link)
        rawcall.close_fd(prog)
    return True, f"uprobe_multi link on {os.path.basename(path)}:getpid"


def probe_bpf_perf_event(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = pfd = -1
    try:
        prog = _load_ret0(ProgType.PERF_EVENT)
        attr = perfevent.software_attr(PerfSwConfig.CPU_CLOCK, freq=49)
        pfd = perfevent.perf_event_open(attr, pid=-1, cpu=0)
        perfevent.perf_event_set_bpf(pfd, prog)
    finally:
        rawcall.close_fd(pfd)
        rawcall.close_fd(prog)
    return True, "loaded and attached to a cpu-clock software event"


def probe_bpf_ringbuf(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        fd = bpfsys.map_create(MapType.RINGBUF, 0, 0, page, name="undertow_probe")
    except BPFError as e:
        if e.errno == _errno.EINVAL:
            return False, f"no BPF_MAP_TYPE_RINGBUF: {errno_name(e.errno)} (kernel < 5.8)"
        raise
    rawcall.close_fd(fd)
    return True, "BPF_MAP_TYPE_RINGBUF created"


def probe_bpf_perf_buffer(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    ncpu = os.cpu_count() or 1
    fd = bpfsys.map_create(MapType.PERF_EVENT_ARRAY, 4, 4, ncpu, name="undertow_probe")
    rawcall.close_fd(fd)
    return True, "BPF_MAP_TYPE_PERF_EVENT_ARRAY created"
