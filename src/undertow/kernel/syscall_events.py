"""The ``syscalls:*`` trace events without tracefs: their formats rebuilt from the table
undertow ships (:mod:`undertow.kernel.syscall_formats`), for users who may not read tracefs
(the ptrace backend, docs/ptrace.md).

:class:`SyscallEvents` answers what the probe-line resolver asks of a
:class:`~undertow.kernel.tracefs.Tracefs` about events (``events()``, ``all_events()``,
``has_event()``, ``event_format()``) for the group ``syscalls`` only. :class:`FormatsKernel` is a
:class:`~undertow.kernel.Kernel` whose ``tracefs()`` is the real one when it can be read,
else that view: the formats are then those of the kernel the table was generated on
(``syscall_formats.KERNEL``), restricted to the syscalls this architecture has.
"""

from __future__ import annotations

import fnmatch
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ..errors import UndertowError, UnknownEventError, did_you_mean
from . import Kernel
from .formats import EventFormat, parse_format

__all__ = ["SyscallEvents", "FormatsKernel", "syscall_args"]

_COMMON = ("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
           "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
           "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
           "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
           "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n")

_ARGS: Dict[str, List[str]] = {}


def syscall_args() -> Dict[str, List[str]]:
    """Syscall event name (``openat``) -> its argument declarations (``["int dfd", ...]``)."""
    if not _ARGS:
        from .syscall_formats import TEXT

        for line in TEXT.strip().splitlines():
            name, _, rest = line.partition(":")
            _ARGS[name.strip()] = [a.strip() for a in rest.split(",") if a.strip()]
    return _ARGS


def format_text(event: str) -> Optional[str]:
    """The text of ``events/syscalls/<event>/format`` as the kernel writes it (its ID and print
    format left out: nothing reads them without tracefs), or None when the table lacks it."""
    for prefix in ("sys_enter_", "sys_exit_"):
        if event.startswith(prefix):
            args = syscall_args().get(event[len(prefix):])
            break
    else:
        return None
    if args is None:
        return None
    body = [f"name: {event}", "ID: 0", "format:", _COMMON.rstrip("\n")]
    if prefix == "sys_exit_":
        body.append("\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;")
    else:
        for i, decl in enumerate(args):
            body.append(f"\tfield:{decl};\toffset:{16 + 8 * i};\tsize:8;\tsigned:0;")
    body += ["", 'print fmt: ""']
    return "\n".join(body) + "\n"


class SyscallEvents:
    """The syscall trace events of this architecture (``syscall_table``) that the shipped
    table describes, as a read-only stand-in for tracefs's ``events/syscalls``."""

    path = "(undertow's syscall table)"

    def __init__(self, arch: Optional[str] = None) -> None:
        from .syscall_table import names

        self.arch = arch or os.uname().machine
        have = syscall_args()
        self._events: List[Tuple[str, str]] = []
        for name in sorted(set(names(self.arch).values())):
            if name in have:
                self._events += [("syscalls", f"sys_enter_{name}"), ("syscalls", f"sys_exit_{name}")]
        self._formats: Dict[str, EventFormat] = {}

    def all_events(self) -> List[Tuple[str, str]]:
        return list(self._events)

    def events(self, pattern: str = "*") -> List[Tuple[str, str]]:
        """The ``(group, event)`` pairs ``GROUP:EVENT`` (or ``GROUP/EVENT``) matches (fnmatch)."""
        g, sep, e = pattern.replace("/", ":").partition(":")
        if not sep:
            g, e = "*", g
        return [(a, b) for a, b in self._events if fnmatch.fnmatchcase(a, g) and fnmatch.fnmatchcase(b, e)]

    def has_event(self, group: str, event: str) -> bool:
        return (group, event) in self._events

    def has(self, relpath: str) -> bool:
        return False

    def event_format(self, group: str, event: str) -> EventFormat:
        """The format of ``syscalls:<event>``; :class:`UnknownEventError` (a LookupError) for
        any other event, with near names."""
        fmt = self._formats.get(event)
        if fmt is not None:
            return fmt
        text = format_text(event) if group == "syscalls" and self.has_event(group, event) else None
        if text is None:
            names = [f"{a}:{b}" for a, b in self._events]
            hints = [did_you_mean(f"{group}:{event}", names)]
            if group != "syscalls":
                hints.append("without tracefs, undertow knows the syscalls:* events only (the ptrace backend)")
            raise UnknownEventError(f"no trace event {group}:{event} known without tracefs", hints=hints)
        fmt = self._formats[event] = parse_format(text, group, event, long_size=8)
        return fmt


class FormatsKernel(Kernel):
    """The running kernel, whose trace events come from tracefs when it can be read, else from
    :class:`SyscallEvents` (a user who may not read tracefs: the ptrace backend)."""

    #: "tracefs" or "table": where the formats came from (set by the first ``tracefs()``)
    formats_from = ""

    def tracefs(self, mount: bool = False) -> "SyscallEvents":  # type: ignore[override]
        if self._tracefs is None:
            try:
                real = super().tracefs(mount=False)
                real.event_format("syscalls", "sys_enter_openat")  # readable, not just mounted
                self.formats_from = "tracefs"
                return real  # type: ignore[return-value]
            except (UndertowError, OSError, LookupError):
                self._tracefs = None
            self._tracefs = SyscallEvents()  # type: ignore[assignment]
            self.formats_from = "table"
        return self._tracefs  # type: ignore[return-value]
