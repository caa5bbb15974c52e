"""Resolve and type-check a :class:`~undertow.lang.ir.Program` against one kernel.

After :func:`resolve`, every expression has ``.type`` (a :mod:`undertow.lang.types`
type), every :class:`ir.Member` its byte ``offset`` (and ``bit_offset``/``bit_size``
for bitfields), every :class:`ir.Arg` both ``index`` and ``name`` (when BTF knows
the function), registers their ftrace spelling, uprobe attach points their
``path`` and ``file_offset``, wildcard tracepoints one probe per event, and every
:class:`ir.EmitField` a default ``fmt`` taken from its type. Backends never look
a name up again.

Kernel facts come through :class:`undertow.kernel.Kernel`:

- function prototypes, struct layouts and casts from vmlinux BTF
  (``/sys/kernel/btf/vmlinux``, via :meth:`Kernel.btf`), seen through the small
  :class:`TypeInfo` interface so tests can declare types in Python;
- tracepoint fields from ``events/<group>/<event>/format`` (:meth:`Kernel.tracefs`);
- uprobe file offsets from the ELF file (:mod:`undertow.kernel.elf`);
- register names from :mod:`undertow.kernel.arch`;
- whether kprobes exist from :meth:`Kernel.features` (``kprobe_events``): a
  ``p``/``r`` line on a kernel without them fails here, before anything touches
  tracefs, naming a tracepoint that carries the same data.

The type check refuses what surftrace computed silently wrong: ``->`` on a
pointer to a pointer (``struct sk_buff **``), ``->`` on a non-pointer, a member
of a non-struct, an index past a fixed array, ``$retval->f_pos`` when the
function does not return a pointer to a struct, an argument past the
function's parameters.
"""

from __future__ import annotations

