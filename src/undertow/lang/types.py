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

from undertow.dclass import dataclass, field
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Optional, Tuple


class Ty:
    """Base of IR types."""

    size: int = 0

    def is_int(self) -> bool:
        return isinstance(self, IntTy)

    def is_pointer(self) -> bool:
        return isinstance(self, PtrTy)

    def is_string(self) -> bool:
        return isinstance(self, StrTy)

    def is_record(self) -> bool:
        return isinstance(self, RecordTy)


@dataclass(frozen=True)
class VoidTy(Ty):
    size: int = 0

    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True)
class IntTy(Ty):
    """An integer. ``name`` is the C spelling when known (``u32``, ``__be32``, ``pid_t``).

    ``big_endian`` marks network-order types (``__be16``/``__be32``) so output can
    byte-swap them; ``is_char`` marks ``char`` so arrays of it print as strings.
    """

    size: int = 8
    signed: bool = False
    name: str = ""
    big_endian: bool = False
    is_char: bool = False
    is_bool: bool = False

    def __str__(self) -> str:
        if self.name:
            return self.name
        return f"{'s' if self.signed else 'u'}{self.size * 8}"


@dataclass(frozen=True)
class PtrTy(Ty):
    target: Ty = field(default_factory=VoidTy)
    space: str = "kernel"  # "kernel" | "user"
    size: int = 8

    def __str__(self) -> str:
        t = str(self.target)
        return f"{t} *" if not t.endswith("*") else f"{t}*"


@dataclass(frozen=True)
class ArrayTy(Ty):
    elem: Ty = field(default_factory=lambda: IntTy(1))
    count: int = 0

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.elem.size * self.count

    def __str__(self) -> str:
        return f"{self.elem}[{self.count}]"


@dataclass(frozen=True)
class RecordTy(Ty):
    """A struct or union, backed by a BTF type (``btf``: the BTF type object)."""

    name: str = ""
    kind: str = "struct"  # "struct" | "union"
    size: int = 0
    btf: Any = field(default=None, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" if self.name else f"{self.kind} <anon>"


@dataclass(frozen=True)
class StrTy(Ty):
    """A NUL-terminated string fetched into the record, at most ``size`` bytes."""

    size: int = 64

    def __str__(self) -> str:
        return f"string[{self.size}]"


@dataclass(frozen=True)
class BufTy(Ty):
    """Raw bytes (bpftrace ``buf()``, skb payload views)."""

    size: int = 64

    def __str__(self) -> str:
        return f"buf[{self.size}]"


@dataclass(frozen=True)
class StackTy(Ty):
    """A stack trace id / frames: ``space`` "kernel" or "user"."""

    space: str = "kernel"
    size: int = 8

    def __str__(self) -> str:
        return "kstack" if self.space == "kernel" else "ustack"


@dataclass(frozen=True)
class TupleTy(Ty):
    elems: Tuple[Ty, ...] = ()

    @property
    def size(self) -> int:  # type: ignore[override]
        return sum(e.size for e in self.elems)

    def __str__(self) -> str:
        return "(" + ", ".join(str(e) for e in self.elems) + ")"


@dataclass(frozen=True)
class EnumTy(Ty):
    """An enum: printed by name when the value is known (``values``: name -> int)."""

    name: str = ""
    size: int = 4
    signed: bool = False
    values: Tuple[Tuple[str, int], ...] = ()

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


def deref_target(t: Optional[Ty]) -> Optional[Ty]:
    """What a pointer or array points to, else ``None``."""
    if isinstance(t, PtrTy):
        return t.target
    if isinstance(t, ArrayTy):
        return t.elem
    return None


@dataclass(frozen=True)
class OpaqueTy(Ty):
    """A value user space renders: ``kind`` in ksym usym inet username strerror mac timestamp.

    The kernel side carries raw bytes (an address, a uid, an address family and
    16 address bytes for ``inet``); output turns them into text the way bpftrace
    does (``ksym(ip)`` -> ``vfs_read``, ``ntop(a)`` -> ``127.0.0.1``).
    """

    kind: str = "ksym"
    size: int = 8
    #: ``strftime``'s format (``timestamp``): user space formats the time with it
    fmt: str = ""

    def __str__(self) -> str:
        return self.kind


INET = OpaqueTy("inet", 24)  # u64 family | 16 address bytes
