"""An eBPF assembler for the code generator.

Register convention (what the code generator follows, and what the verifier
expects): R0 return value / helper result; R1-R5 helper arguments, clobbered by
every call; R6 the program's context pointer (saved at entry); R7-R9
callee-saved scratch; R10 the read-only frame pointer (stack grows down from
it, 512 bytes).

Pitfalls handled here so a generator cannot fall into them (DESIGN.md):

- immediates are signed 32-bit: a value that does not fit raises instead of
  silently truncating; :meth:`Asm.mov_imm` picks ``mov32``, ``mov64`` (whose
  immediate is sign-extended) or a two-slot ``ld_imm64`` correctly;
- jump offsets are signed 16-bit and computed from labels at :meth:`Asm.assemble`;
- map references are ``ld_imm64`` with ``src=BPF_PSEUDO_MAP_FD`` whose fd is
  patched at load time (:meth:`Program.relocate`), and so are run-time values
  (:meth:`Asm.value_ref`: the loading process's pid, the session's start time), so
  that a program does not depend on the process that compiled it;
- :func:`zero_stack`, :func:`ret0_exit`, :func:`null_check`, :func:`bounded_len`
  encode the verifier's demands (initialised key slots, R0 set before exit,
  NULL checks after map lookups, masked variable sizes).

Each instruction may carry an ``origin`` (an IR node, a span): a verifier error
at instruction N maps back to the user's text through :meth:`Program.origin_of`.
"""

from __future__ import annotations

import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

from ...errors import UndertowError
from . import insn as I

_INSN = struct.Struct("<BBhi")
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1


class AsmError(UndertowError):
    """The program cannot be assembled (undefined label, immediate out of range...)."""


class _Insn:
    __slots__ = ("code", "dst", "src", "off", "imm", "label", "origin", "map_ref", "wide")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
                 label: Optional[str] = None, origin: Any = None, map_ref: Any = None, wide: bool = False) -> None:
        self.code, self.dst, self.src, self.off, self.imm = code, dst, src, off, imm
        self.label, self.origin, self.map_ref, self.wide = label, origin, map_ref, wide


def _s32(value: int, what: str) -> int:
    if not S32_MIN <= value <= S32_MAX:
        raise AsmError(f"{what} {value:#x} does not fit a signed 32-bit immediate",
                       hints=["use ld_imm64 / mov_imm for 64-bit constants"])
    return value


def _reg(r: int) -> int:
    if not 0 <= r <= 10:
        raise AsmError(f"no register r{r}")
    return r


class Program:
    """Assembled instructions, their origins, and the relocations still to patch: map fds
    (``ld_imm64`` with ``BPF_PSEUDO_MAP_FD``) and run-time values (``("value", name)``)."""

    def __init__(self, insns: List[Tuple[int, int, int, int, int]], origins: List[Any],
                 relocs: List[Tuple[int, Any]], labels: Dict[str, int]) -> None:
        self.insns = insns
        self.origins = origins
        self.relocs = relocs
        self.labels = labels

    def __len__(self) -> int:
        return len(self.insns)

    def origin_of(self, index: int) -> Any:
        """The origin recorded for instruction slot ``index`` (None when out of range)."""
        return self.origins[index] if 0 <= index < len(self.origins) else None

    def relocate(self, fds: Dict[Any, int]) -> bytes:
        """The instruction bytes with each map reference replaced by its fd and each
        run-time value (``("value", name)`` keys of ``fds``) by its value."""
        insns = list(self.insns)
        for idx, ref in self.relocs:
            if ref not in fds:
                raise AsmError(f"no {'value' if _is_value(ref) else 'fd for map'} {ref!r}")
            code, dst, src, off, _imm = insns[idx]
            if not _is_value(ref):
                insns[idx] = (code, dst, I.PSEUDO_MAP_FD, off, fds[ref])
            elif code == I.LD | I.DW | I.IMM:  # both halves of an ld_imm64
                v = fds[ref]
                insns[idx] = (code, dst, src, off, _signed32(v & 0xFFFFFFFF))
                insns[idx + 1] = (0, 0, 0, 0, _signed32((v >> 32) & 0xFFFFFFFF))
            else:
                insns[idx] = (code, dst, src, off, _s32(fds[ref], f"run-time value {ref[1]}"))
        return _encode(insns)

    @property
    def bytes(self) -> bytes:
        """Encoded instructions (map fds not yet patched: 0)."""
        return _encode(self.insns)

    def listing(self) -> str:
        from .disasm import disassemble

        return disassemble(self.bytes, origins=self.origins, labels=self.labels)


