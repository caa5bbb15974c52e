"""A small, strict ELF reader for uprobes and USDT probes (standard library only).

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
described in https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation).
Files are hostile input: every read is bounds-checked and any malformed,
truncated or inconsistent structure raises :class:`undertow.errors.ELFError`.

Library names are resolved like the dynamic loader does: ``/etc/ld.so.cache``
(both the ``glibc-ld.so.cache1.1`` and the old ``ld.so-1.7.0`` format,
glibc sysdeps/generic/dl-cache.h), then the standard directories.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import struct
from undertow.dclass import dataclass
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import ELFError, SymbolNotFoundError, did_you_mean
from .arch import ELF_MACHINE_NAMES, Arch, arch_for_machine, current_arch

__all__ = [
    "ELFFile", "Symbol", "Section", "Segment", "USDTProbe", "USDTArg",
    "resolve_object", "find_library", "read_ld_so_cache", "LDCacheEntry", "open_regular", "read_regular",
]

ET_NAMES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
STT_NAMES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS", 10: "GNU_IFUNC"}
STB_NAMES = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "GNU_UNIQUE"}
STV_NAMES = {0: "DEFAULT", 1: "INTERNAL", 2: "HIDDEN", 3: "PROTECTED"}

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF
PN_XNUM = 0xFFFF

SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_NOTE = 7
SHT_NOBITS = 8
SHT_DYNAMIC = 6
SHT_DYNSYM = 11
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
PF_X, PF_W, PF_R = 1, 2, 4

DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_PIE = 0x08000000

NT_GNU_BUILD_ID = 3
NT_STAPSDT = 3

_MAX_NOTE = 1 << 20
_MAX_VERSION_ENTRIES = 1 << 16


@dataclass(frozen=True)
class Section:
    """One ``Elf{32,64}_Shdr``."""

    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int


@dataclass(frozen=True)
class Segment:
    """One ``Elf{32,64}_Phdr``."""

    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def executable(self) -> bool:
        return bool(self.flags & PF_X)

    def perms(self) -> str:
        f = self.flags
        return ("r" if f & PF_R else "-") + ("w" if f & PF_W else "-") + ("x" if f & PF_X else "-")


@dataclass(frozen=True)
class Symbol:
    """One ``Elf{32,64}_Sym``.

    ``type`` and ``bind`` are names (``FUNC``, ``GLOBAL``...); ``defined`` is
    false for ``SHN_UNDEF`` (the definition lives in another object).
    ``version`` is the GNU symbol version (``GLIBC_2.2.5``) for dynamic
    symbols that have one; ``default_version`` is false for a hidden
    (non-default, ``name@VER``) version; ``library`` names the DT_NEEDED file
    an undefined versioned symbol is expected from.
    """

    name: str
    value: int
    size: int
    type: str
    bind: str
    shndx: int
    defined: bool
    visibility: str = "DEFAULT"
    table: str = ".symtab"
    version: Optional[str] = None
    default_version: bool = True
    library: Optional[str] = None

    @property
    def versioned_name(self) -> str:
        if not self.version:
            return self.name
        return f"{self.name}{'@@' if self.default_version else '@'}{self.version}"


@dataclass(frozen=True)
class USDTArg:
    """One USDT argument of the note's argument string (``-4@%edi``, ``8@-8(%rbp)``, ``8@[sp, 16]``).

    ``size`` is in bytes, ``signed`` from a negative size. ``kind`` is
    ``reg`` (value of ``reg``), ``mem`` (memory at ``reg + offset``; ``index``
    and ``scale`` for x86 indexed forms), ``const`` (``value``) or ``unknown``
    (``text`` kept for a message).
    """

    text: str
    size: int
    signed: bool
    kind: str
    reg: Optional[str] = None
    offset: int = 0
    value: int = 0
    index: Optional[str] = None
    scale: int = 1
    symbol: Optional[str] = None


@dataclass(frozen=True)
class USDTProbe:
    """One SystemTap SDT probe (a ``stapsdt`` note, type 3).

    ``pc`` and ``semaphore`` are link-time virtual addresses already adjusted
    by the ``.stapsdt.base`` difference; ``file_offset`` and
    ``semaphore_file_offset`` are what uprobe_events needs
    (``PATH:OFFSET(REF_CTR_OFFSET)``, Documentation/trace/uprobetracer.rst).
    ``semaphore`` is 0 (and its file offset ``None``) when the probe has none.
    """

    provider: str
    name: str
    pc: int
    file_offset: int
    semaphore: int
    semaphore_file_offset: Optional[int]
    args: str
    base: int = 0
    arguments: Tuple[USDTArg, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.provider}:{self.name}"


class _Reader:
    """Bounds-checked access to the file's bytes."""

    def __init__(self, data: Union[bytes, bytearray, memoryview, mmap.mmap], name: str, endian: str = "<") -> None:
        self.data = data
        self.size = len(data)
        self.name = name
        self.endian = endian

    def check(self, off: int, size: int, what: str) -> None:
        if off < 0 or size < 0 or off + size > self.size:
            raise ELFError(
                f"{self.name}: truncated or corrupt ELF file ({what} at offset {off:#x}, "
                f"{size} bytes, past the end of a {self.size}-byte file)"
            )

    def unpack(self, fmt: str, off: int, what: str) -> Tuple[int, ...]:
        st = struct.Struct(self.endian + fmt)
        self.check(off, st.size, what)
        return st.unpack_from(self.data, off)

    def bytes(self, off: int, size: int, what: str) -> bytes:
        self.check(off, size, what)
        return bytes(self.data[off : off + size])

    def cstr(self, off: int, limit: int, what: str) -> str:
        """NUL-terminated string at ``off``, not past ``limit`` (end of its table)."""
        limit = min(limit, self.size)
        if off < 0 or off >= limit:
            raise ELFError(f"{self.name}: {what}: string offset {off:#x} outside its table")
        data = self.data
        end = data.find(b"\0", off, limit)
        if end < 0:
            raise ELFError(f"{self.name}: {what}: unterminated string at offset {off:#x}")
        return bytes(data[off:end]).decode("utf-8", "replace")


