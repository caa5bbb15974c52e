"""The one program model every front end produces and every backend consumes.

Front ends (``lang/probeline.py`` for surftrace-style lines, ``lang/bt/`` for the
bpftrace language, the Python API) build a :class:`Program`; ``lang/resolve.py``
attaches a type (``lang.types.Ty``) to every expression from BTF, tracepoint
formats and ELF facts, and resolves names once (member offsets land in
``Member.offset``). Backends never look names up again: they read ``.type``,
``.offset`` and friends, and say which nodes they can run (``backends/base.py``).

Every node carries the :class:`~undertow.errors.Span` of the user's text it came
from (``None`` for nodes a tool built in Python), so any later error — a type
check, an unsupported node, a verifier rejection — points at that text.
"""

from __future__ import annotations

from undertow.dclass import dataclass, field
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import Span
from .types import Ty

#: How deeply one expression may nest (nodes on its longest path: operators, casts,
#: ``->``/``.``/``[]``, calls, parentheses). Every pass after the parsers (resolve,
#: the compilers, renderers, deep copies, the program cache's pickling) recurses over
#: the tree: the parsers refuse deeper input, so those passes stay far inside Python's
#: default recursion limit (bpftrace's own tools nest at most 10 levels).
MAX_EXPR_DEPTH = 64
#: How deeply blocks may nest (``if``/``else if``/``while``/``unroll`` bodies).
MAX_BLOCK_DEPTH = 64

# --------------------------------------------------------------------------- expressions


class Expr:
    """Base of expressions.

    ``span`` (where in the user's text) and ``type`` (filled by the resolve pass)
    are plain attributes rather than dataclass fields, so subclasses can be built
    positionally (``Const(5)``) on Python 3.9; set the span with :meth:`at`.
    """

    span: Optional[Span] = None
    type: Optional[Ty] = None

    def at(self, span: Optional[Span]) -> "Expr":
        """Set the span and return self (``Member(b, "x").at(span)``)."""
        self.span = span
        return self

    def children(self) -> Sequence["Expr"]:
        return ()

    def walk(self) -> Iterator["Expr"]:
        """This node and all sub-expressions, depth first (pre-order; iterative, so a
        tree deeper than Python's recursion limit is walked too)."""
        stack: List[Expr] = [self]
        while stack:
            e = stack.pop()
            yield e
            kids = e.children()
            if kids:
                stack.extend(reversed(kids))


def text_bytes(s: str) -> bytes:
    """The bytes a string of the IR stands for (string constants, formats, names).

    Text is UTF-8; a byte that is not (from argv, a file read with ``surrogateescape``,
    a ``\\xff`` escape) is carried as the surrogate U+DC80..U+DCFF and comes back as
    that byte. Other lone surrogates (text built in Python) never raise: they are
    encoded as they stand (``surrogatepass``).
    """
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        out = bytearray()
        for ch in s:
            o = ord(ch)
            out += bytes((o - 0xDC00,)) if 0xDC80 <= o <= 0xDCFF else ch.encode("utf-8", "surrogatepass")
        return bytes(out)


def too_deep(e: Expr, limit: int = MAX_EXPR_DEPTH) -> Optional[Expr]:
    """The first node of ``e`` found at depth ``limit + 1`` (``e`` is depth 1), else ``None``.

    Iterative: it measures trees any pass would overflow on.
    """
    stack: List[Tuple[Expr, int]] = [(e, 1)]
    while stack:
        node, d = stack.pop()
        if d > limit:
            return node
        for c in node.children():
            stack.append((c, d + 1))
    return None


def _expr(cls):  # type: ignore[no-untyped-def]
    """Dataclass decorator for Expr subclasses: identity equality, keyword-friendly."""
    return dataclass(eq=False)(cls)


@_expr
class Const(Expr):
    """An integer or string literal."""

    value: Union[int, str, bytes] = 0


@_expr
class Builtin(Expr):
    """A value the kernel knows about the current task or probe.

    ``name``: pid tid uid gid comm cpu nsecs elapsed curtask cgroup kstack ustack
    func probe username cpid retval(-> use :class:`Retval`) stack (surftrace ``$stack``).
    """

    name: str = ""


