"""The ptrace backend: syscall probe lines for one process (``-p PID``) or a command undertow
starts (``-c CMD``), for users who may not use tracefs or BPF (docs/ptrace.md).

It runs ``e syscalls/sys_enter_<name>`` and ``e syscalls/sys_exit_<name>`` lines (wildcards,
chosen and renamed fields, ``$comm``/``$pid``/``$tid``/``$cpu``, filters) and gives the Events
the other backends give for them; :meth:`PtraceBackend.check` refuses anything else with the
span. The plan (``-S``) lists the syscalls stopped at, the fields read, and the seccomp
filter a command gets (``kernel/seccomp.py``).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ...errors import UndertowError
from ...kernel import Kernel
from ...lang import ir
from ...lang.ir import Program
from ..base import Backend, Plan, Refusal, Session

__all__ = ["PtraceBackend", "PtracePlan", "ProbeSpec", "syscall_target"]


def syscall_target(target: str) -> "Optional[Tuple[bool, str]]":
    """``(is_exit, name)`` of a ``syscalls:sys_enter_<name>``/``sys_exit_<name>`` target, else None."""
    g, _, e = target.replace("/", ":").partition(":")
    if g != "syscalls":
        return None
    for prefix, is_exit in (("sys_enter_", False), ("sys_exit_", True)):
        if e.startswith(prefix) and len(e) > len(prefix):
            return is_exit, e[len(prefix):]
    return None


class ProbeSpec:
    """One probe line, compiled: at the syscall ``nr`` (entry, or exit when ``exit``), the
    ``fields`` ``(name, source, kind, bits, signed)`` where ``source`` is an argument index,
    ``"nr"``, ``"ret"`` or a builtin (``"comm"``, ``"pid"``, ``"tid"``, ``"cpu"``) and ``kind``
    ``"int"`` or ``"str"``; ``filter`` (``env -> bool``) over ``filter_reads`` (event field ->
    the same tuple without the name); ``extras`` (decode.extras_for)."""

    __slots__ = ("name", "event", "nr", "exit", "fields", "formats", "filter", "filter_reads", "extras",
                 "filter_text")

    def __init__(self, name: str, event: str, nr: int, exit: bool) -> None:
        self.name, self.event, self.nr, self.exit = name, event, nr, exit
        self.fields: List[Tuple[str, Any, str, int, bool]] = []
        self.formats: Dict[str, str] = {}
        self.filter: Optional[Callable[[Dict[str, Any]], bool]] = None
        self.filter_reads: Dict[str, Tuple[Any, str, int, bool]] = {}
        self.extras: List[Tuple[str, Callable[..., Any]]] = []
        self.filter_text = ""


class PtracePlan(Plan):
    """Probe specs by syscall number; ``pid`` (attach) or ``argv`` (start); ``arch``."""

    backend = "ptrace"

    def __init__(self, specs: List[ProbeSpec], arch: str, pid: Optional[int], argv: Optional[List[str]],
                 self_pid: Optional[int]) -> None:
        self.specs, self.arch, self.pid, self.argv, self.self_pid = specs, arch, pid, argv, self_pid
        self.enter: Dict[int, List[ProbeSpec]] = {}
        self.exit: Dict[int, List[ProbeSpec]] = {}
        for s in specs:
            (self.exit if s.exit else self.enter).setdefault(s.nr, []).append(s)

    @property
    def numbers(self) -> List[int]:
        """The syscall numbers a traced process stops at: those traced, and ``prctl`` (a
        ``PR_SET_NAME`` changes the name the events show)."""
        from .tracer import PRCTL

        extra = {PRCTL[self.arch]} if self.arch in PRCTL else set()
        return sorted(set(self.enter) | set(self.exit) | extra)

    def render(self) -> str:
        from ...kernel.ptrace import AUDIT_ARCH
        from ...kernel.seccomp import build_filter

        lines = ["# ptrace backend: " + (f"attach to pid {self.pid}, its threads and the children it starts, every syscall stopped "
                                         "(PTRACE_SYSCALL; a running process cannot be given a seccomp filter)"
                                         if self.pid else "start the command under a seccomp filter, "
                                         "stopped only at the syscalls traced (SECCOMP_RET_TRACE)")]
        for s in self.specs:
            fields = " ".join(f"{n}={'string' if k == 'str' else ('s' if sg else 'u') + str(b)}<-{src}"
                              for n, src, k, b, sg in s.fields)
            lines.append(f"{s.name} nr={s.nr} {'exit' if s.exit else 'entry'}: {fields}"
                         + (f" f:{s.filter_text}" if s.filter_text else ""))
        if not self.pid and self.arch in AUDIT_ARCH:
            lines.append("# seccomp filter (classic BPF)")
            for i, (code, jt, jf, k) in enumerate(build_filter(self.numbers, AUDIT_ARCH[self.arch])):
                lines.append(f"{i:4}: code={code:#04x} jt={jt} jf={jf} k={k:#x}")
        return "\n".join(lines) + "\n"


class PtraceBackend(Backend):
    name = "ptrace"

    def check(self, program: "Program", kernel: "Kernel") -> List[Refusal]:
        from ...kernel.ptrace import AUDIT_ARCH
        from .filter import unsupported

        out: List[Refusal] = []
        arch = os.uname().machine
        if arch not in AUDIT_ARCH:
            return [Refusal(f"the ptrace backend knows the syscall registers of x86_64 and aarch64, not {arch}")]
        pid, argv = program.setting("pid"), program.setting("cmd")
        if not pid and not argv:
            out.append(Refusal("ptrace traces one process: give -p PID or -c CMD",
                               hints=["undertow trace -c 'cat /etc/hostname' 'e syscalls/sys_enter_openat'"]))
        if pid and pid == program.setting("self_pid", os.getpid()):
            out.append(Refusal("undertow cannot ptrace itself"))
        if program.setting("stack"):
            out.append(Refusal("the ptrace backend records no kernel stacks (-s)"))
        for i, probe in enumerate(program.probes):
            for ap in probe.attach:
                if ap.kind != "tracepoint" or syscall_target(ap.target) is None:
                    out.append(Refusal(f"the ptrace backend runs syscall tracepoints only "
                                       f"(syscalls/sys_enter_* and sys_exit_*), not {ap.kind} {ap.target}",
                                       ap.span, ["tracing anything else needs root (tracefs or BPF)"], i))
            for a in probe.actions:
                if not isinstance(a, ir.Emit):
                    out.append(Refusal(f"the ptrace backend shows fields only ({type(a).__name__} is not)",
                                       a.span, [], i))
                    continue
                if a.stack or a.ustack:
                    out.append(Refusal("the ptrace backend records no stacks", a.span, [], i))
                for f in a.fields:
                    e = f.expr
                    if not (isinstance(e, ir.Field) and e.fmt_field is not None) and not \
                            (isinstance(e, ir.Builtin) and e.name in ("comm", "pid", "tid", "cpu")):
                        out.append(Refusal("the ptrace backend shows the event's fields, $comm, $pid, $tid "
                                           "and $cpu (no expressions on them)", f.span or e.span,
                                           ["name the field itself: e.g. filename, or flags"], i))
            if probe.filter is not None:
                bad = unsupported(probe.filter)
                if bad is not None:
                    out.append(Refusal("the ptrace backend cannot evaluate this part of the filter", bad.span,
                                       [], i))
        return out

    def compile(self, program: "Program", kernel: "Kernel", *, arch: Optional[str] = None) -> Plan:
        from ...kernel.syscall_table import numbers
        from ...lang.typeinfo import default_format
        from .decode import extras_for, value_reader
        from .filter import compile_filter, filter_fields

        a = arch or os.uname().machine
        nrs = numbers(a)
        specs = []
        for probe in program.probes:
            ap = probe.attach[0]
            st = syscall_target(ap.target)
            if st is None:
                raise UndertowError(f"the ptrace backend cannot run {ap.target}")
            is_exit, name = st
            if name not in nrs:
                raise UndertowError(f"no syscall {name} on {a}", hints=["see: undertow list 'tracepoint:syscalls:*'"])
            event = ap.target.replace("/", ":").partition(":")[2]
            spec = ProbeSpec(probe.name or f"syscalls:{event}", event, nrs[name], is_exit)
            all_fields: List[str] = []
            arg_names: List[str] = []
            arg_types: List[str] = []
            for a_ in probe.actions:
                if not isinstance(a_, ir.Emit):
                    continue
                for f in a_.fields:
                    e = f.expr
                    if isinstance(e, ir.Builtin):
                        spec.fields.append((f.name, e.name, "str" if e.name == "comm" else "int", 64, True))
                    else:
                        src = _source(e.fmt_field)
                        kind, bits, signed = value_reader(e.type, f.fmt)
                        spec.fields.append((f.name, src, kind, bits, signed))
                        all_fields.append(f.name if f.name == e.name else "")
                        if isinstance(src, int):
                            while len(arg_names) <= src:
                                arg_names.append("")
                                arg_types.append("")
                            arg_names[src], arg_types[src] = e.name, e.fmt_field.type
                    if f.fmt:
                        spec.formats[f.name] = f.fmt
            if probe.filter is not None:
                spec.filter = compile_filter(probe.filter)
                spec.filter_text = _show(probe)
                wanted = filter_fields(probe.filter)
                for n in probe.filter.walk():
                    if isinstance(n, ir.Field) and n.name in wanted and n.fmt_field is not None:
                        kind, bits, signed = value_reader(n.type, default_format(n.name, n.type))
                        spec.filter_reads[n.name] = (_source(n.fmt_field), kind, bits, signed)
            shown_all = _shows_every_field(probe, all_fields)
            if shown_all and not is_exit:
                spec.extras = extras_for(event, arg_names, arg_types, a)
            elif shown_all and is_exit:
                spec.extras = [("errno", None)]  # type: ignore[list-item]
            specs.append(spec)
        pid = program.setting("pid")
        argv = program.setting("cmd")
        self_pid = program.setting("self_pid", os.getpid()) if program.setting("exclude_self", True) else None
        return PtracePlan(specs, a, pid, list(argv) if argv else None, self_pid)

    def attach(self, plan: Plan, kernel: "Kernel") -> Session:
        from .session import PtraceSession

        assert isinstance(plan, PtracePlan)
        return PtraceSession.start(plan)


def _source(ff: Any) -> Any:
    """Where a syscall event field's value comes from: ``"nr"``, ``"ret"`` or argument i."""
    if ff.name == "__syscall_nr":
        return "nr"
    if ff.name == "ret":
        return "ret"
    return (ff.offset - 16) // 8


def _shows_every_field(probe: "ir.Probe", names: List[str]) -> bool:
    fields = [f for a in probe.actions if isinstance(a, ir.Emit) for f in a.fields]
    return bool(fields) and all(names) and len(names) == len(fields) and names[0] == "__syscall_nr"


def _show(probe: "ir.Probe") -> str:
    """The filter as the user wrote it (for ``-S``)."""
    sp = probe.filter.span if probe.filter is not None else None
    if sp is not None and probe.source:
        return probe.source[sp.start:sp.end]
    return "(filter)"
