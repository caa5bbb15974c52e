"""One way in for a program on the BPF backend: text (or IR) to records, and the stop.

``undertow run``, the BPF-based tools (``dns``, ``icmp``, ``filewatch``...), the Python
``Program`` builder and API users all run a program through :class:`BpfRun`, so that
compiling, the per-boot program cache, loading, attaching, reading and stopping (the rules
of docs/security.md "Stopping": backends/loop.py) live in one place::

    from undertow.bpfrun import BpfRun

    with BpfRun('tracepoint:syscalls:sys_enter_openat { printf("%s\\n", str(args.filename)); }') as r:
        r.start()                               # loaded and attached
        for batch in r.batches(duration=5):     # Printed / MapPrint / Event / Lost records
            ...
        maps = r.end()                          # END blocks run, every non-empty map

The steps, in order (each may be called on its own; later ones do the earlier ones):

1. ``BpfRun(text, ...)``: the program parsed — or, with ``cache=True``, the compiled
   programs an earlier run of the same script on this boot kept (backends/bpf/progcache.py:
   no parser, resolver or code generator is imported then);
2. :meth:`compile`: resolved against this kernel (BTF, tracepoint formats, ELF) and
   compiled; warnings as lines in :attr:`warnings`;
3. :meth:`start`: maps created, programs loaded and attached (a
   :class:`~undertow.backends.bpf.runtime.ProgramSession`);
4. :meth:`batches`: records until a stop — a signal (under the command line's
   ``undertow.stop.handling``), ``duration``, ``until()``, or :meth:`finish` (``exit()``,
   ``--count``);
5. :meth:`end`: END blocks' output and the final maps; :meth:`keep` stores the compiled
   programs for the next run; :meth:`close` detaches (also on ``with`` exit and at
   interpreter exit).
"""

from __future__ import annotations

import os
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import SourceError, UndertowError

__all__ = ["BpfRun", "warning_lines"]


