"""The ftrace backend's Plan: the event specs and how to show them (``-S``)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional

from ..base import Plan
from .compile import EventSpec


class FtracePlan(Plan):
    """Everything a session writes to tracefs, in order.

    ``instance`` is the private instance's name (``undertow_<pid>_<n>``) the
    session will create; ``pid`` restricts events to one process; ``self_pid``
    is excluded from events.
    """

    __slots__ = ("specs", "instance", "stack", "pid", "self_pid", "buffer_kb", "comm_events")
    backend = "ftrace"

    def __init__(self, specs: Optional[List[EventSpec]] = None, instance: str = "undertow_<pid>_<n>",
                 stack: bool = False, pid: Optional[int] = None, self_pid: Optional[int] = None,
                 buffer_kb: Optional[int] = None) -> None:
        self.specs: List[EventSpec] = [] if specs is None else specs
        self.instance, self.stack, self.pid, self.self_pid, self.buffer_kb = instance, stack, pid, self_pid, buffer_kb
        #: events enabled unshown to follow task names (COMM_EVENTS): when tracepoints are traced
        self.comm_events: List[str] = []

    def render(self) -> str:
        lines = [f"# ftrace plan: instance instances/{self.instance}, writes in order"]
        for s in self.specs:
            if s.definition:
                lines.append(f"{s.definition_file} += {s.definition}")
        inst = f"instances/{self.instance}"
        lines.append(f"{inst}/trace_clock = mono")
        if self.stack:
            lines.append(f"{inst}/options/stacktrace = 1")
        if self.self_pid is not None:
            lines.append(f"{inst}/set_event_notrace_pid = <threads of pid {self.self_pid}>")
        if self.pid is not None:
            lines.append(f"{inst}/set_event_pid = <threads of pid {self.pid}>")
            lines.append(f"{inst}/options/event-fork = 1")
        for s in self.specs:
            base = f"{inst}/events/{s.group}/{s.event}"
            if s.filter:
                lines.append(f"{base}/filter = {s.filter}")
            lines.append(f"{base}/enable = 1")
        for ev in self.comm_events:
            lines.append(f"{inst}/events/{ev}/enable = 1   # not shown: follows task names")
        lines.append(f"{inst}/tracing_on = 1")
        return "\n".join(lines) + "\n"
