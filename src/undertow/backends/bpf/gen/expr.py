"""Expressions into R0: constants, builtins, arguments, tracepoint fields, registers,
member chains and indexing read through the right helper (kernel, user or either),
casts, arithmetic, and conditions compiled as jumps (``&&``/``||`` short-circuit,
signed or unsigned compares, strings compared byte by byte).

Uses from the other parts: :meth:`~.memory.MemoryGen.mem_into` (a string or tuple
compared or indexed is first written to the stack) and :meth:`~.maps.MapGen.map_read`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Tuple

from ....errors import UndertowError
from ....lang import ir
from ....lang.types import ArrayTy, BufTy, IntTy, PtrTy, StrTy, Ty, VoidTy
from .. import insn as I
from ..asm import Reg
from ..compiled import PROG_TYPES
from ..layout import Slot, layout
from .prologue import Prologue

__all__ = ["ExprGen", "field_alias", "STR_COMPARE_BYTES", "BPF_F_USER_STACK"]

BPF_F_USER_STACK = 1 << 8
#: The most bytes (NUL included) ``str(p) == "literal"`` reads: the 512-byte BPF stack holds
#: it. A longer literal can never be equal.
STR_COMPARE_BYTES = 256


#: stack slots between the stack pointer at a function's entry and its first stack argument
_ARG0_STACK_SLOT = {"x86_64": 1}  # the return address


class ExprGen(Prologue):
    """Scalars (:meth:`scalar`), conditions (:meth:`cond`) and addresses (:meth:`addr`)."""

    # -- scalars
    def scalar(self, e: ir.Expr) -> None:  # noqa: C901 - one dispatch over the IR
        """Evaluate ``e`` into R0."""
        a = self.a
        a.origin = e
        t = e.type
        if isinstance(e, ir.Const):
            if isinstance(e.value, int):
                a.mov_imm(I.R0, e.value)
                return
            raise self.err("a string is not a number here", e)
        if isinstance(e, ir.Builtin):
            return self.builtin(e)
        if isinstance(e, ir.Arg):
            return self.arg(e)
        if isinstance(e, ir.Retval):
            return self.retval(e)
        if isinstance(e, ir.Register):
            if PROG_TYPES.get(self.ap.kind) not in ("KPROBE", "PERF_EVENT"):
                raise self.err(f"registers are not available at {self.ap.kind} probes", e)
            a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(e.name))
            return
        if isinstance(e, ir.Field):
            return self.field(e)
        if isinstance(e, ir.Var):
            off, slot = self.vars[e.name]
            if not slot.scalar:
                raise self.err(f"{e.name} holds a {slot.kind}, not a number", e)
            a.ldx(I.DW, I.R0, I.FP, off)
            return
        if isinstance(e, ir.MapRead):
            return self.map_read(e)
        if isinstance(e, ir.IncDec):
            return self.incdec(e)
        if isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            space = self.addr(e)
            size = t.size if t is not None and t.size in (1, 2, 4, 8) else 8
            self.read_scalar(space, size, _signed(t), span=e.span)
            if isinstance(e, ir.Member) and e.bit_size:
                a.rsh64(I.R0, e.bit_offset or 0)
                a.and64(I.R0, (1 << e.bit_size) - 1) if e.bit_size < 32 else a.mov32(I.R0, Reg(I.R0))
            return
        if isinstance(e, ir.Cast):
            if isinstance(e.expr.type, ArrayTy):
                # (u32 *)args.saddr: an array decays to its address (in the record, or in memory)
                self.addr(e.expr)
                return
            self.scalar(e.expr)
            if isinstance(t, IntTy) and t.size < 8:
                self.extend(t.size, t.signed)
            return
        if isinstance(e, ir.Unary):
            if e.op == "!":
                self.branch_value(lambda yes, no: self.cond(e.expr, yes, no), 0, 1)
                return
            self.scalar(e.expr)
            if e.op == "-":
                a.neg64(I.R0)
            elif e.op == "~":
                a.alu("xor", I.R0, -1)
            return
        if isinstance(e, ir.Binary):
            if e.op in ("&&", "||", "==", "!=", "<", "<=", ">", ">="):
                return self.bool_value(e)
            return self.arith(e)
        if isinstance(e, ir.Ternary):
            yes, no, end = self.label("ty"), self.label("tn"), self.label("te")
            self.cond(e.cond, yes, no)
            a.label(yes)
            self.scalar(e.then)
            a.ja(end)
            a.label(no)
            self.scalar(e.other)
            a.label(end)
            return
        if isinstance(e, ir.TupleIndex):
            mark = self.sp
            bs = layout(e.base.type)
            tmp = self.alloc(bs.size)
            self.mem_into(e.base, I.FP, tmp, bs)
            o, _s = bs.elems[e.index]
            a.ldx(I.DW, I.R0, I.FP, tmp + o)
            self.release(mark)
            return
        if isinstance(e, ir.Call):
            return self.call_scalar(e)
        if isinstance(e, ir.Symbol) and e.address is not None:
            a.mov_imm(I.R0, e.address)
            return
        if isinstance(e, ir.SkbHeader) and e.addr is not None:
            return self.scalar(e.addr)  # the header's address (lang/skbview.py)
        if isinstance(e, ir.Payload) and e.addr is not None:
            self.scalar(e.addr)
            self.read_scalar("kernel", e.elem_size, False, span=e.span)
            return
        raise self.err(f"{type(e).__name__.lower()} is not supported by the BPF backend yet", e)

    def builtin(self, e: ir.Builtin) -> None:
        a = self.a
        n = e.name
        if n in ("pid", "tid"):
            a.call(I.Helper.get_current_pid_tgid)
            if n == "pid":
                a.rsh64(I.R0, 32)
            else:
                a.mov32(I.R0, Reg(I.R0))
        elif n in ("uid", "gid", "username"):
            a.call(I.Helper.get_current_uid_gid)
            if n == "gid":
                a.rsh64(I.R0, 32)
            else:
                a.mov32(I.R0, Reg(I.R0))
        elif n == "nsecs":
            a.call(I.Helper.ktime_get_ns)
        elif n == "elapsed":
            a.call(I.Helper.ktime_get_ns)
            a.ld_imm64(I.R1, self.out.start_ns).value_ref("start_ns")  # the session's, patched at load
            a.sub64(I.R0, Reg(I.R1))
        elif n == "cpu":
            a.call(I.Helper.get_smp_processor_id)
        elif n.startswith("sarg") and n[4:].isdigit():
            # the N-th 8-byte stack slot above the stack pointer, past x86's return address
            # (bpftrace 0.17: sp + (N + arg_stack_offset) * 8)
            a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(self.arch.stack_reg))
            a.add64(I.R0, (int(n[4:]) + _ARG0_STACK_SLOT.get(self.arch.name, 0)) * 8)
            self.read_scalar(self.space_of(e), 8, False)
        elif n == "curtask":
            a.call(I.Helper.get_current_task)
        elif n == "cgroup":
            a.call(I.Helper.get_current_cgroup_id)
        elif n == "rand":
            a.call(I.Helper.get_prandom_u32)
        elif n == "jiffies":
            a.call(I.Helper.jiffies64)
        elif n == "numaid":
            a.call(I.Helper.get_numa_node_id)
        elif n == "cpid":
            a.mov_imm(I.R0, int(self.program.setting("cpid", 0) or 0))
        elif n == "kstack":
            self.stack_id(False)
        elif n == "ctx":
            a.mov64(I.R0, Reg(I.R6))
        else:
            raise self.err(f"the builtin {n} is not supported by the BPF backend yet", e)

    def stack_id(self, user: bool) -> None:
        a = self.a
        self.out.uses_stacks = True
        a.mov64(I.R1, Reg(I.R6))
        a.ld_map_fd(I.R2, "stacks")
        a.mov64(I.R3, BPF_F_USER_STACK if user else 0)
        a.call(I.Helper.get_stackid)

    def arg(self, e: ir.Arg) -> None:
        a = self.a
        kind = PROG_TYPES.get(self.ap.kind)
        assert e.index is not None
        if self.ap.kind == "usdt":
            return self.usdt_arg(e)
        if kind in ("KPROBE", "PERF_EVENT"):
            regs = self.arch.arg_regs
            if e.index >= len(regs):
                raise self.err(f"arg{e.index} is passed on the stack; undertow reads register arguments only", e)
            a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(regs[e.index]))
        elif e.index in self.iter_slots:
            a.ldx(I.DW, I.R0, I.FP, self.iter_slots[e.index])  # checked in the prologue
        elif kind in ("RAW_TRACEPOINT", "TRACING"):
            a.ldx(I.DW, I.R0, I.R6, 8 * e.index)
        else:
            raise self.err(f"arguments are not available at {self.ap.kind} probes", e)
        t = e.type
        if isinstance(t, IntTy) and t.size < 8:
            self.extend(t.size, t.signed)

    def usdt_arg(self, e: ir.Arg) -> None:
        """R0 = USDT argument ``e.index`` of this location, read as its SDT note's spec says
        (``-4@%edi``: a register; ``8@-8(%rbp)``, ``-4@-88(%rsp,%rax,8)``: memory at a
        register plus a displacement and a scaled index; ``4@$5``: a constant), then
        widened from its size (sign-extended when the size is negative)."""
        from ....kernel.usdt import split_subregister

        a = self.a
        u = getattr(self.ap, "usdt", None)
        assert e.index is not None
        if u is None or e.index >= len(u.arguments):
            raise self.err(f"arg{e.index} is not an argument of this USDT probe", e)
        spec = u.arguments[e.index]
        size = spec.size if spec.size in (1, 2, 4, 8) else 8

        def reg(name: str, dst: int) -> None:
            full, shift = split_subregister(name)
            try:
                off = self.arch.reg_offset(full)
            except UndertowError:
                raise self.err(f"arg{e.index}: unknown register '{name}' in the USDT argument '{spec.text}'",
                               e) from None
            a.ldx(I.DW, dst, I.R6, off)
            if shift:
                a.rsh64(dst, shift)

        if spec.kind == "const":
            a.mov_imm(I.R0, spec.value)
        elif spec.kind == "reg" and spec.reg:
            reg(spec.reg, I.R0)
        elif spec.kind == "mem" and (not spec.symbol or spec.value):
            if spec.symbol:
                # sym(%rip): the symbol's address where the file is loaded: its link-time
                # address plus the load bias (the probe's address now minus the note's)
                a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(self.arch.ip_reg))
                a.mov_imm(I.R1, spec.value - u.pc)
                a.add64(I.R0, Reg(I.R1))
                if spec.reg and spec.reg.lower() not in ("rip", "eip", "ip"):
                    reg(spec.reg, I.R1)  # sym(%rbx): the symbol's address plus a register
                    a.add64(I.R0, Reg(I.R1))
            elif spec.reg:
                reg(spec.reg, I.R0)
            else:
                a.mov64(I.R0, 0)
            if spec.index:
                reg(spec.index, I.R1)
                if spec.scale != 1:
                    a.alu("mul", I.R1, spec.scale)
                a.add64(I.R0, Reg(I.R1))
            if spec.offset:
                a.mov_imm(I.R1, spec.offset)
                a.add64(I.R0, Reg(I.R1))
            self.read_scalar("user", size, spec.signed)
            return
        else:
            raise self.err(f"arg{e.index}: the USDT argument '{spec.text}' is not supported yet", e)
        if size < 8:
            self.extend(size, spec.signed)

    def retval(self, e: ir.Retval) -> None:
        a = self.a
        kind = PROG_TYPES.get(self.ap.kind)
        if kind == "KPROBE":
            a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(self.arch.ret_reg))
        elif self.ap.kind == "fexit":
            nargs = int(getattr(self.ap, "nargs", 0) or 0)
            a.ldx(I.DW, I.R0, I.R6, 8 * nargs)
        else:
            raise self.err(f"retval is not available at {self.ap.kind} probes", e)

    def field(self, e: ir.Field) -> None:
        a = self.a
        ff = e.fmt_field
        if ff is None or (ff.is_common and e.name == "common_pid"):
            # a tracepoint program may not read the record's common fields (the verifier:
            # "invalid bpf_context access off=4"): common_pid is the current thread's id
            alias = field_alias(e)
            if alias is not None:
                return self.scalar(alias)
            raise self.err(f"{e.name} is not a tracepoint field here", e)
        if ff.dynamic or ff.array_len is not None or ff.size not in (1, 2, 4, 8):
            raise self.err(f"args.{ff.name} is not a number ({ff.type}); use str() or compare it as a string", e)
        size = {1: I.B, 2: I.H, 4: I.W, 8: I.DW}[ff.size]
        a.ldx(size, I.R0, I.R6, ff.offset)
        if ff.size < 8 and ff.signed:
            self.extend(ff.size, True)
        elif ff.size == 8 and ff.type.strip() in ("int", "pid_t") and self.group == "syscalls":
            self.extend(4, True)  # an int in a syscall's 64-bit argument slot

    def call_scalar(self, e: ir.Call) -> None:
        a = self.a
        n = e.name
        if n in ("ksym", "strerror", "kptr", "uptr", "cgroup_path"):
            return self.scalar(e.args[0])
        if n == "strftime":
            return self.scalar(e.args[1])
        if n == "kstack":
            return self.stack_id(False)
        if n == "bswap":
            self.scalar(e.args[0])
            size = e.args[0].type.size if e.args[0].type is not None else 8
            a.endian(I.R0, 8 * (size if size in (2, 4, 8) else 8), big=True)
            return
        if n == "strncmp":
            lim = int(e.args[2].value) if isinstance(e.args[2], ir.Const) else 64
            self.branch_value(lambda yes, no: self.str_equal(e.args[0], e.args[1], yes, no, limit=lim), 0, 1)
            return
        if n == "strcontains":
            self.branch_value(lambda yes, no: self.str_contains(e.args[0], e.args[1], yes, no), 1, 0)
            return
        if n == "regex_match":
            self.branch_value(lambda yes, no: self.regex_match(e.args[0], str(e.args[1].value), yes, no), 1, 0)
            return
        raise self.err(f"{n}() is not supported by the BPF backend yet", e)

    def regex_match(self, hay: ir.Expr, pattern: str, yes: str, no: str) -> None:
        """Jump to ``yes`` when the POSIX ERE ``pattern`` matches in the string ``hay``
        (SystemTap's ``=~``): its DFA (lang/regex.py) walked by a loop bounded by the string's
        buffer, R2 the offset, R3 the state, R1 the byte; no helper is called in the loop, so
        R1-R5 are free, and the verifier sees R2 as a constant each round (Linux 5.3+: bounded
        loops)."""
        from ....lang.regex import DEAD, MATCH, RegexError, compile_dfa

        a = self.a
        try:
            dfa = compile_dfa(pattern)
        except RegexError as ex:
            raise self.err(f"bad regular expression: {ex.msg}", hay) from None
        if dfa.start_matches:
            a.ja(yes)
            return
        mark = self.sp
        hs = layout(hay.type)
        hoff = self.alloc(hs.size)
        self.mem_into(hay, I.FP, hoff, hs)
        loop, end = self.label("rxl"), self.label("rxe")
        states = [self.label("rxs") for _ in dfa.trans]
        a.mov64(I.R2, 0)
        a.mov64(I.R3, 0)
        a.label(loop)
        a.jge(I.R2, hs.size, end)  # a full buffer ends the string
        a.mov64(I.R4, Reg(I.FP))
        a.add64(I.R4, hoff)
        a.add64(I.R4, Reg(I.R2))
        a.ldx(I.B, I.R1, I.R4, 0)
        a.jeq(I.R1, 0, end)
        a.add64(I.R2, 1)
        for s, lab in enumerate(states[1:], 1):
            a.jeq(I.R3, s, lab)
        for s, lab in enumerate(states):
            a.label(lab)
            ranges = dfa.trans[s]
            # the most common target last, without a test
            counts: dict = {}
            for lo, hi, t in ranges:
                counts[t] = counts.get(t, 0) + hi - lo + 1
            default = max(counts, key=lambda t: counts[t])
            for lo, hi, t in ranges:
                if t == default:
                    continue
                go = self.label("rxt")
                skip = self.label("rxn")
                if lo == hi:
                    a.jeq(I.R1, lo, go)
                else:
                    a.jlt(I.R1, lo, skip)
                    a.jle(I.R1, hi, go)
                a.label(skip)
                after = self.label("rxa")
                a.ja(after)
                a.label(go)
                self._rx_goto(t, loop, yes, no, MATCH, DEAD)
                a.label(after)
            self._rx_goto(default, loop, yes, no, MATCH, DEAD)
        a.label(end)
        for s, acc in enumerate(dfa.at_end):
            if acc:
                a.jeq(I.R3, s, yes)
        a.ja(no)
        self.release(mark)

    def _rx_goto(self, t: int, loop: str, yes: str, no: str, match: int, dead: int) -> None:
        a = self.a
        if t == match:
            a.ja(yes)
        elif t == dead:
            a.ja(no)
        else:
            a.mov64(I.R3, t)
            a.ja(loop)

    def str_contains(self, hay: ir.Expr, needle: ir.Expr, yes: str, no: str) -> None:
        """Jump to ``yes`` when the string ``needle`` occurs in ``hay`` (``strcontains``):
        unrolled, every start in the haystack against every needle byte (no loops to verify)."""
        a = self.a
        mark = self.sp
        hs = layout(hay.type)
        hoff = self.alloc(hs.size)
        self.mem_into(hay, I.FP, hoff, hs)
        if isinstance(needle, ir.Const) and isinstance(needle.value, str):
            data = ir.text_bytes(needle.value).split(b"\x00", 1)[0]
            if not data:
                a.ja(yes)
            for i in range(hs.size - len(data) + 1 if data else 0):
                nxt = self.label("cs")
                a.ldx(I.B, I.R1, I.FP, hoff + i)
                a.jeq(I.R1, 0, no)  # the haystack ended
                for k, byte in enumerate(data):
                    if k:
                        a.ldx(I.B, I.R1, I.FP, hoff + i + k)
                    a.jne(I.R1, byte, nxt)
                a.ja(yes)
                a.label(nxt)
            a.ja(no)
            self.release(mark)
            return
        ns = layout(needle.type)
        noff = self.alloc(ns.size)
        self.mem_into(needle, I.FP, noff, ns)
        a.ldx(I.B, I.R2, I.FP, noff)
        a.jeq(I.R2, 0, yes)  # "" is in every string
        for i in range(hs.size):
            nxt = self.label("cs")
            a.ldx(I.B, I.R1, I.FP, hoff + i)
            a.jeq(I.R1, 0, no)
            span = min(ns.size, hs.size - i)
            for k in range(span):
                a.ldx(I.B, I.R2, I.FP, noff + k)
                if k:
                    a.jeq(I.R2, 0, yes)  # the whole needle matched
                    a.ldx(I.B, I.R1, I.FP, hoff + i + k)
                a.jne(I.R1, Reg(I.R2), nxt)
            if span < ns.size:  # the haystack's buffer ended: a match only if the needle did
                a.ldx(I.B, I.R2, I.FP, noff + span)
                a.jeq(I.R2, 0, yes)
                a.ja(nxt)
            else:
                a.ja(yes)  # the needle's buffer is full and matched
            a.label(nxt)
        a.ja(no)
        self.release(mark)

    def arith(self, e: ir.Binary) -> None:
        a = self.a
        op = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or", "^": "xor",
              "<<": "lsh", ">>": "rsh"}.get(e.op)
        if op is None:
            raise self.err(f"operator {e.op} is not supported by the BPF backend", e)
        if op == "rsh" and _signed(e.left.type):
            op = "arsh"
        scale = 1
        if isinstance(e.left.type, PtrTy) and e.op in ("+", "-"):
            tgt = e.left.type.target
            scale = tgt.size if tgt is not None and tgt.size > 0 and not isinstance(tgt, VoidTy) else 1
        if isinstance(e.right, ir.Const) and isinstance(e.right.value, int) and \
                -(1 << 31) <= e.right.value * scale < (1 << 31):
            self.scalar(e.left)
            a.alu(op, I.R0, e.right.value * scale)
            return
        mark = self.sp
        tmp = self.alloc(8)
        self.scalar(e.left)
        a.stx(I.DW, I.FP, tmp, I.R0)
        self.scalar(e.right)
        if scale != 1:
            a.alu("mul", I.R0, scale)
        a.mov64(I.R1, Reg(I.R0))
        a.ldx(I.DW, I.R0, I.FP, tmp)
        a.alu(op, I.R0, Reg(I.R1))
        self.release(mark)

    def bool_value(self, e: ir.Expr) -> None:
        self.branch_value(lambda yes, no: self.cond(e, yes, no), 1, 0)

    def branch_value(self, branch: Callable[[str, str], None], if_yes: int, if_no: int) -> None:
        """R0 = ``if_yes`` or ``if_no``, as ``branch(yes, no)`` jumps to one label or the other."""
        a = self.a
        yes, no, end = self.label("vy"), self.label("vn"), self.label("ve")
        branch(yes, no)
        a.label(yes)
        a.mov64(I.R0, if_yes)
        a.ja(end)
        a.label(no)
        a.mov64(I.R0, if_no)
        a.label(end)

    # -- conditions
    def cond(self, e: ir.Expr, yes: str, no: str) -> None:
        a = self.a
        a.origin = e
        if isinstance(e, ir.Binary) and e.op == "&&":
            mid = self.label("and")
            self.cond(e.left, mid, no)
            a.label(mid)
            self.cond(e.right, yes, no)
            return
        if isinstance(e, ir.Binary) and e.op == "||":
            mid = self.label("or")
            self.cond(e.left, yes, mid)
            a.label(mid)
            self.cond(e.right, yes, no)
            return
        if isinstance(e, ir.Unary) and e.op == "!":
            self.cond(e.expr, no, yes)
            return
        if isinstance(e, ir.Binary) and e.op == "~":
            raise self.err("glob matches (~) run on the ftrace backend", e)
        if isinstance(e, ir.Binary) and e.op in _CMP:
            left, right = _deref_strings(e.left, e.right, int(self.program.setting("strlen", 64) or 64))
            if left is not e.left or right is not e.right:
                e = ir.Binary(e.op, left, right).at(e.span)
            if _is_str(e.left.type) or _is_str(e.right.type):
                if e.op == "==":
                    self.str_equal(e.left, e.right, yes, no)
                else:
                    self.str_equal(e.left, e.right, no, yes)
                return
            if isinstance(e.left.type, (ArrayTy, BufTy)) and e.op in ("==", "!="):
                if e.op == "==":
                    self.mem_equal(e.left, e.right, yes, no)
                else:
                    self.mem_equal(e.left, e.right, no, yes)
                return
            signed = _cmp_signed(e.left, e.right)
            table = _SCMP if signed else _CMP
            if isinstance(e.right, ir.Const) and isinstance(e.right.value, int) and \
                    -(1 << 31) <= e.right.value < (1 << 31):
                self.scalar(e.left)
                a.jump(table[e.op], I.R0, e.right.value, yes)
                a.ja(no)
                return
            mark = self.sp
            tmp = self.alloc(8)
            self.scalar(e.left)
            a.stx(I.DW, I.FP, tmp, I.R0)
            self.scalar(e.right)
            a.ldx(I.DW, I.R1, I.FP, tmp)
            a.jump(table[e.op], I.R1, Reg(I.R0), yes)
            a.ja(no)
            self.release(mark)
            return
        self.scalar(e)
        a.jne(I.R0, 0, yes)
        a.ja(no)

    def str_equal(self, left: ir.Expr, right: ir.Expr, yes: str, no: str, limit: int = 1 << 30) -> None:
        """Jump to ``yes`` when the two strings are equal (up to ``limit`` bytes)."""
        a = self.a
        if isinstance(left, ir.Const) and not isinstance(right, ir.Const):
            left, right = right, left
        mark = self.sp
        ls = layout(left.type)
        if isinstance(right, ir.Const) and isinstance(right.value, str) and isinstance(left, ir.Call) and \
                left.name == "str" and len(left.args) == 1:
            # str(p) == "a long literal": read as much as the literal needs (the stack allows 256)
            want = len(ir.text_bytes(right.value)) + 1
            ls = Slot("str", min(STR_COMPARE_BYTES, max(ls.size, want)))
        loff = self.alloc(ls.size)
        self.mem_into(left, I.FP, loff, ls)
        if isinstance(right, ir.Const) and isinstance(right.value, str):
            data = (ir.text_bytes(right.value) + b"\x00")[:limit]
            if len(data) > ls.size:
                # cannot be equal; keep both paths reachable for the verifier's CFG check
                a.ldx(I.B, I.R1, I.FP, loff)
                a.jne(I.R1, 256, no)
                a.ja(yes)
                self.release(mark)
                return
            for i, byte in enumerate(data):
                a.ldx(I.B, I.R1, I.FP, loff + i)
                a.jne(I.R1, byte, no)
            a.ja(yes)
            self.release(mark)
            return
        rs = layout(right.type)
        roff = self.alloc(rs.size)
        self.mem_into(right, I.FP, roff, rs)
        n = min(ls.size, rs.size, limit)
        for i in range(n):
            a.ldx(I.B, I.R1, I.FP, loff + i)
            a.ldx(I.B, I.R2, I.FP, roff + i)
            a.jne(I.R1, Reg(I.R2), no)
            a.jeq(I.R1, 0, yes)
        a.ja(yes)
        self.release(mark)

    def mem_equal(self, left: ir.Expr, right: ir.Expr, yes: str, no: str) -> None:
        """Jump to ``yes`` when two values held in memory (arrays, buffers) have the same
        bytes (both written to the stack, then compared 8, then 1 byte at a time)."""
        a = self.a
        mark = self.sp
        ls, rs = layout(left.type), layout(right.type)
        loff = self.alloc(ls.size)
        self.mem_into(left, I.FP, loff, ls)
        roff = self.alloc(rs.size)
        self.mem_into(right, I.FP, roff, rs)
        n = min(ls.size, rs.size)
        pos = 0
        while pos < n:
            w = I.DW if n - pos >= 8 else I.B
            a.ldx(w, I.R1, I.FP, loff + pos)
            a.ldx(w, I.R2, I.FP, roff + pos)
            a.jne(I.R1, Reg(I.R2), no)
            pos += 8 if w == I.DW else 1
        a.ja(yes if ls.size == rs.size else no)
        self.release(mark)

    # -- addresses
    def addr(self, e: ir.Expr) -> str:
        """R0 = the address of the lvalue ``e``; returns its address space ("kernel"/"user"/"any").
        A value held in a variable or a map (an array, a struct) is addressed where it is
        held: the stack, the map's value (0 when the key is absent)."""
        a = self.a
        if isinstance(e, ir.Var):
            off, _slot = self.vars[e.name]
            a.mov64(I.R0, Reg(I.FP))
            a.add64(I.R0, off)
            return "kernel"
        if isinstance(e, ir.MapRead):
            self.map_value_addr(e)
            return "kernel"
        if isinstance(e, ir.Member):
            if e.arrow:
                self.scalar(e.base)
                space = self.space_of(e.base)
            else:
                space = self.addr(e.base)
            if e.offset:
                a.add64(I.R0, e.offset)
            return space
        if isinstance(e, ir.Index):
            bt = e.base.type
            elem = bt.elem if isinstance(bt, ArrayTy) else bt.target if isinstance(bt, PtrTy) else None
            esize = elem.size if elem is not None and elem.size else 1
            if isinstance(bt, ArrayTy):
                space = self.addr(e.base)
            else:
                self.scalar(e.base)
                space = self.space_of(e.base)
            if isinstance(e.index, ir.Const) and isinstance(e.index.value, int):
                if e.index.value:
                    a.add64(I.R0, e.index.value * esize)
                return space
            mark = self.sp
            tmp = self.alloc(8)
            a.stx(I.DW, I.FP, tmp, I.R0)
            self.scalar(e.index)
            a.alu("mul", I.R0, esize)
            a.ldx(I.DW, I.R1, I.FP, tmp)
            a.add64(I.R0, Reg(I.R1))
            self.release(mark)
            return space
        if isinstance(e, ir.Deref):
            self.scalar(e.expr)
            return self.space_of(e.expr)
        if isinstance(e, ir.Cast):
            self.scalar(e)
            return self.space_of(e)
        if isinstance(e, ir.Field) and e.fmt_field is not None and not e.fmt_field.dynamic:
            a.mov64(I.R0, Reg(I.R6))  # a field of the tracepoint record: ctx + offset
            a.add64(I.R0, e.fmt_field.offset)
            return "kernel"
        raise self.err(f"cannot take the address of {type(e).__name__.lower()}", e)

    def space_of(self, e: ir.Expr) -> str:
        t = e.type
        if isinstance(t, PtrTy) and t.space == "user":
            return "user"
        if self.ap.kind in ("uprobe", "uretprobe", "usdt"):
            return "kernel" if ir.kernel_rooted(e) else "user"
        if isinstance(e, ir.Field) and self.group == "syscalls":
            return "user"
        if isinstance(t, PtrTy):
            if self.ap.kind in _NO_SPACE_KINDS and _spaceless(e):
                return "any"
            return "kernel"
        return "any"

    def read_helper(self, space: str) -> int:
        return {"user": I.Helper.probe_read_user, "kernel": I.Helper.probe_read_kernel}.get(
            space, I.Helper.probe_read)

    def str_helper(self, src: ir.Expr) -> int:
        space = self.space_of(src)
        return {"user": I.Helper.probe_read_user_str, "kernel": I.Helper.probe_read_kernel_str}.get(
            space, I.Helper.probe_read_str)

    def read_scalar(self, space: str, size: int, signed: bool, span: Any = None) -> None:
        """R0 (an address) -> R0 = the ``size``-byte value there (0 when the read faults;
        ``-kk``: a helper_error record for ``span``)."""
        a = self.a
        mark = self.sp
        tmp = self.alloc(8)
        a.st(I.DW, I.FP, tmp, 0)
        a.mov64(I.R3, Reg(I.R0))
        a.mov64(I.R1, Reg(I.FP))
        a.add64(I.R1, tmp)
        a.mov64(I.R2, size)
        a.call(self.read_helper(space))
        if span is not None:
            self.check_helper("probe_read", span, read=True)  # type: ignore[attr-defined] # RecordGen's
        a.ldx({1: I.B, 2: I.H, 4: I.W, 8: I.DW}[size], I.R0, I.FP, tmp)
        if signed and size < 8:
            self.extend(size, True)
        self.release(mark)


#: Probes whose context says nothing of an address space (bpftrace 0.17's find_addrspace:
#: "none"): a pointer made by casting a plain number there is read with bpf_probe_read, which
#: takes a kernel or a user address (a user one, as bpftrace, for ``((struct foo *)0)->a``).
_NO_SPACE_KINDS = frozenset(("begin", "end", "profile", "interval", "software", "hardware", "watchpoint",
                             "asyncwatchpoint"))
#: Builtins and functions whose values bpftrace 0.17 marks as kernel (or user) addresses.
_SPACED_BUILTINS = frozenset(("curtask", "comm", "func"))
_SPACED_CALLS = frozenset(("kptr", "uptr", "str", "buf", "ksym", "usym", "kaddr", "uaddr"))


def _spaceless(e: ir.Expr) -> bool:
    """Whether the pointer ``e`` (through ``->``, ``.``, ``[]``, ``*``) comes from a cast of a
    value with no address space: a number, a variable or arithmetic on them."""
    while isinstance(e, (ir.Member, ir.Index, ir.Deref, ir.Cast)):
        inner = e.base if isinstance(e, (ir.Member, ir.Index)) else e.expr
        if isinstance(e, ir.Cast) and not isinstance(inner.type, PtrTy):
            return not _has_space(inner)
        e = inner
    return False


def _has_space(e: ir.Expr) -> bool:
    """Whether bpftrace 0.17 gives the (non-pointer) value ``e`` an address space."""
    if isinstance(e, ir.Builtin):
        return e.name in _SPACED_BUILTINS
    if isinstance(e, ir.Call):
        return e.name in _SPACED_CALLS
    if isinstance(e, ir.Binary):
        return _has_space(e.left) or _has_space(e.right)
    if isinstance(e, (ir.Cast, ir.Unary)):
        return _has_space(e.expr)
    return isinstance(e, (ir.Arg, ir.Retval, ir.Field, ir.Register))


def field_alias(e: ir.Field) -> Optional[ir.Expr]:
    """What a probe-line filter name that is not an event field stands for."""
    d = getattr(e, "defined", None)
    if d is not None:
        return d.expr
    if e.name in ("comm", "COMM"):
        b = ir.Builtin("comm").at(e.span)
        b.type = StrTy(16)
        return b
    if e.name == "common_pid":
        b = ir.Builtin("tid").at(e.span)
        b.type = e.type
        return b
    if e.name in ("cpu", "CPU"):
        b = ir.Builtin("cpu").at(e.span)
        b.type = e.type
        return b
    return None


def _deref_strings(left: ir.Expr, right: ir.Expr, strlen: int) -> Tuple[ir.Expr, ir.Expr]:
    """``char *`` compared with a string literal compares the string it points to."""
    def wrap(x: ir.Expr, lit: ir.Expr) -> ir.Expr:
        t = x.type
        if isinstance(lit, ir.Const) and isinstance(lit.value, str) and isinstance(t, PtrTy) and \
                isinstance(t.target, IntTy) and t.target.size == 1:
            c = ir.Call("str", [x]).at(x.span)
            c.type = StrTy(strlen)
            return c
        return x
    return wrap(left, right), wrap(right, left)


_CMP = {"==": "jeq", "!=": "jne", ">": "jgt", ">=": "jge", "<": "jlt", "<=": "jle"}
_SCMP = {"==": "jeq", "!=": "jne", ">": "jsgt", ">=": "jsge", "<": "jslt", "<=": "jsle"}


def _signed(t: Optional[Ty]) -> bool:
    return bool(getattr(t, "signed", False)) and not isinstance(t, PtrTy)


def _is_str(t: Optional[Ty]) -> bool:
    return isinstance(t, StrTy) or (isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char)


def _cmp_signed(left: ir.Expr, right: ir.Expr) -> bool:
    """Signed compare when both sides are signed (bpftrace's rule: ``$u > -1`` with ``$u``
    unsigned compares unsigned, as C does); a literal takes the other side's sign."""
    def lit(x: ir.Expr) -> bool:
        return isinstance(x, ir.Const) and isinstance(x.value, int)
    if lit(right):
        return _signed(left.type)
    if lit(left):
        return _signed(right.type)
    return _signed(left.type) and _signed(right.type)
