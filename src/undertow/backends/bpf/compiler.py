"""The general IR -> BPF code generator: expressions, variables, maps, control flow, records.

One BPF program per attach point. Register use (see asm.py): R6 keeps the
context, R7 the ring-buffer record being filled, R8 a loop counter; every
expression leaves a scalar in R0, and partial results live in stack slots
(the verifier tracks 8-byte spills precisely), so helper calls (which clobber
R0-R5) never destroy them. Values that are not scalars (strings, tuples, ntop
addresses, stack ids with a pid) are written to memory: a stack slot, or the
record itself (base R7) so large printf arguments never cross the 512-byte stack.

Maps (``@name``): one BPF hash map each. ``count sum min max avg stats hist
lhist`` maps are per-CPU (no atomics, merged by user space) unless the program
reads them in the kernel; ``hist``/``lhist`` store one counter per (key, bucket)
as bpftrace does; plain ``@m[k] = v`` maps store the value's layout. A failed
update (map full) is counted in the ``lost`` array (slot 1) and reported.

Everything the kernel cannot do (printf formatting, print/clear/zero of maps,
exit, time, system, cat) is an *async action*: a ring-buffer record whose
header carries the action's id; user space (session.py) performs it in order.

Record header (48 bytes): u64 ts | u32 tgid | u32 tid | char comm[16] | u32 action
| u32 errors | u32 cpu | pad.
"""

from __future__ import annotations

import errno
import os
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Dict, List, Optional, Tuple

from ...errors import Span
from ...lang import ir
from ...lang.types import ArrayTy, EnumTy, IntTy, PtrTy, StrTy, Ty, VoidTy
from . import insn as I
from .asm import Asm, Program, Reg, ret0_exit
from .codegen import HDR_SIZE, Unsupported
from .compiled import (LOST_MAP_FULL, LOST_READ_FAULT, LOST_RINGBUF, PROG_TYPES,  # noqa: F401 - re-exported
                       AsyncAction, CompiledProbe, CompiledProgram, MapSpec)
from .layout import Slot, align8, layout

__all__ = ["MapSpec", "AsyncAction", "CompiledProbe", "CompiledProgram", "compile_program", "PROG_TYPES",
           "LOST_RINGBUF", "LOST_MAP_FULL", "LOST_READ_FAULT"]

STACK_LIMIT = 512
LOOP_LIMIT = 128
BPF_NOEXIST, BPF_ANY = 1, 0
BPF_F_USER_STACK = 1 << 8
AF_INET, AF_INET6 = 2, 10



def default_output() -> str:
    """How records leave the kernel: ``ringbuf`` (Linux 5.8+) or ``perfbuf`` (a perf event
    array: older kernels). ``UNDERTOW_BPF_OUTPUT`` forces one; otherwise a one-page ring
    buffer map is created and closed to see (~0.3 ms)."""
    forced = os.environ.get("UNDERTOW_BPF_OUTPUT", "")
    if forced in ("ringbuf", "perfbuf"):
        return forced
    from ...kernel import syscalls as sc
    from ...errors import BPFError

    try:
        os.close(sc.map_create(sc.MapType.RINGBUF, 0, 0, 4096))
    except BPFError as e:
        # EPERM/EACCES: not allowed to create maps at all (a dry run as a user) - not a
        # missing map type
        if getattr(e, "errno", None) in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return "perfbuf"
    except OSError:
        pass
    return "ringbuf"


#: The most bytes (NUL included) ``str(p) == "literal"`` reads: the 512-byte BPF stack holds
#: it. A longer literal can never be equal.
STR_COMPARE_BYTES = 256


def compile_program(program: ir.Program, *, arch: Any, self_pid: Optional[int] = None,
                    pid: Optional[int] = None, output: Optional[str] = None) -> CompiledProgram:
    """Compile a resolved program. Raises :class:`Unsupported` (with a span) for what cannot run.

    ``output``: ``ringbuf`` or ``perfbuf`` (default: :func:`default_output`)."""
    maps = collect_maps(program)
    out = CompiledProgram([], maps, [], start_ns=time.monotonic_ns(),
                          options={"arch": arch, "self_pid": self_pid, "pid": pid, "program": program,
                                   "exit_flag": _uses_exit(program), "output": output or default_output()})
    for probe in program.probes:
        for ap in probe.attach:
            g = ProbeGen(out, probe, ap, arch, self_pid, pid, program)
            prog = g.generate()
            out.probes.append(CompiledProbe(len(out.probes), probe.name or ap.describe(), probe, ap,
                                            PROG_TYPES.get(ap.kind, "?"), prog))
    return out


# --------------------------------------------------------------------------- maps


def collect_maps(program: ir.Program) -> Dict[str, MapSpec]:
    """Every map the program uses, with layouts unified across all uses."""
    keys: Dict[str, List[Slot]] = {}
    values: Dict[str, Ty] = {}
    aggs: Dict[str, ir.MapUpdate] = {}
    reads: set = set()

    def key_use(name: str, key: List[ir.Expr]) -> None:
        slots = [layout(k.type) for k in key]
        old = keys.get(name)
        if old is None or not old:
            keys[name] = slots
        else:
            for i, (a, b) in enumerate(zip(old, slots)):
                if a.kind == b.kind == "str" and b.size > a.size:
                    old[i] = b

    def walk(actions: List[ir.Action]) -> None:
        for a in actions:
            for e in a.exprs():
                for n in e.walk():
                    if isinstance(n, ir.MapRead):
                        reads.add(n.map)
                        key_use(n.map, n.key)
            if isinstance(a, ir.MapUpdate):
                key_use(a.map, a.key)
                aggs.setdefault(a.map, a)
                if a.agg == "assign" and a.value is not None:
                    old = values.get(a.map)
                    t = a.value.type
                    if old is None or (isinstance(t, StrTy) and isinstance(old, StrTy) and t.size > old.size):
                        values[a.map] = t  # type: ignore[assignment]
            elif isinstance(a, ir.MapOp) and a.key:
                key_use(a.map, a.key)
            elif isinstance(a, ir.If):
                walk(a.then)
                walk(a.other)
            elif isinstance(a, ir.While):
                walk(a.body)

    for p in program.probes:
        if p.filter is not None:
            for n in p.filter.walk():
                if isinstance(n, ir.MapRead):
                    reads.add(n.map)
                    key_use(n.map, n.key)
        walk(p.actions)
    out: Dict[str, MapSpec] = {}
    for name, upd in aggs.items():
        elems = []
        off = 0
        for s in keys.get(name, []):
            elems.append((off, s))
            off = align8(off + s.size)
        key = Slot("tuple", off, elems=elems)
        agg = upd.agg
        if agg == "assign":
            value = layout(values.get(name))
        elif agg in ("min", "max", "avg", "stats"):
            value = Slot("int", 16, True)
        else:
            value = Slot("int", 8, agg == "sum")
        spec = MapSpec(name, agg, key, value, percpu=agg != "assign" and name not in reads,
                       read_in_kernel=name in reads)
        if agg == "lhist":
            spec.lhist = tuple(int(x.value) for x in upd.agg_args)  # type: ignore[assignment]
        if spec.keyless and not spec.bucketed and spec.percpu:
            # one key ever, updated in place: a preallocated per-CPU hash costs ~0.4 us per
            # entry and CPU to create (4096 entries: ~1.7 ms per map at start-up). Not for
            # shared maps: a delete on one CPU racing an insert on another needs a spare
            # element (measured: map_full losses with max_entries 1).
            spec.max_entries = 1
        out[name] = spec
    return out


