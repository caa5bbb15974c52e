"""The BPF backend: check, compile (compiler.py), attach (runtime.py).

Every program the IR can describe goes through :func:`compiler.compile_program`:
probe lines (their ``Emit`` actions become ring-buffer records decoded into
:class:`~undertow.events.Event`) and bpftrace programs (maps, printf...). A node the
generator cannot run is refused with its span, so ``auto`` falls back to ftrace or
says what is missing.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional

from ...errors import SourceError, UndertowError
from ...kernel import Kernel
from ...lang.ir import Program
from ..base import Backend, Plan, Refusal, Session
from .codegen import Unsupported

RINGBUF_SIZE = 1 << 22  # 4 MiB, a power of two


class BpfPlan(Plan):
    """A compiled program (:class:`~.compiled.CompiledProgram`) ready to attach."""

    __slots__ = ("compiled", "ringbuf_size")
    backend = "bpf"

    def __init__(self, compiled: Any = None, ringbuf_size: int = RINGBUF_SIZE) -> None:
        self.compiled, self.ringbuf_size = compiled, ringbuf_size

    @property
    def probes(self) -> List[Any]:
        return list(self.compiled.probes) if self.compiled is not None else []

    def render(self) -> str:
        c = self.compiled
        out = [f"# BPF plan: {len(c.probes)} program(s), ring buffer {self.ringbuf_size >> 10} KiB"]
        for cp in c.probes:
            out.append(f"## {cp.name}: {cp.ap.kind} {cp.ap.target}, {cp.prog_type} program, "
                       f"{len(cp.program)} insns")
            out.append(cp.program.listing().rstrip())
        for spec in c.maps.values():
            kind = "PERCPU_HASH" if spec.percpu else "HASH"
            out.append(f"## map {spec.name}: {spec.agg}, {kind}, key {spec.key_size} B, value {spec.value_size} B")
        return "\n".join(out) + "\n"


class BpfBackend(Backend):
    name = "bpf"

    def check(self, program: "Program", kernel: "Kernel") -> List[Refusal]:
        out: List[Refusal] = []
        try:
            feats = kernel.features()
            for need in ("bpf_tracepoint", "bpf_ringbuf"):
                f = feats.get(need) if hasattr(feats, "get") else None
                if f is not None and f.available is False:
                    out.append(Refusal(f"{need} is not available: {f.reason}"))
        except (UndertowError, OSError) as e:
            out.append(Refusal(f"cannot probe BPF features: {e}"))
        try:
            self._compile(program, None)
        except Unsupported as e:
            idx = next((i for i, p in enumerate(program.probes) if _contains(p, e.span)), None)
            out.append(Refusal(e.message, e.span, list(e.hints), idx))
        return out

    def _compile(self, program: "Program", arch: Optional[str]) -> Any:
        from ...kernel.arch import current_arch, get_arch
        from .compiler import compile_program

        self_pid = program.setting("self_pid", os.getpid()) if program.setting("exclude_self", True) else None
        return compile_program(program, arch=get_arch(arch) if arch else current_arch(), self_pid=self_pid,
                               pid=program.setting("pid"))

    def compile(self, program: "Program", kernel: "Kernel", *, arch: Optional[str] = None) -> Plan:
        try:
            return BpfPlan(compiled=self._compile(program, arch))
        except Unsupported as e:
            probe = next((p for p in program.probes if _contains(p, e.span)), None)
            if probe is not None and probe.source and e.span is not None:
                raise SourceError(e.message, source=probe.source, span=e.span, origin=probe.origin,
                                  hints=e.hints) from None
            raise

    def attach(self, plan: Plan, kernel: "Kernel") -> Session:
        from .runtime import ProgramSession

        assert isinstance(plan, BpfPlan)
        return ProgramSession.start(plan.compiled, kernel)


def _contains(probe: Any, span: Any) -> bool:
    if span is None:
        return False
    if probe.span is not None and probe.span.start <= span.start and span.end <= probe.span.end:
        return True
    return any(n.span is span for n in probe.exprs())
