"""Resolve and type-check a :class:`~undertow.lang.ir.Program` against one kernel.

After :func:`resolve`, every expression has ``.type`` (a :mod:`undertow.lang.types`
type), every :class:`ir.Member` its byte ``offset`` (and ``bit_offset``/``bit_size``
for bitfields), every :class:`ir.Arg` both ``index`` and ``name`` (when BTF knows
the function), registers their ftrace spelling, uprobe attach points their
``path`` and ``file_offset``, wildcard tracepoints one probe per event, and every
:class:`ir.EmitField` a default ``fmt`` taken from its type. Backends never look
a name up again.

:func:`resolve` hands the program to its front end's resolver; the pieces they share
form the base, which no front end's syntax reaches into:

- :mod:`undertow.lang.typeinfo`: names and types. Function prototypes, struct layouts
  and casts from vmlinux BTF (``/sys/kernel/btf/vmlinux``, via :meth:`Kernel.btf`),
  seen through the small :class:`TypeInfo` interface so tests can declare types in
  Python; the uapi network headers; tracepoint field types; default output formats.
- :mod:`undertow.lang.attach`: probe kinds and attach points. Whether kprobes exist
  (:meth:`Kernel.features`, ``kprobe_events``: a kprobe on a kernel without them fails
  here, before anything touches tracefs, naming a tracepoint that carries the same
  data); tracepoint formats (``events/<group>/<event>/format``, :meth:`Kernel.tracefs`);
  uprobe file offsets from the ELF file (:mod:`undertow.kernel.elf`).
- :mod:`undertow.lang.resolve_expr`: expressions every language shares (members,
  casts, indexes, registers, with the type check), register names from
  :mod:`undertow.kernel.arch`.

The front ends: :mod:`undertow.lang.resolve_lines` (probe lines, surftrace syntax) and
:mod:`undertow.lang.resolve_bt` (the bpftrace language and the Python API of
:mod:`undertow.program`), each imported when a program of its language comes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional

from . import ir
from .attach import KPROBE_ALTERNATIVES, AttachResolver, check_kprobes, kprobe_alternative
from .typeinfo import (
    SKB_HEADERS, UAPI_HEADERS, BtfTypes, DeclTypes, FuncSig, MemberInfo, TypeInfo, default_format,
    format_field_type,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

# names importable from here before the resolvers were split (issue 15)
__all__ = [
    "resolve", "TypeInfo", "FuncSig", "MemberInfo", "DeclTypes", "BtfTypes", "KPROBE_ALTERNATIVES",
    "kprobe_alternative", "check_kprobes", "default_format", "SKB_HEADERS", "UAPI_HEADERS", "format_field_type",
]


def resolve(program: ir.Program, kernel: "Kernel", *, arch: Optional[str] = None,
            strict_kprobes: bool = True, types: Optional[TypeInfo] = None) -> ir.Program:
    """Resolve names and types of ``program`` against ``kernel`` (in place; returned).

    ``arch`` names the register set (``x86_64``, ``aarch64``; default: this
    machine). ``strict_kprobes``: refuse ``p``/``r`` lines when the kernel has
    no kprobes (off for ``-S``, which compiles for any kernel). ``types``
    overrides where types come from (default: the kernel's BTF when present,
    plus the uapi network headers).

    The front end is the one ``program.settings["frontend"]`` names (``"bt"``: the
    bpftrace language; else probe lines). Wildcard tracepoint probes become one probe
    per matching event. Raises :class:`ResolveError`, :class:`TypeCheckError` or
    :class:`AttachUnavailableError`, each with the span of the offending text.
    """
    from ..kernel.arch import current_arch, get_arch

    the_arch = get_arch(arch) if arch else current_arch()
    r: AttachResolver
    if program.setting("frontend") == "bt":
        from .resolve_bt import bt_resolver

        r = bt_resolver(program, kernel, the_arch, strict_kprobes, types)
    else:
        from .resolve_lines import LineResolver

        r = LineResolver(kernel, the_arch, strict_kprobes, types)
    out: List[ir.Probe] = []
    for probe in program.probes:
        out.extend(r.probe(probe))
    program.probes = out
    program.warnings.extend(r.warnings)
    return program
