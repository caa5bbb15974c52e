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

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
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

# --------------------------------------------------------------------------- nodes

# Every node class is a plain class with ``__slots__`` and an ``__init__`` taking its
# fields in order (``Const(5)``, ``Member(base, "sk")``): a compiling run builds its IR
# before the first event, and the standard library's dataclasses cost ~0.3-0.6 ms to
# define each class. ``__slots__`` also lists every attribute a pass may set
# (``Member.name_span``, ``AttachPoint.multi``...: None until then). Nodes compare by
# identity.

_SLOTS: Dict[type, Tuple[str, ...]] = {}


def slot_names(cls: type) -> Tuple[str, ...]:
    """Every attribute of IR class ``cls``: its bases' ``__slots__``, then its own."""
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = tuple(n for c in reversed(cls.__mro__) for n in c.__dict__.get("__slots__", ()))
    return names


class Node:
    """Base of every IR class. Pickled (the program cache, ``copy.copy``) as the dict of
    the attributes that are set: one level of the pickler's recursion per node, as for
    a ``__dict__``. The default for slots, a ``(None, dict)`` pair, adds a level: the
    deepest program the parsers accept (:data:`MAX_EXPR_DEPTH` in
    :data:`MAX_BLOCK_DEPTH`) then needed a recursion limit of 793 instead of 662."""

    __slots__ = ()

    def __getstate__(self) -> Dict[str, Any]:
        state = {}
        for name in slot_names(type(self)):
            v = getattr(self, name, _UNSET)
            if v is not _UNSET:
                state[name] = v
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        for name, v in state.items():
            setattr(self, name, v)


_UNSET: Any = object()

# --------------------------------------------------------------------------- expressions


class Expr(Node):
    """Base of expressions.

    ``span`` (where in the user's text) and ``type`` (filled by the resolve pass)
    are not constructor parameters: every ``__init__`` sets them to ``None``; set
    the span with :meth:`at`.
    """

    __slots__ = ("span", "type")

    span: Optional[Span]
    type: Optional[Ty]

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


def _zero(e: Optional[Expr]) -> Expr:
    """``e``, or a fresh ``Const(0)`` for a sub-expression left out (``Unary("-")``)."""
    return Const(0) if e is None else e


class Const(Expr):
    """An integer or string literal.

    ``cookie_name`` (bpftrace resolve): ``"probe"``/``"func"`` when the string is that
    builtin's text, which a merged wildcard probe reads per attach point instead (else None).
    """

    __slots__ = ("value", "cookie_name")

    def __init__(self, value: Union[int, str, bytes] = 0) -> None:
        self.value = value
        self.cookie_name: Optional[str] = None
        self.span = self.type = None


class Builtin(Expr):
    """A value the kernel knows about the current task or probe.

    ``name``: pid tid uid gid comm cpu nsecs elapsed curtask cgroup kstack ustack
    func probe username cpid retval(-> use :class:`Retval`) stack (surftrace ``$stack``).
    """

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.span = self.type = None


class Arg(Expr):
    """A function argument (kprobe/uprobe/fentry): by position, by BTF name, or both once resolved."""

    __slots__ = ("index", "name")

    def __init__(self, index: Optional[int] = None, name: Optional[str] = None) -> None:
        self.index = index
        self.name = name
        self.span = self.type = None


class Field(Expr):
    """A tracepoint field (``args->filename``, ``args.filename``, probe-line ``filename``).

    After resolve, ``fmt_field`` holds the :class:`undertow.kernel.formats.Field`. In a
    probe line's filter, ``defined`` is the :class:`EmitField` of the line a name refers to.
    """

    __slots__ = ("name", "fmt_field", "defined")

    def __init__(self, name: str = "", fmt_field: Any = None) -> None:
        self.name = name
        self.fmt_field = fmt_field
        self.defined: Optional[EmitField] = None
        self.span = self.type = None