import re
from undertow import dclass
from undertow.dclass import dataclass
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import (
    AttachUnavailableError, ELFError, ResolveError, SourceError, Span, TypeCheckError, UndertowError,
    did_you_mean,
)
from . import ir
from .types import (
    COMM, S32, S64, U8, U16, U32, U64, ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, StackTy, StrTy, Ty,
    VoidTy, int_ty,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..kernel.arch import Arch

__all__ = [
    "resolve", "TypeInfo", "FuncSig", "MemberInfo", "DeclTypes", "BtfTypes", "KPROBE_ALTERNATIVES",
    "kprobe_alternative", "check_kprobes", "default_format", "SKB_HEADERS", "format_field_type",
]

# --------------------------------------------------------------------------- type information


@dataclass
class FuncSig:
    """A function's parameters (name, type) and return type, from BTF FUNC_PROTO."""

    name: str
    params: List[Tuple[str, Ty]]
    ret: Ty


@dataclass
class MemberInfo:
    """Where a member lives: byte ``offset`` from the record start, its type, and for a
    bitfield the ``bit_offset`` within the ``type.size`` unit at ``offset`` and ``bit_size``.
    ``path`` lists the names crossed (anonymous members as ``""``)."""

    offset: int
    type: Ty
    bit_offset: Optional[int] = None
    bit_size: Optional[int] = None
    path: Tuple[str, ...] = ()


class TypeInfo:
    """What resolve asks about types. :class:`BtfTypes` answers from kernel BTF,
    :class:`DeclTypes` from declarations in Python (uapi headers, tests)."""

    def func(self, name: str) -> Optional[FuncSig]:
        """The prototype of kernel function ``name``, or None when unknown."""
        return None

    def parse_type(self, text: str) -> Ty:
        """A C type as written in a cast (``struct sock *``, ``u32``, ``char *``).

        Raises :class:`LookupError` whose ``args[1]`` (when present) lists close names.
        """
        raise LookupError(f"unknown type '{text}'")

    def member(self, rec: RecordTy, name: str) -> Optional[MemberInfo]:
        """Member ``name`` of ``rec``, searching through anonymous struct/union members."""
        return None

    def member_names(self, rec: RecordTy) -> List[str]:
        """Every member name reachable from ``rec`` without a name (for did-you-mean)."""
        return []

    def var(self, name: str) -> Optional[Ty]:
        """The type of kernel variable ``name`` (BTF VAR), or None."""
        return None

    def complete(self, rec: RecordTy) -> RecordTy:
        """A forward-declared record replaced by its definition when known."""
        return rec


_BASE_TYPES: Dict[str, Ty] = {
    "char": IntTy(1, True, "char", is_char=True), "signed char": IntTy(1, True, "signed char"),
    "unsigned char": IntTy(1, False, "unsigned char"),
    "short": IntTy(2, True, "short"), "unsigned short": IntTy(2, False, "unsigned short"),
    "int": IntTy(4, True, "int"), "unsigned int": IntTy(4, False, "unsigned int"),
    "unsigned": IntTy(4, False, "unsigned int"), "signed": IntTy(4, True, "int"),
    "long": IntTy(8, True, "long"), "unsigned long": IntTy(8, False, "unsigned long"),
    "long long": IntTy(8, True, "long long"), "unsigned long long": IntTy(8, False, "unsigned long long"),
    "bool": IntTy(1, False, "bool", is_bool=True), "_Bool": IntTy(1, False, "_Bool", is_bool=True),
    "u8": IntTy(1, False, "u8"), "u16": IntTy(2, False, "u16"), "u32": IntTy(4, False, "u32"),
    "u64": IntTy(8, False, "u64"), "s8": IntTy(1, True, "s8"), "s16": IntTy(2, True, "s16"),
    "s32": IntTy(4, True, "s32"), "s64": IntTy(8, True, "s64"),
    "__u8": IntTy(1, False, "__u8"), "__u16": IntTy(2, False, "__u16"), "__u32": IntTy(4, False, "__u32"),
    "__u64": IntTy(8, False, "__u64"), "__s8": IntTy(1, True, "__s8"), "__s16": IntTy(2, True, "__s16"),
    "__s32": IntTy(4, True, "__s32"), "__s64": IntTy(8, True, "__s64"),
    "__be16": IntTy(2, False, "__be16", big_endian=True), "__be32": IntTy(4, False, "__be32", big_endian=True),
    "__be64": IntTy(8, False, "__be64", big_endian=True),
    "__le16": IntTy(2, False, "__le16"), "__le32": IntTy(4, False, "__le32"), "__le64": IntTy(8, False, "__le64"),
    "__sum16": IntTy(2, False, "__sum16"), "__wsum": IntTy(4, False, "__wsum"),
    "size_t": IntTy(8, False, "size_t"), "ssize_t": IntTy(8, True, "ssize_t"),
    "pid_t": IntTy(4, True, "pid_t"), "uid_t": IntTy(4, False, "uid_t"), "gid_t": IntTy(4, False, "gid_t"),
    "umode_t": IntTy(2, False, "umode_t"), "loff_t": IntTy(8, True, "loff_t"),
    "dev_t": IntTy(4, False, "dev_t"), "gfp_t": IntTy(4, False, "gfp_t"),
    "uint8": IntTy(1, False, "uint8"), "uint16": IntTy(2, False, "uint16"), "uint32": IntTy(4, False, "uint32"),
    "uint64": IntTy(8, False, "uint64"), "int8": IntTy(1, True, "int8"), "int16": IntTy(2, True, "int16"),
    "int32": IntTy(4, True, "int32"), "int64": IntTy(8, True, "int64"),
    "uint8_t": IntTy(1, False, "uint8_t"), "uint16_t": IntTy(2, False, "uint16_t"),
    "uint32_t": IntTy(4, False, "uint32_t"), "uint64_t": IntTy(8, False, "uint64_t"),
    "int8_t": IntTy(1, True, "int8_t"), "int16_t": IntTy(2, True, "int16_t"),
    "int32_t": IntTy(4, True, "int32_t"), "int64_t": IntTy(8, True, "int64_t"),
    "void": VoidTy(),
}

_QUALIFIERS = {"const", "volatile", "restrict", "__user", "__kernel", "__rcu", "__iomem", "__percpu",
               "__force", "__attribute__"}


def _split_type_text(text: str) -> Tuple[List[str], int, Optional[int]]:
    """``"const struct sock *"`` -> (["struct", "sock"], 1 pointer level, array count or None)."""
    t = text.strip()
    count: Optional[int] = None
    m = re.search(r"\[(\d*)\]\s*$", t)
    if m:
        count = int(m.group(1)) if m.group(1) else 0
        t = t[:m.start()]
    stars = t.count("*")
    words = [w for w in t.replace("*", " ").split() if w not in _QUALIFIERS]
    return words, stars, count


def _user_space(text: str) -> bool:
    return "__user" in text.split()


class DeclTypes(TypeInfo):
    """Types declared in Python: base C types plus records given as member lists.

    ``records`` maps ``"struct iphdr"`` to ``(size, [(name, offset, Ty), ...])``,
    with ``(name, offset, Ty, bit_offset, bit_size)`` for bitfields and ``""`` as
    the name of an anonymous member (whose Ty is a RecordTy declared too).
    ``funcs`` maps a function name to a :class:`FuncSig`.
    """

    def __init__(self, records: Optional[Dict[str, Tuple[int, List[tuple]]]] = None,
                 funcs: Optional[Dict[str, FuncSig]] = None, typedefs: Optional[Dict[str, Ty]] = None,
                 variables: Optional[Dict[str, Ty]] = None) -> None:
        self.records: Dict[str, Tuple[int, List[tuple]]] = dict(records or {})
        self.funcs = dict(funcs or {})
        self.typedefs = dict(typedefs or {})
        self.variables = dict(variables or {})

    def record(self, key: str) -> RecordTy:
        """The RecordTy for ``"struct name"`` (an incomplete one when undeclared)."""
        kind, _, name = key.partition(" ")
        size = self.records[key][0] if key in self.records else 0
        return RecordTy(name, kind, size, btf=key)

    def func(self, name: str) -> Optional[FuncSig]:
        sig = self.funcs.get(name)
        if sig is None:
            return None
        return FuncSig(sig.name, [(n, self._full(t)) for n, t in sig.params], self._full(sig.ret))

    def var(self, name: str) -> Optional[Ty]:
        v = self.variables.get(name)
        return self._full(v) if v is not None else None

    def parse_type(self, text: str) -> Ty:
        words, stars, count = _split_type_text(text)
        if not words:
            raise LookupError(f"no type in '{text}'")
        key = " ".join(words)
        base: Ty
        if words[0] in ("struct", "union"):
            if len(words) != 2:
                raise LookupError(f"bad type '{text}'")
            if key not in self.records and stars == 0:
                raise LookupError(f"unknown type '{key}'", self._close(key))
            if key not in self.records:
                raise LookupError(f"unknown type '{key}'", self._close(key))
            base = self.record(key)
        elif words[0] == "enum":
            base = EnumTy(words[1] if len(words) > 1 else "", 4)
        elif key in self.typedefs:
            base = self.typedefs[key]
        elif key in _BASE_TYPES:
            base = _BASE_TYPES[key]
        else:
            raise LookupError(f"unknown type '{key}'", self._close(key))
        return _wrap(base, stars, count, "user" if _user_space(text) else "kernel")

    def _close(self, key: str) -> List[str]:
        from ..errors import closest

        return closest(key, list(self.records) + list(self.typedefs) + list(_BASE_TYPES))

    def _members(self, rec: RecordTy) -> List[tuple]:
        key = rec.btf if isinstance(rec.btf, str) else f"{rec.kind} {rec.name}"
        return self.records.get(key, (0, []))[1]

    def _full(self, t: Ty) -> Ty:
        if isinstance(t, RecordTy):
            return self.complete(t)
        if isinstance(t, PtrTy):
            return PtrTy(self._full(t.target), t.space)
        if isinstance(t, ArrayTy):
            return ArrayTy(self._full(t.elem), t.count)
        return t

    def member(self, rec: RecordTy, name: str) -> Optional[MemberInfo]:
        for m in self._members(rec):
            mname, off, ty = m[0], m[1], self._full(m[2])
            if mname == name:
                return MemberInfo(off, ty, m[3] if len(m) > 3 else None, m[4] if len(m) > 4 else None, (name,))
            if mname == "" and isinstance(ty, RecordTy):
                inner = self.member(ty, name)
                if inner is not None:
                    return MemberInfo(off + inner.offset, inner.type, inner.bit_offset, inner.bit_size,
                                      ("",) + inner.path)
        return None

    def member_names(self, rec: RecordTy) -> List[str]:
        out: List[str] = []
        for m in self._members(rec):
            if m[0]:
                out.append(m[0])
            elif isinstance(m[2], RecordTy):
                out += self.member_names(m[2])
        return out

    def complete(self, rec: RecordTy) -> RecordTy:
        key = f"{rec.kind} {rec.name}"
        if rec.size == 0 and key in self.records:
            return self.record(key)
        return rec


def _wrap(base: Ty, stars: int, count: Optional[int], space: str) -> Ty:
    t = base
    for i in range(stars):
        # the outermost pointer carries the address space written (char __user *)
        t = PtrTy(t, space if i == 0 else "kernel")
    if count is not None:
        t = ArrayTy(t, count)
    return t


class BtfTypes(TypeInfo):
    """:class:`TypeInfo` over kernel BTF (:class:`undertow.kernel.btf.BTF`).

    Converts BTF types to IR types: ints -> IntTy (``__be16/__be32/__be64``
    typedefs mark ``big_endian``), pointers -> PtrTy (``space="user"`` under a
    ``btf_type_tag("user")``, i.e. ``__user`` on kernels built with type tags),
    arrays -> ArrayTy, structs/unions -> RecordTy (``btf`` = the BTF type),
    enums -> EnumTy. Typedef names are kept on integers (``pid_t``).
    """

    def __init__(self, btf: Any) -> None:
        self.btf = btf
        self._funcs: Dict[str, Optional[FuncSig]] = {}

    # -- conversion: the BTF reader is duck-typed on the attributes kernel/btf.py exposes
    def to_ty(self, t: Any, depth: int = 0) -> Ty:
        if t is None or depth > 32:
            return VoidTy()
        from ..kernel import btf as kbtf  # noqa: F401  (import check: the reader is present)

        kind = _btf_kind(t)
        name = getattr(t, "name", "") or ""
        if kind == "typedef":
            target = self._target(t)
            if name in ("__be16", "__be32", "__be64"):
                inner = self.to_ty(target, depth + 1)
                return IntTy(inner.size or int(name[4:]) // 8, False, name, big_endian=True)
            inner = self.to_ty(target, depth + 1)
            if isinstance(inner, IntTy) and not inner.is_char and not inner.is_bool:
                return dclass.replace(inner, name=name)
            return inner
        if kind in ("const", "volatile", "restrict", "type_tag", "decl_tag"):
            return self.to_ty(self._target(t), depth + 1)
        if kind == "int":
            size = getattr(t, "size", 0) or 0
            enc = getattr(t, "encoding", 0)
            signed = bool(getattr(t, "signed", None)) if hasattr(t, "signed") else bool(enc & 1) if isinstance(enc, int) else False
            is_char = bool(getattr(t, "is_char", False)) or (isinstance(enc, int) and bool(enc & 2)) or name in ("char", "signed char", "unsigned char")
            is_bool = bool(getattr(t, "is_bool", False)) or (isinstance(enc, int) and bool(enc & 4)) or name == "_Bool"
            return IntTy(size, signed, name, is_char=is_char and name == "char" or is_char, is_bool=is_bool)
        if kind == "ptr":
            space = "user" if self._has_user_tag(t) else "kernel"
            return PtrTy(self.to_ty(self._target(t), depth + 1), space)
        if kind == "array":
            elem = getattr(t, "elem", None)
            if elem is None or isinstance(elem, int):
                elem = self._resolve_id(getattr(t, "elem_type", elem))
            count = getattr(t, "nelems", None)
            if count is None:
                count = getattr(t, "count", 0)
            return ArrayTy(self.to_ty(elem, depth + 1), int(count or 0))
        if kind in ("struct", "union"):
            return RecordTy(name, kind, getattr(t, "size", 0) or 0, btf=t)
        if kind in ("fwd",):
            union = bool(getattr(t, "kind_flag", False))
            rec = RecordTy(name, "union" if union else "struct", 0, btf=t)
            return self.complete(rec)
        if kind in ("enum", "enum64"):
            values = tuple((v[0], v[1]) for v in (getattr(t, "values", None) or ()) if isinstance(v, tuple))
            size = getattr(t, "size", 4) or 4
            return EnumTy(name, size, bool(getattr(t, "signed", False)), values)
        if kind in ("func_proto", "func"):
            return PtrTy(VoidTy())  # a function pointer reads as an address
        if kind == "float":
            return IntTy(getattr(t, "size", 8) or 8, True, name)
        return VoidTy()

    def _resolve_id(self, tid: Any) -> Any:
        if isinstance(tid, int):
            for meth in ("type_by_id", "get", "type"):
                f = getattr(self.btf, meth, None)
                if callable(f):
                    try:
                        return f(tid)
                    except Exception:  # noqa: BLE001 - try the next accessor name
                        continue
        return tid

    def _target(self, t: Any) -> Any:
        for attr in ("target", "ref", "type"):
            v = getattr(t, attr, None)
            if v is not None and not isinstance(v, str):
                return self._resolve_id(v)
        tid = getattr(t, "type_id", None)
        return self._resolve_id(tid) if tid is not None else None

    def _has_user_tag(self, t: Any) -> bool:
        cur = self._target(t)
        for _ in range(8):
            if cur is None:
                return False
            k = _btf_kind(cur)
            if k == "type_tag" and getattr(cur, "name", "") == "user":
                return True
            if k not in ("type_tag", "const", "volatile", "restrict"):
                return False
            cur = self._target(cur)
        return False

    # -- TypeInfo
    def func(self, name: str) -> Optional[FuncSig]:
        if name in self._funcs:
            return self._funcs[name]
        sig: Optional[FuncSig] = None
        try:
            proto = self.btf.func_proto(name)
        except (LookupError, UndertowError):
            proto = None
        if proto is not None:
            params = [(pn or f"arg{i}", self.to_ty(pt)) for i, (pn, pt) in enumerate(proto.params)]
            sig = FuncSig(name, params, self.to_ty(getattr(proto, "ret", None)))
        self._funcs[name] = sig
        return sig

    def parse_type(self, text: str) -> Ty:
        words, stars, count = _split_type_text(text)
        key = " ".join(words)
        if key in _BASE_TYPES and key not in ("__be16", "__be32", "__be64"):
            base = _BASE_TYPES[key]
        else:
            try:
                base = self.to_ty(self.btf.parse_type(key))
            except (LookupError, UndertowError) as e:
                hints = getattr(e, "hints", [])
                close = [h for h in hints if h]
                raise LookupError(f"unknown type '{key}'", _names_in_hint(close)) from None
        return _wrap(base, stars, count, "user" if _user_space(text) else "kernel")

    def member(self, rec: RecordTy, name: str) -> Optional[MemberInfo]:
        rec = self.complete(rec)
        if rec.btf is None:
            return None
        try:
            mp = self.btf.member(rec.btf, name)
        except (LookupError, UndertowError):
            return None
        if mp is None:
            return None
        off = getattr(mp, "offset", 0)
        bit_size = getattr(mp, "bitfield_size", None) or None
        bit_off = getattr(mp, "bit_offset", None)
        mty = self.to_ty(getattr(mp, "type", None))
        path = tuple(getattr(mp, "path", ()) or (name,))
        if bit_size:
            # bit_offset counts from the start of the record (BTF kind_flag members);
            # express it within the loaded unit of the member's size.
            unit = mty.size if mty.size in (1, 2, 4, 8) else 4
            total = (bit_off if bit_off is not None else off * 8)
            byte = (total // (unit * 8)) * unit
            return MemberInfo(byte, mty, total - byte * 8, bit_size, path)
        return MemberInfo(off, mty, None, None, path)

    def member_names(self, rec: RecordTy) -> List[str]:
        rec = self.complete(rec)
        out: List[str] = []
        try:
            members = self.btf.members(rec.btf)
        except Exception:  # noqa: BLE001 - only used for hints
            return out
        for m in members or ():
            mname = m[0] if isinstance(m, tuple) else getattr(m, "name", "")
            if mname:
                out.append(mname)
            else:
                mt = m[1] if isinstance(m, tuple) else getattr(m, "type", None)
                inner = self.to_ty(mt)
                if isinstance(inner, RecordTy):
                    out += self.member_names(inner)
        return out

    def var(self, name: str) -> Optional[Ty]:
        try:
            v = self.btf.find(name, "var")
        except (LookupError, UndertowError, TypeError):
            return None
        if v is None:
            return None
        return self.to_ty(self._target(v))

    def complete(self, rec: RecordTy) -> RecordTy:
        if rec.size or not rec.name:
            return rec
        try:
            t = self.btf.find(rec.name, rec.kind)
        except (LookupError, UndertowError, TypeError):
            return rec
        if t is None:
            return rec
        full = self.to_ty(t)
        return full if isinstance(full, RecordTy) else rec


def _btf_kind(t: Any) -> str:
    k = getattr(t, "kind", "")
    if not isinstance(k, str):
        k = getattr(k, "name", str(k))
    k = k.lower()
    if k.startswith("btf_kind_"):
        k = k[len("btf_kind_"):]
    return k


def _names_in_hint(hints: Sequence[str]) -> List[str]:
    out: List[str] = []
    for h in hints:
        m = re.match(r"did you mean (.*)\?$", h)
        if m:
            out += [x.strip() for x in re.split(r",| or ", m.group(1)) if x.strip()]
    return out


# --------------------------------------------------------------------------- uapi headers (stable layouts)

# Network headers the skb syntax names. Their layouts are uapi (include/uapi/linux/
# if_ether.h, ip.h, ipv6.h, tcp.h, udp.h, icmp.h, icmpv6.h) and never change, so
# they are known without BTF; BTF wins when present.
_BE16 = _BASE_TYPES["__be16"]
_BE32 = _BASE_TYPES["__be32"]
_SUM16 = _BASE_TYPES["__sum16"]
_U8, _U16 = _BASE_TYPES["__u8"], _BASE_TYPES["__u16"]
UAPI_HEADERS: Dict[str, Tuple[int, List[tuple]]] = {
    "struct ethhdr": (14, [("h_dest", 0, ArrayTy(_BASE_TYPES["unsigned char"], 6)),
                           ("h_source", 6, ArrayTy(_BASE_TYPES["unsigned char"], 6)),
                           ("h_proto", 12, _BE16)]),
    # little-endian bitfield order: ihl is the low nibble of byte 0
    "struct iphdr": (20, [("ihl", 0, _U8, 0, 4), ("version", 0, _U8, 4, 4), ("tos", 1, _U8),
                          ("tot_len", 2, _BE16), ("id", 4, _BE16), ("frag_off", 6, _BE16),
                          ("ttl", 8, _U8), ("protocol", 9, _U8), ("check", 10, _SUM16),
                          ("saddr", 12, _BE32), ("daddr", 16, _BE32)]),
    "struct in6_addr": (16, [("s6_addr", 0, ArrayTy(_U8, 16)), ("s6_addr16", 0, ArrayTy(_BE16, 8)),
                             ("s6_addr32", 0, ArrayTy(_BE32, 4))]),
    "struct tcphdr": (20, [("source", 0, _BE16), ("dest", 2, _BE16), ("seq", 4, _BE32),
                           ("ack_seq", 8, _BE32), ("res1", 12, _U16, 0, 4), ("doff", 12, _U16, 4, 4),
                           ("fin", 12, _U16, 8, 1), ("syn", 12, _U16, 9, 1), ("rst", 12, _U16, 10, 1),
                           ("psh", 12, _U16, 11, 1), ("ack", 12, _U16, 12, 1), ("urg", 12, _U16, 13, 1),
                           ("ece", 12, _U16, 14, 1), ("cwr", 12, _U16, 15, 1),
                           ("window", 14, _BE16), ("check", 16, _SUM16), ("urg_ptr", 18, _BE16)]),
    "struct udphdr": (8, [("source", 0, _BE16), ("dest", 2, _BE16), ("len", 4, _BE16), ("check", 6, _SUM16)]),
    "struct icmphdr": (8, [("type", 0, _U8), ("code", 1, _U8), ("checksum", 2, _SUM16),
                           ("id", 4, _BE16), ("sequence", 6, _BE16), ("gateway", 4, _BE32)]),
    "struct icmp6hdr": (8, [("icmp6_type", 0, _U8), ("icmp6_code", 1, _U8), ("icmp6_cksum", 2, _SUM16),
                            ("icmp6_identifier", 4, _BE16), ("icmp6_sequence", 6, _BE16)]),
}
UAPI_HEADERS["struct ipv6hdr"] = (40, [
    ("priority", 0, _U8, 0, 4), ("version", 0, _U8, 4, 4), ("flow_lbl", 1, ArrayTy(_U8, 3)),
    ("payload_len", 4, _BE16), ("nexthdr", 6, _U8), ("hop_limit", 7, _U8),
    ("saddr", 8, RecordTy("in6_addr", "struct", 16, btf="struct in6_addr")),
    ("daddr", 24, RecordTy("in6_addr", "struct", 16, btf="struct in6_addr"))])

#: Header struct -> the layer (and so the sk_buff header offset) it sits at.
SKB_HEADERS = {"ethhdr": "l2", "iphdr": "l3", "ipv6hdr": "l3", "tcphdr": "l4", "udphdr": "l4",
               "icmphdr": "l4", "icmp6hdr": "l4"}


class _Layered(TypeInfo):
    """First answer from ``primary`` (BTF), else from ``fallback`` (uapi declarations)."""

    def __init__(self, primary: TypeInfo, fallback: TypeInfo) -> None:
        self.primary, self.fallback = primary, fallback

    def func(self, name: str) -> Optional[FuncSig]:
        return self.primary.func(name)

    def parse_type(self, text: str) -> Ty:
        try:
            return self.primary.parse_type(text)
        except LookupError as e:
            try:
                return self.fallback.parse_type(text)
            except LookupError:
                raise e from None

    def _owner(self, rec: RecordTy) -> TypeInfo:
        return self.fallback if isinstance(rec.btf, str) else self.primary

    def member(self, rec: RecordTy, name: str) -> Optional[MemberInfo]:
        return self._owner(rec).member(rec, name)

    def member_names(self, rec: RecordTy) -> List[str]:
        return self._owner(rec).member_names(rec)

    def var(self, name: str) -> Optional[Ty]:
        return self.primary.var(name)

    def complete(self, rec: RecordTy) -> RecordTy:
        return self._owner(rec).complete(rec)


# --------------------------------------------------------------------------- kprobe alternatives

#: Kernel function -> a tracepoint that carries the same data (for kernels without kprobes).
KPROBE_ALTERNATIVES: Dict[str, Tuple[str, str]] = {
    "tcp_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr/daddr/sport/dport"),
    "tcp_v4_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr/daddr/sport/dport"),
    "tcp_v6_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr_v6/daddr_v6"),
    "inet_csk_accept": ("sock:inet_sock_set_state", "newstate==TCP_ESTABLISHED on accepted sockets"),
    "tcp_set_state": ("sock:inet_sock_set_state", "oldstate/newstate and addresses"),
    "tcp_retransmit_skb": ("tcp:tcp_retransmit_skb", "addresses and ports"),
    "tcp_v4_send_reset": ("tcp:tcp_send_reset", "addresses and ports"),
    "do_sys_openat2": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "do_sys_open": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "do_filp_open": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "_do_fork": ("sched:sched_process_fork", "parent and child comm/pid"),
    "do_fork": ("sched:sched_process_fork", "parent and child comm/pid"),
    "kernel_clone": ("sched:sched_process_fork", "parent and child comm/pid"),
    "copy_process": ("task:task_newtask", "pid, comm, clone_flags"),
    "do_exit": ("sched:sched_process_exit", "comm, pid, prio"),
    "do_execve": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "do_execveat_common": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "bprm_execve": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "__netif_receive_skb_core": ("net:netif_receive_skb", "skbaddr, len, name"),
    "netif_receive_skb": ("net:netif_receive_skb", "skbaddr, len, name"),
    "__netif_receive_skb": ("net:netif_receive_skb", "skbaddr, len, name"),
    "dev_queue_xmit": ("net:net_dev_queue", "skbaddr, len, name"),
    "__dev_queue_xmit": ("net:net_dev_queue", "skbaddr, len, name"),
    "kfree_skb": ("skb:kfree_skb", "skbaddr, location, protocol, reason"),
    "kfree_skb_reason": ("skb:kfree_skb", "skbaddr, location, protocol, reason"),
    "vfs_write": ("syscalls:sys_enter_write", "fd, buf, count"),
    "vfs_read": ("syscalls:sys_enter_read", "fd, buf, count"),
    "do_unlinkat": ("syscalls:sys_enter_unlinkat", "dfd, pathname, flag"),
    "try_to_wake_up": ("sched:sched_waking", "comm, pid, prio, target_cpu"),
    "__schedule": ("sched:sched_switch", "prev/next comm and pid"),
    "schedule": ("sched:sched_switch", "prev/next comm and pid"),
    "wake_up_new_task": ("sched:sched_wakeup_new", "comm, pid, prio, target_cpu"),
    "__kmalloc": ("kmem:kmalloc", "call_site, ptr, bytes_req, bytes_alloc"),
    "kmem_cache_alloc": ("kmem:kmem_cache_alloc", "call_site, ptr, bytes_req"),
    "kfree": ("kmem:kfree", "call_site, ptr"),
    "handle_mm_fault": ("exceptions:page_fault_user", "address, ip, error_code"),
    "signal_generate": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "__send_signal": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "do_send_sig_info": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "udp_sendmsg": ("syscalls:sys_enter_sendto", "fd, buff, len, addr"),
    "tcp_sendmsg": ("syscalls:sys_enter_sendto", "fd, buff, len, addr"),
    "inet_bind": ("syscalls:sys_enter_bind", "fd, umyaddr, addrlen"),
    "inet_listen": ("syscalls:sys_enter_listen", "fd, backlog"),
    "__sys_connect": ("syscalls:sys_enter_connect", "fd, uservaddr, addrlen"),
    "__sys_accept4": ("syscalls:sys_exit_accept4", "ret"),
    "load_module": ("module:module_load", "name, taints"),
    "do_init_module": ("module:module_load", "name, taints"),
    "blk_mq_start_request": ("block:block_rq_issue", "dev, sector, nr_sector, rwbs, comm"),
    "blk_account_io_done": ("block:block_rq_complete", "dev, sector, nr_sector, rwbs, error"),
}

