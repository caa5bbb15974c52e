"""The Python API behind ``undertow trace``.

::

    import undertow
    with undertow.trace("e syscalls/sys_enter_openat f:comm==\\"cat\\"") as t:
        for ev in t:
            print(ev.pid, ev.comm, ev.fields["filename"])

    undertow.trace("e sched/sched_process_exec", duration=5, callback=print).run()

:func:`trace` parses probe lines, resolves them against the running kernel,
picks a backend (``auto``: ftrace when it can express everything and the
attach points exist, else BPF), compiles, and — on first iteration, ``start()``
or ``with`` — attaches. :meth:`Tracer.show` gives the ``-S`` text without
attaching anything.
"""

from __future__ import annotations

import os
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, List, Optional, Sequence

from .backends.base import Backend, NoBackendError, Plan, Session
from .errors import SourceError, UndertowError, UsageError
from .events import Event, Lost, Record, Stats
from .kernel import Kernel
from .lang import ir

BACKENDS = ("auto", "ftrace", "bpf", "ptrace")


def parse(lines: Sequence[str] = (), files: Sequence[str] = (), origin: str = "<cmdline>") -> ir.Program:
    """Probe lines (and lines from files) -> an unresolved Program."""
    from .lang import probeline

    probes: List[ir.Probe] = []
    if lines:
        probes += probeline.parse_lines(list(lines), origin=origin).probes
    for path in files:
        probes += probeline.parse_file(path).probes
    if not probes:
        raise UndertowError("no probe lines given", hints=["e.g. undertow trace 'e sched/sched_process_exec'"])
    return ir.Program(probes)


def backend_by_name(name: str) -> List[Backend]:
    """The backends ``name`` allows, in the order ``auto`` tries them."""
    out: List[Backend] = []
    if name == "ptrace":
        from .backends.ptrace.backend import PtraceBackend

        return [PtraceBackend()]
    if name in ("auto", "ftrace"):
        from .backends.ftrace.backend import FtraceBackend

        out.append(FtraceBackend())
    if name in ("auto", "bpf"):
        try:
            from .backends.bpf.backend import BpfBackend  # type: ignore[import-not-found]
        except ImportError:
            if name == "bpf":
                raise UndertowError("the BPF backend is not available in this version",
                                    hints=["use --backend ftrace"])
        else:
            out.append(BpfBackend())
    if not out:
        raise UndertowError(f"unknown backend {name!r}", hints=["choose one of: " + ", ".join(BACKENDS)])
    return out


from .backends.loop import POLL_EVERY  # noqa: E402,F401 - re-exported (bench/README names it here)


