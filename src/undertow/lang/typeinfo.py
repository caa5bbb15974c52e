"""Names and types every front end's resolver asks about: the shared base of resolving.

:class:`TypeInfo` is the small interface a resolver asks types through (a function's
prototype, a C type as written in a cast, a member of a record, a kernel variable):
:class:`BtfTypes` answers from kernel BTF (``/sys/kernel/btf/vmlinux``, through
:class:`undertow.kernel.btf.BTF`), :class:`DeclTypes` from declarations in Python (the
uapi network headers of :data:`UAPI_HEADERS`, script-defined structs, tests), and
:class:`LayeredTypes` asks one, then the other (:func:`kernel_types`: BTF first).

Also here, for any front end: the C base types (:data:`BASE_TYPES`), how a type is
written (:func:`split_type_text`), the IR type of a tracepoint format field
(:func:`format_field_type`, ``events/<group>/<event>/format``) and the default output
format of a value (:func:`default_format`). Nothing here knows a front end's syntax.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import UndertowError
from .types import U8, ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, StackTy, StrTy, Ty, VoidTy, int_ty

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

__all__ = [
    "TypeInfo", "FuncSig", "MemberInfo", "DeclTypes", "BtfTypes", "LayeredTypes", "kernel_types",
    "BASE_TYPES", "QUALIFIERS", "split_type_text", "UAPI_HEADERS", "SKB_HEADERS", "format_field_type",
    "default_format",
]

# --------------------------------------------------------------------------- type information


class FuncSig:
    """A function's parameters (name, type) and return type, from BTF FUNC_PROTO."""

    __slots__ = ("name", "params", "ret")

    def __init__(self, name: str, params: List[Tuple[str, Ty]], ret: Ty) -> None:
        self.name = name
        self.params = params
        self.ret = ret


class MemberInfo:
    """Where a member lives: byte ``offset`` from the record start, its type, and for a
    bitfield the ``bit_offset`` within the ``type.size`` unit at ``offset`` and ``bit_size``.
    ``path`` lists the names crossed (anonymous members as ``""``)."""

    __slots__ = ("offset", "type", "bit_offset", "bit_size", "path")

    def __init__(self, offset: int, type: Ty, bit_offset: Optional[int] = None, bit_size: Optional[int] = None,
                 path: Tuple[str, ...] = ()) -> None:
        self.offset = offset
        self.type = type
        self.bit_offset = bit_offset
        self.bit_size = bit_size
        self.path = path


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


