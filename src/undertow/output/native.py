"""Values held as they lie in memory (C's layout): arrays and whole structs, read back and
shown the way bpftrace 0.17 prints them.

A map value or a printed value: ``[1,2,3,4]``, ``[[5,6],[7,8]]``, ``{ .m = 2, .n = 3 }``;
a map key: ``[1,2,3,4]``, ``{.m=2,.n=3}`` (bpftrace's ``MapKey::argument_value``). Members
are read by their type: integers of their own size and sign (bitfields unsigned, as
bpftrace reads them), ``char`` arrays as strings, pointers as numbers (``0x...`` in keys).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any

from ..lang.types import ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, Ty
from .values import escape

__all__ = ["native_value", "native_text", "native_json", "native_json_text"]


def _int_at(data: bytes, off: int, size: int, signed: bool) -> int:
    return int.from_bytes(data[off:off + size], "little", signed=signed)


def native_value(t: Ty, data: bytes) -> Any:
    """The Python value of a ``t`` at the start of ``data``: int, str (a char array), list
    (an array), dict of member name -> value (a struct), in member order."""
    if isinstance(t, ArrayTy):
        if isinstance(t.elem, IntTy) and t.elem.is_char:
            return bytes(data[:t.size]).split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        n = t.elem.size
        return [native_value(t.elem, data[i * n:(i + 1) * n]) for i in range(t.count)] if n > 0 else []
    if isinstance(t, RecordTy):
        out = {}
        for f in t.fields:
            name, off, ft = f[0], f[1], f[2]
            bit_off = f[3] if len(f) > 3 else None
            bit_size = f[4] if len(f) > 4 else None
            if bit_size:
                v = _int_at(data, off, ft.size or 4, False)
                out[name] = (v >> (bit_off or 0)) & ((1 << bit_size) - 1)
            else:
                out[name] = native_value(ft, data[off:off + (ft.size or 0)])
        return out
    if isinstance(t, (IntTy, EnumTy)):
        return _int_at(data, 0, t.size or 8, bool(getattr(t, "signed", False)))
    if isinstance(t, PtrTy):
        return ("ptr", _int_at(data, 0, 8, False))
    return bytes(data[:t.size])


def _scalar_text(v: Any, key: bool) -> str:
    if isinstance(v, tuple) and v and v[0] == "ptr":  # a pointer: hex in keys, a number elsewhere
        return hex(v[1]) if key else str(v[1])
    if isinstance(v, str):
        return escape(v)
    if isinstance(v, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in v)
    return str(v)


def native_text(v: Any, key: bool = False) -> str:
    """``v`` (from :func:`native_value`) as bpftrace prints it: as a map value or printed
    value, or (``key``) inside a map key's brackets."""
    if isinstance(v, list):
        return "[" + ",".join(native_text(x, key) for x in v) + "]"
    if isinstance(v, dict):
        if key:
            return "{" + ",".join(f".{k}={native_text(x, key)}" for k, x in v.items()) + "}"
        return "{ " + ", ".join(f".{k} = {native_text(x, key)}" for k, x in v.items()) + " }"
    return _scalar_text(v, key)


def native_json_text(v: Any) -> str:
    """``v`` as bpftrace 0.17's ``-f json`` writes it, text for text: ``[1,2]``,
    ``{ "m": 2, "n": 3 }`` (its JsonOutput: arrays without spaces, structs with)."""
    import json  # only -f json needs it

    if isinstance(v, list):
        return "[" + ",".join(native_json_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)}: {native_json_text(x)}" for k, x in v.items()) + " }"
    if isinstance(v, tuple) and v and v[0] == "ptr":
        return str(v[1])
    if isinstance(v, (str, bytes)):
        return json.dumps(_scalar_text(v, False) if isinstance(v, bytes) else v, ensure_ascii=False)
    return str(v)


def native_json(v: Any) -> Any:
    """``v`` as a JSON value: arrays as lists, structs as objects, numbers as numbers."""
    if isinstance(v, list):
        return [native_json(x) for x in v]
    if isinstance(v, dict):
        return {k: native_json(x) for k, x in v.items()}
    if isinstance(v, tuple) and v and v[0] == "ptr":
        return v[1]
    if isinstance(v, bytes):
        return _scalar_text(v, False)
    return v