def _is_value(ref: Any) -> bool:
    return type(ref) is tuple and len(ref) == 2 and ref[0] == "value"


def _encode(insns: List[Tuple[int, int, int, int, int]]) -> bytes:
    return b"".join(_INSN.pack(c, ((s & 0xF) << 4) | (d & 0xF), o, i) for c, d, s, o, i in insns)


class Asm:
    """Builds a program instruction by instruction. Jumps take label names."""

    def __init__(self) -> None:
        self._insns: List[_Insn] = []
        self._labels: Dict[str, int] = {}
        self.origin: Any = None  # attached to every instruction emitted while set

    # -- bookkeeping
    def _emit(self, ins: _Insn) -> "Asm":
        if ins.origin is None:
            ins.origin = self.origin
        self._insns.append(ins)
        return self

    def references(self, label: str) -> bool:
        """Whether any jump emitted so far targets ``label``."""
        return any(i.label == label for i in self._insns)

    def label(self, name: str) -> "Asm":
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice")
        self._labels[name] = len(self._insns)
        return self

    def here(self) -> int:
        return len(self._insns)

    # -- ALU
    def alu(self, op: str, dst: int, src_or_imm: Union[int, "Reg"], *, is64: bool = True) -> "Asm":
        cls = I.ALU64 if is64 else I.ALU
        code = I.ALU_OPS[op]
        if isinstance(src_or_imm, Reg):
            return self._emit(_Insn(cls | code | I.X, _reg(dst), _reg(src_or_imm.n)))
        return self._emit(_Insn(cls | code | I.K, _reg(dst), 0, 0, _s32(src_or_imm, f"{op} immediate")))

    def mov64(self, dst: int, src: Union[int, "Reg"]) -> "Asm":
        return self.alu("mov", dst, src)

    def mov32(self, dst: int, src: Union[int, "Reg"]) -> "Asm":
        return self.alu("mov", dst, src, is64=False)

    def add64(self, dst: int, v: Union[int, "Reg"]) -> "Asm":
        return self.alu("add", dst, v)

    def sub64(self, dst: int, v: Union[int, "Reg"]) -> "Asm":
        return self.alu("sub", dst, v)

    def and64(self, dst: int, v: Union[int, "Reg"]) -> "Asm":
        return self.alu("and", dst, v)

    def rsh64(self, dst: int, v: Union[int, "Reg"]) -> "Asm":
        return self.alu("rsh", dst, v)

    def lsh64(self, dst: int, v: Union[int, "Reg"]) -> "Asm":
        return self.alu("lsh", dst, v)

    def neg64(self, dst: int) -> "Asm":
        return self._emit(_Insn(I.ALU64 | I.ALU_OPS["neg"], _reg(dst)))

    def endian(self, dst: int, bits: int, big: bool = True) -> "Asm":
        """Byte swap the low ``bits`` (16/32/64) to big- (network) or little-endian."""
        if bits not in (16, 32, 64):
            raise AsmError("byte swaps are 16, 32 or 64 bits")
        return self._emit(_Insn(I.ALU | I.ALU_OPS["end"] | (I.TO_BE if big else I.TO_LE), _reg(dst), 0, 0, bits))

    def ld_imm64(self, dst: int, value: int) -> "Asm":
        value &= (1 << 64) - 1
        return self._emit(_Insn(I.LD | I.DW | I.IMM, _reg(dst), 0, 0, value, wide=True))

    def mov_imm(self, dst: int, value: int) -> "Asm":
        """``dst = value`` for any 64-bit value, in the fewest instructions."""
        if 0 <= value <= S32_MAX:
            return self.mov32(dst, value)          # zero-extends: exact for non-negative values
        if S32_MIN <= value < 0:
            return self.mov64(dst, value)          # sign-extends: exact for negative s32
        if value >= 1 << 64 or value < -(1 << 63):
            raise AsmError(f"constant {value} does not fit 64 bits")
        return self.ld_imm64(dst, value)

    def value_ref(self, name: str) -> "Asm":
        """The immediate of the instruction just emitted is the run-time value ``name``:
        :meth:`Program.relocate` writes ``fds[("value", name)]`` over it (``ld_imm64``: the
        whole 64 bits). What was emitted stays as the listing's placeholder."""
        if not self._insns:
            raise AsmError("value_ref() needs an instruction before it")
        self._insns[-1].map_ref = ("value", name)
        return self

    def ld_map_fd(self, dst: int, map_ref: Any) -> "Asm":
        """``dst = &map`` (ld_imm64 with BPF_PSEUDO_MAP_FD; fd patched by Program.relocate)."""
        return self._emit(_Insn(I.LD | I.DW | I.IMM, _reg(dst), I.PSEUDO_MAP_FD, 0, 0, map_ref=map_ref, wide=True))

    # -- memory
    def ldx(self, size: int, dst: int, src: int, off: int) -> "Asm":
        """``dst = *(size *)(src + off)``."""
        return self._emit(_Insn(I.LDX | size | I.MEM, _reg(dst), _reg(src), _off(off)))

    def stx(self, size: int, dst: int, off: int, src: int) -> "Asm":
        """``*(size *)(dst + off) = src``."""
        return self._emit(_Insn(I.STX | size | I.MEM, _reg(dst), _reg(src), _off(off)))

    def st(self, size: int, dst: int, off: int, imm: int) -> "Asm":
        """``*(size *)(dst + off) = imm``."""
        return self._emit(_Insn(I.ST | size | I.MEM, _reg(dst), 0, _off(off), _s32(imm, "store immediate")))

    def atomic_add(self, size: int, dst: int, off: int, src: int, fetch: bool = False) -> "Asm":
        """``lock *(size *)(dst + off) += src`` (W or DW)."""
        if size not in (I.W, I.DW):
            raise AsmError("atomic add works on 32- or 64-bit words")
        return self._emit(_Insn(I.STX | size | I.ATOMIC, _reg(dst), _reg(src), _off(off),
                                I.ATOMIC_ADD | (I.ATOMIC_FETCH if fetch else 0)))

    # -- jumps
    def jump(self, op: str, dst: int, src_or_imm: Union[int, "Reg"], label: str, *, is32: bool = False) -> "Asm":
        cls = I.JMP32 if is32 else I.JMP
        code = I.JMP_OPS[op]
        if isinstance(src_or_imm, Reg):
            return self._emit(_Insn(cls | code | I.X, _reg(dst), _reg(src_or_imm.n), label=label))
        return self._emit(_Insn(cls | code | I.K, _reg(dst), 0, 0, _s32(src_or_imm, "compare immediate"), label=label))

    def ja(self, label: str) -> "Asm":
        return self._emit(_Insn(I.JMP | I.JMP_OPS["ja"], label=label))

    def call(self, helper: int) -> "Asm":
        return self._emit(_Insn(I.JMP | I.JMP_OPS["call"], 0, 0, 0, int(helper)))

    def exit_(self) -> "Asm":
        return self._emit(_Insn(I.JMP | I.JMP_OPS["exit"]))

    def __getattr__(self, name: str) -> Any:
        # jeq/jne/jgt/... shorthands: a.jeq(R0, 0, "label")
        if name in I.JMP_OPS and name not in ("ja", "call", "exit"):
            return lambda dst, v, label, is32=False: self.jump(name, dst, v, label, is32=is32)
        raise AttributeError(name)

    # -- output
    def prune(self) -> int:
        """Drop instructions no path from the entry reaches; returns how many.

        The verifier's CFG check refuses unreachable instructions ("unreachable
        insn N"), and a generator naturally leaves some (a ``goto`` after
        ``exit()`` inside an ``if``). Labels on removed instructions move to the
        next kept one.
        """
        insns = self._insns
        n = len(insns)
        at: Dict[str, int] = dict(self._labels)
        seen = [False] * n
        todo = [0] if n else []
        ja, ex, call = I.JMP | I.JMP_OPS["ja"], I.JMP | I.JMP_OPS["exit"], I.JMP | I.JMP_OPS["call"]
        while todo:
            i = todo.pop()
            if i >= n or seen[i]:
                continue
            seen[i] = True
            ins = insns[i]
            cls = ins.code & 0x07
            if cls in (I.JMP, I.JMP32) and ins.code not in (ex, call):
                if ins.label is not None and ins.label in at:
                    todo.append(at[ins.label])
                if ins.code == ja:
                    continue
            elif ins.code == ex:
                continue
            todo.append(i + 1)
        if all(seen):
            return 0
        keep = [i for i in range(n) if seen[i]]
        new_index = {}
        j = 0
        for i in range(n + 1):
            new_index[i] = j
            if i < n and seen[i]:
                j += 1
        self._labels = {name: new_index[i] for name, i in self._labels.items()}
        self._insns = [insns[i] for i in keep]
        return n - len(keep)

    def assemble(self) -> Program:
        """Resolve labels into slot offsets and encode (unreachable code pruned first)."""
        self.prune()
        slot_of: List[int] = []
        n = 0
        for ins in self._insns:
            slot_of.append(n)
            n += 2 if ins.wide else 1
        slot_of.append(n)
        out: List[Tuple[int, int, int, int, int]] = []
        origins: List[Any] = []
        relocs: List[Tuple[int, Any]] = []
        for i, ins in enumerate(self._insns):
            off = ins.off
            if ins.label is not None:
                if ins.label not in self._labels:
                    raise AsmError(f"jump to undefined label {ins.label!r}")
                off = slot_of[self._labels[ins.label]] - (slot_of[i] + 1)
                if not -(1 << 15) <= off < (1 << 15):
                    raise AsmError(f"jump to {ins.label!r} is too far ({off} instructions)")
            if ins.wide:
                v = ins.imm
                lo = v & 0xFFFFFFFF
                hi = (v >> 32) & 0xFFFFFFFF
                if ins.map_ref is not None:
                    relocs.append((len(out), ins.map_ref))
                out.append((ins.code, ins.dst, ins.src, 0, _signed32(lo)))
                out.append((0, 0, 0, 0, _signed32(hi)))
                origins += [ins.origin, ins.origin]
            else:
                if ins.map_ref is not None:
                    relocs.append((len(out), ins.map_ref))
                out.append((ins.code, ins.dst, ins.src, off, ins.imm))
                origins.append(ins.origin)
        labels = {name: slot_of[i] for name, i in self._labels.items()}
        return Program(out, origins, relocs, labels)


