"""ClickHouse over its HTTP interface: batched ``INSERT ... FORMAT JSONEachRow``, the flat schema.

Speaks only what ClickHouse 18.16 (Debian bookworm) already had: POST of the query text,
``INSERT INTO db.t FORMAT JSONEachRow`` with the rows as the body (one batch is one insert:
all rows are stored or none, the error text in the answer's body), ``DESCRIBE TABLE``,
``ALTER TABLE ... ADD COLUMN``. Users are given with HTTP basic authentication.

The schema (``--create``) is flat: nested objects become ``parent_child`` columns; lists are
stored as their JSON text. Provenance columns come first (``hostname machine_id boot_id run_id
instance_id tool event_seq wall_ns``), then ``event_time DateTime`` (``wall_ns`` in seconds) and
``event_json`` (the whole
event as JSON: nothing is lost when a value does not fit its column). The engine is a
ReplacingMergeTree ordered by host, boot, process instance and sequence: a row inserted twice (the
collector died between the insert and the ack) is merged away, and ``FINAL`` hides it at once.
Every other column is created (with ``--create``) the first time an event carries a non-null
value for it, typed from that value: ``Nullable(Int64)``, ``Nullable(Float64)``,
``Nullable(UInt8)`` for booleans, ``Nullable(String)`` otherwise; a later value of another type
is stored as NULL in it (and stays in ``event_json``).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.parse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from ..errors import UndertowError
from .sinks import SpoolSink

#: ``--create`` adds columns up to this many; later keys stay in ``event_json`` only
MAX_COLUMNS = 1000

BASE_COLUMNS = [
    ("hostname", "String"), ("machine_id", "String"), ("boot_id", "String"), ("run_id", "String"),
    ("instance_id", "String"), ("tool", "String"), ("event_seq", "UInt64"), ("wall_ns", "UInt64"),
    ("event_time", "DateTime"), ("event_json", "String"),
]


class ClickHouseError(UndertowError, OSError):
    """ClickHouse answered with an error (``rejected``: it read the request and refused it,
    as opposed to a connection that failed)."""

    def __init__(self, message: str, rejected: bool = False, status: int = 0) -> None:
        super().__init__(message)
        self.rejected, self.status = rejected, status


_NAMES: Dict[str, str] = {}
_BAD = re.compile(r"[^A-Za-z0-9_]")


def column_name(key: str) -> str:
    """A column name for a flattened key: letters, digits and _ only, at most 64 characters
    (cached: the same few dozen keys come in every event)."""
    name = _NAMES.get(key)
    if name is None:
        name = _BAD.sub("_", key)[:64]
        name = name if name and not name[0].isdigit() else "_" + name
        if len(_NAMES) < 65536:
            _NAMES[key] = name
    return name


def flatten(event: Dict[str, Any], prefix: str = "", out: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``{"a": {"b": 1}, "l": [1]}`` -> ``{"a_b": 1, "l": "[1]"}`` (lists as JSON text)."""
    out = {} if out is None else out
    for k, v in event.items():
        name = column_name(prefix + k if isinstance(k, str) else prefix + str(k))
        t = type(v)
        if t is dict:
            flatten(v, name + "_", out)
        elif t is list or t is tuple:
            out[name] = json.dumps(v, ensure_ascii=False)
        else:
            out[name] = v
    return out