@_expr
class Arg(Expr):
    """A function argument (kprobe/uprobe/fentry): by position, by BTF name, or both once resolved."""

    index: Optional[int] = None
    name: Optional[str] = None


@_expr
class Field(Expr):
    """A tracepoint field (``args->filename``, ``args.filename``, probe-line ``filename``).

    After resolve, ``fmt_field`` holds the :class:`undertow.kernel.formats.Field`.
    """

    name: str = ""
    fmt_field: Any = None


@_expr
class Register(Expr):
    """A CPU register by its ftrace name without ``%`` (``di``, ``ax``, ``x0``)."""

    name: str = ""


@_expr
class Retval(Expr):
    """The return value at a return probe (``$retval``, bpftrace ``retval``)."""


@_expr
class Symbol(Expr):
    """The address of a kernel symbol (surftrace ``@symbol``), resolved from kallsyms/BTF VAR."""

    name: str = ""
    address: Optional[int] = None


@_expr
class Member(Expr):
    """``base->name`` (``arrow``) or ``base.name``.

    Resolve fills ``offset`` (bytes from the start of the record), and for
    bitfields ``bit_offset``/``bit_size`` (bit offset within the loaded unit).
    ``path`` lists the member names crossed (anonymous members included).
    """

    base: Expr = field(default_factory=lambda: Const(0))
    name: str = ""
    arrow: bool = True
    offset: Optional[int] = None
    bit_offset: Optional[int] = None
    bit_size: Optional[int] = None
    path: Tuple[str, ...] = ()

    def children(self) -> Sequence[Expr]:
        return (self.base,)


@_expr
class Index(Expr):
    """``base[index]`` on an array or a pointer."""

    base: Expr = field(default_factory=lambda: Const(0))
    index: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.base, self.index)


@_expr
class Cast(Expr):
    """``(TYPE)expr``. ``type_text`` as written; resolve puts the type in ``.type``."""

    type_text: str = ""
    expr: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


@_expr
class Deref(Expr):
    """``*expr``."""

    expr: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


@_expr
class SkbHeader(Expr):
    """A protocol header inside an ``struct sk_buff`` (surftrace ``@(struct iphdr *)l3%0``).

    ``layer`` is ``"l2"``, ``"l3"`` or ``"l4"``; the header is located from
    ``skb->head`` plus ``mac_header``/``network_header``/``transport_header``
    (never assumed fixed-size). ``type_text`` names the header struct; the value
    is a kernel pointer to it.
    """

    skb: Expr = field(default_factory=lambda: Const(0))
    layer: str = "l3"
    type_text: str = ""
    #: the layer marker as written (``l2``/``l3``/``l4``; None when omitted). surftrace's
    #: marker says where skb->data points; resolve sets ``layer`` from the header type.
    marker: Optional[str] = None

    def children(self) -> Sequence[Expr]:
        return (self.skb,)


@_expr
class Payload(Expr):
    """Bytes after a protocol header, viewed as an array (surftrace ``cdata/sdata/ldata/qdata[i]``).

    ``header`` is a :class:`SkbHeader` (possibly through members); ``elem_size`` is
    1, 2, 4 or 8; ``index`` the element. The header length is the real one
    (IPv4 IHL, TCP doff) when the header type says so.
    """

    header: Expr = field(default_factory=lambda: Const(0))
    elem_size: int = 1
    index: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.header, self.index)


@_expr
class Unary(Expr):
    """``op`` in ``- ! ~``."""

    op: str = "-"
    expr: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


@_expr
class Binary(Expr):
    """``op`` in ``+ - * / % & | ^ << >> == != < <= > >= && ||`` (and ``~`` glob match for ftrace strings)."""

    op: str = "=="
    left: Expr = field(default_factory=lambda: Const(0))
    right: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.left, self.right)


