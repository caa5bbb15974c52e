"""The ftrace backend's Plan: the event specs and how to show them (``-S``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..base import Plan
from .compile import EventSpec


@dataclass
class FtracePlan(Plan):
    """Everything a session writes to tracefs, in order.

    ``instance`` is the private instance's name (``undertow_<pid>_<n>``) the
    session will create; ``pid`` restricts events to one process; ``self_pid``
    is excluded from events.
    """

    specs: List[EventSpec] = field(default_factory=list)
    instance: str = "undertow_<pid>_<n>"
    stack: bool = False
    pid: Optional[int] = None
    self_pid: Optional[int] = None
    backend: str = "ftrace"

    def render(self) -> str:
        lines = [f"# ftrace plan: instance instances/{self.instance}, writes in order"]
        for s in self.specs:
            if s.definition:
                lines.append(f"{s.definition_file} += {s.definition}")
        inst = f"instances/{self.instance}"
        if self.stack:
            lines.append(f"{inst}/options/stacktrace = 1")
        for s in self.specs:
            base = f"{inst}/events/{s.group}/{s.event}"
            filt = effective_filter(s.filter, self.pid, self.self_pid)
            if filt:
                lines.append(f"{base}/filter = {filt}")
            lines.append(f"{base}/enable = 1")
        lines.append(f"{inst}/tracing_on = 1")
        return "\n".join(lines) + "\n"


def effective_filter(user: Optional[str], pid: Optional[int], self_pid: Optional[int]) -> Optional[str]:
    """The filter written to the kernel: the user's, plus the pid restriction.

    The tool's own pid is excluded through ``set_event_notrace_pid`` when the
    kernel has it (see the instance code), so it is not repeated here.
    """
    parts = []
    if pid is not None:
        parts.append(f"common_pid=={pid}")
    if user:
        parts.append(f"({user})" if parts else user)
    return " && ".join(parts) if parts else None
