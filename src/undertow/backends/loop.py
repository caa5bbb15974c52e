"""The read loop every command shares: poll a session until something asks it to stop,
then stop the same way everywhere.

What asks to stop: a signal (SIGINT/SIGTERM/SIGHUP through :mod:`undertow.stop`), the end of
``--duration``, or the consumer itself through :meth:`ReadLoop.finish` (``--count`` reached,
the program called ``exit()``). Then, in this order:

1. :meth:`~undertow.backends.base.Session.stop_producing` at the stop's time: the kernel
   records nothing more (BPF: the programs' stop flag; ftrace: ``tracing_on`` 0), and records
   stamped after that time which are already in the buffers are dropped as they are read
   (``stats.after_stop``: made after the user asked to stop, so never shown);
2. what the buffers still hold is shown for at most ``drain_seconds`` (all of it with
   ``drain=True``, the commands' ``--drain``): a storm cannot keep a stopped tracer printing
   for tens of seconds;
3. the rest is counted without being decoded (``stats.not_drained``), so the exit summary
   adds up: events read + lost (by the kernel) + not drained = records made before the stop.

A second SIGINT while draining with ``drain=True`` raises KeyboardInterrupt
(:mod:`undertow.stop`): the session is still closed by its owner's ``with``/``finally``.
"""

from __future__ import annotations

import signal
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, List, Optional

from .. import stop

__all__ = ["ReadLoop", "POLL_EVERY", "DRAIN_SECONDS"]

#: The reader wakes at least this often (seconds): batched kernel wake-ups (buffer_percent,
#: ring buffers without wake-ups) leave the timer to bound how late a line is shown under a
#: steady load. 50 ms keeps every event within 100 ms (bench/trace_latency.py: max ~65 ms
#: at 20k events/s) for ~20 empty reads per second.
POLL_EVERY = 0.05
#: One turn of the loop (read a batch, let the consumer handle it) should take about this
#: long at most: the batch size adapts to the consumer's speed (a tool formatting each
#: record in Python handles ~20k/s, `undertow trace`'s line renderer ~1M/s), so a stop is
#: noticed within ~TURN whatever the consumer.
TURN = 0.05
MIN_BATCH, MAX_BATCH = 64, 16384
#: How long a stopped session goes on showing what it had recorded before the stop. 0.4 s
#: leaves room, within the one second a stop may take, for counting the rest, the END
#: blocks and maps, and detaching (up to ~0.3 s: bpf/runtime.py SYNC_CLOSE_MAX).
DRAIN_SECONDS = 0.4


class ReadLoop:
    """Batches of records from ``session`` until a stop (see the module's doc).

    ``duration``: seconds from ``started_at`` (``time.monotonic()``; default: now).
    ``until()``, asked every turn (at least every ``poll_every`` seconds), returns a reason
    to stop and drain (``"child"``: the command of ``-c`` ended) or None.
    ``stopped_by`` says why it ended: ``"signal"``, ``"duration"``, ``"count"``, ``"exit"``,
    or whatever the consumer passed to :meth:`finish`.
    """

    def __init__(self, session: Any, *, duration: Optional[float] = None, drain: bool = False,
                 poll_every: float = POLL_EVERY, drain_seconds: float = DRAIN_SECONDS,
                 started_at: Optional[float] = None, until: Optional[Callable[[], Optional[str]]] = None) -> None:
        self.session = session
        self.until = until
        self.drain = drain
        self.poll_every = poll_every
        self.drain_seconds = drain_seconds
        start = time.monotonic() if started_at is None else started_at
        self.deadline = None if duration is None else start + duration
        self.stopped_by: Optional[str] = None
        self._finish: Optional[str] = None
        self._finish_drain = False
        self._stopped = False
        # records asked per poll: cut to what fits in TURN when a turn takes longer, doubled
        # when quick. It starts small: a slow consumer (a tool formatting each record, ~1 ms
        # a record in a starved VM) must not spend seconds on its first batch before the
        # loop can notice a stop; a fast one reaches MAX_BATCH within a few turns
        self.batch = 256

    def finish(self, why: str, drain: bool = False) -> None:
        """The consumer asks to stop once it has handled the current batch: ``drain`` shows
        what the kernel already recorded (``exit()``: everything before the call), otherwise
        it is only counted (``--count``: the consumer has what it wanted)."""
        if self._finish is None:
            self._finish, self._finish_drain = why, drain

    def _read(self, timeout: float) -> Iterator[List[Any]]:
        """One poll, yielded when not empty; the next batch size from how long the turn took."""
        t0 = time.monotonic()
        batch = self.session.poll(timeout, self.batch)
        if not batch:
            return
        t1 = time.monotonic()
        yield batch
        took = time.monotonic() - t1  # the consumer's share
        if took > TURN:
            # in proportion, not halved: one slow turn must not be followed by several
            self.batch = max(MIN_BATCH, min(self.batch // 2, int(len(batch) * TURN / took)))
        elif len(batch) >= self.batch and (took + t1 - t0) < TURN / 4:
            self.batch = min(MAX_BATCH, self.batch * 2)

    def _stop_now(self, at_ns: int) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.session.stop_producing(at_ns)

    def batches(self) -> Iterator[List[Any]]:
        """The records, one list per read of the kernel buffers."""
        s = self.session
        fd = stop.wakeup_fd()
        if fd >= 0:
            s.wake_on(fd)
        # under the command line's stop.handling(): the session stops producing in the
        # signal handler itself, and --duration's end is a SIGALRM at the deadline
        unlisten = stop.listen(self._stop_now)
        if self.deadline is not None:
            stop.alarm(self.deadline)
        try:
            while True:
                if self._finish is not None:
                    self.stopped_by = self._finish
                    at = time.monotonic_ns()
                    break
                sig = stop.requested()
                if sig:
                    self.stopped_by = "duration" if sig == signal.SIGALRM else "signal"
                    at = stop.stopped_at_ns() or time.monotonic_ns()
                    break
                stop.drain_wakeup()  # a byte of another signal (SIGUSR1) would keep the wait from waiting
                if self.until is not None:
                    why = self.until()
                    if why:
                        self.finish(why, drain=True)
                        continue
                timeout = self.poll_every
                if self.deadline is not None:
                    left = self.deadline - time.monotonic()
                    if left <= 0:
                        self.stopped_by = "duration"
                        at = int(self.deadline * 1e9)
                        break
                    timeout = min(timeout, left)
                yield from self._read(timeout)
            self._stop_now(at)
            if self._finish is None or self._finish_drain:
                drain = self.drain or self._finish_drain
                end = time.monotonic() + self.drain_seconds
                stop.forceable = drain
                while drain or time.monotonic() < end:
                    n = 0
                    for batch in self._read(0):
                        n = len(batch)
                        yield batch
                    if not n and not s.pending():
                        break
        finally:
            unlisten()
            stop.cancel_alarm()
            stop.forceable = False
            # also when the consumer leaves early (a break, --count in api.Tracer): nothing
            # made before the stop goes uncounted
            if not self._stopped:
                self.stopped_by = self.stopped_by or self._finish or "end"
                self._stop_now(time.monotonic_ns())
            s.count_unread()
