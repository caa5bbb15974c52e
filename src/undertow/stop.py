"""Stopping on request: SIGINT, SIGTERM and SIGHUP become a flag, never an exception mid-step.

A tracer creates kernel objects (a tracefs instance, probe definitions, BPF links) in many
small steps. A signal handler that raises (``KeyboardInterrupt``, the old ``_Stop``) can land
between a ``mkdir`` and the line that records it, and the object is left behind with a
traceback on the terminal. So the command line installs :func:`handling` once, around the
whole command: the handlers only record the signal and write a byte to a wake-up pipe
(:func:`signal.set_wakeup_fd`); code that takes more than an instant asks:

- set-up steps call :func:`check` between kernel writes: it raises :class:`Interrupted`
  (a clean exception the caller's ``close()``/``finally`` turns into a full clean-up);
- event loops test :func:`requested` each turn and wait on :func:`wakeup_fd` beside their
  own fds (or with a short timeout), so they notice a signal within milliseconds.

A command started by a non-interactive shell with ``cmd &`` inherits SIGINT as *ignored*
(POSIX, "Asynchronous Lists"); Python then never raises KeyboardInterrupt. bpftrace installs its
own handler regardless, and so does :func:`handling`: ``kill -INT`` stops undertow however it
was started.

Library users who never call :func:`handling` keep Python's defaults: :func:`requested` is 0
and :func:`check` does nothing, KeyboardInterrupt is raised as usual, and sessions clean up
in their context managers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List

__all__ = ["Interrupted", "handling", "requested", "check", "request", "wakeup_fd", "drain_wakeup", "stopped_at_ns",
           "listen", "alarm", "cancel_alarm", "STOP_SIGNALS"]

#: The signals that ask undertow to stop (and clean up) rather than die.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_signum = 0          # the first stop request's signal (-1: asked by the program, e.g. --duration)
_at_ns = 0           # CLOCK_MONOTONIC when it came
_pipe = (-1, -1)     # (read end, write end) of the wake-up pipe while handling() is active
_active = 0
_count = 0           # stop requests after the first
#: Set by the read loop while it drains without a time limit: a second SIGINT then raises
#: KeyboardInterrupt instead of being folded into the first request. A third stop signal
#: always does.
forceable = False
_listeners: List[Callable[[int], None]] = []
_alarm_ns = 0        # the deadline an armed SIGALRM stands for (--duration)


class Interrupted(BaseException):
    """A stop was requested (``signum``) while undertow was still setting up.

    A BaseException, as KeyboardInterrupt is: best-effort ``except UndertowError`` or
    ``except Exception`` around a set-up step must not swallow it; owners catch it only in
    their ``except BaseException: close(); raise``.
    """

    def __init__(self, signum: int) -> None:
        name = _signame(signum)
        self.message = f"stopped by {name} while setting up" if name else "stopped while setting up"
        super().__init__(self.message)
        self.signum = signum


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return ""


def _fire(at_ns: int) -> None:
    """Tell the listeners (sessions stop producing at once, in the handler: no record made
    after this point is waiting for the read loop to come round)."""
    for fn in list(_listeners):
        try:
            fn(at_ns)
        except Exception:  # noqa: BLE001 - a listener must not turn a stop into a traceback
            pass


def _handler(signum: int, frame: Any) -> None:
    global _signum, _at_ns, _count
    # the wake-up byte itself is written by the interpreter (set_wakeup_fd) before this runs
    if not _signum:
        _signum = signum
        _at_ns = _alarm_ns if signum == signal.SIGALRM and _alarm_ns else time.monotonic_ns()
        _fire(_at_ns)
        return
    if signum == signal.SIGALRM:
        return
    _count += 1
    if signum != signal.SIGALRM and _count >= 2:
        # a third request: whatever undertow is waiting for (a read of a FIFO named as the
        # program, a clean-up stuck in the kernel) is not worth more of the user's patience
        raise KeyboardInterrupt
    if signum == signal.SIGINT and forceable:
        # Ctrl-C again while showing a long backlog (``--drain``): give up on it; the
        # owners' ``finally``/``with`` still remove what was created. Only there: a second
        # signal during set-up or clean-up must not cut those short.
        raise KeyboardInterrupt


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP only request a stop (see the module's doc).

    Only the main thread may install handlers; elsewhere (a library user's worker thread)
    this does nothing. Nested uses share the outer one. On the way out the previous
    handlers and wake-up fd are restored.
    """
    global _pipe, _active, _signum, _at_ns, _count
    r = w = -1
    if not _active:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)  # set_wakeup_fd wants a non-blocking fd
        try:
            old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: only it may handle signals
            os.close(r)
            os.close(w)
            r = w = -1
    if r < 0:
        _active += 1
        try:
            yield
        finally:
            _active -= 1
        return
    old: Dict[int, Any] = {}
    _signum, _at_ns, _count = 0, 0, 0
    _pipe = (r, w)
    _active = 1
    try:
        for s in STOP_SIGNALS + (signal.SIGALRM,):
            old[s] = signal.signal(s, _handler)
        yield
    finally:
        cancel_alarm()
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)
        _active = 0
        _pipe = (-1, -1)
        os.close(r)
        os.close(w)