_SYSCALL_PREFIXES = ("__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_", "ksys_", "sys_")


def kprobe_alternative(symbol: str, ret: bool = False) -> Optional[Tuple[str, str]]:
    """A tracepoint carrying what a kprobe on ``symbol`` would see: ``(group:event, what)``."""
    if symbol in KPROBE_ALTERNATIVES:
        return KPROBE_ALTERNATIVES[symbol]
    for prefix in _SYSCALL_PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            name = symbol[len(prefix):]
            if ret:
                return (f"syscalls:sys_exit_{name}", "the return value")
            return (f"syscalls:sys_enter_{name}", "the syscall's arguments")
    return None


def check_kprobes(kernel: "Kernel", probe: ir.Probe, ap: ir.AttachPoint) -> None:
    """Raise :class:`AttachUnavailableError` when ``ap`` (a kprobe/kretprobe) cannot exist
    on ``kernel``: no ``kprobe_events`` (CONFIG_KPROBE_EVENTS). Reads the cached
    feature probes only; nothing is written to tracefs. Unknown -> no error."""
    try:
        feats = kernel.features()
        feat = feats.get("kprobe_events")
    except UndertowError:
        return
    if feat is None or feat.available is not False:
        return
    what = "kretprobe" if ap.kind == "kretprobe" else "kprobe"
    hints: List[str] = []
    alt = kprobe_alternative(ap.target, ret=ap.kind == "kretprobe")
    if alt is not None:
        event, data = alt
        exists = _event_exists(kernel, event)
        if exists is not False:
            g, _, e = event.partition(":")
            hints.append(f"the tracepoint {event} carries the same data ({data}): try 'e {g}/{e}'")
    bpf_opts = []
    for name, label in (("bpf_fentry", "fentry"), ("bpf_fexit", "fexit"), ("bpf_raw_tracepoint", "raw tracepoints"),
                        ("bpf_tp_btf", "tp_btf")):
        try:
            if feats.available(name):
                bpf_opts.append(label)
        except Exception:  # noqa: BLE001 - hints only
            pass
    if bpf_opts:
        hints.append("the BPF backend can attach here with: " + ", ".join(bpf_opts))
    hints.append("'undertow list tracepoint:*' lists the tracepoints of this kernel")
    reason = feat.reason or "no kprobe_events"
    if "kprobe support" in reason:
        reason = reason.replace("the kernel has no kprobe support", "this kernel has no kprobe support")
    else:
        reason = f"this kernel has no kprobe support ({reason})"
    raise AttachUnavailableError(
        "kprobe_events",
        f"cannot put a {what} on {ap.target}: {reason}",
        source=probe.source, span=ap.span, origin=probe.origin, hints=hints)


