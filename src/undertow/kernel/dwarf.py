"""A small reader of DWARF ``.debug_info`` (versions 2 to 5): functions, their parameters
and the types they use, for uprobe arguments by name (bpftrace's ``args->NAME`` and
``-lv``) and casts to a program's own structs.

Only what that needs is read: each compile unit's tree of entries (tag, attributes,
children) with the forms of DWARF 2-5 (``.debug_str``, ``.debug_line_str``,
``.debug_str_offsets``; ``SHF_COMPRESSED`` sections are inflated with zlib). Locations,
line tables and macros are skipped. The file is hostile input: every read is bounded and
a malformed unit raises :class:`undertow.errors.ELFError` (DWARF 5, "Debugging
Information Format", https://dwarfstd.org/dwarf5std.html).

    info = DwarfInfo.load("/usr/bin/prog")       # None: no .debug_info
    info.function("main")                        # [("argc", DIE), ("argv", DIE)]
    info.type_text(die)                          # "char**", "struct Foo*"
"""

from __future__ import annotations

import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from ..errors import ELFError

__all__ = ["DwarfInfo", "Die", "TAG", "MAX_DEBUG_INFO"]

#: The tags this reader names (DW_TAG_*).
TAG = {
    "array_type": 0x01, "enumeration_type": 0x04, "formal_parameter": 0x05, "member": 0x0D,
    "pointer_type": 0x0F, "reference_type": 0x10, "compile_unit": 0x11, "structure_type": 0x13,
    "subroutine_type": 0x15, "typedef": 0x16, "union_type": 0x17, "unspecified_parameters": 0x18,
    "subrange_type": 0x21, "base_type": 0x24, "const_type": 0x26, "enumerator": 0x28,
    "subprogram": 0x2E, "variable": 0x34, "volatile_type": 0x35, "restrict_type": 0x37,
    "atomic_type": 0x47,
}
_AT_NAME, _AT_BYTE_SIZE, _AT_TYPE, _AT_MEMBER_LOC = 0x03, 0x0B, 0x49, 0x38
_AT_UPPER_BOUND, _AT_COUNT, _AT_DECLARATION, _AT_ENCODING = 0x2F, 0x37, 0x3C, 0x3E
_AT_SPECIFICATION, _AT_ABSTRACT_ORIGIN, _AT_STR_OFFSETS_BASE = 0x47, 0x31, 0x72
_AT_BIT_SIZE, _AT_DATA_BIT_OFFSET, _AT_BIT_OFFSET = 0x0D, 0x6B, 0x0C

#: .debug_info larger than this is not read (a debug build of a browser is ~1 GiB).
MAX_DEBUG_INFO = 64 << 20
_QUALIFIERS = (0x26, 0x35, 0x37, 0x47)  # const, volatile, restrict, atomic


class Die:
    """One debugging information entry: ``offset`` in ``.debug_info``, ``tag``, ``attrs``
    (attribute number -> value: an int, a str, bytes for blocks; references are absolute
    ``.debug_info`` offsets) and ``children`` (offsets)."""

    __slots__ = ("offset", "tag", "attrs", "children")

    def __init__(self, offset: int, tag: int, attrs: Dict[int, Any]) -> None:
        self.offset, self.tag, self.attrs = offset, tag, attrs
        self.children: List[int] = []

    @property
    def name(self) -> str:
        v = self.attrs.get(_AT_NAME)
        return v if isinstance(v, str) else ""


