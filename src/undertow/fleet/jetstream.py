"""JetStream over :mod:`.nats`: streams, publishing with batched acks, pull consumers.

JetStream's API is request/reply on ``$JS.API.*`` subjects (docs.nats.io, "JetStream wire
API"): ``STREAM.CREATE.<name>`` with the stream's config, ``STREAM.NAMES`` with
``{"subject": s}`` to find the stream of a subject, ``CONSUMER.DURABLE.CREATE.<stream>.<name>``
for a pull consumer, ``CONSUMER.MSG.NEXT.<stream>.<name>`` with ``{"batch": n, "expires": ns}``
to fetch. A message published to a stream's subject with a reply subject is acknowledged with
``{"stream": s, "seq": n[, "duplicate": true]}`` or ``{"error": {"code": 503, "description":
"maximum messages exceeded"}}``; with no stream at all the server answers the 503 "no
responders" status. ``Nats-Msg-Id`` makes the stream drop a message it already holds
within its duplicate window (2 minutes by default): a resend after a lost ack is harmless.
"""

from __future__ import annotations

import json
import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

from .nats import Connection, Msg, NatsError


class JSError(NatsError):
    """JetStream answered with an error (``code``: 503, 400...; ``err_code``: JetStream's own)."""

    def __init__(self, message: str, code: int = 0, err_code: int = 0) -> None:
        super().__init__(message)
        self.code, self.err_code = code, err_code


def default_stream(subject: str) -> str:
    """The stream name ``--create`` uses for ``subject``: ``undertow.events`` -> ``UNDERTOW_EVENTS``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", subject.replace(".>", "").replace(".*", "")).upper() or "UNDERTOW"


def inbox() -> str:
    """A fresh, unguessable inbox subject for replies (``_INBOX.<16 hex>``)."""
    return "_INBOX." + os.urandom(8).hex()


class JetStream:
    """JetStream API calls over a :class:`Connection` (which it owns)."""

    def __init__(self, conn: Connection, timeout: float = 2.0) -> None:
        self.conn, self.timeout = conn, timeout
        # one subscription for every answer: API replies, fetched batches, publish acks
        self.root = inbox()
        conn.subscribe(self.root + ".>")
        self.inbox = self.root + ".api"
        self.pull: Optional[str] = None   # the reply subject of the pull request under way
        self.pull_left = 0
        self.pulls = 0

    def api(self, what: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """Call ``$JS.API.<what>``; raises :class:`JSError` on an error answer or none."""
        m = self.conn.request("$JS.API." + what, json.dumps(body).encode(), self.inbox, self.timeout)
        if m is None:
            raise JSError(f"JetStream did not answer {what} within {self.timeout:g} s")
        if m.status == 503:
            raise JSError("JetStream is not enabled on this server (no responders)", 503)
        try:
            d = json.loads(m.data)
        except ValueError:
            raise JSError(f"JetStream answered {what} with something not JSON") from None
        err = d.get("error")
        if err:
            raise JSError(f"JetStream refused {what.split('.')[0].lower()} {what}: {err.get('description')}",
                          int(err.get("code") or 0), int(err.get("err_code") or 0))
        return d

    def create_stream(self, name: str, subjects: List[str], max_msgs: int = -1, max_bytes: int = -1,
                      max_age_ns: int = 0, discard: str = "old", storage: str = "file", replicas: int = 1) -> None:
        """Create stream ``name`` (an existing one with these subjects is accepted)."""
        cfg = {"name": name, "subjects": subjects, "retention": "limits", "max_consumers": -1,
               "max_msgs": max_msgs, "max_bytes": max_bytes, "max_age": max_age_ns, "discard": discard,
               "storage": storage, "num_replicas": replicas, "duplicate_window": 120 * 10 ** 9}
        try:
            self.api("STREAM.CREATE." + name, cfg)
        except JSError as e:
            if e.err_code != 10058:  # stream name already in use
                raise
            info = self.api("STREAM.INFO." + name, {})
            have = info.get("config", {}).get("subjects", [])
            if not set(subjects) <= set(have):
                raise JSError(f"stream {name} exists with subjects {have}, not {subjects}") from None

    def stream_of(self, subject: str) -> Optional[str]:
        """The name of the stream that takes ``subject`` (None: none does)."""
        names = self.api("STREAM.NAMES", {"subject": subject}).get("streams") or []
        return names[0] if names else None

    def pull_consumer(self, stream: str, name: str, subject: str, ack_wait_s: float = 30.0,
                      max_deliver: int = -1) -> None:
        """Create (or confirm) the durable pull consumer ``name`` on ``stream``, explicit acks."""
        cfg = {"durable_name": name, "ack_policy": "explicit", "deliver_policy": "all",
               "ack_wait": int(ack_wait_s * 1e9), "max_deliver": max_deliver, "filter_subject": subject,
               "max_ack_pending": 100000, "replay_policy": "instant"}
        self.api(f"CONSUMER.DURABLE.CREATE.{stream}.{name}", {"stream_name": stream, "config": cfg})

    def fetch(self, stream: str, consumer: str, batch: int, wait_s: float,
              should_stop: Optional[Callable[[], Any]] = None) -> List[Msg]:
        """Up to ``batch`` messages, waiting at most ``wait_s`` (then returning what came).

        When a fetch comes back full, the next pull request is sent at once, so the server
        delivers the next batch while the caller inserts this one (the messages wait in the
        socket; each pull has its own reply subject, so a late status of an old pull is not
        taken for the end of the current one). ``should_stop`` is asked every 0.2 s while waiting."""
        import time

        if self.pull is None:
            self._pull(stream, consumer, batch, wait_s)
        out: List[Msg] = []
        end = time.monotonic() + wait_s + self.timeout
        while len(out) < batch:
            left = end - time.monotonic()
            m = self.conn.read(max(0.0, min(0.2, left)))
            if m is None:
                if left <= 0.2 or (should_stop is not None and should_stop()):
                    break
                continue
            if m.status:  # 404 no messages, 408 request expired, 409 ...: that pull is over
                if m.subject == self.pull:
                    self.pull = None
                    if out or self.conn.pending() == 0:
                        break
                continue
            if m.reply.startswith("$JS.ACK."):
                out.append(m)
                self.pull_left -= 1
                if self.pull_left <= 0 and self.pull is not None:
                    self.pull = None  # the server has delivered all this pull asked for
                    if len(out) < batch:
                        self._pull(stream, consumer, batch - len(out), wait_s)
        if len(out) >= batch and self.pull is None:
            self._pull(stream, consumer, batch, wait_s)  # busy: the next batch comes during the insert
        return out

    def _pull(self, stream: str, consumer: str, batch: int, wait_s: float) -> None:
        self.pulls += 1
        self.pull = f"{self.root}.f{self.pulls}"
        self.pull_left = batch
        req = {"batch": batch, "expires": int(wait_s * 1e9)}
        self.conn.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", json.dumps(req).encode(),
                          reply=self.pull)
        self.conn.flush()

    def ack(self, msgs: List[Msg], how: bytes = b"+ACK") -> None:
        """Acknowledge (or ``-NAK``) ``msgs``. Not waited for: an ack the server never gets
        makes the message come again after the consumer's ack wait, and a row inserted twice
        is merged away by the table (ReplacingMergeTree)."""
        for m in msgs:
            self.conn.publish(m.reply, how)
        self.conn.flush()