# --------------------------------------------------------------------------- per-probe generator


class ProbeGen:
    """Generates one attach point's program."""

    def __init__(self, out: CompiledProgram, probe: ir.Probe, ap: ir.AttachPoint, arch: Any,
                 self_pid: Optional[int], pid: Optional[int], program: ir.Program) -> None:
        self.out, self.probe, self.ap, self.arch = out, probe, ap, arch
        self.self_pid, self.pid, self.program = self_pid, pid, program
        self.a = Asm()
        self.sp = 0
        self.vars: Dict[str, Tuple[int, Slot]] = {}
        self.loops: List[Tuple[str, str]] = []
        self.n = 0
        self.group = ap.target.partition(":")[0] if ap.kind == "tracepoint" else ""
        self.pname = probe.name or ap.target

    # -- small tools
    def label(self, what: str) -> str:
        self.n += 1
        return f"{what}{self.n}"

    def alloc(self, size: int, span: Optional[Span] = None) -> int:
        self.sp += align8(max(size, 1))
        if self.sp > STACK_LIMIT:
            raise Unsupported(f"this probe needs more than {STACK_LIMIT} bytes of BPF stack", span or self.probe.span)
        return -self.sp

    def release(self, mark: int) -> None:
        self.sp = mark

    def err(self, msg: str, e: Any) -> Unsupported:
        return Unsupported(msg, getattr(e, "span", None) or self.probe.span)

    # -- program
    def generate(self) -> Program:
        a = self.a
        a.mov64(I.R6, Reg(I.R1))
        host = self.ap.kind in ("begin", "end")
        if not host and (self.self_pid is not None or self.pid is not None):
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            if self.self_pid is not None:  # the loading process's pid, patched at load
                a.jeq(I.R0, self.self_pid, "exit").value_ref("self_pid")
            if self.pid is not None:
                a.jne(I.R0, self.pid, "exit")
        if not host:
            # state[0] != 0: exit() was called, or user space asked the programs to stop
            # (ProgramSession.stop_producing: a signal, --duration, --count). From then on no
            # probe records or counts anything more, while the reader catches up (the
            # verifier inlines this ARRAY lookup: a few instructions per event)
            off = self.alloc(8)
            a.st(I.DW, I.FP, off, 0)
            self.lookup("state", off)
            a.jeq(I.R0, 0, "exit")
            a.ldx(I.DW, I.R1, I.R0, 0)
            a.jne(I.R1, 0, "exit")
            self.release(0)
        self._alloc_vars(self.probe.actions)
        for off, slot in self.vars.values():
            self.zero(I.FP, off, slot.size)
        if self.probe.filter is not None:
            self.cond(self.probe.filter, "body", "exit")
            a.label("body")
        self.block(self.probe.actions)
        a.label("exit")
        ret0_exit(a)
        if a.references("lost_map"):
            a.label("lost_map")
            self.count_lost_inline(LOST_MAP_FULL)
            a.ja("exit")
        return a.assemble()

    def _alloc_vars(self, actions: List[ir.Action]) -> None:
        for act in actions:
            if isinstance(act, ir.Assign):
                s = layout(act.value.type)
                old = self.vars.get(act.var)
                if old is None:
                    self.vars[act.var] = (self.alloc(s.size, act.span), s)
                elif s.size > old[1].size:
                    raise self.err(f"{act.var} is assigned values of different sizes; assign the largest first", act)
            elif isinstance(act, ir.If):
                self._alloc_vars(act.then)
                self._alloc_vars(act.other)
            elif isinstance(act, ir.While):
                self._alloc_vars(act.body)

    # -- statements
    def block(self, actions: List[ir.Action]) -> None:
        for act in actions:
            mark = self.sp
            self.a.origin = act
            self.stmt(act)
            self.a.origin = None
            self.release(mark)

    def stmt(self, act: ir.Action) -> None:  # noqa: C901 - one dispatch
        a = self.a
        if isinstance(act, ir.Assign):
            off, slot = self.vars[act.var]
            self.store(act.value, I.FP, off, slot)
        elif isinstance(act, ir.MapUpdate):
            self.map_update(act)
        elif isinstance(act, ir.Printf):
            self.async_record(AsyncAction("printf", self.pname, act.fmt, span=act.span), act.args)
        elif isinstance(act, ir.If):
            yes, no, end = self.label("then"), self.label("else"), self.label("fi")
            self.cond(act.cond, yes, no)
            a.label(yes)
            self.block(act.then)
            a.ja(end)
            a.label(no)
            self.block(act.other)
            a.label(end)
        elif isinstance(act, ir.While):
            self.loop(act)
        elif isinstance(act, ir.MapOp):
            if act.op == "delete":
                spec = self.out.maps.get(act.map)
                if spec is None:
                    return
                koff = self.build_key(spec, act.key)
                a.ld_map_fd(I.R1, ("map", spec.name))
                a.mov64(I.R2, Reg(I.FP))
                a.add64(I.R2, koff)
                a.call(I.Helper.map_delete_elem)
            else:
                extra = {}
                if act.op == "print":
                    vals = [int(x.value) if isinstance(x, ir.Const) and isinstance(x.value, int) else 0
                            for x in act.args]
                    extra = {"top": vals[0] if vals else 0, "div": vals[1] if len(vals) > 1 else 1}
                self.async_record(AsyncAction(act.op, self.pname, map=act.map, extra=extra, span=act.span), [])
        elif isinstance(act, ir.PrintValue):
            self.async_record(AsyncAction("value", self.pname, span=act.span), [act.value])
        elif isinstance(act, ir.Exit):
            self.exit_now(act)
        elif isinstance(act, ir.Return):
            a.ja("exit")
        elif isinstance(act, ir.Break):
            if not self.loops:
                raise self.err("break outside a loop", act)
            a.ja(self.loops[-1][1])
        elif isinstance(act, ir.Continue):
            if not self.loops:
                raise self.err("continue outside a loop", act)
            a.ja(self.loops[-1][0])
        elif isinstance(act, ir.ExprStmt):
            self.expr_stmt(act)
        elif isinstance(act, ir.Emit):
            if act.stack or act.ustack:
                raise self.err("stacks on probe lines are shown by the ftrace backend (-s)", act)
            fields = [self.emit_value(f) for f in act.fields]
            self.async_record(AsyncAction("emit", self.pname, extra={
                "names": [f.name for f in act.fields], "fmts": [f.fmt for f in act.fields]}, span=act.span),
                fields)
        else:
            raise self.err(f"{type(act).__name__} is not supported by the BPF backend yet", act)

    def emit_value(self, f: ir.EmitField) -> ir.Expr:
        """A probe-line field: a ``char *`` shown as a string is read as one (user or kernel)."""
        e = f.expr
        t = e.type
        if f.fmt in ("str", "ustr") and (isinstance(t, PtrTy) or (isinstance(t, IntTy) and t.size == 8)):
            c = ir.Call("str", [e]).at(e.span)
            # room for the longest literal the filter compares this field with (else it
            # would print truncated while the filter, which reads further, matched)
            size = max(int(self.program.setting("strlen", 64) or 64), self._literal_len(f.name))
            c.type = StrTy(min(size, 256))
            if f.fmt == "ustr" and not (isinstance(t, PtrTy) and t.space == "user"):
                e.type = PtrTy(t.target if isinstance(t, PtrTy) else IntTy(1, True, "char", is_char=True), "user")
            return c
        return e

    def _literal_len(self, name: str) -> int:
        best = 0
        if self.probe.filter is not None:
            for n in self.probe.filter.walk():
                if isinstance(n, ir.Binary) and n.op in ("==", "!="):
                    for x, c in ((n.left, n.right), (n.right, n.left)):
                        if isinstance(x, ir.Field) and x.name == name and isinstance(c, ir.Const) and \
                                isinstance(c.value, str):
                            best = max(best, len(ir.text_bytes(c.value)) + 1)
        return best

    def expr_stmt(self, act: ir.ExprStmt) -> None:
        e = act.expr
        if not isinstance(e, ir.Call):
            mark = self.sp
            self.scalar(e)
            self.release(mark)
            return
        n = e.name
        if n == "time":
            fmt = str(e.args[0].value) if e.args and isinstance(e.args[0], ir.Const) else "%H:%M:%S\n"
            self.async_record(AsyncAction("time", self.pname, fmt, span=act.span), [])
        elif n in ("cat", "system"):
            fmt = str(e.args[0].value) if e.args and isinstance(e.args[0], ir.Const) else ""
            self.async_record(AsyncAction(n, self.pname, fmt, span=act.span), list(e.args[1:]))
        elif n == "join":
            self.join(e, act)
        elif n == "signal":
            if self.ap.kind in ("begin", "end"):
                raise self.err("signal() needs a traced task (not BEGIN/END)", e)
            self.scalar(e.args[0])
            self.a.mov64(I.R1, Reg(I.R0))
            self.a.call(I.Helper.send_signal)
        elif n == "exit":
            self.exit_now(act)
        else:
            raise self.err(f"{n}() is not supported by the BPF backend yet", e)

    def exit_now(self, act: ir.Action) -> None:
        """``exit()``: raise the shared stop flag, tell user space, end this run."""
        a = self.a
        mark = self.sp
        off = self.alloc(8)
        a.st(I.DW, I.FP, off, 0)
        self.lookup("state", off)
        skip = self.label("noflag")
        a.jeq(I.R0, 0, skip)
        a.st(I.DW, I.R0, 0, 1)
        a.label(skip)
        self.release(mark)
        self.async_record(AsyncAction("exit", self.pname, span=act.span), [])
        a.ja("exit")

    def join(self, e: ir.Call, act: ir.Action) -> None:
        """``join(argv[, sep])``: up to 16 user strings of 64 bytes from an array of pointers."""
        a = self.a
        n, size = 16, 64
        sep = str(e.args[1].value) if len(e.args) > 1 and isinstance(e.args[1], ir.Const) else " "
        slots = [(i * size, Slot("str", size)) for i in range(n)]
        action = AsyncAction("join", self.pname, "", slots, extra={"sep": sep}, size=n * size, span=act.span)
        mark = self.sp
        base = self.alloc(8)
        self.scalar(e.args[0])
        a.stx(I.DW, I.FP, base, I.R0)
        skip = self.label("nojoin")
        self.reserve(action, skip)
        tmp = self.alloc(8)
        for i in range(n):
            a.st(I.B, I.R7, HDR_SIZE + i * size, 0)
        for i in range(n):
            # p = argv[i] (a user pointer); stop at the first NULL
            a.mov64(I.R1, Reg(I.FP))
            a.add64(I.R1, tmp)
            a.mov64(I.R2, 8)
            a.ldx(I.DW, I.R3, I.FP, base)
            a.add64(I.R3, i * 8)
            a.call(I.Helper.probe_read_user)
            a.ldx(I.DW, I.R3, I.FP, tmp)
            a.jeq(I.R3, 0, f"{skip}_done")
            a.mov64(I.R1, Reg(I.R7))
            a.add64(I.R1, HDR_SIZE + i * size)
            a.mov64(I.R2, size)
            a.call(I.Helper.probe_read_user_str)
        a.label(f"{skip}_done")
        self.submit()
        a.label(skip)
        self.release(mark)

    def loop(self, act: ir.While) -> None:
        a = self.a
        if act.cond is None:  # unroll(n)
            done = self.label("udone")
            for _ in range(max(0, act.bound)):
                nxt = self.label("unext")
                self.loops.append((nxt, done))
                self.block(act.body)
                self.loops.pop()
                a.label(nxt)
            a.label(done)
            return
        top, body, end, step = self.label("while"), self.label("wbody"), self.label("wend"), self.label("wnext")
        counter = self.alloc(8, act.span)
        a.st(I.DW, I.FP, counter, 0)
        a.label(top)
        a.ldx(I.DW, I.R1, I.FP, counter)
        a.jge(I.R1, LOOP_LIMIT, end)
        a.add64(I.R1, 1)
        a.stx(I.DW, I.FP, counter, I.R1)
        self.cond(act.cond, body, end)
        a.label(body)
        self.loops.append((step, end))
        self.block(act.body)
        self.loops.pop()
        a.label(step)
        a.ja(top)
        a.label(end)

    # -- ring-buffer records
    def reserve(self, action: AsyncAction, skip: str) -> None:
        """Reserve a record for ``action`` into R7 (jump to ``skip`` after counting a loss).

        Ring buffer: ``bpf_ringbuf_reserve``. Perf buffer (``output="perfbuf"``): the
        record is built in this CPU's slot of the ``scratch`` PERCPU_ARRAY and copied out
        by :meth:`submit` (a program nested on the same CPU, e.g. a kprobe in an interrupt,
        could overwrite it; the ring buffer has no such window)."""
        a = self.a
        idx = len(self.out.actions)
        self.out.actions.append(action)
        self._rec_size = HDR_SIZE + align8(action.size)
        ok = self.label("rbok")
        if self.out.options.get("output") == "perfbuf":
            mark = self.sp
            key = self.alloc(8)
            a.st(I.DW, I.FP, key, 0)
            self.lookup("scratch", key)
            self.release(mark)
        else:
            a.ld_map_fd(I.R1, "rb")
            a.mov64(I.R2, self._rec_size)
            a.mov64(I.R3, 0)
            a.call(I.Helper.ringbuf_reserve)
        a.jne(I.R0, 0, ok)
        self.count_lost_inline(LOST_RINGBUF)
        a.ja(skip)
        a.label(ok)
        a.mov64(I.R7, Reg(I.R0))
        a.call(I.Helper.ktime_get_ns)
        a.stx(I.DW, I.R7, 0, I.R0)
        a.call(I.Helper.get_current_pid_tgid)
        a.stx(I.W, I.R7, 12, I.R0)
        a.rsh64(I.R0, 32)
        a.stx(I.W, I.R7, 8, I.R0)
        a.mov64(I.R1, Reg(I.R7))
        a.add64(I.R1, 16)
        a.mov64(I.R2, 16)
        a.call(I.Helper.get_current_comm)
        a.st(I.W, I.R7, 32, idx)
        a.st(I.W, I.R7, 36, 0)
        a.call(I.Helper.get_smp_processor_id)
        a.stx(I.W, I.R7, 40, I.R0)

    def lookup(self, mref: Any, key_off: int) -> None:
        """R0 = map_lookup_elem(map, fp + key_off) (NULL when absent: callers check)."""
        a = self.a
        a.ld_map_fd(I.R1, mref)
        a.mov64(I.R2, Reg(I.FP))
        a.add64(I.R2, key_off)
        a.call(I.Helper.map_lookup_elem)

    def count_lost_inline(self, slot: int) -> None:
        a = self.a
        mark = self.sp
        off = self.alloc(8)
        a.st(I.DW, I.FP, off, slot)
        self.lookup("lost", off)
        nope = self.label("nolost")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R1, 1)
        a.atomic_add(I.DW, I.R0, 0, I.R1)
        a.label(nope)
        self.release(mark)

    def submit(self) -> None:
        a = self.a
        if self.out.options.get("output") == "perfbuf":
            # bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, data, size). A full perf ring
            # makes it fail (-ENOSPC); counted here, exactly: the kernel's own
            # PERF_RECORD_LOST is only written once space frees up, so the last losses of a
            # burst would never be reported
            a.mov64(I.R1, Reg(I.R6))
            a.ld_map_fd(I.R2, "rb")
            a.mov_imm(I.R3, 0xFFFFFFFF)
            a.mov64(I.R4, Reg(I.R7))
            a.mov64(I.R5, self._rec_size)
            a.call(I.Helper.perf_event_output)
            sent = self.label("sent")
            done = self.label("sentdone")
            a.jsge(I.R0, 0, sent)
            self.count_lost_inline(LOST_RINGBUF)
            a.ja(done)
            a.label(sent)
            self.count_sent_inline()
            a.label(done)
            return
        a.mov64(I.R1, Reg(I.R7))
        a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
        a.call(I.Helper.ringbuf_submit)
        self.count_sent_inline()

    def count_sent_inline(self) -> None:
        """``sent[cpu] += 1`` (a PERCPU_ARRAY): records submitted, so that a stop can count
        the ones never read without walking the buffers (ProgramSession.count_unread).
        Atomic although per-CPU: a program in NMI (profile) may nest on the same CPU."""
        a = self.a
        mark = self.sp
        off = self.alloc(8)
        a.st(I.DW, I.FP, off, 0)
        self.lookup("sent", off)
        nope = self.label("nosent")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R1, 1)
        a.atomic_add(I.DW, I.R0, 0, I.R1)
        a.label(nope)
        self.release(mark)

    def async_record(self, action: AsyncAction, args: List[ir.Expr]) -> None:
        """A record with ``args`` laid out one after the other (8-aligned), then submitted."""
        off = 0
        for e in args:
            s = layout(e.type)
            action.args.append((off, s))
            off = align8(off + s.size)
        action.size = off
        if HDR_SIZE + off > 32768:
            raise self.err("this record is too large for the ring buffer", action)
        skip = self.label("norec")
        self.reserve(action, skip)
        for e, (o, s) in zip(args, action.args):
            self.store(e, I.R7, HDR_SIZE + o, s)
        self.submit()
        self.a.label(skip)

    # -- maps
    def build_key(self, spec: MapSpec, key: List[ir.Expr]) -> int:
        koff = self.alloc(spec.key_size)
        self.zero(I.FP, koff, spec.key_size)
        for e, (o, s) in zip(key, spec.key.elems):
            self.store(e, I.FP, koff + o, s)
        return koff

    def map_update(self, act: ir.MapUpdate) -> None:
        a = self.a
        spec = self.out.maps[act.map]
        mref = ("map", spec.name)
        koff = self.build_key(spec, act.key)
        voff = self.alloc(8)
        if act.value is not None and act.agg != "assign":
            self.scalar(act.value)
            a.stx(I.DW, I.FP, voff, I.R0)
        if act.agg == "hist":
            a.ldx(I.DW, I.R1, I.FP, voff)
            self.log2_bucket()
            a.stx(I.DW, I.FP, koff + spec.key_size - 8, I.R0)
        elif act.agg == "lhist":
            lo, hi, step = spec.lhist
            a.ldx(I.DW, I.R1, I.FP, voff)
            self.linear_bucket(lo, hi, step)
            a.stx(I.DW, I.FP, koff + spec.key_size - 8, I.R0)
        if act.agg == "assign":
            assert act.value is not None
            vs = spec.value
            val = self.alloc(spec.value_size)
            if spec.value_size > vs.size:
                self.zero(I.FP, val, spec.value_size)
            self.store(act.value, I.FP, val, vs)
            a.ld_map_fd(I.R1, mref)
            a.mov64(I.R2, Reg(I.FP))
            a.add64(I.R2, koff)
            a.mov64(I.R3, Reg(I.FP))
            a.add64(I.R3, val)
            a.mov64(I.R4, BPF_ANY)
            a.call(I.Helper.map_update_elem)
            a.jslt(I.R0, 0, "lost_map")
            return
        done = self.label("mdone")
        self.value_ptr(spec, koff, done)
        # R0 = the value (this CPU's slot for per-CPU maps)
        shared = not spec.percpu
        if act.agg in ("count", "hist", "lhist"):
            a.mov64(I.R1, 1)
            self.add_to(I.R0, 0, I.R1, shared)
        elif act.agg == "sum":
            a.ldx(I.DW, I.R1, I.FP, voff)
            self.add_to(I.R0, 0, I.R1, shared)
        elif act.agg in ("avg", "stats"):
            a.mov64(I.R1, 1)
            self.add_to(I.R0, 0, I.R1, shared)
            a.ldx(I.DW, I.R1, I.FP, voff)
            self.add_to(I.R0, 8, I.R1, shared)
        elif act.agg in ("min", "max"):
            a.ldx(I.DW, I.R1, I.FP, voff)
            setit = self.label("mset")
            a.ldx(I.DW, I.R2, I.R0, 8)
            a.jeq(I.R2, 0, setit)
            a.ldx(I.DW, I.R2, I.R0, 0)
            a.jump("jsge" if act.agg == "min" else "jsle", I.R1, Reg(I.R2), done)
            a.label(setit)
            a.stx(I.DW, I.R0, 0, I.R1)
            a.st(I.DW, I.R0, 8, 1)
        a.label(done)

    def add_to(self, ptr: int, off: int, reg: int, shared: bool) -> None:
        if shared:
            self.a.atomic_add(I.DW, ptr, off, reg)
        else:
            self.a.ldx(I.DW, I.R2, ptr, off)
            self.a.add64(I.R2, Reg(reg))
            self.a.stx(I.DW, ptr, off, I.R2)

    def value_ptr(self, spec: MapSpec, koff: int, fail: str) -> None:
        """R0 = pointer to the value at the key at ``koff``, created zeroed when absent."""
        a = self.a
        mref = ("map", spec.name)
        have = self.label("have")
        self.lookup(mref, koff)
        a.jne(I.R0, 0, have)
        zero = self.alloc(spec.value_size)
        self.zero(I.FP, zero, spec.value_size)
        a.ld_map_fd(I.R1, mref)
        a.mov64(I.R2, Reg(I.FP))
        a.add64(I.R2, koff)
        a.mov64(I.R3, Reg(I.FP))
        a.add64(I.R3, zero)
        a.mov64(I.R4, BPF_NOEXIST)
        a.call(I.Helper.map_update_elem)
        raced = self.label("raced")
        a.jsge(I.R0, 0, raced)
        a.jeq(I.R0, -17, raced)  # -EEXIST: another CPU created it first
        a.ja("lost_map")
        a.label(raced)
        self.lookup(mref, koff)
        a.jeq(I.R0, 0, fail)
        a.label(have)

    def log2_bucket(self) -> None:
        """R0 = bpftrace's log2 bucket of the signed value in R1: 0 (<0), 1 (0), 2 + floor(log2 v)."""
        a = self.a
        done, pos = self.label("l2done"), self.label("l2pos")
        a.mov64(I.R0, 0)
        a.jslt(I.R1, 0, done)
        a.mov64(I.R0, 1)
        a.jeq(I.R1, 0, done)
        a.mov64(I.R0, 2)
        for shift in (32, 16, 8, 4, 2, 1):
            nxt = self.label("l2")
            a.mov_imm(I.R2, 1 << shift)
            a.jlt(I.R1, Reg(I.R2), nxt)
            a.rsh64(I.R1, shift)
            a.add64(I.R0, shift)
            a.label(nxt)
        a.label(pos)
        a.label(done)

    def linear_bucket(self, lo: int, hi: int, step: int) -> None:
        """R0 = lhist bucket of R1: 0 below ``lo``, 1 + (v - lo) / step inside, last at/above ``hi``."""
        a = self.a
        done = self.label("lhdone")
        buckets = (hi - lo) // step
        a.mov64(I.R0, 0)
        a.mov_imm(I.R2, lo)
        a.jslt(I.R1, Reg(I.R2), done)
        a.mov64(I.R0, buckets + 1)
        a.mov_imm(I.R2, hi)
        a.jsge(I.R1, Reg(I.R2), done)
        a.mov64(I.R0, Reg(I.R1))
        a.mov_imm(I.R2, lo)
        a.sub64(I.R0, Reg(I.R2))
        a.alu("div", I.R0, step)
        a.add64(I.R0, 1)
        a.label(done)

    # -- memory helpers
    def zero(self, base: int, off: int, size: int) -> None:
        pos, end = off, off + size
        while pos < end:
            if end - pos >= 8 and pos % 8 == 0:
                self.a.st(I.DW, base, pos, 0)
                pos += 8
            elif end - pos >= 4 and pos % 4 == 0:
                self.a.st(I.W, base, pos, 0)
                pos += 4
            else:
                self.a.st(I.B, base, pos, 0)
                pos += 1

    def copy(self, sbase: int, soff: int, dbase: int, doff: int, size: int) -> None:
        a = self.a
        pos = 0
        while pos < size:
            if size - pos >= 8:
                a.ldx(I.DW, I.R1, sbase, soff + pos)
                a.stx(I.DW, dbase, doff + pos, I.R1)
                pos += 8
            else:
                a.ldx(I.B, I.R1, sbase, soff + pos)
                a.stx(I.B, dbase, doff + pos, I.R1)
                pos += 1

    def dst_ptr(self, reg: int, base: int, off: int) -> None:
        self.a.mov64(reg, Reg(base))
        self.a.add64(reg, off)

    # -- values into memory
    def cookie_string(self, name: str, base: int, off: int, slot: Slot) -> None:
        """``probe``/``func`` of a merged uprobe wildcard (one uprobe_multi link): the
        text of the attach point that fired, from the ``names`` table at the link's cookie
        (entries 0..N-1 probe names, N..2N-1 function names; filled by the runtime)."""
        a = self.a
        n = len(self.ap.multi)  # type: ignore[attr-defined]
        self.zero(base, off, slot.size)
        a.mov64(I.R1, Reg(I.R6))
        a.call(I.Helper.get_attach_cookie)
        if name == "func":
            a.add64(I.R0, n)
        mark = self.sp
        key = self.alloc(8)
        a.stx(I.W, I.FP, key, I.R0)
        self.lookup(("names", id(self.ap)), key)
        self.release(mark)
        nope = self.label("nocookie")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R3, Reg(I.R0))
        self.dst_ptr(I.R1, base, off)
        a.mov64(I.R2, slot.size)
        a.call(I.Helper.probe_read_kernel_str)
        a.label(nope)

    def store(self, e: ir.Expr, base: int, off: int, slot: Slot) -> None:
        """Evaluate ``e`` into ``[base + off]`` with layout ``slot``."""
        if slot.scalar:
            self.scalar(e)
            self.a.stx(I.DW, base, off, I.R0)
            return
        self.mem_into(e, base, off, slot)

    def mem_into(self, e: ir.Expr, base: int, off: int, slot: Slot) -> None:  # noqa: C901
        a = self.a
        a.origin = e
        if isinstance(e, ir.Const) and getattr(e, "cookie_name", None) and getattr(self.ap, "multi", None):
            self.cookie_string(str(e.cookie_name), base, off, slot)  # type: ignore[attr-defined]
            return
        if isinstance(e, ir.Const) and isinstance(e.value, str):
            data = ir.text_bytes(e.value)[: max(0, slot.size - 1)] + b"\x00"
            data = data + b"\x00" * (slot.size - len(data))
            for i in range(0, len(data) - len(data) % 4, 4):
                a.st(I.W, base, off + i, int.from_bytes(data[i:i + 4], "little", signed=True))
            for i in range(len(data) - len(data) % 4, len(data)):
                a.st(I.B, base, off + i, data[i])
            return
        if isinstance(e, ir.Builtin) and e.name == "comm":
            if slot.size > 16:
                self.zero(base, off, slot.size)
            self.dst_ptr(I.R1, base, off)
            a.mov64(I.R2, min(16, slot.size))
            a.call(I.Helper.get_current_comm)
            return
        if isinstance(e, ir.Builtin) and e.name == "ustack" or isinstance(e, ir.Call) and e.name == "ustack":
            self.stack_id(True)
            a.stx(I.DW, base, off, I.R0)
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            a.stx(I.DW, base, off + 8, I.R0)
            return
        if isinstance(e, ir.Var):
            voff, vslot = self.vars[e.name]
            n = min(vslot.size, slot.size)
            if slot.size > n:
                self.zero(base, off, slot.size)
            self.copy(I.FP, voff, base, off, n)
            return
        if isinstance(e, ir.MapRead):
            spec = self.out.maps.get(e.map)
            if spec is None:
                raise self.err(f"{e.map} is never assigned", e)
            koff = self.build_key(spec, e.key)
            self.lookup(("map", spec.name), koff)
            miss, end = self.label("miss"), self.label("got")
            a.jeq(I.R0, 0, miss)
            n = min(spec.value.size, slot.size)
            if slot.size > n:
                self.zero(base, off, slot.size)
            self.copy(I.R0, 0, base, off, n)
            a.ja(end)
            a.label(miss)
            self.zero(base, off, slot.size)
            a.label(end)
            return
        if isinstance(e, ir.TupleExpr):
            for x, (o, s) in zip(e.elems, slot.elems):
                self.store(x, base, off + o, s)
            return
        if isinstance(e, ir.TupleIndex):
            mark = self.sp
            bs = layout(e.base.type)
            tmp = self.alloc(bs.size)
            self.mem_into(e.base, I.FP, tmp, bs)
            o, s = bs.elems[e.index]
            self.copy(I.FP, tmp + o, base, off, min(s.size, slot.size))
            self.release(mark)
            return
        if isinstance(e, ir.Ternary):
            yes, no, end = self.label("ty"), self.label("tn"), self.label("te")
            self.cond(e.cond, yes, no)
            a.label(yes)
            self.mem_into(e.then, base, off, slot)
            a.ja(end)
            a.label(no)
            self.mem_into(e.other, base, off, slot)
            a.label(end)
            return
        if isinstance(e, ir.Field) and e.fmt_field is None and _field_alias(e) is not None:
            return self.mem_into(_field_alias(e), base, off, slot)  # type: ignore[arg-type]
        if isinstance(e, ir.Field) and e.fmt_field is not None:
            ff = e.fmt_field
            if ff.dynamic == "data_loc":
                self.zero(base, off, slot.size)
                a.ldx(I.W, I.R3, I.R6, ff.offset)
                a.and64(I.R3, 0xFFFF)
                a.add64(I.R3, Reg(I.R6))
                self.dst_ptr(I.R1, base, off)
                a.mov64(I.R2, slot.size)
                a.call(I.Helper.probe_read_kernel_str)
                return
            if ff.array_len is not None or ff.is_string:
                n = min(ff.size, slot.size)
                if slot.size > n:
                    self.zero(base, off, slot.size)
                self.dst_ptr(I.R1, base, off)
                a.mov64(I.R2, n)
                a.mov64(I.R3, Reg(I.R6))
                a.add64(I.R3, ff.offset)
                a.call(I.Helper.probe_read_kernel)
                return
        if isinstance(e, ir.Call):
            if self.call_into(e, base, off, slot):
                return
        if isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            space = self.addr(e)
            n = min(e.type.size if e.type is not None else slot.size, slot.size)
            if slot.size > n:
                mark = self.sp
                tmp = self.alloc(8)
                a.stx(I.DW, I.FP, tmp, I.R0)
                self.zero(base, off, slot.size)
                a.ldx(I.DW, I.R0, I.FP, tmp)
                self.release(mark)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off)
            a.mov64(I.R2, n)
            a.call(self.read_helper(space))
            return
        raise self.err(f"cannot compute {type(e).__name__.lower()} as {slot.kind} in the BPF backend yet", e)

    def call_into(self, e: ir.Call, base: int, off: int, slot: Slot) -> bool:
        a = self.a
        n = e.name
        if n == "str":
            src = e.args[0]
            if isinstance(src.type, (StrTy, ArrayTy)) or (isinstance(src, ir.Field) and src.fmt_field is not None
                                                          and src.fmt_field.dynamic):
                self.mem_into(src, base, off, slot)
                return True
            self.zero(base, off, slot.size)
            self.scalar(src)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off)
            size = slot.size
            if len(e.args) > 1 and not isinstance(e.args[1], ir.Const):
                # str(p, n) with n computed: clamp to the slot
                mark = self.sp
                t = self.alloc(8)
                a.stx(I.DW, I.FP, t, I.R3)
                self.scalar(e.args[1])
                a.add64(I.R0, 1)
                a.mov64(I.R2, Reg(I.R0))
                lim = self.label("strn")
                a.jle(I.R2, size, lim)
                a.mov64(I.R2, size)
                a.label(lim)
                a.and64(I.R2, 4095)
                ok = self.label("strz")
                a.jne(I.R2, 0, ok)
                a.mov64(I.R2, 1)
                a.label(ok)
                a.ldx(I.DW, I.R3, I.FP, t)
                self.dst_ptr(I.R1, base, off)
                self.release(mark)
            else:
                a.mov64(I.R2, size)
            a.call(self.str_helper(src))
            ok = self.label("strok")
            a.jsge(I.R0, 0, ok)
            # -EFAULT: the page is not mapped yet (syscall entry); counted, shown at exit
            self.count_lost_inline(LOST_READ_FAULT)
            a.label(ok)
            return True
        if n == "buf":
            src = e.args[0]
            size = slot.size - 8
            self.zero(base, off, slot.size)
            a.st(I.DW, base, off, size)
            if isinstance(src.type, ArrayTy) and isinstance(src, (ir.Field, ir.Member, ir.Index)):
                self.mem_into(src, base, off + 8, Slot("bytes", size))
                return True
            if len(e.args) > 1 and not isinstance(e.args[1], ir.Const):
                # buf(p, n) with n computed: read min(n, size) bytes, record that length
                mark = self.sp
                t = self.alloc(8)
                self.scalar(src)
                a.stx(I.DW, I.FP, t, I.R0)
                self.scalar(e.args[1])
                lim, done = self.label("bufn"), self.label("bufz")
                a.jsle(I.R0, size, lim)
                a.mov64(I.R0, size)
                a.label(lim)
                a.jsle(I.R0, 0, done)
                a.stx(I.DW, base, off, I.R0)
                a.mov64(I.R2, Reg(I.R0))
                a.ldx(I.DW, I.R3, I.FP, t)
                self.dst_ptr(I.R1, base, off + 8)
                a.call(self.read_helper(self.space_of(src)))
                a.label(done)
                self.release(mark)
                return True
            self.scalar(src)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off + 8)
            a.mov64(I.R2, size)
            a.call(self.read_helper(self.space_of(src)))
            return True
        if n == "ntop":
            self.zero(base, off, slot.size)
            addr = e.args[-1]
            fam: Optional[int] = None
            if len(e.args) == 2:
                self.scalar(e.args[0])
                a.stx(I.DW, base, off, I.R0)
            t = addr.type
            if isinstance(t, (IntTy, EnumTy)):
                fam = AF_INET
                self.scalar(addr)
                a.stx(I.W, base, off + 8, I.R0)
            elif isinstance(t, ArrayTy):
                fam = AF_INET if t.size == 4 else AF_INET6
                self.mem_into(addr, base, off + 8, Slot("bytes", min(16, t.size)))
            else:
                raise self.err(f"ntop() needs an address (u32 or u8[4]/u8[16]), not {t}", addr)
            if len(e.args) == 1:
                a.st(I.DW, base, off, fam)
            return True
        if n == "usym":
            self.scalar(e.args[0])
            a.stx(I.DW, base, off, I.R0)
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            a.stx(I.DW, base, off + 8, I.R0)
            return True
        if n == "macaddr":
            self.zero(base, off, slot.size)
            self.mem_into(e.args[0], base, off, Slot("bytes", 6))
            return True
        return False

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
        if isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            if isinstance(e, ir.Member) and not e.arrow and isinstance(e.base, ir.Var):
                raise self.err("members of a record held in a variable are not supported yet", e)
            space = self.addr(e)
            size = t.size if t is not None and t.size in (1, 2, 4, 8) else 8
            self.read_scalar(space, size, _signed(t))
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
                yes, no, end = self.label("ny"), self.label("nn"), self.label("ne")
                self.cond(e.expr, yes, no)
                a.label(yes)
                a.mov64(I.R0, 0)
                a.ja(end)
                a.label(no)
                a.mov64(I.R0, 1)
                a.label(end)
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
        raise self.err(f"{type(e).__name__.lower()} is not supported by the BPF backend yet", e)

    def extend(self, size: int, signed: bool) -> None:
        sh = 64 - 8 * size
        self.a.lsh64(I.R0, sh)
        self.a.alu("arsh" if signed else "rsh", I.R0, sh)

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
        if kind in ("KPROBE", "PERF_EVENT"):
            regs = self.arch.arg_regs
            if e.index >= len(regs):
                raise self.err(f"arg{e.index} is passed on the stack; undertow reads register arguments only", e)
            a.ldx(I.DW, I.R0, I.R6, self.arch.reg_offset(regs[e.index]))
        elif kind in ("RAW_TRACEPOINT", "TRACING"):
            a.ldx(I.DW, I.R0, I.R6, 8 * e.index)
        else:
            raise self.err(f"arguments are not available at {self.ap.kind} probes", e)
        t = e.type
        if isinstance(t, IntTy) and t.size < 8:
            self.extend(t.size, t.signed)

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
        if ff is None:
            alias = _field_alias(e)
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

    def map_read(self, e: ir.MapRead) -> None:
        a = self.a
        spec = self.out.maps.get(e.map)
        if spec is None:
            raise self.err(f"{e.map} is never assigned", e)
        koff = self.build_key(spec, e.key)
        self.lookup(("map", spec.name), koff)
        end = self.label("mr")
        a.jeq(I.R0, 0, end)
        if spec.agg == "avg":
            a.ldx(I.DW, I.R1, I.R0, 0)
            a.ldx(I.DW, I.R0, I.R0, 8)
            nz = self.label("avg")
            a.jne(I.R1, 0, nz)
            a.mov64(I.R1, 1)
            a.label(nz)
            a.alu("div", I.R0, Reg(I.R1))
        else:
            a.ldx(I.DW, I.R0, I.R0, 0)
        a.label(end)

    def call_scalar(self, e: ir.Call) -> None:
        a = self.a
        n = e.name
        if n in ("ksym", "strerror", "kptr", "uptr"):
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
            yes, no, end = self.label("sy"), self.label("sn"), self.label("se")
            lim = int(e.args[2].value) if isinstance(e.args[2], ir.Const) else 64
            self.str_equal(e.args[0], e.args[1], yes, no, limit=lim)
            a.label(yes)
            a.mov64(I.R0, 0)
            a.ja(end)
            a.label(no)
            a.mov64(I.R0, 1)
            a.label(end)
            return
        raise self.err(f"{n}() is not supported by the BPF backend yet", e)

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
        a = self.a
        yes, no, end = self.label("by"), self.label("bn"), self.label("be")
        self.cond(e, yes, no)
        a.label(yes)
        a.mov64(I.R0, 1)
        a.ja(end)
        a.label(no)
        a.mov64(I.R0, 0)
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

    # -- addresses
    def addr(self, e: ir.Expr) -> str:
        """R0 = the address of the lvalue ``e``; returns its address space ("kernel"/"user"/"any")."""
        a = self.a
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
            return "user"
        if isinstance(e, ir.Field) and self.group == "syscalls":
            return "user"
        if isinstance(t, PtrTy):
            return "kernel"
        return "any"

    def read_helper(self, space: str) -> int:
        return {"user": I.Helper.probe_read_user, "kernel": I.Helper.probe_read_kernel}.get(
            space, I.Helper.probe_read)

    def str_helper(self, src: ir.Expr) -> int:
        space = self.space_of(src)
        return {"user": I.Helper.probe_read_user_str, "kernel": I.Helper.probe_read_kernel_str}.get(
            space, I.Helper.probe_read_str)

    def read_scalar(self, space: str, size: int, signed: bool) -> None:
        """R0 (an address) -> R0 = the ``size``-byte value there (0 when the read faults)."""
        a = self.a
        mark = self.sp
        tmp = self.alloc(8)
        a.st(I.DW, I.FP, tmp, 0)
        a.mov64(I.R3, Reg(I.R0))
        a.mov64(I.R1, Reg(I.FP))
        a.add64(I.R1, tmp)
        a.mov64(I.R2, size)
        a.call(self.read_helper(space))
        a.ldx({1: I.B, 2: I.H, 4: I.W, 8: I.DW}[size], I.R0, I.FP, tmp)
        if signed and size < 8:
            self.extend(size, True)
        self.release(mark)


