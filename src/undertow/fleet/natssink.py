"""The ``nats://`` sink: events published to JetStream, acknowledged in batches.

Each event is published with a reply subject (``<inbox>.<seq>``) and the header
``Nats-Msg-Id: <machine_id>.<boot_id>.<instance_id>.<seq>`` (host, boot, and the process:
the sequence restarts with each process, so the instance id keeps two runs of one boot apart,
and containers or cloned machines that share a machine id); a batch is
written at once and its acks read together. An event whose ack says ``duplicate`` was already
stored (a resend after a lost ack). An event refused (503: no stream for the subject, the
stream's limits with ``discard: new``) or unanswered stays in the spool and is sent again
(backing off up to 2 s); a connection that fails is re-made. So a NATS server that is down or
full costs spool room, and only what overflows the spool is lost (``spool_full``) or, at the
end, still unsent (``unsent``).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from . import provenance
from .jetstream import JetStream, default_stream
from .nats import Connection, auth_from_url
from .sinks import SpoolSink


class NatsSink(SpoolSink):
    """``nats://HOST:PORT/SUBJECT``: JetStream publishing from the spool, batch by batch."""
    batch_default = 256

    def __init__(self, url: Any, create: bool = False, instance_id: str = "") -> None:
        super().__init__(url, create, instance_id)
        self.subject: str = url.target
        self.auth = auth_from_url(url)  # files read now: a missing creds file is an error at the start
        self.js: Optional[JetStream] = None
        self.created = False
        self.ack_timeout = 2.0

    def connect(self) -> None:
        """Connect, authenticate, subscribe to the ack inbox; with ``--create`` make the stream once."""
        conn = Connection(self.url.host, self.url.port, self.auth, timeout=2.0, name="undertow-sink").connect()
        self.js = JetStream(conn)
        if self.create and not self.created:
            self._create()
            self.created = True

    def _create(self) -> None:
        assert self.js is not None
        u = self.url
        self.js.create_stream(u.params.get("stream") or default_stream(self.subject), [self.subject],
                              max_msgs=int(u.number("max_msgs", -1, -1)), max_bytes=int(u.number("max_bytes", -1, -1)),
                              max_age_ns=int(u.number("max_age", 0, 0) * 1e9), discard=u.params.get("discard", "old"),
                              storage=u.params.get("storage", "file"), replicas=int(u.number("replicas", 1, 1)))

    def disconnect(self) -> None:
        """Drop the connection (the next batch makes a new one)."""
        js, self.js = self.js, None
        if js is not None:
            js.conn.close()

    def send(self, batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Publish ``batch`` with message ids, read the acks; returns the events to send again."""
        from ..output.jsonl import dumps

        js = self.js
        assert js is not None
        conn = js.conn
        box = js.root + ".p"
        pending: Dict[str, Dict[str, Any]] = {}
        # the server closes a connection that sends more than its max_payload (1 MiB by default):
        # such an event could never be stored, and resending it would stall all the others
        limit = int(conn.info.get("max_payload") or 1048576) - 512  # type: ignore[call-overload]
        for ev in batch:
            seq = ev.get("event_seq")
            data = dumps(ev).encode("utf-8", "surrogateescape")
            if len(data) > limit:
                self.report.count_lost("too_large")
                self.report.error(f"an event of {len(data)} bytes is larger than the server's max_payload")
                continue
            key = f"{box}.{seq}"
            pending[key] = ev
            conn.publish(self.subject, data, reply=key, headers={"Nats-Msg-Id": provenance.msg_id(ev)})
        conn.flush()
        again: List[Dict[str, Any]] = []
        end = time.monotonic() + self.ack_timeout
        refused = 0
        while pending:
            m = conn.read(max(0.0, end - time.monotonic()))
            if m is None:
                break
            ev = pending.pop(m.subject, None)
            if ev is None:
                continue
            if m.status == 503:
                self.report.error(f"no JetStream stream takes subject {self.subject} (create it, or use --create)")
                again.append(ev)
                continue
            err = _ack_error(m.data)
            if err is None:
                self.report.sent += 1
            else:
                self.report.error(f"JetStream refused the event: {err}")
                refused += 1
                again.append(ev)
        if pending:
            self.report.error(f"no acknowledgement within {self.ack_timeout:g} s")
            again.extend(pending.values())
            self.disconnect()  # the connection may be half dead: the next batch makes a new one
            self.connected = False
        again.sort(key=lambda e: e.get("event_seq") or 0)
        return again


def _ack_error(data: bytes) -> Optional[str]:
    """None for a positive ack (stored or duplicate), else the error text."""
    import json

    try:
        d = json.loads(data)
    except ValueError:
        return "unreadable acknowledgement"
    err = d.get("error") if isinstance(d, dict) else None
    if err:
        return f"{err.get('code')} {err.get('description')}"
    return None
