"""User-space addresses to symbols: ``/proc/PID/maps`` + the mapped ELF file's symbol tables.

Used to print ``usym(addr)`` and ``ustack`` the way bpftrace does (``main+12``). The process
must still exist when the value is printed (as with bpftrace); otherwise the address is
printed in hex. Files are parsed once and kept.
"""

from __future__ import annotations

import bisect
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

__all__ = ["UserSymbols"]


class _Table:
    def __init__(self, path: str) -> None:
        from .elffile import ELFFile

        self.elf = ELFFile(path)
        funcs = sorted((s.value, s.size, s.name) for s in self.elf.symbols()
                       if s.defined and s.type in ("FUNC", "IFUNC") and s.value and s.size)
        self.starts = [f[0] for f in funcs]
        self.funcs = funcs
        self.loads = [(seg.offset, seg.vaddr, seg.filesz) for seg in self.elf.loads]

    def vaddr(self, file_offset: int) -> Optional[int]:
        for off, vaddr, size in self.loads:
            if off <= file_offset < off + size:
                return file_offset - off + vaddr
        return None

    def lookup(self, vaddr: int) -> Optional[Tuple[str, int]]:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        value, size, name = self.funcs[i]
        if size and vaddr >= value + size:
            return None
        return name, vaddr - value


class UserSymbols:
    """``symbolize(pid, addr) -> "name+off"`` (or None)."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.tables: Dict[str, Optional[_Table]] = {}
        self.maps: Dict[int, List[Tuple[int, int, int, str]]] = {}

    def _maps(self, pid: int) -> List[Tuple[int, int, int, str]]:
        if pid not in self.maps:
            out = []
            try:
                with open(f"{self.proc}/{pid}/maps") as f:
                    for line in f:
                        parts = line.split(None, 5)
                        if len(parts) < 6 or not parts[5].startswith("/"):
                            continue
                        lo, hi = (int(x, 16) for x in parts[0].split("-"))
                        out.append((lo, hi, int(parts[2], 16), parts[5].strip()))
            except OSError:
                pass
            self.maps[pid] = out
        return self.maps[pid]

    def symbolize(self, pid: int, addr: int, offset: bool = True) -> Optional[str]:
        for lo, hi, off, path in self._maps(pid):
            if lo <= addr < hi:
                if path not in self.tables:
                    try:
                        self.tables[path] = _Table(path)
                    except Exception:  # noqa: BLE001 - unreadable or not ELF: no symbols
                        self.tables[path] = None
                t = self.tables[path]
                if t is None:
                    return None
                v = t.vaddr(addr - lo + off)
                hit = t.lookup(v) if v is not None else None
                if hit is None:
                    return None
                return f"{hit[0]}+{hit[1]}" if offset else hit[0]
        return None
