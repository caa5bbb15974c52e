"""The ftrace backend: check, compile (``compile.py``), attach (the session runtime)."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional

from ...errors import FeatureUnavailableError, TypeCheckError, UndertowError
from ...kernel import Kernel
from ...lang.ir import Program
from ..base import Backend, Plan, Refusal, Session
from .compile import DYNAMIC_KINDS, FtraceUnsupported, compile_program
from .plan import FtracePlan

# Which tracefs file defines each dynamic probe kind.
DEFINITION_FILE = {"kprobe": "kprobe_events", "kretprobe": "kprobe_events",
                   "uprobe": "uprobe_events", "uretprobe": "uprobe_events"}


class FtraceBackend(Backend):
    name = "ftrace"

    def check(self, program: "Program", kernel: "Kernel") -> List[Refusal]:
        from ...kernel.arch import current_arch

        out: List[Refusal] = []
        arch = current_arch()
        for i, probe in enumerate(program.probes):
            for ap in probe.attach:
                dfile = DEFINITION_FILE.get(ap.kind)
                if dfile is None and ap.kind != "tracepoint":
                    out.append(Refusal(f"ftrace cannot attach {ap.kind} probes", ap.span, [], i))
                    continue
                if dfile is not None and not _has(kernel, dfile):
                    what = "kprobe" if dfile == "kprobe_events" else "uprobe"
                    out.append(Refusal(f"this kernel has no {what} support in tracefs ({dfile} is missing)",
                                       ap.span, [], i))
            try:
                from .compile import check_probe

                err = check_probe(probe, arch)
            except UndertowError as e:  # pragma: no cover - defensive
                err = FtraceUnsupported(e.message, None, tuple(e.hints))
            if err is not None:
                out.append(Refusal(err.message, err.span, list(err.hints), i))
                continue
            from .compile import pointer_strings

            weak = pointer_strings(probe)
            if weak is not None:
                out.append(Refusal(weak.message, weak.span, list(weak.hints), i, fallback=True))
        return out

    def compile(self, program: "Program", kernel: "Kernel", *, arch: Optional[str] = None) -> Plan:
        from ...kernel.arch import current_arch, get_arch

        from ..leftovers import next_session_name

        a = get_arch(arch) if arch else current_arch()
        name = next_session_name()
        try:
            specs = compile_program(program, a, group=name)
        except FtraceUnsupported as e:
            raise _locate(e, program) from None
        plan = FtracePlan(specs=specs, instance=name, stack=bool(program.setting("stack")),
                          pid=program.setting("pid"),
                          self_pid=program.setting("self_pid", os.getpid()) if program.setting("exclude_self", True) else None)
        if any(s.kind == "tracepoint" for s in specs):
            from .compile import COMM_EVENTS

            shown = {f"{s.group}/{s.event}" for s in specs}
            plan.comm_events = [e for e in COMM_EVENTS if e not in shown]
        return plan

    def attach(self, plan: Plan, kernel: "Kernel") -> Session:
        from .session import FtraceSession  # the runtime (instance lifecycle + reader)

        assert isinstance(plan, FtracePlan)
        return FtraceSession.start(plan, kernel)


def _has(kernel: "Kernel", rel: str) -> bool:
    try:
        return kernel.tracefs().has(rel)
    except UndertowError:
        return False


def _locate(e: FtraceUnsupported, program: "Program") -> UndertowError:
    """Turn a refusal into a caret diagnostic on the probe's source text."""
    from ...errors import SourceError

    if e.probe_index is not None and e.span is not None:
        p = program.probes[e.probe_index]
        if p.source:
            return SourceError(e.message, source=p.source, span=e.span, origin=p.origin, hints=e.hints)
    return e