class Reg:
    """Marks a register operand where an immediate is also possible: ``a.add64(R1, Reg(R2))``."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def _signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def _off(off: int) -> int:
    if not -(1 << 15) <= off < (1 << 15):
        raise AsmError(f"memory offset {off} does not fit 16 bits")
    return off


# -- emission helpers for the verifier's demands --------------------------------

def zero_stack(a: Asm, off: int, size: int) -> Asm:
    """Zero ``size`` bytes at ``fp + off`` (negative off): map keys must be fully initialised."""
    if off >= 0 or off + size > 0:
        raise AsmError("stack slots live below the frame pointer (negative offsets)")
    pos = off
    end = off + size
    while pos < end:
        if end - pos >= 8 and pos % 8 == 0:
            a.st(I.DW, I.FP, pos, 0)
            pos += 8
        elif end - pos >= 4 and pos % 4 == 0:
            a.st(I.W, I.FP, pos, 0)
            pos += 4
        elif end - pos >= 2 and pos % 2 == 0:
            a.st(I.H, I.FP, pos, 0)
            pos += 2
        else:
            a.st(I.B, I.FP, pos, 0)
            pos += 1
    return a


def ret0_exit(a: Asm) -> Asm:
    """``r0 = 0; exit``: the verifier rejects an exit with R0 unset."""
    return a.mov64(I.R0, 0).exit_()


def null_check(a: Asm, reg: int, label: str) -> Asm:
    """Jump to ``label`` when ``reg`` is NULL (after map_lookup_elem / ringbuf_reserve)."""
    return a.jeq(reg, 0, label)


def bounded_len(a: Asm, reg: int, maximum: int) -> Asm:
    """Clamp a variable size into [0, maximum] with a mask the verifier can follow.

    ``maximum`` must be a power of two minus one (e.g. 255), so ``reg &= maximum``
    proves the bound.
    """
    if maximum <= 0 or maximum & (maximum + 1):
        raise AsmError("bounded_len needs a power of two minus one")
    return a.and64(reg, maximum)