class Tracer:
    """A compiled tracing session: iterate it for :class:`Event` records."""

    def __init__(self, program: ir.Program, *, backend: str = "auto", kernel: Optional[Kernel] = None,
                 arch: Optional[str] = None, offline: bool = False,
                 duration: Optional[float] = None, count: Optional[int] = None,
                 callback: Optional[Callable[[Event], object]] = None,
                 on_lost: Optional[Callable[[Lost], object]] = None, drain: bool = False) -> None:
        from .lang.resolve import resolve

        self.kernel = kernel or Kernel()
        self.program = program
        self.duration, self.count, self.drain = duration, count, drain
        #: why reading ended: "signal", "duration", "count" (None while running); see backends/loop.py
        self.stopped_by: Optional[str] = None
        self.callback, self.on_lost = callback, on_lost
        self._session: Optional[Session] = None
        self._seen = 0
        self._started_at: Optional[float] = None
        #: why ``auto`` passed over the backends before the one chosen ("" when none was)
        self.backend_why = ""
        ptrace_why = ptrace_choice(program, backend, self.kernel)
        if ptrace_why:
            # syscall lines of one process: their formats from tracefs, or from undertow's
            # table when this user may not read tracefs (kernel/syscall_events.py)
            from .kernel.syscall_events import FormatsKernel

            if not isinstance(self.kernel, FormatsKernel):
                self.kernel = FormatsKernel(self.kernel.roots)
            backend = "ptrace"
            self.backend_why = "" if ptrace_why == "asked" else ptrace_why
        resolve(program, self.kernel, arch=arch, strict_kprobes=not offline)
        candidates = backend_by_name(backend)
        if offline and backend == "ptrace":
            self.backend = candidates[0]
            self.plan = self.backend.compile(program, self.kernel, arch=arch)
        elif offline:
            # -S: compile for the first backend that can express the program,
            # whether or not this kernel could attach it (the first one's error if none can).
            first: Optional[UndertowError] = None
            for b in candidates:
                try:
                    self.plan: Plan = b.compile(program, self.kernel, arch=arch)
                except UndertowError as e:
                    first = first or e
                    continue
                self.backend = b
                break
            else:
                assert first is not None
                raise first
        else:
            from .backends.base import choose_why

            self.backend, why = choose_why(candidates, program, self.kernel)
            self.backend_why = self.backend_why or why
            self.plan = self.backend.compile(program, self.kernel, arch=arch)

    # -- showing
    def show(self) -> str:
        """The exact tracefs lines / BPF listing (``-S``)."""
        return self.plan.render()

    # -- running
    def start(self) -> "Tracer":
        if self._session is None:
            self._session = self.backend.attach(self.plan, self.kernel)
            self._started_at = time.monotonic()
        return self

    @property
    def stats(self) -> Stats:
        return self._session.stats if self._session is not None else Stats()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> "Tracer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> Iterator[Record]:
        """Events and :class:`Lost` notices as they arrive, until duration/count."""
        for batch in self.batches():
            for i, rec in enumerate(batch):
                self._left = len(batch) - i - 1
                yield rec

    def batches(self) -> Iterator[List[Record]]:
        """The records one list per read of the kernel buffers, until duration/count/a stop
        (the batch holding the count-th Event ends there): for consumers that write a batch
        at once (``undertow trace``). Stopping follows backends/loop.py: records made after
        the stop are not shown, what was made before it and not shown is counted in
        :attr:`stats` (``not_drained``)."""
        from .backends.loop import ReadLoop

        self.start()
        assert self._session is not None
        loop = ReadLoop(self._session, duration=self.duration, drain=self.drain, started_at=self._started_at,
                        until=getattr(self._session, "finished", None))
        try:
            for batch in loop.batches():
                if self.count is not None:
                    for i, rec in enumerate(batch):
                        if rec.__class__ is not Lost:  # an Event, or its line (render_lines)
                            self._seen += 1
                            if self._seen >= self.count:
                                loop.finish("count")
                                batch = batch[:i + 1]
                                break
                if batch:
                    yield batch
        finally:
            self.stopped_by = loop.stopped_by

    def render_lines(self, writer: Any) -> bool:
        """Have the backend format the events it can straight into ``writer``'s lines
        (``output.text.TextWriter``; used by ``undertow trace``): batches then hold
        ``str`` lines beside Events and Lost notices. Starts the session; returns
        whether the backend does it."""
        self.start()
        assert self._session is not None
        return self._session.render_lines(writer)

    def pending(self) -> int:
        """Records already read and not yet handed out by :meth:`records` (0: caught up)."""
        return getattr(self, "_left", 0)

    def __iter__(self) -> Iterator[Event]:
        for rec in self.records():
            if isinstance(rec, Event):
                yield rec
            elif self.on_lost is not None:
                self.on_lost(rec)

    def run(self) -> Stats:
        """Deliver every event to ``callback`` until duration/count/Ctrl-C; return the stats."""
        try:
            with self:
                for rec in self.records():
                    if isinstance(rec, Event):
                        if self.callback is not None:
                            self.callback(rec)
                    elif self.on_lost is not None:
                        self.on_lost(rec)
        except KeyboardInterrupt:
            pass
        return self.stats


