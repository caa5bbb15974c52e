"""``--output URL`` / ``--from`` / ``--to`` values: parsed once, checked before anything runs.

=========================================  ===============================================
URL                                        sink
=========================================  ===============================================
``-`` or ``stdout``                        JSON lines on standard output
``nats://[USER:PASS@]HOST:PORT/SUBJECT``   JetStream (``tls://`` or ``nats+tls://``: TLS)
``clickhouse+http://[USER:PASS@]HOST:PORT  ClickHouse's HTTP interface
/DB.TABLE`` (``clickhouse+https://``)
=========================================  ===============================================

Options ride in the query string (``?stream=EVENTS&ca=/etc/ssl/nats-ca.pem``); the allowed
names are per scheme (:data:`PARAMS`), an unknown one is an error with a "did you mean" hint.
"""

from __future__ import annotations

import re
import urllib.parse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Iterable, Optional

from ..errors import SourceError, Span, did_you_mean

#: query-string options each scheme takes (documented in docs/fleet.md)
PARAMS = {
    "nats": {"stream", "creds", "nkey", "token_file", "password_file", "ca", "cert", "key", "tls", "spool",
             "spool_dir", "spool_file_mb", "batch", "linger", "max_msgs", "max_bytes", "max_age", "discard", "storage",
             "consumer", "replicas"},
    "clickhouse": {"batch", "spool", "spool_dir", "spool_file_mb", "password_file", "ca", "linger"},
    "stdout": set(),
}

_SUBJECT = re.compile(r"[A-Za-z0-9_\-$]+(\.[A-Za-z0-9_\-$]+|\.\*)*(\.>)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class URLError(SourceError):
    """A bad ``--output``/``--from``/``--to`` URL (usage error, exit status 2)."""

    exit_code = 2


class SinkURL:
    """A parsed output URL. ``kind``: ``stdout``, ``nats`` or ``clickhouse``; ``tls``: bool;
    ``target``: the NATS subject or ``(database, table)``; ``params``: the query options."""

    __slots__ = ("text", "kind", "tls", "host", "port", "user", "password", "target", "params")

    def __init__(self, text: str, kind: str, tls: bool = False, host: str = "", port: int = 0,
                 user: Optional[str] = None, password: Optional[str] = None, target: object = None,
                 params: Optional[Dict[str, str]] = None) -> None:
        self.text, self.kind, self.tls, self.host, self.port = text, kind, tls, host, port
        self.user, self.password, self.target = user, password, target
        self.params = params or {}

    def __repr__(self) -> str:
        return f"SinkURL({self.safe()!r})"

    def safe(self) -> str:
        """The URL as given, without its password (for messages and reports)."""
        if self.password is None:
            return self.text
        return self.text.replace(":" + urllib.parse.quote(self.password, safe="") + "@", ":***@", 1) \
            .replace(":" + self.password + "@", ":***@", 1)

    def flag(self, name: str) -> bool:
        """Whether boolean option ``name`` is on (``1 true yes on``)."""
        return self.params.get(name, "").lower() in ("1", "true", "yes", "on")

    def number(self, name: str, default: float, lo: float = 0.0) -> float:
        """The numeric option ``name`` (``default`` when absent); a bad one is an error."""
        v = self.params.get(name)
        if v is None:
            return default
        try:
            x = float(v)
        except ValueError:
            x = float("nan")
        if not x >= lo or x != x or x == float("inf"):
            raise _err(self.text, f"option {name}={v!r}: a number >= {lo:g}", self.text.find(name + "="),
                       len(name) + 1 + len(v))
        return x


def _err(text: str, msg: str, start: int, length: int, hints: Iterable[str] = ()) -> URLError:
    start = max(0, start)
    return URLError(msg, source=text, span=Span(start, start + max(1, length)), origin="<output URL>",
                    hints=list(hints))


def parse(text: str, allowed: Iterable[str] = ("stdout", "nats", "clickhouse")) -> SinkURL:
    """Parse an output URL; raises :class:`URLError` with the bad part marked."""
    allowed = tuple(allowed)
    if text in ("-", "stdout"):
        if "stdout" not in allowed:
            raise _err(text, "standard output is not accepted here", 0, len(text))
        return SinkURL(text, "stdout")
    u = urllib.parse.urlsplit(text)
    schemes = {"nats": ("nats", False), "tls": ("nats", True), "nats+tls": ("nats", True),
               "clickhouse+http": ("clickhouse", False), "clickhouse+https": ("clickhouse", True)}
    if u.scheme not in schemes or schemes[u.scheme][0] not in allowed:
        ok = [s for s, (k, _) in schemes.items() if k in allowed]
        hint = did_you_mean(u.scheme, ok) if u.scheme else ""
        raise _err(text, f"unknown output {u.scheme + '://' if u.scheme else text!r}: expected "
                   + ", ".join(f"{s}://" for s in ok) + (" or - (standard output)" if "stdout" in allowed else ""),
                   0, len(u.scheme) or len(text),
                   [hint, "examples: nats://127.0.0.1:4222/undertow.events, "
                          "clickhouse+http://127.0.0.1:8123/undertow.events"])
    kind, tls = schemes[u.scheme]
    try:
        port = u.port
    except ValueError:
        port = -1
    host = u.hostname or ""
    netloc_at = len(u.scheme) + 3
    if not host or port == -1:
        raise _err(text, "expected HOST:PORT after " + u.scheme + "://", netloc_at, len(u.netloc) or 1)
    if port is None:
        port = 4222 if kind == "nats" else (8443 if tls else 8123)
    path = urllib.parse.unquote(u.path.lstrip("/"))
    path_at = netloc_at + len(u.netloc) + 1
    if kind == "nats":
        if not _SUBJECT.fullmatch(path):
            raise _err(text, f"expected a NATS subject after the host, not {path!r}", path_at if path else path_at - 1,
                       len(u.path) - 1 or 1,
                       ["a subject is dot-separated tokens of letters, digits, - and _ (undertow.events)"])
        target: object = path
    else:
        db, _, table = path.partition(".")
        if not (_IDENT.fullmatch(db) and _IDENT.fullmatch(table)):
            raise _err(text, f"expected DATABASE.TABLE after the host, not {path!r}", path_at if path else path_at - 1,
                       len(u.path) - 1 or 1, ["names of letters, digits and _: undertow.events"])
        target = (db, table)
    params: Dict[str, str] = {}
    q_at = text.find("?") + 1
    for item in u.query.split("&") if u.query else ():
        k, _, v = item.partition("=")
        k, v = urllib.parse.unquote(k), urllib.parse.unquote(v)
        if k not in PARAMS[kind]:
            at = text.find(item, q_at)
            raise _err(text, f"unknown option {k!r} for {u.scheme}://", at, len(k),
                       [did_you_mean(k, PARAMS[kind]) or "options: " + ", ".join(sorted(PARAMS[kind]))])
        params[k] = v
    user = urllib.parse.unquote(u.username) if u.username else None
    password = urllib.parse.unquote(u.password) if u.password is not None else None
    return SinkURL(text, kind, tls, host, port, user, password, target, params)