class Register(Expr):
    """A CPU register by its ftrace name without ``%`` (``di``, ``ax``, ``x0``)."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.span = self.type = None


class Retval(Expr):
    """The return value at a return probe (``$retval``, bpftrace ``retval``)."""

    __slots__ = ()

    def __init__(self) -> None:
        self.span = self.type = None


class Symbol(Expr):
    """The address of a kernel symbol (surftrace ``@symbol``), resolved from kallsyms/BTF VAR."""

    __slots__ = ("name", "address")

    def __init__(self, name: str = "", address: Optional[int] = None) -> None:
        self.name = name
        self.address = address
        self.span = self.type = None


class Member(Expr):
    """``base->name`` (``arrow``) or ``base.name``.

    Resolve fills ``offset`` (bytes from the start of the record), and for
    bitfields ``bit_offset``/``bit_size`` (bit offset within the loaded unit).
    ``path`` lists the member names crossed (anonymous members included).
    ``name_span`` (probe lines) is where the member's name is written.
    """

    __slots__ = ("base", "name", "arrow", "offset", "bit_offset", "bit_size", "path", "name_span")

    def __init__(self, base: Optional[Expr] = None, name: str = "", arrow: bool = True,
                 offset: Optional[int] = None, bit_offset: Optional[int] = None,
                 bit_size: Optional[int] = None, path: Tuple[str, ...] = ()) -> None:
        self.base = _zero(base)
        self.name = name
        self.arrow = arrow
        self.offset = offset
        self.bit_offset = bit_offset
        self.bit_size = bit_size
        self.path = path
        self.name_span: Optional[Span] = None
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.base,)


class Index(Expr):
    """``base[index]`` on an array or a pointer."""

    __slots__ = ("base", "index")

    def __init__(self, base: Optional[Expr] = None, index: Optional[Expr] = None) -> None:
        self.base = _zero(base)
        self.index = _zero(index)
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.base, self.index)


class Cast(Expr):
    """``(TYPE)expr``. ``type_text`` as written; resolve puts the type in ``.type``.
    ``type_span`` (probe lines) is where the type is written."""

    __slots__ = ("type_text", "expr", "type_span")

    def __init__(self, type_text: str = "", expr: Optional[Expr] = None) -> None:
        self.type_text = type_text
        self.expr = _zero(expr)
        self.type_span: Optional[Span] = None
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


class Deref(Expr):
    """``*expr``."""

    __slots__ = ("expr",)

    def __init__(self, expr: Optional[Expr] = None) -> None:
        self.expr = _zero(expr)
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


class SkbHeader(Expr):
    """A protocol header inside an ``struct sk_buff`` (surftrace ``@(struct iphdr *)l3%0``).

    ``layer`` is ``"l2"``, ``"l3"`` or ``"l4"``; the header is located from
    ``skb->head`` plus ``mac_header``/``network_header``/``transport_header``
    (never assumed fixed-size). ``type_text`` names the header struct; the value
    is a kernel pointer to it. ``marker`` is the layer marker as written
    (``l2``/``l3``/``l4``; None when omitted): surftrace's marker says where
    skb->data points; resolve sets ``layer`` from the header type. ``type_span``
    (probe lines) is where the type is written.

    Resolve fills ``addr``: the header's address as ordinary IR (``skb->data``, plus
    the lengths of the headers between the marker's layer and the header's, read from
    those headers), which every backend compiles with its usual means.
    """

    __slots__ = ("skb", "layer", "type_text", "marker", "type_span", "addr")

    def __init__(self, skb: Optional[Expr] = None, layer: str = "l3", type_text: str = "",
                 marker: Optional[str] = None) -> None:
        self.skb = _zero(skb)
        self.layer = layer
        self.type_text = type_text
        self.marker = marker
        self.type_span: Optional[Span] = None
        self.addr: Optional[Expr] = None
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.skb,) if self.addr is None else (self.addr,)


class Payload(Expr):
    """Bytes after a protocol header, viewed as an array (surftrace ``cdata/sdata/ldata/qdata[i]``).

    ``header`` is a :class:`SkbHeader` (possibly through members); ``elem_size`` is
    1, 2, 4 or 8; ``index`` the element. The header length is the real one
    (IPv4 IHL, TCP doff) when the header type says so. Resolve fills ``addr``: the
    element's address as ordinary IR (a pointer to the element's type).
    """

    __slots__ = ("header", "elem_size", "index", "addr")

    def __init__(self, header: Optional[Expr] = None, elem_size: int = 1, index: Optional[Expr] = None) -> None:
        self.header = _zero(header)
        self.elem_size = elem_size
        self.index = _zero(index)
        self.addr: Optional[Expr] = None
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.header, self.index) if self.addr is None else (self.addr,)


class Unary(Expr):
    """``op`` in ``- ! ~``."""

    __slots__ = ("op", "expr")

    def __init__(self, op: str = "-", expr: Optional[Expr] = None) -> None:
        self.op = op
        self.expr = _zero(expr)
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.expr,)


class Binary(Expr):
    """``op`` in ``+ - * / % & | ^ << >> == != < <= > >= && ||`` (and ``~`` glob match for ftrace strings)."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str = "==", left: Optional[Expr] = None, right: Optional[Expr] = None) -> None:
        self.op = op
        self.left = _zero(left)
        self.right = _zero(right)
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.left, self.right)