def _event_exists(kernel: "Kernel", event: str) -> Optional[bool]:
    try:
        t = kernel.tracefs(mount=False)
    except Exception:  # noqa: BLE001 - unknown
        return None
    g, _, e = event.partition(":")
    try:
        return bool(t.has_event(g, e))
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- tracepoint fields


def format_field_type(f: Any, group: str = "") -> Ty:
    """The IR type of a tracepoint format field (:class:`undertow.kernel.formats.Field`).

    ``char[N]`` / ``__data_loc char[]`` -> StrTy; ``const char *`` in a
    ``syscalls`` event -> a user pointer to char (syscall arguments are user
    memory); other pointers -> PtrTy; fixed arrays -> ArrayTy; integers keep the
    C spelling (``__be32`` marks big endian).
    """
    elem = (getattr(f, "elem_type", "") or "").strip()
    ewords = [w for w in elem.replace("*", " ").split() if w not in _QUALIFIERS]
    ename = " ".join(ewords)
    if getattr(f, "is_string", False) or (f.is_array and ename in ("char", "unsigned char", "signed char")
                                           and (f.dynamic or f.array_len)):
        n = f.array_len or 0
        return StrTy(n if n else 256)
    if getattr(f, "is_pointer", False):
        base = _BASE_TYPES.get(ename)
        if base is None:
            base = VoidTy() if not ename or ename.startswith(("struct", "union", "void")) else U8
        space = "user" if (group == "syscalls" or getattr(f, "is_user_pointer", False)) and \
            isinstance(base, IntTy) and base.is_char else "kernel"
        return PtrTy(base, space)
    if f.array_len:
        esize = f.size // f.array_len if f.array_len else 1
        et = _BASE_TYPES.get(ename)
        if not isinstance(et, IntTy) or et.size != esize:
            et = int_ty(esize if esize in (1, 2, 4, 8) else 1, bool(f.signed))
        return ArrayTy(et, f.array_len)
    if f.dynamic:
        return ArrayTy(U8, 0)
    base = _BASE_TYPES.get(ename)
    if isinstance(base, IntTy) and base.size <= f.size:
        # syscall arguments are stored as longs: the declared type is what the
        # program passed (the low bytes on these little-endian machines)
        return base
    size = f.size if f.size in (1, 2, 4, 8) else 8
    return IntTy(size, bool(f.signed), ename if ename and " " not in ename else "")


# --------------------------------------------------------------------------- default formats

