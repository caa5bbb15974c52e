"""The ptrace session: ``poll`` runs the tracer (``tracer.py``) in the caller's thread.

The tracer blocks in ``wait4`` between the tracees' stops. ``poll(timeout)`` must return
after ``timeout`` even when the tracees are idle: a timer thread (:class:`_Timer`, idle
otherwise) sends the polling thread ``WAKE_SIGNAL`` at the deadline, for which a do-nothing
handler is installed, so the wait ends with EINTR (Python installs handlers without
SA_RESTART). Only the main thread can install one: elsewhere the tracer polls with WNOHANG
and naps 2 ms. The session must be polled from the thread that attached it (ptrace's rule).

A slow reader slows the traced process (it stays stopped until ``poll`` comes round), as a
slow terminal slows strace: nothing is lost.
"""

from __future__ import annotations

import signal
import threading
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional

from ..base import Session
from .tracer import Tracer

__all__ = ["PtraceSession", "WAKE_SIGNAL"]

WAKE_SIGNAL = signal.SIGURG


def _ignore(signum: int, frame: Any) -> None:
    pass


class _Timer(threading.Thread):
    """Sends ``WAKE_SIGNAL`` to thread ``target`` once the armed deadline passes, again every
    20 ms until disarmed (the first may come just before the thread starts waiting)."""

    def __init__(self, ident: int) -> None:
        super().__init__(name="undertow-ptrace-timer", daemon=True)
        self.target = ident
        self.cv = threading.Condition()
        self.deadline: Optional[float] = None
        self.closed = False

    def arm(self, deadline: Optional[float]) -> None:
        with self.cv:
            self.deadline = deadline
            self.cv.notify()

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify()

    def run(self) -> None:
        with self.cv:
            while not self.closed:
                if self.deadline is None:
                    self.cv.wait()
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.cv.wait(left)
                    continue
                try:
                    signal.pthread_kill(self.target, WAKE_SIGNAL)
                except (OSError, ValueError):
                    return
                self.cv.wait(0.02)


class PtraceSession(Session):
    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.tracer = Tracer(plan)
        self.stats = self.tracer.stats  # the tracer counts what it makes
        self._closed = False
        self._old_handler: Any = None
        self._timer: Optional[_Timer] = None

    @classmethod
    def start(cls, plan: Any) -> "PtraceSession":
        s = cls(plan)
        try:
            s._old_handler = signal.signal(WAKE_SIGNAL, _ignore)
        except ValueError:  # not the main thread: no handler, so no blocking waits
            s._old_handler = None
            s.tracer.polling = True
        try:
            s.tracer.setup()
        except BaseException:
            s.close()
            raise
        if not s.tracer.polling:
            s._timer = _Timer(threading.get_ident())
            s._timer.start()
        return s

    def finished(self) -> Optional[str]:
        """``"child"`` once no traced task is left (the command ended, the process exited)."""
        return "child" if self.tracer.finished else None

    def poll(self, timeout: Optional[float] = None, limit: Optional[int] = None) -> List[Any]:
        t = self.tracer
        if t.finished:
            err, t.error = t.error, None
            if err is not None:
                raise err
            return []
        now = time.monotonic()
        block = timeout is None or timeout > 0
        deadline = now + (timeout if timeout is not None else 3600.0)
        timer = self._timer
        if block and timer is not None:
            timer.arm(deadline)
        try:
            out = t.pump(deadline, limit or 4096, block)
        finally:
            if block and timer is not None:
                timer.arm(None)
        return out

    def render_lines(self, writer: Any) -> bool:
        return self.tracer.set_render(writer)

    def stop_producing(self, at_ns: int) -> None:
        # called from a signal handler, maybe in the middle of pump(): only flags here; the
        # wait it interrupted returns EINTR and pump() releases the tasks
        self.tracer.stop_ns = at_ns
        self.tracer.stopping = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self.tracer.finished:
                self.tracer.release()
        finally:
            if self._timer is not None:
                self._timer.close()
            if self._old_handler is not None:
                try:
                    signal.signal(WAKE_SIGNAL, self._old_handler)
                except ValueError:
                    pass