def balanced(op: str, operands: Sequence[Expr], run: int = 8) -> Expr:
    """``a op b op c ...`` of an associative ``op`` (``&&``, ``||``) as a shallow tree.

    Runs of up to ``run`` operands stay left-nested as the parsers always built them
    (``(a && b) && c``, the filter text unchanged); longer chains become a balanced tree
    of such runs, so a filter of 1,000 terms is 15 levels deep instead of 1,000.
    Short-circuit order is kept: operands are evaluated left to right.
    """
    def join(left: Expr, right: Expr) -> Expr:
        node = Binary(op, left, right)
        node.span = left.span.to(right.span) if left.span and right.span else left.span or right.span
        return node

    def tree(parts: Sequence[Expr]) -> Expr:
        if len(parts) == 1:
            return parts[0]
        mid = len(parts) // 2
        return join(tree(parts[:mid]), tree(parts[mid:]))

    runs: List[Expr] = []
    for i in range(0, len(operands), run):
        node = operands[i]
        for x in operands[i + 1:i + run]:
            node = join(node, x)
        runs.append(node)
    return tree(runs)


@_expr
class Ternary(Expr):
    cond: Expr = field(default_factory=lambda: Const(0))
    then: Expr = field(default_factory=lambda: Const(0))
    other: Expr = field(default_factory=lambda: Const(0))

    def children(self) -> Sequence[Expr]:
        return (self.cond, self.then, self.other)


@_expr
class Call(Expr):
    """A function: str buf ntop ksym usym kaddr uaddr join sizeof offsetof cat strftime time ..."""

    name: str = ""
    args: List[Expr] = field(default_factory=list)

    def children(self) -> Sequence[Expr]:
        return tuple(self.args)


@_expr
class Var(Expr):
    """A scratch variable ``$name`` (per probe invocation)."""

    name: str = ""


@_expr
class Positional(Expr):
    """``$1``.. and ``$#`` (bpftrace); substituted by the front end when known."""

    index: int = 0


@_expr
class MapRead(Expr):
    """``@map[key]`` read (missing key reads as zero)."""

    map: str = ""
    key: List[Expr] = field(default_factory=list)

    def children(self) -> Sequence[Expr]:
        return tuple(self.key)


@_expr
class TupleExpr(Expr):
    elems: List[Expr] = field(default_factory=list)

    def children(self) -> Sequence[Expr]:
        return tuple(self.elems)


# --------------------------------------------------------------------------- actions


class Action:
    """Base of actions; ``span`` is a plain attribute like :attr:`Expr.span`."""

    span: Optional[Span] = None

    def at(self, span: Optional[Span]) -> "Action":
        self.span = span
        return self

    def exprs(self) -> Sequence[Expr]:
        return ()


@dataclass(eq=False)
class EmitField:
    """One named output field. ``fmt`` overrides how the value is shown.

    ``fmt``: ``None`` (from the type), ``"x"`` hex, ``"u"`` unsigned, ``"s"``
    signed, ``"str"`` string, ``"ustr"`` user string, ``"ipv4"``, ``"ipv6"``,
    ``"b16"``/``"b32"``/``"b64"`` (byte-swapped decimal), ``"B16"``/``"B32"``/``"B64"``
    (byte-swapped hex), ``"sym"`` (kernel symbol), ``"enum"``.
    """

    name: str
    expr: Expr
    fmt: Optional[str] = None
    span: Optional[Span] = None


@dataclass(eq=False)
class Emit(Action):
    """Send a record with these fields (plus the standard header: ts cpu pid tid comm)."""

    fields: List[EmitField] = field(default_factory=list)
    stack: bool = False  # kernel stack (surftrace -s / $stack)
    ustack: bool = False

    def exprs(self) -> Sequence[Expr]:
        return [f.expr for f in self.fields]


@dataclass(eq=False)
class Printf(Action):
    fmt: str = ""
    args: List[Expr] = field(default_factory=list)

    def exprs(self) -> Sequence[Expr]:
        return self.args


@dataclass(eq=False)
class MapUpdate(Action):
    """``@map[key] = agg(value)``: agg in count sum min max avg stats hist lhist; ``assign`` for plain ``=``.

    ``agg_args`` hold extra constant arguments (lhist min, max, step).
    """

    map: str = ""
    key: List[Expr] = field(default_factory=list)
    agg: str = "count"
    value: Optional[Expr] = None
    agg_args: List[Expr] = field(default_factory=list)

    def exprs(self) -> Sequence[Expr]:
        out = list(self.key)
        if self.value is not None:
            out.append(self.value)
        return out + list(self.agg_args)


