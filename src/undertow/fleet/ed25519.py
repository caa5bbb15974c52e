"""Ed25519 signatures (RFC 8032 section 5.1) for NATS nkeys, with the standard library.

NATS authenticates an nkey user by its signature of the ``nonce`` the server sends in
``INFO`` (docs.nats.io, "NKeys"). Only signing is needed, once per connection, so plain
integer arithmetic in extended coordinates is fast enough (~5 ms). Seeds are nkeys
strings: base32 of two prefix bytes (``S`` + the key type), the 32-byte seed and a CRC-16
(XMODEM, little-endian) of the rest.
"""

from __future__ import annotations

import base64
import hashlib
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Tuple

_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960
_B = (_BX, _BY, 1, _BX * _BY % _P)

_PREFIX_SEED = 18 << 3   # 'S'
_PREFIX_USER = 20 << 3   # 'U'


def _add(p: "Tuple[int, int, int, int]", q: "Tuple[int, int, int, int]") -> "Tuple[int, int, int, int]":
    """Point addition on -x^2 + y^2 = 1 + d x^2 y^2 in extended coordinates (RFC 8032 5.1.4)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(k: int, p: "Tuple[int, int, int, int]") -> "Tuple[int, int, int, int]":
    acc = (0, 1, 1, 0)  # the neutral element
    while k:
        if k & 1:
            acc = _add(acc, p)
        p = _add(p, p)
        k >>= 1
    return acc


def _encode(p: "Tuple[int, int, int, int]") -> bytes:
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _h(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little")


def keypair(seed: bytes) -> "Tuple[int, bytes, bytes]":
    """``(secret scalar, prefix, public key)`` of a 32-byte seed (RFC 8032 5.1.5)."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:], _encode(_mul(a, _B))


def sign(seed: bytes, msg: bytes) -> bytes:
    """The 64-byte signature of ``msg`` (RFC 8032 5.1.6)."""
    a, prefix, pub = keypair(seed)
    r = _h(prefix + msg) % _L
    rb = _encode(_mul(r, _B))
    k = _h(rb + pub + msg) % _L
    return rb + ((r + k * a) % _L).to_bytes(32, "little")


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys checks its strings."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _b32(raw: bytes) -> str:
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def decode_seed(text: str) -> "Tuple[int, bytes]":
    """``(key type prefix byte, 32-byte seed)`` of an nkeys seed string (``SU...``)."""
    s = text.strip()
    try:
        raw = base64.b32decode(s + "=" * (-len(s) % 8))
    except ValueError:
        raise ValueError("not an nkey seed (base32)") from None
    if len(raw) != 36 or crc16(raw[:34]) != int.from_bytes(raw[34:], "little") or raw[0] & 0xF8 != _PREFIX_SEED:
        raise ValueError("not an nkey seed (bad length, prefix or checksum)")
    kind = ((raw[0] & 7) << 5) | ((raw[1] & 0xF8) >> 3)
    return kind, raw[2:34]


def encode_seed(seed: bytes, kind: int = _PREFIX_USER) -> str:
    """The nkeys seed string of a 32-byte seed (a user's: ``SU...``)."""
    b1 = _PREFIX_SEED | (kind >> 5)
    b2 = (kind & 31) << 3
    return _b32(bytes([b1, b2]) + seed)


def public_key(seed_text: str) -> str:
    """The public nkey (``U...`` for a user) of a seed string."""
    kind, seed = decode_seed(seed_text)
    return _b32(bytes([kind]) + keypair(seed)[2])


def sign_nonce(seed_text: str, nonce: bytes) -> "Tuple[str, str]":
    """``(public nkey, signature of nonce in URL-safe base64 without padding)`` for CONNECT."""
    kind, seed = decode_seed(seed_text)
    sig = sign(seed, nonce)
    return _b32(bytes([kind]) + keypair(seed)[2]), base64.urlsafe_b64encode(sig).decode().rstrip("=")