def requested() -> int:
    """The signal that asked to stop (-1 when the program itself asked, 0: not asked)."""
    return _signum


def stopped_at_ns() -> int:
    """CLOCK_MONOTONIC (ns, as ``bpf_ktime_get_ns`` and the ``mono`` trace clock) of the
    stop request; 0 when there was none. Records stamped later were made after the stop."""
    return _at_ns


def request(signum: int = -1) -> None:
    """Ask to stop from inside undertow: the same path as a signal, so loops and set-up
    need one test."""
    global _signum, _at_ns
    if not _signum:
        _signum, _at_ns = signum, time.monotonic_ns()
        _fire(_at_ns)
        if _pipe[1] >= 0:
            try:
                os.write(_pipe[1], b"\0")
            except OSError:
                pass


def check() -> None:
    """Raise :class:`Interrupted` when a stop was requested by a signal (call between set-up steps)."""
    if _signum > 0 and _signum != signal.SIGALRM:
        raise Interrupted(_signum)


def listen(fn: Callable[[int], None]) -> Callable[[], None]:
    """Call ``fn(at_ns)`` on the first stop request, from the signal handler itself (so it
    must be quick and must not block: set a flag, write a file); returns the function that
    stops listening."""
    _listeners.append(fn)

    def remove() -> None:
        try:
            _listeners.remove(fn)
        except ValueError:
            pass
    return remove


def alarm(deadline: float) -> bool:
    """Request a stop at ``deadline`` (``time.monotonic()`` seconds) through SIGALRM, as a
    signal would (``requested()`` is then ``SIGALRM`` and ``stopped_at_ns()`` the deadline
    itself): ``--duration`` ends when it should, not when the read loop next looks. Only
    inside :func:`handling` (False otherwise: the caller watches the clock itself)."""
    global _alarm_ns
    if not _active or _pipe[0] < 0:
        return False
    _alarm_ns = int(deadline * 1e9)
    signal.setitimer(signal.ITIMER_REAL, max(1e-6, deadline - time.monotonic()))
    return True


def cancel_alarm() -> None:
    global _alarm_ns
    if _alarm_ns:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _alarm_ns = 0


def wakeup_fd() -> int:
    """A file descriptor that becomes readable when a stop is requested (-1 outside
    :func:`handling`). Register it with ``select.poll``/``epoll`` beside the data fds;
    never read from it (the flag, not the byte, is the truth): call :func:`drain_wakeup`."""
    return _pipe[0]


def drain_wakeup() -> None:
    """Empty the wake-up pipe when no stop was requested. The interpreter writes a byte
    there for every signal that has a Python handler (set_wakeup_fd), not only ours: after
    a SIGUSR1 (`run` prints the maps) the pipe would stay readable and a loop waiting on it
    would spin. Event loops call this each turn; a stop's byte is kept."""
    if _signum or _pipe[0] < 0:
        return
    try:
        while os.read(_pipe[0], 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def reset() -> None:
    """Forget a stop request (tests; a command that handled one and goes on)."""
    global _signum, _at_ns, _count
    _signum, _at_ns, _count = 0, 0, 0
    if _pipe[0] >= 0:
        try:
            while os.read(_pipe[0], 4096):
                pass
        except (BlockingIOError, OSError):
            pass