def kernel_rooted(e: Expr) -> bool:
    """Whether the value ``e`` is reached (through ``->``, ``.``, ``[]``, ``*`` and casts) from
    ``curtask`` or ``kptr()``: kernel memory even in a uprobe, where other pointers are the
    process's (bpftrace 0.17 types both with the kernel address space). A variable holding
    such a pointer is not followed."""
    while isinstance(e, (Member, Index, Deref, Cast)):
        e = e.base if isinstance(e, (Member, Index)) else e.expr
    return (isinstance(e, Builtin) and e.name == "curtask") or (isinstance(e, Call) and e.name == "kptr")


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


class Ternary(Expr):
    __slots__ = ("cond", "then", "other")

    def __init__(self, cond: Optional[Expr] = None, then: Optional[Expr] = None,
                 other: Optional[Expr] = None) -> None:
        self.cond = _zero(cond)
        self.then = _zero(then)
        self.other = _zero(other)
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.cond, self.then, self.other)


class Call(Expr):
    """A function: str buf ntop ksym usym kaddr uaddr join sizeof offsetof cat strftime time ..."""

    __slots__ = ("name", "args")

    def __init__(self, name: str = "", args: Optional[List[Expr]] = None) -> None:
        self.name = name
        self.args = [] if args is None else args
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return tuple(self.args)


class Var(Expr):
    """A scratch variable ``$name`` (per probe invocation)."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.span = self.type = None


class Positional(Expr):
    """``$1``.. and ``$#`` (bpftrace); substituted by the front end when known."""

    __slots__ = ("index",)

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.span = self.type = None


class MapRead(Expr):
    """``@map[key]`` read (missing key reads as zero). ``_bare`` (bpftrace parser): written
    without ``[...]``, so ``print(@m)`` prints the whole map."""

    __slots__ = ("map", "key", "_bare")

    def __init__(self, map: str = "", key: Optional[List[Expr]] = None) -> None:
        self.map = map
        self.key = [] if key is None else key
        self._bare = False
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return tuple(self.key)


class TupleExpr(Expr):
    __slots__ = ("elems",)

    def __init__(self, elems: Optional[List[Expr]] = None) -> None:
        self.elems = [] if elems is None else elems
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return tuple(self.elems)


# --------------------------------------------------------------------------- actions


class Action(Node):
    """Base of actions; ``span`` is set to ``None`` by every ``__init__``, like :attr:`Expr.span`."""

    __slots__ = ("span",)

    span: Optional[Span]

    def at(self, span: Optional[Span]) -> "Action":
        self.span = span
        return self

    def exprs(self) -> Sequence[Expr]:
        return ()


class EmitField(Node):
    """One named output field. ``fmt`` overrides how the value is shown.

    ``fmt``: ``None`` (from the type), ``"x"`` hex, ``"u"`` unsigned, ``"s"``
    signed, ``"str"`` string, ``"ustr"`` user string, ``"ipv4"``, ``"ipv6"``,
    ``"b16"``/``"b32"``/``"b64"`` (byte-swapped decimal), ``"B16"``/``"B32"``/``"B64"``
    (byte-swapped hex), ``"sym"`` (kernel symbol), ``"enum"``. Probe lines also set
    ``explicit_fmt`` (the line chose ``fmt``) and ``name_span`` (where ``NAME=`` is).
    """

    __slots__ = ("name", "expr", "fmt", "span", "explicit_fmt", "name_span")

    def __init__(self, name: str, expr: Expr, fmt: Optional[str] = None, span: Optional[Span] = None) -> None:
        self.name = name
        self.expr = expr
        self.fmt = fmt
        self.span = span
        self.explicit_fmt = False
        self.name_span: Optional[Span] = None