@dataclass(eq=False)
class Assign(Action):
    """``$var = expr``."""

    var: str = ""
    value: Expr = field(default_factory=lambda: Const(0))

    def exprs(self) -> Sequence[Expr]:
        return (self.value,)


@dataclass(eq=False)
class If(Action):
    cond: Expr = field(default_factory=lambda: Const(0))
    then: List[Action] = field(default_factory=list)
    other: List[Action] = field(default_factory=list)

    def exprs(self) -> Sequence[Expr]:
        return (self.cond,)


@dataclass(eq=False)
class While(Action):
    """A bounded loop (``unroll(n)`` has ``bound`` = n and ``cond`` None)."""

    cond: Optional[Expr] = None
    body: List[Action] = field(default_factory=list)
    bound: int = 0

    def exprs(self) -> Sequence[Expr]:
        return (self.cond,) if self.cond is not None else ()


@dataclass(eq=False)
class MapOp(Action):
    """``op`` in print clear zero delete on ``@map`` (``key`` for delete, ``args`` for print limits)."""

    op: str = "print"
    map: str = ""
    key: List[Expr] = field(default_factory=list)
    args: List[Expr] = field(default_factory=list)

    def exprs(self) -> Sequence[Expr]:
        return tuple(self.key) + tuple(self.args)


@dataclass(eq=False)
class PrintValue(Action):
    """``print(expr)`` of a non-map value."""

    value: Expr = field(default_factory=lambda: Const(0))

    def exprs(self) -> Sequence[Expr]:
        return (self.value,)


@dataclass(eq=False)
class Exit(Action):
    pass


@dataclass(eq=False)
class ExprStmt(Action):
    """A call evaluated for its effect (``signal()``, ``system()``, ``cat()``)."""

    expr: Expr = field(default_factory=lambda: Const(0))

    def exprs(self) -> Sequence[Expr]:
        return (self.expr,)


# --------------------------------------------------------------------------- probes and programs

PROBE_KINDS = (
    "kprobe", "kretprobe", "tracepoint", "raw_tracepoint", "tp_btf", "fentry", "fexit",
    "uprobe", "uretprobe", "usdt", "profile", "interval", "software", "hardware",
    "begin", "end",
)


@dataclass(eq=False)
class AttachPoint:
    """Where a probe attaches.

    ``kind`` is one of :data:`PROBE_KINDS`. ``target``: a kernel symbol
    (kprobe/fentry), ``group:event`` (tracepoint), a raw tracepoint name, a
    symbol in ``path`` (uprobe), a USDT ``provider:name``, or the unit/rate
    (profile ``hz:99``, interval ``s:1``). ``path`` is the resolved file for
    uprobes (``obj`` as the user wrote it). ``wildcard`` is true when ``target``
    still holds ``*``/``?`` (expanded by resolve into several probes).
    """

    kind: str
    target: str = ""
    offset: int = 0
    path: str = ""
    obj: str = ""
    pid: Optional[int] = None
    wildcard: bool = False
    file_offset: Optional[int] = None
    span: Optional[Span] = None

    def describe(self) -> str:
        if self.kind in ("uprobe", "uretprobe", "usdt"):
            t = f"{self.obj or self.path}:{self.target}"
        else:
            t = self.target
        if self.offset:
            t += f"+{self.offset:#x}"
        return f"{self.kind}:{t}" if t else self.kind


@dataclass(eq=False)
class Probe:
    """One probe: attach points, an optional filter, and actions.

    ``name`` is the probe's display name (surftrace's event name, bpftrace's
    probe spec). ``source`` / ``origin`` are the text the probe came from, so
    any node's span can be rendered with a caret.
    """

    attach: List[AttachPoint] = field(default_factory=list)
    filter: Optional[Expr] = None
    actions: List[Action] = field(default_factory=list)
    name: str = ""
    span: Optional[Span] = None
    source: str = ""
    origin: str = "<input>"

    def exprs(self) -> Iterator[Expr]:
        """Every expression in the filter and the actions (recursively through blocks)."""
        if self.filter is not None:
            yield from self.filter.walk()
        yield from _action_exprs(self.actions)


def _action_exprs(actions: Sequence[Action]) -> Iterator[Expr]:
    for a in actions:
        for e in a.exprs():
            yield from e.walk()
        if isinstance(a, If):
            yield from _action_exprs(a.then)
            yield from _action_exprs(a.other)
        elif isinstance(a, While):
            yield from _action_exprs(a.body)


