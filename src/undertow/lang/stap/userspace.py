"""SystemTap handlers that run in undertow's process: ``begin``, ``end`` and timer probes
whose handler walks an array with ``foreach``.

The BPF programs here cannot walk a map, and such handlers need no event context: they
read the globals (the BPF maps, through a :class:`Store`), sort, print and clear them.
SystemTap runs them in its module at the same moments; undertow runs them after the BPF
``end`` programs (``end``), once everything is attached (``begin``), or on the read loop's
timer (``timer.*``, within ~20 ms of the period).

What such a handler may do: locals, reading globals (scalars, arrays, statistics with
``@count``..., ``print(@hist_log(x))``), ``foreach`` with sorting and ``limit``, the
printf family, user functions (recursion included), ``delete`` of a whole array, ``exit()``.
Writing a global or deleting one element is an error at its place (elaboration).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ...errors import SourceError, Span
from ..printf import conversions
from .ast import N
from .tapsets import ANSI

__all__ = ["UserHandler", "Store", "Interpreter", "needs_userspace", "check_handler"]


class UserHandler:
    """One handler run here: ``when`` (``begin``/``end``/``timer``), ``period_ns`` (timers),
    ``body`` (the syntax tree), ``pp`` (the probe point's text)."""

    def __init__(self, when: str, body: N, pp: str, period_ns: int = 0) -> None:
        self.when, self.body, self.pp, self.period_ns = when, body, pp, period_ns
        self.next_ns = 0


class Store:
    """The globals as the handlers see them: ``entries(map)`` -> ``[(key tuple, value)]``,
    ``clear(map)``, ``hist(map)`` -> the histogram drawn as SystemTap draws it."""

    def entries(self, name: str) -> "List[Tuple[tuple, Any]]":
        raise NotImplementedError

    def clear(self, name: str) -> None:
        raise NotImplementedError

    def set(self, name: str, key: tuple, value: Any) -> bool:
        """Write one element (a scalar: key ``()``); False when no BPF program uses the map
        (the interpreter then keeps the value itself)."""
        return False

    def delete(self, name: str, key: tuple) -> bool:
        """Delete one element; False when no BPF program uses the map."""
        return False

    def hist(self, name: str, key: "Optional[tuple]" = None) -> str:
        """The histogram (``key``: of that element only) drawn as SystemTap draws it."""
        raise NotImplementedError


#: the functions a handler run here can call (beside the script's own)
HERE_FUNCS = frozenset((
    "printf", "print", "println", "printd", "printdln", "printk", "sprintf", "sprint", "strlen", "substr",
    "isinstr", "target", "gettimeofday_s", "gettimeofday_ms", "gettimeofday_us", "gettimeofday_ns", "ctime",
    "tz_ctime", "execname", "pid", "tid", "exit", "error", "warn", "symname", "symdata", "usymname", "usymdata",
    "MKDEV", "MAJOR", "MINOR", *ANSI, "ansi_set_color", "matched", "matched_str", "tokenize", "str_replace",
    "strtol", "text_str", "text_strn", "stringat", "ktime_get_ns",
    *(f"{c}_clock_{u}" for c in ("cpu", "local") for u in ("s", "ms", "us", "ns")),
))


#: functions only the handlers run here have (string work BPF programs cannot do)
HERE_ONLY = frozenset(("tokenize", "str_replace", "text_str", "text_strn", "stringat", "matched", "matched_str"))


def loops_here(body: N, functions: "Optional[Dict[str, Any]]" = None) -> bool:
    """A begin/end handler that needs no event (no target variables, no tapset context), and
    loops, calls a function only this process has (``tokenize``...) or walks ``argv``: run
    here, where the verifier does not bound loops; its writes of globals go into the maps."""
    functions = functions or {}
    wanted = False
    stack: List[Any] = [body]
    seen: set = set()
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
            continue
        if not isinstance(n, N):
            continue
        if n.kind in ("while", "for"):
            wanted = True
        if n.kind in ("target", "member", "subscript", "at"):
            return False
        if n.kind == "assign" and n.op == "<<<":
            return False
        if n.kind == "index" and n.name == "argv":
            wanted = True
        if n.kind == "call":
            if n.name in functions:
                if n.name not in seen:
                    seen.add(n.name)
                    stack.append(functions[n.name].body)
            elif n.name not in HERE_FUNCS:
                return False
            elif n.name in HERE_ONLY:
                wanted = True
        stack.extend(v for v in n.__dict__.values() if isinstance(v, (N, list)))
    return wanted


def needs_userspace(body: N, functions: "Optional[Dict[str, Any]]" = None) -> bool:
    """Whether a handler walks an array (``foreach``), itself or in a script function it calls."""
    functions = functions or {}
    stack: List[Any] = [body]
    seen: set = set()
    while stack:
        n = stack.pop()
        if isinstance(n, N):
            if n.kind == "foreach":
                return True
            if n.kind == "call" and n.name in functions and n.name not in seen:
                seen.add(n.name)
                stack.append(functions[n.name].body)
            stack.extend(v for v in n.__dict__.values() if isinstance(v, (N, list)))
        elif isinstance(n, list):
            stack.extend(n)
    return False


class _Next(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Exit(Exception):
    """``exit()`` in a handler run here."""


_STAT_NAMES = ("count", "sum", "min", "max", "avg")


class KStr(str):
    """A string read from a map: text a traced process may control (a name, a path),
    escaped where it is printed."""


class Interpreter:
    """Runs :class:`UserHandler` bodies. ``script`` (for functions and globals), ``store``,
    ``write`` (the output), ``params`` (``$1``..), ``target`` (``target()``), ``gtypes`` and
    ``constants`` (the elaborator's), ``escape`` (makes a :class:`KStr` safe for a terminal)."""

    def __init__(self, script: Any, store: Store, write: "Callable[[str], None]", params: "List[str]",
                 target: int = 0, gtypes: "Optional[Dict[str, str]]" = None,
                 constants: "Optional[Dict[str, Any]]" = None,
                 escape: "Optional[Callable[[str], str]]" = None,
                 ksym: "Optional[Callable[[int], Optional[Tuple[str, int, Optional[str]]]]]" = None) -> None:
        self.s, self.store, self.write, self.params, self.target = script, store, write, params, target
        self.escape = escape or (lambda t: t)
        self.ksym = ksym  # address -> (name, offset, module) of the kernel's symbols
        self.gtypes = gtypes or {}
        self.constants = constants or {}
        self.depth = 0
        self.cache: Dict[str, Dict[tuple, Any]] = {}
        self.patterns: Dict[str, Any] = {}  # ERE -> compiled re
        self.shadow: Dict[str, Dict[tuple, Any]] = {}  # globals no BPF program uses: kept here
        self.last_match: Any = None  # the handler's last =~ match, for matched(N)
        self.tok_rest: "Optional[str]" = None  # tokenize()'s rest of the string

    def err(self, msg: str, span: "Optional[Span]") -> SourceError:
        return SourceError(msg, source=self.s.source, span=span, origin=self.s.origin)

    def run(self, h: UserHandler) -> bool:
        """Run a handler; False when it called exit()."""
        self.cache, self.last_match = {}, None
        try:
            self.block(h.body, {})
        except _Next:
            pass
        except Exit:
            return False
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
            raise self.err(f"{h.pp}: the handler failed here: {e}", h.body.span) from None
        except RecursionError:
            raise self.err(f"{h.pp}: script functions nested too deeply", h.body.span) from None
        return True

    # -- globals
    def table(self, name: str) -> "Dict[tuple, Any]":
        got = self.cache.get(name)
        if got is None:
            got = self.cache[name] = {tuple(_plain(x) for x in k): _plain(v) for k, v in self.store.entries(name)}
            got.update(self.shadow.get(name, {}))
        return got

    def global_value(self, name: str, keys: tuple, span: "Optional[Span]") -> Any:
        if name in self.constants:
            return self.constants[name]
        ty = self.gtypes.get(name, "long")
        if ty == "stats":
            raise self.err(f"'{name}' holds statistics: read them with @count({name})...", span)
        v = self.table("@" + name).get(keys)
        if v is None:
            return "" if ty == "string" else 0
        return v

    # -- statements
    def block(self, n: N, env: "Dict[str, Any]") -> None:
        for st in (n.body if n.kind == "block" else [n]):
            self.stmt(st, env)

    def stmt(self, n: N, env: "Dict[str, Any]") -> None:  # noqa: C901 - one case per statement
        k = n.kind
        if k == "block":
            self.block(n, env)
        elif k == "expr":
            self.expr_stmt(n.expr, env)
        elif k == "if":
            if _truth(self.value(n.cond, env)):
                self.stmt(n.then, env)
            elif n.other is not None:
                self.stmt(n.other, env)
        elif k == "while":
            while _truth(self.value(n.cond, env)):
                try:
                    self.stmt(n.body, env)
                except _Break:
                    break
                except _Continue:
                    continue
        elif k == "for":
            if n.init is not None:
                self.expr_stmt(n.init, env)
            while n.cond is None or _truth(self.value(n.cond, env)):
                try:
                    self.stmt(n.body, env)
                except _Break:
                    break
                except _Continue:
                    pass
                if n.step is not None:
                    self.expr_stmt(n.step, env)
        elif k == "foreach":
            self.foreach(n, env)
        elif k == "break":
            raise _Break()
        elif k == "continue":
            raise _Continue()
        elif k == "next":
            raise _Next()
        elif k == "return":
            raise _Return(self.value(n.value, env) if n.value is not None else 0)
        elif k == "try":
            self.block(n.body, env)
        elif k == "delete":
            t = n.target
            if t.kind == "name" and t.name in self.s.globals:
                names = [f"@{t.name}__{a}" for a in self.stat_names(t.name)] if self.gtypes.get(t.name) == "stats" \
                    else ["@" + t.name]
                for m in names:
                    self.store.clear(m)
                    self.cache.pop(m, None)
                    self.shadow.pop(m, None)
            elif t.kind == "name":
                env[t.name] = 0
            elif t.kind == "index" and t.name in self.s.globals and self.gtypes.get(t.name) != "stats":
                m = "@" + t.name
                if any(x.kind == "wild" for x in t.keys):  # a slice: every element whose keys match
                    want = [None if x.kind == "wild" else self.value(x, env) for x in t.keys]
                    doomed = [k for k in self.table(m) if len(k) == len(want) and
                              all(w is None or w == v for w, v in zip(want, k))]
                else:
                    doomed = [tuple(self.value(x, env) for x in t.keys)]
                for keys in doomed:
                    if not self.store.delete(m, keys):
                        self.shadow.get(m, {}).pop(keys, None)
                    self.table(m).pop(keys, None)
            else:
                raise self.err("deleting one element of statistics here is not supported", n.span)
        else:
            raise self.err(f"unsupported statement '{k}'", n.span)

    def stat_names(self, g: str) -> "List[str]":
        return list(self.gtypes.get("__stats__" + g, "count").split(","))

    def foreach(self, n: N, env: "Dict[str, Any]") -> None:
        g = n.array.name
        if g not in self.s.globals:
            raise self.err(f"'{g}' is not a global array", n.array.span)
        stats = self.gtypes.get(g) == "stats"
        if stats:
            aggs = self.stat_names(g)
            base = self.table(f"@{g}__{aggs[0]}")
            by = n.agg if n.agg in aggs else ("count" if "count" in aggs else aggs[0])
            items = [(k, self.table(f"@{g}__{by}").get(k, 0)) for k in base]
        else:
            items = list(self.table("@" + g).items())
        if n.sort_key is not None and n.sort_dir:
            def key(kv: Tuple[tuple, Any]) -> Any:
                v = kv[1] if n.sort_key == 0 else kv[0][n.sort_key - 1]
                return (0, v, "") if isinstance(v, int) else (1, 0, str(v))  # numbers, then strings
            items.sort(key=key, reverse=n.sort_dir < 0)
        limit = None
        if n.limit is not None:
            limit = int(self.value(n.limit, env))
        if len(n.keys) != (len(items[0][0]) if items else len(n.keys)):
            raise self.err(f"'{g}' has {len(items[0][0])} index(es), foreach names {len(n.keys)}", n.span)
        for i, (k, v) in enumerate(items):
            if limit is not None and i >= limit:
                break
            for name, kv in zip(n.keys, k):
                env[name] = kv
            if n.value_var:
                env[n.value_var] = v
            try:
                self.stmt(n.body, env)
            except _Break:
                break
            except _Continue:
                continue

    def expr_stmt(self, e: N, env: "Dict[str, Any]") -> None:
        if e.kind == "call" and e.name in ("printf", "print", "println", "printd", "printdln", "printk"):
            self.write(self.printing(e, env))
            return
        if e.kind == "call" and e.name == "exit":
            raise Exit()
        if e.kind == "call" and e.name in ("error", "warn"):
            msg = self.value(e.args[0], env) if e.args else ""
            self.write(("ERROR: " if e.name == "error" else "WARNING: ") + str(msg) + "\n")
            if e.name == "error":
                raise Exit()
            return
        self.value(e, env)

    def printing(self, e: N, env: "Dict[str, Any]") -> str:
        name = e.name
        if name in ("printf", "printk"):
            return self.sprintf(e, env)
        if name in ("print", "println") and len(e.args) == 1 and e.args[0].kind == "at" and \
                e.args[0].name in ("hist_log", "hist_linear"):
            a = e.args[0].args[0]
            key = tuple(self.value(x, env) for x in a.keys) if a.kind == "index" else None
            return self.store.hist(f"@{a.name}__{e.args[0].name}", key)
        vals = [self.value(a, env) for a in e.args]
        sep = ""
        if name in ("printd", "printdln"):
            sep, vals = str(vals[0]), vals[1:]
        out = sep.join(self.escape(v) if isinstance(v, KStr) else str(v) for v in vals)
        return out + ("\n" if name.endswith("ln") else "")

    def sprintf(self, e: N, env: "Dict[str, Any]") -> str:
        fmt = e.args[0].value if e.args and e.args[0].kind == "lit" else None
        if not isinstance(fmt, str):
            raise self.err(f"{e.name}() needs a string literal as its format", e.span)
        args = [self.value(a, env) for a in e.args[1:]]
        out: List[str] = []
        pos = ai = 0
        for start, end, flags, width, prec, conv in conversions(fmt, star=False, required=False):
            out.append(fmt[pos:start])
            pos = end
            if conv == "%":
                out.append("%")
                continue
            if ai >= len(args):
                raise self.err(f"{e.name}: not enough arguments for the format", e.args[0].span)
            v = args[ai]
            ai += 1
            if isinstance(v, KStr):
                v = self.escape(v)
            out.append(_conv(flags, width, prec, conv, v))
        out.append(fmt[pos:])
        return "".join(out)

    # -- expressions
    def value(self, n: N, env: "Dict[str, Any]") -> Any:  # noqa: C901 - one case per expression
        k = n.kind
        if k == "lit":
            return n.value
        if k == "pos":
            if n.index == -1:
                return len(self.params)
            text = self.params[n.index - 1]
            if n.string:
                return text
            from ..bt.language import c_integer

            return c_integer(text) or 0
        if k == "name":
            if n.name in env:
                return env[n.name]
            if n.name in self.s.globals:
                return self.global_value(n.name, (), n.span)
            if n.name == "argc":  # the argv tapset: the script's arguments
                return len(self.params)
            return 0  # a local read before it is assigned is 0 (or "": they compare alike here)
        if k == "index":
            keys = tuple(self.value(x, env) for x in n.keys)
            if n.name == "argv" and n.name not in self.s.globals:
                return self.argv().get(keys, "")
            return self.global_value(n.name, keys, n.span)
        if k == "at":
            if n.name in _STAT_NAMES or n.name == "variance":
                a = n.args[0]
                keys = tuple(self.value(x, env) for x in a.keys) if a.kind == "index" else ()
                if n.name == "variance":
                    c = self.table(f"@{a.name}__count").get(keys, 0)
                    s = self.table(f"@{a.name}__sum").get(keys, 0)
                    sq = self.table(f"@{a.name}__sumsq").get(keys, 0)
                    return _arith("/", c * sq - s * s, c * (c - 1)) if c > 1 else 0
                return self.table(f"@{a.name}__{n.name}").get(keys, 0)
            raise self.err(f"@{n.name} is not supported in an end or timer handler", n.span)
        if k == "in":
            keys = tuple(self.value(x, env) for x in n.keys)
            g = n.array
            m = f"@{g}__{self.stat_names(g)[0]}" if self.gtypes.get(g) == "stats" else "@" + g
            return int(keys in self.table(m))
        if k == "unary":
            v = self.value(n.expr, env)
            return {"-": lambda: -v, "!": lambda: int(not _truth(v)), "~": lambda: ~v}[n.op]()
        if k == "binary":
            return self.binary(n, env)
        if k == "ternary":
            return self.value(n.then if _truth(self.value(n.cond, env)) else n.other, env)
        if k == "assign":
            return self.assign(n, env)
        if k == "incdec":
            t = n.target
            if t.kind in ("name", "index") and t.name in self.s.globals:
                keys = tuple(self.value(x, env) for x in t.keys) if t.kind == "index" else ()
                old = self.global_value(t.name, keys, t.span)
                self.set_global(t.name, keys, old + (1 if n.op == "+" else -1), n.span)
                return old if n.post else old + (1 if n.op == "+" else -1)
            if t.kind != "name":
                raise self.err("only variables and array elements can be changed", n.span)
            old = env.get(t.name, 0)
            env[t.name] = old + (1 if n.op == "+" else -1)
            return old if n.post else env[t.name]
        if k == "call":
            return self.call(n, env)
        raise self.err(f"'{k}' is not supported in an end or timer handler", n.span)

    def argv(self) -> "Dict[tuple, Any]":
        """The argv tapset's array: the script's arguments by number (1..argc), writable."""
        return self.shadow.setdefault("@argv", {(i,): p for i, p in enumerate(self.params, 1)})

    def set_global(self, name: str, keys: tuple, v: Any, span: "Optional[Span]") -> None:
        """Write a global: into its BPF map (the probes see it), or kept here when no probe
        uses it."""
        m = "@" + name
        try:
            done = self.store.set(m, keys, v)
        except ValueError as e:
            raise self.err(f"writing '{name}' here: {e}", span) from None
        if not done:
            self.shadow.setdefault(m, {})[keys] = v
        self.table(m)[keys] = v

    def assign(self, n: N, env: "Dict[str, Any]") -> Any:
        t = n.target
        op = n.op
        if t.kind in ("name", "index") and t.name in self.s.globals:
            if op == "<<<" or self.gtypes.get(t.name) == "stats":
                raise self.err("adding to statistics (<<<) in a handler run here is not supported", n.span)
            keys = tuple(self.value(x, env) for x in t.keys) if t.kind == "index" else ()
            v = self.value(n.value, env)
            if op == ".=":
                v = str(self.global_value(t.name, keys, t.span)) + str(v)
            elif op != "=":
                v = _arith(op[:-1], self.global_value(t.name, keys, t.span), v)
            self.set_global(t.name, keys, v, n.span)
            return v
        if t.kind == "index" and t.name == "argv" and op == "=":
            v = self.value(n.value, env)
            self.argv()[tuple(self.value(x, env) for x in t.keys)] = v
            return v
        if t.kind != "name":
            raise self.err("only variables and array elements can be assigned", n.span)
        v = self.value(n.value, env)
        if op == "=":
            env[t.name] = v
        elif op == ".=":
            env[t.name] = str(env.get(t.name, "")) + str(v)
        else:
            env[t.name] = _arith(op[:-1], env.get(t.name, 0), v)
        return env[t.name]

    def binary(self, n: N, env: "Dict[str, Any]") -> Any:
        op = n.op
        if op == "&&":
            return int(_truth(self.value(n.left, env)) and _truth(self.value(n.right, env)))
        if op == "||":
            return int(_truth(self.value(n.left, env)) or _truth(self.value(n.right, env)))
        a, b = self.value(n.left, env), self.value(n.right, env)
        if op == ".":
            joined = str(a) + str(b)
            return KStr(joined) if isinstance(a, KStr) or isinstance(b, KStr) else joined
        if op in ("=~", "!~"):
            return int(self.regex(n, a, b) != (op == "!~"))
        if op == "==":
            return int(a == b)
        if op == "!=":
            return int(a != b)
        if op in ("<", "<=", ">", ">="):
            if isinstance(a, str) != isinstance(b, str):
                raise self.err(f"'{op}' compares a number with a string", n.span)
            return int(a < b if op == "<" else a <= b if op == "<=" else a > b if op == ">" else a >= b)
        if isinstance(a, str) or isinstance(b, str):
            raise self.err(f"'{op}' needs numbers", n.span)
        if op in ("/", "%") and b == 0:
            raise self.err("division by 0", n.span)
        return _arith(op, a, b)

    def regex(self, n: N, a: Any, b: Any) -> bool:
        """``a =~ b``: a search of the POSIX ERE ``b`` (lang/regex.py) in ``a``'s bytes; a
        match is kept for ``matched(N)``."""
        from ..regex import RegexError, to_python

        if not isinstance(a, str) or not isinstance(b, str):
            raise self.err(f"'{n.op}' matches a string against a regular expression", n.span)
        try:
            rx = self.patterns.get(b) or self.patterns.setdefault(b, to_python(b))
        except RegexError as e:
            raise self.err(f"bad regular expression: {e.msg} (at offset {e.pos})", n.right.span) from None
        m = rx.search(a.encode("utf-8", "surrogateescape").split(b"\0", 1)[0])
        if m is not None:
            self.last_match = m
        return m is not None

    def call(self, n: N, env: "Dict[str, Any]") -> Any:
        name = n.name
        if name in self.s.functions:
            f = self.s.functions[name]
            self.depth += 1
            if self.depth > 200:
                raise self.err("functions nested more than 200 deep", n.span)
            try:
                local = {p: self.value(a, env) for (p, _t), a in zip(f.params, n.args)}
                try:
                    self.block(f.body, local)
                except _Return as r:
                    return r.value
                return 0
            finally:
                self.depth -= 1
        args = [self.value(a, env) for a in n.args]
        if name == "sprintf":
            return self.sprintf(n, env)
        if name in ("sprint",):
            return str(args[0])
        if name == "strlen":
            return len(str(args[0]))
        if name == "substr":
            s, start = str(args[0]), int(args[1])
            return s[start:start + int(args[2])] if len(args) > 2 else s[start:]
        if name == "tokenize":
            # tokenize(s, delim): the first token of s; tokenize("", delim): the next one of the
            # last s (tapset/tokenize.stp: strsep(), empty tokens skipped)
            text, delim = str(args[0]), str(args[1])
            if text:
                self.tok_rest = text
            while self.tok_rest is not None:
                cut = min((i for i in (self.tok_rest.find(c) for c in delim) if i >= 0), default=-1) \
                    if delim else -1
                tok, self.tok_rest = (self.tok_rest, None) if cut < 0 else (self.tok_rest[:cut],
                                                                              self.tok_rest[cut + 1:])
                if tok:
                    return tok
            return ""
        if name == "str_replace":
            return str(args[0]).replace(str(args[1]), str(args[2])) if str(args[1]) else str(args[0])
        if name == "strtol":
            text, base = str(args[0]).strip(), int(args[1])
            try:
                return int(text, base) if base else int(text, 0)
            except ValueError:
                import re as _re

                m = _re.match(r"[+-]?[0-9a-fA-FxX]*", text)
                try:
                    return int(m.group(0), base) if m and m.group(0) else 0
                except ValueError:
                    return 0
        if name in ("text_str", "text_strn"):
            return str(args[0]) if name == "text_str" else str(args[0])[:int(args[1])]
        if name == "stringat":
            s_, i = str(args[0]), int(args[1])
            return ord(s_[i]) if 0 <= i < len(s_) else 0
        if name == "matched":
            m, k = self.last_match, int(args[0])
            if m is None or not 0 <= k <= (m.re.groups or 0) or m.group(k) is None:
                raise self.err(f"matched({k}): no such subexpression in the last match", n.span)
            return m.group(k).decode("utf-8", "surrogateescape")
        if name == "matched_str":
            if self.last_match is None:
                raise self.err("matched_str(): no match yet", n.span)
            return self.last_match.group(0).decode("utf-8", "surrogateescape")
        if name == "isinstr":
            return int(str(args[1]) in str(args[0]))
        if name == "target":
            return self.target
        if name.startswith("gettimeofday_"):
            div = {"s": 10 ** 9, "ms": 10 ** 6, "us": 1000, "ns": 1}[name.split("_")[1]]
            return time.time_ns() // div
        if name.startswith(("cpu_clock_", "local_clock_")) or name == "ktime_get_ns":
            # the BPF side's clock (bpf_ktime_get_ns: CLOCK_MONOTONIC)
            div = {"s": 10 ** 9, "ms": 10 ** 6, "us": 1000, "ns": 1}[name.rsplit("_", 1)[1]]
            return time.monotonic_ns() // div
        if name in ("ctime", "tz_ctime"):
            t = args[0] if args else time.time()
            return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))
        if name in ("execname",):
            return "undertow"
        if name in ("pid", "tid"):
            import os

            return os.getpid()
        if name == "exit":
            raise Exit()
        if name in ("printf", "print", "println", "printd", "printdln"):
            self.write(self.printing(n, env))
            return 0
        if name == "ansi_set_color" and len(args) in (2, 3):
            name = f"ansi_set_color{len(args)}"
        if name in ANSI:
            vals = list(reversed(args)) if name == "ansi_cursor_move" else args
            self.write(ANSI[name][0] % tuple(vals) if vals else ANSI[name][0])
            return 0
        if name in ("symname", "symdata", "usymname", "usymdata"):
            addr = int(args[0]) & ((1 << 64) - 1) if args else 0
            got = self.ksym(addr) if self.ksym is not None and not name.startswith("u") else None
            if got is None:
                return f"{addr:#x}"
            sym, off, mod = got
            if name == "symname":
                return sym
            return f"{sym}+{off:#x}" + (f" [{mod}]" if mod else " [kernel]")
        if name in ("MKDEV",):
            return (args[0] << 20) | args[1]
        if name == "MAJOR":
            return args[0] >> 20
        if name == "MINOR":
            return args[0] & 0xFFFFF
        raise self.err(f"{name}() is not available in an end or timer handler here", n.span)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return KStr(v.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
    if isinstance(v, str):
        return KStr(v)
    return v


def _truth(v: Any) -> bool:
    return v != "" if isinstance(v, str) else bool(v)


def _arith(op: str, a: int, b: int) -> int:
    if op == "/":
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "%":
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    v = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<<": lambda: a << b, ">>": lambda: a >> b,
         "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b}[op]()
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _conv(flags: str, width: "Optional[str]", prec: "Optional[str]", conv: str, v: Any) -> str:
    spec = "%" + flags + (width or "") + ("." + prec if prec is not None else "")
    if conv == "s":
        return (spec + "s") % (v if isinstance(v, str) else str(v))
    if isinstance(v, str):
        v = 0
    if conv in ("d", "i"):
        return (spec + "d") % v
    if conv == "u":
        return (spec + "d") % (v & ((1 << 64) - 1))
    if conv in ("x", "X", "o"):
        return (spec + conv) % (v & ((1 << 64) - 1))
    if conv == "p":
        return ("%#" + spec[1:] + "x") % (v & ((1 << 64) - 1))
    if conv == "c":
        return (spec + "c") % chr(v & 0xFF)
    return (spec + "s") % v


def check_handler(body: N, globals_: "Dict[str, Any]", raise_err: "Callable[[str, Any], Exception]",
                  functions: "Optional[Dict[str, Any]]" = None) -> None:
    """Refuse, at elaboration, what a handler run here cannot do (write a global), in it or in
    the script functions it calls."""
    functions = functions or {}
    seen: set = set()
    stack: List[Any] = [body]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
            continue
        if not isinstance(n, N):
            continue
        if n.kind == "assign" and n.op == "<<<" and n.target.kind in ("name", "index") and \
                n.target.name in globals_:
            raise raise_err("a handler that walks an array (foreach) runs in undertow's process here, "
                            "where statistics cannot be added to (<<<)", n.span)
        if n.kind == "call" and n.name in functions and n.name not in seen:
            seen.add(n.name)
            stack.append(functions[n.name].body)
        stack.extend(v for v in n.__dict__.values() if isinstance(v, (N, list)))