class Emit(Action):
    """Send a record with these fields (plus the standard header: ts cpu pid tid comm).
    ``stack``: a kernel stack (surftrace -s / $stack); ``ustack``: a user stack."""

    __slots__ = ("fields", "stack", "ustack")

    def __init__(self, fields: Optional[List[EmitField]] = None, stack: bool = False, ustack: bool = False) -> None:
        self.fields = [] if fields is None else fields
        self.stack = stack
        self.ustack = ustack
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return [f.expr for f in self.fields]


class Printf(Action):
    __slots__ = ("fmt", "args")

    def __init__(self, fmt: str = "", args: Optional[List[Expr]] = None) -> None:
        self.fmt = fmt
        self.args = [] if args is None else args
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return self.args


class MapUpdate(Action):
    """``@map[key] = agg(value)``: agg in count sum min max avg stats hist lhist; ``assign`` for plain ``=``.

    ``agg_args`` hold extra constant arguments (lhist min, max, step).
    """

    __slots__ = ("map", "key", "agg", "value", "agg_args")

    def __init__(self, map: str = "", key: Optional[List[Expr]] = None, agg: str = "count",
                 value: Optional[Expr] = None, agg_args: Optional[List[Expr]] = None) -> None:
        self.map = map
        self.key = [] if key is None else key
        self.agg = agg
        self.value = value
        self.agg_args = [] if agg_args is None else agg_args
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        out = list(self.key)
        if self.value is not None:
            out.append(self.value)
        return out + list(self.agg_args)


class Assign(Action):
    """``$var = expr``."""

    __slots__ = ("var", "value")

    def __init__(self, var: str = "", value: Optional[Expr] = None) -> None:
        self.var = var
        self.value = _zero(value)
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return (self.value,)


class If(Action):
    __slots__ = ("cond", "then", "other")

    def __init__(self, cond: Optional[Expr] = None, then: Optional[List[Action]] = None,
                 other: Optional[List[Action]] = None) -> None:
        self.cond = _zero(cond)
        self.then = [] if then is None else then
        self.other = [] if other is None else other
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return (self.cond,)


class While(Action):
    """A bounded loop (``unroll(n)`` has ``bound`` = n and ``cond`` None)."""

    __slots__ = ("cond", "body", "bound")

    def __init__(self, cond: Optional[Expr] = None, body: Optional[List[Action]] = None, bound: int = 0) -> None:
        self.cond = cond
        self.body = [] if body is None else body
        self.bound = bound
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return (self.cond,) if self.cond is not None else ()


class MapOp(Action):
    """``op`` in print clear zero delete on ``@map`` (``key`` for delete, ``args`` for print limits)."""

    __slots__ = ("op", "map", "key", "args")

    def __init__(self, op: str = "print", map: str = "", key: Optional[List[Expr]] = None,
                 args: Optional[List[Expr]] = None) -> None:
        self.op = op
        self.map = map
        self.key = [] if key is None else key
        self.args = [] if args is None else args
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return tuple(self.key) + tuple(self.args)


class PrintValue(Action):
    """``print(expr)`` of a non-map value."""

    __slots__ = ("value",)

    def __init__(self, value: Optional[Expr] = None) -> None:
        self.value = _zero(value)
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return (self.value,)


class Exit(Action):
    __slots__ = ()

    def __init__(self) -> None:
        self.span = None


class ExprStmt(Action):
    """A call evaluated for its effect (``signal()``, ``system()``, ``cat()``)."""

    __slots__ = ("expr",)

    def __init__(self, expr: Optional[Expr] = None) -> None:
        self.expr = _zero(expr)
        self.span = None

    def exprs(self) -> Sequence[Expr]:
        return (self.expr,)


# --------------------------------------------------------------------------- probes and programs

