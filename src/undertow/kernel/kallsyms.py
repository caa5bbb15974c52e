"""Kernel symbols from ``/proc/kallsyms``.

Each line is ``ADDRESS TYPE NAME`` or ``ADDRESS TYPE NAME\\t[MODULE]``
(kernel/kallsyms.c ``s_show()``; module, BPF and ftrace trampoline symbols
carry the bracketed owner). Addresses are printed with ``%px`` at full pointer
width, but read as zero unless the reader may see kernel pointers
(``kallsyms_show_value()``: ``kernel.kptr_restrict`` and CAP_SYSLOG,
Documentation/admin-guide/sysctl/kernel.rst). Names stay usable then;
:attr:`Kallsyms.addresses_available` says whether addresses are.

The file has 100k-300k lines and the kernel generates it on every read
(~60 ms here), so everything is lazy: the text is read on first use, a single
name is found with one substring search over it, and the per-symbol arrays
(addresses sorted for :meth:`Kallsyms.symbolize`, a name index) are built only
when a query needs them.
"""

from __future__ import annotations

import bisect
import fnmatch
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ..errors import UndertowError
from .roots import Roots

__all__ = ["KSym", "Kallsyms", "load_kallsyms", "parse_kallsyms"]

# After this many lookups by substring search, build the name index instead.
_INDEX_AFTER_LOOKUPS = 32


class KSym:
    """One ``/proc/kallsyms`` entry. ``module`` is ``None`` for the core kernel. Entries compare
    (and hash) by their four fields."""

    __slots__ = ("name", "address", "type", "module")

    def __init__(self, name: str, address: int, type: str, module: Optional[str] = None) -> None:
        self.name, self.address, self.type, self.module = name, address, type, module

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not KSym:
            return NotImplemented
        return (self.name, self.address, self.type, self.module) == (
            other.name, other.address, other.type, other.module)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.name, self.address, self.type, self.module))

    @property
    def is_text(self) -> bool:
        """A code symbol (``t``/``T``, or weak ``w``/``W``)."""
        return self.type in "tTwW"

    @property
    def is_global(self) -> bool:
        return self.type.isupper()


