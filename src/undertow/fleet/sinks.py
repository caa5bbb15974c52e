"""``--output URL``: the one way every event-emitting command sends its events elsewhere.

A command that emits events writes JSON lines to ``sys.stdout`` (``--json``). With
``--output``, :func:`outputs` (entered by the command line around the command) switches the
command to JSON, puts a :class:`FanOut` stream in place of ``sys.stdout`` and hands each line,
parsed and stamped with its provenance (:mod:`.provenance`), to every sink:

- ``-`` / ``stdout``: the JSON line on standard output (the NDJSON a sweep brings back);
- ``nats://...``: JetStream (:mod:`.natssink`), ``clickhouse+http://...`` (:mod:`.clickhouse`):
  a bounded in-memory spool and a thread doing the network I/O, so a slow or absent server
  never stalls the command's read loop; what the spool cannot hold is counted as lost.

Lines that are not JSON objects (a bpftrace ``system()`` output) travel as ``{"text": line}``.
At the end each network sink gets ``linger`` seconds (URL option, default 2; at most 0.5 after
a stop signal, so Ctrl-C still ends the command within a second) to send what it holds; the
rest is counted as lost (``unsent``; ``unconfirmed`` for a batch sent whose acknowledgement had
not come), and each sink reports on standard error::

    undertow dns: output nats://127.0.0.1:4222/undertow.events: 1204 events sent, 0 lost
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import sys
import threading
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Deque, Dict, Iterator, List, Optional, TextIO

from . import provenance, urls

class SinkReport:
    """What a sink did: events ``sent`` (acknowledged), ``lost`` by reason, ``errors`` (text -> times)."""

    def __init__(self) -> None:
        self.sent = 0
        self.lost: Dict[str, int] = {}
        self.errors: Dict[str, int] = {}
        self.to_file = 0            # left for the next run in the spool_dir file
        self.resent_from_file = 0   # taken from earlier runs' files

    def count_lost(self, reason: str, n: int = 1) -> None:
        """Count ``n`` events lost for ``reason``."""
        if n:
            self.lost[reason] = self.lost.get(reason, 0) + n

    def error(self, text: str) -> None:
        """Count one occurrence of error ``text``."""
        self.errors[text] = self.errors.get(text, 0) + 1

    @property
    def total_lost(self) -> int:
        """Events lost, all reasons."""
        return sum(self.lost.values())


class Sink:
    """Where events go. ``put`` must not block; ``close`` ends within ``linger`` seconds."""

    url: "urls.SinkURL"

    def __init__(self, url: "urls.SinkURL") -> None:
        self.url = url
        self.report = SinkReport()

    def put(self, event: Dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, linger: float) -> None:
        pass

    def report_line(self, who: str) -> str:
        """``<who>: output <url>: N events sent, M lost (reasons); errors`` for standard error."""
        r = self.report
        line = f"{who}: output {self.url.safe()}: {r.sent} events sent, {r.total_lost} lost"
        if r.lost:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(r.lost.items())) + ")"
        if r.to_file:
            line += f"; {r.to_file} kept in {self.url.params.get('spool_dir')} for the next run"
        if r.resent_from_file:
            line += f"; {r.resent_from_file} from earlier runs' spool files"
        if r.errors:
            last = list(r.errors)[-1]
            line += f"; {len(r.errors)} distinct error(s), last: {last}"
        return line


class StdoutSink(Sink):
    """JSON lines on the real standard output."""

    def __init__(self, url: "urls.SinkURL", out: TextIO) -> None:
        super().__init__(url)
        self.out = out

    def put(self, event: Dict[str, Any]) -> None:
        from ..output.jsonl import dumps

        self.out.write(dumps(event) + "\n")
        self.report.sent += 1

    def flush(self) -> None:
        self.out.flush()

    def close(self, linger: float) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.out.flush()


class SpoolSink(Sink):
    """A sink whose network I/O runs in a thread, fed by a bounded spool (``spool=N`` events,
    default 100000). Subclasses implement :meth:`connect`, :meth:`send` and :meth:`disconnect`."""

    #: events sent per batch (``batch=N`` in the URL)
    batch_default = 500

    def __init__(self, url: "urls.SinkURL", create: bool = False, instance_id: str = "") -> None:
        super().__init__(url)
        self.create = create
        from .filespool import from_url

        # spool_dir=: leftovers to a file, earlier runs' leftovers sent first (fleet/filespool.py)
        self.file = from_url(url, instance_id or os.urandom(8).hex())
        self.capacity = int(url.number("spool", 100000, 1))
        self.batch = int(url.number("batch", self.batch_default, 1))
        self.spool: Deque[Dict[str, Any]] = collections.deque()
        self.cv = threading.Condition()
        self.closing = False
        self.deadline = 0.0
        self.connected = False
        self.inflight = 0   # events taken for the send under way
        self.thread = threading.Thread(target=self._run, name=f"undertow-sink-{url.kind}", daemon=True)

    def start(self) -> "SpoolSink":
        """Queue earlier runs' spool files (``spool_dir``) and start the sending thread."""
        if self.file is not None:
            old = list(self.file.take_old(self.capacity))
            self.spool.extend(old)
            self.report.resent_from_file = len(old)
        self.thread.start()
        return self

    def put(self, event: Dict[str, Any]) -> None:
        with self.cv:
            if len(self.spool) >= self.capacity:
                if self.file is None or not self.file.write([event]):
                    self.report.count_lost("spool_full")
                return
            self.spool.append(event)
            if len(self.spool) >= self.batch:
                self.cv.notify()

    def begin_close(self, linger: float) -> None:
        """Send what is spooled for at most ``linger`` more seconds, then stop."""
        with self.cv:
            self.closing = True
            self.deadline = time.monotonic() + linger
            self.cv.notify()

    def close(self, linger: float) -> None:
        """Wait until the spool is sent or the linger is over; count what is left as lost:
        ``unsent`` (still spooled), ``unconfirmed`` (sent, its acknowledgement not yet read:
        the thread, a daemon, is abandoned with it)."""
        if not self.closing:
            self.begin_close(linger)
        self.thread.join(max(0.0, self.deadline - time.monotonic()) + 0.1)
        with self.cv:
            left = list(self.spool)
            kept = self.file.write(left) if self.file is not None and left else 0
            self.report.count_lost("unsent", len(left) - kept)
            self.spool.clear()
            if self.file is not None:
                self.report.to_file = self.file.events
                self.file.close()
            if self.thread.is_alive():
                self.report.count_lost("unconfirmed", self.inflight)
                self.inflight = 0

    # -- the thread

    def connect(self) -> None:
        """Make the connection (and with ``--create`` what the URL names); raise to retry later."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Drop the connection."""
        pass

    def send(self, batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Send ``batch``; return the events to send again (the rest were accepted or counted)."""
        raise NotImplementedError

    def _take(self) -> Optional[List[Dict[str, Any]]]:
        with self.cv:
            while True:
                if self.closing and (not self.spool or time.monotonic() >= self.deadline):
                    return None
                if self.spool and (len(self.spool) >= self.batch or self.closing or self._due()):
                    n = min(self.batch, len(self.spool))
                    self.inflight = n
                    return [self.spool.popleft() for _ in range(n)]
                self.cv.wait(0.1)

    def _due(self) -> bool:
        """Whether a partial batch has waited long enough (0.2 s: events reach the server
        within a fraction of a second even at low rates)."""
        now = time.monotonic()
        first = getattr(self, "_first_wait", None)
        if first is None:
            self._first_wait = now
            return False
        if now - first >= 0.2:
            self._first_wait = None
            return True
        return False

    def _done(self) -> None:
        with self.cv:
            self.inflight = 0

    def _give_back(self, events: List[Dict[str, Any]]) -> None:
        with self.cv:
            self.inflight = 0
            self.spool.extendleft(reversed(events))
            while len(self.spool) > self.capacity:  # put() filled the room meanwhile
                self.spool.pop()
                self.report.count_lost("spool_full")

    def _pause(self, seconds: float) -> None:
        with self.cv:
            end = min(time.monotonic() + seconds, self.deadline if self.closing else float("inf"))
            while time.monotonic() < end:
                self.cv.wait(max(0.0, min(0.1, end - time.monotonic())))

    def _run(self) -> None:
        backoff = 0.2
        try:  # at once: --create makes the stream/table now, a refused login is said early
            self.connect()
            self.connected = True
        except Exception as e:  # noqa: BLE001 - retried with the first batch
            self.report.error(getattr(e, "message", None) or str(e) or type(e).__name__)
            with contextlib.suppress(Exception):
                self.disconnect()
        while True:
            batch = self._take()
            if batch is None:
                break
            try:
                if not self.connected:
                    self.connect()
                    self.connected = True
                    backoff = 0.2
                again = self.send(batch)
            except Exception as e:  # noqa: BLE001 - any failure: keep the events, reconnect later
                self.report.error(getattr(e, "message", None) or str(e) or type(e).__name__)
                self._give_back(batch)
                self.connected = False
                with contextlib.suppress(Exception):
                    self.disconnect()
                self._pause(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if again:
                self._give_back(again)
                self._pause(backoff)
                backoff = min(backoff * 2, 2.0)
            else:
                self._done()
        with contextlib.suppress(Exception):
            self.disconnect()


def open_sink(url: "urls.SinkURL", create: bool, stdout: TextIO, instance_id: str = "") -> Sink:
    """The sink for ``url`` (network sinks started; ``instance_id`` names their spool file)."""
    if url.kind == "stdout":
        return StdoutSink(url, stdout)
    if url.kind == "nats":
        from .natssink import NatsSink

        return NatsSink(url, create, instance_id).start()
    from .clickhouse import ClickHouseSink

    return ClickHouseSink(url, create, instance_id).start()


class FanOut(io.TextIOBase):
    """A text stream that parses the JSON lines written to it and hands each event, stamped
    with its provenance, to every sink."""

    def __init__(self, sinks: List[Sink], prov: "provenance.Provenance", real: TextIO) -> None:
        super().__init__()
        self.sinks, self.prov, self.real = sinks, prov, real
        self.partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.real.fileno()

    def write(self, s: str) -> int:
        """Take text; each complete line is an event for the sinks."""
        if not s:
            return 0
        text = self.partial + s
        lines = text.split("\n")
        self.partial = lines.pop()
        for line in lines:
            if line.strip():
                self._line(line)
        return len(s)

    def _line(self, line: str) -> None:
        ev: Any = None
        if line.startswith("{"):
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
        if not isinstance(ev, dict):
            ev = {"text": line}
        self.prov.stamp(ev)
        for s in self.sinks:
            s.put(ev)

    def flush(self) -> None:
        for s in self.sinks:
            f = getattr(s, "flush", None)
            if f is not None:
                f()

    def finish(self) -> None:
        """Hand on a last line written without its newline."""
        if self.partial.strip():
            self._line(self.partial)
        self.partial = ""


def wanted(args: argparse.Namespace) -> bool:
    """Whether ``args`` asks for sinks (``--output`` given: ``args.outputs``)."""
    return bool(getattr(args, "outputs", None))


@contextlib.contextmanager
def outputs(args: argparse.Namespace, who: str) -> Iterator[None]:
    """Around a command: with ``--output``, JSON events fanned out to the sinks; at the end each
    sink's report on standard error. Without ``--output``: nothing changes."""
    if not wanted(args):
        yield
        return
    from .. import stop
    from ..errors import OptionError

    if isinstance(getattr(args, "output", None), str):  # undertow run -o FILE writes the events itself
        raise OptionError("-o FILE and --output URL cannot be combined",
                          hints=["--output - sends the JSON events to standard output: redirect it to the file"])
    args.json = True
    if hasattr(args, "format"):
        args.format = "json"   # undertow run: -f json
    real = sys.stdout
    prov = provenance.Provenance(getattr(args, "command", None) or "undertow", getattr(args, "run_id", None))
    sinks: List[Sink] = []
    try:
        for u in args.outputs:
            sinks.append(open_sink(u, bool(getattr(args, "create", False)), real, prov.instance_id))
        fan = FanOut(sinks, prov, real)
        sys.stdout = fan  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stdout = real
            fan.finish()
    finally:
        import signal

        sig = stop.requested()
        lingers = []
        for s in sinks:
            linger = s.url.number("linger", 2.0, 0)
            if sig > 0 and sig != signal.SIGALRM:  # a stop signal, not --duration: end within a second
                linger = min(linger, 0.5)
            lingers.append(linger)
            if isinstance(s, SpoolSink):
                s.begin_close(linger)  # all sinks drain at once
        for s, linger in zip(sinks, lingers):
            s.close(linger)
        for s in sinks:
            if s.url.kind != "stdout" or s.report.total_lost:
                print(s.report_line(who), file=sys.stderr)