#: C and kernel base type names (and bpftrace's ``uint32``...) -> their types.
BASE_TYPES: Dict[str, Ty] = {
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

#: Words of a written type that do not change its layout.
QUALIFIERS = {"const", "volatile", "restrict", "__user", "__kernel", "__rcu", "__iomem", "__percpu",
               "__force", "__attribute__"}


def split_type_text(text: str) -> Tuple[List[str], int, Optional[int]]:
    """``"const struct sock *"`` -> (["struct", "sock"], 1 pointer level, array count or None)."""
    t = text.strip()
    count: Optional[int] = None
    m = re.search(r"\[(\d*)\]\s*$", t)
    if m:
        count = int(m.group(1)) if m.group(1) else 0
        t = t[:m.start()]
    stars = t.count("*")
    words = [w for w in t.replace("*", " ").split() if w not in QUALIFIERS]
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
        #: a record's alignment when known (script structs: resolve_bt.script_types)
        self.aligns: Dict[str, int] = {}

    def record(self, key: str) -> RecordTy:
        """The RecordTy for ``"struct name"`` (an incomplete one when undeclared)."""
        kind, _, name = key.partition(" ")
        size = self.records[key][0] if key in self.records else 0
        return RecordTy(name, kind, size, btf=key, align=self.aligns.get(key, 0))

    def func(self, name: str) -> Optional[FuncSig]:
        sig = self.funcs.get(name)
        if sig is None:
            return None
        return FuncSig(sig.name, [(n, self._full(t)) for n, t in sig.params], self._full(sig.ret))

    def var(self, name: str) -> Optional[Ty]:
        v = self.variables.get(name)
        return self._full(v) if v is not None else None

    def parse_type(self, text: str) -> Ty:
        words, stars, count = split_type_text(text)
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
        elif key in BASE_TYPES:
            base = BASE_TYPES[key]
        else:
            raise LookupError(f"unknown type '{key}'", self._close(key))
        return _wrap(base, stars, count, "user" if _user_space(text) else "kernel")

    def _close(self, key: str) -> List[str]:
        from ..errors import closest

        return closest(key, list(self.records) + list(self.typedefs) + list(BASE_TYPES))

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
                return inner.renamed(name)
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
            # no "did you mean" hints: None is the answer for a function BTF does not
            # describe, and hints compare the name with all ~70k functions (issue 17)
            proto = self.btf.func_proto(name, hints=False)
        except (LookupError, UndertowError):
            proto = None
        if proto is not None:
            params = [(pn or f"arg{i}", self.to_ty(pt)) for i, (pn, pt) in enumerate(proto.params)]
            sig = FuncSig(name, params, self.to_ty(getattr(proto, "ret", None)))
        self._funcs[name] = sig
        return sig

    def parse_type(self, text: str) -> Ty:
        words, stars, count = split_type_text(text)
        key = " ".join(words)
        if key in BASE_TYPES and key not in ("__be16", "__be32", "__be64"):
            base = BASE_TYPES[key]
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
_BE16 = BASE_TYPES["__be16"]
_BE32 = BASE_TYPES["__be32"]
_SUM16 = BASE_TYPES["__sum16"]
_U8, _U16 = BASE_TYPES["__u8"], BASE_TYPES["__u16"]
UAPI_HEADERS: Dict[str, Tuple[int, List[tuple]]] = {
    "struct ethhdr": (14, [("h_dest", 0, ArrayTy(BASE_TYPES["unsigned char"], 6)),
                           ("h_source", 6, ArrayTy(BASE_TYPES["unsigned char"], 6)),
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


class LayeredTypes(TypeInfo):
    """First answer from ``primary`` (BTF), else from ``fallback`` (uapi declarations);
    the records named in ``prefer`` (``"struct Foo"``: a script's own definitions, which
    shadow the kernel's as in bpftrace) from ``fallback`` first."""

    def __init__(self, primary: TypeInfo, fallback: TypeInfo, prefer: Optional[Set[str]] = None) -> None:
        self.primary, self.fallback = primary, fallback
        self.prefer: Set[str] = set(prefer or ())

    def func(self, name: str) -> Optional[FuncSig]:
        return self.primary.func(name)

    def parse_type(self, text: str) -> Ty:
        if self.prefer and " ".join(split_type_text(text)[0]) in self.prefer:
            return self.fallback.parse_type(text)
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


def kernel_types(kernel: "Kernel") -> LayeredTypes:
    """The types a resolver uses by default: ``kernel``'s BTF when it has some (else
    nothing but base C types), then the uapi network headers."""
    primary: TypeInfo = TypeInfo()
    try:
        btf = kernel.btf()
    except (UndertowError, OSError, ImportError):  # no BTF (or no reader yet): declared types only
        btf = None
    if btf is not None:
        primary = BtfTypes(btf)
    return LayeredTypes(primary, DeclTypes(UAPI_HEADERS))


# --------------------------------------------------------------------------- tracepoint fields


def format_field_type(f: Any, group: str = "") -> Ty:
    """The IR type of a tracepoint format field (:class:`undertow.kernel.formats.Field`).

    ``char[N]`` / ``__data_loc char[]`` -> StrTy; ``const char *`` in a
    ``syscalls`` event -> a user pointer to char (syscall arguments are user
    memory); other pointers -> PtrTy; fixed arrays -> ArrayTy; integers keep the
    C spelling (``__be32`` marks big endian).
    """
    elem = (getattr(f, "elem_type", "") or "").strip()
    ewords = [w for w in elem.replace("*", " ").split() if w not in QUALIFIERS]
    ename = " ".join(ewords)
    if getattr(f, "is_string", False) or (f.is_array and ename in ("char", "unsigned char", "signed char")
                                           and (f.dynamic or f.array_len)):
        n = f.array_len or 0
        return StrTy(n if n else 256)
    if getattr(f, "is_pointer", False):
        base = BASE_TYPES.get(ename)
        if base is None:
            base = VoidTy() if not ename or ename.startswith(("struct", "union", "void")) else U8
        space = "user" if (group == "syscalls" or getattr(f, "is_user_pointer", False)) and \
            isinstance(base, IntTy) and base.is_char else "kernel"
        return PtrTy(base, space)
    if f.array_len:
        esize = f.size // f.array_len if f.array_len else 1
        et = BASE_TYPES.get(ename)
        if not isinstance(et, IntTy) or et.size != esize:
            et = int_ty(esize if esize in (1, 2, 4, 8) else 1, bool(f.signed))
        return ArrayTy(et, f.array_len)
    if f.dynamic:
        return ArrayTy(U8, 0)
    base = BASE_TYPES.get(ename)
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


