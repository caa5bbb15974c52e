"""The NATS client protocol over one socket, with the standard library (issue 22).

Why not nats-py: it is asyncio-only, while undertow's tools run a synchronous read loop; a
sink thread speaking the text protocol needs ~250 lines, imports nothing beyond the standard
library, and behaves the same wherever undertow runs (``pip install undertow`` alone).
The protocol (docs.nats.io, "Client Protocol"): the server greets with ``INFO {json}``; the
client sends ``CONNECT {json}`` and ``PING``; then ``PUB``/``HPUB subject [reply] size``,
``SUB subject sid``; the server sends ``MSG``/``HMSG subject sid [reply] size``, ``PING``
(answered ``PONG``), ``+OK``, ``-ERR 'text'``. Headers (``HPUB``/``HMSG``) are
``NATS/1.0[ status text]\\r\\nName: value\\r\\n\\r\\n``; JetStream's ``Nats-Msg-Id`` and the
503 "no responders" status ride there.

Authentication: user/password or a token in ``CONNECT``; an nkey or a creds file signs the
server's ``nonce`` with Ed25519 (:mod:`.ed25519`). TLS: when the server asks for it
(``tls_required``) or the URL does (``tls://``), the socket is wrapped after ``INFO``, with
the given CA file (default: the system's) and an optional client certificate.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

from ..errors import UndertowError


class NatsError(UndertowError, OSError):
    """The connection failed or the server said ``-ERR``; ``permanent``: retrying will not help
    (authorization, a bad subject)."""

    def __init__(self, message: str, permanent: bool = False,
                 hints: "List[str]" = ()) -> None:  # type: ignore[assignment]
        super().__init__(message, hints=hints)
        self.permanent = permanent


class Msg:
    """A message received: ``subject``, ``reply`` (or ''), ``headers`` (name -> value),
    ``status`` (the ``NATS/1.0 503`` code as int, 0 for none), ``data`` (bytes)."""

    __slots__ = ("subject", "reply", "headers", "status", "data", "sid")

    def __init__(self, subject: str, sid: str, reply: str, headers: Dict[str, str], status: int,
                 data: bytes) -> None:
        self.subject, self.sid, self.reply, self.headers, self.status, self.data = \
            subject, sid, reply, headers, status, data


def _headers(raw: bytes) -> Tuple[int, Dict[str, str]]:
    lines = raw.decode("utf-8", "replace").split("\r\n")
    status = 0
    first = lines[0].split(None, 2) if lines else []
    if len(first) >= 2 and first[1].isdigit():
        status = int(first[1])
    out: Dict[str, str] = {}
    for ln in lines[1:]:
        k, sep, v = ln.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return status, out


def encode_headers(headers: Dict[str, str]) -> bytes:
    """``NATS/1.0`` headers block; names and values must not hold CR or LF."""
    parts = ["NATS/1.0"]
    for k, v in headers.items():
        if any(c in k + v for c in "\r\n"):
            raise ValueError("header with a line break")
        parts.append(f"{k}: {v}")
    return ("\r\n".join(parts) + "\r\n\r\n").encode()


class Auth:
    """What ``CONNECT`` proves: ``user``/``password``, ``token``, ``nkey_seed`` (an ``SU...``
    seed; with ``jwt``: a creds file's user JWT), TLS ``ca``/``cert``/``key`` files."""

    def __init__(self, user: Optional[str] = None, password: Optional[str] = None, token: Optional[str] = None,
                 nkey_seed: Optional[str] = None, jwt: Optional[str] = None, ca: Optional[str] = None,
                 cert: Optional[str] = None, key: Optional[str] = None, tls: bool = False) -> None:
        self.user, self.password, self.token = user, password, token
        self.nkey_seed, self.jwt = nkey_seed, jwt
        self.ca, self.cert, self.key, self.tls = ca, cert, key, tls


class Connection:
    """One connection to a NATS server (not thread-safe: one thread owns it)."""

    def __init__(self, host: str, port: int, auth: Optional[Auth] = None, timeout: float = 2.0,
                 name: str = "undertow") -> None:
        self.host, self.port, self.auth, self.timeout, self.name = host, port, auth or Auth(), timeout, name
        self.sock: Optional[socket.socket] = None
        self.buf = b""
        self.pos = 0   # where the unread part of buf starts
        self.info: Dict[str, object] = {}
        self.sids = 0
        self.out: List[bytes] = []

    # -- set-up

    def connect(self) -> "Connection":
        """Connect, upgrade to TLS if asked, authenticate; raises :class:`NatsError`."""
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise NatsError(f"cannot connect to nats://{self.host}:{self.port}: {e.strerror or e}") from None
        self.sock = s
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise
        return self

    def _handshake(self) -> None:
        line = self._line()
        if not line.startswith(b"INFO "):
            raise NatsError(f"nats://{self.host}:{self.port} is not a NATS server (it said {line[:40]!r})",
                            permanent=True)
        self.info = json.loads(line[5:])
        a = self.auth
        if a.tls or self.info.get("tls_required"):
            self._tls()
        opts: Dict[str, object] = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                                   "protocol": 1, "lang": "python-undertow", "version": "0.1", "name": self.name,
                                   "tls_required": bool(a.tls or self.info.get("tls_required"))}
        if a.user is not None:
            opts["user"], opts["pass"] = a.user, a.password or ""
        if a.token:
            opts["auth_token"] = a.token
        if a.nkey_seed:
            from . import ed25519

            pub, sig = ed25519.sign_nonce(a.nkey_seed, str(self.info.get("nonce", "")).encode())
            opts["sig"] = sig
            if a.jwt:
                opts["jwt"] = a.jwt
            else:
                opts["nkey"] = pub
        self._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                text = line[4:].strip().strip(b"'").decode("utf-8", "replace")
                raise NatsError(f"nats://{self.host}:{self.port} refused the connection: {text}",
                                permanent="author" in text.lower() or "auth" in text.lower())
            if line.startswith(b"INFO ") or line == b"+OK":
                continue

    def _tls(self) -> None:
        a = self.auth
        ctx = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
        assert self.sock is not None
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)
        except (ssl.SSLError, OSError) as e:
            raise NatsError(f"TLS with nats://{self.host}:{self.port} failed: {e}", permanent=True) from None

    def close(self) -> None:
        """Close the socket (idempotent)."""
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    # -- reading

    def _fill(self, timeout: Optional[float]) -> bool:
        """Read more bytes into the buffer; False on timeout. Raises NatsError when closed."""
        if self.sock is None:
            raise NatsError("not connected")
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        except ssl.SSLWantReadError:
            return False
        except OSError as e:
            raise NatsError(f"connection to nats://{self.host}:{self.port} lost: {e.strerror or e}") from None
        if not data:
            raise NatsError(f"nats://{self.host}:{self.port} closed the connection")
        self.buf = self.buf[self.pos:] + data if self.pos else self.buf + data
        self.pos = 0
        return True

    def _line(self) -> bytes:
        while self.buf.find(b"\r\n", self.pos) < 0:
            if not self._fill(self.timeout):
                raise NatsError(f"nats://{self.host}:{self.port} did not answer within {self.timeout:g} s")
        i = self.buf.find(b"\r\n", self.pos)
        line, self.pos = self.buf[self.pos:i], i + 2
        return line

    def read(self, timeout: float) -> Optional[Msg]:
        """The next message within ``timeout`` seconds (None: none came). Answers ``PING``s;
        ``-ERR`` raises :class:`NatsError`."""
        end = time.monotonic() + timeout
        while True:
            msg = self._parse()
            if msg is not None:
                return msg
            left = end - time.monotonic()
            if left <= 0 or not self._fill(left):
                return None

    def _parse(self) -> Optional[Msg]:
        # one bytes object, read from an offset: slicing the rest off after each message
        # would copy the buffer once per message (a 1000-message fetch is ~600 kB)
        buf = self.buf
        pos = self.pos
        try:
            while True:
                i = buf.find(b"\r\n", pos)
                if i < 0:
                    return None
                head = buf[pos:i]
                if head[:4] == b"MSG " or head[:5] == b"HMSG ":
                    parts = head.decode("utf-8", "replace").split()
                    hdr_len = 0
                    if parts[0] == "HMSG":
                        if len(parts) == 6:
                            _, subject, sid, reply, hl, tl = parts
                        else:
                            (_, subject, sid, hl, tl), reply = parts, ""
                        hdr_len, total = int(hl), int(tl)
                    else:
                        if len(parts) == 5:
                            _, subject, sid, reply, tl = parts
                        else:
                            (_, subject, sid, tl), reply = parts, ""
                        total = int(tl)
                    if len(buf) < i + 2 + total + 2:
                        return None
                    body = buf[i + 2:i + 2 + total]
                    pos = i + 2 + total + 2
                    status, headers = _headers(body[:hdr_len]) if hdr_len else (0, {})
                    return Msg(subject, sid, reply, headers, status, body[hdr_len:] if hdr_len else body)
                pos = i + 2
                if head == b"PING":
                    self._send(b"PONG\r\n")
                elif head[:4] == b"-ERR":
                    text = head[4:].strip().strip(b"'").decode("utf-8", "replace")
                    raise NatsError(f"nats://{self.host}:{self.port}: {text}",
                                    permanent="permissions" in text.lower() or "author" in text.lower())
                # +OK, PONG, INFO: nothing to do
        finally:
            self.pos = pos

    def pending(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self.buf) - self.pos

    def read_many(self, timeout: float, limit: int) -> List[Msg]:
        """Up to ``limit`` messages: those already buffered, then what comes within ``timeout``."""
        out: List[Msg] = []
        m = self.read(timeout)
        while m is not None:
            out.append(m)
            if len(out) >= limit:
                break
            m = self._parse()
        return out

    # -- writing

    def _send(self, data: bytes) -> None:
        if self.sock is None:
            raise NatsError("not connected")
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise NatsError(f"connection to nats://{self.host}:{self.port} lost: {e.strerror or e}") from None

    def publish(self, subject: str, data: bytes, reply: str = "", headers: Optional[Dict[str, str]] = None) -> None:
        """Queue a message (sent by :meth:`flush`)."""
        r = f" {reply}" if reply else ""
        if headers:
            h = encode_headers(headers)
            self.out.append(f"HPUB {subject}{r} {len(h)} {len(h) + len(data)}\r\n".encode() + h + data + b"\r\n")
        else:
            self.out.append(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def flush(self) -> None:
        """Send what :meth:`publish` queued."""
        if self.out:
            data, self.out = b"".join(self.out), []
            self._send(data)

    def subscribe(self, subject: str) -> str:
        """Subscribe; returns the subscription id."""
        self.sids += 1
        sid = str(self.sids)
        self._send(f"SUB {subject} {sid}\r\n".encode())
        return sid

    def request(self, subject: str, data: bytes, inbox: str, timeout: float) -> Optional[Msg]:
        """Publish with ``inbox`` as the reply subject (already subscribed) and wait for the answer."""
        self.publish(subject, data, reply=inbox)
        self.flush()
        end = time.monotonic() + timeout
        while True:
            m = self.read(max(0.0, end - time.monotonic()))
            if m is None or m.subject == inbox:
                return m


def load_creds(path: str) -> Tuple[str, str]:
    """``(jwt, seed)`` from a NATS ``.creds`` file (the JWT and the nkey seed between
    ``-----BEGIN ...-----`` / ``------END ...------`` lines)."""
    blocks: List[str] = []
    cur: Optional[List[str]] = None
    with open(path, encoding="ascii", errors="replace") as f:
        for ln in f:
            s = ln.strip()
            if s.startswith("-----BEGIN"):
                cur = []
            elif s.startswith("-----END") or s.startswith("------END"):
                if cur is not None:
                    blocks.append("".join(cur))
                cur = None
            elif cur is not None and s:
                cur.append(s)
    if len(blocks) < 2:
        raise ValueError("not a creds file: expected a JWT block and a seed block")
    return blocks[0], blocks[1]


def auth_from_url(url: object) -> Auth:
    """:class:`Auth` from a :class:`~undertow.fleet.urls.SinkURL` (files read here: a missing
    one is a clear error, not a failed connection later)."""
    p = getattr(url, "params")
    password = getattr(url, "password")
    if p.get("password_file"):
        password = _read_secret(p["password_file"])
    elif getattr(url, "user") is not None and password is None:
        password = os.environ.get("UNDERTOW_NATS_PASSWORD")
    token = _read_secret(p["token_file"]) if p.get("token_file") else None
    seed = jwt = None
    if p.get("creds"):
        try:
            jwt, seed = load_creds(p["creds"])
        except (OSError, ValueError) as e:
            raise NatsError(f"cannot read the creds file {p['creds']}: {getattr(e, 'strerror', None) or e}",
                            permanent=True) from None
    elif p.get("nkey"):
        seed = _read_secret(p["nkey"])
    return Auth(getattr(url, "user"), password, token, seed, jwt, p.get("ca"), p.get("cert"), p.get("key"),
                bool(getattr(url, "tls")) or url.flag("tls"))  # type: ignore[attr-defined]


def _read_secret(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        raise NatsError(f"cannot read {path}: {e.strerror}", permanent=True) from None
