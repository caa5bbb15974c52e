"""``@maps``: one BPF hash map each, its key and value layouts unified over every use
(:func:`collect_maps`), and the code that updates, reads and deletes their entries.

``count sum min max avg stats hist lhist`` maps are per-CPU (no atomics, merged by user
space) unless the program reads them in the kernel; ``hist``/``lhist`` store one counter
per (key, bucket) as bpftrace does; plain ``@m[k] = v`` maps store the value's layout. A
failed update (map full) jumps to the ``lost_map`` path (prologue.py: ``lost[1]``).

Uses from the other parts: :meth:`~.memory.MemoryGen.store` (key elements and assigned
values) and :meth:`~.expr.ExprGen.scalar`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List

from ....lang import ir
from ....lang.types import PtrTy, StrTy, Ty
from .. import insn as I
from ..asm import Reg
from ..compiled import MapSpec
from ..layout import Slot, align8, layout
from .prologue import Prologue

__all__ = ["MapGen", "collect_maps"]

BPF_NOEXIST, BPF_ANY = 1, 0


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
                    elif isinstance(n, ir.IncDec) and isinstance(n.target, ir.MapRead):
                        # @m[k]++ as a value: an assigned map of the target's type
                        aggs.setdefault(n.target.map, ir.MapUpdate(n.target.map, n.target.key, "assign",
                                                                    n.target))
                        values.setdefault(n.target.map, n.target.type)  # type: ignore[arg-type]
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
        keys_max = program.setting("map_keys_max", 0)  # BPFTRACE_MAP_KEYS_MAX
        if keys_max:
            spec.max_entries = int(keys_max)
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


class MapGen(Prologue):
    """Map keys, updates and aggregations, reads and deletes."""

    def build_key(self, spec: MapSpec, key: List[ir.Expr]) -> int:
        """The key of ``spec`` built in a zeroed stack slot (padding included: the kernel
        hashes every byte); returns its offset."""
        koff = self.alloc(spec.key_size)
        self.zero(I.FP, koff, spec.key_size)
        for e, (o, s) in zip(key, spec.key.elems):
            self.store(e, I.FP, koff + o, s)
        return koff

    def map_update(self, act: ir.MapUpdate) -> None:
        """``@m[key] = value`` or an aggregation (count, sum, min, max, avg, stats, hist, lhist)."""
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

    def map_delete(self, act: ir.MapOp) -> None:
        """``delete(@m[key])``."""
        a = self.a
        spec = self.out.maps.get(act.map)
        if spec is None:
            return
        koff = self.build_key(spec, act.key)
        a.ld_map_fd(I.R1, ("map", spec.name))
        a.mov64(I.R2, Reg(I.FP))
        a.add64(I.R2, koff)
        a.call(I.Helper.map_delete_elem)
        self.check_helper("map_delete_elem", act.span)  # type: ignore[attr-defined] # RecordGen's

    def _lookup_value(self, e: ir.MapRead) -> MapSpec:
        """R0 = ``map_lookup_elem(@m, key)`` (the value's address or NULL); the map's spec."""
        spec = self.out.maps.get(e.map)
        if spec is None:
            raise self.err(f"{e.map} is never assigned", e)
        self.lookup(("map", spec.name), self.build_key(spec, e.key))
        return spec

    def map_read(self, e: ir.MapRead) -> None:
        a = self.a
        spec = self._lookup_value(e)
        self.check_helper("map_lookup_elem", e.span, miss=True)  # type: ignore[attr-defined]
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

    def map_value_addr(self, e: ir.MapRead) -> None:
        """R0 = the address of ``@m[key]``'s value in the map, 0 when the key is absent."""
        a = self.a
        self._lookup_value(e)
        # not a no-op: the verifier then knows R0 as a map value on one path and the number 0
        # on the other, and allows arithmetic on it (never on a map_value_or_null pointer)
        got = self.label("mva")
        a.jne(I.R0, 0, got)
        a.mov64(I.R0, 0)
        a.label(got)

    def incdec(self, e: ir.IncDec) -> None:
        """``$x++``, ``--@m[k]``... as a value: R0 = the value before (post) or after; a
        pointer steps by the size of what it points to."""
        a = self.a
        t = e.target.type
        step = 1
        if isinstance(t, PtrTy) and t.target is not None and t.target.size > 0:
            step = t.target.size
        op = "add" if e.op == "+" else "sub"
        target = e.target
        if isinstance(target, ir.Var):
            off, _slot = self.vars[target.name]
            a.ldx(I.DW, I.R1, I.FP, off)
            a.mov64(I.R0, Reg(I.R1))
            a.alu(op, I.R0, step)
            a.stx(I.DW, I.FP, off, I.R0)
            if e.post:
                a.mov64(I.R0, Reg(I.R1))
            return
        assert isinstance(target, ir.MapRead)
        spec = self.out.maps.get(target.map)
        if spec is None:
            raise self.err(f"{target.map} is never assigned", e)
        # not value_ptr(): its "map full" exit would leave a printf record being filled
        # (reserved) unsubmitted; a failed update here reads as 0, the update skipped
        mark = self.sp
        mref = ("map", spec.name)
        koff = self.build_key(spec, target.key)
        have, done = self.label("inch"), self.label("incd")
        self.lookup(mref, koff)
        a.jne(I.R0, 0, have)
        self._insert_zeroed(spec, koff, BPF_ANY)
        self.lookup(mref, koff)
        a.jeq(I.R0, 0, done)
        a.label(have)
        a.ldx(I.DW, I.R1, I.R0, 0)
        a.mov64(I.R2, Reg(I.R1))
        a.alu(op, I.R2, step)
        a.stx(I.DW, I.R0, 0, I.R2)
        a.mov64(I.R0, Reg(I.R1 if e.post else I.R2))
        a.label(done)
        self.release(mark)

    def map_read_into(self, e: ir.MapRead, base: int, off: int, slot: Slot) -> None:
        """``@m[key]`` copied to ``[base + off]`` (zeros when the key is absent)."""
        a = self.a
        spec = self.out.maps.get(e.map)
        if spec is None:
            raise self.err(f"{e.map} is never assigned", e)
        koff = self.build_key(spec, e.key)
        self.lookup(("map", spec.name), koff)
        self.check_helper("map_lookup_elem", e.span, miss=True)  # type: ignore[attr-defined]
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

    def add_to(self, ptr: int, off: int, reg: int, shared: bool) -> None:
        """``[ptr + off] += reg``: atomic in a map shared by every CPU."""
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
        self._insert_zeroed(spec, koff, BPF_NOEXIST)
        raced = self.label("raced")
        a.jsge(I.R0, 0, raced)
        a.jeq(I.R0, -17, raced)  # -EEXIST: another CPU created it first
        a.ja("lost_map")
        a.label(raced)
        self.lookup(mref, koff)
        a.jeq(I.R0, 0, fail)
        a.label(have)

    def _insert_zeroed(self, spec: MapSpec, koff: int, flags: int) -> None:
        """map_update_elem(@m, key at ``koff``, a zeroed value, ``flags``); R0 = its result."""
        a = self.a
        zero = self.alloc(spec.value_size)
        self.zero(I.FP, zero, spec.value_size)
        a.ld_map_fd(I.R1, ("map", spec.name))
        a.mov64(I.R2, Reg(I.FP))
        a.add64(I.R2, koff)
        a.mov64(I.R3, Reg(I.FP))
        a.add64(I.R3, zero)
        a.mov64(I.R4, flags)
        a.call(I.Helper.map_update_elem)

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
