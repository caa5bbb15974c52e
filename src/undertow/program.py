"""Custom BPF programs written in Python, at the IR level: like BCC, without C or a compiler.

Probes, filters, records and maps are built from Python expressions; undertow resolves them
against the running kernel (BTF, tracepoint formats), generates BPF, loads and attaches it::

    from undertow.program import Program, args, comm, pid, str_

    prog = Program()
    prog.probe("tracepoint:syscalls:sys_enter_execve").emit(comm=comm, file=str_(args.filename))
    prog.probe("tracepoint:raw_syscalls:sys_enter", filter=pid > 1).count("@calls", key=[comm])
    with prog.run() as run:                    # attached
        for ev in run.events(timeout=5):       # undertow.events.Event
            print(ev.comm, ev.fields["file"])
        print(run.map("@calls"))               # {("bash",): 12, ...}

Expressions: ``args.NAME`` (tracepoint field or kfunc argument), ``arg(i)``, ``retval``,
builtins (``pid tid uid gid comm cpu nsecs cgroup curtask kstack``), ``str_(e[, n])``,
``cast("struct sock *", e)``, members with attributes (``cast(...).sk_family`` reads
through a pointer), ``e[i]``, arithmetic and comparisons with Python operators,
``all_(a, b)`` / ``any_(a, b)`` / ``not_(a)`` for ``&& || !``. Attach points are
bpftrace specs (``kprobe:f``, ``uprobe:libc:getaddrinfo``, ``profile:hz:99``...).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from .lang import ir

__all__ = ["Program", "Probe", "Run", "E", "args", "arg", "retval", "pid", "tid", "uid", "gid", "comm",
           "cpu", "nsecs", "cgroup", "curtask", "kstack", "str_", "cast", "const", "all_", "any_", "not_"]

if TYPE_CHECKING:
    Value = Union["E", int, str]


def _x(v: Value) -> ir.Expr:
    if isinstance(v, E):
        return v.node
    if isinstance(v, (int, str)):
        return ir.Const(v)
    raise TypeError(f"cannot use {type(v).__name__} in a BPF expression")


class E:
    """A BPF expression built from Python (wraps an :mod:`undertow.lang.ir` node)."""

    __slots__ = ("node",)

    def __init__(self, node: ir.Expr) -> None:
        self.node = node

    def __getattr__(self, name: str) -> "E":
        if name.startswith("__"):
            raise AttributeError(name)
        return E(ir.Member(self.node, name, arrow=True))

    def __getitem__(self, i: Value) -> "E":
        return E(ir.Index(self.node, _x(i)))

    def _bin(self, op: str, other: Value, swap: bool = False) -> "E":
        a, b = (self.node, _x(other)) if not swap else (_x(other), self.node)
        return E(ir.Binary(op, a, b))

    def __add__(self, o: Value) -> "E": return self._bin("+", o)
    def __radd__(self, o: Value) -> "E": return self._bin("+", o, True)
    def __sub__(self, o: Value) -> "E": return self._bin("-", o)
    def __rsub__(self, o: Value) -> "E": return self._bin("-", o, True)
    def __mul__(self, o: Value) -> "E": return self._bin("*", o)
    def __floordiv__(self, o: Value) -> "E": return self._bin("/", o)
    def __truediv__(self, o: Value) -> "E": return self._bin("/", o)
    def __mod__(self, o: Value) -> "E": return self._bin("%", o)
    def __and__(self, o: Value) -> "E": return self._bin("&", o)
    def __or__(self, o: Value) -> "E": return self._bin("|", o)
    def __xor__(self, o: Value) -> "E": return self._bin("^", o)
    def __lshift__(self, o: Value) -> "E": return self._bin("<<", o)
    def __rshift__(self, o: Value) -> "E": return self._bin(">>", o)
    def __eq__(self, o: Value) -> "E": return self._bin("==", o)  # type: ignore[override]
    def __ne__(self, o: Value) -> "E": return self._bin("!=", o)  # type: ignore[override]
    def __lt__(self, o: Value) -> "E": return self._bin("<", o)
    def __le__(self, o: Value) -> "E": return self._bin("<=", o)
    def __gt__(self, o: Value) -> "E": return self._bin(">", o)
    def __ge__(self, o: Value) -> "E": return self._bin(">=", o)
    def __neg__(self) -> "E": return E(ir.Unary("-", self.node))
    def __invert__(self) -> "E": return E(ir.Unary("~", self.node))

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise TypeError("a BPF expression has no truth value in Python: use all_(), any_(), not_()")


class _Args:
    """``args.NAME``: a tracepoint field, or a kfunc argument by name."""

    def __getattr__(self, name: str) -> E:
        return E(ir.Field(name))


args = _Args()
retval = E(ir.Retval())
pid, tid, uid, gid = E(ir.Builtin("pid")), E(ir.Builtin("tid")), E(ir.Builtin("uid")), E(ir.Builtin("gid"))
comm, cpu, nsecs = E(ir.Builtin("comm")), E(ir.Builtin("cpu")), E(ir.Builtin("nsecs"))
cgroup, curtask, kstack = E(ir.Builtin("cgroup")), E(ir.Builtin("curtask")), E(ir.Builtin("kstack"))


def arg(i: int) -> E:
    """Argument ``i`` of a kprobe/uprobe (a raw 64-bit value: cast it to use members)."""
    return E(ir.Arg(i))


def str_(e: Value, n: Optional[int] = None) -> E:
    """The NUL-terminated string at ``e`` (user or kernel memory, as the probe says)."""
    a = [_x(e)] + ([ir.Const(n)] if n is not None else [])
    return E(ir.Call("str", a))


def cast(type_text: str, e: Value) -> E:
    """``(type)e`` with a type from kernel BTF: ``cast("struct sock *", arg(0)).__sk_common``."""
    return E(ir.Cast(type_text, _x(e)))


def const(v: int) -> E:
    return E(ir.Const(v))


def all_(*xs: Value) -> E:
    out = _x(xs[0])
    for x in xs[1:]:
        out = ir.Binary("&&", out, _x(x))
    return E(out)


def any_(*xs: Value) -> E:
    out = _x(xs[0])
    for x in xs[1:]:
        out = ir.Binary("||", out, _x(x))
    return E(out)


def not_(x: Value) -> E:
    return E(ir.Unary("!", _x(x)))


class Probe:
    """One attach point with an optional filter and the actions added with its methods."""

    def __init__(self, program: "Program", spec: str, filter: Optional[E]) -> None:
        from .lang.bt.probes import parse_spec

        ap, name = parse_spec(spec, 0, spec, "<python>")
        self.node = ir.Probe([ap], _x(filter) if filter is not None else None, [], name=name)
        self.program = program

    def _add(self, act: ir.Action) -> "Probe":
        self.node.actions.append(act)
        return self

    def emit(self, **fields: Value) -> "Probe":
        """Send an event with these named fields (plus ts, cpu, pid, tid, comm)."""
        return self._add(ir.Emit([ir.EmitField(k, _x(v)) for k, v in fields.items()]))

    def printf(self, fmt: str, *values: Value) -> "Probe":
        return self._add(ir.Printf(fmt, [_x(v) for v in values]))

    def _agg(self, agg: str, name: str, key: Sequence[Value], value: Optional[Value] = None,
             extra: Sequence[int] = ()) -> "Probe":
        name = name if name.startswith("@") else "@" + name
        self.program._declare(name, agg, tuple(extra))
        return self._add(ir.MapUpdate(name, [_x(k) for k in key], agg, _x(value) if value is not None else None,
                                      [ir.Const(x) for x in extra]))

    def count(self, name: str, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("count", name, key)

    def sum(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("sum", name, key, value)

    def min(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("min", name, key, value)

    def max(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("max", name, key, value)

    def avg(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("avg", name, key, value)

    def stats(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("stats", name, key, value)

    def hist(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("hist", name, key, value)

    def lhist(self, name: str, value: Value, lo: int, hi: int, step: int, key: Sequence[Value] = ()) -> "Probe":
        return self._agg("lhist", name, key, value, (lo, hi, step))

    def store(self, name: str, value: Value, key: Sequence[Value] = ()) -> "Probe":
        """``@name[key] = value``."""
        return self._agg("assign", name, key, value)


class Program:
    """A set of probes; :meth:`run` resolves, compiles, loads and attaches them."""

    def __init__(self, *, strlen: int = 64, exclude_self: bool = True) -> None:
        self.probes: List[Probe] = []
        self.maps: Dict[str, ir.MapDecl] = {}
        self.settings: Dict[str, Any] = {"frontend": "bt", "strlen": strlen}
        self.exclude_self = exclude_self

    def probe(self, spec: str, filter: Optional[E] = None) -> Probe:
        p = Probe(self, spec, filter)
        self.probes.append(p)
        return p

    def _declare(self, name: str, agg: str, extra: tuple) -> None:
        old = self.maps.get(name)
        if old is not None and old.agg != agg:
            raise ValueError(f"{name} already holds {old.agg}(), not {agg}()")
        self.maps[name] = ir.MapDecl(name, agg=agg, agg_args=extra)

    def ir(self) -> ir.Program:
        """The IR program (a fresh copy: running it does not change this builder)."""
        import copy

        return ir.Program([copy.deepcopy(p.node) for p in self.probes], dict(self.maps), dict(self.settings),
                          origin="<python>")

    def _bpfrun(self, kernel: Any = None) -> Any:
        from .bpfrun import BpfRun

        return BpfRun(program=self.ir(), origin="<python>", kernel=kernel, exclude_self=self.exclude_self)

    def compile(self, kernel: Any = None) -> Any:
        """The resolved, compiled program (:class:`undertow.backends.bpf.compiled.CompiledProgram`)."""
        return self._bpfrun(kernel).compile()

    def run(self, kernel: Any = None) -> "Run":
        """Load and attach everything; the returned :class:`Run` is a context manager."""
        bpf = self._bpfrun(kernel)
        bpf.start()
        return Run(bpf.session)


class Run:
    """A running program: events by iterator or callback, maps by name."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.stats = session.stats

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self, timeout: Optional[float] = 0.05) -> List[Any]:
        """Records that arrived: Event (emit), Printed (printf), MapPrint, Lost."""
        return self.session.poll(timeout)

    def events(self, timeout: Optional[float] = None) -> Iterator[Any]:
        """Yield records as they come, for ``timeout`` seconds (forever when None)."""
        end = time.monotonic() + timeout if timeout is not None else None
        while end is None or time.monotonic() < end:
            yield from self.poll(0.05)

    def listen(self, callback: Any, timeout: Optional[float] = None) -> None:
        """Call ``callback(record)`` for every record, for ``timeout`` seconds (forever when None)."""
        for rec in self.events(timeout):
            callback(rec)

    def map(self, name: str) -> Dict[tuple, Any]:
        """``{key tuple: value}`` of map ``name`` now (per-CPU values merged; hist as {bucket: count})."""
        name = name if name.startswith("@") else "@" + name
        spec = self.session.c.maps[name]
        return dict(self.session.read_map(spec))

    def close(self) -> None:
        self.session.close()
