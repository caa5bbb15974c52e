"""``undertow collect``: drain a JetStream stream into ClickHouse in batches.

One durable pull consumer (``consumer=NAME`` in the ``--from`` URL, default
``undertow-collect``) on the stream that takes the subject; each fetched batch (up to
``--batch`` messages, or what came within 0.5 s) becomes one ``INSERT`` (the flat rows of
:mod:`.clickhouse`) and its messages are acknowledged only once ClickHouse stored them. A
batch ClickHouse refuses, or cannot be reached for, is not acknowledged: its messages are
given back (``-NAK`` with a 1 s delay) and come again; the refusal is reported with
ClickHouse's own message. A message that is not a JSON object is acknowledged and counted
(``undecodable``): it can never be inserted.

Duplicates: the stream drops resends by ``Nats-Msg-Id``; a batch inserted but not
acknowledged (the collector died in between) comes again and is merged away by the table's
ReplacingMergeTree (``SELECT ... FINAL`` hides it before the merge).
"""

from __future__ import annotations

import json
import sys
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple

from .clickhouse import Client, ClickHouseError
from .jetstream import JetStream, JSError, default_stream
from .nats import Connection, NatsError, auth_from_url


class CollectStats:
    """``inserted`` rows, ``batches`` inserted, ``refused`` batches (and their messages),
    ``undecodable`` messages, ``errors`` (text -> times)."""

    def __init__(self) -> None:
        self.inserted = self.batches = self.refused = self.refused_msgs = self.undecodable = 0
        self.unreachable = 0  # batches ClickHouse could not be reached for
        self.errors: Dict[str, int] = {}
        self.pending_refused: Set[int] = set()   # stream sequences refused and not inserted since

    def error(self, text: str) -> bool:
        """Count ``text``; True the first time (to print it once)."""
        n = self.errors.get(text, 0)
        self.errors[text] = n + 1
        return n == 0


def stream_seq(reply: str) -> int:
    """The stream sequence in a ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``
    reply subject (0 when the form is unknown)."""
    parts = reply.split(".")
    try:
        return int(parts[-4]) if len(parts) >= 9 else 0
    except ValueError:
        return 0


