"""The sessions of ``undertow ssl``: one for the libraries found at the start (with the
exec/mmap watch probes), one more for each library file that appears later.

A uprobe covers every process mapping its file, now and later (ssl_libs.py), so a new
session is needed only for a *new file*: a program started from another copy of a library
(a container's, an upgraded one), a ``dlopen`` of GnuTLS, a statically linked executable.
The watch probes report each exec and each executable ``mmap`` of a file; the process is
scanned :data:`RESCAN_DELAY` seconds later (the loader maps a library's segments one after
the other) and new library files get their own program, attached at once. What such a
process does with TLS before that (tens of milliseconds) is not seen.

The first session drives the read loop (``BpfRun.batches``: signals, ``--duration``, the
stop rules of backends/loop.py); the others are polled at every turn of it and stopped
with it (:func:`undertow.stop.listen`).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional

    from .ssl_libs import LibraryScanner, TlsLibrary

__all__ = ["SslSessions", "RESCAN_DELAY"]

#: seconds between a process's exec/mmap and the scan of its mappings
RESCAN_DELAY = 0.03
#: processes waiting for a scan, at most (an exec storm must not grow it without bound)
MAX_PENDING = 4096
#: seconds of scanning per turn of the read loop, at most (the rest waits for the next turn)
SCAN_TURN = 0.02
#: process scans per second, at most (each reads /proc/PID/maps: an exec storm must not
#: turn the tool into a /proc reader); the rest are counted in ``skipped_scans``
MAX_SCANS_PER_S = 500


class SslSessions:
    """Runs the TLS programs; ``on_record(rec)`` gets every data record (``Printed``),
    ``on_lost(rec)`` every ``Lost`` notice, ``warn(text)`` what could not be attached."""

    def __init__(self, scanner: "LibraryScanner", *, pid: Optional[int], settings: Dict[str, Any],
                 watch: bool, warn: Callable[[str], None],
                 note: Optional[Callable[[str], None]] = None) -> None:
        self.scanner = scanner
        self.pid = pid
        self.settings = settings
        self.watch = watch
        self.warn = warn
        self.note = note
        self.main: Any = None
        self.extra: List[Any] = []
        self.libs: Dict[int, "TlsLibrary"] = {}
        self._next = 0
        self._pending: Dict[int, float] = {}
        self._scan_second = 0
        self._scans = 0
        #: processes not scanned (over MAX_PENDING or MAX_SCANS_PER_S)
        self.skipped_scans = 0
        self._stopped = False
        self._unlisten: Optional[Callable[[], None]] = None

    def _number(self, libs: List["TlsLibrary"]) -> None:
        for lib in libs:
            lib.index = self._next
            self.libs[self._next] = lib
            self._next += 1

    def _run(self, libs: List["TlsLibrary"], watch: bool) -> Any:
        from ..bpfrun import BpfRun
        from .ssl import build_program

        run = BpfRun(build_program(libs, watch), origin="<undertow ssl>", settings=self.settings, pid=self.pid)
        try:
            run.start()
        except BaseException:
            run.close()
            raise
        return run

    def start(self, libs: List["TlsLibrary"]) -> None:
        """Attach the first program: ``libs`` and (with ``watch``) the watch probes. A library
        whose probes do not attach (a malformed file made to look like one) is left out with
        a warning, not the whole tool."""
        from ..errors import UndertowError

        self._number(libs)
        if not libs and not self.watch:
            raise UndertowError("no TLS library is mapped by the process(es) watched",
                                hints=["start the program first, or leave out --pid to watch new processes too"])
        try:
            self.main = self._run(libs, self.watch)
        except UndertowError:
            if not libs:
                raise
            # one at a time, to leave out only what fails
            self.main = self._run([], True) if self.watch else None
            for lib in libs:
                self._add(lib)
            if self.main is None:
                if not self.extra:
                    raise
                self.main = self.extra.pop(0)
        from .. import stop

        self._unlisten = stop.listen(self._stop_extra)

    def _add(self, lib: "TlsLibrary") -> None:
        from ..errors import UndertowError

        if lib.index < 0:
            self._number([lib])
        try:
            self.extra.append(self._run([lib], False))
            if self.note is not None:
                self.note(f"attached to {lib.kind} {lib.path} (pid {lib.pid}): {' '.join(lib.functions)}")
        except UndertowError as e:
            self.warn(f"cannot attach to {lib.path} (pid {lib.pid}): {e.message}")

    def _stop_extra(self, at_ns: int) -> None:
        self._stopped = True
        for r in self.extra:
            if r.session is not None:
                r.session.stop_producing(at_ns)

    def note_process(self, pid: int) -> None:
        """A watch record: scan ``pid`` after :data:`RESCAN_DELAY`."""
        if pid in self._pending:
            return
        if len(self._pending) >= MAX_PENDING:
            self.skipped_scans += 1
            return
        self._pending[pid] = time.monotonic() + RESCAN_DELAY

    def tick(self) -> List[Any]:
        """Scan the processes whose delay passed (new libraries get a session), then return
        what the other sessions recorded since the last turn."""
        if self._pending and not self._stopped:
            now = time.monotonic()
            due = [p for p, t in self._pending.items() if t <= now]
            from .. import stop

            until = now + SCAN_TURN
            for p in due:
                if stop.requested() or time.monotonic() > until:
                    break  # a scan reads ELF files: the loop (and a stop) must not wait for the rest
                del self._pending[p]
                sec = int(now)
                if sec != self._scan_second:
                    self._scan_second, self._scans = sec, 0
                self._scans += 1
                if self._scans > MAX_SCANS_PER_S:
                    self.skipped_scans += 1
                    continue
                for lib in self.scanner.scan_pid(p):
                    self._add(lib)
        out: List[Any] = []
        for r in self.extra:
            if r.session is not None:
                out += r.session.poll(0, 4096)
        return out

    def batches(self, duration: Optional[float], drain: bool, until: Callable[[], Optional[str]]) -> Iterator[List[Any]]:
        return self.main.batches(duration=duration, drain=drain, until=until)

    def finish(self, why: str) -> None:
        self.main.finish(why)

    def drain_extra(self) -> List[Any]:
        """After the stop: what the other sessions still hold (at most 0.2 s of reading),
        the rest counted as not drained."""
        out: List[Any] = []
        end = time.monotonic() + 0.2
        for r in self.extra:
            s = r.session
            if s is None:
                continue
            while time.monotonic() < end:
                got = s.poll(0, 4096)
                if not got:
                    break
                out += got
            s.count_unread()
        return out

    def loss_lines(self) -> List[str]:
        lines: List[str] = []
        for r in ([self.main] if self.main is not None else []) + self.extra:
            if r.stats is not None:
                lines += r.stats.loss_report("undertow ssl")
        return lines

    def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        for r in self.extra:
            r.close()
        if self.main is not None:
            self.main.close()
        self.scanner.close()