def type_of(value: Any) -> Optional[str]:
    """The column type a first non-null value asks for (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Nullable(UInt8)"
    if isinstance(value, int):
        return "Nullable(Int64)"
    if isinstance(value, float):
        return "Nullable(Float64)"
    return "Nullable(String)"


def coerce(value: Any, ctype: str) -> Any:
    """``value`` as column type ``ctype`` accepts it (NULL when it does not fit)."""
    if value is None:
        return None
    base = ctype[9:-1] if ctype.startswith("Nullable(") else ctype
    if base == "String":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if base.startswith(("Int", "UInt")):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            if base.startswith("UInt") and value < 0:
                return None
            return value
        return None if ctype.startswith("Nullable(") else 0
    if base.startswith("Float"):
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if base == "DateTime":
        return value if isinstance(value, int) else 0
    return value if isinstance(value, (str, int, float)) else json.dumps(value)


#: (Python type, column type) pairs that need no conversion
_FITS = {(str, "String"), (str, "Nullable(String)"), (int, "Nullable(Int64)"), (int, "Int64"),
         (float, "Nullable(Float64)"), (float, "Float64"), (bool, "Nullable(UInt8)"), (type(None), "Nullable(String)"),
         (type(None), "Nullable(Int64)"), (type(None), "Nullable(Float64)"), (type(None), "Nullable(UInt8)")}


class Client:
    """One ClickHouse HTTP endpoint, one table (``url``: a ``clickhouse+http://`` SinkURL)."""

    def __init__(self, url: Any, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout
        self.db, self.table = url.target
        self.columns: Dict[str, str] = {}
        self.capped = 0  # keys left without a column (MAX_COLUMNS reached): still in event_json
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        password = url.password
        if url.params.get("password_file"):
            with open(url.params["password_file"], encoding="utf-8") as f:
                password = f.read().strip()
        if url.user is not None:
            token = base64.b64encode(f"{url.user}:{password or ''}".encode()).decode()
            headers["Authorization"] = "Basic " + token
        self.headers = headers

    @property
    def full(self) -> str:
        """The table as SQL names it (database and table in backquotes)."""
        return f"`{self.db}`.`{self.table}`"

    def _conn(self) -> http.client.HTTPConnection:
        u = self.url
        if u.tls:
            ctx = ssl.create_default_context(cafile=u.params.get("ca")) if u.params.get("ca") \
                else ssl.create_default_context()
            return http.client.HTTPSConnection(u.host, u.port, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(u.host, u.port, timeout=self.timeout)

    def query(self, sql: str, body: Optional[bytes] = None) -> str:
        """Run ``sql`` (with ``body`` as the data of an INSERT); the answer's text."""
        conn = self._conn()
        try:
            if body is None:
                path, data = "/", sql.encode()
            else:
                path, data = "/?" + urllib.parse.urlencode({"query": sql}), body
            try:
                conn.request("POST", path, body=data, headers=self.headers)
                r = conn.getresponse()
                text = r.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as e:
                raise ClickHouseError(f"cannot reach ClickHouse at {self.url.host}:{self.url.port}: "
                                      f"{getattr(e, 'strerror', None) or e}") from None
            if r.status != 200:
                msg = " ".join(text.split())[:300]
                raise ClickHouseError(f"ClickHouse refused it (HTTP {r.status}): {msg}", rejected=True,
                                      status=r.status)
            return text
        finally:
            conn.close()

    def ensure(self, create: bool) -> None:
        """With ``create``, the database and table; then the table's columns (DESCRIBE)."""
        if create:
            self.query(f"CREATE DATABASE IF NOT EXISTS `{self.db}`")
            cols = ", ".join(f"`{n}` {t}" for n, t in BASE_COLUMNS)
            self.query(f"CREATE TABLE IF NOT EXISTS {self.full} ({cols}) ENGINE = ReplacingMergeTree() "
                       "PARTITION BY toYYYYMM(event_time) ORDER BY (hostname, boot_id, instance_id, event_seq)")
        self.describe()

    def describe(self) -> None:
        """Read the table's columns and types (``DESCRIBE TABLE``)."""
        text = self.query(f"DESCRIBE TABLE {self.full} FORMAT TabSeparated")
        cols = {}
        for ln in text.splitlines():
            parts = ln.split("\t")
            if len(parts) >= 2:
                cols[parts[0]] = parts[1]
        self.columns = cols

    def rows(self, events: List[Dict[str, Any]], create: bool, raws: Optional[List[str]] = None) -> List[str]:
        """The JSONEachRow lines of ``events`` (new columns added first, with ``create``);
        ``raws``: the events' JSON text as received (else it is made again)."""
        flat = []
        new: Dict[str, str] = {}
        for i, ev in enumerate(events):
            f = flatten(ev)
            wall = f.get("wall_ns")
            f["event_time"] = wall // 10 ** 9 if isinstance(wall, int) else 0
            f["event_json"] = raws[i] if raws is not None else json.dumps(ev, ensure_ascii=False)
            flat.append(f)
            if create:
                for k, v in f.items():
                    if k not in self.columns and k not in new:
                        t = type_of(v)
                        if t is not None:
                            new[k] = t
        if new:
            room = MAX_COLUMNS - len(self.columns)
            if len(new) > room:  # hosts can send any keys: the table does not grow without end
                self.capped += len(new) - max(0, room)
                new = dict(list(new.items())[:max(0, room)])
            if new:
                self.add_columns(new)
        out = []
        cols = self.columns
        fits = _FITS
        for f in flat:
            # a value whose Python type the column takes as it is skips coerce()
            row = {k: (v if (type(v), cols[k]) in fits else coerce(v, cols[k])) for k, v in f.items() if k in cols}
            out.append(json.dumps(row, ensure_ascii=False))
        return out

    def add_columns(self, new: Dict[str, str]) -> None:
        """``ALTER TABLE ... ADD COLUMN`` each of ``new`` (name -> type); one that another writer
        added meanwhile is fine."""
        for name, t in new.items():
            try:
                self.query(f"ALTER TABLE {self.full} ADD COLUMN `{name}` {t}")
            except ClickHouseError as e:
                if "already exists" not in e.message:
                    raise
        self.describe()

    def insert(self, lines: List[str]) -> None:
        """One INSERT of the rows (all stored, or ClickHouseError)."""
        if lines:
            body = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
            self.query(f"INSERT INTO {self.full} FORMAT JSONEachRow", body)


class ClickHouseSink(SpoolSink):
    """The ``clickhouse+http://`` sink: batches of ``batch=N`` rows (default 1000), at least
    every 0.2 s. A batch ClickHouse refuses (it answered with an error) is reported and
    counted as lost (``clickhouse_rejected``): sending it again would fail the same way; a
    batch that could not reach it stays spooled and is sent again."""

    batch_default = 1000

    def __init__(self, url: Any, create: bool = False, instance_id: str = "") -> None:
        super().__init__(url, create, instance_id)
        self.client = Client(url)
        self.ready = False

    def connect(self) -> None:
        """Create (``--create``) and describe the table, once."""
        if not self.ready:
            self.client.ensure(self.create)
            self.ready = True

    def send(self, batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """One INSERT of ``batch``; a refusal is counted as lost, a failed connection raises (kept)."""
        self.connect()
        try:
            self.client.insert(self.client.rows(batch, self.create))
        except ClickHouseError as e:
            if not e.rejected:
                raise
            self.report.error(e.message)
            self.report.count_lost("clickhouse_rejected", len(batch))
            self.ready = False  # the table may have changed: DESCRIBE it again
            return []
        self.report.sent += len(batch)
        return []
