"""What the ELF reader and the ld.so.cache reader share.

ELF numbers (``include/uapi/linux/elf.h``, the gABI), the records of section headers,
program headers and symbols, a bounds-checked reader of hostile bytes (every failed
check raises :class:`undertow.errors.ELFError`), and opening a regular file without
ever blocking on a FIFO or a device planted where a program or library was expected.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional, Tuple, Union

from ..errors import ELFError

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


class Section:
    """One ``Elf{32,64}_Shdr``."""

    __slots__ = ("index", "name", "type", "flags", "addr", "offset", "size", "link", "info", "addralign",
                 "entsize")

    def __init__(self, index: int, name: str, type: int, flags: int, addr: int, offset: int, size: int,
                 link: int, info: int, addralign: int, entsize: int) -> None:
        self.index, self.name, self.type, self.flags, self.addr = index, name, type, flags, addr
        self.offset, self.size, self.link, self.info = offset, size, link, info
        self.addralign, self.entsize = addralign, entsize


class Segment:
    """One ``Elf{32,64}_Phdr``."""

    __slots__ = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")

    def __init__(self, type: int, flags: int, offset: int, vaddr: int, paddr: int, filesz: int, memsz: int,
                 align: int) -> None:
        self.type, self.flags, self.offset, self.vaddr, self.paddr = type, flags, offset, vaddr, paddr
        self.filesz, self.memsz, self.align = filesz, memsz, align

    @property
    def executable(self) -> bool:
        return bool(self.flags & PF_X)

    def perms(self) -> str:
        f = self.flags
        return ("r" if f & PF_R else "-") + ("w" if f & PF_W else "-") + ("x" if f & PF_X else "-")


class Symbol:
    """One ``Elf{32,64}_Sym``.

    ``type`` and ``bind`` are names (``FUNC``, ``GLOBAL``...); ``defined`` is
    false for ``SHN_UNDEF`` (the definition lives in another object).
    ``version`` is the GNU symbol version (``GLIBC_2.2.5``) for dynamic
    symbols that have one; ``default_version`` is false for a hidden
    (non-default, ``name@VER``) version; ``library`` names the DT_NEEDED file
    an undefined versioned symbol is expected from.
    """

    __slots__ = ("name", "value", "size", "type", "bind", "shndx", "defined", "visibility", "table", "version",
                 "default_version", "library")

    def __init__(self, name: str, value: int, size: int, type: str, bind: str, shndx: int, defined: bool,
                 visibility: str = "DEFAULT", table: str = ".symtab", version: Optional[str] = None,
                 default_version: bool = True, library: Optional[str] = None) -> None:
        self.name, self.value, self.size, self.type, self.bind = name, value, size, type, bind
        self.shndx, self.defined, self.visibility, self.table = shndx, defined, visibility, table
        self.version, self.default_version, self.library = version, default_version, library

    @property
    def versioned_name(self) -> str:
        if not self.version:
            return self.name
        return f"{self.name}{'@@' if self.default_version else '@'}{self.version}"


class ByteReader:
    """Bounds-checked access to the file's bytes."""

    __slots__ = ("data", "size", "name", "endian")

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
    if not stat.S_ISREG(st.st_mode):
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
    if not stat.S_ISREG(st.st_mode):
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