class Collector:
    """``undertow collect``: a JetStream pull consumer (``src``: a ``nats://`` SinkURL) feeding
    ClickHouse inserts (``dst``: ``clickhouse+http://``), ``batch`` messages at a time."""
    def __init__(self, src: Any, dst: Any, batch: int = 1000, create: bool = False, wait: float = 0.5,
                 log: Any = None) -> None:
        self.src, self.dst, self.batch, self.create, self.wait = src, dst, batch, create, wait
        self.subject: str = src.target
        self.consumer = src.params.get("consumer", "undertow-collect")
        self.auth = auth_from_url(src)
        self.ch = Client(dst)
        self.js: Optional[JetStream] = None
        self.stream: Optional[str] = src.params.get("stream")
        self.stats = CollectStats()
        self.log = log if log is not None else (lambda text: print(f"undertow collect: {text}", file=sys.stderr))
        self.ch_ready = False

    def _say_once(self, text: str) -> None:
        if self.stats.error(text):
            self.log(text)

    def connect(self) -> None:
        """Connect to NATS, find (or with ``--create`` make) the stream and the durable consumer."""
        conn = Connection(self.src.host, self.src.port, self.auth, timeout=2.0, name="undertow-collect").connect()
        js = JetStream(conn)
        try:
            if not self.stream:
                self.stream = js.stream_of(self.subject)  # the stream the hosts publish into, if any
            if not self.stream and self.create:
                self.stream = default_stream(self.subject)
                js.create_stream(self.stream, [self.subject])
            elif self.stream and self.create:
                js.create_stream(self.stream, [self.subject])  # accepted when it exists with the subject
            if not self.stream:
                raise JSError(f"no JetStream stream takes subject {self.subject} (create it, or use --create)")
            js.pull_consumer(self.stream, self.consumer, self.subject)
        except BaseException:
            conn.close()
            raise
        self.js = js

    def close(self) -> None:
        """Drop the NATS connection (unacknowledged messages come again after the ack wait)."""
        if self.js is not None:
            self.js.conn.close()
            self.js = None

    def step(self) -> int:
        """Fetch one batch and insert it; the number of messages fetched (0: none came)."""
        if self.js is None:
            self.connect()
        assert self.js is not None and self.stream is not None
        from .. import stop

        msgs = self.js.fetch(self.stream, self.consumer, self.batch, self.wait, stop.requested)
        if not msgs:
            return 0
        events: List[Dict[str, Any]] = []
        raws: List[str] = []
        good = []
        bad = []
        for m in msgs:
            try:
                text = m.data.decode("utf-8")
                ev = json.loads(text)
            except ValueError:  # UnicodeDecodeError too
                ev = None
            if isinstance(ev, dict):
                events.append(ev)
                raws.append(text)
                good.append(m)
            else:
                bad.append(m)
        if bad:
            self.stats.undecodable += len(bad)
            self.js.ack(bad)
        if not good:
            return len(msgs)
        try:
            if not self.ch_ready:
                self.ch.ensure(self.create)
                self.ch_ready = True
            self.ch.insert(self.ch.rows(events, self.create, raws))
        except ClickHouseError as e:
            self.ch_ready = False  # DESCRIBE again: the table may have changed
            if e.rejected:
                self.stats.refused += 1
                self.stats.refused_msgs += len(good)
                self.stats.pending_refused.update(stream_seq(m.reply) for m in good)
                self.log(f"ClickHouse refused a batch of {len(good)} rows (not acknowledged: they come again): "
                         f"{e.message}")
            else:
                self.stats.unreachable += 1
                self._say_once(e.message + " (the batch is not acknowledged: it comes again)")
            self.js.ack(good, b'-NAK {"delay": 1000000000}')
            return len(msgs)
        self.js.ack(good)
        self.stats.inserted += len(good)
        self.stats.batches += 1
        self.stats.pending_refused.difference_update(stream_seq(m.reply) for m in good)
        return len(msgs)

    def run(self, duration: Optional[float] = None, once: bool = False) -> int:
        """Until a stop (signal, ``duration``), or with ``once`` until a fetch comes back empty
        (or NATS or ClickHouse cannot be reached: then at once). Without ``once`` an unreachable
        server is waited for (said once, retried backing off up to 2 s). Returns the exit status:
        1 when refused rows were never inserted, JetStream refused a request, or ``once`` could
        not drain; else 0."""
        from .. import stop

        end = time.monotonic() + duration if duration else None
        backoff = 0.2
        while not stop.requested() and (end is None or time.monotonic() < end):
            try:
                n = self.step()
                backoff = 0.2
            except JSError as e:
                # JetStream refused a request (no such stream, overlapping subjects, a bad
                # consumer): configuration, not a passing failure
                self.log(e.message)
                self.close()
                return 1
            except (NatsError, OSError) as e:
                self._say_once(getattr(e, "message", None) or str(e))
                self.close()
                if once:  # nothing can be drained now
                    return 1
                _sleep(backoff, end)
                backoff = min(2.0, backoff * 2)
                continue
            if once and (n == 0 or self.stats.unreachable):
                break
        self.close()
        return 1 if self.stats.pending_refused or (once and self.stats.unreachable) else 0

    def summary(self) -> str:
        """One line: rows inserted, batches refused, messages dropped."""
        s = self.stats
        line = f"{s.inserted} rows inserted in {s.batches} batches"
        if s.refused:
            line += (f"; ClickHouse refused {s.refused} batches ({s.refused_msgs} rows, "
                     f"{len(s.pending_refused)} still not inserted)")
        if self.ch.capped:
            line += f"; {self.ch.capped} keys had no column (the table has {len(self.ch.columns)}): in event_json only"
        if s.undecodable:
            line += f"; {s.undecodable} messages were not JSON objects (acknowledged, dropped)"
        return line


def _sleep(seconds: float, end: Optional[float]) -> None:
    from .. import stop

    until = time.monotonic() + seconds
    if end is not None:
        until = min(until, end)
    while time.monotonic() < until and not stop.requested():
        time.sleep(min(0.05, max(0.0, until - time.monotonic())))


def load_files(paths: List[str], dst: Any, batch: int = 1000, create: bool = False) -> "Tuple[str, int]":
    """Insert the events of NDJSON files (``--output -`` of a sweep without NATS) into ClickHouse;
    ``(summary line, exit status)``. Lines without provenance (``event_seq``, ``instance_id``:
    plain ``--json`` output) are skipped and counted: the table's key needs them."""
    ch = Client(dst)
    ch.ensure(create)
    inserted = skipped = bad = 0
    rc = 0
    for path in paths:
        events: List[Dict[str, Any]] = []
        raws: List[str] = []
        try:
            f = open(path, encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            return f"cannot read {path}: {e.strerror}; {inserted} rows inserted", 1
        with f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if not isinstance(ev, dict) or "event_seq" not in ev or "instance_id" not in ev:
                    skipped += 1
                    continue
                events.append(ev)
                raws.append(line)
                if len(events) >= batch:
                    ch.insert(ch.rows(events, create, raws))
                    inserted += len(events)
                    events, raws = [], []
            if events:
                ch.insert(ch.rows(events, create, raws))
                inserted += len(events)
    line = f"{inserted} rows inserted from {len(paths)} file(s)"
    if skipped:
        line += f"; {skipped} lines without provenance skipped (written without --output -)"
        rc = 1
    if bad:
        line += f"; {bad} lines were not JSON"
        rc = 1
    return line, rc
