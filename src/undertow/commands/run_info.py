"""``undertow run --info``: what this kernel offers to BPF, in ``bpftrace --info``'s layout.

bpftrace's test engine (and scripts written for bpftrace) read features from these lines
(``Loop support: yes``, ``btf: yes``, ``send_signal: yes``, ``kprobe_multi: yes``...), so
each line is what *undertow* can do on this kernel, tested, never assumed from a version:
a helper is "yes" when a program calling it loads, a map type when a map of it can be
created, a probe type when undertow's feature probe attached one (the same probes as
``undertow doctor``: ``iter:task`` is "yes" when a task iterator was created); what
undertow does not do at all (skb output, path()) is "no" whatever the kernel. Printed on
stderr, as bpftrace prints it.
"""

from __future__ import annotations

import os
import struct
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

from ..errors import UndertowError

__all__ = ["info", "report"]

#: Whether the runtime sets USDT semaphores through the kernel's uprobe reference counter
#: (perf_event_attr's ref_ctr_offset): "uprobe refcount" is "yes" only then. It does
#: (backends/bpf: USDT probes with a semaphore, Linux 4.20+).
USES_UPROBE_REFCOUNT = True


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


_EXIT0 = _insn(0xB7) + _insn(0x95)                    # r0 = 0; exit
# probe_read*(dst = fp - 8, size = 8, src = 0)
_READ_ARGS = _insn(0xBF, 1, 10) + _insn(0x07, 1, imm=-8) + _insn(0xB7, 2, imm=8) + _insn(0xB7, 3)
# a bounded loop: r0 = 0; r0 += 1; if r0 < 4 goto -2; r0 = 0; exit
_LOOP = _insn(0xB7) + _insn(0x07, imm=1) + _insn(0xA5, off=-2, imm=4) + _EXIT0

#: (name as bpftrace prints it, helper id, program type, argument set-up)
_HELPERS: List[Tuple[str, int, int, bytes]] = [
    ("probe_read", 4, 5, _READ_ARGS),
    ("probe_read_str", 45, 5, _READ_ARGS),
    ("probe_read_user", 112, 5, _READ_ARGS),
    ("probe_read_user_str", 114, 5, _READ_ARGS),
    ("probe_read_kernel", 113, 5, _READ_ARGS),
    ("probe_read_kernel_str", 115, 5, _READ_ARGS),
    ("get_current_cgroup_id", 80, 5, b""),
    ("send_signal", 109, 5, _insn(0xB7, 1)),
    ("override_return", 58, 2, _insn(0xB7, 2)),       # kprobe programs only; r1 is the context
    ("get_boot_ns", 125, 5, b""),
]


def _loads(prog_type: int, insns: bytes) -> bool:
    from ..kernel import bpfsys, rawcall

    try:
        fd = bpfsys.prog_load(prog_type, insns, license="GPL", name="undertow_info")
    except (UndertowError, OSError):
        return False
    rawcall.close_fd(int(fd))  # type: ignore[arg-type]
    return True


def _map_ok(map_type: int, key: int, value: int, entries: int) -> bool:
    from ..kernel import bpfsys, rawcall

    try:
        fd = bpfsys.map_create(map_type, key, value, entries, name="undertow_info")
    except (UndertowError, OSError):
        return False
    rawcall.close_fd(fd)
    return True


def _yn(ok: Optional[bool]) -> str:
    return "yes" if ok else "no"


def report() -> str:
    """The ``--info`` text for this kernel (loads tiny programs: needs root)."""
    from ..kernel import Kernel
    from .run import BPFTRACE_LANGUAGE
    from ..version import __version__

    u = os.uname()
    feats = Kernel().features()
    fentry = feats.available("bpf_fentry")
    helpers = {name: _loads(pt, setup + _insn(0x85, imm=hid) + _EXIT0) for name, hid, pt, setup in _HELPERS}
    loops = _loads(1, _LOOP)
    refcount = os.path.exists("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset")
    lines = [
        "System",
        f"  OS: {u.sysname} {u.release} {u.version}",
        f"  Arch: {u.machine}",
        "",
        "Build",
        f"  version: undertow {__version__} (the language of bpftrace {BPFTRACE_LANGUAGE})",
        "  LLVM: none (undertow compiles BPF itself)",
        "  unsafe uprobe: no",
        "  bfd: no",
        "  libdw (DWARF support): yes",  # no libdw: kernel/dwarf.py reads .debug_info itself
        "",
        "Kernel helpers",
        *[f"  {name}: {_yn(ok)}" for name, ok in helpers.items()],
        "  dpath: no",  # path() (bpf_d_path, fentry programs only) is not compiled by undertow
        "  skboutput: no",
        "",
        "Kernel features",
        f"  Instruction limit: {1000000 if loops else 4096}",
        f"  Loop support: {_yn(loops)}",
        f"  btf: {_yn(feats.available('btf'))}",
        f"  uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): {_yn(refcount and USES_UPROBE_REFCOUNT)}",
        "",
        "Map types",
        f"  hash: {_yn(_map_ok(1, 8, 8, 1))}",
        f"  percpu hash: {_yn(_map_ok(5, 8, 8, 1))}",
        f"  array: {_yn(_map_ok(2, 4, 8, 1))}",
        f"  percpu array: {_yn(_map_ok(6, 4, 8, 1))}",
        f"  stack_trace: {_yn(_map_ok(7, 4, 8 * 127, 1))}",
        f"  perf_event_array: {_yn(feats.available('bpf_perf_buffer'))}",
        f"  ringbuf: {_yn(feats.available('bpf_ringbuf'))}",
        "",
        "Probe types",
        f"  kprobe: {_yn(feats.available('bpf_kprobe'))}",
        f"  tracepoint: {_yn(feats.available('bpf_tracepoint'))}",
        f"  perf_event: {_yn(feats.available('bpf_perf_event'))}",
        f"  kfunc: {_yn(fentry and feats.available('bpf_fexit'))}",
        f"  iter:task: {_yn(feats.available('bpf_iter_task') and feats.available('btf'))}",
        f"  iter:task_file: {_yn(feats.available('bpf_iter_task_file') and feats.available('btf'))}",
        f"  kprobe_multi: {_yn(feats.available('bpf_kprobe_multi'))}",
        f"  raw_tp_special: {_yn(feats.available('bpf_raw_tracepoint'))}",
        f"  uprobe: {_yn(feats.available('bpf_uprobe'))}",
        "",
    ]
    return "\n".join(lines)


def info() -> int:
    """Print :func:`report` on stderr (as bpftrace does); status 1 when not root."""
    if os.geteuid() != 0:
        raise UndertowError("--info needs root (it loads small BPF programs to test the kernel's helpers)")
    sys.stderr.write(report())
    sys.stderr.flush()
    return 0
