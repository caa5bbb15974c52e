"""The ELF reader: ``ELFFile`` (standard library only).

A uprobe is placed at a *file offset* of an executable mapping
(Documentation/trace/uprobetracer.rst: ``p[:EVENT] PATH:OFFSET``), not at a
symbol's virtual address. The offset comes from the ``PT_LOAD`` program header
containing the symbol: ``offset = vaddr - p_vaddr + p_offset``. The same
arithmetic holds for non-PIE executables (``ET_EXEC``), PIE executables and
shared libraries (``ET_DYN``), whatever address the loader picks.

The reader covers ELF32/ELF64 in both byte orders: the file header, section
and program headers, ``.symtab``/``.dynsym`` with GNU symbol versions,
``.dynamic`` (DT_NEEDED, DT_SONAME, DT_FLAGS_1), the GNU build-id and
``.gnu_debuglink``, and SystemTap SDT notes (``.note.stapsdt``, the format
described in https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation;
their argument strings: :mod:`undertow.kernel.usdt`). Files are hostile input:
every read is bounds-checked and any malformed, truncated or inconsistent
structure raises :class:`undertow.errors.ELFError`.
"""

from __future__ import annotations

import mmap
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple, Union

from ..errors import ELFError, SymbolNotFoundError, did_you_mean
from .arch import ELF_MACHINE_NAMES, arch_for_machine
from .elfbase import (
    DF_1_PIE, DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, ET_NAMES,
    NT_GNU_BUILD_ID, NT_STAPSDT, PN_XNUM, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE, SHN_ABS, SHN_COMMON, SHN_UNDEF,
    SHN_XINDEX, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERDEF, SHT_GNU_VERNEED, SHT_GNU_VERSYM, SHT_NOBITS, SHT_NOTE,
    SHT_SYMTAB, STB_NAMES, STT_NAMES, STV_NAMES, ByteReader, Section, Segment, Symbol, open_regular,
)
from .usdt import USDTProbe, parse_usdt_args

__all__ = ["ELFFile"]

_MAX_NOTE = 1 << 20
_MAX_VERSION_ENTRIES = 1 << 16