class _Buf:
    """Bounded little/big-endian reads from one section."""

    __slots__ = ("data", "pos", "end", "e")

    def __init__(self, data: bytes, pos: int, end: int, endian: str) -> None:
        self.data, self.pos, self.end, self.e = data, pos, end, endian

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ELFError("truncated DWARF data (.debug_info)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little" if self.e == "<" else "big")

    def _leb(self, signed: bool) -> int:
        out = shift = 0
        while True:
            if self.pos >= self.end or shift > 70:
                raise ELFError("bad LEB128 number in DWARF data")
            b = self.data[self.pos]
            self.pos += 1
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out - (1 << shift) if signed and b & 0x40 else out

    def uleb(self) -> int:
        return self._leb(False)

    def sleb(self) -> int:
        return self._leb(True)

    def cstr(self) -> str:
        i = self.data.find(b"\0", self.pos, self.end)
        if i < 0:
            raise ELFError("unterminated string in DWARF data")
        s = bytes(self.data[self.pos:i]).decode("utf-8", "replace")
        self.pos = i + 1
        return s


def _cstr_at(data: bytes, off: int) -> str:
    if not 0 <= off < len(data):
        return ""
    i = data.find(b"\0", off)
    return bytes(data[off:i if i >= 0 else len(data)]).decode("utf-8", "replace")