@dataclass(eq=False)
class MapDecl:
    """A map, declared or inferred from use: key types and the aggregation it holds."""

    name: str
    key_types: Tuple[Ty, ...] = ()
    agg: str = "count"
    value_type: Optional[Ty] = None
    agg_args: Tuple[int, ...] = ()


@dataclass(eq=False)
class Program:
    """A whole tracing program.

    ``settings`` holds knobs the user or front end set: ``strlen`` (string
    length, default 64), ``stack`` (kernel stacks on every emit), ``pid``
    (trace only this process), ``exclude_self`` (default True), buffer sizes.
    """

    probes: List[Probe] = field(default_factory=list)
    maps: Dict[str, MapDecl] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)
    source: str = ""
    origin: str = "<input>"
    #: Non-fatal diagnostics from the resolve pass (:class:`undertow.errors.SourceError`).
    warnings: List[Any] = field(default_factory=list)

    def setting(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


# --------------------------------------------------------------------------- bpftrace-language additions
# Nodes the bpftrace front end (lang/bt/) needs beyond the sketch above.
# ``$x++`` / ``@x++`` / ``$x += e`` are desugared by the front end into
# :class:`Assign` / :class:`MapUpdate` (``agg="assign"``) of a :class:`Binary`,
# so backends meet no new node for them.


@_expr
class Ident(Expr):
    """A bare C identifier in an expression: an enum constant (``TCP_CLOSE``) or a macro.

    The front end replaces macros it knows (``#define`` in the script, a few
    well-known header constants such as ``AF_INET``) by :class:`Const`; what is
    left is looked up by resolve among BTF ``BTF_KIND_ENUM``/``ENUM64`` values.
    """

    name: str = ""


@_expr
class TypeName(Expr):
    """A type written where a value is expected: ``sizeof(struct sock)``, ``offsetof(struct x, f)``.

    ``type_text`` as written (``struct sock``, ``uint32``, ``struct foo *``).
    """

    type_text: str = ""


@_expr
class TupleIndex(Expr):
    """``tuple.N`` (bpftrace ``$t.1``): the N-th element of a tuple value."""

    base: Expr = field(default_factory=lambda: Const(0))
    index: int = 0

    def children(self) -> Sequence[Expr]:
        return (self.base,)


@dataclass(eq=False)
class Return(Action):
    """``return``: end this probe's run early (bpftrace), unlike :class:`Exit`."""


@dataclass(eq=False)
class Break(Action):
    """``break`` inside a ``while`` loop."""


@dataclass(eq=False)
class Continue(Action):
    """``continue`` inside a ``while`` loop."""


# --------------------------------------------------------------------------- copies

_NODES = (Expr, Action, EmitField, Probe, AttachPoint, MapDecl)


def clone(x: Any, memo: Optional[Dict[int, Any]] = None) -> Any:
    """A deep copy of IR (nodes, probes, attach points and the lists, tuples and dicts
    holding them), sharing what is immutable or never rewritten (strings, spans, types).

    Unlike :func:`copy.deepcopy` (six Python frames per level of a tree), it takes one
    frame per node, so trees at the parsers' depth limits copy far inside the recursion
    limit. Nodes shared within ``x`` stay shared in the copy.
    """
    return _clone(x, {} if memo is None else memo)


def _clone(x: Any, memo: Dict[int, Any]) -> Any:
    if isinstance(x, _NODES):
        got = memo.get(id(x))
        if got is not None:
            return got
        new = object.__new__(type(x))
        memo[id(x)] = new
        d = new.__dict__
        for k, v in x.__dict__.items():
            if isinstance(v, list):
                out = []
                for i in v:
                    out.append(_clone(i, memo))
                d[k] = out
            else:
                d[k] = _clone(v, memo)
        return new
    if isinstance(x, list):
        out = []
        for i in x:
            out.append(_clone(i, memo))
        return out
    if isinstance(x, tuple) and x and not hasattr(x, "_fields"):
        return tuple([_clone(i, memo) for i in x])
    if isinstance(x, dict):
        return {k: _clone(v, memo) for k, v in x.items()}
    return x
