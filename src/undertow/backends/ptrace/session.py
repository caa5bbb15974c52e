"""The ptrace session: a tracer thread (``tracer.py``) makes Events, the reader takes them.

The tracer thread blocks in ``wait4`` between the tracees' stops; to stop it at once, the
session sends it ``WAKE_SIGNAL`` (``pthread_kill``) for which a do-nothing handler is
installed (so the wait returns EINTR: Python's handlers are installed without SA_RESTART).
Only the main thread can install a handler: elsewhere the tracer waits with WNOHANG and
naps 2 ms between polls. Events wait in a queue of at most ``MAX_QUEUED`` (the tracer then
waits for the reader: a slow reader slows the traced process, as a slow terminal slows
strace, and nothing is lost).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import threading
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional

from ...events import Event, Stats
from ..base import Session
from .tracer import DETACH_SECONDS, Tracer

__all__ = ["PtraceSession", "WAKE_SIGNAL", "MAX_QUEUED"]

WAKE_SIGNAL = signal.SIGURG
MAX_QUEUED = 65536


def _ignore(signum: int, frame: Any) -> None:
    pass


class PtraceSession(Session):
    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.stats = Stats()
        self._q: "collections.deque[Event]" = collections.deque()
        self._cv = threading.Condition()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._waiting = False
        self._wake_fds: List[int] = []
        self._stop_ns = 0
        self._closed = False
        self._old_handler: Any = None
        self.tracer = Tracer(plan, self._put)

    @classmethod
    def start(cls, plan: Any) -> "PtraceSession":
        s = cls(plan)
        try:
            s._old_handler = signal.signal(WAKE_SIGNAL, _ignore)
        except ValueError:  # not the main thread
            s._old_handler = None
            s.tracer.polling = True
        s.tracer.start()
        s.tracer.ready.wait()
        if s.tracer.error is not None:
            err = s.tracer.error
            s.close()
            raise err
        return s

    # -- the tracer's side
    def _put(self, events: List[Event]) -> None:
        with self._cv:
            while len(self._q) >= MAX_QUEUED and not self._closed and not self.tracer.stopping:
                self._cv.wait(0.05)
            self._q.extend(events)
            waiting = self._waiting
        if waiting:
            try:
                os.write(self._w, b"e")
            except OSError:
                pass

    # -- the reader's side
    def wake_on(self, fd: int) -> None:
        self._wake_fds.append(fd)

    def finished(self) -> Optional[str]:
        """``"child"`` once no traced task is left (the command ended, the process exited)."""
        return "child" if self.tracer.finished.is_set() and not self._q else None

    def poll(self, timeout: Optional[float] = None, limit: Optional[int] = None) -> List[Any]:
        if not self._q and not self.tracer.finished.is_set():
            with self._cv:
                self._waiting = True
            try:
                if not self._q:
                    select.select([self._r] + self._wake_fds, [], [], timeout)
            finally:
                with self._cv:
                    self._waiting = False
            try:
                while os.read(self._r, 4096):
                    pass
            except OSError:
                pass
        out: List[Any] = []
        n = limit or 4096
        stop_ns = self._stop_ns
        with self._cv:
            q = self._q
            while q and len(out) < n:
                ev = q.popleft()
                if stop_ns and ev.ts > stop_ns:
                    self.stats.after_stop += 1
                    continue
                out.append(ev)
            self._cv.notify_all()
        for ev in out:
            self.stats.count_event(ev.probe)
        err = self.tracer.error
        if err is not None and not out and not self._q:
            self.tracer.error = None
            raise err
        return out

    def pending(self) -> bool:
        return bool(self._q)

    def count_unread(self) -> int:
        with self._cv:
            n = len(self._q)
            self._q.clear()
            self._cv.notify_all()
        self.stats.not_drained += n
        return n

    # -- stopping
    def _wake(self) -> None:
        t = self.tracer
        if t.is_alive() and t.ident is not None and not t.polling:
            try:
                signal.pthread_kill(t.ident, WAKE_SIGNAL)
            except (OSError, ValueError):
                pass

    def stop_producing(self, at_ns: int) -> None:
        self._stop_ns = at_ns
        self.tracer.stopping = True
        self._wake()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        t = self.tracer
        t.stopping = True
        with self._cv:
            self._cv.notify_all()
        deadline = time.monotonic() + DETACH_SECONDS + 2.5
        while t.is_alive() and time.monotonic() < deadline:
            self._wake()  # again: the first may have come before the tracer waited
            t.join(0.05)
        if self._old_handler is not None:
            try:
                signal.signal(WAKE_SIGNAL, self._old_handler)
            except ValueError:
                pass
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