PROBE_KINDS = (
    "kprobe", "kretprobe", "tracepoint", "raw_tracepoint", "tp_btf", "fentry", "fexit",
    "uprobe", "uretprobe", "usdt", "profile", "interval", "software", "hardware",
    "watchpoint", "iter", "begin", "end",
)


class AttachPoint(Node):
    """Where a probe attaches.

    ``kind`` is one of :data:`PROBE_KINDS`. ``target``: a kernel symbol
    (kprobe/fentry), ``group:event`` (tracepoint), a raw tracepoint name, a
    symbol in ``path`` (uprobe), a USDT ``provider:name``, or the unit/rate
    (profile ``hz:99``, interval ``s:1``), a BPF iterator (iter: ``task``, ``task_file``).
    ``path`` is the resolved file for uprobes (``obj`` as the user wrote it). ``wildcard`` is true when ``target``
    still holds ``*``/``?`` (expanded by resolve into several probes).

    The bpftrace resolver may set ``nargs`` (fentry/fexit/tp_btf: the arguments
    before fexit's return value), ``multi`` (a merged wildcard:
    ``[(target, file offset), ...]`` on one multi link) and ``usdt`` (a USDT location:
    the note's :class:`undertow.kernel.usdt.USDTProbe`, with its semaphore and argument
    specs); else they are None. ``watch``: a watchpoint's ``addr``, ``arg`` (None, or N of
    FUNC+argN), ``len``, ``mode``, ``async`` and, once resolved, ``id`` (the number its
    set-up uprobe sends with the address) - else None.
    """

    __slots__ = ("kind", "target", "offset", "path", "obj", "pid", "wildcard", "file_offset", "span",
                 "nargs", "multi", "usdt", "watch")

    def __init__(self, kind: str, target: str = "", offset: int = 0, path: str = "", obj: str = "",
                 pid: Optional[int] = None, wildcard: bool = False, file_offset: Optional[int] = None,
                 span: Optional[Span] = None) -> None:
        self.kind = kind
        self.target = target
        self.offset = offset
        self.path = path
        self.obj = obj
        self.pid = pid
        self.wildcard = wildcard
        self.file_offset = file_offset
        self.span = span
        self.nargs: Optional[int] = None
        self.multi: Optional[List[Tuple[str, int]]] = None
        self.usdt: Any = None
        self.watch: Optional[Dict[str, Any]] = None

    def describe(self) -> str:
        if self.kind in ("uprobe", "uretprobe", "usdt"):
            t = f"{self.obj or self.path}:{self.target}"
        else:
            t = self.target
        if self.offset:
            t += f"+{self.offset:#x}"
        return f"{self.kind}:{t}" if t else self.kind

    def event_name(self) -> str:
        """The ``probe`` of a probe line's events when the line has no name, the same on
        every backend: ``kprobe:do_sys_openat2``, ``uretprobe:libc:open`` (:meth:`describe`)
        for kprobe/uprobe lines, the target (``syscalls:sys_enter_openat``) otherwise."""
        if self.kind in ("kprobe", "kretprobe", "uprobe", "uretprobe"):
            return self.describe()
        return self.target


class Probe(Node):
    """One probe: attach points, an optional filter, and actions.

    ``name`` is the probe's display name (surftrace's event name, bpftrace's
    probe spec). ``source`` / ``origin`` are the text the probe came from, so
    any node's span can be rendered with a caret.
    """

    __slots__ = ("attach", "filter", "actions", "name", "span", "source", "origin")

    def __init__(self, attach: Optional[List[AttachPoint]] = None, filter: Optional[Expr] = None,
                 actions: Optional[List[Action]] = None, name: str = "", span: Optional[Span] = None,
                 source: str = "", origin: str = "<input>") -> None:
        self.attach = [] if attach is None else attach
        self.filter = filter
        self.actions = [] if actions is None else actions
        self.name = name
        self.span = span
        self.source = source
        self.origin = origin

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


class MapDecl(Node):
    """A map, declared or inferred from use: key types and the aggregation it holds."""

    __slots__ = ("name", "key_types", "agg", "value_type", "agg_args")

    def __init__(self, name: str, key_types: Tuple[Ty, ...] = (), agg: str = "count",
                 value_type: Optional[Ty] = None, agg_args: Tuple[int, ...] = ()) -> None:
        self.name = name
        self.key_types = key_types
        self.agg = agg
        self.value_type = value_type
        self.agg_args = agg_args