def trace(*lines: str, files: Sequence[str] = (), backend: str = "auto", pid: Optional[int] = None,
          stack: bool = False, kernel: Optional[Kernel] = None, arch: Optional[str] = None,
          offline: bool = False, duration: Optional[float] = None, count: Optional[int] = None,
          callback: Optional[Callable[[Event], object]] = None,
          on_lost: Optional[Callable[[Lost], object]] = None, exclude_self: bool = True,
          drain: bool = False, cmd: Optional[Sequence[str]] = None) -> Tracer:
    """Trace probe lines (surftrace syntax; see docs/probe-lines.md).

    ``pid`` traces one process only; ``stack`` adds kernel stacks to every
    event; ``offline`` compiles without needing the attach points to exist
    (for :meth:`Tracer.show`). ``cmd`` (an argv list, run without a shell) starts that
    command and traces it and its children with the ptrace backend (syscall lines only;
    docs/ptrace.md), as ``pid`` does an existing process with ``backend="ptrace"``. ``drain``: on a stop, show everything recorded before it
    instead of at most 0.4 s of it (the rest is counted as lost). Raises :class:`~undertow.errors.UndertowError`
    subclasses (with spans for bad lines) before touching the kernel's
    tracing state.
    """
    if pid is not None and (type(pid) is not int or pid < 1):
        # written into tracefs (set_event_pid) and compiled into BPF: a number, never text
        raise UsageError(f"pid must be a positive int, not {pid!r}")
    if cmd is not None and (isinstance(cmd, str) or not cmd or not all(isinstance(w, str) for w in cmd)):
        raise UsageError("cmd must be a non-empty list of words (argv), run without a shell")
    if cmd is not None and pid is not None:
        raise UsageError("give a pid or a command to trace, not both")
    program = parse(lines, files)
    program.settings.update(stack=stack, pid=pid, exclude_self=exclude_self, self_pid=os.getpid(),
                            cmd=list(cmd) if cmd is not None else None)
    return Tracer(program, backend=backend, kernel=kernel, arch=arch, offline=offline,
                  duration=duration, count=count, callback=callback, on_lost=on_lost, drain=drain)


def ptrace_choice(program: ir.Program, backend: str, kernel: Kernel) -> str:
    """Why the ptrace backend runs ``program`` (``"asked"``: ``backend="ptrace"``), or ""
    when another backend does. ``auto`` takes it for a command (``-c``: only ptrace starts
    one) and for a process (``-p``) when this user may use neither tracefs nor BPF, provided
    every line is a syscall tracepoint. A command with ftrace or bpf asked is a usage error."""
    if backend == "ptrace":
        return "asked"
    cmd, pid = program.setting("cmd"), program.setting("pid")
    if cmd and backend != "auto":
        raise UsageError(f"-c CMD runs with the ptrace backend, not {backend}",
                         hints=["leave out --backend, or give --backend ptrace"])
    if backend != "auto" or not (cmd or pid):
        return ""
    from .backends.ptrace.backend import syscall_target

    for p in program.probes:
        for ap in p.attach:
            if ap.kind != "tracepoint" or syscall_target(ap.target) is None:
                if cmd:
                    raise UsageError("-c CMD traces syscall lines only (e syscalls/sys_enter_*, sys_exit_*): "
                                     f"{ap.target} is not one", hints=["trace other events with -p PID"])
                return ""
    if cmd:
        return "-c CMD: the command is started and traced with ptrace"
    return tracing_denied(kernel)


def tracing_denied(kernel: Kernel) -> str:
    """Why this user may use neither tracefs nor BPF ("" when one of them is allowed): not
    root, tracefs unreadable, and neither CAP_BPF with CAP_PERFMON nor CAP_SYS_ADMIN
    (include/uapi/linux/capability.h) in the effective set."""
    if os.geteuid() == 0:
        return ""
    eff = 0
    try:
        with open(kernel.roots.proc_path("self", "status")) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    if eff & (1 << 21) or (eff & (1 << 38) and eff & (1 << 39)):
        return ""
    from .kernel.tracefs import find_tracefs

    path = find_tracefs(kernel.roots)
    if path and os.access(path, os.R_OK | os.X_OK):
        return ""
    where = f"tracefs ({path})" if path else "tracefs"
    return f"{where} and BPF need root or CAP_BPF+CAP_PERFMON; ptrace traces this user's own processes"


__all__ = ["trace", "parse", "Tracer", "NoBackendError", "SourceError"]