def _file_kind(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path`` (symlinks followed: libraries are
    often links), never blocking: a FIFO, a device or a socket planted where a program or
    library is expected would make ``open`` wait forever (a FIFO without writer) or talk to
    a driver. The path is checked with ``stat`` before opening, then opened with
    ``O_NONBLOCK`` and checked again with ``fstat`` (it may have been swapped meanwhile).

    Raises :class:`ELFError` saying what the path is instead (``... is not a regular file
    (a FIFO)``), or why it cannot be opened.
    """
    def refuse(mode: int) -> ELFError:
        kind = _file_kind(mode)
        if kind == "a directory":
            return ELFError(f"{path} is a directory, not an ELF file")
        return ELFError(f"{path} is not a regular file ({kind})",
                        hints=["give an executable or a shared library (a regular ELF file)"])

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ELFError(f"{path}: no such file") from None
    except PermissionError:
        raise ELFError(f"{path}: permission denied", hints=["run as root or make the file readable"]) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise ELFError(f"cannot open {path}: {getattr(e, 'strerror', None) or e}") from None
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        raise refuse(st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ELFError(f"{path}: no such file") from None
    except PermissionError:
        raise ELFError(f"{path}: permission denied", hints=["run as root or make the file readable"]) from None
    except OSError as e:
        raise ELFError(f"cannot open {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise ELFError(f"cannot open {path}: {e.strerror or e}") from None
    if not _stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise refuse(st.st_mode)
    return fd


def read_regular(path: str, limit: int = -1) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), opened with :func:`open_regular`."""
    fd = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


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
        self._r = _Reader(data, os.path.basename(path) or path)
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
            raise ELFError(f"offset {offset:#x} is past the end of {sym.name} (size {sym.size:#x})")
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


# -- USDT argument strings ---------------------------------------------------

_X86_MEM = re.compile(
    r"^(?P<disp>[-+]?(?:0x[0-9a-fA-F]+|\d+))?(?:(?P<sym>[A-Za-z_.$][\w.$@]*)(?P<symoff>[-+](?:0x[0-9a-fA-F]+|\d+))?)?"
    r"\((?P<base>%\w+)?(?:,(?P<index>%\w+)(?:,(?P<scale>\d+))?)?\)$"
)
_ARM_MEM = re.compile(r"^\[(?P<base>\w+)(?:,\s*#?(?P<off>[-+]?(?:0x[0-9a-fA-F]+|\d+)))?\]$")


def _int(s: str) -> int:
    return int(s, 0)


def parse_usdt_args(text: str) -> List[USDTArg]:
    """Parse an SDT argument string (``-4@%edi 8@-8(%rbp) 4@$5``; aarch64 ``-4@x0 8@[sp, 16]``).

    Registers keep the note's spelling without ``%``; map them with
    :meth:`undertow.kernel.arch.Arch.canonical_reg`.
    """
    out: List[USDTArg] = []
    # Arguments are space separated, but "[sp, 16]" contains one.
    toks: List[str] = []
    for t in text.split():
        if toks and toks[-1].count("[") > toks[-1].count("]"):
            toks[-1] += " " + t
        else:
            toks.append(t)
    for tok in toks:
        size_s, at, loc = tok.partition("@")
        size, signed = 8, False
        if at:
            try:
                n = int(size_s)
            except ValueError:
                out.append(USDTArg(tok, 8, False, "unknown"))
                continue
            size, signed = abs(n), n < 0
        else:
            loc = tok
        try:
            out.append(_parse_loc(tok, loc, size, signed))
        except ValueError:
            out.append(USDTArg(tok, size, signed, "unknown"))
    return out


def _parse_loc(tok: str, loc: str, size: int, signed: bool) -> USDTArg:
    if loc.startswith("$") or loc.startswith("#"):
        return USDTArg(tok, size, signed, "const", value=_int(loc[1:]))
    if loc.startswith("%"):
        return USDTArg(tok, size, signed, "reg", reg=loc[1:])
    m = _X86_MEM.match(loc)
    if m:
        disp = _int(m.group("disp")) if m.group("disp") else 0
        if m.group("symoff"):
            disp += _int(m.group("symoff"))
        base = m.group("base")
        idx = m.group("index")
        return USDTArg(tok, size, signed, "mem", reg=base[1:] if base else None, offset=disp,
                       index=idx[1:] if idx else None, scale=int(m.group("scale") or 1), symbol=m.group("sym"))
    m = _ARM_MEM.match(loc)
    if m:
        return USDTArg(tok, size, signed, "mem", reg=m.group("base"), offset=_int(m.group("off") or "0"))
    if re.match(r"^[a-z]\w*$", loc):
        return USDTArg(tok, size, signed, "reg", reg=loc)
    if re.match(r"^[-+]?(0x[0-9a-fA-F]+|\d+)$", loc):
        return USDTArg(tok, size, signed, "const", value=_int(loc))
    raise ValueError(loc)


# -- library lookup -------------------------------------------------------

@dataclass(frozen=True)
class LDCacheEntry:
    """One ld.so.cache entry: ``key`` (soname, ``libc.so.6``), ``path``, and the ldconfig
    ``flags`` (low byte: type, 3 = ELF libc6; next byte: architecture, e.g. 0x03 x86-64,
    0x0a AArch64 — glibc sysdeps/generic/ldconfig.h FLAG_*)."""

    key: str
    path: str
    flags: int
    hwcap: int = 0


_CACHE_OLD = b"ld.so-1.7.0"
_CACHE_NEW = b"glibc-ld.so.cache1.1"


def read_ld_so_cache(path: str = "/etc/ld.so.cache") -> List[LDCacheEntry]:
    """Entries of an ld.so cache file (new format preferred, else the old one).

    Returns ``[]`` when the file is missing; raises :class:`ELFError` when it is malformed.
    """
    try:
        st = os.stat(path)
    except OSError:
        return []
    key = (path, st.st_mtime_ns, st.st_size)
    hit = _LD_CACHE.get(key)
    if hit is None:
        try:
            data = read_regular(path)
        except (ELFError, OSError):
            return []
        hit = _LD_CACHE[key] = parse_ld_so_cache(data, path)
    return list(hit)


#: parsed ld.so.cache files by (path, mtime, size): a script with 40 uprobes reads it once
_LD_CACHE: Dict[Tuple[str, int, int], List[LDCacheEntry]] = {}


def parse_ld_so_cache(data: bytes, name: str = "ld.so.cache") -> List[LDCacheEntry]:
    """Parse ld.so.cache bytes (see :func:`read_ld_so_cache`)."""
    r = _Reader(data, name, "<")
    new_at = -1
    old_entries: List[LDCacheEntry] = []
    if data.startswith(_CACHE_OLD):
        # struct cache_file { char magic[11]; (pad) unsigned nlibs; struct file_entry libs[]; }
        (nlibs,) = r.unpack("I", 12, "old cache header")
        r.check(16, nlibs * 12, "old cache entries")
        strings = 16 + nlibs * 12
        for i in range(nlibs):
            flags, key, value = r.unpack("iII", 16 + 12 * i, "old cache entry")
            old_entries.append(LDCacheEntry(r.cstr(strings + key, r.size, "cache key"),
                                            r.cstr(strings + value, r.size, "cache path"), flags))
        new_at = data.find(_CACHE_NEW, strings)
    elif data.startswith(_CACHE_NEW):
        new_at = 0
    else:
        raise ELFError(f"{name} is not an ld.so cache")
    if new_at < 0:
        return old_entries
    # struct cache_file_new: magic+version[20], nlibs, len_strings, flags(u8), pad[3],
    # extension_offset, unused[3] (48 bytes); entries of 24 bytes:
    # struct file_entry_new { int32 flags; uint32 key, value, osversion; uint64 hwcap; }.
    # Strings offsets count from the start of the new header.
    nlibs, _lens = r.unpack("II", new_at + 20, "cache header")
    r.check(new_at + 48, nlibs * 24, "cache entries")
    out: List[LDCacheEntry] = []
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = r.unpack("iIIIQ", new_at + 48 + 24 * i, "cache entry")
        out.append(LDCacheEntry(r.cstr(new_at + key, r.size, "cache key"),
                                r.cstr(new_at + value, r.size, "cache path"), flags, hwcap))
    return out


def _default_lib_dirs(arch: Arch) -> List[str]:
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(arch.name, "")
    dirs = []
    if triplet:
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib64", "/usr/local/lib"]
    return dirs


def _elf_machine_of(path: str) -> Optional[int]:
    """e_machine of ``path`` from its first 20 bytes, or None when not a readable ELF file."""
    try:
        head = read_regular(path, 20)
    except (ELFError, OSError):
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    return struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]


