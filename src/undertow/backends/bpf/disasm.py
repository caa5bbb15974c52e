"""BPF listings in the kernel verifier's style (``r1 = *(u32 *)(r6 +8)``)."""

from __future__ import annotations

import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence

from . import insn as I

_INSN = struct.Struct("<BBhi")
_HELPERS = {int(h): h.name for h in I.Helper}


def disassemble(code: bytes, origins: Optional[Sequence[Any]] = None,
                labels: Optional[Dict[str, int]] = None) -> str:
    """One line per instruction slot: ``  12: (85) call bpf_probe_read_kernel#113``."""
    by_slot: Dict[int, List[str]] = {}
    for name, slot in (labels or {}).items():
        by_slot.setdefault(slot, []).append(name)
    out: List[str] = []
    n = len(code) // 8
    i = 0
    last_origin: Any = None
    while i < n:
        c, regs, off, imm = _INSN.unpack_from(code, i * 8)
        dst, src = regs & 0xF, regs >> 4
        for name in by_slot.get(i, ()):
            out.append(f"{name}:")
        if origins is not None and i < len(origins) and origins[i] is not None and origins[i] is not last_origin:
            out.append(f"  ; {_origin_text(origins[i])}")
            last_origin = origins[i]
        width = 1
        if c == I.LD | I.DW | I.IMM and i + 1 < n:
            hi = _INSN.unpack_from(code, (i + 1) * 8)[3]
            value = (imm & 0xFFFFFFFF) | ((hi & 0xFFFFFFFF) << 32)
            if src == I.PSEUDO_MAP_FD:
                text = f"r{dst} = map[fd:{imm}]"
            elif src == I.PSEUDO_MAP_VALUE:
                text = f"r{dst} = map_value[fd:{imm}]+{hi}"
            else:
                text = f"r{dst} = {value:#x} ll"
            width = 2
        else:
            text = insn_text(c, dst, src, off, imm)
        out.append(f"{i:4d}: ({c:02x}) {text}")
        i += width
    return "\n".join(out) + "\n"


def _origin_text(o: Any) -> str:
    kind = type(o).__name__.lower()
    name = getattr(o, "name", None)
    what = f"{kind} {name}" if isinstance(name, str) and name else kind
    span = getattr(o, "span", None)
    if span is not None:
        return f"{what} (chars {span.start}-{span.end})"
    return what


def insn_text(c: int, dst: int, src: int, off: int, imm: int) -> str:
    cls = c & 0x07
    if cls in (I.ALU, I.ALU64):
        op = c & 0xF0
        w = "r" if cls == I.ALU64 else "w"
        if op == I.ALU_OPS["end"]:
            return f"r{dst} = {'be' if c & I.TO_BE else 'le'}{imm} r{dst}"
        if op == I.ALU_OPS["neg"]:
            return f"{w}{dst} = -{w}{dst}"
        rhs = f"{w}{src}" if c & I.X else _imm(imm)
        return f"{w}{dst} {I.ALU_SYM.get(op, '?=')} {rhs}"
    if cls in (I.JMP, I.JMP32):
        op = c & 0xF0
        if op == I.JMP_OPS["call"]:
            if src == I.PSEUDO_CALL:
                return f"call pc{imm:+d}"
            return f"call bpf_{_HELPERS.get(imm, 'unknown')}#{imm}"
        if op == I.JMP_OPS["exit"]:
            return "exit"
        if op == I.JMP_OPS["ja"]:
            return f"goto pc{off:+d}"
        w = "w" if cls == I.JMP32 else "r"
        rhs = f"{w}{src}" if c & I.X else _imm(imm)
        return f"if {w}{dst} {I.JMP_SYM.get(op, '?')} {rhs} goto pc{off:+d}"
    size = I.SIZE_NAME.get(c & 0x18, "?")
    mode = c & 0xE0
    if cls == I.LDX:
        return f"r{dst} = *({size} *)(r{src} {off:+d})"
    if cls == I.STX and mode == I.ATOMIC:
        fetch = " fetch" if imm & I.ATOMIC_FETCH else ""
        return f"lock *({size} *)(r{dst} {off:+d}) += r{src}{fetch}"
    if cls == I.STX:
        return f"*({size} *)(r{dst} {off:+d}) = r{src}"
    if cls == I.ST:
        return f"*({size} *)(r{dst} {off:+d}) = {_imm(imm)}"
    return f"unknown opcode {c:#04x}"


def _imm(v: int) -> str:
    return f"{v:#x}" if v >= 0 else f"-{-v:#x}"