class DwarfInfo:
    """Every entry of a file's ``.debug_info``, by offset, with indexes of its functions
    and named types."""

    def __init__(self, sections: Dict[str, bytes], endian: str = "<") -> None:
        self.e = endian
        self.dies: Dict[int, Die] = {}
        self.functions: Dict[str, Die] = {}
        self.types: Dict[str, Die] = {}
        self._secs = sections
        self._parse()

    @classmethod
    def load(cls, path: str) -> Optional["DwarfInfo"]:
        """The DWARF of ELF file ``path``, or None when it has no ``.debug_info``. Raises
        :class:`ELFError` for an unreadable or malformed file."""
        from .elffile import ELFFile

        with ELFFile(path) as f:
            info = f.section(".debug_info")
            if info is None or info.size == 0:
                return None
            if info.size > MAX_DEBUG_INFO:
                raise ELFError(f"{path}: .debug_info is {info.size >> 20} MiB: too large to read here")
            secs = {}
            for name in (".debug_info", ".debug_abbrev", ".debug_str", ".debug_line_str", ".debug_str_offsets"):
                sec = f.section(name)
                if sec is not None and sec.size:
                    secs[name] = _inflate(f.section_data(sec), sec.flags, f.bits == 64, path)
            endian = "<" if f.endian == "little" else ">"
        return cls(secs, endian)

    # -- parsing
    def _parse(self) -> None:
        info = self._secs.get(".debug_info", b"")
        pos = 0
        while pos + 11 <= len(info):
            pos = self._unit(info, pos)

    def _unit(self, info: bytes, start: int) -> int:
        b = _Buf(info, start, len(info), self.e)
        length = b.uint(4)
        off_size = 4
        if length == 0xFFFFFFFF:
            length, off_size = b.uint(8), 8
        end = b.pos + length
        if end > len(info) or length < 7:
            raise ELFError("truncated DWARF compile unit")
        b.end = end
        version = b.uint(2)
        if not 2 <= version <= 5:
            return end  # a unit of a version not known here: skipped whole
        if version >= 5:
            unit_type = b.uint(1)
            addr_size = b.uint(1)
            abbrev_off = b.uint(off_size)
            if unit_type in (2, 6):  # type units (signature, type offset), skeleton/split (dwo id)
                b.take(8 + off_size if unit_type == 2 else 8)
            elif unit_type in (4, 5):
                b.take(8)
        else:
            abbrev_off = b.uint(off_size)
            addr_size = b.uint(1)
        abbrevs = self._abbrevs(abbrev_off)
        ctx = (version, off_size, addr_size, start)
        stack: List[Die] = []
        # DW_AT_str_offsets_base (of the unit's first entry); strx values read before it
        # is known are resolved once it is
        str_base = [8, version < 5]
        while b.pos < end:
            at = b.pos
            code = b.uleb()
            if code == 0:
                if stack:
                    stack.pop()
                continue
            ab = abbrevs.get(code)
            if ab is None:
                raise ELFError(f"DWARF entry at {at:#x} uses an unknown abbreviation {code}")
            tag, has_children, specs = ab
            attrs: Dict[int, Any] = {}
            for name, form, implicit in specs:
                attrs[name] = self._value(b, form, implicit, ctx, str_base)
            if not str_base[1]:
                if isinstance(attrs.get(_AT_STR_OFFSETS_BASE), int):
                    str_base[0] = attrs[_AT_STR_OFFSETS_BASE]
                str_base[1] = True
                for k, v in list(attrs.items()):
                    if isinstance(v, _StrIndex):
                        attrs[k] = self._strx(v.index, off_size, str_base[0])
            die = Die(at, tag, attrs)
            self.dies[at] = die
            if stack:
                stack[-1].children.append(at)
            if len(stack) <= 1:
                self._index(die)
            if has_children:
                stack.append(die)
        return end

    def _index(self, die: Die) -> None:
        name = die.name
        if not name or die.attrs.get(_AT_DECLARATION):
            return
        if die.tag == TAG["subprogram"]:
            self.functions.setdefault(name, die)
        elif die.tag in (TAG["structure_type"], TAG["union_type"], TAG["enumeration_type"]):
            kind = {TAG["structure_type"]: "struct", TAG["union_type"]: "union"}.get(die.tag, "enum")
            self.types.setdefault(f"{kind} {name}", die)
        elif die.tag in (TAG["typedef"], TAG["base_type"]):
            self.types.setdefault(name, die)

    def _abbrevs(self, off: int) -> Dict[int, Tuple[int, bool, List[Tuple[int, int, int]]]]:
        data = self._secs.get(".debug_abbrev", b"")
        b = _Buf(data, off, len(data), self.e)
        out: Dict[int, Tuple[int, bool, List[Tuple[int, int, int]]]] = {}
        while True:
            code = b.uleb()
            if code == 0:
                return out
            tag = b.uleb()
            children = b.uint(1) != 0
            specs = []
            while True:
                name, form = b.uleb(), b.uleb()
                if name == 0 and form == 0:
                    break
                implicit = b.sleb() if form == 0x21 else 0
                specs.append((name, form, implicit))
            out[code] = (tag, children, specs)

    def _value(self, b: _Buf, form: int, implicit: int, ctx: Tuple[int, int, int, int],  # noqa: C901
               str_base: List[Any]) -> Any:
        version, off_size, addr_size, unit = ctx
        if form == 0x01:
            return b.uint(addr_size)
        if form in (0x0B, 0x11):
            v = b.uint(1)
            return v + unit if form == 0x11 else v
        if form in (0x05, 0x12):
            v = b.uint(2)
            return v + unit if form == 0x12 else v
        if form in (0x06, 0x13):
            v = b.uint(4)
            return v + unit if form == 0x13 else v
        if form in (0x07, 0x14, 0x20):
            v = b.uint(8)
            return v + unit if form == 0x14 else v
        if form == 0x15:
            return b.uleb() + unit
        if form == 0x0F:
            return b.uleb()
        if form == 0x0D:
            return b.sleb()
        if form == 0x08:
            return b.cstr()
        if form in (0x0E, 0x1F, 0x1D, 0x1F21):
            off = b.uint(off_size)
            sec = ".debug_line_str" if form == 0x1F else ".debug_str"
            return _cstr_at(self._secs.get(sec, b""), off) if form in (0x0E, 0x1F) else ""
        if form in (0x10, 0x17, 0x1C, 0x1F20):
            size = addr_size if form == 0x10 and version == 2 else (4 if form == 0x1C else off_size)
            return b.uint(size)
        if form in (0x1A, 0x25, 0x26, 0x27, 0x28, 0x1F02):
            idx = b.uleb() if form in (0x1A, 0x1F02) else b.uint({0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4}[form])
            return self._strx(idx, off_size, str_base[0]) if str_base[1] else _StrIndex(idx)
        if form in (0x1B, 0x22, 0x23, 0x1F01):
            return b.uleb()
        if form in (0x29, 0x2A, 0x2B, 0x2C):
            return b.uint(form - 0x28)
        if form == 0x24:
            return b.uint(8)
        if form == 0x1E:
            return b.take(16)
        if form in (0x0C,):
            return b.uint(1)
        if form == 0x19:
            return 1
        if form == 0x21:
            return implicit
        if form in (0x09, 0x18):
            return b.take(b.uleb())
        if form == 0x0A:
            return b.take(b.uint(1))
        if form == 0x03:
            return b.take(b.uint(2))
        if form == 0x04:
            return b.take(b.uint(4))
        if form == 0x16:
            return self._value(b, b.uleb(), 0, ctx, str_base)
        raise ELFError(f"unknown DWARF attribute form {form:#x}")

    def _strx(self, idx: int, off_size: int, base: int) -> str:
        offs = self._secs.get(".debug_str_offsets", b"")
        at = base + idx * off_size
        if at + off_size > len(offs):
            return ""
        off = int.from_bytes(offs[at:at + off_size], "little" if self.e == "<" else "big")
        return _cstr_at(self._secs.get(".debug_str", b""), off)

    # -- questions
    def die(self, off: Optional[int]) -> Optional[Die]:
        return self.dies.get(off) if isinstance(off, int) else None

    def type_of(self, die: Die) -> Optional[Die]:
        """The entry ``die``'s DW_AT_type names (None: void)."""
        return self.die(die.attrs.get(_AT_TYPE))

    def function(self, name: str) -> Optional[List[Tuple[str, Optional[Die]]]]:
        """The parameters of function ``name`` as ``[(name, type entry or None)]``, or None
        when the file does not describe it."""
        fn = self.functions.get(name)
        if fn is None:
            return None
        src = fn
        for _ in range(4):  # an out-of-line instance names its parameters through its origin
            if any(self.dies[c].tag == TAG["formal_parameter"] for c in src.children if c in self.dies):
                break
            nxt = self.die(src.attrs.get(_AT_ABSTRACT_ORIGIN) or src.attrs.get(_AT_SPECIFICATION))
            if nxt is None:
                break
            src = nxt
        out: List[Tuple[str, Optional[Die]]] = []
        for c in src.children:
            d = self.dies.get(c)
            if d is not None and d.tag == TAG["formal_parameter"]:
                out.append((d.name, self.type_of(d)))
        return out

    def byte_size(self, die: Optional[Die]) -> int:
        """The size of a type entry in bytes (0 when unknown)."""
        for _ in range(16):
            if die is None:
                return 0
            v = die.attrs.get(_AT_BYTE_SIZE)
            if isinstance(v, int):
                return v
            if die.tag == TAG["array_type"]:
                n = 1
                for dim in self.array_dims(die):
                    n *= dim
                return n * self.byte_size(self.type_of(die))
            if die.tag == TAG["pointer_type"]:
                return 8
            die = self.type_of(die)
        return 0

    def array_dims(self, die: Die) -> List[int]:
        """The element counts of an array type entry, outermost first (0: unknown)."""
        dims = []
        for c in die.children:
            d = self.dies.get(c)
            if d is None or d.tag != TAG["subrange_type"]:
                continue
            cnt = d.attrs.get(_AT_COUNT)
            ub = d.attrs.get(_AT_UPPER_BOUND)
            dims.append(cnt if isinstance(cnt, int) else ub + 1 if isinstance(ub, int) else 0)
        return dims or [0]

    def members(self, die: Die) -> List[Tuple[str, int, Optional[Die], Optional[int], Optional[int]]]:
        """A struct/union's members: ``(name, byte offset, type, bit offset, bit size)``."""
        out = []
        for c in die.children:
            d = self.dies.get(c)
            if d is None or d.tag != TAG["member"]:
                continue
            loc = d.attrs.get(_AT_MEMBER_LOC, 0)
            off = loc if isinstance(loc, int) else _const_expr(loc)
            bits = d.attrs.get(_AT_BIT_SIZE)
            bit_off = None
            if isinstance(bits, int):
                dbo = d.attrs.get(_AT_DATA_BIT_OFFSET)
                unit = d.attrs.get(_AT_BYTE_SIZE) or self.byte_size(self.type_of(d)) or 4
                old = d.attrs.get(_AT_BIT_OFFSET)
                if isinstance(dbo, int):  # DWARF 4+: bits from the start of the struct
                    off, bit_off = (dbo // (8 * unit)) * unit, dbo % (8 * unit)
                elif isinstance(old, int) and self.e == "<":
                    # DWARF 2/3: bits from the storage unit's most significant bit
                    bit_off = max(0, 8 * unit - old - bits)
                else:
                    bit_off = old if isinstance(old, int) else 0
            out.append((d.name, off, self.type_of(d), bit_off, bits if isinstance(bits, int) else None))
        return out

    def type_text(self, die: Optional[Die]) -> str:
        """A type as bpftrace -lv prints it: ``int``, ``int*``, ``char**``, ``struct Foo*``,
        ``const char*``."""
        stars = 0
        quals: List[str] = []
        for _ in range(32):
            if die is None:
                base = "void"
                break
            if die.tag == TAG["pointer_type"] or die.tag == TAG["reference_type"]:
                stars += 1
            elif die.tag in _QUALIFIERS:
                nxt = self.type_of(die)
                if die.tag == 0x26 and (nxt is None or nxt.tag not in (TAG["pointer_type"], TAG["reference_type"])):
                    quals.append("const")  # on the pointee: const char**
            elif die.tag == TAG["structure_type"]:
                base = f"struct {die.name}"
                break
            elif die.tag == TAG["union_type"]:
                base = f"union {die.name}"
                break
            elif die.tag == TAG["enumeration_type"]:
                base = f"enum {die.name}"
                break
            elif die.tag == TAG["array_type"]:
                dims = "".join(f"[{n}]" for n in self.array_dims(die))
                return self.type_text(self.type_of(die)) + dims + "*" * stars
            elif die.tag == TAG["subroutine_type"]:
                base = "void (*)()"
                stars = max(0, stars - 1)
                break
            else:
                base = die.name or "void"
                break
            die = self.type_of(die)
        else:
            base = "void"
        return " ".join(quals + [base]) + "*" * stars


class _StrIndex:
    """A DW_FORM_strx value read before its unit's DW_AT_str_offsets_base."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _const_expr(block: Any) -> int:
    """A member location written as a DWARF expression: DW_OP_plus_uconst N (DWARF 2)."""
    if isinstance(block, (bytes, bytearray)) and block[:1] == b"\x23":
        b = _Buf(bytes(block), 1, len(block), "<")
        try:
            return b.uleb()
        except ELFError:
            return 0
    return 0


def _inflate(data: bytes, flags: int, is64: bool, path: str) -> bytes:
    """A section's bytes, decompressed when SHF_COMPRESSED (Elf_Chdr, ELFCOMPRESS_ZLIB)."""
    if not flags & 0x800:
        return data
    import zlib

    hdr = 24 if is64 else 12
    ctype = struct.unpack_from("<I", data, 0)[0] if len(data) >= hdr else 0
    if ctype != 1:
        raise ELFError(f"{path}: a compressed debug section of an unknown kind ({ctype})")
    size = struct.unpack_from("<Q" if is64 else "<I", data, 8 if is64 else 4)[0]
    if size > MAX_DEBUG_INFO * 4:
        raise ELFError(f"{path}: a compressed debug section inflates to {size >> 20} MiB: too large")
    try:
        out = zlib.decompressobj().decompress(bytes(data[hdr:]), size)
    except zlib.error as e:
        raise ELFError(f"{path}: a corrupt compressed debug section ({e})") from None
    return out