_ADDR_WORDS = ("addr", "saddr", "daddr", "ip")


def default_format(name: str, t: Optional[Ty]) -> Optional[str]:
    """How to show a field named ``name`` of type ``t`` when the line gives no prefix.

    Strings (``char *``, ``char[]``) -> ``str``/``ustr``; a 4-byte big-endian
    integer whose name says address -> ``ipv4``; another big-endian integer ->
    byte-swapped decimal (``b16``...); pointers -> hex; enums -> ``enum``;
    integers -> signed/unsigned after the type.
    """
    if t is None:
        return None
    if isinstance(t, StrTy):
        return "str"
    if isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char:
        return "str"
    if isinstance(t, PtrTy):
        if isinstance(t.target, IntTy) and t.target.is_char:
            return "ustr" if t.space == "user" else "str"
        return "x"
    if isinstance(t, IntTy):
        if t.big_endian:
            low = name.lower()
            if t.size == 4 and any(w in low for w in _ADDR_WORDS):
                return "ipv4"
            return f"b{t.size * 8}"
        if t.is_bool:
            return "u"
        return "s" if t.signed else "u"
    if isinstance(t, EnumTy):
        return "enum"
    if isinstance(t, StackTy):
        return None
    return None


# --------------------------------------------------------------------------- the pass


def resolve(program: ir.Program, kernel: "Kernel", *, arch: Optional[str] = None,
            strict_kprobes: bool = True, types: Optional[TypeInfo] = None) -> ir.Program:
    """Resolve names and types of ``program`` against ``kernel`` (in place; returned).

    ``arch`` names the register set (``x86_64``, ``aarch64``; default: this
    machine). ``strict_kprobes``: refuse ``p``/``r`` lines when the kernel has
    no kprobes (off for ``-S``, which compiles for any kernel). ``types``
    overrides where types come from (default: the kernel's BTF when present,
    plus the uapi network headers).

    Wildcard tracepoint probes become one probe per matching event. Raises
    :class:`ResolveError`, :class:`TypeCheckError` or :class:`AttachUnavailableError`,
    each with the span of the offending text.
    """
    from ..kernel.arch import current_arch, get_arch

    the_arch = get_arch(arch) if arch else current_arch()
    if program.setting("frontend") == "bt":
        from .resolve_bt import BtResolver

        # two passes: the first learns every map's value type (a map may be read in a
        # probe that comes before the one that assigns it), the second resolves for real
        # (only when some probe reads a map: a deep copy and a second pass cost ~4 ms)
        r: _Resolver = BtResolver(kernel, the_arch, strict_kprobes, types, program)
        if _reads_maps(program.probes):
            pre = r
            for probe in ir.clone(program.probes):
                try:
                    pre.probe(probe)
                except SourceError:
                    break
            r = BtResolver(kernel, the_arch, strict_kprobes, pre._types, program)
            r.map_values = dict(pre.map_values)  # type: ignore[attr-defined]
    else:
        r = _Resolver(kernel, the_arch, strict_kprobes, types)
    out: List[ir.Probe] = []
    for probe in program.probes:
        out.extend(r.probe(probe))
    program.probes = out
    program.warnings.extend(r.warnings)
    return program


def _reads_maps(probes: Sequence[ir.Probe]) -> bool:
    """Whether any probe reads a map's value or operates on a map (``delete``, ``clear``...)."""
    def ops(actions: Sequence[ir.Action]) -> bool:
        for a in actions:
            if isinstance(a, ir.MapOp):
                return True
            if isinstance(a, ir.If) and (ops(a.then) or ops(a.other)):
                return True
            if isinstance(a, ir.While) and ops(a.body):
                return True
        return False

    return any(ops(p.actions) or any(isinstance(e, ir.MapRead) for e in p.exprs()) for p in probes)


