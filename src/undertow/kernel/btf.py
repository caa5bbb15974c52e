"""BTF: the kernel's own type information (/sys/kernel/btf/vmlinux and module split BTF).

Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst. A header, a
type section (``struct btf_type`` records of 12 bytes followed by kind-specific
data) and a string section. Type ids start at 1 (0 is ``void``); split BTF
(kernel modules) continues the ids and string offsets of its base.

Lazy by design (vmlinux has ~127k types): :class:`BTF` makes one pass that
records each type's byte offset and, for named types, a name -> ids index;
types are decoded only when asked for. The index is cached on disk
(undertow.kernel.cache) keyed by the blob's size and a CRC-32 of it, or the boot id
for the running kernel's vmlinux (see :func:`_load`); a cached index is only a hint:
a sample of its entries is checked against the blob at load and every entry when
a type is decoded, and a mismatch walks the blob again.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from array import array
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import BTFError, UndertowError, UnknownMemberError, UnknownTypeError, did_you_mean
from .cache import boot_id, read_cache, write_cache
from .roots import Roots

BTF_MAGIC = 0xEB9F
KINDS = ["void", "int", "ptr", "array", "struct", "union", "enum", "fwd", "typedef", "volatile",
         "const", "restrict", "func", "func_proto", "var", "datasec", "float", "decl_tag",
         "type_tag", "enum64"]
KIND_ID = {k: i for i, k in enumerate(KINDS)}
INDEX_VERSION = 3
_MODIFIERS = ("typedef", "volatile", "const", "restrict", "type_tag")

# --------------------------------------------------------------------------- type objects


class Type:
    """A decoded BTF type. ``kind`` is the lower-case kind name; ``id`` the type id.

    Plain classes with ``__slots__`` (not dataclasses): decoding and importing
    stay cheap, and a lookup touches a handful of types only.
    """

    __slots__ = ("btf", "id", "kind", "name", "size", "kind_flag", "type_id")

    def __init__(self, btf: "BTF", id: int, kind: str, name: str = "", size: int = 0,
                 kind_flag: bool = False, type_id: int = 0) -> None:
        self.btf, self.id, self.kind, self.name = btf, id, kind, name
        self.size, self.kind_flag, self.type_id = size, kind_flag, type_id

    @property
    def target(self) -> Optional["Type"]:
        """The referenced type (ptr, typedef, const..., func -> proto, var)."""
        return self.btf.type_by_id(self.type_id) if self.kind in (
            "ptr", "typedef", "volatile", "const", "restrict", "type_tag", "func", "var", "decl_tag") else None

    def __repr__(self) -> str:
        return f"<BTF {self.kind} {self.name or '(anon)'} #{self.id}>"


class Int(Type):
    __slots__ = ("encoding", "bits", "bit_offset")

    def __init__(self, btf: "BTF", id: int, name: str, size: int, encoding: int, bits: int, bit_offset: int) -> None:
        super().__init__(btf, id, "int", name, size)
        self.encoding, self.bits, self.bit_offset = encoding, bits, bit_offset

    @property
    def signed(self) -> bool:
        return bool(self.encoding & 1)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & 2) or self.name in ("char", "signed char", "unsigned char")

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & 4)


class Array(Type):
    __slots__ = ("elem_type", "index_type", "nelems")

    def __init__(self, btf: "BTF", id: int, elem_type: int, index_type: int, nelems: int) -> None:
        super().__init__(btf, id, "array")
        self.elem_type, self.index_type, self.nelems = elem_type, index_type, nelems

    @property
    def elem(self) -> Type:
        return self.btf.type_by_id(self.elem_type)


class Member:
    """A struct/union member: ``bit_offset`` from the start of its record (or of the
    outermost record, in :meth:`BTF.members`); ``bitfield_size`` 0 unless a bitfield."""

    __slots__ = ("name", "type", "bit_offset", "bitfield_size", "depth")

    def __init__(self, name: str, type: Type, bit_offset: int, bitfield_size: int = 0, depth: int = 0) -> None:
        self.name, self.type, self.bit_offset = name, type, bit_offset
        self.bitfield_size, self.depth = bitfield_size, depth

    @property
    def offset(self) -> int:
        return self.bit_offset // 8

    def __repr__(self) -> str:
        return f"Member({self.name!r}, {self.type!r}, bit_offset={self.bit_offset})"


class Record(Type):
    __slots__ = ("raw_members",)

    def __init__(self, btf: "BTF", id: int, kind: str, name: str, size: int, kind_flag: bool,
                 raw_members: Tuple[Tuple[str, int, int, int], ...]) -> None:
        super().__init__(btf, id, kind, name, size, kind_flag)
        self.raw_members = raw_members  # (name, type id, bit offset, bitfield size)

    @property
    def members(self) -> List[Member]:
        return [Member(n, self.btf.type_by_id(t), off, bs) for n, t, off, bs in self.raw_members]


class Enum(Type):
    __slots__ = ("values",)

    def __init__(self, btf: "BTF", id: int, kind: str, name: str, size: int, kind_flag: bool,
                 values: Tuple[Tuple[str, int], ...]) -> None:
        super().__init__(btf, id, kind, name, size, kind_flag)
        self.values = values

    @property
    def signed(self) -> bool:
        return self.kind_flag


class FuncProto(Type):
    __slots__ = ("raw_params",)

    def __init__(self, btf: "BTF", id: int, ret_id: int, raw_params: Tuple[Tuple[str, int], ...]) -> None:
        super().__init__(btf, id, "func_proto", "", 0, False, ret_id)
        self.raw_params = raw_params

    @property
    def ret(self) -> Type:
        return self.btf.type_by_id(self.type_id)

    @property
    def params(self) -> List[Tuple[str, Type]]:
        return [(n, self.btf.type_by_id(t)) for n, t in self.raw_params]


class Func(Type):
    __slots__ = ("linkage",)

    def __init__(self, btf: "BTF", id: int, name: str, proto_id: int, linkage: int) -> None:
        super().__init__(btf, id, "func", name, 0, False, proto_id)
        self.linkage = linkage

    @property
    def proto(self) -> "FuncProto":
        return self.btf.type_by_id(self.type_id)  # type: ignore[return-value]


class Var(Type):
    __slots__ = ("linkage",)

    def __init__(self, btf: "BTF", id: int, name: str, type_id: int, linkage: int) -> None:
        super().__init__(btf, id, "var", name, 0, False, type_id)
        self.linkage = linkage


class Datasec(Type):
    __slots__ = ("vars",)

    def __init__(self, btf: "BTF", id: int, name: str, size: int, vars: Tuple[Tuple[int, int, int], ...]) -> None:
        super().__init__(btf, id, "datasec", name, size)
        self.vars = vars  # (type id, offset, size)


class DeclTag(Type):
    __slots__ = ("component_idx",)

    def __init__(self, btf: "BTF", id: int, name: str, type_id: int, component_idx: int) -> None:
        super().__init__(btf, id, "decl_tag", name, 0, False, type_id)
        self.component_idx = component_idx


class MemberPath:
    """Where a member path lands: byte ``offset`` and total ``bit_offset`` from the start
    of the outer type, ``bitfield_size`` (0 if none), the member ``type`` and the
    member names crossed (``path``, anonymous members as ``""``)."""

    __slots__ = ("offset", "bit_offset", "bitfield_size", "type", "path")

    def __init__(self, offset: int, bit_offset: int, bitfield_size: int, type: Type, path: Tuple[str, ...]) -> None:
        self.offset, self.bit_offset, self.bitfield_size = offset, bit_offset, bitfield_size
        self.type, self.path = type, path


class FuncSignature:
    __slots__ = ("name", "ret", "params")

    def __init__(self, name: str, ret: Type, params: List[Tuple[str, Type]]) -> None:
        self.name, self.ret, self.params = name, ret, params


# --------------------------------------------------------------------------- the reader

#: u32 words after a type's 12-byte header: fixed per kind, and per vlen entry (btf.h)
_FIXED_WORDS = (0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0)
_PER_WORDS = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3)
_HDR = struct.Struct("<HBBIIIII")
_T = struct.Struct("<III")


class BTF:
    """One BTF blob (vmlinux, or a module's split BTF over ``base``)."""

    def __init__(self, data: bytes, base: Optional["BTF"] = None, name: str = "vmlinux",
                 index: Optional[Tuple[bytes, bytes]] = None) -> None:
        self.name = name
        self.base = base
        self.data = data
        if len(data) < 24:
            raise BTFError(f"{name}: BTF data too short ({len(data)} bytes)")
        magic = struct.unpack_from("<H", data)[0]
        if magic != BTF_MAGIC:
            raise BTFError(f"{name}: not BTF (magic {magic:#x}, expected {BTF_MAGIC:#x}; big-endian BTF is not supported)")
        _, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
        self.types_start = hdr_len + type_off
        self.types_end = self.types_start + type_len
        self.str_start = hdr_len + str_off
        self.str_end = self.str_start + str_len
        if version != 1 or self.types_end > len(data) or self.str_end > len(data) or hdr_len < 24:
            raise BTFError(f"{name}: malformed BTF header (version {version}, sections past the end)")
        self.first_id = base.next_id if base is not None else 1
        self.str_base = base.str_size if base is not None else 0
        self._cache: Dict[int, Type] = {}
        #: ``ids(name)`` answers: each is a scan of the name-offset array (~2-3 ms for
        #: vmlinux's ~125k types on the development VM, ~40 ms in the lab's emulated guests),
        #: and a tool's program asks for the same few names hundreds of times (filewatch's
        #: fentry set on 6.12: ~37 s of its start in the guest went to these scans)
        self._ids_memo: Dict[str, List[int]] = {}
        # set True for blobs whose strings are not deduplicated (tests, odd producers)
        self.exhaustive_strings = False
        #: the index came from the cache: each entry is checked when used (:meth:`_entry_ok`)
        #: and a mismatch rebuilds it (``on_reindex`` is then told, to rewrite the cache)
        self.index_from_cache = index is not None
        self.on_reindex: Any = None
        if index is None:
            index = self._build_index()
        self._set_index(index)
        if self.index_from_cache and not self._index_fits():
            raise BTFError(f"{self.name}: inconsistent index")

    def __getstate__(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["on_reindex"] = None  # the loader's hook (it holds the cache's roots) stays behind
        d["_ids_memo"] = {}
        return d

    def _set_index(self, index: Tuple[bytes, bytes]) -> None:
        offsets, name_offs = index
        self._offsets = array("I")
        self._offsets.frombytes(offsets)
        self._name_offs_bytes = name_offs
        self._name_offs = array("I")
        self._name_offs.frombytes(name_offs)
        if len(self._name_offs) != len(self._offsets):
            raise BTFError(f"{self.name}: inconsistent index")
        self.next_id = self.first_id + len(self._offsets)

    def _index_fits(self) -> bool:
        """Cheap check that an index (from the cache) describes this blob: the first and
        last entries and ~64 in between are where a walk of the type section puts them."""
        n = len(self._offsets)
        if not n:
            return self.types_start == self.types_end
        if self._offsets[0] != self.types_start:
            return False
        return all(self._entry_ok(i) for i in (*range(0, n, max(1, n // 64)), n - 1))

    def _entry_ok(self, i: int) -> bool:
        """Whether index entry ``i`` is a record of the type section with the name offset
        the index says, ending where the next entry (or the section) starts."""
        off = self._offsets[i]
        if not self.types_start <= off <= self.types_end - 12 or (off - self.types_start) % 4:
            return False
        name_off, info = struct.unpack_from("<II", self.data, off)
        kind = (info >> 24) & 0x1F
        if name_off != self._name_offs[i] or kind >= len(_FIXED_WORDS):
            return False
        end = off + 12 + 4 * (_FIXED_WORDS[kind] + _PER_WORDS[kind] * (info & 0xFFFF))
        return end == (self._offsets[i + 1] if i + 1 < len(self._offsets) else self.types_end)

    def _reindex(self) -> None:
        """Replace an index from the cache that does not describe this blob by a walk."""
        self._set_index(self._build_index())
        self._cache.clear()
        self._ids_memo.clear()
        self.__dict__.pop("_enumerators", None)
        self.index_from_cache = False
        if self.on_reindex is not None:
            self.on_reindex(self)

    @property
    def str_size(self) -> int:
        return self.str_base + (self.str_end - self.str_start)

    @classmethod
    def from_bytes(cls, data: bytes, base: Optional["BTF"] = None, name: str = "vmlinux") -> "BTF":
        return cls(data, base, name)

    # -- indexing
    def _build_index(self) -> Tuple[bytes, bytes]:
        """One pass over the type section: each type's byte offset and name offset.

        The section is a sequence of 32-bit words (every record is a multiple
        of 4 bytes), so it is walked as a ``memoryview`` of u32 — several times
        faster than ``struct.unpack_from`` per record.
        """
        if self.types_start % 4 or (self.types_end - self.types_start) % 4:
            raise BTFError(f"{self.name}: type section is not 4-byte aligned")
        words = memoryview(self.data)[self.types_start:self.types_end].cast("I")
        n = len(words)
        offsets = array("I")
        name_offs = array("I")
        add_off, add_name = offsets.append, name_offs.append
        # extra u32 words after the 3-word header: fixed per kind + per vlen entry
        fixed = list(_FIXED_WORDS) + [0] * 12
        per = list(_PER_WORDS) + [0] * 12
        i = 0
        base = self.types_start
        try:
            while i < n:
                info = words[i + 1]
                kind = (info >> 24) & 0x1F
                if kind > 19:
                    raise BTFError(f"{self.name}: unknown BTF kind {kind} at type {self.first_id + len(offsets)}",
                                   hints=["this BTF is newer than undertow knows"])
                add_off(base + 4 * i)
                add_name(words[i])
                i += 3 + fixed[kind] + per[kind] * (info & 0xFFFF)
        except IndexError:
            raise BTFError(f"{self.name}: type section truncated at type {self.first_id + len(offsets)}") from None
        finally:
            words.release()
        if i != n:
            raise BTFError(f"{self.name}: type section overruns its length at type {self.first_id + len(offsets) - 1}")
        return offsets.tobytes(), name_offs.tobytes()

    def _string_offsets(self, name: str) -> List[int]:
        """Offsets (in this blob's string numbering) of the exact string ``name``."""
        needle = b"\x00" + name.encode("utf-8", "surrogateescape") + b"\x00"
        out = []
        data, start, end = self.data, self.str_start, self.str_end
        # the first string is "" at offset 0, so every name is preceded by a NUL
        pos = data.find(needle, start, end)
        if pos >= 0:
            # Strings are deduplicated (btf__dedup(), pahole -J), so the first hit
            # is the only one for kernel BTF. Hand-made blobs may repeat a string:
            # ``exhaustive`` lookups (the error path) scan on.
            out.append(pos + 1 - start + self.str_base)
            while self.exhaustive_strings:
                pos = data.find(needle, pos + 1, end)
                if pos < 0:
                    break
                out.append(pos + 1 - start + self.str_base)
        return out

    def _str(self, off: int) -> str:
        if off < self.str_base:
            assert self.base is not None
            return self.base._str(off)
        return _cstr(self.data, self.str_start + off - self.str_base, self.str_end)

    # -- lookups
    def type_by_id(self, type_id: int) -> Type:
        """The type with id ``type_id`` (0 is ``void``)."""
        if type_id < self.first_id:
            if type_id == 0:
                return Type(self, 0, "void", "void")
            if self.base is not None:
                return self.base.type_by_id(type_id)
        t = self._cache.get(type_id)
        if t is None:
            i = type_id - self.first_id
            if not 0 <= i < len(self._offsets):
                raise UnknownTypeError(f"{self.name}: no BTF type id {type_id}")
            if self.index_from_cache and not self._entry_ok(i):
                self._reindex()  # a cached index this blob does not back: a miss
                return self.type_by_id(type_id)
            t = self._cache[type_id] = self._decode(type_id, self._offsets[i])
        return t

    def _decode(self, tid: int, off: int) -> Type:
        d = self.data
        try:
            name_off, info, size_type = _T.unpack_from(d, off)
            kind_n = (info >> 24) & 0x1F
            kind = KINDS[kind_n]
            vlen = info & 0xFFFF
            kflag = bool(info >> 31)
            name = self._str(name_off) if name_off else ""
            p = off + 12
            if kind == "int":
                (v,) = struct.unpack_from("<I", d, p)
                return Int(self, tid, name, size_type, (v >> 24) & 0xF, v & 0xFF, (v >> 16) & 0xFF)
            if kind == "array":
                et, it, n = struct.unpack_from("<III", d, p)
                return Array(self, tid, et, it, n)
            if kind in ("struct", "union"):
                ms = []
                for i in range(vlen):
                    mn, mt, mo = struct.unpack_from("<III", d, p + 12 * i)
                    bsz, bo = (mo >> 24, mo & 0xFFFFFF) if kflag else (0, mo)
                    ms.append((self._str(mn) if mn else "", mt, bo, bsz))
                return Record(self, tid, kind, name, size_type, kflag, tuple(ms))
            if kind in ("enum", "enum64"):
                vals = []
                for i in range(vlen):
                    if kind == "enum":
                        vn, vv = struct.unpack_from("<Ii" if kflag else "<II", d, p + 8 * i)
                    else:
                        vn, lo, hi = struct.unpack_from("<III", d, p + 12 * i)
                        vv = (hi << 32) | lo
                        if kflag and vv >= 1 << 63:
                            vv -= 1 << 64
                    vals.append((self._str(vn), vv))
                return Enum(self, tid, kind, name, size_type, kflag, tuple(vals))
            if kind == "func_proto":
                ps = []
                for i in range(vlen):
                    pn, pt = struct.unpack_from("<II", d, p + 8 * i)
                    ps.append((self._str(pn) if pn else "", pt))
                if ps and ps[-1] == ("", 0):
                    ps[-1] = ("...", 0)  # variadic
                return FuncProto(self, tid, size_type, tuple(ps))
            if kind == "func":
                return Func(self, tid, name, size_type, vlen)
            if kind == "var":
                (lk,) = struct.unpack_from("<I", d, p)
                return Var(self, tid, name, size_type, lk)
            if kind == "datasec":
                vs = tuple(struct.unpack_from("<III", d, p + 12 * i) for i in range(vlen))
                return Datasec(self, tid, name, size_type, vs)
            if kind == "decl_tag":
                (ci,) = struct.unpack_from("<i", d, p)
                return DeclTag(self, tid, name, size_type, ci)
            if kind == "float":
                return Type(self, tid, kind, name, size_type, kflag)
            if kind == "fwd":
                return Type(self, tid, kind, name, 0, kflag)
            return Type(self, tid, kind, name, 0, kflag, size_type)  # ptr, typedef, modifiers
        except (struct.error, IndexError):
            raise BTFError(f"{self.name}: type {tid} is truncated or corrupt") from None

    def ids(self, name: str) -> List[int]:
        """Ids of every type named ``name`` (in this BTF and its base).

        BTF strings are deduplicated, so the name is found once in the string
        section; the types carrying that name offset are then found with
        ``bytes.find`` over the packed name-offset array (aligned hits only).
        """
        hit = self._ids_memo.get(name)
        if hit is None:
            hit = self._ids_memo[name] = self._scan_ids(name)
        return list(hit)

    def _scan_ids(self, name: str) -> List[int]:
        out = self.base.ids(name) if self.base is not None else []
        mine = []
        blob = self._name_offs_bytes
        soffs = self._string_offsets(name) if name else []
        for soff in soffs:
            pat = struct.pack("<I", soff)
            pos = blob.find(pat)
            while pos >= 0:
                if pos % 4 == 0:
                    mine.append(self.first_id + pos // 4)
                pos = blob.find(pat, pos + 1)
        # A cached index must not name other records, nor hide a type: when the string
        # exists but no entry carries it, the blob is walked again to be sure.
        if self.index_from_cache and (not all(self._entry_ok(i - self.first_id) for i in mine)
                                      or (soffs and not mine)):
            self._reindex()
            return self._scan_ids(name)
        return sorted(out + mine)

    def _kind_of(self, tid: int) -> int:
        off = self._offsets[tid - self.first_id]
        if not self.types_start <= off <= self.types_end - 12:
            return -1  # a bad cached index: type_by_id rebuilds it
        return (struct.unpack_from("<I", self.data, off + 4)[0] >> 24) & 0x1F

    def names(self, kind: Optional[str] = None) -> Iterator[str]:
        """Names of the types of ``kind`` (every named type when None)."""
        if self.base is not None:
            yield from self.base.names(kind)
        want = KIND_ID[kind] if kind is not None else None
        seen = set()
        for i, noff in enumerate(self._name_offs):
            if not noff or noff in seen:
                continue
            if want is not None and self._kind_of(self.first_id + i) != want:
                continue
            seen.add(noff)
            yield self._str(noff)

    def ids_by_name(self, kind: str) -> Dict[str, int]:
        """``{name: id}`` of every type of ``kind`` (the first of a name), in one pass: for
        callers that look up thousands of names (``-lv`` of every kernel function), where
        :meth:`ids` (a scan of the string section per name) would be quadratic."""
        out = self.base.ids_by_name(kind) if self.base is not None else {}
        want = KIND_ID[kind]
        for i, noff in enumerate(self._name_offs):
            if noff and self._kind_of(self.first_id + i) == want:
                out.setdefault(self._str(noff), self.first_id + i)
        return out

    def func_proto_by_id(self, func_id: int) -> FuncSignature:
        """The prototype of the FUNC type ``func_id`` (see :meth:`func_proto`)."""
        f = self.type_by_id(func_id)
        proto = self.type_by_id(getattr(f, "type_id", 0))
        if not isinstance(proto, FuncProto):
            raise BTFError(f"function {f.name} has no prototype in BTF")
        return FuncSignature(f.name, proto.ret, proto.params)

    def find(self, name: str, kind: Optional[str] = None, hints: bool = True) -> Type:
        """The type named ``name`` (of ``kind``); a complete struct wins over a ``fwd``.

        Raises :class:`UnknownTypeError`; with ``hints`` it names the closest names, which
        costs a comparison with every name of the kind (~1.5 s over vmlinux's 70k functions):
        callers that only ask whether the type exists pass ``hints=False``."""
        if kind is not None and kind not in KIND_ID:
            raise UnknownTypeError(f"unknown BTF kind {kind!r}", hints=["kinds: " + ", ".join(KINDS[1:])])
        cands = [self.type_by_id(i) for i in self.ids(name)]
        if kind is not None:
            cands = [t for t in cands if t.kind == kind]
        if cands:
            if kind is None:
                order = {"struct": 0, "union": 0, "typedef": 1, "int": 1, "enum": 2, "func": 3, "fwd": 9}
                cands.sort(key=lambda t: order.get(t.kind, 5))
            return cands[0]
        what = f"{kind} {name}" if kind else name
        if not hints:
            raise UnknownTypeError(f"no type '{what}' in {self.name} BTF")
        pool = list(self.names(kind)) if kind else list(self._all_names())
        raise UnknownTypeError(f"no type '{what}' in {self.name} BTF",
                               hints=[did_you_mean(name, pool)])

    def _all_names(self) -> Iterator[str]:
        return self.names(None)

    def find_id(self, name: str, kind: Optional[str] = None) -> int:
        return self.find(name, kind).id

    # -- type algebra
    def strip(self, t: Union[Type, str]) -> Type:
        """``t`` without typedef/const/volatile/restrict/type_tag layers."""
        t = self._as_type(t)
        for _ in range(64):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type_by_id(t.type_id)
        raise BTFError(f"type loop at {t!r}")

    def sizeof(self, t: Union[Type, str]) -> int:
        t = self._as_type(t)
        s = self.strip(t)
        if s.kind in ("int", "struct", "union", "enum", "enum64", "float", "datasec"):
            return s.size
        if s.kind == "ptr":
            return 8
        if s.kind == "array":
            assert isinstance(s, Array)
            return s.nelems * self.sizeof(s.elem)
        if s.kind == "fwd":
            full = self._complete(s)
            if full is not None:
                return full.size
        raise BTFError(f"{self.type_str(t)} has no size")

    def _complete(self, t: Type) -> Optional[Type]:
        """The complete struct/union for a ``fwd`` declaration, if BTF has one."""
        want = "union" if t.kind_flag else "struct"
        for i in self.ids(t.name):
            c = self.type_by_id(i)
            if c.kind == want:
                return c
        return None

    def _as_type(self, t: Union[Type, str, int]) -> Type:
        if isinstance(t, Type):
            return t
        if isinstance(t, int):
            return self.type_by_id(t)
        return self.parse_type(t)

    def type_str(self, t: Union[Type, str, int]) -> str:
        """C spelling: ``struct sock *``, ``char[16]``, ``const char *``, ``u32``."""
        t = self._as_type(t)
        return _spell(self, t, 0)

    def enum_values(self, t: Union[Type, str]) -> Dict[str, int]:
        s = self.strip(self._as_type(t) if not isinstance(t, str) else self.find(t, "enum"))
        if not isinstance(s, Enum):
            raise BTFError(f"{self.type_str(s)} is not an enum")
        return dict(s.values)

    def enum_constant(self, name: str) -> Optional[Tuple[int, Type]]:
        """The value of enumerator ``name`` (``TCP_ESTABLISHED``) and its enum type, or None.

        Enumerators live inside (often anonymous) ``BTF_KIND_ENUM``/``ENUM64``
        types, so the first call decodes every enum once (~100 ms on vmlinux)
        and keeps a name -> (value, type) table.
        """
        table = getattr(self, "_enumerators", None)
        if table is None:
            table = {}
            kinds = (KIND_ID["enum"], KIND_ID.get("enum64", -1))
            for i in range(len(self._offsets)):
                tid = self.first_id + i
                if self._kind_of(tid) in kinds:
                    t = self.type_by_id(tid)
                    for n, v in getattr(t, "values", ()):
                        table.setdefault(n, (v, t))
            self._enumerators = table
        hit = table.get(name)
        if hit is None and self.base is not None:
            return self.base.enum_constant(name)
        return hit

    def func_proto(self, name: str, hints: bool = True) -> FuncSignature:
        """The prototype of kernel function ``name`` (FUNC -> FUNC_PROTO), with argument names
        (``hints``: name close functions when there is none, see :meth:`find`)."""
        f = self.find(name, "func", hints)
        proto = self.type_by_id(f.type_id)
        if not isinstance(proto, FuncProto):
            raise BTFError(f"function {name} has no prototype in BTF")
        return FuncSignature(name, proto.ret, proto.params)

    def record(self, t: Union[Type, str]) -> Record:
        """The struct/union ``t`` (typedefs stripped, fwd completed)."""
        if isinstance(t, str):
            t = self.parse_type(t)
        s = self.strip(t)
        if s.kind == "fwd":
            c = self._complete(s)
            if c is None:
                raise UnknownTypeError(f"{'union' if s.kind_flag else 'struct'} {s.name} is only declared in BTF")
            s = c
        if not isinstance(s, Record):
            raise UnknownMemberError(f"{self.type_str(t)} is not a struct or union, it has no members")
        return s

    def member(self, t: Union[Type, str], path: Union[str, Sequence[Union[str, int]]]) -> MemberPath:
        """Resolve ``a.b[2].c`` inside ``t`` (through anonymous members and arrays, not pointers)."""
        steps = _split_path(path) if isinstance(path, str) else list(path)
        cur: Type = self._as_type(t) if not isinstance(t, str) else self.record(t)
        bit = 0
        bsz = 0
        crossed: List[str] = []
        for step in steps:
            if isinstance(step, int):
                s = self.strip(cur)
                if not isinstance(s, Array):
                    raise UnknownMemberError(f"{self.type_str(cur)} is not an array; cannot index [{step}]")
                if not 0 <= step < max(s.nelems, 1) and s.nelems:
                    raise UnknownMemberError(f"index {step} is past the end of {self.type_str(cur)}")
                bit += step * self.sizeof(s.elem) * 8
                cur = s.elem
                continue
            rec = self.record(cur)
            found = self._find_member(rec, step)
            if found is None:
                raise UnknownMemberError(
                    f"{self.type_str(rec)} has no member named '{step}'",
                    hints=[did_you_mean(step, [m.name for m in self.members(rec) if m.name])])
            bit += sum(m.bit_offset for m, _ in found)
            last = found[-1][0]
            bsz = last.bitfield_size
            crossed.extend(n for _, n in found)
            cur = last.type
        return MemberPath(bit // 8, bit, bsz, cur, tuple(crossed))

    def member_witness(self, t: str, path: str) -> Optional[bytes]:
        """How ``path`` (dotted member names) is reached in struct ``t``, for the member
        offset cache (undertow.kernel.btfcheck checks it against the blob alone): ``b"<blob
        size> <byte offset> <record>:<index>,..."``, each struct/union record crossed (its
        byte offset in the blob) and the member taken there, anonymous ones included. None
        where that cannot be said (split BTF, array steps, ``t`` naming a typedef)."""
        from .btfcheck import first_record_name

        steps = path.split(".")
        if self.base is not None or not all(s.isidentifier() for s in steps):
            return None
        cur: Type = self.record(t)
        if cur.name != first_record_name(t):
            return None
        chain: List[Tuple[int, int]] = []
        bit = 0
        for step in steps:
            rec = self.record(cur)
            found = self._member_chain(rec, step)
            if found is None:
                return None
            for r, i in found:
                chain.append((self._offsets[r.id - self.first_id], i))
                bit += r.raw_members[i][2]
            r, i = found[-1]
            cur = self.type_by_id(r.raw_members[i][1])
        return f"{len(self.data)} {bit // 8} {','.join(f'{o}:{i}' for o, i in chain)}".encode()

    def _member_chain(self, rec: Record, name: str, depth: int = 0) -> Optional[List[Tuple[Record, int]]]:
        """:meth:`_find_member` as (record, member index) pairs."""
        for i, (n, _tid, _off, _bs) in enumerate(rec.raw_members):
            if n == name:
                return [(rec, i)]
        if depth > 8:
            return None
        for i, (n, tid, _off, _bs) in enumerate(rec.raw_members):
            if not n:
                try:
                    inner = self.record(self.type_by_id(tid))
                except (UnknownMemberError, UnknownTypeError):
                    continue
                sub = self._member_chain(inner, name, depth + 1)
                if sub is not None:
                    return [(rec, i)] + sub
        return None

    def _find_member(self, rec: Record, name: str, depth: int = 0) -> Optional[List[Tuple[Member, str]]]:
        # Work on raw (name, type id, ...) tuples: only the types on the path get decoded.
        for n, tid, off, bs in rec.raw_members:
            if n == name:
                return [(Member(n, self.type_by_id(tid), off, bs), name)]
        if depth > 8:
            return None
        for n, tid, off, bs in rec.raw_members:
            if not n:
                m = Member(n, self.type_by_id(tid), off, bs)
                try:
                    inner = self.record(m.type)
                except (UnknownMemberError, UnknownTypeError):
                    continue
                sub = self._find_member(inner, name, depth + 1)
                if sub is not None:
                    return [(m, "")] + sub
        return None

    def members(self, t: Union[Type, str]) -> List[Member]:
        """Members for display, anonymous struct/union children flattened (with ``depth``)."""
        out: List[Member] = []

        def walk(rec: Record, base: int, depth: int) -> None:
            for m in rec.members:
                out.append(Member(m.name, m.type, base + m.bit_offset, m.bitfield_size, depth))
                if not m.name and depth < 8:
                    try:
                        walk(self.record(m.type), base + m.bit_offset, depth + 1)
                    except (UnknownMemberError, UnknownTypeError):
                        pass

        walk(self.record(t), 0, 0)
        return out

    def parse_type(self, text: str) -> Type:
        """A C type name: ``struct sock *``, ``unsigned int``, ``u32``, ``char[16]``, ``const char *``."""
        m = re.fullmatch(r"\s*(.*?)\s*((?:\[\s*\d+\s*\])*)\s*", text)
        assert m is not None
        body, dims = m.group(1), re.findall(r"\d+", m.group(2))
        stars = body.count("*")
        words = [w for w in body.replace("*", " ").split() if w not in ("const", "volatile", "restrict", "__user")]
        if not words:
            raise UnknownTypeError(f"no type name in {text!r}")
        kind: Optional[str] = None
        if words[0] in ("struct", "union", "enum"):
            kind, words = words[0], words[1:]
            if len(words) != 1:
                raise UnknownTypeError(f"bad type name {text!r}")
        name = " ".join(_canon_int(words)) if kind is None else words[0]
        if kind is None and name == "void":
            base: Type = Type(self, 0, "void", "void")
        elif kind == "struct":
            cands = [self.type_by_id(i) for i in self.ids(name)]
            full = [c for c in cands if c.kind == "struct"] or [c for c in cands if c.kind == "fwd" and not c.kind_flag]
            if not full:
                raise UnknownTypeError(f"no struct {name} in {self.name} BTF",
                                       hints=[did_you_mean(name, self.names("struct"))])
            base = full[0]
        else:
            base = self.find(name, kind) if kind else self._find_plain(name)
        for _ in range(stars):
            base = Type(self, -1, "ptr", "", 8, False, base.id) if base.id >= 0 else _SynthPtr(self, base)
        for n in reversed(dims):
            base = _SynthArray(self, base, int(n))
        return base

    def _find_plain(self, name: str) -> Type:
        cands = [self.type_by_id(i) for i in self.ids(name)]
        for want in ("typedef", "int", "float", "struct", "union", "enum"):
            for c in cands:
                if c.kind == want:
                    return c
        raise UnknownTypeError(f"no type '{name}' in {self.name} BTF",
                               hints=[did_you_mean(name, list(self.names("typedef")) + list(self.names("int")))])


class _SynthPtr(Type):
    """A pointer type parse_type made up (to a type that is itself synthetic)."""

    __slots__ = ("_to",)

    def __init__(self, btf: BTF, to: Type) -> None:
        super().__init__(btf, -1, "ptr", "", 8)
        self._to = to

    @property
    def target(self) -> Type:  # type: ignore[override]
        return self._to


class _SynthArray(Array):
    __slots__ = ("_elem",)

    def __init__(self, btf: BTF, elem: Type, n: int) -> None:
        Array.__init__(self, btf, -1, elem.id, 0, n)
        self._elem = elem

    @property
    def elem(self) -> Type:  # type: ignore[override]
        return self._elem


def _canon_int(words: List[str]) -> List[str]:
    w = list(words)
    if w in (["unsigned"],):
        return ["unsigned", "int"]
    if w in (["signed"],):
        return ["int"]
    if w == ["long", "unsigned", "int"]:
        return ["long", "unsigned", "int"]
    return w


def _spell(btf: BTF, t: Type, depth: int) -> str:
    if depth > 16:
        return "..."
    k = t.kind
    if k == "void":
        return "void"
    if k in ("int", "float", "typedef"):
        return t.name
    if k in ("struct", "union", "enum", "enum64"):
        return f"{'enum' if k == 'enum64' else k} {t.name}" if t.name else f"{k} {{...}}"
    if k == "fwd":
        return f"{'union' if t.kind_flag else 'struct'} {t.name}"
    if k == "ptr":
        tgt = t.target if isinstance(t, _SynthPtr) else btf.type_by_id(t.type_id)
        if tgt.kind == "func_proto":
            return _spell_fnptr(btf, tgt, depth)
        inner = _spell(btf, tgt, depth + 1)
        return inner + ("*" if inner.endswith("*") else " *")
    if k in ("const", "volatile", "restrict"):
        inner = btf.type_by_id(t.type_id)
        s = _spell(btf, inner, depth + 1)
        return f"{s} {k}" if s.endswith("*") else f"{k} {s}"
    if k == "type_tag":
        return _spell(btf, btf.type_by_id(t.type_id), depth + 1)
    if k == "array":
        assert isinstance(t, Array)
        return f"{_spell(btf, t.elem, depth + 1)}[{t.nelems}]"
    if k == "func_proto":
        return _spell_fnptr(btf, t, depth)
    return t.name or k


def _spell_fnptr(btf: BTF, proto: Type, depth: int) -> str:
    assert isinstance(proto, FuncProto)
    args = ", ".join(_spell(btf, pt, depth + 1) if pn != "..." else "..." for pn, pt in
                     [(n, btf.type_by_id(i)) for n, i in proto.raw_params]) or "void"
    return f"{_spell(btf, proto.ret, depth + 1)} (*)({args})"


def _split_path(path: str) -> List[Union[str, int]]:
    out: List[Union[str, int]] = []
    for part in re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\[\s*\d+\s*\]", path):
        out.append(int(part.strip("[] ")) if part.startswith("[") else part)
    return out


def _cstr(data: bytes, start: int, end: int) -> str:
    if not 0 <= start < end:
        raise BTFError("string offset outside the string section")
    stop = data.find(b"\x00", start, end)
    if stop < 0:
        stop = end
    return data[start:stop].decode("utf-8", "replace")


# --------------------------------------------------------------------------- loading with the index cache


def _read_blob(path: str) -> Any:
    """The BTF blob: mapped read-only where the kernel allows it (``/sys/kernel/btf/*``
    since 6.16, commit a539e2a6d112 "btf: Allow mmap of vmlinux btf": MAP_PRIVATE,
    PROT_READ), so only the pages a lookup touches are read; else read whole (~5 ms for
    vmlinux's 5.5 MB)."""
    import mmap

    with open(path, "rb") as f:
        head = f.read(4)
        if head == b"\x7fELF":
            return _elf_btf(path)
        f.seek(0)
        try:
            m = mmap.mmap(f.fileno(), 0, mmap.MAP_PRIVATE, mmap.PROT_READ)
            if len(m) >= 24 and m[:2] == b"\x9f\xeb":
                return m
            m.close()
        except (OSError, ValueError):
            pass
        return f.read()


def _elf_btf(path: str) -> bytes:
    """The ``.BTF`` section of an ELF file (a vmlinux built with CONFIG_DEBUG_INFO_BTF)."""
    from .elffile import ELFFile

    try:
        elf = ELFFile(path)
        sec = elf.section(".BTF")
        data = elf.section_data(sec) if sec is not None else b""
    except UndertowError as e:
        raise BTFError(f"{path}: {e.message}") from None
    if not data:
        raise BTFError(f"{path} is an ELF file without a .BTF section",
                       hints=["give a vmlinux built with CONFIG_DEBUG_INFO_BTF=y, or its raw BTF "
                              "(/sys/kernel/btf/vmlinux of that kernel)"])
    return bytes(data)


def _load(path: str, roots: Roots, base: Optional[BTF], name: str) -> BTF:
    try:
        data = _read_blob(path)
    except FileNotFoundError:
        raise BTFError(f"no BTF at {path}",
                       hints=["this kernel was built without CONFIG_DEBUG_INFO_BTF=y: struct member names "
                              "and BTF-typed probes are unavailable; tracepoints, uprobes and raw registers "
                              "still work"]) from None
    except PermissionError:
        raise BTFError(f"cannot read {path}: permission denied", hints=["run as root"]) from None
    except OSError as e:
        raise BTFError(f"cannot read {path}: {e.strerror}") from None
    # Keyed by content: CRC-32 of the whole blob plus its size (zlib's crc32 hashes
    # 5.5 MB in ~1.5 ms; hashlib would cost ~12 ms just to import OpenSSL). The running
    # kernel's vmlinux BTF cannot change before a reboot: keyed by the boot id instead,
    # so a mapped blob is not read whole just to be hashed.
    # (a BTF file given instead, roots.btf, is keyed by its content: it may be another kernel's)
    boot = boot_id(roots) if roots.live and name == "vmlinux" and roots.btf is None else None
    if boot in ("", "unknown-boot"):
        boot = None
    digest = f"boot-{boot}" if boot else f"{zlib.crc32(data):08x}"
    key = f"btf-index-v{INDEX_VERSION}-{name}-{len(data)}-{digest}"
    # The index: u32 type offsets then u32 name offsets, one of each per type; at most one
    # type per 12 bytes of the type section. BTF() checks it against the blob (a sample at
    # load, each entry when used) and walks the blob again when they disagree.
    cached = read_cache(roots, key, limit=(len(data) // 12 + 1) * 8)
    index = None
    if cached and len(cached) % 8 == 0:
        half = len(cached) // 2
        index = (cached[:half], cached[half:])

    def store(b: BTF) -> None:
        fresh = b._offsets.tobytes() + b._name_offs_bytes
        if fresh != cached:
            write_cache(roots, key, fresh)

    try:
        btf = BTF(data, base, name, index)
    except BTFError:
        if index is None:
            raise
        btf = BTF(data, base, name, None)  # a corrupt cache entry: rebuild
        index = None
    if index is None:
        store(btf)
    else:
        btf.on_reindex = store
    return btf


_VMLINUX: Dict[Tuple[str, Optional[str]], BTF] = {}


def load_vmlinux(roots: Roots) -> BTF:
    """The kernel's BTF (``roots.btf_vmlinux``); raises :class:`BTFError` with a hint when absent."""
    key = (roots.btf_vmlinux, roots.cache_dir)
    b = _VMLINUX.get(key)
    if b is None:
        b = _VMLINUX[key] = _load(roots.btf_vmlinux, roots, None, "vmlinux")
    return b


def load_module_btf(roots: Roots, module: str, base: BTF) -> BTF:
    """A module's split BTF (``/sys/kernel/btf/<module>``) over ``base``."""
    if "/" in module or module.startswith("."):
        raise BTFError(f"bad module name {module!r}")
    return _load(os.path.join(roots.btf_dir, module), roots, base, module)
