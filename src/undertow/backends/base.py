"""What a backend is: check -> compile to a Plan -> attach as a Session.

A backend says whether it can run a resolved :class:`~undertow.lang.ir.Program`
on a kernel (and why not, per probe, with the span of the node it cannot run),
compiles it to a :class:`Plan` that can be shown without running (``-S``), and
attaches the plan as a :class:`Session` that yields :class:`~undertow.events.Event`
and :class:`~undertow.events.Lost` records. ``auto`` (see :func:`choose`) asks
each backend in turn and reports why one was refused.

Sessions own their kernel objects (tracefs instance and probes, BPF fds and
links) and remove them on ``close()``, which is idempotent and is called on
normal exit, on exceptions (context manager) and from signal handlers.
"""

from __future__ import annotations

import abc
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Iterator, List, Optional, Sequence, Tuple

from ..errors import SourceError, Span, UndertowError
from ..events import Record, Stats
from ..kernel import Kernel
from ..lang.ir import Program


class Refusal:
    """Why a backend cannot run (part of) a program: a message, the span, hints, and the
    index of the probe refused (None: the whole program). ``fallback``: the backend can run
    it, but shows less than the line asks (a pointer where the user expects the string):
    ``auto`` takes it only when no other backend can run the program."""

    __slots__ = ("message", "span", "hints", "probe_index", "fallback")

    def __init__(self, message: str, span: Optional[Span] = None, hints: Optional[List[str]] = None,
                 probe_index: Optional[int] = None, fallback: bool = False) -> None:
        self.message, self.span, self.probe_index = message, span, probe_index
        self.hints: List[str] = [] if hints is None else hints
        self.fallback = fallback


class Plan(abc.ABC):
    """A compiled program, ready to attach, showable without running."""

    backend: str = ""

    @abc.abstractmethod
    def render(self) -> str:
        """The exact text shown by ``-S``: tracefs lines and filters, or the BPF listing."""


class Session(abc.ABC):
    """An attached program. Iterate it (or call :meth:`poll`) for records."""

    stats: Stats

    @abc.abstractmethod
    def poll(self, timeout: Optional[float] = None, limit: Optional[int] = None) -> List[Record]:
        """Records available now, waiting up to ``timeout`` seconds (None: block); about
        ``limit`` of them at most (None: the session's own batch size), so that a slow
        consumer gets back to the read loop often enough to notice a stop."""

    @abc.abstractmethod
    def close(self) -> None:
        """Detach and remove everything this session created. Idempotent."""

    # Stopping (backends/loop.py drives these; a session that cannot do one keeps the default).
    def wake_on(self, fd: int) -> None:
        """Also return from :meth:`poll` when ``fd`` becomes readable (undertow.stop's pipe)."""

    def stop_producing(self, at_ns: int) -> None:
        """Have the kernel make no more records, and drop those stamped after ``at_ns``
        (CLOCK_MONOTONIC ns) when they are read (counted in ``stats.after_stop``)."""

    def pending(self) -> bool:
        """Whether records are known to wait in the buffers (kernel or user memory)."""
        return False

    def count_unread(self) -> int:
        """Count what is still in the buffers, unread, into ``stats`` (``not_drained`` and
        ``after_stop``), and read nothing more; returns the ``not_drained`` count."""
        return 0

    def render_lines(self, writer: Any) -> bool:
        """Let the reader format records straight into ``writer``'s text lines
        (``output.text.TextWriter.line_source``): :meth:`poll` then returns ``str`` lines
        for them instead of Events. False (the default) when this session cannot."""
        return False

    def __iter__(self) -> Iterator[Record]:
        while True:
            recs = self.poll(0.2)
            yield from recs

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def check(self, program: "Program", kernel: "Kernel") -> List[Refusal]:
        """Reasons this backend cannot run ``program`` here (empty: it can)."""

    @abc.abstractmethod
    def compile(self, program: "Program", kernel: "Kernel", *, arch: Optional[str] = None) -> Plan:
        """Compile without touching the kernel's tracing state (works offline for ``-S``)."""

    @abc.abstractmethod
    def attach(self, plan: Plan, kernel: "Kernel") -> Session:
        """Create the kernel objects and start tracing."""


class NoBackendError(SourceError):
    """No backend can run the program; the message lists each backend's refusals, and
    the caret points at the first refused part of the user's text when known."""


def choose(backends: Sequence[Backend], program: "Program", kernel: "Kernel") -> Backend:
    """The first backend whose :meth:`Backend.check` has no refusal (see :func:`choose_why`).

    Raises :class:`NoBackendError` naming each backend's first refusal.
    """
    return choose_why(backends, program, kernel)[0]


def choose_why(backends: Sequence[Backend], program: "Program",
               kernel: "Kernel") -> Tuple[Backend, str]:
    """The first backend whose :meth:`Backend.check` has no refusal, and why the ones
    before it were passed over ("" when it is the first). A backend whose refusals are all
    ``fallback`` ones is taken when no later backend can run the program.

    Raises :class:`NoBackendError` naming each backend's first refusal.
    """
    why: List[str] = []
    hints: List[str] = []
    located: Optional[Refusal] = None
    fallback: Optional[Backend] = None
    for b in backends:
        refusals = b.check(program, kernel)
        if not refusals:
            return b, "; ".join(why)
        if fallback is None and all(r.fallback for r in refusals):
            fallback = b
            why.append(f"{b.name}: {refusals[0].message}")
            continue
        why.append(f"{b.name}: {refusals[0].message}")
        for r in refusals:
            hints.extend(h for h in r.hints if h not in hints)
            if located is None and r.span is not None and r.probe_index is not None:
                located = r
    if fallback is not None:
        return fallback, "; ".join(why)
    err = NoBackendError("no backend can run this program (" + "; ".join(why) + ")", hints=hints)
    if located is not None:
        probe = program.probes[located.probe_index]  # type: ignore[index]
        if probe.source:
            err.locate(probe.source, located.span, probe.origin)  # type: ignore[arg-type]
    raise err