class _Resolver:
    def __init__(self, kernel: "Kernel", arch: "Arch", strict: bool, types: Optional[TypeInfo]) -> None:
        self.kernel, self.arch, self.strict = kernel, arch, strict
        self._types = types
        self.warnings: List[SourceError] = []
        # per probe
        self.probe_: Optional[ir.Probe] = None
        self.ap: Optional[ir.AttachPoint] = None
        self.sig: Optional[FuncSig] = None
        self.fmt: Any = None
        self.defined: Dict[str, ir.EmitField] = {}

    # -- facts
    @property
    def types(self) -> TypeInfo:
        if self._types is None:
            primary: TypeInfo = TypeInfo()
            try:
                btf = self.kernel.btf()
            except (UndertowError, OSError, ImportError):  # no BTF (or no reader yet): declared types only
                btf = None
            if btf is not None:
                primary = BtfTypes(btf)
            self._types = _Layered(primary, DeclTypes(UAPI_HEADERS))
        return self._types

    def err(self, cls: type, msg: str, span: Optional[Span], *hints: str) -> SourceError:
        p = self.probe_
        assert p is not None
        return cls(msg, source=p.source, span=span or p.span, origin=p.origin, hints=[h for h in hints if h])

    # -- probes
    def probe(self, probe: ir.Probe) -> List[ir.Probe]:
        self.probe_ = probe
        if len(probe.attach) != 1:
            return [self._one(probe, ap) for ap in probe.attach] if probe.attach else [probe]
        ap = probe.attach[0]
        if ap.kind == "tracepoint" and ap.wildcard:
            events = self._expand(ap)
            out = []
            for g, e in events:
                p2 = ir.clone(probe)
                p2.attach[0].target = f"{g}:{e}"
                p2.attach[0].wildcard = False
                out.append(self._one(p2, p2.attach[0]))
            return out
        return [self._one(probe, ap)]

    def _expand(self, ap: ir.AttachPoint) -> List[Tuple[str, str]]:
        t = self._tracefs(ap)
        found = t.events(ap.target)
        if not found:
            g, _, e = ap.target.partition(":")
            names = [f"{a}:{b}" for a, b in t.all_events()]
            raise self.err(ResolveError, f"no trace event matches {g}/{e}", ap.span,
                           did_you_mean(ap.target.replace("*", ""), names),
                           "list events with: undertow list 'tracepoint:*'")
        return found

    def _tracefs(self, ap: ir.AttachPoint) -> Any:
        try:
            return self.kernel.tracefs()
        except UndertowError as e:
            raise self.err(ResolveError, f"cannot read trace events for {ap.target}: {e.message}", ap.span,
                           *e.hints) from None

    def _one(self, probe: ir.Probe, ap: ir.AttachPoint) -> ir.Probe:
        self.probe_, self.ap = probe, ap
        self.sig, self.fmt, self.defined = None, None, {}
        if ap.kind in ("kprobe", "kretprobe"):
            if self.strict:
                check_kprobes(self.kernel, probe, ap)
            self.sig = self.types.func(ap.target)
        elif ap.kind == "tracepoint":
            self._tracepoint(probe, ap)
        elif ap.kind in ("uprobe", "uretprobe"):
            self._uprobe(ap)
        for action in probe.actions:
            if isinstance(action, ir.Emit):
                for f in action.fields:
                    f.expr = self._unwrap_scalar(self.expr(f.expr))
                    self._check_emittable(f)
                    if f.fmt is None:
                        f.fmt = default_format(f.name, f.expr.type)
                    else:
                        self._check_fmt(f)
                    self.defined[f.name] = f
            else:
                for e in action.exprs():
                    self.expr(e)
        if probe.filter is not None:
            probe.filter = self.filter(probe.filter)
        return probe

    def _tracepoint(self, probe: ir.Probe, ap: ir.AttachPoint) -> None:
        g, _, e = ap.target.partition(":")
        t = self._tracefs(ap)
        try:
            self.fmt = t.event_format(g, e)
        except LookupError as ex:
            hints = list(getattr(ex, "hints", []))
            raise self.err(ResolveError, f"no trace event {g}/{e} in this kernel", ap.span, *hints) from None
        except UndertowError as ex:
            raise self.err(ResolveError, f"cannot read the format of {g}/{e}: {ex.message}", ap.span,
                           *ex.hints) from None
        emits = [a for a in probe.actions if isinstance(a, ir.Emit)]
        if emits and not any(a.fields for a in emits):
            # surftrace shows every field of the event: make that explicit
            for f in self.fmt.event_fields:
                emits[0].fields.append(ir.EmitField(f.name, ir.Field(f.name), None, None))

    def _uprobe(self, ap: ir.AttachPoint) -> None:
        from ..kernel.elf import ELFFile, resolve_object

        try:
            ap.path = resolve_object(ap.obj, self.arch)
        except ELFError as e:
            raise self.err(ResolveError, e.message, self._obj_span(ap), *e.hints) from None
        try:
            ap.file_offset = self._elf(ap.path).symbol_file_offset(ap.target, ap.offset)
        except (ELFError, LookupError) as e:
            # glibc 2.34+ keeps libpthread.so.0 as an empty stub whose functions live in
            # libc.so.6 (its DT_NEEDED): follow the stub's dependencies before giving up
            moved = self._symbol_in_needed(ap)
            if moved is None:
                # a caller that will skip this probe (quiet) needs no costly "did you mean"
                hints = [] if getattr(self, "quiet", False) else list(getattr(e, "hints", []))
                raise self.err(ResolveError, getattr(e, "message", str(e)), self._sym_span(ap),
                               *hints) from None
            ap.path, ap.file_offset = moved

    def _elf(self, path: str) -> Any:
        """One parsed ELF file per path for the whole resolve (symbol tables are big)."""
        from ..kernel.elf import ELFFile

        cache = self.__dict__.setdefault("_elfs", {})
        if path not in cache:
            cache[path] = ELFFile(path)
        return cache[path]

    def _symbol_in_needed(self, ap: ir.AttachPoint) -> Optional[Tuple[str, int]]:
        from ..kernel.elf import find_library

        try:
            needed = self._elf(ap.path).needed
        except (ELFError, OSError):
            return None
        for lib in needed:
            try:
                path = find_library(lib, self.arch)
                return path, self._elf(path).symbol_file_offset(ap.target, ap.offset)
            except (ELFError, LookupError, OSError):
                continue
        return None

    def _obj_start(self, ap: ir.AttachPoint) -> Optional[int]:
        """Where ``ap.obj`` starts in the source: at the span's start (probe lines:
        ``/bin/bash:readline``) or after the spec's type (``uprobe:/bin/bash:readline``);
        ``None`` when it is not written there (``uprobe:$1:main``)."""
        if ap.span is None or self.probe_ is None:
            return None
        src, a = self.probe_.source, ap.span.start
        if src.startswith(ap.obj + ":", a):
            return a
        i = src.find(":" + ap.obj + ":", a, ap.span.end)
        return i + 1 if i >= 0 else None

    def _obj_span(self, ap: ir.AttachPoint) -> Optional[Span]:
        if ap.span is None:
            return None
        a = self._obj_start(ap)
        return ap.span if a is None else Span(a, a + len(ap.obj))

    def _sym_span(self, ap: ir.AttachPoint) -> Optional[Span]:
        if ap.span is None:
            return None
        a = self._obj_start(ap)
        return ap.span if a is None else Span(a + len(ap.obj) + 1, ap.span.end)

    # -- expressions
    def expr(self, e: ir.Expr) -> ir.Expr:
        """Type ``e`` (sub-expressions first); may return a replacement node."""
        if e.type is not None:
            return e  # resolved already (filters revisit shared nodes)
        m = getattr(self, "_e_" + type(e).__name__, None)
        if m is None:
            raise self.err(TypeCheckError, f"{type(e).__name__.lower()} is not supported in probe lines", e.span)
        out = m(e)
        return out if out is not None else e

    def _e_Const(self, e: ir.Const) -> None:
        if isinstance(e.value, int):
            e.type = S64 if e.value < (1 << 63) else U64
        else:
            e.type = StrTy(max(1, len(ir.text_bytes(e.value)) + 1))

    def _e_Builtin(self, e: ir.Builtin) -> None:
        e.type = {"comm": COMM, "stack": StackTy("kernel"), "pid": S32, "tid": S32, "cpu": U32,
                  "uid": U32, "gid": U32}.get(e.name, U64)

    def _e_Arg(self, e: ir.Arg) -> ir.Expr:
        ap = self.ap
        assert ap is not None
        if ap.kind == "tracepoint":
            # a bare name on an 'e' line is an event field
            if e.name:
                return self.expr(ir.Field(e.name).at(e.span))
            raise self.err(TypeCheckError, "tracepoints have fields, not positional arguments", e.span,
                           self._field_hint())
        if ap.kind in ("kretprobe", "uretprobe"):
            raise self.err(TypeCheckError, "function arguments are not available at a return probe", e.span,
                           "read the argument on a 'p' line (or use --backend bpf to save it at entry)")
        sig = self.sig
        if e.name is not None and e.index is None:
            if sig is None:
                why = "BTF does not describe it" if ap.kind == "kprobe" else "user-space programs have no BTF here"
                raise self.err(ResolveError, f"cannot name the arguments of {ap.target}: {why}", e.span,
                               "use the argument's position instead: %0, %1, ...")
            names = [n for n, _ in sig.params]
            if e.name not in names:
                raise self.err(ResolveError, f"{ap.target}() has no argument named '{e.name}'", e.span,
                               did_you_mean(e.name, names),
                               f"{ap.target}({', '.join(f'{t} {n}' for n, t in sig.params)})")
            e.index = names.index(e.name)
        assert e.index is not None
        if sig is not None:
            if e.index >= len(sig.params):
                raise self.err(TypeCheckError,
                               f"{ap.target}() takes {len(sig.params)} argument"
                               f"{'s' if len(sig.params) != 1 else ''}; there is no %{e.index}", e.span,
                               f"{ap.target}({', '.join(f'{t} {n}' for n, t in sig.params)})" if sig.params else "")
            e.name, e.type = sig.params[e.index][0], sig.params[e.index][1]
        else:
            e.type = U64
        return e

    def _e_Register(self, e: ir.Register) -> None:
        try:
            e.name = self.arch.canonical_reg(e.name)
        except ResolveError as ex:
            raise self.err(ResolveError, ex.message, e.span, *ex.hints) from None
        e.type = U64

    def _e_Retval(self, e: ir.Retval) -> None:
        ap = self.ap
        assert ap is not None
        if ap.kind not in ("kretprobe", "uretprobe"):
            letter = "R" if ap.kind == "uprobe" else "r"
            raise self.err(TypeCheckError, "$retval exists only at a return probe", e.span,
                           f"use '{letter} {ap.obj + ':' if ap.obj else ''}{ap.target} ...' to read the return value")
        if self.sig is not None and not isinstance(self.sig.ret, VoidTy):
            e.type = self.sig.ret
        elif self.sig is not None:
            raise self.err(TypeCheckError, f"{ap.target}() returns void: there is no $retval", e.span)
        else:
            e.type = U64

    def _e_Symbol(self, e: ir.Symbol) -> None:
        # ftrace @SYM fetches the memory at the symbol (kprobetrace.rst, FETCHARGS)
        t = self.types.var(e.name)
        e.type = t if t is not None else U64

    def _e_Field(self, e: ir.Field) -> ir.Expr:
        ap = self.ap
        assert ap is not None
        if self.fmt is not None:
            try:
                f = self.fmt.field(e.name)
            except LookupError as ex:
                raise self.err(ResolveError, f"event {ap.target.replace(':', '/')} has no field '{e.name}'",
                               e.span, *getattr(ex, "hints", [])) from None
            e.fmt_field = f
            e.type = format_field_type(f, self.fmt.group)
            return e
        # a bare name in a p/r/P/R field value was parsed as an argument
        return self.expr(ir.Arg(name=e.name).at(e.span))

    def _field_hint(self) -> str:
        if self.fmt is None:
            return ""
        return "fields: " + ", ".join(f.name for f in self.fmt.event_fields)

    def _e_Member(self, e: ir.Member) -> ir.Expr:
        e.base = self.expr(e.base)
        bt = e.base.type
        name_span = getattr(e, "name_span", None) or e.span
        op = "->" if e.arrow else "."
        rec: Optional[RecordTy] = None
        if e.arrow:
            if isinstance(bt, PtrTy) and isinstance(bt.target, RecordTy):
                rec = bt.target
            elif isinstance(bt, PtrTy) and isinstance(bt.target, PtrTy):
                raise self.err(TypeCheckError,
                               f"'->' needs a pointer to a struct, but {_show(e.base)} is {bt}, a pointer to a pointer",
                               e.base.span, f"dereference it first: (*{_show(e.base)})->{e.name} "
                               f"or {_show(e.base)}[0]->{e.name}")
            elif isinstance(bt, RecordTy):
                raise self.err(TypeCheckError, f"{_show(e.base)} is a {bt}, not a pointer: use '.'", name_span,
                               f"write {_show(e.base)}.{e.name}")
            elif isinstance(bt, IntTy) and bt.size == 8 and not bt.name.startswith("__be") and \
                    isinstance(e.base, (ir.Arg, ir.Register, ir.Retval, ir.Symbol)) and self.sig is None:
                raise self.err(TypeCheckError,
                               f"{_show(e.base)} has no type here, so '->{e.name}' has no struct to look in",
                               e.base.span, f"cast it: (struct NAME *){_show(e.base)}->{e.name}")
            else:
                raise self.err(TypeCheckError, f"'->' needs a pointer to a struct, but {_show(e.base)} is {bt}",
                               name_span, self._member_of_hint(bt))
        else:
            if isinstance(bt, RecordTy):
                rec = bt
            elif isinstance(bt, PtrTy) and isinstance(bt.target, RecordTy):
                raise self.err(TypeCheckError, f"{_show(e.base)} is a pointer ({bt}): use '->'", name_span,
                               f"write {_show(e.base)}->{e.name}")
            else:
                raise self.err(TypeCheckError, f"'.' needs a struct, but {_show(e.base)} is {bt}", name_span,
                               self._member_of_hint(bt))
        rec = self.types.complete(rec)
        if rec.size == 0 and not self.types.member_names(rec):
            raise self.err(TypeCheckError, f"{rec} is incomplete here (no layout known)", name_span,
                           "cast to a struct whose definition is in BTF")
        mi = self.types.member(rec, e.name)
        if mi is None:
            names = self.types.member_names(rec)
            hints = [did_you_mean(e.name, names)]
            nested = self._nested_path(rec, e.name)
            if nested:
                hints = [f"{e.name} is inside {nested}: write {_show(e.base)}{op}{nested}.{e.name}"]
            if e.name in PAYLOAD_NAMES:
                hints.append("payload views (cdata/sdata/ldata/qdata) follow an skb header: "
                             "@(struct udphdr *)l4%0->sdata[0]")
            raise self.err(ResolveError, f"{rec} has no member '{e.name}'", name_span, *hints)
        e.offset, e.bit_offset, e.bit_size = mi.offset, mi.bit_offset, mi.bit_size
        e.path = mi.path
        e.type = mi.type
        return e

    def _nested_path(self, rec: RecordTy, name: str, depth: int = 2) -> str:
        """``a.b`` when ``name`` is a member of named members ``a`` then ``b`` of ``rec``."""
        if depth <= 0:
            return ""
        for n in self.types.member_names(rec):
            mi = self.types.member(rec, n)
            if mi is None or not isinstance(mi.type, RecordTy):
                continue
            inner = self.types.complete(mi.type)
            if self.types.member(inner, name) is not None:
                return n
            deeper = self._nested_path(inner, name, depth - 1)
            if deeper:
                return f"{n}.{deeper}"
        return ""

    def _unwrap_scalar(self, e: ir.Expr) -> ir.Expr:
        """A struct with one scalar member (atomic_t, refcount_t, kuid_t) reads as that member."""
        for _ in range(4):
            t = e.type
            if not isinstance(t, RecordTy):
                return e
            names = self.types.member_names(t)
            if len(names) != 1:
                return e
            mi = self.types.member(t, names[0])
            if mi is None or mi.bit_size:
                return e
            m = ir.Member(e, names[0], arrow=False, offset=mi.offset, path=mi.path).at(e.span)
            m.type = mi.type
            e = m
        return e

    def _member_of_hint(self, t: Optional[Ty]) -> str:
        if isinstance(t, PtrTy) and isinstance(t.target, (IntTy, VoidTy)):
            return "cast it to the struct it points to: (struct NAME *)EXPR->member"
        if isinstance(t, IntTy):
            return "integers have no members; cast an address: (struct NAME *)EXPR"
        return ""

    def _e_Index(self, e: ir.Index) -> ir.Expr:
        e.base = self.expr(e.base)
        e.index = self.expr(e.index)
        bt = e.base.type
        idx = e.index.value if isinstance(e.index, ir.Const) and isinstance(e.index.value, int) else None
        if not isinstance(e.index.type, (IntTy, EnumTy)):
            raise self.err(TypeCheckError, "an index must be an integer", e.index.span)
        if idx is not None and idx < 0:
            raise self.err(TypeCheckError, f"negative index {idx}", e.index.span)
        if isinstance(bt, ArrayTy):
            if idx is not None and bt.count and idx >= bt.count:
                raise self.err(TypeCheckError, f"index {idx} is past the end of {_show(e.base)} ({bt}: "
                               f"{bt.count} element{'s' if bt.count != 1 else ''})", e.index.span,
                               f"valid indexes are 0..{bt.count - 1}")
            e.type = bt.elem
        elif isinstance(bt, PtrTy):
            if isinstance(bt.target, VoidTy):
                raise self.err(TypeCheckError, f"cannot index {_show(e.base)}, a void pointer", e.span,
                               "cast it to a typed pointer first: (u32 *)EXPR")
            e.type = bt.target
        elif isinstance(bt, StrTy):
            e.type = IntTy(1, True, "char", is_char=True)
        else:
            raise self.err(TypeCheckError, f"cannot index {_show(e.base)}: it is {bt}, not an array or pointer",
                           e.span)
        return e

    def _e_Cast(self, e: ir.Cast) -> ir.Expr:
        e.expr = self.expr(e.expr)
        span = getattr(e, "type_span", None) or e.span
        e.type = self._parse_type(e.type_text, span)
        if isinstance(e.type, RecordTy):
            raise self.err(TypeCheckError, f"cannot cast to a whole {e.type}", span,
                           f"cast to a pointer: ({e.type} *)")
        return e

    def _parse_type(self, text: str, span: Optional[Span]) -> Ty:
        try:
            return self.types.parse_type(text)
        except LookupError as ex:
            close = ex.args[1] if len(ex.args) > 1 else []
            words, _, _ = _split_type_text(text)
            key = " ".join(words)
            hints = [did_you_mean(key, close) if close else ""]
            if isinstance(self.types, _Layered) and type(self.types.primary) is TypeInfo:
                hints.append("no kernel BTF here: only base C types and network headers are known "
                             "(pass a BTF file with --btf)")
            raise self.err(ResolveError, f"unknown type '{key}'", span, *hints) from None

    def _e_Deref(self, e: ir.Deref) -> ir.Expr:
        e.expr = self.expr(e.expr)
        t = e.expr.type
        if not isinstance(t, PtrTy):
            raise self.err(TypeCheckError, f"cannot dereference {_show(e.expr)}: it is {t}, not a pointer", e.span)
        if isinstance(t.target, VoidTy):
            raise self.err(TypeCheckError, f"cannot dereference a void pointer ({_show(e.expr)})", e.span,
                           "cast it first: *(u64 *)EXPR")
        e.type = t.target
        return e

    def _e_SkbHeader(self, e: ir.SkbHeader) -> ir.Expr:
        e.skb = self.expr(e.skb)
        st = e.skb.type
        type_span = getattr(e, "type_span", None) or e.span
        ok_skb = (isinstance(st, PtrTy) and isinstance(st.target, RecordTy) and st.target.name == "sk_buff") or \
                 (isinstance(st, IntTy) and st.size == 8 and not st.big_endian and isinstance(
                     e.skb, (ir.Arg, ir.Register)) and self.sig is None)
        if not ok_skb:
            hint = ""
            if isinstance(st, PtrTy) and isinstance(st.target, PtrTy):
                hint = f"{_show(e.skb)} is {st}: pass the sk_buff pointer itself"
            raise self.err(TypeCheckError, f"a header view needs a struct sk_buff *, but {_show(e.skb)} is {st}",
                           e.skb.span, hint or "e.g. @(struct iphdr *)l3%0 where %0 is the sk_buff")
        words, stars, _ = _split_type_text(e.type_text)
        hname = words[-1] if words else ""
        if len(words) != 2 or words[0] != "struct" or hname not in SKB_HEADERS:
            raise self.err(TypeCheckError, f"'{e.type_text}' is not a protocol header undertow can locate",
                           type_span, "headers: " + ", ".join(f"struct {h} *" for h in SKB_HEADERS))
        if stars != 1:
            raise self.err(TypeCheckError, f"write the header type as a pointer: (struct {hname} *)", type_span)
        layer = SKB_HEADERS[hname]
        marker = getattr(e, "marker", None)
        if marker is not None and marker > layer:
            raise self.err(TypeCheckError,
                           f"struct {hname} is a layer-{layer[1]} header; it cannot be read at {marker}",
                           type_span, f"write @(struct {hname} *){layer}...")
        e.layer = layer
        e.type = self._parse_type(e.type_text, type_span)
        return e

    def _e_Payload(self, e: ir.Payload) -> ir.Expr:
        e.header = self.expr(e.header)
        e.index = self.expr(e.index)
        if not isinstance(e.index, ir.Const) or not isinstance(e.index.value, int) or e.index.value < 0:
            raise self.err(TypeCheckError, "a payload index must be a non-negative constant", e.index.span)
        e.type = int_ty(e.elem_size, False)
        return e

    def _e_Unary(self, e: ir.Unary) -> ir.Expr:
        e.expr = self.expr(e.expr)
        if e.op == "!":
            e.type = S32
        else:
            self._need_int(e.expr, e.op)
            e.type = S64 if e.op == "-" else (e.expr.type if isinstance(e.expr.type, IntTy) else U64)
        return e

    def _e_Binary(self, e: ir.Binary) -> ir.Expr:
        e.left = self.expr(e.left)
        e.right = self.expr(e.right)
        if e.op in ("&&", "||"):
            e.type = S32
        elif e.op in ("==", "!=", "<", "<=", ">", ">=", "~"):
            e.type = S32
        else:
            self._need_int(e.left, e.op)
            self._need_int(e.right, e.op)
            lt, rt = e.left.type, e.right.type
            signed = getattr(lt, "signed", False) and getattr(rt, "signed", False)
            e.type = S64 if signed else U64
        return e

    def _need_int(self, x: ir.Expr, op: str) -> None:
        if not isinstance(x.type, (IntTy, EnumTy, PtrTy)):
            raise self.err(TypeCheckError, f"'{op}' needs a number, but {_show(x)} is {x.type}", x.span)

    def _e_Ternary(self, e: ir.Ternary) -> ir.Expr:
        e.cond, e.then, e.other = self.expr(e.cond), self.expr(e.then), self.expr(e.other)
        e.type = e.then.type
        return e

    def _e_Call(self, e: ir.Call) -> ir.Expr:
        e.args = [self.expr(a) for a in e.args]
        if e.name == "str" and len(e.args) == 1:
            e.type = StrTy(64)
            return e
        if e.name == "ntop" and len(e.args) == 1:
            e.type = StrTy(46)
            return e
        if e.name == "ksym" and len(e.args) == 1:
            e.type = U64
            return e
        raise self.err(TypeCheckError, f"{e.name}() is not supported in probe lines", e.span)

    # -- emit checks
    def _check_emittable(self, f: ir.EmitField) -> None:
        t = f.expr.type
        if isinstance(t, RecordTy):
            names = self.types.member_names(t)[:8]
            raise self.err(TypeCheckError, f"cannot print a whole {t}; pick a member", f.expr.span,
                           ("members: " + ", ".join(names)) if names else "")
        if isinstance(t, VoidTy):
            raise self.err(TypeCheckError, f"{_show(f.expr)} has no value (void)", f.expr.span)

    def _check_fmt(self, f: ir.EmitField) -> None:
        t = f.expr.type
        if f.fmt in ("b16", "b32", "b64", "B16", "B32", "B64"):
            want = int(f.fmt[1:]) // 8
            if isinstance(t, (IntTy, EnumTy)) and t.size and t.size != want:
                self.warnings.append(self.err(TypeCheckError,
                                              f"{f.name} is {t} ({t.size} bytes) but its name asks to byte-swap "
                                              f"{want} bytes", f.span))
        if f.fmt == "ipv4" and isinstance(t, (IntTy,)) and t.size != 4:
            raise self.err(TypeCheckError, f"{f.name} is {t}, not a 4-byte IPv4 address", f.expr.span,
                           "ip_ names show a __be32 as a dotted address; rename the field")

    # -- filters
    def filter(self, e: ir.Expr) -> ir.Expr:
        return self._f(e)

    def _f(self, e: ir.Expr, string_ctx: bool = False) -> ir.Expr:
        if isinstance(e, ir.Binary) and e.op in ("&&", "||"):
            e.left, e.right = self._f(e.left), self._f(e.right)
            e.type = S32
            return e
        if isinstance(e, ir.Unary) and e.op == "!":
            e.expr = self._f(e.expr)
            e.type = S32
            return e
        if isinstance(e, ir.Binary) and e.op in ("==", "!=", "<", "<=", ">", ">=", "~"):
            e.left = self._f_operand(e.left)
            e.right = self._f_operand(e.right, other=e.left)
            if isinstance(e.left, ir.Field) and e.left.type is None:
                e.left = self._f_operand(e.left, other=e.right)
            self._check_compare(e)
            e.type = S32
            return e
        return self._f_operand(e)

    def _f_operand(self, e: ir.Expr, other: Optional[ir.Expr] = None) -> ir.Expr:
        if isinstance(e, ir.Field):
            return self._filter_name(e, other)
        if (isinstance(e, ir.Binary) and e.op in _LOGIC_CMP) or (isinstance(e, ir.Unary) and e.op == "!"):
            return self._f(e)
        # anything else: resolve its parts, names being fields of the line/event
        for fld in dclass.fields(e):
            v = getattr(e, fld.name)
            if isinstance(v, ir.Expr):
                setattr(e, fld.name, self._f_operand(v))
        return self.expr(e) if e.type is None else e

    def _filter_name(self, e: ir.Field, other: Optional[ir.Expr]) -> ir.Expr:
        """A bare name in a filter: a field the line defines, an event field,
        a common field, a builtin, an argument; a string when compared to a string."""
        name = e.name
        if self.fmt is not None:
            # tracepoint filters run on the event's own fields (a renamed field maps back)
            d = self.defined.get(name)
            if d is not None and isinstance(d.expr, ir.Field):
                return self.expr(ir.Field(d.expr.name).at(e.span))
            if self.fmt.has_field(name):
                return self.expr(e)
        if name in self.defined:
            d = self.defined[name]
            e.type = d.expr.type
            e.defined = d  # type: ignore[attr-defined]
            return e
        if self.fmt is not None and self.fmt.has_field(name):
            return self.expr(e)
        if name.startswith("common_") and name in ("common_pid", "common_type", "common_flags",
                                                   "common_preempt_count"):
            e.type = S32 if name == "common_pid" else U8 if name != "common_type" else U16
            return e
        if name in ("comm", "COMM"):
            e.type = COMM  # the event filter's generic comm field (kernel/trace/trace_events_filter.c)
            return e
        if name in ("cpu", "CPU"):
            e.type = S32
            return e
        if other is not None and other.type is not None and _is_stringish(other.type):
            c = ir.Const(name).at(e.span)
            c.type = StrTy(len(name) + 1)
            return c
        if other is not None and isinstance(other, ir.Field) and other.type is None:
            return e  # decided once the other side is known
        if self.ap is not None and self.ap.kind in ("kprobe", "uprobe") and self.sig is not None and \
                name in [n for n, _ in self.sig.params]:
            return self.expr(ir.Arg(name=name).at(e.span))
        known = list(self.defined)
        if self.fmt is not None:
            known += [f.name for f in self.fmt.fields]
        else:
            known += ["common_pid"]
        known += ["comm"]
        hints = [did_you_mean(name, known)]
        if self.defined:
            hints.append("this line defines: " + ", ".join(self.defined))
        elif self.fmt is not None:
            hints.append(self._field_hint())
        else:
            hints.append("a filter names fields the line defines (NAME=EXPR) or common_pid")
        raise self.err(ResolveError, f"unknown field '{name}' in the filter", e.span, *hints)

    def _check_compare(self, e: ir.Binary) -> None:
        lt, rt = e.left.type, e.right.type
        ls, rs = _is_stringish(lt), _is_stringish(rt)
        lip = _is_ipv4_field(e.left) or _is_ipv4_field(e.right)
        if lip and (isinstance(e.right, ir.Const) and isinstance(e.right.value, str) or
                    isinstance(e.left, ir.Const) and isinstance(e.left.value, str)):
            c = e.right if isinstance(e.right, ir.Const) else e.left
            assert isinstance(c, ir.Const)
            if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", str(c.value)) or \
                    any(int(x) > 255 for x in str(c.value).split(".")):
                raise self.err(TypeCheckError, f"'{c.value}' is not an IPv4 address", c.span,
                               "write it dotted: 127.0.0.1")
            return
        if e.op == "~" and not (ls and rs):
            raise self.err(TypeCheckError, "'~' (glob match) compares a string field with a pattern", e.span)
        if ls != rs:
            s, n = (e.left, e.right) if ls else (e.right, e.left)
            raise self.err(TypeCheckError, f"cannot compare {_show(s)} (a string) with {_show(n)} ({n.type})",
                           e.span, "quote the text: \"...\"" if not ls else "")
        if ls and e.op not in ("==", "!=", "~"):
            raise self.err(TypeCheckError, f"strings compare with == != or ~, not {e.op}", e.span)