class BpfRun:
    """A bpftrace-language program on this kernel, from its text to its records.

    ``text``/``origin``/``params``: the program, where it came from (``-e``, a file name,
    ``<undertow dns>``) and its positional parameters. ``program``: an IR program built in
    Python (undertow.program) instead of text. ``pid``: only this process (and ``uaddr()``
    in it); ``unsafe``: allow ``system()``/``signal()``; ``settings``: program settings a
    tool sets (string sizes...); ``cache``: use and keep this boot's compiled programs;
    ``exclude_self``: the probes skip this process; ``strict_kprobes``: a kprobe this
    kernel cannot attach is an error (False for ``-d``, which only compiles).
    """

    def __init__(self, text: str = "", *, origin: str = "-e", params: Sequence[str] = (),
                 program: Any = None, kernel: Any = None, pid: Optional[int] = None, unsafe: bool = False,
                 settings: Optional[Dict[str, Any]] = None, cache: bool = False, exclude_self: bool = True,
                 strict_kprobes: bool = True) -> None:
        from .kernel import Kernel

        self.text, self.origin, self.params = text, origin, list(params)
        self.kernel = kernel if kernel is not None else Kernel()
        self.pid, self.unsafe, self.exclude_self = pid, unsafe, exclude_self
        self.strict_kprobes = strict_kprobes
        self.program = program
        self.compiled: Any = None
        self.session: Any = None
        self.loop: Any = None
        #: warning lines (``undertow run: warning: ...``) of the resolve step, or the cache's
        self.warnings: List[str] = []
        #: whether the compiled programs came from this boot's cache
        self.from_cache = False
        #: why the compiled programs are not kept for the next run (None: they are)
        self.not_kept: Optional[str] = None
        self._key: Any = None
        self._settings = dict(settings or {})
        if cache and program is None and not pid:
            from .backends.bpf import progcache

            self._key = progcache.program_key(self.kernel.roots, text, origin, self.params, unsafe)
            hit = progcache.load(self.kernel.roots, self._key) if self._key is not None else None
            if hit is not None:
                self.warnings, self.compiled = hit
                self.compiled.start_ns = time.monotonic_ns()  # elapsed counts from this session
                self.from_cache = True
                return
        if self.program is None:
            from .lang.bt import parse_program

            self.program = parse_program(text, origin=origin, positional=self.params)
        self.program.settings.update(self._settings)
        if pid:
            self.program.settings["pid"] = pid  # uaddr() of a PIE needs the process's mappings
        calls = self.program.setting("unsafe_calls", []) or []
        if calls and not unsafe:
            name, span = calls[0]
            raise SourceError(f"{name}() runs or signals things outside the kernel", source=text, span=span,
                              origin=origin, hints=["allow it with --unsafe"])

    def set_cpid(self, pid: int, cmd: str = "") -> None:
        """``cpid``: the ``-c`` command's pid (forked before compiling; never cached);
        ``cmd``: its program as written (the binary of a function watchpoint)."""
        if self.program is not None:
            self.program.settings["cpid"] = pid
            if cmd:
                self.program.settings["cmd_path"] = cmd
        self._key = None
        self.not_kept = "-c runs a command (its pid is compiled in)"

    # -- compiling
    def compile(self) -> Any:
        """Resolve and compile (a no-op for a cache hit); returns the CompiledProgram."""
        if self.compiled is not None:
            return self.compiled
        from .backends.bpf.compiler import compile_program
        from .kernel.arch import current_arch
        from .lang.resolve import resolve

        resolve(self.program, self.kernel, strict_kprobes=self.strict_kprobes)
        self.warnings = warning_lines(self.program.warnings)
        if not self.program.probes:
            raise UndertowError("no probe of this program can attach on this kernel",
                                hints=["see the warnings above"] if self.warnings else [])
        self.compiled = compile_program(self.program, arch=current_arch(),
                                        self_pid=os.getpid() if self.exclude_self else None, pid=self.pid)
        if self._key is not None:
            from .backends.bpf.progcache import not_cacheable

            self.not_kept = not_cacheable(self.program, self.compiled, pid=self.pid, cmd=None)
            if self.not_kept is not None:
                self._key = None
        return self.compiled

    def listing(self) -> str:
        """Each program's BPF listing and the maps (``-d``), nothing attached."""
        c = self.compile()
        out = []
        for cp in c.probes:
            out.append(f"# {cp.name}: {cp.prog_type} program, {len(cp.program)} instructions\n")
            out.append(cp.program.listing().rstrip() + "\n")
        for spec in c.maps.values():
            kind = "PERCPU_HASH" if spec.percpu else "HASH"
            out.append(f"# map {spec.name}: {spec.agg}, {kind} key {spec.key_size} B value {spec.value_size} B\n")
        return "".join(out)

    # -- running
    def start(self, ringbuf_mb: int = 0, ring: Any = None) -> Any:
        """Load and attach; returns the session. ``ring``: a ring buffer map created in
        advance (ringprefetch.RingPrefetch, made while compiling)."""
        if self.session is None:
            from .backends.bpf.runtime import ProgramSession, default_buffer_mb

            self.compile()
            mb = ringbuf_mb or default_buffer_mb()
            self.session = ProgramSession.start(self.compiled, self.kernel, ringbuf_size=mb << 20, ring=ring)
        return self.session

    def probe_count(self) -> int:
        """Attached probes as bpftrace counts them (a merged uprobe wildcard: one per function;
        a function watchpoint: its set-up uprobe only)."""
        return sum(len(getattr(cp.ap, "multi", None) or ()) or 1 for cp in self.compile().probes
                   if not (cp.ap.kind == "watchpoint" and cp.ap.target))

    def batches(self, *, duration: Optional[float] = None, drain: bool = False, poll_every: float = 0.05,
                until: Optional[Callable[[], Optional[str]]] = None) -> Iterator[List[Any]]:
        """Records until a stop (backends/loop.py): records made after it are not shown,
        what was made before is shown for at most 0.4 s more (``drain``: all) and the rest
        counted in ``stats.not_drained``."""
        from .backends.loop import ReadLoop

        self.loop = ReadLoop(self.start(), duration=duration, drain=drain, poll_every=poll_every, until=until)
        return self.loop.batches()

    def finish(self, why: str, drain: bool = False) -> None:
        """End :meth:`batches` once the current batch is handled (``drain``: show what is still
        in the buffers, as at the end of -c's command)."""
        if self.loop is not None:
            self.loop.finish(why, drain)

    @property
    def stats(self) -> Any:
        return self.session.stats if self.session is not None else None

    def end(self, empty: bool = False) -> Tuple[List[Any], List[Any]]:
        """``(records END printed, every non-empty map)``, as bpftrace prints them at exit;
        ``empty``: the empty maps too (bpftrace's text output shows each as an empty line)."""
        s = self.start()
        return s.run_end(), s.final_maps(empty)

    def keep(self) -> bool:
        """Store the compiled programs for the next run of this script on this boot (once
        attaching worked); False when not kept (see :attr:`not_kept`)."""
        if self._key is None or self.from_cache or self.compiled is None:
            return False
        from .backends.bpf.progcache import store

        self.program.warnings = []  # shown, kept as text; the exceptions do not pickle
        ok = bool(store(self.kernel.roots, self._key, self.warnings, self.compiled))
        self._key = None
        return ok

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> "BpfRun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def warning_lines(warnings: List[Any], who: str = "undertow run") -> List[str]:
    """Resolve warnings as stderr lines; attach points skipped for one reason share a line."""
    lines = []
    skipped: Dict[str, Any] = {}
    for w in warnings:
        name = getattr(w, "skipped", None)
        if name:
            reason = getattr(w, "feature", "") or w.message
            skipped.setdefault(reason, (w, []))[1].append(name)
        else:
            lines.append(f"{who}: warning: " + w.render().replace("error: ", "", 1))
    for _reason, (w, names) in skipped.items():
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        why = w.message.split(": ", 1)[-1]
        lines.append(f"{who}: warning: skipped {len(names)} attach point{'s' if len(names) != 1 else ''} "
                     f"({why}): {shown}")
    return lines