class ELFFile:
    """An ELF file: ``ELFFile(path)`` or ``ELFFile.from_bytes(data, name)``.

    Headers are parsed at construction; symbol tables, dynamic section and
    notes on first use. Raises :class:`undertow.errors.ELFError` for a missing,
    unreadable, non-ELF or malformed file.
    """

    def __init__(self, path: str, *, _data: Optional[Union[bytes, bytearray, memoryview]] = None) -> None:
        self.path = path
        self._mmap: Optional[mmap.mmap] = None
        if _data is None:
            data: Union[bytes, bytearray, memoryview, mmap.mmap] = self._open(path)
        else:
            data = _data
        self._r = ByteReader(data, os.path.basename(path) or path)
        self._symbols: Optional[List[Symbol]] = None
        self._by_name: Optional[Dict[str, List[Symbol]]] = None
        self._dynamic: Optional[List[Tuple[int, int]]] = None
        self._dynstrs: Dict[str, object] = {}
        self._parse_header()

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview], name: str = "<bytes>") -> "ELFFile":
        return cls(name, _data=bytes(data))

    def _open(self, path: str) -> mmap.mmap:
        fd = open_regular(path)
        try:
            st = os.fstat(fd)
            if st.st_size == 0:
                raise ELFError(f"{path} is empty, not an ELF file")
            try:
                self._mmap = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise ELFError(f"cannot map {path}: {e}") from None
            return self._mmap
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the file mapping (also done when the object is collected)."""
        if self._mmap is not None:
            try:
                self._mmap.close()
            except (BufferError, ValueError):  # pragma: no cover - exported views still alive
                pass
            self._mmap = None

    def __enter__(self) -> "ELFFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ELFFile {self.path!r} {self.arch or self.machine} {self.elf_type}>"

    # -- headers -------------------------------------------------------

    def _parse_header(self) -> None:
        r = self._r
        if r.size < 16 or bytes(r.data[:4]) != b"\x7fELF":
            head = bytes(r.data[:2]) if r.size >= 2 else b""
            hints = []
            if head == b"#!":
                interp = bytes(r.data[: min(r.size, 256)]).split(b"\n", 1)[0][2:].strip().decode("utf-8", "replace")
                hints.append(f"it is a script run by '{interp}': probe the interpreter instead")
            raise ELFError(f"{self.path} is not an ELF file", hints=hints)
        ident = bytes(r.data[:16])
        ei_class, ei_data = ident[4], ident[5]
        if ei_class not in (1, 2):
            raise ELFError(f"{self.path}: bad ELF class {ei_class} (expected 1 for ELF32 or 2 for ELF64)")
        if ei_data not in (1, 2):
            raise ELFError(f"{self.path}: bad ELF data encoding {ei_data} (expected 1 little or 2 big endian)")
        self.bits = 64 if ei_class == 2 else 32
        self.endian = "little" if ei_data == 1 else "big"
        r.endian = "<" if ei_data == 1 else ">"
        self._addr_fmt = "Q" if self.bits == 64 else "I"
        self._addr_size = 8 if self.bits == 64 else 4
        if self.bits == 64:
            fields = r.unpack("HHIQQQIHHHHHH", 16, "ELF header")
        else:
            fields = r.unpack("HHIIIIIHHHHHH", 16, "ELF header")
        (e_type, self.machine, _ver, self.entry, phoff, shoff, self.flags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = fields
        self.e_type = e_type
        self.elf_type = ET_NAMES.get(e_type, f"0x{e_type:x}")
        a = arch_for_machine(self.machine)
        self.arch: Optional[str] = a.name if a else None
        self.machine_name = ELF_MACHINE_NAMES.get(self.machine, f"machine {self.machine}")

        # Section headers (extended numbering: gABI "Sections", section 0 holds the real counts).
        self.sections: List[Section] = []
        sh_size = 64 if self.bits == 64 else 40
        if shoff:
            if shentsize < sh_size:
                raise ELFError(f"{self.path}: section header entry size {shentsize} is too small")
            sec0 = self._read_section(0, shoff, shentsize, "section header 0")
            if shnum == 0:
                shnum = sec0.size
            if shstrndx == SHN_XINDEX:
                shstrndx = sec0.link
            if phnum == PN_XNUM:
                phnum = sec0.info
            r.check(shoff, shnum * shentsize, "section headers")
            raw = [sec0] + [self._read_section(i, shoff, shentsize, f"section header {i}") for i in range(1, shnum)]
            names_sec = raw[shstrndx] if 0 < shstrndx < len(raw) else None
            if names_sec is not None and names_sec.type != SHT_NOBITS:
                r.check(names_sec.offset, names_sec.size, "section name table")
            else:
                names_sec = None
            for s in raw:
                name = ""
                if names_sec is not None and s.name_off:
                    name = r.cstr(names_sec.offset + s.name_off, names_sec.offset + names_sec.size, "section name")
                self.sections.append(Section(s.index, name, s.type, s.flags, s.addr, s.offset, s.size,
                                             s.link, s.info, s.addralign, s.entsize))
        # Program headers.
        self.segments: List[Segment] = []
        ph_size = 56 if self.bits == 64 else 32
        if phoff and phnum:
            if phentsize < ph_size:
                raise ELFError(f"{self.path}: program header entry size {phentsize} is too small")
            r.check(phoff, phnum * phentsize, "program headers")
            for i in range(phnum):
                off = phoff + i * phentsize
                if self.bits == 64:
                    p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = r.unpack(
                        "IIQQQQQQ", off, "program header")
                else:
                    p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align = r.unpack(
                        "IIIIIIII", off, "program header")
                self.segments.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align))
        self.loads: List[Segment] = [s for s in self.segments if s.type == PT_LOAD]

    def _read_section(self, i: int, shoff: int, shentsize: int, what: str) -> "_RawSection":
        off = shoff + i * shentsize
        if self.bits == 64:
            f = self._r.unpack("IIQQQQIIQQ", off, what)
        else:
            f = self._r.unpack("IIIIIIIIII", off, what)
        return _RawSection(i, *f)

    @property
    def is_pie(self) -> bool:
        """A position-independent *executable*: ``ET_DYN`` with DF_1_PIE, or with an
        interpreter when DT_FLAGS_1 is absent (older linkers)."""
        if self.e_type != 3:
            return False
        flags1 = self._dyn_value(DT_FLAGS_1)
        if flags1 is not None and flags1 & DF_1_PIE:
            return True
        # Linkers before binutils 2.33 did not set DF_1_PIE. An interpreter
        # alone is not enough: libc.so.6 has one (it runs as a program) but
        # it has a soname, which executables lack.
        return any(s.type == PT_INTERP for s in self.segments) and self.soname is None

    @property
    def is_shared_library(self) -> bool:
        return self.e_type == 3 and not self.is_pie

    @property
    def interpreter(self) -> Optional[str]:
        for s in self.segments:
            if s.type == PT_INTERP:
                return self._r.cstr(s.offset, s.offset + s.filesz, "PT_INTERP")
        return None

    def section(self, name: str) -> Optional[Section]:
        """The first section called ``name``, or ``None``."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def section_data(self, sec: Section) -> bytes:
        if sec.type == SHT_NOBITS:
            return b""
        return self._r.bytes(sec.offset, sec.size, f"section {sec.name or sec.index}")

    # -- dynamic section -----------------------------------------------

    def _dynamic_entries(self) -> List[Tuple[int, int]]:
        if self._dynamic is None:
            ents: List[Tuple[int, int]] = []
            off = size = None
            for s in self.sections:
                if s.type == SHT_DYNAMIC:
                    off, size = s.offset, s.size
                    break
            if off is None:
                for p in self.segments:
                    if p.type == PT_DYNAMIC:
                        off, size = p.offset, p.filesz
                        break
            if off is not None and size:
                fmt = "qQ" if self.bits == 64 else "iI"
                step = 16 if self.bits == 64 else 8
                self._r.check(off, size, "dynamic section")
                for i in range(size // step):
                    tag, val = self._r.unpack(fmt, off + i * step, "dynamic entry")
                    if tag == DT_NULL:
                        break
                    ents.append((tag, val))
            self._dynamic = ents
        return self._dynamic

    def _dyn_value(self, tag: int) -> Optional[int]:
        for t, v in self._dynamic_entries():
            if t == tag:
                return v
        return None

    def _dynstr_bounds(self) -> Optional[Tuple[int, int]]:
        for s in self.sections:
            if s.type == SHT_DYNAMIC and 0 < s.link < len(self.sections):
                st = self.sections[s.link]
                return st.offset, st.offset + st.size
        strtab = self._dyn_value(DT_STRTAB)
        strsz = self._dyn_value(DT_STRSZ)
        if strtab is None or strsz is None:
            return None
        off = self._vaddr_to_offset_any(strtab)
        if off is None:
            return None
        return off, off + strsz

    def _dyn_strings(self, tag: int) -> List[str]:
        bounds = self._dynstr_bounds()
        if bounds is None:
            return []
        return [self._r.cstr(bounds[0] + v, bounds[1], "dynamic string") for t, v in self._dynamic_entries() if t == tag]

    @property
    def needed(self) -> List[str]:
        """The DT_NEEDED libraries, in order."""
        return self._dyn_strings(DT_NEEDED)

    @property
    def soname(self) -> Optional[str]:
        names = self._dyn_strings(DT_SONAME)
        return names[0] if names else None

    @property
    def runpath(self) -> List[str]:
        out: List[str] = []
        for tag in (DT_RUNPATH, DT_RPATH):
            for s in self._dyn_strings(tag):
                out += [p for p in s.split(":") if p]
        return out

    # -- notes -----------------------------------------------------------

    def _notes(self, off: int, size: int, align: int = 4) -> Iterable[Tuple[str, int, bytes, int]]:
        """(name, type, desc, desc_offset) of each note in ``[off, off+size)``."""
        r = self._r
        r.check(off, size, "note section")
        end = off + size
        align = 8 if align == 8 else 4
        pos = off
        while pos + 12 <= end:
            namesz, descsz, ntype = r.unpack("III", pos, "note header")
            if namesz > _MAX_NOTE or descsz > _MAX_NOTE:
                raise ELFError(f"{self.path}: note at offset {pos:#x} claims {namesz}+{descsz} bytes")
            npos = pos + 12
            # Padding aligns positions relative to the note area (8-byte aligned
            # areas such as .note.gnu.property pad the 4-byte "GNU" name to 16).
            dpos = off + ((npos - off + namesz + align - 1) & -align)
            nxt = off + ((dpos - off + descsz + align - 1) & -align)
            if dpos + descsz > end:
                raise ELFError(f"{self.path}: truncated note at offset {pos:#x}")
            name = r.bytes(npos, namesz, "note name").rstrip(b"\0").decode("utf-8", "replace")
            yield name, ntype, r.bytes(dpos, descsz, "note descriptor"), dpos
            if nxt <= pos:
                break
            pos = nxt

    @property
    def build_id(self) -> Optional[str]:
        """The GNU build-id (hex) from ``.note.gnu.build-id`` or a PT_NOTE segment."""
        areas = [(s.offset, s.size, s.addralign) for s in self.sections if s.type == SHT_NOTE]
        areas += [(p.offset, p.filesz, p.align) for p in self.segments if p.type == PT_NOTE]
        for off, size, align in areas:
            for name, ntype, desc, _ in self._notes(off, size, align):
                if name == "GNU" and ntype == NT_GNU_BUILD_ID:
                    return desc.hex()
        return None

    @property
    def debuglink(self) -> Optional[Tuple[str, int]]:
        """``(file name, CRC32)`` from ``.gnu_debuglink``, or ``None``."""
        sec = self.section(".gnu_debuglink")
        if sec is None:
            return None
        data = self.section_data(sec)
        nul = data.find(b"\0")
        if nul < 0:
            raise ELFError(f"{self.path}: malformed .gnu_debuglink")
        crc_off = (nul + 4) & ~3
        if crc_off + 4 > len(data):
            raise ELFError(f"{self.path}: truncated .gnu_debuglink")
        (crc,) = struct.unpack_from(self._r.endian + "I", data, crc_off)
        return data[:nul].decode("utf-8", "replace"), crc

    # -- symbols -----------------------------------------------------------

    def symbols(self) -> List[Symbol]:
        """Every symbol of ``.symtab`` then ``.dynsym`` (index 0, the null symbol, skipped)."""
        if self._symbols is None:
            syms: List[Symbol] = []
            for sec in self.sections:
                if sec.type == SHT_SYMTAB:
                    syms += self._read_symtab(sec)
            for sec in self.sections:
                if sec.type == SHT_DYNSYM:
                    syms += self._read_symtab(sec)
            self._symbols = syms
        return self._symbols

    def _read_symtab(self, sec: Section) -> List[Symbol]:
        r = self._r
        entsize = 24 if self.bits == 64 else 16
        if sec.entsize and sec.entsize < entsize:
            raise ELFError(f"{self.path}: symbol table {sec.name} has entry size {sec.entsize}")
        step = sec.entsize or entsize
        r.check(sec.offset, sec.size, f"symbol table {sec.name}")
        if not 0 < sec.link < len(self.sections):
            raise ELFError(f"{self.path}: symbol table {sec.name} links to no string table")
        strsec = self.sections[sec.link]
        if strsec.type == SHT_NOBITS:
            raise ELFError(f"{self.path}: string table of {sec.name} has no data")
        r.check(strsec.offset, strsec.size, f"string table of {sec.name}")
        str_lo, str_hi = strsec.offset, strsec.offset + strsec.size
        count = sec.size // step
        versions = self._versions(sec, count) if sec.type == SHT_DYNSYM else None
        st = struct.Struct(r.endian + ("IBBHQQ" if self.bits == 64 else "IIIBBH"))
        data = r.data
        out: List[Symbol] = []
        strcache: Dict[int, str] = {}
        for i in range(1, count):
            off = sec.offset + i * step
            if self.bits == 64:
                st_name, st_info, st_other, shndx, value, size = st.unpack_from(data, off)
            else:
                st_name, value, size, st_info, st_other, shndx = st.unpack_from(data, off)
            if st_name:
                name = strcache.get(st_name)
                if name is None:
                    name = r.cstr(str_lo + st_name, str_hi, f"name of symbol {i} in {sec.name}")
                    strcache[st_name] = name
            else:
                name = ""
            typ = STT_NAMES.get(st_info & 0xF, str(st_info & 0xF))
            bind = STB_NAMES.get(st_info >> 4, str(st_info >> 4))
            ver = None
            default = True
            lib = None
            if versions is not None and i < len(versions):
                ver, default, lib = versions[i]
            out.append(Symbol(name, value, size, typ, bind, shndx, shndx != SHN_UNDEF,
                              STV_NAMES.get(st_other & 3, "DEFAULT"), sec.name, ver, default, lib))
        return out

    def _versions(self, dynsym: Section, count: int) -> Optional[List[Tuple[Optional[str], bool, Optional[str]]]]:
        """Per-dynsym-entry ``(version, is_default, library)`` from .gnu.version/_d/_r."""
        versym = next((s for s in self.sections if s.type == SHT_GNU_VERSYM), None)
        if versym is None:
            return None
        r = self._r
        names: Dict[int, Tuple[str, Optional[str]]] = {}
        for sec in self.sections:
            if sec.type not in (SHT_GNU_VERDEF, SHT_GNU_VERNEED) or not 0 < sec.link < len(self.sections):
                continue
            strsec = self.sections[sec.link]
            lo, hi = strsec.offset, strsec.offset + strsec.size
            r.check(sec.offset, sec.size, sec.name or "version section")
            end = sec.offset + sec.size
            pos = sec.offset
            for _ in range(min(sec.info or _MAX_VERSION_ENTRIES, _MAX_VERSION_ENTRIES)):
                if sec.type == SHT_GNU_VERDEF:
                    # Elf_Verdef: vd_version vd_flags vd_ndx vd_cnt vd_hash vd_aux vd_next
                    _v, flags, ndx, cnt, _h, aux, nxt = r.unpack("HHHHIII", pos, "verdef")
                    if cnt and not flags & 1 and pos + aux + 8 <= end:  # skip VER_FLG_BASE (the file's own name)
                        vda_name, _ = r.unpack("II", pos + aux, "verdaux")
                        names[ndx] = (r.cstr(lo + vda_name, hi, "version name"), None)
                else:
                    # Elf_Verneed: vn_version vn_cnt vn_file vn_aux vn_next
                    _v, cnt, vn_file, aux, nxt = r.unpack("HHIII", pos, "verneed")
                    lib = r.cstr(lo + vn_file, hi, "verneed file")
                    apos = pos + aux
                    for _j in range(min(cnt, _MAX_VERSION_ENTRIES)):
                        # Elf_Vernaux: vna_hash vna_flags vna_other vna_name vna_next
                        _hh, _f, other, vna_name, anext = r.unpack("IHHII", apos, "vernaux")
                        names[other] = (r.cstr(lo + vna_name, hi, "version name"), lib)
                        if not anext:
                            break
                        apos += anext
                if not nxt:
                    break
                pos += nxt
                if pos >= end:
                    break
        r.check(versym.offset, min(versym.size, 2 * count), "symbol version table")
        n = min(count, versym.size // 2)
        raw = struct.unpack_from(r.endian + f"{n}H", r.data, versym.offset)
        out: List[Tuple[Optional[str], bool, Optional[str]]] = []
        for v in raw:
            idx = v & 0x7FFF
            if idx in names:
                nm, lib = names[idx]
                out.append((nm, not v & 0x8000, lib))
            else:
                out.append((None, not v & 0x8000, None))
        return out

    def _index_symbols(self) -> Dict[str, List[Symbol]]:
        if self._by_name is None:
            d: Dict[str, List[Symbol]] = {}
            for s in self.symbols():
                if s.name and s.type not in ("SECTION", "FILE"):
                    d.setdefault(s.name, []).append(s)
            self._by_name = d
        return self._by_name

    def find_symbol(self, name: str) -> Symbol:
        """The symbol called ``name`` (``name@VERSION`` / ``name@@VERSION`` pick a version).

        A defined symbol wins over an undefined one; among defined ones a
        default-version, global function wins. Raises
        :class:`undertow.errors.SymbolNotFoundError` with close names.
        """
        want_ver = None
        base = name
        if "@" in name:
            base, _, want_ver = name.partition("@")
            want_ver = want_ver.lstrip("@")
        cands = self._index_symbols().get(base, [])
        if want_ver is not None:
            cands = [s for s in cands if s.version == want_ver]
        if not cands:
            def more() -> List[str]:
                hints = [did_you_mean(base, self._index_symbols().keys())]
                if not self._index_symbols():
                    hints.append("the file has no symbol table (stripped): use an address or offset instead")
                elif not any(s.table == ".symtab" for s in self.symbols()):
                    hints.append("only dynamic symbols are left (the file is stripped); "
                                 "static functions are not visible")
                return hints
            raise SymbolNotFoundError(f"no symbol '{name}' in {self.path}", more_hints=more)

        def rank(s: Symbol) -> Tuple[int, ...]:
            return (
                0 if s.defined else 1,
                0 if s.default_version else 1,
                0 if s.type in ("FUNC", "GNU_IFUNC") else 1,
                {"GLOBAL": 0, "WEAK": 1}.get(s.bind, 2),
                0 if s.table == ".symtab" else 1,
            )

        return min(cands, key=rank)

    def function_symbols(self) -> List[Symbol]:
        """Defined functions (for listing ``uprobe:PATH:*``), one per name."""
        out: Dict[str, Symbol] = {}
        for s in self.symbols():
            if s.defined and s.type in ("FUNC", "GNU_IFUNC") and s.name and s.name not in out:
                out[s.name] = s
        return list(out.values())

    # -- addresses ---------------------------------------------------------

    def _load_for(self, vaddr: int) -> Optional[Segment]:
        for seg in self.loads:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg
        return None

    def symbol_containing(self, vaddr: int) -> Optional[Symbol]:
        """The defined symbol whose ``[value, value + size)`` holds ``vaddr`` (functions
        first), or ``None``: how bpftrace checks that an address is inside a function."""
        best: Optional[Symbol] = None
        for s in self.symbols():
            if s.defined and s.size and s.value <= vaddr < s.value + s.size:
                if s.type == "FUNC":
                    return s
                best = best or s
        return best

    def code_file_offset(self, vaddr: int) -> int:
        """File offset of ``vaddr`` when it is in an executable PT_LOAD segment (a uprobe on
        an address); raises :class:`ELFError` otherwise."""
        seg = self._load_for(vaddr)
        if seg is None or not seg.executable:
            where = "no segment of the file" if seg is None else f"a non-executable segment ({seg.perms()})"
            raise ELFError(f"{self.path}: address {vaddr:#x} is in {where}, not in its code")
        return vaddr - seg.vaddr + seg.offset

    def _vaddr_to_offset_any(self, vaddr: int) -> Optional[int]:
        seg = self._load_for(vaddr)
        return None if seg is None else vaddr - seg.vaddr + seg.offset

    def vaddr_to_file_offset(self, vaddr: int) -> int:
        """File offset of link-time virtual address ``vaddr``: ``vaddr - p_vaddr + p_offset``
        of the PT_LOAD segment whose file image contains it."""
        if not self.loads:
            raise ELFError(
                f"{self.path} has no loadable segments ({self.elf_type} file)",
                hints=["uprobes need a linked executable or shared library, not an object file"],
            )
        seg = self._load_for(vaddr)
        if seg is None:
            for s in self.loads:
                if s.vaddr <= vaddr < s.vaddr + s.memsz:
                    raise ELFError(f"{self.path}: address {vaddr:#x} is in zero-filled memory (.bss), not in the file")
            raise ELFError(f"{self.path}: address {vaddr:#x} is in no loadable segment")
        return vaddr - seg.vaddr + seg.offset

    def symbol_file_offset(self, name: str, offset: int = 0, *, allow_ifunc: bool = False) -> int:
        """File offset for a uprobe on ``name`` + ``offset``.

        Refuses an undefined symbol (hinting at the library that defines it),
        an offset past the symbol's size, an address outside an executable
        PT_LOAD segment, and (unless ``allow_ifunc``) a GNU indirect function,
        whose address is its resolver.
        """
        sym = self.find_symbol(name)
        if offset < 0:
            raise ELFError(f"negative offset {offset} from {name}")
        if not sym.defined:
            libs = [sym.library] if sym.library else self.needed
            hints = []
            if libs:
                hints.append(f"'{sym.name}' is defined in another object; probe it there: "
                             + " or ".join(f"{lib}:{sym.name}" for lib in libs[:4]))
            raise ELFError(f"{sym.name} is undefined in {self.path} (imported from a shared library)", hints=hints)
        if sym.type == "GNU_IFUNC" and not allow_ifunc:
            impls = sorted(
                s.name for s in self.function_symbols()
                if s.type == "FUNC" and s.name != sym.name
                and (s.name.startswith(f"__{sym.name}_") or s.name.startswith(f"{sym.name}_"))
            )
            hints = ["it is a GNU indirect function: its address is a resolver that runs once, at load time"]
            if impls:
                hints.append("probe an implementation instead: " + ", ".join(impls[:6]))
            raise ELFError(f"{sym.name} in {self.path} is an indirect function (IFUNC)", hints=hints)
        if sym.shndx == SHN_ABS or sym.shndx == SHN_COMMON:
            raise ELFError(f"{sym.name} in {self.path} is not a code address")
        if sym.size and offset >= sym.size:
            # bpftrace 0.17's words
            raise ELFError(f"Offset outside the function bounds ('{sym.name}' size is {sym.size})",
                           hints=[f"+{offset} is past the end of {sym.name} (offsets count from 0 to {sym.size - 1})"])
        vaddr = sym.value + offset
        if self.machine == 40:  # ARM: bit 0 of a function address marks Thumb code
            vaddr &= ~1
        seg = self._load_for(vaddr)
        if seg is None:
            self.vaddr_to_file_offset(vaddr)  # raises with the precise reason
            raise AssertionError("unreachable")  # pragma: no cover
        if not seg.executable:
            raise ELFError(
                f"{sym.name} ({sym.type.lower()}) in {self.path} is in a non-executable segment ({seg.perms()})",
                hints=["uprobes fire on instructions: probe a function"],
            )
        return vaddr - seg.vaddr + seg.offset

    # -- USDT ------------------------------------------------------------------

    def usdt_probes(self) -> List[USDTProbe]:
        """The SDT probes of ``.note.stapsdt``, with their file offsets."""
        notes = [s for s in self.sections if s.name == ".note.stapsdt" and s.type == SHT_NOTE]
        if not notes:
            return []
        base_sec = self.section(".stapsdt.base")
        a = self._addr_size
        out: List[USDTProbe] = []
        for sec in notes:
            for name, ntype, desc, _ in self._notes(sec.offset, sec.size, 4):
                if name != "stapsdt" or ntype != NT_STAPSDT:
                    continue
                if len(desc) < 3 * a + 3:
                    raise ELFError(f"{self.path}: truncated stapsdt note")
                pc, base, sem = struct.unpack_from(self._r.endian + 3 * self._addr_fmt, desc, 0)
                strs = desc[3 * a :].split(b"\0")
                if len(strs) < 3:
                    raise ELFError(f"{self.path}: malformed stapsdt note strings")
                provider, pname, args = (x.decode("utf-8", "replace") for x in strs[:3])
                # Prelink may move the code after the note was written; the note's
                # base records where .stapsdt.base was at link time (SDT spec).
                if base_sec is not None and base:
                    delta = base_sec.addr - base
                    pc += delta
                    if sem:
                        sem += delta
                mask = (1 << (8 * a)) - 1
                pc &= mask
                sem &= mask
                file_off = self.vaddr_to_file_offset(pc)
                sem_off = self.vaddr_to_file_offset(sem) if sem else None
                out.append(USDTProbe(provider, pname, pc, file_off, sem, sem_off, args, base,
                                     tuple(parse_usdt_args(args))))
        return out


class _RawSection:
    __slots__ = ("index", "name_off", "type", "flags", "addr", "offset", "size", "link", "info", "addralign", "entsize")

    def __init__(self, index: int, name: int, type: int, flags: int, addr: int, offset: int, size: int,
                 link: int, info: int, addralign: int, entsize: int) -> None:
        self.index, self.name_off, self.type, self.flags, self.addr = index, name, type, flags, addr
        self.offset, self.size, self.link, self.info = offset, size, link, info
        self.addralign, self.entsize = addralign, entsize