PAYLOAD_NAMES = ("cdata", "sdata", "ldata", "qdata")
_LOGIC_CMP = ("&&", "||", "==", "!=", "<", "<=", ">", ">=", "~")


def _is_stringish(t: Optional[Ty]) -> bool:
    if isinstance(t, StrTy):
        return True
    if isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char:
        return True
    if isinstance(t, PtrTy) and isinstance(t.target, IntTy) and t.target.is_char:
        return True
    return False


def _is_ipv4_field(e: ir.Expr) -> bool:
    d = getattr(e, "defined", None)
    return d is not None and d.fmt == "ipv4"


def _show(e: ir.Expr) -> str:
    """Short source-like text of an expression, for messages."""
    if isinstance(e, ir.Arg):
        return e.name or f"%{e.index}"
    if isinstance(e, ir.Register):
        return "%" + e.name
    if isinstance(e, ir.Retval):
        return "$retval"
    if isinstance(e, ir.Member):
        return f"{_show(e.base)}{'->' if e.arrow else '.'}{e.name}"
    if isinstance(e, ir.Index):
        return f"{_show(e.base)}[{_show(e.index)}]"
    if isinstance(e, ir.Const):
        return repr(e.value) if isinstance(e.value, str) else str(e.value)
    if isinstance(e, ir.Cast):
        return f"({e.type_text}){_show(e.expr)}"
    if isinstance(e, ir.Field):
        return e.name
    if isinstance(e, ir.Builtin):
        return "$" + e.name
    if isinstance(e, ir.Symbol):
        return "@" + e.name
    if isinstance(e, ir.SkbHeader):
        return f"@({e.type_text}){_show(e.skb)}"
    if isinstance(e, ir.Deref):
        return f"*{_show(e.expr)}"
    return type(e).__name__.lower()