def _field_alias(e: ir.Field) -> Optional[ir.Expr]:
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


def _uses_exit(program: ir.Program) -> bool:
    def walk(actions: List[ir.Action]) -> bool:
        for a in actions:
            if isinstance(a, ir.Exit):
                return True
            if isinstance(a, ir.ExprStmt) and isinstance(a.expr, ir.Call) and a.expr.name == "exit":
                return True
            if isinstance(a, ir.If) and (walk(a.then) or walk(a.other)):
                return True
            if isinstance(a, ir.While) and walk(a.body):
                return True
        return False
    return any(walk(p.actions) for p in program.probes)


_CMP = {"==": "jeq", "!=": "jne", ">": "jgt", ">=": "jge", "<": "jlt", "<=": "jle"}
_SCMP = {"==": "jeq", "!=": "jne", ">": "jsgt", ">=": "jsge", "<": "jslt", "<=": "jsle"}


def _signed(t: Optional[Ty]) -> bool:
    return bool(getattr(t, "signed", False)) and not isinstance(t, PtrTy)


def _is_str(t: Optional[Ty]) -> bool:
    return isinstance(t, StrTy) or (isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char)


def _cmp_signed(left: ir.Expr, right: ir.Expr) -> bool:
    """Signed compare when a side is signed; a non-negative literal takes the other side's sign."""
    def lit(x: ir.Expr) -> bool:
        return isinstance(x, ir.Const) and isinstance(x.value, int) and x.value >= 0
    if lit(right):
        return _signed(left.type)
    if lit(left):
        return _signed(right.type)
    return _signed(left.type) or _signed(right.type)
