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

from .elfbase import Section, Segment, Symbol, open_regular, read_regular
from .elffile import ELFFile
from .libraries import LDCacheEntry, find_library, parse_ld_so_cache, read_ld_so_cache, resolve_object
from .usdt import USDTArg, USDTProbe, parse_usdt_args

__all__ = [
    "ELFFile", "Symbol", "Section", "Segment", "USDTProbe", "USDTArg",
    "resolve_object", "find_library", "read_ld_so_cache", "LDCacheEntry", "open_regular", "read_regular",
    "parse_ld_so_cache", "parse_usdt_args",
]