class Program(Node):
    """A whole tracing program.

    ``settings`` holds knobs the user or front end set: ``strlen`` (string
    length, default 64), ``stack`` (kernel stacks on every emit), ``pid``
    (trace only this process), ``exclude_self`` (default True), buffer sizes.
    ``warnings``: non-fatal diagnostics from the resolve pass
    (:class:`undertow.errors.SourceError`).
    """

    __slots__ = ("probes", "maps", "settings", "source", "origin", "warnings")

    def __init__(self, probes: Optional[List[Probe]] = None, maps: Optional[Dict[str, MapDecl]] = None,
                 settings: Optional[Dict[str, Any]] = None, source: str = "", origin: str = "<input>",
                 warnings: Optional[List[Any]] = None) -> None:
        self.probes = [] if probes is None else probes
        self.maps = {} if maps is None else maps
        self.settings = {} if settings is None else settings
        self.source = source
        self.origin = origin
        self.warnings = [] if warnings is None else warnings

    def setting(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


# --------------------------------------------------------------------------- bpftrace-language additions
# Nodes the bpftrace front end (lang/bt/) needs beyond the sketch above.
# ``$x++`` / ``@x++`` / ``$x += e`` are desugared by the front end into
# :class:`Assign` / :class:`MapUpdate` (``agg="assign"``) of a :class:`Binary`,
# so backends meet no new node for them.


class Ident(Expr):
    """A bare C identifier in an expression: an enum constant (``TCP_CLOSE``) or a macro.

    The front end replaces macros it knows (``#define`` in the script, a few
    well-known header constants such as ``AF_INET``) by :class:`Const`; what is
    left is looked up by resolve among BTF ``BTF_KIND_ENUM``/``ENUM64`` values.
    """

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.span = self.type = None


class TypeName(Expr):
    """A type written where a value is expected: ``sizeof(struct sock)``, ``offsetof(struct x, f)``.

    ``type_text`` as written (``struct sock``, ``uint32``, ``struct foo *``).
    """

    __slots__ = ("type_text",)

    def __init__(self, type_text: str = "") -> None:
        self.type_text = type_text
        self.span = self.type = None


class TupleIndex(Expr):
    """``tuple.N`` (bpftrace ``$t.1``): the N-th element of a tuple value."""

    __slots__ = ("base", "index")

    def __init__(self, base: Optional[Expr] = None, index: int = 0) -> None:
        self.base = _zero(base)
        self.index = index
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.base,)


class IncDec(Expr):
    """``$x++``, ``++$x``, ``@m[k]--`` used as a value (bpftrace): ``target`` (a Var or a
    MapRead) gets ``op`` (``+``/``-``) 1 (a pointer: the size of what it points to); the
    value is the one before (``post``) or after."""

    __slots__ = ("target", "op", "post")

    def __init__(self, target: Optional[Expr] = None, op: str = "+", post: bool = True) -> None:
        self.target = _zero(target)
        self.op = op
        self.post = post
        self.span = self.type = None

    def children(self) -> Sequence[Expr]:
        return (self.target,)


class Return(Action):
    """``return``: end this probe's run early (bpftrace), unlike :class:`Exit`."""

    __slots__ = ()

    def __init__(self) -> None:
        self.span = None


class Break(Action):
    """``break`` inside a ``while`` loop."""

    __slots__ = ()

    def __init__(self) -> None:
        self.span = None


class Continue(Action):
    """``continue`` inside a ``while`` loop."""

    __slots__ = ()

    def __init__(self) -> None:
        self.span = None


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
        cls = type(x)
        new = object.__new__(cls)
        memo[id(x)] = new
        for k in slot_names(cls):
            v = getattr(x, k, _UNSET)
            if v is _UNSET:
                continue
            if isinstance(v, list):
                out = []
                for i in v:
                    out.append(_clone(i, memo))
                setattr(new, k, out)
            else:
                setattr(new, k, _clone(v, memo))
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
