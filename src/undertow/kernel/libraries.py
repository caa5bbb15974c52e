"""Which file a uprobe names: a path, a command on ``$PATH`` or a library short name.

Library names are resolved like the dynamic loader does: ``/etc/ld.so.cache``
(both the ``glibc-ld.so.cache1.1`` and the old ``ld.so-1.7.0`` format,
glibc sysdeps/generic/dl-cache.h), then the standard directories. A file must be
ELF for the running architecture (its ``e_machine``).
"""

from __future__ import annotations

import os
import shutil
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ELFError, did_you_mean
from .arch import ELF_MACHINE_NAMES, Arch, current_arch
from .elfbase import ByteReader, read_regular
from .elffile import ELFFile

__all__ = ["LDCacheEntry", "read_ld_so_cache", "parse_ld_so_cache", "find_library", "resolve_object"]


class LDCacheEntry:
    """One ld.so.cache entry: ``key`` (soname, ``libc.so.6``), ``path``, and the ldconfig
    ``flags`` (low byte: type, 3 = ELF libc6; next byte: architecture, e.g. 0x03 x86-64,
    0x0a AArch64 — glibc sysdeps/generic/ldconfig.h FLAG_*)."""

    __slots__ = ("key", "path", "flags", "hwcap")

    def __init__(self, key: str, path: str, flags: int, hwcap: int = 0) -> None:
        self.key, self.path, self.flags, self.hwcap = key, path, flags, hwcap


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
    r = ByteReader(data, name, "<")
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
