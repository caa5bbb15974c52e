"""Value types of the IR.

A small type model shared by both front ends and both backends. Types that come
from the kernel keep a reference to their BTF type (``btf``) so backends can
compute offsets without looking names up again; types that come from a
tracepoint format or from user-space defaults have none.

Sizes are in bytes. ``space`` on pointers says which address space the pointee
lives in: ``"kernel"`` (probe_read_kernel / ftrace ``+off(...)``) or ``"user"``
(probe_read_user / ftrace ``+uoff`` / ``ustring``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Optional, Tuple

_set = object.__setattr__


class Ty:
    """Base of IR types.

    Types are immutable values, as :class:`~undertow.errors.Span` is: equal when of one
    class with equal ``_compare`` attributes, hashable, and pickled as a constructor call
    of ``_fields`` (what ``__init__`` takes, in order). Plain ``__slots__`` classes: the
    resolver makes hundreds of them on the way to a one-liner's first event.
    """

    __slots__ = ()
    #: ``__init__``'s parameters, in order (what pickling passes back)
    _fields: Tuple[str, ...] = ()
    #: what equality and the hash look at
    _compare: Tuple[str, ...] = ()

    size: int = 0

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _key(self) -> Tuple[Any, ...]:
        return tuple([getattr(self, n) for n in self._compare])

    def __eq__(self, other: object) -> Any:
        if other.__class__ is self.__class__:
            return self._key() == other._key()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), tuple([getattr(self, n) for n in self._fields]))

    def is_int(self) -> bool:
        return isinstance(self, IntTy)

    def is_pointer(self) -> bool:
        return isinstance(self, PtrTy)

    def is_string(self) -> bool:
        return isinstance(self, StrTy)

    def is_record(self) -> bool:
        return isinstance(self, RecordTy)


class VoidTy(Ty):
    __slots__ = ("size",)
    _fields = _compare = ("size",)

    def __init__(self, size: int = 0) -> None:
        _set(self, "size", size)

    def __str__(self) -> str:
        return "void"


class IntTy(Ty):
    """An integer. ``name`` is the C spelling when known (``u32``, ``__be32``, ``pid_t``).

    ``big_endian`` marks network-order types (``__be16``/``__be32``) so output can
    byte-swap them; ``is_char`` marks ``char`` so arrays of it print as strings.
    """

    __slots__ = ("size", "signed", "name", "big_endian", "is_char", "is_bool")
    _fields = _compare = __slots__

    def __init__(self, size: int = 8, signed: bool = False, name: str = "", big_endian: bool = False,
                 is_char: bool = False, is_bool: bool = False) -> None:
        _set(self, "size", size)
        _set(self, "signed", signed)
        _set(self, "name", name)
        _set(self, "big_endian", big_endian)
        _set(self, "is_char", is_char)
        _set(self, "is_bool", is_bool)

    def renamed(self, name: str) -> "IntTy":
        """The same integer under another C name (a typedef: ``pid_t`` of ``int``)."""
        return IntTy(self.size, self.signed, name, self.big_endian, self.is_char, self.is_bool)

    def __str__(self) -> str:
        if self.name:
            return self.name
        return f"{'s' if self.signed else 'u'}{self.size * 8}"


class PtrTy(Ty):
    __slots__ = ("target", "space", "size")
    _fields = _compare = __slots__

    def __init__(self, target: Optional[Ty] = None, space: str = "kernel", size: int = 8) -> None:
        _set(self, "target", VoidTy() if target is None else target)
        _set(self, "space", space)  # "kernel" | "user"
        _set(self, "size", size)

    def __str__(self) -> str:
        t = str(self.target)
        return f"{t} *" if not t.endswith("*") else f"{t}*"


class ArrayTy(Ty):
    __slots__ = ("elem", "count")
    _fields = _compare = __slots__

    def __init__(self, elem: Optional[Ty] = None, count: int = 0) -> None:
        _set(self, "elem", IntTy(1) if elem is None else elem)
        _set(self, "count", count)

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.elem.size * self.count

    def __str__(self) -> str:
        return f"{self.elem}[{self.count}]"


class RecordTy(Ty):
    """A struct or union, backed by a BTF type (``btf``: the BTF type object; not compared).

    ``fields`` lists its members when a value of it is held whole (a variable, a map key or
    value, a tuple element: the resolver fills them in so output can print every member):
    ``(name, offset, type, bit_offset, bit_size)``, bit_* ``None`` unless a bitfield.
    ``align`` is its alignment in bytes (0: unknown, guessed from its size).
    """

    __slots__ = ("name", "kind", "size", "btf", "fields", "align")
    _fields = __slots__
    _compare = ("name", "kind", "size")

    def __init__(self, name: str = "", kind: str = "struct", size: int = 0, btf: Any = None,
                 fields: Tuple[Tuple[Any, ...], ...] = (), align: int = 0) -> None:
        _set(self, "name", name)
        _set(self, "kind", kind)  # "struct" | "union"
        _set(self, "size", size)
        _set(self, "btf", btf)
        _set(self, "fields", tuple(fields))
        _set(self, "align", align)

    def with_fields(self, fields: Tuple[Tuple[Any, ...], ...]) -> "RecordTy":
        """The same record with its members listed (see ``fields``)."""
        align = self.align or max([align_of(f[2]) for f in fields] or [1])
        return RecordTy(self.name, self.kind, self.size, self.btf, fields, align)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" if self.name else f"{self.kind} <anon>"


class StrTy(Ty):
    """A NUL-terminated string fetched into the record, at most ``size`` bytes."""

    __slots__ = ("size",)
    _fields = _compare = __slots__

    def __init__(self, size: int = 64) -> None:
        _set(self, "size", size)

    def __str__(self) -> str:
        return f"string[{self.size}]"


class BufTy(Ty):
    """Raw bytes (bpftrace ``buf()``, skb payload views)."""

    __slots__ = ("size",)
    _fields = _compare = __slots__

    def __init__(self, size: int = 64) -> None:
        _set(self, "size", size)

    def __str__(self) -> str:
        return f"buf[{self.size}]"


class StackTy(Ty):
    """A stack trace id / frames: ``space`` "kernel" or "user"."""

    __slots__ = ("space", "size")
    _fields = _compare = __slots__

    def __init__(self, space: str = "kernel", size: int = 8) -> None:
        _set(self, "space", space)
        _set(self, "size", size)

    def __str__(self) -> str:
        return "kstack" if self.space == "kernel" else "ustack"


class TupleTy(Ty):
    """A tuple. Its ``size`` is bpftrace's: the elements laid out as a C struct would lay
    them out (each at its natural alignment, the whole padded to the largest), which is what
    ``sizeof`` of a tuple gives. How a backend stores it is its own affair."""

    __slots__ = ("elems",)
    _fields = _compare = __slots__

    def __init__(self, elems: Tuple[Ty, ...] = ()) -> None:
        _set(self, "elems", elems)

    @property
    def size(self) -> int:  # type: ignore[override]
        off, align = 0, 1
        for e in self.elems:
            a = align_of(e)
            align = max(align, a)
            off = (off + a - 1) // a * a + e.size
        return (off + align - 1) // align * align

    def __str__(self) -> str:
        return "(" + ", ".join(str(e) for e in self.elems) + ")"


class EnumTy(Ty):
    """An enum: printed by name when the value is known (``values``: name -> int)."""

    __slots__ = ("name", "size", "signed", "values")
    _fields = _compare = __slots__

    def __init__(self, name: str = "", size: int = 4, signed: bool = False,
                 values: Tuple[Tuple[str, int], ...] = ()) -> None:
        _set(self, "name", name)
        _set(self, "size", size)
        _set(self, "signed", signed)
        _set(self, "values", values)

    def __str__(self) -> str:
        return f"enum {self.name}"


U8 = IntTy(1, False, "u8")
U16 = IntTy(2, False, "u16")
U32 = IntTy(4, False, "u32")
U64 = IntTy(8, False, "u64")
S8 = IntTy(1, True, "s8")
S16 = IntTy(2, True, "s16")
S32 = IntTy(4, True, "s32")
S64 = IntTy(8, True, "s64")
VOID = VoidTy()
COMM = StrTy(16)


def int_ty(size: int, signed: bool) -> IntTy:
    """The canonical integer type of ``size`` bytes."""
    table = {(1, False): U8, (2, False): U16, (4, False): U32, (8, False): U64,
             (1, True): S8, (2, True): S16, (4, True): S32, (8, True): S64}
    return table.get((size, signed)) or IntTy(size, signed)


def align_of(t: Ty) -> int:
    """The alignment of a value of type ``t`` in bytes, by bpftrace's rule (strings 1,
    records and tuples their largest member's, arrays their element's, other values of
    at most 2 bytes their size, else 4 up to 4 bytes and 8 above)."""
    if isinstance(t, StrTy):
        return 1
    if isinstance(t, TupleTy):
        return max([align_of(e) for e in t.elems] or [1])
    if isinstance(t, RecordTy):
        if t.align:
            return t.align
        if t.fields:
            return max(align_of(f[2]) for f in t.fields)
        size = t.size or 1
        return 8 if size % 8 == 0 else 4 if size % 4 == 0 else 2 if size % 2 == 0 else 1
    if isinstance(t, ArrayTy):
        return align_of(t.elem) if t.size > 2 else max(1, t.size)
    size = t.size
    if size <= 2:
        return max(1, size)
    return 4 if size <= 4 or isinstance(t, BufTy) else 8


def deref_target(t: Optional[Ty]) -> Optional[Ty]:
    """What a pointer or array points to, else ``None``."""
    if isinstance(t, PtrTy):
        return t.target
    if isinstance(t, ArrayTy):
        return t.elem
    return None


class OpaqueTy(Ty):
    """A value user space renders: ``kind`` in ksym usym inet username strerror mac timestamp.

    The kernel side carries raw bytes (an address, a uid, an address family and
    16 address bytes for ``inet``); output turns them into text the way bpftrace
    does (``ksym(ip)`` -> ``vfs_read``, ``ntop(a)`` -> ``127.0.0.1``). ``fmt`` is
    ``strftime``'s format (``timestamp``): user space formats the time with it.
    """

    __slots__ = ("kind", "size", "fmt")
    _fields = _compare = __slots__

    def __init__(self, kind: str = "ksym", size: int = 8, fmt: str = "") -> None:
        _set(self, "kind", kind)
        _set(self, "size", size)
        _set(self, "fmt", fmt)

    def __str__(self) -> str:
        return self.kind


INET = OpaqueTy("inet", 24)  # u64 family | 16 address bytes