def _version_key(filename: str, stem: str) -> Tuple[int, ...]:
    rest = filename[len(stem):].lstrip(".")
    nums = []
    for part in rest.split("."):
        nums.append(int(part) if part.isdigit() else -1)
    return tuple(nums)


def _lib_stem(key: str) -> str:
    i = key.find(".so")
    return key[:i] if i > 0 else key


def find_library(name: str, arch: Optional[Arch] = None, ldcache: str = "/etc/ld.so.cache",
                 lib_dirs: Optional[Sequence[str]] = None) -> str:
    """Absolute path of library ``name``: a path, a soname (``libc.so.6``) or a short
    name (``libc``, ``libssl``, ``c``, ``ssl``).

    Searches ``ldcache`` first, then ``lib_dirs`` (default: the standard
    directories for ``arch``). Among candidates the ones whose ELF machine is
    ``arch`` (default: the running one) win, and a newer ``.so.N`` wins. A
    library found only for another architecture raises :class:`ELFError`;
    an unknown name raises :class:`ELFError` with close names from the cache.
    """
    arch = arch or current_arch()
    if not name:
        raise ELFError("empty library name")
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.exists(path):
            raise ELFError(f"{name}: no such file")
        _check_arch(path, arch)
        return path
    entries = read_ld_so_cache(ldcache)
    stems = [name] if name.startswith("lib") or ".so" in name else [name, "lib" + name]

    def matches(key: str) -> Optional[Tuple[int, Tuple[int, ...]]]:
        for rank, stem in enumerate(stems):
            if key == stem:
                return (0, ())
            if ".so" not in stem and (key == stem + ".so" or key.startswith(stem + ".so.")):
                return (1 + rank, tuple(-v for v in _version_key(key, stem + ".so")))
        return None

    cands: List[Tuple[Tuple[int, Tuple[int, ...]], str]] = []
    for e in entries:
        m = matches(e.key)
        if m is not None:
            cands.append((m, e.path))
    if not cands:
        for d in (lib_dirs if lib_dirs is not None else _default_lib_dirs(arch)):
            try:
                files = os.listdir(d)
            except OSError:
                continue
            for fn in files:
                m = matches(fn)
                if m is not None:
                    cands.append((m, os.path.join(d, fn)))
    cands.sort(key=lambda c: c[0])
    wrong: List[Tuple[str, int]] = []
    seen = set()
    for _, path in cands:
        if path in seen:
            continue
        seen.add(path)
        mach = _elf_machine_of(path)
        if mach is None:
            continue  # missing file or a linker script (libc.so)
        if mach == arch.elf_machine:
            return path
        wrong.append((path, mach))
    if wrong:
        path, mach = wrong[0]
        raise ELFError(
            f"library '{name}' exists only for another architecture: {path} is "
            f"{ELF_MACHINE_NAMES.get(mach, f'machine {mach}')}, this machine is {arch.name}",
            hints=[f"install the {arch.name} build of {os.path.basename(path)}, or give the path of the right file"],
        )
    known = sorted({_lib_stem(e.key) for e in entries})
    hints = [did_you_mean(name if name.startswith("lib") else "lib" + name, known)]
    hints.append("give the library's path, or run ldconfig if it was installed just now")
    raise ELFError(f"library '{name}' not found in {ldcache} or the standard library directories", hints=hints)


