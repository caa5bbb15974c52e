"""SystemTap SDT (USDT) probes: the records of a ``stapsdt`` note and its argument strings.

:meth:`undertow.kernel.elffile.ELFFile.usdt_probes` reads the notes (``.note.stapsdt``,
https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation); this module says
what an argument string such as ``-4@%edi 8@-8(%rbp)`` (x86) or ``-4@x0 8@[sp, 16]``
(aarch64) means, without knowing ELF.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

__all__ = ["USDTArg", "USDTProbe", "parse_usdt_args", "split_subregister"]


class USDTArg:
    """One USDT argument of the note's argument string (``-4@%edi``, ``8@-8(%rbp)``, ``8@[sp, 16]``).

    ``size`` is in bytes, ``signed`` from a negative size. ``kind`` is
    ``reg`` (value of ``reg``), ``mem`` (memory at ``reg + offset``; ``index``
    and ``scale`` for x86 indexed forms), ``const`` (``value``) or ``unknown``
    (``text`` kept for a message). Arguments compare equal field by field.
    """

    __slots__ = ("text", "size", "signed", "kind", "reg", "offset", "value", "index", "scale", "symbol")

    def __init__(self, text: str, size: int, signed: bool, kind: str, reg: Optional[str] = None,
                 offset: int = 0, value: int = 0, index: Optional[str] = None, scale: int = 1,
                 symbol: Optional[str] = None) -> None:
        self.text, self.size, self.signed, self.kind, self.reg = text, size, signed, kind, reg
        self.offset, self.value, self.index, self.scale, self.symbol = offset, value, index, scale, symbol

    def _key(self) -> Tuple[object, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())


class USDTProbe:
    """One SystemTap SDT probe (a ``stapsdt`` note, type 3).

    ``pc`` and ``semaphore`` are link-time virtual addresses already adjusted
    by the ``.stapsdt.base`` difference; ``file_offset`` and
    ``semaphore_file_offset`` are what uprobe_events needs
    (``PATH:OFFSET(REF_CTR_OFFSET)``, Documentation/trace/uprobetracer.rst).
    ``semaphore`` is 0 (and its file offset ``None``) when the probe has none.
    """

    __slots__ = ("provider", "name", "pc", "file_offset", "semaphore", "semaphore_file_offset", "args", "base",
                 "arguments")

    def __init__(self, provider: str, name: str, pc: int, file_offset: int, semaphore: int,
                 semaphore_file_offset: Optional[int], args: str, base: int = 0,
                 arguments: Tuple[USDTArg, ...] = ()) -> None:
        self.provider, self.name, self.pc, self.file_offset = provider, name, pc, file_offset
        self.semaphore, self.semaphore_file_offset, self.args = semaphore, semaphore_file_offset, args
        self.base, self.arguments = base, arguments

    @property
    def full_name(self) -> str:
        return f"{self.provider}:{self.name}"


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


_X86_LOW8 = {"al": "ax", "bl": "bx", "cl": "cx", "dl": "dx", "sil": "si", "dil": "di", "bpl": "bp", "spl": "sp"}
_X86_HIGH8 = {"ah": "ax", "bh": "bx", "ch": "cx", "dh": "dx"}


def split_subregister(reg: str) -> Tuple[str, int]:
    """A register named in an SDT argument, as ``(full register, right shift)``: x86's
    partial registers are parts of a 64-bit one (``%al``, ``%r8w`` -> ``ax``/``r8``, shift
    0; ``%ah`` -> ``ax``, shift 8). Other names come back as they are (``%eax``, ``w0``:
    the architecture's aliases map them); the argument's size keeps the low bytes."""
    r = reg.lower().lstrip("%")
    if r in _X86_LOW8:
        return _X86_LOW8[r], 0
    if r in _X86_HIGH8:
        return _X86_HIGH8[r], 8
    if len(r) > 2 and r[0] == "r" and r[-1] in "bwd" and r[1:-1].isdigit():
        return r[:-1], 0
    return r, 0