class Kallsyms:
    """Lazy view of one kallsyms text.

    Build it with :func:`load_kallsyms` (reads ``<proc>/kallsyms``) or
    :func:`parse_kallsyms` (from text, for tests).
    """

    def __init__(self, path: Optional[str] = None, text: Optional[str] = None) -> None:
        self.path = path
        self._text = text
        self._lookups = 0
        # Per-symbol arrays in file order (built by _index()).
        self._addr_hex: Optional[List[str]] = None
        self._types: List[str] = []
        self._names: List[str] = []
        self._modules: List[Optional[str]] = []
        self._width = 0
        self._by_name: Optional[Dict[str, int]] = None
        # Sorted view for symbolize (built by _sorted()).
        self._sorted_idx: Optional[List[int]] = None
        self._sorted_addr: List[str] = []
        self._addresses_available: Optional[bool] = None
        self._text_names: Optional[List[str]] = None

    # -- loading ---------------------------------------------------------

    @property
    def text(self) -> str:
        if self._text is None:
            assert self.path is not None
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise UndertowError(
                    f"{self.path} does not exist",
                    hints=["the kernel was built without CONFIG_KALLSYMS, or /proc is not mounted"],
                ) from None
            except PermissionError:
                raise UndertowError(f"cannot read {self.path}: permission denied") from None
            except OSError as e:
                raise UndertowError(f"cannot read {self.path}: {e.strerror or e}") from None
            # Symbol names are ASCII; latin-1 never fails on hostile bytes.
            self._text = data.decode("latin-1")
        return self._text

    @property
    def addresses_available(self) -> bool:
        """False when every address reads as zero (``kptr_restrict``, no CAP_SYSLOG)."""
        if self._addresses_available is None:
            text = self.text
            avail = False
            # Look at a few lines: restricted output zeroes all of them.
            pos = 0
            for _ in range(64):
                end = text.find("\n", pos)
                line = text[pos:] if end < 0 else text[pos:end]
                sp = line.find(" ")
                if sp > 0 and line[:sp].strip("0"):
                    avail = True
                    break
                if end < 0:
                    break
                pos = end + 1
            self._addresses_available = avail
        return self._addresses_available

    def _index(self) -> None:
        """Split the text into per-symbol arrays (file order)."""
        if self._addr_hex is not None:
            return
        text = self.text
        tab = text.find("\t")
        if tab < 0:
            core, rest = text, ""
        else:
            start = text.rfind("\n", 0, tab) + 1
            core, rest = text[:start], text[start:]
        toks = core.split()
        addrs, types, names = toks[0::3], toks[1::3], toks[2::3]
        if len(toks) % 3 or any(len(t) != 1 for t in types):
            # Malformed core part (a stray line): parse everything line by line.
            rest, addrs, types, names = text, [], [], []
        modules: List[Optional[str]] = [None] * len(addrs)
        for line in rest.split("\n"):
            parts = line.split(None, 3)
            if len(parts) < 3 or len(parts[1]) != 1:
                continue
            addrs.append(parts[0])
            types.append(parts[1])
            names.append(parts[2])
            mod = parts[3].strip() if len(parts) > 3 else ""
            if mod.startswith("[") and mod.endswith("]"):
                mod = mod[1:-1]
            modules.append(mod or None)
        self._addr_hex, self._types, self._names, self._modules = addrs, types, names, modules
        widths = {len(a) for a in addrs[:1]} | {len(a) for a in addrs[-1:]}
        self._width = max(widths) if widths else 16

    def _name_index(self) -> Dict[str, int]:
        if self._by_name is None:
            self._index()
            d: Dict[str, int] = {}
            setdefault = d.setdefault
            for i, n in enumerate(self._names):
                setdefault(n, i)
            self._by_name = d
        return self._by_name

    def _ksym(self, i: int) -> KSym:
        return KSym(self._names[i], _hex(self._addr_hex[i]), self._types[i], self._modules[i])  # type: ignore[index]

    # -- queries -----------------------------------------------------------

    def __len__(self) -> int:
        self._index()
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name) is not None

    def lookup(self, name: str, module: Optional[str] = None) -> Optional[KSym]:
        """The first symbol called ``name`` (in file order: core kernel before modules);
        with ``module``, the one owned by that module (``""`` for the core kernel)."""
        if module is not None:
            for s in self.lookup_all(name):
                if (s.module or "") == module:
                    return s
            return None
        if not name or any(c in name for c in " \t\n"):
            return None
        if self._by_name is None and self._lookups < _INDEX_AFTER_LOOKUPS:
            self._lookups += 1
            return self._find_in_text(name)
        i = self._name_index().get(name)
        return None if i is None else self._ksym(i)

    def _find_in_text(self, name: str) -> Optional[KSym]:
        text = self.text
        # A name is the third space-separated token, followed by a newline (or
        # the end) or by a tab and the module: " NAME\n" cannot match elsewhere.
        best = -1
        for term in ("\n", "\t"):
            p = text.find(" " + name + term)
            if p >= 0 and (best < 0 or p < best):
                best = p
        if best < 0:
            if text.endswith(" " + name):
                best = len(text) - len(name) - 1
            else:
                return None
        start = text.rfind("\n", 0, best) + 1
        end = text.find("\n", best)
        parts = text[start : end if end >= 0 else len(text)].split(None, 3)
        if len(parts) < 3 or parts[2] != name:
            return None
        mod = parts[3].strip()[1:-1] if len(parts) > 3 else None
        return KSym(parts[2], _hex(parts[0]), parts[1], mod or None)

    def lookup_all(self, name: str) -> List[KSym]:
        """Every symbol called ``name`` (static functions can share a name)."""
        self._index()
        return [self._ksym(i) for i, n in enumerate(self._names) if n == name]

    def match(self, pattern: str) -> List[KSym]:
        """Symbols whose name matches the shell wildcard ``pattern`` (``*``, ``?``, ``[...]``),
        in file order; a name appears once per symbol carrying it."""
        if not any(c in pattern for c in "*?["):
            return self.lookup_all(pattern)
        self._index()
        rx = re.compile(fnmatch.translate(pattern)).match
        return [self._ksym(i) for i, n in enumerate(self._names) if rx(n)]

    def text_names(self) -> List[str]:
        """Names of the code symbols (types ``t``/``T``/``w``/``W``), in file order, each once
        per symbol (a regular-expression scan of the text: no per-symbol arrays)."""
        if self._text_names is None:
            self._text_names = re.findall(r" [tTwW] ([^\s]+)", self.text)
        return self._text_names

    def size_at(self, address: int) -> Optional[int]:
        """Bytes from ``address`` to the next higher symbol address (how the kernel's
        ``kallsyms_lookup_size_offset()`` sizes a function), or None when none is higher
        or addresses are hidden."""
        if address <= 0 or not self.addresses_available:
            return None
        idx, sorted_addr = self._sorted()
        key = format(address, "x").rjust(self._width, "0")
        pos = bisect.bisect_right(sorted_addr, key)
        if pos >= len(sorted_addr):
            return None
        return _hex(sorted_addr[pos]) - address

    def modules(self) -> List[str]:
        """Names of the modules (and ``bpf``-style owners) that appear in the text."""
        self._index()
        return sorted({m for m in self._modules if m})

    def _sorted(self) -> Tuple[List[int], List[str]]:
        if self._sorted_idx is None:
            self._index()
            addrs = self._addr_hex
            assert addrs is not None
            lens = set(map(len, addrs))
            if len(lens) > 1:  # mixed widths: compare padded text
                w = self._width = max(lens)
                addrs = [a.rjust(w, "0") for a in addrs]
                self._addr_hex = addrs
            # Equal-width lowercase hex sorts like the numbers it spells.
            keep = sorted(range(len(addrs)), key=addrs.__getitem__)
            self._sorted_idx = keep
            self._sorted_addr = [addrs[i] for i in keep]
        return self._sorted_idx, self._sorted_addr

    def symbolize(self, addr: int) -> Optional[Tuple[str, int, Optional[str]]]:
        """``(name, offset, module)`` of the symbol containing kernel address ``addr``.

        The symbol is the closest one at or below ``addr``. ``None`` when
        addresses are hidden (all zero), ``addr`` lies below every symbol, or
        is not a kernel address width can spell.
        """
        if addr < 0 or not self.addresses_available:
            return None
        idx, sorted_addr = self._sorted()
        if not idx:
            return None
        key = format(addr, "x").rjust(self._width, "0")
        if len(key) > self._width:
            return None
        pos = bisect.bisect_right(sorted_addr, key) - 1
        # Absolute ('a'/'A': per-CPU offsets, linker constants) and undefined
        # symbols are not locations: skip them.
        types = self._types
        while pos >= 0 and types[idx[pos]] in "aAuU":
            pos -= 1
        if pos < 0:
            return None
        best = pos
        # Several names can share one address (_text, _stext...). Like the
        # kernel's own kallsyms sort (scripts/kallsyms.c compare_symbols()),
        # prefer a global over a weak one and fewer leading underscores.
        at = sorted_addr[pos]
        j = pos - 1
        while j >= 0 and sorted_addr[j] == at:
            if types[idx[j]] not in "aAuU" and _alias_rank(self, idx[j]) < _alias_rank(self, idx[best]):
                best = j
            j -= 1
        i = idx[best]
        return self._names[i], addr - _hex(self._addr_hex[i]), self._modules[i]  # type: ignore[index]


def _alias_rank(ks: Kallsyms, i: int) -> Tuple[int, int, int]:
    name, typ = ks._names[i], ks._types[i]
    return (1 if typ in "wWvV" else 0, len(name) - len(name.lstrip("_")), i)


def _hex(s: str) -> int:
    try:
        return int(s, 16)
    except ValueError:
        return 0


def load_kallsyms(roots: Roots) -> Kallsyms:
    """Kernel symbols of ``<roots.proc>/kallsyms`` (read lazily, on first query)."""
    return Kallsyms(path=roots.proc_path("kallsyms"))


def parse_kallsyms(text: str) -> Kallsyms:
    """A :class:`Kallsyms` over already-read text."""
    return Kallsyms(text=text)
