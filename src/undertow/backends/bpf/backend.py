"""The BPF backend: check, compile (codegen.py), attach (session.py).

This version runs tracepoint probe lines (see codegen.py for the exact scope);
other probe kinds are refused with the reason, so ``auto`` falls back to ftrace
or says what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional

from ...errors import SourceError, UndertowError
from ..base import Backend, Plan, Refusal, Session
from .codegen import ProbeCode, Unsupported, compile_tracepoint

if TYPE_CHECKING:  # pragma: no cover
    from ...kernel import Kernel
    from ...lang.ir import Program

RINGBUF_SIZE = 1 << 22  # 4 MiB, a power of two


@dataclass
class BpfPlan(Plan):
    probes: List[ProbeCode] = field(default_factory=list)
    ringbuf_size: int = RINGBUF_SIZE
    backend: str = "bpf"

    def render(self) -> str:
        out = [f"# BPF plan: {len(self.probes)} program(s), ring buffer {self.ringbuf_size >> 10} KiB"]
        for pc in self.probes:
            out.append(f"## {pc.name}: tracepoint {pc.group}:{pc.event} (perf event + PERF_EVENT_IOC_SET_BPF), "
                       f"{len(pc.program)} insns, record {pc.record_size} bytes")
            out.append(pc.program.listing().rstrip())
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
        for i, probe in enumerate(program.probes):
            for ap in probe.attach:
                try:
                    compile_tracepoint(probe, ap, 0, None)
                except Unsupported as e:
                    out.append(Refusal(e.message, e.span, list(e.hints), i))
        return out

    def compile(self, program: "Program", kernel: "Kernel", *, arch: Optional[str] = None) -> Plan:
        self_pid = program.setting("self_pid", os.getpid()) if program.setting("exclude_self", True) else None
        codes: List[ProbeCode] = []
        for i, probe in enumerate(program.probes):
            for ap in probe.attach:
                try:
                    codes.append(compile_tracepoint(probe, ap, len(codes), self_pid,
                                                    int(program.setting("strlen", 64) or 64)))
                except Unsupported as e:
                    if probe.source and e.span is not None:
                        raise SourceError(e.message, source=probe.source, span=e.span, origin=probe.origin,
                                          hints=e.hints) from None
                    raise
        return BpfPlan(probes=codes)

    def attach(self, plan: Plan, kernel: "Kernel") -> Session:
        from .session import BpfSession

        assert isinstance(plan, BpfPlan)
        return BpfSession.start(plan, kernel)
