"""How values lie in BPF memory (records, map keys, map values) and how user space reads them back.

One rule for every place a value is stored: integers, pointers and enums take
8 bytes (sign-extended when signed), strings their fixed size (NUL padded),
tuples their elements one after the other at 8-byte aligned offsets, arrays and
whole structs their bytes as they are in memory (C's layout), and the
values user space renders (:class:`~undertow.lang.types.OpaqueTy`, stacks) the
bytes listed in :data:`OPAQUE_SIZES`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

from ...lang.types import (
    ArrayTy, BufTy, EnumTy, IntTy, OpaqueTy, PtrTy, RecordTy, StackTy, StrTy, TupleTy, Ty,
)

__all__ = ["Slot", "layout", "decode", "decoder", "align8"]


def align8(n: int) -> int:
    return (n + 7) & ~7


class Slot:
    """The memory layout of one value.

    ``kind``: ``int`` | ``str`` | ``buf`` | ``bytes`` (an array) | ``record`` | ``tuple`` | ``kstack`` |
    ``ustack`` | an opaque kind (``ksym usym inet username strerror mac timestamp cgroup_path``).
    ``size`` is the bytes it takes (8-aligned for everything but the last string
    byte); ``elems`` the (offset, slot) of a tuple's elements.
    """

    # __slots__ and a plain __init__: on the run path, pickled by the program cache
    __slots__ = ("kind", "size", "signed", "elems", "ty")

    def __init__(self, kind: str, size: int, signed: bool = False, elems: Optional[List[Tuple[int, Slot]]] = None,
                 ty: Optional[Ty] = None) -> None:
        self.kind, self.size, self.signed = kind, size, signed
        self.elems: List[Tuple[int, Slot]] = [] if elems is None else elems
        self.ty = ty

    @property
    def scalar(self) -> bool:
        """Held in a register in the program (an 8-byte value)."""
        return self.kind in ("int", "kstack", "ksym", "username", "strerror", "timestamp", "cgroup_path")


def layout(t: Optional[Ty]) -> Slot:
    """The :class:`Slot` of a value of type ``t``."""
    if isinstance(t, (IntTy, EnumTy)):
        return Slot("int", 8, bool(getattr(t, "signed", False)), ty=t)
    if isinstance(t, PtrTy):
        return Slot("int", 8, False, ty=t)
    if isinstance(t, StrTy):
        return Slot("str", t.size, ty=t)
    if isinstance(t, ArrayTy):
        if isinstance(t.elem, IntTy) and t.elem.is_char:
            return Slot("str", t.size, ty=t)
        return Slot("bytes", t.size, ty=t)  # as in memory (output reads the elements by ty)
    if isinstance(t, RecordTy) and t.size > 0:
        return Slot("record", t.size, ty=t)  # a whole struct, as in memory
    if isinstance(t, BufTy):
        return Slot("buf", 8 + t.size, ty=t)
    if isinstance(t, StackTy):
        return Slot("kstack", 8, ty=t) if t.space == "kernel" else Slot("ustack", 16, ty=t)
    if isinstance(t, OpaqueTy):
        return Slot(t.kind, align8(t.size), ty=t)
    if isinstance(t, TupleTy):
        elems = []
        off = 0
        for e in t.elems:
            s = layout(e)
            elems.append((off, s))
            off = align8(off + s.size)
        return Slot("tuple", off, elems=elems, ty=t)
    raise TypeError(f"no memory layout for {t}")


def decode(slot: Slot, data: bytes) -> Any:
    """The Python value of ``slot`` in ``data`` (int, str, bytes, tuple, or a tagged tuple)."""
    k = slot.kind
    if k in ("int", "ksym", "username", "strerror", "timestamp", "kstack", "cgroup_path"):
        return int.from_bytes(data[:8], "little", signed=slot.signed or k == "kstack")
    if k == "str":
        return data[:slot.size].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
    if k in ("bytes", "record"):
        return bytes(data[:slot.size])
    if k == "buf":
        n = int.from_bytes(data[:8], "little")
        return bytes(data[8:8 + min(n, slot.size - 8)])
    if k == "tuple":
        return tuple(decode(s, data[off:off + s.size]) for off, s in slot.elems)
    if k == "usym":
        return (int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little"))
    if k == "ustack":
        return (int.from_bytes(data[:8], "little", signed=True), int.from_bytes(data[8:16], "little"))
    if k == "inet":
        fam = int.from_bytes(data[:8], "little")
        return (fam, bytes(data[8:24]))
    if k == "mac":
        return bytes(data[:6])
    return bytes(data[:slot.size])


def encode(slot: Slot, value: Any) -> bytes:
    """``value`` laid out as ``slot`` (the inverse of :func:`decode` for integers, strings and
    tuples of them): a key or value a user-space writer puts into a map. ValueError otherwise."""
    k = slot.kind
    if k in _INT_KINDS and isinstance(value, int):
        return (value & ((1 << 64) - 1)).to_bytes(8, "little") + bytes(max(0, slot.size - 8))
    if k == "str" and isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")[:max(0, slot.size - 1)]
        return raw + bytes(slot.size - len(raw))
    if k == "tuple" and isinstance(value, tuple) and len(value) == len(slot.elems):
        out = bytearray(slot.size)
        for (off, s), v in zip(slot.elems, value):
            data = encode(s, v)
            out[off:off + len(data)] = data
        return bytes(out)
    raise ValueError(f"a {type(value).__name__} cannot be stored as {k}")


#: Slot kinds held as one 8-byte integer (what :func:`decode` reads with ``int.from_bytes``).
_INT_KINDS = frozenset(("int", "ksym", "username", "strerror", "timestamp", "kstack", "cgroup_path"))


def decoder(args: List[Tuple[int, Slot]]) -> Optional[Callable[[bytes], List[Any]]]:
    """One ``struct.Struct`` for a record whose values are all 8-byte integers, strings, byte
    arrays and ``buf()`` values (the tools' records: numbers, names, addresses, packets),
    giving what :func:`decode` gives per value; None for other layouts. A filewatch record
    (8 integers, 2 strings) decoded value by value took 3.2 us, in one unpack 0.6 us
    (2026-12-07, this 2-vCPU VM under load), of the ~30 us a tool spends per event at 20k
    events/s (issue 18, bench/tools_overhead.py); a connect record (10 integers, a string,
    two 16-byte ``buf()``) 4-5 us value by value, ~1 us in one unpack. Raises
    ``struct.error`` for a payload shorter than the layout (the caller then decodes value by
    value)."""
    import struct

    fmt, pos, strs, bufs = ["<"], 0, [], []
    for i, (off, s) in enumerate(args):
        if off < pos:
            return None
        if off > pos:
            fmt.append(f"{off - pos}x")
        if s.kind in _INT_KINDS and s.size >= 8:
            fmt.append("q" if s.signed or s.kind == "kstack" else "Q")
            pos = off + 8
        elif s.kind == "str" and s.size > 0:
            fmt.append(f"{s.size}s")
            strs.append(i + len(bufs))
            pos = off + s.size
        elif s.kind in ("bytes", "record") and s.size > 0:
            fmt.append(f"{s.size}s")  # the bytes as they are, as decode() gives them
            pos = off + s.size
        elif s.kind == "buf" and s.size > 8:
            fmt.append(f"Q{s.size - 8}s")  # the length, then the bytes: two values, merged below
            bufs.append(i + len(bufs))
            pos = off + s.size
        else:
            return None
    unpack = struct.Struct("".join(fmt)).unpack_from
    if not strs and not bufs:
        return lambda raw: list(unpack(raw))
    bufs.reverse()  # merged from the last, so the indexes before each stay right

    def dec(raw: bytes) -> List[Any]:
        v = list(unpack(raw))
        for i in strs:
            v[i] = v[i].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        for i in bufs:
            v[i:i + 2] = (v[i + 1][:v[i]],)  # as decode(): at most the buffer, however long it says
        return v
    return dec
