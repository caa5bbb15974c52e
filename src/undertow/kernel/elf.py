"""ELF files for uprobes and USDT probes: the public face of the pieces below.

- :mod:`undertow.kernel.elfbase`: ELF numbers, the section/segment/symbol records, a
  bounds-checked byte reader, opening a regular file without blocking;
- :mod:`undertow.kernel.elffile`: :class:`ELFFile`, the strict reader (headers, dynamic
  section, notes, symbol tables with GNU versions, symbol -> file offset for a uprobe,
  the USDT notes);
- :mod:`undertow.kernel.usdt`: the USDT records and their argument strings;
- :mod:`undertow.kernel.libraries`: which file a uprobe names (ld.so.cache, library
  short names, commands on ``$PATH``).

Code inside undertow imports from those modules; this one keeps the names importable
from ``undertow.kernel.elf`` as before.
"""

from __future__ import annotations

from .elfbase import (  # the ELF numbers too, as before the split
    DF_1_PIE, DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, ET_NAMES,
    NT_GNU_BUILD_ID, NT_STAPSDT, PF_R, PF_W, PF_X, PN_XNUM, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE, SHN_ABS,
    SHN_COMMON, SHN_LORESERVE, SHN_UNDEF, SHN_XINDEX, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERDEF, SHT_GNU_VERNEED,
    SHT_GNU_VERSYM, SHT_NOBITS, SHT_NOTE, SHT_STRTAB, SHT_SYMTAB, STB_NAMES, STT_NAMES, STV_NAMES, Section,
    Segment, Symbol, open_regular, read_regular,
)
from .elffile import ELFFile
from .libraries import LDCacheEntry, find_library, parse_ld_so_cache, read_ld_so_cache, resolve_object
from .usdt import USDTArg, USDTProbe, parse_usdt_args

__all__ = [
    "ELFFile", "Symbol", "Section", "Segment", "USDTProbe", "USDTArg",
    "resolve_object", "find_library", "read_ld_so_cache", "LDCacheEntry", "open_regular", "read_regular",
    "parse_ld_so_cache", "parse_usdt_args",
    "DF_1_PIE", "DT_FLAGS_1", "DT_NEEDED", "DT_NULL", "DT_RPATH", "DT_RUNPATH", "DT_SONAME", "DT_STRSZ", "DT_STRTAB",
    "ET_NAMES", "NT_GNU_BUILD_ID", "NT_STAPSDT", "PF_R", "PF_W", "PF_X", "PN_XNUM", "PT_DYNAMIC", "PT_INTERP",
    "PT_LOAD", "PT_NOTE", "SHN_ABS", "SHN_COMMON", "SHN_LORESERVE", "SHN_UNDEF", "SHN_XINDEX", "SHT_DYNAMIC",
    "SHT_DYNSYM", "SHT_GNU_VERDEF", "SHT_GNU_VERNEED", "SHT_GNU_VERSYM", "SHT_NOBITS", "SHT_NOTE", "SHT_STRTAB",
    "SHT_SYMTAB", "STB_NAMES", "STT_NAMES", "STV_NAMES",
]