def _check_arch(path: str, arch: Arch) -> None:
    mach = _elf_machine_of(path)
    if mach is None:
        ELFFile(path).close()  # raises the precise reason (not ELF, script, unreadable)
        return
    if mach != arch.elf_machine:
        raise ELFError(
            f"{path} is built for {ELF_MACHINE_NAMES.get(mach, f'machine {mach}')}, this machine is {arch.name}",
            hints=["uprobes can only be placed in code of the running architecture"],
        )


def resolve_object(obj: str, arch: Optional[Arch] = None) -> str:
    """Absolute path of the object a uprobe names: a path, a command on ``$PATH``,
    or a library short name (``libc``). The file must be ELF for ``arch``
    (default: the running machine); raises :class:`ELFError` with hints otherwise.
    """
    arch = arch or current_arch()
    if not obj:
        raise ELFError("empty object name", hints=["name a program (bash), a path or a library (libc)"])
    if "/" in obj:
        path = os.path.abspath(obj)
        if not os.path.exists(path):
            raise ELFError(f"{obj}: no such file")
        _check_arch(path, arch)
        return path
    exe = shutil.which(obj)
    if exe:
        path = os.path.abspath(exe)
        _check_arch(path, arch)
        return path
    try:
        return find_library(obj, arch)
    except ELFError as e:
        if "not found" in e.message:
            raise ELFError(
                f"'{obj}' is neither a file, a command on PATH nor a known library",
                hints=e.hints,
            ) from None
        raise
