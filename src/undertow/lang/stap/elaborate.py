"""SystemTap script -> undertow's IR (the one the bpftrace front end builds), so that the
BPF code generator, maps, printf, histograms and the runtime are shared.

Elaboration (SystemTap's pass 2) resolves each probe point — a tapset alias through
:mod:`.tapsets`, ``kernel.function``/``kernel.trace``/``process(...)``/``timer``/``begin``
directly — into attach points, translates the handler once per realisation, and infers
the types SystemTap infers (``long``, ``string``, statistics):

- globals are maps (``@name``; a scalar is a map without a key), locals are ``$name``;
  a global initialised and never written is a constant;
- ``x <<< v`` updates one map per extractor the script uses (``@count``... ``@hist_log``);
- strings SystemTap builds at run time (``sprintf``, ``.``, ``argstr``) are printed where
  the script prints them: their parts are spliced into the ``printf`` format;
- user functions are inlined (no recursion, a ``return`` only at the end of a path).

Errors are :class:`~undertow.errors.SourceError` with the place in the script.
"""

from __future__ import annotations

import os
import re
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...errors import ParseError, SourceError, Span, TypeCheckError
from .. import ir
from ..printf import conversions
from .ast import N, ProbePoint, Script
from .tapsets import ANSI, Env, Site, Unrealisable, Var, realise
from .userspace import UserHandler, check_handler, loops_here, needs_userspace

__all__ = ["elaborate", "StapError", "Options"]

_STATS = ("count", "sum", "min", "max", "avg", "hist_log", "hist_linear", "variance")
_AGG = {"count": "count", "sum": "sum", "min": "min", "max": "max", "avg": "avg", "hist_log": "hist",
        "hist_linear": "lhist", "sumsq": "sum"}


#: timer units -> nanoseconds (timer.jiffies: 4 ms, CONFIG_HZ=250)
_PERIODS = {"s": 10 ** 9, "sec": 10 ** 9, "ms": 10 ** 6, "msec": 10 ** 6, "us": 1000, "usec": 1000, "ns": 1,
            "nsec": 1, "jiffies": 4 * 10 ** 6}


class StapError(SourceError):
    """An error in a SystemTap script at a place (elaboration)."""


class Options:
    """What the command line gives the elaborator: ``params`` (``$1``..), ``target_pid``
    (``-x``), ``has_cmd`` (``-c``: ``target()`` is its pid)."""

    def __init__(self, params: Sequence[str] = (), target_pid: Optional[int] = None, has_cmd: bool = False) -> None:
        self.params, self.target_pid, self.has_cmd = list(params), target_pid, has_cmd


class Comp:
    """A string made at run time: ``variants`` ``[(condition IR or None, format, [IR])]``
    (the first whose condition holds; None: always)."""

    def __init__(self, variants: List[Tuple[Optional[ir.Expr], str, List[Tuple[ir.Expr, str]]]]) -> None:
        self.variants = variants


class Enum:
    """A string named from a number (``uaddr_af``): ``expr`` the number, ``names``."""

    def __init__(self, expr: ir.Expr, names: Dict[int, str]) -> None:
        self.expr, self.names = expr, names


class Val:
    """A translated expression: IR and its type (``long``/``string``), or a Comp/Enum;
    ``raw`` (IPv4 addresses): the address as a number, for comparisons with text."""

    def __init__(self, e: Any, ty: str) -> None:
        self.e, self.ty = e, ty
        self.raw: Any = None
        #: a target variable or a member of one: its C type decides (a char array prints with %s)
        self.target = False


def _lit_fmt(s: str) -> str:
    return s.replace("%", "%%")


def _respan(node: Any, span: Optional[Span]) -> Any:
    """Every span in a tree of tapset IR set to ``span`` (the probe point that asked for it)."""
    if isinstance(node, list):
        for x in node:
            _respan(x, span)
        return node
    if isinstance(node, (ir.Expr, ir.Action)):
        node.span = span
        for k in ir.slot_names(type(node)):
            v = getattr(node, k, None)
            if isinstance(v, (ir.Node, list)) and k not in ("type",):
                _respan(v, span)
    return node


_BT_CACHE: Dict[str, List[ir.Action]] = {}


def bt_actions(text: str) -> List[ir.Action]:
    """Statements in the bpftrace language (this package's own tapset text) as IR: a fresh copy."""
    got = _BT_CACHE.get(text)
    if got is None:
        from ..bt import parse_program

        got = _BT_CACHE[text] = parse_program("BEGIN { " + text + " }", origin="<tapset>").probes[0].actions
    return ir.clone(got)


def bt_expr(text: str) -> ir.Expr:
    """An expression in the bpftrace language (tapset text) as IR."""
    act = bt_actions("$__v = " + text + ";")[0]
    assert isinstance(act, ir.Assign)
    return act.value


class _Probe:
    """What the handler being translated knows: its site, its locals' types, hoisted actions."""

    def __init__(self, site: Site, span: Span) -> None:
        self.site, self.span = site, span
        self.locals: Dict[str, str] = {}
        self.comps: Dict[str, Any] = {}
        self.pending: List[ir.Action] = []
        self.inline_depth = 0
        self.fn_stack: List[str] = []
        self.fn_names: List[str] = []
        #: loops entered in each function being inlined (a return in one also breaks out)
        self.fn_loops: List[int] = []


class _Elaborator:
    def __init__(self, script: Script, env: Env, opts: Options) -> None:
        self.s, self.env, self.opts = script, env, opts
        self.src, self.origin = script.source, script.origin
        self.gtypes: Dict[str, str] = {}
        self.written: Dict[str, bool] = {}
        self.read: Dict[str, bool] = {}
        self.stat_aggs: Dict[str, Dict[str, Tuple[int, ...]]] = {}
        self.maps: Dict[str, ir.MapDecl] = {}
        self.counter = 0
        self.wall_offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.notes: List[str] = []
        self.helpers_added: set = set()
        self._target_cache: Dict[int, set] = {}
        self.sum_only: set = set()
        self.key_types: Dict[str, List[str]] = {}
        self._string_vars: Optional[frozenset] = None
        self.extra_probes: List[ir.Probe] = []
        self.entry_strings: List[str] = []  # maps of string values kept at an entry
        self.here_written: set = set()  # globals the handlers run here write
        self.target_set = False  # target_set_pid()'s helper probes added
        self.tables: Dict[int, str] = {}
        self.table_probes: List[ir.Probe] = []

    # -- errors
    def err(self, msg: str, span: Optional[Span], *hints: str, cls: type = StapError) -> SourceError:
        return cls(msg, source=self.src, span=span, origin=self.origin, hints=[h for h in hints if h])

    # -- the script
    def run(self) -> ir.Program:
        if self.s.embedded:
            raise self.err("embedded C (%{ ... %}) needs guru mode and a kernel module", self.s.embedded[0],
                           "undertow runs no C: nothing of a script with embedded C is run")
        self.scan_globals()
        probes: List[ir.Probe] = []
        init = self.global_inits()
        if init:
            probes.append(ir.Probe([ir.AttachPoint("begin")], None, init, name="begin", source=self.src,
                                   origin=self.origin))
        users: List[UserHandler] = []
        for p in self.s.probes:
            for pp in p.points:
                user = None
                if needs_userspace(p.body, self.s.functions):
                    user = self.user_handler(pp, p.body)
                elif pp.parts in ([("begin", None)], [("end", None)]) and loops_here(p.body, self.s.functions):
                    user = self.user_handler(pp, p.body)
                if user is not None:
                    users.append(user)
                    continue
                probes.extend(self.probe_point(pp, p.body, p.span))
        probes.extend(self.extra_probes)
        probes[:0] = self.table_probes  # before the script's begin probes
        todo, seen = [u.body for u in users], set()
        while todo:
            for node in self.walk(todo.pop()):
                if node.kind in ("assign", "incdec") and node.target.kind in ("name", "index") and \
                        node.target.name in self.s.globals:
                    self.here_written.add(node.target.name)
                if node.kind == "call" and node.name in self.s.functions and node.name not in seen:
                    seen.add(node.name)
                    todo.append(self.s.functions[node.name].body)
        typing = self.typing_probe()
        if typing is not None:
            probes.insert(0, typing)
        if not probes and users:  # the handlers run here; the session still needs a program
            probes.append(ir.Probe([ir.AttachPoint("begin")], None, [], name="begin", source=self.src,
                                   origin=self.origin))
        if not probes:
            raise self.err("no probe of the script can run here", self.s.probes[0].span if self.s.probes else None,
                           "optional probe points (?) that do not exist are left out")
        # strings: SystemTap reads up to MAXSTRINGLEN bytes (128 before 4.x; 512 since); 128 keeps
        # a string key, a string local and a str() read within the 512 bytes of BPF stack
        prog = ir.Program(probes, dict(self.maps), {"frontend": "bt", "unsafe_calls": [], "stap": True, "strlen": 128},
                          source=self.src, origin=self.origin)
        prog.settings["stap_autoprint"] = sorted(g for g in self.s.globals if self.written.get(g) and
                                                 not self.read.get(g))
        prog.settings["stap_stats"] = {g: dict(a) for g, a in self.stat_aggs.items()}
        prog.settings["stap_notes"] = list(self.notes)
        gtypes = dict(self.gtypes)
        for g, aggs in self.stat_aggs.items():
            gtypes["__stats__" + g] = ",".join(aggs) or "count"
        prog.settings["stap_user"] = users
        prog.settings["stap_script"] = self.s
        prog.settings["stap_params"] = list(self.opts.params)
        prog.settings["stap_gtypes"] = gtypes
        prog.settings["stap_constants"] = {g.name: self.const_value(g.init) for g in self.s.globals.values()
                                           if g.init is not None and not self.written.get(g.name)}
        return prog

    def user_handler(self, pp: ProbePoint, body: N) -> Optional[UserHandler]:
        """A begin/end/timer handler with foreach, run in undertow's process; None for
        other probe points (their foreach is refused where it is)."""
        names = [n for n, _a in pp.parts]
        if names in (["begin"], ["end"]):
            when, period = names[0], 0
        elif names[0] == "timer" and len(names) == 2 and names[1] in _PERIODS:
            arg = self.point_arg(pp.parts[1][1])
            if not isinstance(arg, int) or arg <= 0:
                return None
            when, period = "timer", arg * _PERIODS[names[1]]
        else:
            return None
        check_handler(body, self.s.globals, lambda msg, span: self.err(msg, span), self.s.functions)
        for node in self.walk(body):  # stats read here need their maps
            if node.kind == "at" and node.name in _STATS and node.args and node.args[0].kind in ("name", "index"):
                self.stat_aggs.setdefault(node.args[0].name, {}).setdefault(node.name, ())
            if node.kind == "foreach" and node.array.name in self.s.globals and \
                    self.gtypes.get(node.array.name) == "stats":
                # walking statistics: sorted by @count unless the foreach names another aggregate
                self.stat_aggs.setdefault(node.array.name, {}).setdefault(node.agg or "count", ())
        return UserHandler(when, body, pp.text(), period)

    def walk(self, n: Any) -> Any:
        if isinstance(n, N):
            yield n
            for v in n.__dict__.values():
                if isinstance(v, (N, list)):
                    yield from self.walk(v)
        elif isinstance(n, list):
            for x in n:
                yield from self.walk(x)

    def scan_globals(self) -> None:
        """Types of globals (SystemTap infers them from every use), and which are written or read."""
        # probe never's handler never runs (scripts use it to give globals their types): its
        # writes do not count, its values only type the globals
        never = [p.body for p in self.s.probes if all(pp.parts == [("never", None)] for pp in p.points)]
        for node in self.walk(never):
            if node.kind == "assign" and node.target.kind in ("name", "index") and node.target.name in self.s.globals:
                g = node.target.name
                if node.op == "<<<":
                    self.gtypes[g] = "stats"
                elif self.guess_string(node.value):
                    self.gtypes.setdefault(g, "string")
        bodies = [p.body for p in self.s.probes if not any(p.body is b for b in never)] + \
            [f.body for f in self.s.functions.values()] + [a.body for a in self.s.aliases]
        for g in self.s.globals.values():
            if g.init is not None:
                self.gtypes[g.name] = "string" if g.init.kind == "lit" and isinstance(g.init.value, str) else "long"
        for node in self.walk(bodies):
            if node.kind == "assign":
                t = node.target
                name = t.name if t.kind in ("name", "index") else None
                if name in self.s.globals:
                    self.written[name] = True
                    if node.op == "<<<":
                        self.gtypes[name] = "stats"
                    elif name not in self.gtypes and self.guess_string(node.value):
                        self.gtypes[name] = "string"
                    # x += v, x++: written; SystemTap still prints x at the end (it is not "read")
            elif node.kind == "incdec" and node.target.kind in ("name", "index") and node.target.name in self.s.globals:
                self.written[node.target.name] = True
            elif node.kind == "delete" and node.target.kind in ("name", "index"):
                self.written[node.target.name] = True
            elif node.kind == "at" and node.name in _STATS and node.args and node.args[0].kind in ("name", "index"):
                g = node.args[0].name
                self.read[g] = True
                aggs = self.stat_aggs.setdefault(g, {})
                if node.name == "hist_linear":
                    vals = []
                    for a in node.args[1:]:
                        if a.kind != "lit" or not isinstance(a.value, int):
                            raise self.err("@hist_linear's low, high and width must be numbers", a.span)
                        vals.append(a.value)
                    if len(vals) != 3:
                        raise self.err("@hist_linear(v, low, high, width) takes four arguments", node.span)
                    aggs["hist_linear"] = tuple(vals)
                elif node.name == "variance":  # from @count, @sum and the sum of the squares
                    for a in ("count", "sum", "sumsq"):
                        aggs.setdefault(a, ())
                else:
                    aggs[node.name] = ()
            elif node.kind in ("name", "index") and node.name in self.s.globals:
                pass
        # a global only ever added to (x[k] += v, x[k]++) and read only where undertow's process
        # reads it (end/timer handlers with foreach, the final print) is a per-CPU sum map: no
        # read-modify-write in BPF (no lost updates between CPUs, no key copied twice)
        bpf_bodies = [p.body for p in self.s.probes if not needs_userspace(p.body, self.s.functions)] + \
            [f.body for f in self.s.functions.values()] + [a.body for a in self.s.aliases]
        bpf_reads = set()
        for node in self.walk(bpf_bodies):
            if node.kind in ("name", "index") and id(node) not in self._targets(bpf_bodies):
                bpf_reads.add(node.name)
            if node.kind == "in":
                bpf_reads.add(node.array)
        adds: Dict[str, bool] = {}
        for node in self.walk(bodies):
            if node.kind == "assign" and node.target.kind in ("name", "index") and node.target.name in self.s.globals:
                g = node.target.name
                adds[g] = adds.get(g, True) and node.op in ("+=", "-=")
            elif node.kind == "incdec" and node.target.kind in ("name", "index") and node.target.name in self.s.globals:
                adds.setdefault(node.target.name, True)
        self.sum_only = {g for g, ok in adds.items() if ok and g not in bpf_reads and self.gtypes.get(g, "long") == "long"
                         and (self.s.globals[g].init is None)}
        # a global compared with a string literal holds strings
        for node in self.walk(bodies):
            if node.kind == "binary" and node.op in ("==", "!="):
                for x, y in ((node.left, node.right), (node.right, node.left)):
                    if x.kind in ("name", "index") and x.name in self.s.globals and y.kind == "lit" \
                            and isinstance(y.value, str):
                        self.gtypes.setdefault(x.name, "string")
        # reads: any name/index of a global not as an assignment target
        targets = set()
        for node in self.walk(bodies):
            if node.kind in ("assign", "incdec", "delete"):
                targets.add(id(node.target))
        for node in self.walk(bodies):
            if node.kind in ("name", "index") and node.name in self.s.globals and id(node) not in targets:
                self.read[node.name] = True
            if node.kind == "foreach" and node.array.name in self.s.globals:
                self.read[node.array.name] = True
            if node.kind == "in" and node.array in self.s.globals:
                self.read[node.array] = True
        for g, aggs in self.stat_aggs.items():
            if self.gtypes.get(g) != "stats" and g in self.s.globals:
                self.gtypes[g] = "stats"

    def _targets(self, bodies: Any) -> set:
        key = id(bodies)
        got = self._target_cache.get(key)
        if got is None:
            got = self._target_cache[key] = {id(node.target) for node in self.walk(bodies)
                                             if node.kind in ("assign", "incdec", "delete")}
        return got

    def guess_string(self, v: N) -> bool:
        if v.kind == "lit":
            return isinstance(v.value, str)
        if v.kind == "pos":
            return v.string
        if v.kind == "binary" and v.op == ".":
            return True
        if v.kind == "call":
            return v.name in _STRING_FUNCS or (v.name in self.s.functions and
                                                self.s.functions[v.name].rtype == "string")
        if v.kind == "ternary":
            return self.guess_string(v.then)
        if v.kind == "name" and v.name not in self.s.globals:
            if self._string_vars is None:
                from .tapsets import string_var_names

                self._string_vars = string_var_names()
            return v.name in self._string_vars
        return False

    def global_inits(self) -> List[ir.Action]:
        out: List[ir.Action] = []
        for g in self.s.globals.values():
            if g.init is None or not self.written.get(g.name):
                continue
            v = self.const_value(g.init)
            self.note_map(g.name, "assign")
            out.append(ir.MapUpdate("@" + g.name, [], "assign", _respan(ir.Const(v), g.span)).at(g.span))
        return out

    def const_value(self, n: N) -> Any:
        if n.kind == "lit":
            return n.value
        if n.kind == "unary" and n.op == "-" and n.expr.kind == "lit":
            return -n.expr.value
        if n.kind == "pos":
            return self.positional(n).e.value
        raise self.err("a global is initialised with a literal", n.span)

    def note_map(self, name: str, agg: str, args: Tuple[int, ...] = ()) -> None:
        key = "@" + name
        if key not in self.maps:
            self.maps[key] = ir.MapDecl(key, agg=agg, agg_args=args)

    # -- probe points
    def probe_point(self, pp: ProbePoint, body: N, span: Span, depth: int = 0) -> List[ir.Probe]:
        alias = self.alias_for(pp)
        if alias is not None:
            # probe NAME = POINTS { prologue }: the prologue, then the handler (+=: after it)
            if depth > 10:
                raise self.err("probe aliases nested more than 10 deep", pp.span)
            parts = alias.body.body + body.body if not alias.epilogue else body.body + alias.body.body
            combined = N("block", body.span, body=parts)
            out: List[ir.Probe] = []
            for rhs in alias.points:
                rhs_opt = ProbePoint(rhs.parts, rhs.span)
                rhs_opt.optional, rhs_opt.cond = rhs.optional or pp.optional, pp.cond or rhs.cond
                out.extend(self.probe_point(rhs_opt, combined, span, depth + 1))
            return out
        try:
            sites = self.sites(pp)
        except Unrealisable as e:
            if pp.optional:
                self.notes.append(f"{pp.text()}: left out ({e.message})")
                return []
            raise self.err(e.message, pp.span, *e.hints) from None
        out = []
        for site in sites:
            for text in site.helpers:
                if text not in self.helpers_added:
                    self.helpers_added.add(text)
                    out.extend(self.helper_probes(text, pp.span))
            out.append(self.translate_probe(site, pp, body, span))
        return out

    def helper_probes(self, text: str, span: Span) -> List[ir.Probe]:
        """A tapset's helper probes (bpftrace text of this package), their maps noted."""
        from ..bt import parse_program

        helper = parse_program(text, origin="<tapset>")
        for name, decl in helper.maps.items():
            self.maps.setdefault(name, decl)
        for p in helper.probes:
            for ap in p.attach:
                ap.span = span
            _respan(p.actions, span)
            p.span, p.source, p.origin = span, self.src, self.origin
        return helper.probes

    def sites(self, pp: ProbePoint) -> List[Site]:
        parts = [(n, self.point_arg(a)) for n, a in pp.parts]
        names = [n for n, _a in parts]
        args = [a for _n, a in parts]
        text = pp.text()
        head = names[0]
        if head in ("begin", "end") and len(parts) == 1:
            return [Site([head.upper()], pp=text, ppfunc="")]
        if head in ("error", "never") and len(parts) == 1:
            # never: never runs (SystemTap uses it to type variables); error: undertow's run ends
            # at its first error, there is no error handler to run
            self.notes.append(f"{text}: never runs here")
            return []
        if head == "oneshot" and len(parts) == 1:  # runs once at the start, then the script exits
            site = Site(["BEGIN"], pp=text, ppfunc="")
            site.note = "oneshot: BEGIN, then exit()"
            site.optional = True
            return [site]
        if head == "timer" and len(parts) >= 2:
            return [self.timer(names, args, text)]
        if head == "kernel" and len(parts) >= 2 and names[1] == "function":
            return self.kernel_function(str(args[1]), names[2:], text, pp)
        if head == "kprobe" and len(parts) >= 2 and names[1] == "function" and isinstance(args[1], str):
            return self.kernel_function(str(args[1]), names[2:], text, pp)  # no DWARF: no $vars either
        if head == "module" and len(parts) >= 3 and names[1] == "function":
            return self.kernel_function(str(args[2]), names[3:], text, pp)
        if head == "kernel" and len(parts) >= 2 and names[1] == "statement":
            raise Unrealisable(f"{text}: statement probes need the kernel's DWARF line table, which undertow "
                               "does not read", ['kernel.function("F") probes the function\'s entry'])
        if head == "kernel" and len(parts) == 2 and names[1] == "trace":
            return self.kernel_trace(str(args[1]), text, pp)
        if head == "process" and len(parts) >= 2 and args[0] is not None:
            return self.process(args[0], names[1:], args[1:], text)
        if any(a is not None for a in args) and head not in ("syscall", "nd_syscall"):
            raise Unrealisable(f"unknown probe point '{text}'", ["undertow stap -l '*' lists the probe points"])
        got = realise(self.env, parts, text)
        if got is None:
            from ...errors import did_you_mean
            from .tapsets import FAMILIES

            hint = did_you_mean(text, [f.split("(")[0] for f in FAMILIES])
            raise Unrealisable(f"unknown probe point '{text}'", [hint or "undertow stap -l '*' lists the probe points"])
        return got

    def alias_for(self, pp: ProbePoint) -> Any:
        """The script's alias whose name is this probe point (``probe a.b = ...``), or None."""
        for al in self.s.aliases:
            for nm in al.names:
                if nm.parts == pp.parts:
                    return al
        return None

    def point_arg(self, a: Any) -> Any:
        if a is None or isinstance(a, (int, str)):
            return a
        # $1 / @1 in a probe point
        n = N("pos", a.span, index=a.value, string=a.kind == "atpos")
        return self.positional(n).e.value

    def timer(self, names: List[str], args: List[Any], text: str) -> Site:
        unit = names[1]
        if unit == "profile" and len(names) == 2:
            return Site(["profile:hz:100"], pp=text, ppfunc="", note="profile:hz:100 on each CPU")
        units = {"s": "s", "sec": "s", "ms": "ms", "msec": "ms", "us": "us", "usec": "us", "ns": "us", "nsec": "us",
                 "hz": "hz", "jiffies": "ms"}
        if unit not in units or not isinstance(args[1], int) or args[1] <= 0:
            raise Unrealisable(f"unknown timer '{text}'", ["timer.s(N), timer.ms(N), timer.us(N), timer.hz(N), "
                                                           "timer.jiffies(N), timer.profile"])
        n = args[1]
        if unit in ("ns", "nsec"):
            n = max(1, n // 1000)
        if unit == "jiffies":
            n = n * 4
        return Site([f"interval:{units[unit]}:{n}"], pp=text, ppfunc="", note=f"interval:{units[unit]}:{n}")

    def kernel_function(self, func: str, rest: List[str], text: str, pp: ProbePoint) -> List[Site]:
        if "@" in func:
            func, where = func.split("@", 1)
            if any(c in func for c in "*?["):
                # "*@net/socket.c": the functions of a source file, known from DWARF only
                raise Unrealisable(f"{text}: choosing functions by source file ({where}) needs the kernel's "
                                   "DWARF, which undertow does not read", ["name the functions: "
                                                                           'kernel.function("sock_*")'])
        if rest and rest[0] == "call":
            rest = rest[1:]
        if rest and rest[0] == "inline":
            raise Unrealisable(f"{text}: inline instances need DWARF")
        ret = rest == ["return"]
        if rest and not ret:
            raise Unrealisable(f"unknown probe point '{text}'")
        if not func or any(not (c.isascii() and (c.isalnum() or c in "_.*?[]")) for c in func):
            raise Unrealisable(f"'{func}' is not a kernel function name")
        if not any(c in func for c in "*?[") and self.env.has_function(func) is False:
            raise Unrealisable(f"this kernel has no function '{func}'")
        uses_params = self._uses_params(pp)
        if self.env.feature("kprobes") is False and not (uses_params and self.env.feature("fentry")):
            raise Unrealisable(f"{text} needs kprobes (CONFIG_KPROBES) or fentry, which this kernel does not "
                               "offer", ["a tapset probe point on tracepoints (syscall.*, netfilter.ip.*, vfs.*, "
                                         "kernel.trace(...)) may see the same thing"])
        if uses_params:
            spec = _ap("fexit" if ret else "fentry", func)
        else:
            spec = _ap("kretprobe" if ret else "kprobe", func)
        wild = any(c in func for c in "*?[")
        site = Site([spec], pp=text, ppfunc="\0func" if wild else func,  # a wildcard: the function hit
                    target=lambda n: "retval" if n == "return" and ret else f"args.{n}", note=spec.describe())
        if ret:
            espec = _ap("fentry" if uses_params else "kprobe", func)
            site.entry = Site([espec], pp=text, ppfunc=func, target=lambda n: f"args.{n}", note=espec.describe())
        return [site]

    def _target_names(self, pp: ProbePoint) -> set:
        """The ``$names`` the handlers of probe point ``pp`` read (not ``$$vars``)."""
        out = set()
        for p in self.s.probes:
            if pp in p.points:
                for node in self.walk(p.body):
                    if node.kind == "target" and not node.name.startswith("$"):
                        out.add(node.name)
        return out

    def _uses_params(self, pp: ProbePoint) -> bool:
        for p in self.s.probes:
            if pp in p.points:
                for node in self.walk(p.body):
                    if node.kind == "target" and node.name not in ("return",):
                        return True
        return False

    def kernel_trace(self, name: str, text: str, pp: Optional[ProbePoint] = None) -> List[Site]:
        """``kernel.trace("TP")``: the tracepoint (its format's fields as ``$field``), or, when
        the handler reads a ``$name`` that is an argument of the tracepoint's prototype (a
        ``struct task_struct *p``...), the BTF-typed raw tracepoint (tp_btf) with those
        arguments (their names from BTF's ``__probestub_<event>``, Linux 6.4+)."""
        used = self._target_names(pp) if pp is not None else set()
        if ":" in name:
            group, ev = name.split(":", 1)
            events = [(g, e) for g, e in self.env.events(ev) if g == group]
        else:
            events = self.env.events(name)
        if not events:
            raise Unrealisable(f"this kernel has no tracepoint '{name}'",
                               ["undertow list 'tracepoint:*NAME*' lists them"])
        out = []
        for g, e in events:
            fields = self.env.fields(g, e) or []
            names = {n for n, _t in fields}
            scalar = [n for n, t in fields if "[" not in t and "__data_loc" not in t]
            params = self.env.tp_params(e) if used - names else None
            # the typed tracepoint when the handler reads a prototype's argument (a name known
            # nowhere else stays unknown: an error where it is read, none under @defined)
            if params is not None and (used - names) & {n for n, _a in params}:
                idx = dict(params)  # the argument's name -> how the resolver names it
                out.append(Site([_ap("tp_btf", e)], pp=f'kernel.trace("{g}:{e}")', ppfunc=e,
                                target=lambda n, idx=idx: f"args.{idx[n]}" if n in idx else None,
                                note=f"tp_btf:{e} (the tracepoint's typed arguments: "
                                     f"{', '.join(n for n, _a in params)})"))
                continue
            out.append(Site([f"tracepoint:{g}:{e}"], pp=f'kernel.trace("{g}:{e}")', ppfunc=e,
                            target=lambda n, names=names: f"args.{n}" if n in names else None,
                            vars={"__args__": Var("args", ",".join(scalar))}, note=f"tracepoint:{g}:{e}"))
        return out

    def process(self, path: Any, names: List[str], args: List[Any], text: str) -> List[Site]:
        if not isinstance(path, str):
            raise Unrealisable(f"{text}: process probes need a path here (process(\"/bin/bash\").function(...))")
        if names[:1] == ["function"] and isinstance(args[0], str):
            ret = names[1:] == ["return"]
            spec = _ap("uretprobe" if ret else "uprobe", args[0], path)
            return [Site([spec], pp=text, ppfunc=args[0],
                         target=lambda n: "retval" if n == "return" and ret else None, note=spec.describe())]
        if names[:1] == ["mark"] and isinstance(args[0], str):
            spec = _ap("usdt", args[0], path)

            def target(n: str) -> Optional[str]:
                if n.startswith("arg") and n[3:].isdigit() and int(n[3:]) >= 1:
                    return f"arg{int(n[3:]) - 1}"
                return None
            return [Site([spec], pp=text, ppfunc=args[0], target=target, note=spec.describe())]
        raise Unrealisable(f"unknown probe point '{text}'")

    # -- handlers
    def translate_probe(self, site: Site, pp: ProbePoint, body: N, span: Span) -> ir.Probe:
        aps = [_attach(spec, pp.span) for spec in site.specs]
        ctx = _Probe(site, pp.span)
        actions: List[ir.Action] = []
        if site.prologue:
            actions.extend(_respan(bt_actions(site.prologue), pp.span))
        handler = self.block(body, ctx)
        # SystemTap's locals start as 0 or "": a local read on a path that did not assign it
        inits: List[ir.Action] = [ir.Assign(name, ir.Const("" if ty == "string" else 0).at(pp.span)).at(pp.span)
                                  for name, ty in ctx.locals.items() if ty in ("long", "string")
                                  and name.startswith("$") and not name.startswith(("$__key", "$__post"))]
        handler = inits + handler
        if site.guard:  # over the prologue's variables: after it, around the handler
            handler = [ir.If(_respan(bt_expr(site.guard), pp.span), handler).at(pp.span)]
        actions.extend(handler)
        if site.pp == "oneshot":
            actions.append(ir.Exit().at(pp.span))
        filt = None
        if pp.cond is not None:
            c = self.cond(pp.cond, ctx)
            filt = c if filt is None else ir.Binary("&&", filt, c).at(pp.span)
        name = ",".join(ap.describe() for ap in aps)
        return ir.Probe(aps, filt, actions, name=name, span=span, source=self.src, origin=self.origin)

    def block(self, n: N, ctx: _Probe) -> List[ir.Action]:
        out: List[ir.Action] = []
        stmts = n.body if n.kind == "block" else [n]
        for i, st in enumerate(stmts):
            got = self.stmt(st, ctx)
            if ctx.pending:
                out.extend(ctx.pending)
                ctx.pending = []
            out.extend(got)
            if ctx.fn_stack and i + 1 < len(stmts) and self.may_return(st):
                # a function's early return: the rest runs while the function has not returned
                done = f"$__{ctx.fn_stack[-1]}_done"
                rest = self.block(N("block", stmts[i + 1].span, body=stmts[i + 1:]), ctx)
                out.append(ir.If(ir.Binary("==", ir.Var(done).at(st.span), ir.Const(0)).at(st.span),
                                 rest).at(st.span))
                break
        return out

    def loop_body(self, body: N, ctx: _Probe) -> List[ir.Action]:
        """A loop's body; inside a function, a return in it also leaves the loop."""
        if ctx.fn_stack:
            ctx.fn_loops[-1] += 1
        try:
            return self.block(body, ctx)
        finally:
            if ctx.fn_stack:
                ctx.fn_loops[-1] -= 1

    def after_loop(self, n: N, ctx: _Probe) -> List[ir.Action]:
        """After an inner loop a function returned from: leave the outer loop too."""
        if ctx.fn_stack and ctx.fn_loops[-1] > 0 and self.may_return(n.body):
            done = f"$__{ctx.fn_stack[-1]}_done"
            return [ir.If(ir.Binary("!=", ir.Var(done).at(n.span), ir.Const(0)).at(n.span),
                          [ir.Break().at(n.span)]).at(n.span)]
        return []

    def may_return(self, n: N) -> bool:
        return any(x.kind == "return" for x in self.walk(n))

    def stmt(self, n: N, ctx: _Probe) -> List[ir.Action]:  # noqa: C901 - one case per statement
        k = n.kind
        if k == "block":
            return self.block(n, ctx)
        if k == "expr":
            return self.expr_stmt(n.expr, ctx)
        if k == "if":
            c = self.cond(n.cond, ctx)
            pre, ctx.pending = ctx.pending, []
            known = _const_truth(c)
            if known is not None:  # @defined(...) and constants: the dead branch is not translated
                taken = n.then if known else n.other
                return pre + (self.block(taken, ctx) if taken is not None else [])
            then = self.block(n.then, ctx)
            other = self.block(n.other, ctx) if n.other is not None else []
            return pre + [ir.If(c, then, other).at(n.span)]
        if k == "while":
            c = self.cond(n.cond, ctx)
            if ctx.pending:
                raise self.err("a function with statements in a loop condition is not supported", n.cond.span)
            return [ir.While(c, self.loop_body(n.body, ctx)).at(n.span)] + self.after_loop(n, ctx)
        if k == "for":
            out = self.expr_stmt(n.init, ctx) if n.init is not None else []
            c = self.cond(n.cond, ctx) if n.cond is not None else ir.Const(1).at(n.span)
            body = self.loop_body(n.body, ctx)
            if n.step is not None:
                # continue runs the step first (the loop's own continues: not those of inner loops)
                def with_step(acts: List[ir.Action]) -> List[ir.Action]:
                    res: List[ir.Action] = []
                    for a in acts:
                        if isinstance(a, ir.Continue):
                            res += self.expr_stmt(n.step, ctx)
                        elif isinstance(a, ir.If):
                            a.then, a.other = with_step(a.then), with_step(a.other)
                        res.append(a)
                    return res
                body = with_step(body)
                body += self.expr_stmt(n.step, ctx)
            return out + [ir.While(c, body).at(n.span)] + self.after_loop(n, ctx)
        if k == "foreach":
            raise self.err("foreach is not supported yet: BPF programs here do not walk a map", n.span,
                           "print the array whole with print-like statements at the end, or see docs/stap.md")
        if k == "break":
            return [ir.Break().at(n.span)]
        if k == "continue":
            return [ir.Continue().at(n.span)]
        if k == "next":
            return [ir.Return().at(n.span)]
        if k == "return":
            if not ctx.fn_stack:
                raise self.err("return outside a function", n.span, "'next' ends a probe's handler")
            return self.fn_return(n, ctx)
        if k == "delete":
            return self.delete(n, ctx)
        if k == "try":
            # SystemTap ends a handler at a failed read and runs catch; here a failed read gives
            # 0 (or "") and the handler goes on, so the body always completes
            self.notes.append("try/catch: the catch block never runs here (a failed read gives 0)")
            return self.block(n.body, ctx)
        raise self.err(f"unsupported statement '{k}'", n.span)

    def delete(self, n: N, ctx: _Probe) -> List[ir.Action]:
        t = n.target
        if t.kind == "name" and t.name in self.s.globals:
            if self.gtypes.get(t.name) == "stats":
                return [ir.MapOp("clear", m).at(n.span) for m in self.stat_maps(t.name)]
            self.note_map(t.name, "assign")
            return [ir.MapOp("clear", "@" + t.name).at(n.span)]
        if t.kind == "index" and t.name in self.s.globals and any(x.kind == "wild" for x in t.keys):
            if all(x.kind == "wild" for x in t.keys):  # a[*, *]: every element
                return self.delete(N("delete", n.span, target=N("name", t.span, name=t.name)), ctx)
            # a BPF program cannot walk a map: the keys given go to undertow's reader, which
            # deletes the matching elements when it reads the record (within its 20 ms poll)
            given = [self.value(x, ctx) for x in t.keys if x.kind != "wild"]
            for v, x in zip(given, [x for x in t.keys if x.kind != "wild"]):
                if isinstance(v.e, (Comp, Enum)):
                    v.e = self.flatten_string(v, x.span).e
            mask = "".join("*" if x.kind == "wild" else "k" for x in t.keys)
            maps = self.stat_maps(t.name) if self.gtypes.get(t.name) == "stats" else ["@" + t.name]
            if self.gtypes.get(t.name) != "stats":
                self.note_map(t.name, "assign")
            return [ir.ExprStmt(ir.Call("delete_slice", [ir.Const(m).at(n.span), ir.Const(mask).at(n.span)] +
                                        [ir.clone(v.e) for v in given]).at(n.span)).at(n.span) for m in maps]
        if t.kind == "index" and t.name in self.s.globals:
            keys = [self.value(x, ctx).e for x in t.keys]
            if self.gtypes.get(t.name) == "stats":
                return [ir.MapOp("delete", m, [ir.clone(k) for k in keys]).at(n.span) for m in self.stat_maps(t.name)]
            return [ir.MapOp("delete", "@" + t.name, keys).at(n.span)]
        if t.kind == "name":
            ty = ctx.locals.get(t.name, "long")
            return [ir.Assign("$" + t.name, ir.Const("" if ty == "string" else 0).at(n.span)).at(n.span)]
        raise self.err("delete takes a variable, an array or an array element", t.span)

    def expr_stmt(self, e: N, ctx: _Probe) -> List[ir.Action]:
        if e.kind == "assign":
            return self.assign(e, ctx)
        if e.kind == "incdec":
            return self.assign(N("assign", e.span, op=e.op + "=", target=e.target,
                                 value=N("lit", e.span, value=1), op_span=e.span), ctx)
        if e.kind == "call":
            got = self.call_stmt(e, ctx)
            if got is not None:
                return got
        if e.kind == "binary" and e.op in ("&&", "||"):
            # a && b as a statement: b (exit(), a printf...) runs when a holds, as if (a) b
            c = self.cond(e.left, ctx)
            pre, ctx.pending = ctx.pending, []
            if e.op == "||":
                c = ir.Unary("!", c).at(e.span)
            return pre + [ir.If(c, self.expr_stmt(e.right, ctx)).at(e.span)]
        v = self.value(e, ctx)
        if isinstance(v.e, ir.Const):
            return []
        return [ir.ExprStmt(v.e).at(e.span)] if isinstance(v.e, ir.Call) else []

    # -- assignments
    def assign(self, n: N, ctx: _Probe) -> List[ir.Action]:
        t, op = n.target, n.op
        if op == "<<<":
            return self.stat_update(n, ctx)
        if t.kind == "target":
            raise self.err("writing to a target variable needs guru mode", t.span,
                           "undertow only reads the kernel's memory")
        val = self.value(n.value, ctx)
        if t.kind == "name" and t.name not in self.s.globals:
            name = self.local_name(t.name, ctx)
            if isinstance(val.e, (Comp, Enum)) or op == ".=":
                if op == ".=":
                    prev = ctx.comps.get(name) or Comp([(None, "%s", [(ir.Var(name).at(t.span), "string")])]) \
                        if ctx.locals.get(name) == "string" else ctx.comps.get(name, Comp([(None, "", [])]))
                    ctx.comps[name] = _concat(self.as_comp(Val(prev, "comp")), self.as_comp(val))
                else:
                    ctx.comps[name] = val.e
                ctx.locals[name] = "comp"
                return []
            ctx.comps.pop(name, None)
            value = val.e
            if op != "=":
                value = ir.Binary(op[:-1], ir.Var(name).at(t.span), value).at(n.span)
            self.check_assign_type(name, ctx.locals.get(name), val, n)
            ctx.locals[name] = val.ty
            return [ir.Assign(name, value).at(n.span)]
        g = t.name
        if self.gtypes.get(g) == "stats":
            raise self.err(f"'{g}' holds statistics: add values with {g} <<< value", n.op_span)
        keys = self.keys_of(g, t.keys, ctx) if t.kind == "index" else []
        if op != "=" and g not in self.sum_only and any(not isinstance(k, (ir.Const, ir.Var, ir.Builtin))
                                                        for k in keys):
            # a[k] += v reads and writes a[k]: k is computed once, into a local
            hoisted = []
            for k in keys:
                if isinstance(k, (ir.Const, ir.Var, ir.Builtin)):
                    hoisted.append(k)
                    continue
                tmp = self.fresh("key")
                ctx.pending.append(ir.Assign(tmp, k).at(n.span))
                hoisted.append(ir.Var(tmp).at(n.span))
            keys = hoisted
        if isinstance(val.e, (Comp, Enum)):
            val = self.flatten_string(val, n.value.span)
        value = val.e
        if op == ".=":
            raise self.err("appending to a global string is not supported", n.op_span)
        if g in self.sum_only:
            if op == "-=":
                value = ir.Unary("-", value).at(n.span)
            self.note_map(g, "sum")
            return [ir.MapUpdate("@" + g, keys, "sum", value).at(n.span)]
        if op != "=":
            value = ir.Binary(op[:-1], ir.MapRead("@" + g, [ir.clone(k) for k in keys]).at(t.span), value).at(n.span)
        self.note_map(g, "assign")
        self.gtypes.setdefault(g, val.ty)
        return [ir.MapUpdate("@" + g, keys, "assign", value).at(n.span)]

    def check_assign_type(self, name: str, prev: Optional[str], val: Val, n: N) -> None:
        if prev in ("long", "string") and val.ty in ("long", "string") and prev != val.ty:
            raise self.err(f"type mismatch: {name[1:]} was {prev}, assigned a {val.ty}", n.value.span,
                           cls=TypeCheckError)

    def local_name(self, name: str, ctx: _Probe) -> str:
        if ctx.fn_stack:
            return f"$__{ctx.fn_stack[-1]}_{name}"
        return "$" + name

    def stat_maps(self, g: str) -> List[str]:
        aggs = self.stat_aggs.get(g) or {"count": ()}
        return [f"@{g}__{a}" for a in aggs]

    def stat_update(self, n: N, ctx: _Probe) -> List[ir.Action]:
        t = n.target
        if t.kind not in ("name", "index") or t.name not in self.s.globals:
            raise self.err("<<< adds to a global statistics variable", t.span,
                           "declare it: global NAME, then NAME <<< value")
        keys = [self.value(x, ctx).e for x in t.keys] if t.kind == "index" else []
        v = self.value(n.value, ctx)
        if v.ty != "long":
            raise self.err("statistics take numbers", n.value.span, cls=TypeCheckError)
        out: List[ir.Action] = []
        aggs = self.stat_aggs.get(t.name) or {"count": ()}
        self.stat_aggs.setdefault(t.name, dict(aggs))
        for a, extra in aggs.items():
            name = f"{t.name}__{a}"
            agg = _AGG[a]
            self.note_map(name, agg, extra)
            value = None if agg == "count" else ir.clone(v.e)
            if a == "sumsq":
                value = ir.Binary("*", ir.clone(v.e), ir.clone(v.e)).at(n.span)
            out.append(ir.MapUpdate("@" + name, [ir.clone(k) for k in keys], agg, value,
                                    [ir.Const(x).at(n.span) for x in extra]).at(n.span))
        return out

    # -- functions (inlined)
    def call_stmt(self, e: N, ctx: _Probe) -> Optional[List[ir.Action]]:
        name = e.name
        if name in ("printf", "print", "println", "printd", "printdln", "printk"):
            return self.printing(e, ctx)
        if name == "exit":
            return [ir.Exit().at(e.span)]
        if name == "system":
            raise self.err("system() runs a command from the script, as root here: undertow stap does not",
                           e.span, "print what the command needs and run it yourself, or use undertow run "
                           "--unsafe with bpftrace's system()")
        if name in ("print_backtrace", "print_ubacktrace", "print_stack", "print_ustack", "print_ubacktrace_brief"):
            b = ir.Builtin("ustack" if name.split("_")[1].startswith("u") else "kstack").at(e.span)
            return [ir.Printf("%s\n", [b]).at(e.span)]
        if name in ("error", "warn", "log"):
            v = self.value(e.args[0], ctx) if e.args else Val(ir.Const(""), "string")
            prefix = {"error": "ERROR: ", "warn": "WARNING: ", "log": ""}[name]
            acts = self.emit(Comp([(None, _lit_fmt(prefix), [])]), self.as_comp(v), e.span, newline=True)
            return acts + ([ir.Exit().at(e.span)] if name == "error" else [])
        if name == "ansi_set_color" and len(e.args) in (2, 3):  # the overloads of ansi_set_color2/3
            name = f"ansi_set_color{len(e.args)}"
        if name in ANSI:
            fmt, nargs = ANSI[name]
            if len(e.args) != nargs:
                raise self.err(f"{name}() takes {nargs} argument(s)", e.span)
            args = [self.value(a, ctx) for a in e.args]
            for a, an in zip(args, e.args):
                self.need_long(a, an, name)
            if name == "ansi_cursor_move":
                args.reverse()
            return [ir.Printf(fmt, [a.e for a in args]).at(e.span)]
        if name in self.s.functions:
            self.inline(e, ctx, want_value=False)
            return []
        return None

    def inline(self, e: N, ctx: _Probe, want_value: bool) -> Val:
        f = self.s.functions[e.name]
        if e.name in ctx.fn_names:
            raise self.err(f"recursive call of {e.name}() is not supported", e.span,
                           "BPF programs have no call stack for script functions here")
        if len(e.args) != len(f.params):
            raise self.err(f"{e.name}() takes {len(f.params)} argument(s), {len(e.args)} given", e.span)
        body = f.body.body
        # a function that is one 'return EXPR': the expression, arguments substituted
        self.counter += 1
        tag = f"{e.name}{self.counter}"
        args = [self.value(a, ctx) for a in e.args]
        ctx.fn_stack.append(tag)
        ctx.fn_names.append(e.name)
        ctx.fn_loops.append(0)
        saved = dict(ctx.locals), dict(ctx.comps)
        # the body's statements flush what they hoist; what the caller hoisted so far stays first
        outer, ctx.pending = ctx.pending, []
        try:
            acts: List[ir.Action] = []
            for (pname, ptype), v in zip(f.params, args):
                lname = f"$__{tag}_{pname}"
                if isinstance(v.e, (Comp, Enum)):
                    ctx.comps[lname] = v.e
                    ctx.locals[lname] = "comp"
                else:
                    ctx.locals[lname] = v.ty
                    acts.append(ir.Assign(lname, v.e).at(e.span))
            if len(body) == 1 and body[0].kind == "return" and body[0].value is not None:
                r = self.value(body[0].value, ctx)
                ctx.pending = outer + acts + ctx.pending  # the parameters, then what the expression hoisted
                outer = []
                return r
            ret_var = f"$__{tag}_ret"
            done = f"$__{tag}_done"
            stmts = self.block(f.body, ctx)
            rt = ctx.locals.get(ret_var, "long")
            if rt in ("long", "string"):
                acts.append(ir.Assign(ret_var, ir.Const(0 if rt == "long" else "").at(e.span)).at(e.span))
            if self.may_return(f.body):
                acts.append(ir.Assign(done, ir.Const(0).at(e.span)).at(e.span))
            ctx.pending = outer + acts + stmts
            outer = []
            if rt == "comp":
                return Val(ctx.comps[ret_var], "comp")
            return Val(ir.Var(ret_var).at(e.span), rt) if want_value else Val(ir.Const(0), "long")
        finally:
            ctx.fn_stack.pop()
            ctx.fn_names.pop()
            ctx.fn_loops.pop()
            ret_types = {k: v for k, v in ctx.locals.items() if k.startswith(f"$__{tag}_ret")}
            ret_comps = {k: v for k, v in ctx.comps.items() if k.startswith(f"$__{tag}_ret")}
            ctx.locals, ctx.comps = saved
            ctx.locals.update(ret_types)
            ctx.comps.update(ret_comps)

    def fn_return(self, n: N, ctx: _Probe) -> List[ir.Action]:
        """``return [e]`` in an inlined function: the value kept, the rest of the function
        skipped (``done``), and a loop it is in left."""
        tag = ctx.fn_stack[-1]
        ret_var = f"$__{tag}_ret"
        tail: List[ir.Action] = [ir.Assign(f"$__{tag}_done", ir.Const(1).at(n.span)).at(n.span)]
        if ctx.fn_loops[-1] > 0:
            tail.append(ir.Break().at(n.span))
        if n.value is None:
            return tail
        v = self.value(n.value, ctx)
        if isinstance(v.e, (Comp, Enum)):
            ctx.comps[ret_var] = v.e if isinstance(v.e, Comp) else self.as_comp(v)
            ctx.locals[ret_var] = "comp"
            return tail
        ctx.locals[ret_var] = v.ty
        return [ir.Assign(ret_var, v.e).at(n.span)] + tail

    # -- printing
    def printing(self, e: N, ctx: _Probe) -> List[ir.Action]:
        name = e.name
        if name in ("printf", "printk"):
            comp = self.format(e, ctx)
            return self.emit(comp, None, e.span)
        args = [self.value(a, ctx) for a in e.args]
        if name in ("printd", "printdln"):
            if not args:
                raise self.err(f"{name}() needs a delimiter", e.span)
            delim, args = args[0], args[1:]
            if not (isinstance(delim.e, ir.Const) and isinstance(delim.e.value, str)):
                raise self.err(f"{name}()'s delimiter must be a string literal", e.args[0].span)
            sep = _lit_fmt(str(delim.e.value))
        else:
            sep = ""
        if name in ("print", "println") and len(args) == 1 and args[0].ty == "hist":
            return [ir.MapOp("print", args[0].e).at(e.span)]
        comp = Comp([(None, "", [])])
        for i, a in enumerate(args):
            if a.ty == "hist":
                raise self.err("a histogram is printed alone: print(@hist_log(x))", e.args[i].span)
            if i:
                comp = _concat(comp, Comp([(None, sep, [])]))
            comp = _concat(comp, self.as_comp(a))
        return self.emit(comp, None, e.span, newline=name.endswith("ln"))

    def emit(self, a: Comp, b: Optional[Comp], span: Span, newline: bool = False) -> List[ir.Action]:
        comp = a if b is None else _concat(a, b)
        if newline:
            comp = _concat(comp, Comp([(None, "\n", [])]))
        variants = comp.variants
        if len(variants) > 64:
            raise self.err("this printf has too many cases (strings built from several sockaddrs?)", span)

        def one(v: Tuple[Optional[ir.Expr], str, List[Tuple[ir.Expr, str]]]) -> ir.Action:
            return ir.Printf(v[1], [x for x, _t in v[2]]).at(span)
        acts: List[ir.Action] = [one(variants[-1])]
        for v in reversed(variants[:-1]):
            if v[0] is None:
                acts = [one(v)]
                continue
            acts = [ir.If(v[0], [one(v)], acts).at(span)]
        return acts

    def format(self, e: N, ctx: _Probe) -> Comp:
        """printf/sprintf: the format with its arguments, as a Comp (bpftrace's conversions)."""
        if not e.args or e.args[0].kind != "lit" or not isinstance(e.args[0].value, str):
            raise self.err(f"{e.name}() needs a string literal as its format", e.args[0].span if e.args else e.span)
        fmt = e.args[0].value
        args = e.args[1:]
        comp = Comp([(None, "", [])])
        pos = 0
        ai = 0
        for start, end, flags, width, prec, conv in conversions(fmt, star=True, required=False):
            comp = _concat(comp, Comp([(None, _lit_fmt(fmt[pos:start]), [])]))
            pos = end
            if conv == "%":
                comp = _concat(comp, Comp([(None, "%%", [])]))
                continue
            if ai >= len(args):
                raise self.err(f"{e.name}: not enough arguments for the format", e.args[0].span,
                               "one argument per conversion; %% for a percent sign")
            if "*" in (width or "", prec or ""):
                raise self.err(f"{e.name}: '*' widths are not supported", e.args[0].span)
            a = args[ai]
            ai += 1
            v = self.value(a, ctx)
            spec = "%" + flags + (width or "") + ("." + prec if prec is not None else "")
            if conv in ("s",):
                if isinstance(v.e, (Comp, Enum)):
                    part = self.as_comp(v)
                    if width or prec:
                        part = self.flat_comp(v, a.span, spec + "s")
                    comp = _concat(comp, part)
                elif v.ty == "long" and not v.target:  # SystemTap prints a number for %s
                    comp = _concat(comp, Comp([(None, spec + "d", [(v.e, "long")])]))
                else:
                    comp = _concat(comp, Comp([(None, spec + "s", [(v.e, "string")])]))
                continue
            if conv in ("d", "i", "u", "x", "X", "o", "c", "p"):
                if v.ty != "long":
                    raise self.err(f"{e.name}: %{conv} needs a number, this is a string", a.span,
                                   "use %s for strings", cls=TypeCheckError)
                c = "x" if conv == "p" else conv
                sp = ("%#" + spec[1:] if conv == "p" and "#" not in flags else spec)
                comp = _concat(comp, Comp([(None, sp + c, [(v.e, "long")])]))
                continue
            raise self.err(f"{e.name}: conversion '%{conv}' is not supported", e.args[0].span,
                           "conversions: %d %i %u %x %X %o %c %s %p %%")
        comp = _concat(comp, Comp([(None, _lit_fmt(fmt[pos:]), [])]))
        if ai < len(args):
            raise self.err(f"{e.name}: too many arguments for the format", args[ai].span)
        return comp

    def as_comp(self, v: Val) -> Comp:
        if isinstance(v.e, Comp):
            return v.e
        if isinstance(v.e, Enum):
            return Comp([(None, "%s", [(self.enum_string(v.e), "string")])])
        if v.ty == "long":
            return Comp([(None, "%d", [(v.e, "long")])])
        if isinstance(v.e, ir.Const) and isinstance(v.e.value, str):
            return Comp([(None, _lit_fmt(v.e.value), [])])
        return Comp([(None, "%s", [(v.e, "string")])])

    def flat_comp(self, v: Val, span: Optional[Span], spec: str) -> Comp:
        if isinstance(v.e, Enum):
            return Comp([(None, spec, [(self.enum_string(v.e), "string")])])
        raise self.err("a string built at run time cannot be padded (%-20s)", span, "print it with %s")

    def flatten_string(self, v: Val, span: Optional[Span]) -> Val:
        if isinstance(v.e, Enum):
            return Val(self.enum_string(v.e), "string")
        comp = v.e
        if len(comp.variants) == 1 and comp.variants[0][1] == "%s" and comp.variants[0][0] is None:
            return Val(comp.variants[0][2][0][0], "string")
        raise self.err("a string built at run time (sprintf, '.', argstr) can only be printed here", span,
                       "print it where it is made: printf(\"%s\", ...)")

    def enum_string(self, en: Enum) -> ir.Expr:
        out: ir.Expr = ir.Const("UNKNOWN")
        for code, name in sorted(en.names.items(), reverse=True):
            out = ir.Ternary(ir.Binary("==", ir.clone(en.expr), ir.Const(code)), ir.Const(name), out)
        return out

    # -- expressions
    def cond(self, n: N, ctx: _Probe) -> ir.Expr:
        v = self.value(n, ctx)
        if isinstance(v.e, (Comp, Enum)):
            raise self.err("a string is not a condition", n.span, cls=TypeCheckError)
        if v.ty == "string":
            return ir.Binary("!=", v.e, ir.Const("")).at(n.span)
        return v.e

    def value(self, n: N, ctx: _Probe) -> Val:  # noqa: C901 - one case per expression
        k = n.kind
        if k == "lit":
            return Val(ir.Const(n.value).at(n.span), "string" if isinstance(n.value, str) else "long")
        if k == "pos":
            return self.positional(n)
        if k == "name":
            return self.name(n, ctx)
        if k == "index":
            return self.index(n, ctx)
        if k == "target":
            return self.target(n, ctx)
        if k in ("member", "subscript"):
            return self.target_chain(n, ctx)
        if k == "call":
            return self.call(n, ctx)
        if k == "at":
            return self.at(n, ctx)
        if k == "unary":
            v = self.value(n.expr, ctx)
            self.need_long(v, n.expr, n.op)
            return Val(ir.Unary(n.op, v.e).at(n.span), "long")
        if k == "binary":
            return self.binary(n, ctx)
        if k == "ternary":
            c = self.cond(n.cond, ctx)
            a, b = self.value(n.then, ctx), self.value(n.other, ctx)
            if isinstance(a.e, (Comp, Enum)) or isinstance(b.e, (Comp, Enum)):
                ca, cb = self.as_comp(a), self.as_comp(b)
                return Val(Comp([(ir.Binary("&&", c, v[0]) if v[0] is not None else c, v[1], v[2])
                                 for v in ca.variants] + cb.variants), "comp")
            if a.ty != b.ty:
                raise self.err(f"type mismatch: {a.ty} and {b.ty} in ?:", n.span, cls=TypeCheckError)
            return Val(ir.Ternary(c, a.e, b.e).at(n.span), a.ty)
        if k == "in":
            if n.array not in self.s.globals:
                raise self.err(f"'{n.array}' is not a global array", n.array_span)
            keys = self.keys_of(n.array, n.keys, ctx)
            ty = self.gtypes.get(n.array, "long")
            m = f"@{n.array}" if ty != "stats" else self.stat_maps(n.array)[0]
            if ty != "stats" and not self.written.get(n.array):
                return Val(ir.Const(0).at(n.span), "long")  # never written: never holds anything
            if ty != "stats":
                self.note_map(n.array, "assign")  # written only by a handler run here: still a map
            # membership as "the element is not zero (not empty)": a missing key reads as that
            empty = ir.Const("" if ty == "string" else 0)
            return Val(ir.Binary("!=", ir.MapRead(m, keys).at(n.span), empty).at(n.span), "long")
        if k == "assign":
            acts = self.assign(n, ctx)
            ctx.pending.extend(acts)
            return self.value(n.target, ctx)
        if k == "incdec":
            t = n.target
            before = self.value(t, ctx) if n.post else None
            if n.post:
                tmp = self.fresh("post")
                ctx.pending.append(ir.Assign(tmp, before.e).at(n.span))
            ctx.pending.extend(self.expr_stmt(N("incdec", n.span, op=n.op, target=t, post=n.post), ctx))
            if n.post:
                return Val(ir.Var(tmp).at(n.span), "long")
            return self.value(t, ctx)
        if k == "tuple":
            raise self.err("a key list is only used with 'in': [a, b] in array", n.span)
        if k == "wild":
            raise self.err("'*' (a slice) is only used in delete a[k, *] here", n.span)
        if k == "addr":
            raise self.err("& (address of) is not supported", n.span)
        raise self.err(f"unsupported expression '{k}'", n.span)

    def fresh(self, what: str) -> str:
        self.counter += 1
        return f"$__{what}{self.counter}"

    def need_long(self, v: Val, n: N, op: str) -> None:
        if v.ty != "long" or isinstance(v.e, (Comp, Enum)):
            raise self.err(f"'{op}' needs numbers, this is a string", n.span, cls=TypeCheckError)

    def binary(self, n: N, ctx: _Probe) -> Val:
        op = n.op
        a, b = self.value(n.left, ctx), self.value(n.right, ctx)
        if op == ".":
            return Val(_concat(self.as_comp(a), self.as_comp(b)), "comp")
        if op in ("==", "!="):
            if isinstance(a.e, ir.Const) and isinstance(b.e, ir.Const) and a.ty == b.ty:
                same = a.e.value == b.e.value  # both known here (a global never written, a literal)
                return Val(ir.Const(int(same if op == "==" else not same)).at(n.span), "long")
            for x, y in ((a, b), (b, a)):
                raw = getattr(x, "raw", None)
                if raw is not None and isinstance(y.e, ir.Const) and isinstance(y.e.value, str):
                    packed = _ipv4(y.e.value)
                    if packed is None:  # "" or not an address: never equal
                        return Val(ir.Const(int(op == "!=")).at(n.span), "long")
                    return Val(ir.Binary(op, raw, ir.Const(packed)).at(n.span), "long")
                if isinstance(x.e, Comp) and isinstance(y.e, ir.Const) and isinstance(y.e.value, str):
                    cmp = self.comp_equals(x.e, y.e.value, n)
                    return Val(cmp if op == "==" else ir.Unary("!", cmp).at(n.span), "long")
                if isinstance(x.e, Enum) and isinstance(y.e, ir.Const) and isinstance(y.e.value, str):
                    codes = [c for c, nm in x.e.names.items() if nm == y.e.value]
                    cmp = ir.Binary("==", x.e.expr, ir.Const(codes[0] if codes else -1)).at(n.span)
                    return Val(cmp if op == "==" else ir.Unary("!", cmp).at(n.span), "long")
        if op in ("=~", "!~"):
            return self.regex(n, a, b)
        for v, side in ((a, n.left), (b, n.right)):
            if isinstance(v.e, Enum):
                v.e, v.ty = self.enum_string(v.e), "string"
            elif isinstance(v.e, Comp):
                raise self.err("a string built at run time can only be printed here", side.span,
                               "compare its parts instead")
        if a.ty == "string" or b.ty == "string":
            if a.ty != b.ty:
                raise self.err(f"type mismatch: {a.ty} {op} {b.ty}", n.op_span, cls=TypeCheckError)
            if op not in ("==", "!=", "<", ">", "<=", ">="):
                raise self.err(f"'{op}' needs numbers; strings join with '.'", n.op_span, cls=TypeCheckError)
            if op not in ("==", "!="):
                raise self.err("ordering strings (<, >) is not supported", n.op_span)
            return Val(ir.Binary(op, a.e, b.e).at(n.span), "long")
        return Val(ir.Binary(op, a.e, b.e).at(n.span), "long")

    def comp_equals(self, comp: Comp, text: str, n: N) -> ir.Expr:
        """A string built from variants (``uaddr_ip``: the address of whichever family the
        sockaddr has) equal to a literal: each variant's condition and, for a variant that is
        an IPv4 address, the address compared as a number; a fixed text compared here."""
        out: ir.Expr = ir.Const(0).at(n.span)
        taken: Optional[ir.Expr] = None  # "an earlier variant's condition held"
        for cond, fmt, args in comp.variants:
            if not args and "%" not in fmt.replace("%%", ""):
                same: Optional[ir.Expr] = ir.Const(int(fmt.replace("%%", "%") == text)).at(n.span)
            elif fmt == "%s" and len(args) == 1 and isinstance(args[0][0], ir.Call) and \
                    args[0][0].name == "ntop" and isinstance(args[0][0].args[0], ir.Const):
                fam = args[0][0].args[0].value
                packed = _ipv4(text)
                if fam == 2 and packed is not None:
                    same = ir.Binary("==", ir.clone(args[0][0].args[1]), ir.Const(packed)).at(n.span)
                elif fam == 2 or ":" not in text:
                    same = ir.Const(0).at(n.span)  # not an IPv4 address / an IPv6 one: never equal
                else:
                    raise self.err("comparing an IPv6 address with text is not supported", n.span,
                                   "compare the IPv4 one, or print it")
            elif fmt == ":".join(["%04x"] * 8) and len(args) == 8:
                # an IPv6 address as the kernel's %pI6 prints it (uaddr_ip): equal only to that
                # exact text, as SystemTap compares the strings
                if re.fullmatch(r"(?:[0-9a-f]{4}:){7}[0-9a-f]{4}", text):
                    same = ir.Const(1).at(n.span)
                    for (e, _t), group in zip(args, text.split(":")):
                        same = ir.Binary("&&", same, ir.Binary("==", ir.clone(e), ir.Const(int(group, 16)))
                                         .at(n.span)).at(n.span)
                else:
                    same = ir.Const(0).at(n.span)
            else:
                raise self.err("a string built at run time can only be printed here", n.span,
                               "compare its parts instead")
            here = same if cond is None else ir.Binary("&&", ir.clone(cond), same).at(n.span)
            if taken is not None:
                here = ir.Binary("&&", ir.Unary("!", ir.clone(taken)).at(n.span), here).at(n.span)
            out = ir.Binary("||", out, here).at(n.span)
            if cond is None:
                break
            taken = cond if taken is None else ir.Binary("||", taken, ir.clone(cond)).at(n.span)
        return out

    def regex(self, n: N, a: Val, b: Val) -> Val:
        """``s =~ "ERE"``: a search of the POSIX extended regular expression (a literal, as
        SystemTap needs it at translation); a tapset name (``uaddr_af``) is matched here for
        each of its values, a string in BPF by a DFA walked over its bytes (lang/regex.py)."""
        from ..regex import RegexError, compile_dfa, to_python

        if not (isinstance(b.e, ir.Const) and isinstance(b.e.value, str)):
            raise self.err(f"the right of '{n.op}' must be a regular expression literal", n.right.span,
                           'filename =~ "\\.(gz|xz)$"')
        pat = b.e.value
        try:
            rx = to_python(pat)
            dfa = compile_dfa(pat)
        except RegexError as e:
            raise self.err(f"bad regular expression: {e.msg} (at offset {e.pos})", n.right.span) from None
        neg = n.op == "!~"
        if isinstance(a.e, Enum):
            codes = [c for c, nm in a.e.names.items() if rx.search(nm.encode())]
            out: ir.Expr = ir.Const(0).at(n.span)
            for c in codes:
                out = ir.Binary("||", out, ir.Binary("==", ir.clone(a.e.expr), ir.Const(c)).at(n.span)).at(n.span)
            return Val(ir.Unary("!", out).at(n.span) if neg else out, "long")
        if isinstance(a.e, Comp):
            a = self.flatten_string(a, n.left.span)
        if a.ty != "string":
            raise self.err(f"'{n.op}' matches a string, this is a number", n.left.span, cls=TypeCheckError)
        if isinstance(a.e, ir.Const) and isinstance(a.e.value, str):
            hit = dfa.run(a.e.value.encode("utf-8", "surrogateescape"))
            return Val(ir.Const(int(hit != neg)).at(n.span), "long")
        m = ir.Call("regex_match", [a.e, ir.Const(pat).at(n.right.span)]).at(n.span)
        return Val(ir.Unary("!", m).at(n.span) if neg else m, "long")

    def positional(self, n: N) -> Val:
        k = n.index
        params = self.opts.params
        if k == -1:
            return Val(ir.Const(len(params)).at(n.span), "long")
        if k < 1 or k > len(params):
            raise self.err(f"command line argument index {k} out of range [1-{len(params)}]", n.span,
                           "give the script's arguments after its file: undertow stap FILE ARG...")
        text = params[k - 1]
        if n.string:
            return Val(ir.Const(text).at(n.span), "string")
        from ..bt.language import c_integer

        v = c_integer(text)
        if v is None:
            raise self.err(f"${k} is '{text}', not a number", n.span, f"@{k} is the argument as a string")
        return Val(ir.Const(v).at(n.span), "long")

    def name(self, n: N, ctx: _Probe) -> Val:
        nm = n.name
        lname = self.local_name(nm, ctx)
        if lname in ctx.locals and nm not in self.s.globals:
            ty = ctx.locals[lname]
            if ty == "comp":
                c = ctx.comps[lname]
                return Val(c, "comp")
            return Val(ir.Var(lname).at(n.span), ty)
        if nm in self.s.globals:
            ty = self.gtypes.get(nm, "long")
            if ty == "stats":
                raise self.err(f"'{nm}' holds statistics: read them with @count({nm}), @avg({nm})...", n.span)
            g = self.s.globals[nm]
            if not self.written.get(nm):
                v = self.const_value(g.init) if g.init is not None else ("" if ty == "string" else 0)
                return Val(ir.Const(v).at(n.span), ty)
            self.note_map(nm, "assign")
            return Val(ir.MapRead("@" + nm, []).at(n.span), ty)
        var = ctx.site.vars.get(nm) if not nm.startswith("__") else None
        if var is not None:
            return self.tapset_var(var, n.span)
        entry = ctx.site.entry
        if entry is not None and not nm.startswith("__") and nm in entry.vars and not ctx.fn_stack:
            return self.entry_value(n, ctx, n.span)  # a variable of the entry in a return: its value there
        if nm == "argc":  # the argv tapset: the script's arguments
            return Val(ir.Const(len(self.opts.params)).at(n.span), "long")
        if nm.startswith("argv_") and nm[5:].isdigit():
            k = int(nm[5:])
            arg = self.opts.params[k - 1] if 1 <= k <= len(self.opts.params) else ""
            return Val(ir.Const(arg).at(n.span), "string")
        if ctx.fn_stack:
            raise self.err(f"unknown variable '{nm}' in function", n.span)
        hint = ""
        if ctx.site.vars:
            from ...errors import did_you_mean

            hint = did_you_mean(nm, ctx.site.vars) or ("this probe point's variables: " + ", ".join(sorted(ctx.site.vars)))
        raise self.err(f"unknown variable '{nm}' (read before it is assigned)", n.span, hint)

    def tapset_var(self, var: Var, span: Span) -> Val:
        if var.ty == "comp":
            out = []
            for cond, fmt, exprs in var.variants or []:
                c = _respan(bt_expr(cond), span) if cond else None
                out.append((c, fmt, [(_respan(bt_expr(x), span), "long") for x in exprs]))
            return Val(Comp(out), "comp")
        if var.ty == "enum":
            return Val(Enum(_respan(bt_expr(var.expr), span), var.names or {}), "enum")
        if var.ty == "ip":  # an IPv4 address: shown as text, compared with "a.b.c.d" as a number
            raw = _respan(bt_expr(var.expr), span)
            v = Val(ir.Call("ntop", [ir.Const(2).at(span), raw]).at(span), "string")
            v.raw = ir.clone(raw)
            return v
        if var.ty == "retstr":  # a negative return is an errno: its name beside it
            import errno

            ret = _respan(bt_expr(var.expr), span)
            if not _ERRNO_NAMES:
                _ERRNO_NAMES.update(errno.errorcode)
            m = self.name_table(_ERRNO_NAMES, span)
            neg = ir.Binary("<", ir.clone(ret), ir.Const(0)).at(span)
            name = ir.MapRead(m, [ir.Unary("-", ir.clone(ret)).at(span)]).at(span)
            return Val(Comp([(neg, "%d (%s)", [(ir.clone(ret), "long"), (name, "string")]),
                             (None, "%d", [(ret, "long")])]), "comp")
        if var.ty == "table":  # a name from a number, through a map BEGIN fills
            m = self.name_table(var.names or {}, span)
            return Val(ir.MapRead(m, [_respan(bt_expr(var.expr), span)]).at(span), "string")
        return Val(_respan(bt_expr(var.expr), span), var.ty)

    def name_table(self, names: Dict[int, str], span: Span) -> str:
        """A map number -> name, filled by a BEGIN probe (one per table)."""
        key = id(names)
        got = self.tables.get(key)
        if got is not None:
            return got
        name = f"@__names{len(self.tables) + 1}"
        self.tables[key] = name
        self.note_map(name[1:], "assign")
        acts: List[ir.Action] = [ir.MapUpdate(name, [ir.Const(nr).at(span)], "assign", ir.Const(text).at(span)).at(span)
                                 for nr, text in sorted(names.items())]
        self.table_probes.append(ir.Probe([ir.AttachPoint("begin")], None, acts, name="begin", span=span,
                                          source=self.src, origin=self.origin))
        return name

    def index(self, n: N, ctx: _Probe) -> Val:
        if n.name not in self.s.globals:
            raise self.err(f"'{n.name}' is not a global array", n.name_span, f"declare it: global {n.name}")
        if self.gtypes.get(n.name) == "stats":
            raise self.err(f"'{n.name}' holds statistics: read them with @count({n.name}[...])...", n.span)
        keys = self.keys_of(n.name, n.keys, ctx)
        self.note_map(n.name, "assign")
        return Val(ir.MapRead("@" + n.name, keys).at(n.span), self.gtypes.get(n.name, "long"))

    def keys_of(self, g: str, nodes: List[N], ctx: _Probe) -> List[ir.Expr]:
        """An array's keys as IR; their types are noted (the typing probe, :meth:`typing_probe`)."""
        keys, types = [], []
        for x in nodes:
            v = self.value(x, ctx)
            if isinstance(v.e, (Comp, Enum)):
                v = self.flatten_string(v, x.span)
            keys.append(v.e)
            types.append(v.ty)
        self.key_types.setdefault(g, types)
        return keys

    def typing_probe(self) -> Optional[ir.Probe]:
        """A begin probe whose never-run branch assigns each array of strings once, first in the
        program: the resolver types a map from its first update in the program's order, and a
        handler may test ``k in a`` (or read ``a[k]``) before its own assignment."""
        acts: List[ir.Action] = []
        for g in self.s.globals:
            if self.gtypes.get(g) != "string" or not self.written.get(g) or g in self.sum_only \
                    or "@" + g not in self.maps:
                continue
            keys = [ir.Const("" if ty == "string" else 0) for ty in self.key_types.get(g, [])]
            acts.append(ir.MapUpdate("@" + g, keys, "assign", ir.Const("")))
        for g in sorted(self.here_written):  # written only by handlers run here: typed for the probes
            if "@" + g not in self.maps or self.gtypes.get(g) == "stats" or g in self.sum_only or \
                    (self.gtypes.get(g) == "string" and self.written.get(g)):
                continue
            keys = [ir.Const("" if ty == "string" else 0) for ty in self.key_types.get(g, [])]
            acts.append(ir.MapUpdate("@" + g, keys, "assign", ir.Const("" if self.gtypes.get(g) == "string" else 0)))
        for m in self.entry_strings:  # string values kept at an entry, read by a return probe first
            acts.append(ir.MapUpdate(m, [ir.Const(0)], "assign", ir.Const("")))
        if not acts:
            return None
        return ir.Probe([ir.AttachPoint("begin")], None, [ir.If(ir.Const(0), acts)], name="begin",
                        source=self.src, origin=self.origin)

    def target(self, n: N, ctx: _Probe) -> Val:
        nm = n.name
        if nm.startswith("$"):  # $$parms, $$vars, $$parms$ ...: "name=value" of each parameter
            spec = ctx.site.vars.get("__args__")
            if nm.rstrip("$") not in ("$parms", "$vars", "$locals", "$return") or spec is None:
                raise self.err(f"${nm} is not supported at {ctx.site.pp}", n.span,
                               "$$parms and $$vars are known at system call and tracepoint probe points")
            if nm.rstrip("$") == "$locals":
                return Val(Comp([(None, "", [])]), "comp")
            if nm.rstrip("$") == "$return":
                t = ctx.site.target("return") if ctx.site.target else None
                if t is None:
                    raise self.err("$$return is only known in a .return probe", n.span)
                return Val(Comp([(None, "return=%#x", [(_respan(bt_expr(t), n.span), "long")])]), "comp")
            parts, args = [], []
            for f in (spec.expr.split(",") if spec.expr else []):
                parts.append(f"{f}=%#x")
                args.append((_respan(bt_expr(f"(uint64)args.{f}"), n.span), "long"))
            return Val(Comp([(None, " ".join(parts), args)]), "comp")
        t = ctx.site.target(nm) if ctx.site.target is not None else None
        entry = ctx.site.entry
        if t is None and entry is not None and entry.target is not None and entry.target(nm) is not None:
            return self.entry_value(n, ctx, n.span)  # a parameter in a return: its value at the entry
        if t is None:
            raise self.err(f"unknown target variable ${nm} at {ctx.site.pp}", n.span,
                           "target variables are the probed function's parameters or the tracepoint's fields")
        return _target_val(_respan(bt_expr(t), n.span))

    def entry_value(self, e: N, ctx: _Probe, span: Span) -> Val:
        """``@entry(e)`` in a return probe: ``e`` evaluated by a probe on the entry, kept per
        thread in a map, read (and the entry's value is the last one of this thread)."""
        entry = ctx.site.entry
        if entry is None:
            raise self.err("@entry(...) needs a .return probe point with an entry", span,
                           "kernel.function(\"f\").return and syscall.NAME.return have one")
        self.counter += 1
        name = f"__entry{self.counter}"
        ectx = _Probe(entry, ctx.span)
        acts: List[ir.Action] = _respan(bt_actions(entry.prologue), span) if entry.prologue else []
        v = self.value(e, ectx)
        if isinstance(v.e, (Comp, Enum)):
            v = self.flatten_string(v, e.span)
        acts += ectx.pending
        self.note_map(name, "assign")
        if v.ty == "string":
            self.entry_strings.append("@" + name)
        acts.append(ir.MapUpdate("@" + name, [ir.Builtin("tid").at(span)], "assign", v.e).at(span))
        aps = [_attach(spec, span) for spec in entry.specs]
        self.extra_probes.append(ir.Probe(aps, None, acts, name=",".join(ap.describe() for ap in aps), span=span,
                                          source=self.src, origin=self.origin))
        return Val(ir.MapRead("@" + name, [ir.Builtin("tid").at(span)]).at(span), v.ty)

    def target_chain(self, n: N, ctx: _Probe) -> Val:
        if n.kind == "member" and n.base.kind in ("name", "call", "index"):
            base = self.value(n.base, ctx)
            if base.ty != "long" or isinstance(base.e, (Comp, Enum)):
                raise self.err("'->' needs a pointer", n.base.span, cls=TypeCheckError)
            return _target_val(ir.Member(base.e, n.name, arrow=True).at(n.span))
        if n.kind == "member":
            base = self.target_chain(n.base, ctx) if n.base.kind in ("member", "subscript") else self.value(n.base, ctx)
            return _target_val(ir.Member(base.e, n.name, arrow=True).at(n.span))
        base = self.target_chain(n.base, ctx) if n.base.kind in ("member", "subscript") else self.value(n.base, ctx)
        idx = self.value(n.index, ctx)
        return _target_val(ir.Index(base.e, idx.e).at(n.span))

    def at(self, n: N, ctx: _Probe) -> Val:
        nm = n.name
        if nm in _STATS:
            a = n.args[0] if n.args else None
            if a is None or a.kind not in ("name", "index") or a.name not in self.s.globals:
                raise self.err(f"@{nm} takes a statistics variable", n.span)
            keys = [self.value(x, ctx).e for x in a.keys] if a.kind == "index" else []
            m = f"@{a.name}__{nm}"
            if nm == "variance":  # (n * sum of squares - sum * sum) / (n * (n - 1)), 0 below two values
                def rd(agg: str) -> ir.Expr:
                    return ir.MapRead(f"@{a.name}__{agg}", [ir.clone(k) for k in keys]).at(n.span)
                num = ir.Binary("-", ir.Binary("*", rd("count"), rd("sumsq")).at(n.span),
                                ir.Binary("*", rd("sum"), rd("sum")).at(n.span)).at(n.span)
                den = ir.Binary("*", rd("count"), ir.Binary("-", rd("count"), ir.Const(1)).at(n.span)).at(n.span)
                return Val(ir.Ternary(ir.Binary(">", rd("count"), ir.Const(1)).at(n.span),
                                      ir.Binary("/", num, den).at(n.span), ir.Const(0)).at(n.span), "long")
            if nm in ("hist_log", "hist_linear"):
                if keys:
                    raise self.err("one element's histogram is printed by an end or timer handler that "
                                   "walks the array (foreach)", n.span)
                return Val(m, "hist")
            return Val(ir.MapRead(m, keys).at(n.span), "long")
        if nm == "cast":
            if len(n.args) < 2 or n.args[1].kind != "lit" or not isinstance(n.args[1].value, str):
                raise self.err('@cast(pointer, "type") needs a type name', n.span)
            p = self.value(n.args[0], ctx)
            ty = n.args[1].value.strip()
            if not ty.endswith("*"):
                ty += " *"
            if not ty.startswith(("struct ", "union ")) and " " not in ty.strip(" *"):
                ty = "struct " + ty
            return _target_val(ir.Cast(ty, p.e).at(n.span))
        if nm == "defined":
            try:
                saved = list(ctx.pending)
                self.value(n.args[0], ctx)
                ctx.pending = saved
                return Val(ir.Const(1).at(n.span), "long")
            except SourceError:
                return Val(ir.Const(0).at(n.span), "long")
        if nm == "choose_defined":  # @choose_defined(a, b): a where it is defined, else b
            if len(n.args) != 2:
                raise self.err("@choose_defined(a, b) takes two expressions", n.span)
            saved = list(ctx.pending)
            try:
                return self.value(n.args[0], ctx)
            except SourceError:
                ctx.pending = saved
                return self.value(n.args[1], ctx)
        if nm == "entry":
            if len(n.args) != 1:
                raise self.err("@entry(expression) takes one expression", n.span)
            return self.entry_value(n.args[0], ctx, n.span)
        raise self.err(f"unknown operator @{nm}", n.name_span)

    def call(self, n: N, ctx: _Probe) -> Val:
        name = n.name
        if name in self.s.functions:
            return self.inline(n, ctx, want_value=True)
        if name in ("sprintf",):
            return Val(self.format(n, ctx), "comp")
        if name in ("sprint", "sprintln"):
            comp = self.as_comp(self.value(n.args[0], ctx))
            if name == "sprintln":
                comp = _concat(comp, Comp([(None, "\n", [])]))
            return Val(comp, "comp")
        f = _FUNCS.get(name)
        if f is None:
            if name in ("printf", "print", "println", "exit", "printd", "printdln", "error", "warn"):
                raise self.err(f"{name}() has no value", n.span)
            from ...errors import did_you_mean

            raise self.err(f"unknown function '{name}'", n.name_span,
                           did_you_mean(name, list(_FUNCS) + list(self.s.functions)) or "see docs/stap.md for the "
                           "tapset functions undertow knows")
        nargs, ty, how = f
        if len(n.args) not in (nargs if isinstance(nargs, tuple) else (nargs,)):
            raise self.err(f"{name}() takes {nargs} argument(s), {len(n.args)} given", n.span)
        args = [self.value(a, ctx) for a in n.args]
        for a, an in zip(args, n.args):
            if isinstance(a.e, (Comp, Enum)):
                a.e, a.ty = self.flatten_string(a, an.span).e, "string"
        if callable(how):
            return how(self, n, ctx, args)
        e = _respan(bt_expr(how), n.span)
        if args:
            e = _substitute(e, [a.e for a in args])
        return Val(e, ty)


#: errno -> name (errno.errorcode: this system's <errno.h>), filled on first use
_ERRNO_NAMES: Dict[int, str] = {}


def _const_truth(e: ir.Expr) -> Optional[bool]:
    """Whether a condition is known at translation (a number, ``!`` of one), else None."""
    if isinstance(e, ir.Const) and isinstance(e.value, int):
        return e.value != 0
    if isinstance(e, ir.Unary) and e.op == "!":
        inner = _const_truth(e.expr)
        return None if inner is None else not inner
    return None


def _ipv4(text: str) -> Optional[int]:
    """``a.b.c.d`` as the 32-bit value a load of the address (network order) gives on this
    CPU, or None."""
    import ipaddress
    import sys

    try:
        packed = ipaddress.IPv4Address(text.strip()).packed
    except ValueError:
        return None
    return int.from_bytes(packed, sys.byteorder)


def _ap(kind: str, target: str, obj: str = "") -> ir.AttachPoint:
    """An attach point for a name the script gives (a function, a USDT probe, a file): made
    here, never through attach-spec text (a ':' in a name is then only part of the name)."""
    ap = ir.AttachPoint(kind, target=target, obj=obj, wildcard=any(c in target for c in "*?["))
    return ap


def _target_val(e: ir.Expr) -> Val:
    v = Val(e, "long")
    v.target = True
    return v


def _spec_kind(spec: Any) -> str:
    """The probe kind of a site's spec (an AttachPoint or spec text)."""
    return spec.kind if isinstance(spec, ir.AttachPoint) else str(spec).split(":", 1)[0]


def _attach(spec: Any, span: Span) -> ir.AttachPoint:
    """A site's attach point: one made by :func:`_ap` (copied), or tapset spec text parsed."""
    if isinstance(spec, ir.AttachPoint):
        ap = ir.clone(spec)
    else:
        from ..bt import parse_spec

        ap, _name = parse_spec(spec, 0, spec, "<tapset>")
    ap.span = span
    return ap


def _concat(a: Comp, b: Comp) -> Comp:
    out = []
    for ca, fa, xa in a.variants:
        for cb, fb, xb in b.variants:
            c = ca if cb is None else (cb if ca is None else ir.Binary("&&", ca, cb))
            out.append((c, fa + fb, xa + xb))
    return Comp(out)


def _substitute(e: ir.Expr, args: List[ir.Expr]) -> ir.Expr:
    """``$__a0``.. in tapset IR replaced by the call's arguments."""
    def sub(x: Any) -> Any:
        if isinstance(x, ir.Var) and x.name.startswith("$__a") and x.name[4:].isdigit():
            return ir.clone(args[int(x.name[4:])])
        if isinstance(x, ir.Node):
            for k in ir.slot_names(type(x)):
                v = getattr(x, k, None)
                if isinstance(v, ir.Expr):
                    setattr(x, k, sub(v))
                elif isinstance(v, list):
                    setattr(x, k, [sub(i) if isinstance(i, ir.Expr) else i for i in v])
        return x
    return sub(e)


def _all_actions(acts: List[ir.Action]) -> Any:
    for a in acts:
        yield a
        if isinstance(a, ir.If):
            yield from _all_actions(a.then)
            yield from _all_actions(a.other)


def _target(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    if el.opts.has_cmd:
        return Val(ir.Builtin("cpid").at(n.span), "long")
    return Val(ir.Const(el.opts.target_pid or 0).at(n.span), "long")


def _cmdline_str(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """``cmdline_str()``: the current task's arguments joined by spaces (its mm's
    ``[arg_start, arg_end)``, read in BPF; at most the string size)."""
    mm = "((struct task_struct *)curtask)->mm"
    return Val(ir.Call("cmdline_str", [_respan(bt_expr(f"{mm}->arg_start"), n.span),
                                       _respan(bt_expr(f"{mm}->arg_end"), n.span)]).at(n.span), "string")


def _target_set_pid(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """``target_set_pid(pid)`` (tapset/target_set.stp): ``pid`` is the target process or one
    it forked since the start, kept in a map a fork tracepoint fills (sched_process_fork, in
    the parent: the forking process is in the set)."""
    if not el.target_set:
        el.target_set = True
        tgt = "cpid" if el.opts.has_cmd else str(el.opts.target_pid or 0)
        text = (f"BEGIN {{ @__tset[(int64){tgt}] = 1; }}\n"
                "tracepoint:sched:sched_process_fork { if (@__tset[(int64)pid]) "
                "{ @__tset[(int64)args.child_pid] = 1; } }\n")
        el.extra_probes.extend(el.helper_probes(text, n.span))
    key = ir.Cast("int64", args[0].e).at(n.span)
    return Val(ir.Binary("!=", ir.MapRead("@__tset", [key]).at(n.span), ir.Const(0)).at(n.span), "long")


def _pp(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    return Val(ir.Const(ctx.site.pp).at(n.span), "string")


def _ppfunc(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    if ctx.site.ppfunc == "\0func":
        return Val(ir.Builtin("func").at(n.span), "string")
    return Val(ir.Const(ctx.site.ppfunc).at(n.span), "string")


def _walltime(div: int) -> Any:
    def f(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
        e: ir.Expr = ir.Binary("+", ir.Builtin("nsecs").at(n.span), ir.Const(el.wall_offset).at(n.span)).at(n.span)
        if div > 1:
            e = ir.Binary("/", e, ir.Const(div).at(n.span)).at(n.span)
        return Val(e, "long")
    return f


def _strtol(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """``strtol(s, base)`` of a constant (a literal, ``@1``): folded here; BPF parses no numbers."""
    s, base = args[0].e, args[1].e
    if not (isinstance(s, ir.Const) and isinstance(s.value, str) and isinstance(base, ir.Const)):
        raise el.err("strtol() of a string known only at run time is not supported", n.span,
                     "strtol(@1, 10): the script's arguments are known")
    try:
        v = int(s.value.strip(), int(base.value))  # type: ignore[arg-type]
    except ValueError:
        v = 0  # as strtol: no digits
    return Val(ir.Const(v).at(n.span), "long")


def _user_mode(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """Whether the probe interrupted user code: the interrupted instruction pointer is below
    the kernel's half of the address space (timer.profile, kprobes); uprobes are always in
    user code, tracepoints never."""
    kinds = {_spec_kind(s) for s in ctx.site.specs}
    if kinds <= {"uprobe", "uretprobe", "usdt"}:
        return Val(ir.Const(1).at(n.span), "long")
    if kinds <= {"profile", "kprobe", "kretprobe"}:
        reg = "pc" if os.uname().machine == "aarch64" else "ip"
        return Val(_respan(bt_expr(f'reg("{reg}") < 0x8000000000000000'), n.span), "long")
    return Val(ir.Const(0).at(n.span), "long")


#: thread_indent(): deeper levels are shown at this depth (each level is one printf variant)
_INDENT_MAX = 12


def _thread_indent(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """``thread_indent(delta)`` (tapset/indent.stp): ``"%6d %s(%d):"`` (microseconds since
    the thread's first indent, execname, tid) and the thread's depth in spaces; the depth
    moves by ``delta`` (before the text for a positive delta, after it for a negative one)."""
    sp = n.span
    el.note_map("__indent", "assign")
    el.note_map("__indent_ts", "assign")
    tid = ir.Builtin("tid").at(sp)
    ts, x = el.fresh("its"), el.fresh("ix")
    depth = ir.MapRead("@__indent", [ir.clone(tid)]).at(sp)
    delta = args[0].e
    dvar = el.fresh("idelta")
    ctx.pending.extend([
        ir.Assign(dvar, delta).at(sp),
        ir.Assign(ts, ir.Binary("/", ir.Builtin("nsecs").at(sp), ir.Const(1000)).at(sp)).at(sp),
        ir.If(ir.Binary("==", ir.clone(depth), ir.Const(0)).at(sp),
              [ir.MapUpdate("@__indent_ts", [ir.clone(tid)], "assign", ir.Var(ts).at(sp)).at(sp)]).at(sp),
        ir.Assign(x, ir.Binary("+", ir.clone(depth), ir.Ternary(
            ir.Binary(">", ir.Var(dvar).at(sp), ir.Const(0)).at(sp), ir.Var(dvar).at(sp), ir.Const(0)).at(sp)).at(sp)
                  ).at(sp),
        ir.MapUpdate("@__indent", [ir.clone(tid)], "assign",
                     ir.Binary("+", ir.clone(depth), ir.Var(dvar).at(sp)).at(sp)).at(sp),
    ])
    since = ir.Binary("-", ir.Var(ts).at(sp), ir.MapRead("@__indent_ts", [ir.clone(tid)]).at(sp)).at(sp)
    head = [(since, "long"), (ir.Builtin("comm").at(sp), "string"), (ir.clone(tid), "long")]
    variants = []
    for k in range(_INDENT_MAX):
        cond = ir.Binary("<=", ir.Var(x).at(sp), ir.Const(k + 1)).at(sp)
        variants.append((cond, "%6d %s(%d):" + " " * k, [(ir.clone(e), t) for e, t in head]))
    variants.append((None, "%6d %s(%d):" + " " * _INDENT_MAX, [(ir.clone(e), t) for e, t in head]))
    return Val(Comp(variants), "comp")


def _returnval(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    t = ctx.site.target("return") if ctx.site.target is not None else None
    if t is None:
        raise el.err("returnval() is only known in a .return probe", n.span)
    return Val(_respan(bt_expr(t), n.span), "long")


def _nth_arg(cast: str) -> Any:
    def f(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
        a = n.args[0]
        if a.kind != "lit" or not isinstance(a.value, int) or a.value < 1:
            raise el.err(f"{n.name}() takes an argument number (1, 2...)", a.span)
        spec = ctx.site.vars.get("__args__")
        if spec is not None:
            fields = spec.expr.split(",") if spec.expr else []
            if a.value > len(fields):
                raise el.err(f"{ctx.site.pp} has {len(fields)} arguments", a.span)
            e = bt_expr(f"({cast})args.{fields[a.value - 1]}")
        elif any(_spec_kind(s) in ("kprobe", "uprobe") for s in ctx.site.specs):
            e = bt_expr(f"({cast})arg{a.value - 1}")
        else:
            raise el.err(f"{n.name}() needs a system call or function probe point", n.span)
        return Val(_respan(e, n.span), "long")
    return f


def _errno_str(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    """``errno_str(e)``: the name of errno ``e`` (or ``-e``), an enumeration: compared with a
    name as a number, printed as the name (``""`` for a number no name has; SystemTap: ``E#N``)."""
    import errno

    e = args[0].e
    if not _ERRNO_NAMES:
        _ERRNO_NAMES.update(errno.errorcode)
    absval = ir.Ternary(ir.Binary("<", e, ir.Const(0)).at(n.span), ir.Unary("-", ir.clone(e)).at(n.span),
                        ir.clone(e)).at(n.span)
    return Val(Enum(absval, _ERRNO_NAMES), "enum")


def _ctime(el: _Elaborator, n: N, ctx: _Probe, args: List[Val]) -> Val:
    a = n.args[0] if n.args else None
    if a is not None and not (a.kind == "call" and a.name.startswith("gettimeofday_")):
        raise el.err("ctime() of a value other than gettimeofday_s() is not supported", a.span)
    return Val(ir.Call("strftime", [ir.Const("%a %b %e %H:%M:%S %Y").at(n.span),
                                    ir.Builtin("nsecs").at(n.span)]).at(n.span), "string")


#: tapset functions: name -> (argument count(s), type, bpftrace expression over $__a0.. or a function)
_FUNCS: Dict[str, Tuple[Any, str, Any]] = {
    "execname": (0, "string", "comm"), "pid": (0, "long", "pid"), "tid": (0, "long", "tid"),
    "uid": (0, "long", "uid"), "gid": (0, "long", "gid"), "cpu": (0, "long", "cpu"),
    "euid": (0, "long", "((struct task_struct *)curtask)->cred->euid.val"),
    "egid": (0, "long", "((struct task_struct *)curtask)->cred->egid.val"),
    "ppid": (0, "long", "((struct task_struct *)curtask)->real_parent->tgid"),
    "pexecname": (0, "string", "((struct task_struct *)curtask)->real_parent->comm"),
    "task_current": (0, "long", "(uint64)curtask"),
    "gettimeofday_ns": (0, "long", _walltime(1)), "gettimeofday_us": (0, "long", _walltime(1000)),
    "gettimeofday_ms": (0, "long", _walltime(1000000)), "gettimeofday_s": (0, "long", _walltime(1000000000)),
    # cpu_clock_*(cpu): bpf_ktime_get_ns() is the same clock on every CPU
    "local_clock_ns": (0, "long", "nsecs"), "cpu_clock_ns": ((0, 1), "long", "nsecs"),
    "ktime_get_ns": (0, "long", "nsecs"),
    "local_clock_us": (0, "long", "nsecs / 1000"), "cpu_clock_us": ((0, 1), "long", "nsecs / 1000"),
    "local_clock_ms": (0, "long", "nsecs / 1000000"), "cpu_clock_ms": ((0, 1), "long", "nsecs / 1000000"),
    "local_clock_s": (0, "long", "nsecs / 1000000000"), "cpu_clock_s": ((0, 1), "long", "nsecs / 1000000000"),
    "get_cycles": (0, "long", "nsecs"), "jiffies": (0, "long", "jiffies"),
    "user_string": ((1, 2), "string", "str($__a0)"), "user_string_quoted": (1, "string", "str($__a0)"),
    "user_string_n": (2, "string", "str($__a0, $__a1)"), "kernel_string": ((1, 2), "string", "str($__a0)"),
    "kernel_string_n": (2, "string", "str($__a0, $__a1)"), "kernel_string_quoted": (1, "string", "str($__a0)"),
    "user_int": (1, "long", "*(int32 *)$__a0"), "user_long": (1, "long", "*(int64 *)$__a0"),
    "user_short": (1, "long", "*(int16 *)$__a0"), "user_char": (1, "long", "*(int8 *)$__a0"),
    "kernel_int": (1, "long", "*(int32 *)$__a0"), "kernel_long": (1, "long", "*(int64 *)$__a0"),
    "kernel_short": (1, "long", "*(int16 *)$__a0"), "kernel_char": (1, "long", "*(int8 *)$__a0"),
    "kernel_pointer": (1, "long", "*(uint64 *)$__a0"),
    # the sized reads of user memory (tapset/uconversions.stp): a failed read gives 0
    **{f"user_{s}int{b}": (1, "long", f"*({s}int{b} *)$__a0") for s in ("", "u") for b in (8, 16, 32, 64)},
    "user_ushort": (1, "long", "*(uint16 *)$__a0"), "user_uchar": (1, "long", "*(uint8 *)$__a0"),
    "user_ulong": (1, "long", "*(uint64 *)$__a0"), "user_uint": (1, "long", "*(uint32 *)$__a0"),
    # the forms with an error text: here a failed read gives "" (SystemTap: the text)
    "user_string2": (2, "string", "str($__a0)"), "user_string_n2": (3, "string", "str($__a0, $__a1)"),
    "kernel_string2": (2, "string", "str($__a0)"), "kernel_string_n2": ((2, 3), "string", "str($__a0, $__a1)"),
    "user_string_n_quoted": ((2, 3), "string", "str($__a0, $__a1)"),
    "MKDEV": (2, "long", "($__a0 << 20) | $__a1"), "MAJOR": (1, "long", "$__a0 >> 20"),
    "MINOR": (1, "long", "$__a0 & 0xfffff"),
    "inet_get_local_port": (1, "long", "bswap(((struct inet_sock *)$__a0)->inet_sport)"),
    "inet_get_ip_source": (1, "string", "ntop(2, ((struct sock *)$__a0)->__sk_common.skc_daddr)"),
    "ip_ntop": (1, "string", "ntop(2, (uint32)$__a0)"),
    "ntohs": (1, "long", "bswap((uint16)$__a0)"), "ntohl": (1, "long", "bswap((uint32)$__a0)"),
    "htons": (1, "long", "bswap((uint16)$__a0)"), "htonl": (1, "long", "bswap((uint32)$__a0)"),
    "isinstr": (2, "long", "strcontains($__a0, $__a1)"),
    "randint": (1, "long", "rand % $__a0"),
    "target": (0, "long", _target), "target_set_pid": (1, "long", _target_set_pid),
    "cmdline_str": (0, "string", _cmdline_str),
    "returnval": (0, "long", _returnval), "user_mode": (0, "long", _user_mode),
    "thread_indent": (1, "string", _thread_indent), "strtol": (2, "long", _strtol),
    "pointer_arg": (1, "long", _nth_arg("uint64")), "ulong_arg": (1, "long", _nth_arg("uint64")),
    "long_arg": (1, "long", _nth_arg("int64")), "int_arg": (1, "long", _nth_arg("int32")),
    "uint_arg": (1, "long", _nth_arg("uint32")), "s32_arg": (1, "long", _nth_arg("int32")),
    "u32_arg": (1, "long", _nth_arg("uint32")), "s64_arg": (1, "long", _nth_arg("int64")),
    "u64_arg": (1, "long", _nth_arg("uint64")), "ulonglong_arg": (1, "long", _nth_arg("uint64")),
    "longlong_arg": (1, "long", _nth_arg("int64")), "pp": (0, "string", _pp), "ppfunc": (0, "string", _ppfunc),
    "probefunc": (0, "string", _ppfunc), "errno_str": (1, "string", _errno_str), "ctime": ((0, 1), "string", _ctime), "tz_ctime": ((0, 1), "string", _ctime),
    "backtrace": (0, "stack", "kstack"), "ubacktrace": (0, "stack", "ustack"),
    "is_return": (0, "long", "0"), "stp_pid": (0, "long", "0"),
    "task_execname": (1, "string", "((struct task_struct *)$__a0)->comm"),
    "task_pid": (1, "long", "((struct task_struct *)$__a0)->tgid"),
    "task_tid": (1, "long", "((struct task_struct *)$__a0)->pid"),
    "task_parent": (1, "long", "(uint64)((struct task_struct *)$__a0)->real_parent"),
    "task_uid": (1, "long", "((struct task_struct *)$__a0)->cred->uid.val"),
    "task_gid": (1, "long", "((struct task_struct *)$__a0)->cred->gid.val"),
    "task_euid": (1, "long", "((struct task_struct *)$__a0)->cred->euid.val"),
    "task_egid": (1, "long", "((struct task_struct *)$__a0)->cred->egid.val"),
    "task_prio": (1, "long", "((struct task_struct *)$__a0)->prio - 100"),
    "task_nice": (1, "long", "((struct task_struct *)$__a0)->static_prio - 120"),
    "task_start_time": (1, "long", "((struct task_struct *)$__a0)->start_time"),
    "task_stime": (0, "long", "((struct task_struct *)curtask)->stime"),
    "task_utime": (0, "long", "((struct task_struct *)curtask)->utime"),
    "sid": (0, "long", "((struct task_struct *)curtask)->signal->pids[3]->numbers[0].nr"),
    "pgrp": (0, "long", "((struct task_struct *)curtask)->signal->pids[2]->numbers[0].nr"),
    "task_state": (1, "long", "((struct task_struct *)$__a0)->__state"),
    "task_cpu": (1, "long", "((struct task_struct *)$__a0)->thread_info.cpu"),
    "sprint_ubacktrace": (0, "stack", "ustack"),
    "sprint_backtrace": (0, "stack", "kstack"),
    "symname": (1, "string", "ksym($__a0)"), "symdata": (1, "string", "ksym($__a0)"),
    "usymname": (1, "string", "usym($__a0)"), "usymdata": (1, "string", "usym($__a0)"),
}
_STRING_FUNCS = frozenset(n for n, f in _FUNCS.items() if f[1] == "string") | {"sprintf", "sprint", "sprintln"}


class TracefsEnv(Env):
    """The realisations' questions answered from this kernel (tracefs, kallsyms, features)."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self._tracefs: Any = None
        self._all: Optional[List[Tuple[str, str]]] = None

    def tracefs(self) -> Any:
        if self._tracefs is None:
            self._tracefs = self.kernel.tracefs()
        return self._tracefs

    def fields(self, group: str, event: str) -> Optional[List[Tuple[str, str]]]:
        try:
            fmt = self.tracefs().event_format(group, event)
        except LookupError:
            return None
        return [(f.name, f.type) for f in fmt.event_fields]

    def events(self, pattern: str) -> List[Tuple[str, str]]:
        import fnmatch

        if self._all is None:
            self._all = self.tracefs().all_events()
        return [(g, e) for g, e in self._all if fnmatch.fnmatchcase(e, pattern)]

    def has_function(self, name: str) -> Optional[bool]:
        try:
            return self.kernel.kallsyms().lookup(name) is not None
        except Exception:  # noqa: BLE001 - kallsyms unreadable: unknown
            return None

    def tp_params(self, event: str) -> Optional[List[Tuple[str, str]]]:
        # the resolver names tp_btf arguments after __bpf_trace_<event> when BTF has it, else
        # arg1, arg2...; the names themselves are __probestub_<event>'s (Linux 6.4+)
        btf = self.kernel.btf()
        names = None
        for prefix in ("__bpf_trace_", "__probestub_"):
            try:
                f = btf.find(prefix + event, "func")
                names = [n for n, _t in btf.strip(f.target).params][1:]
            except Exception:  # noqa: BLE001 - not in this kernel's BTF
                continue
            resolver_names = prefix == "__bpf_trace_"
            return [(n, n if resolver_names else f"arg{i + 1}") for i, n in enumerate(names)]
        return None

    def functions(self, pattern: str) -> List[str]:
        import fnmatch

        try:
            names = self.kernel.kallsyms().text_names()
        except Exception:  # noqa: BLE001 - kallsyms unreadable: nothing to list
            return []
        return sorted({n for n in names if fnmatch.fnmatchcase(n, pattern)})

    def feature(self, name: str) -> Optional[bool]:
        if name == "kprobes":
            return os.path.exists("/sys/kernel/tracing/kprobe_events") or \
                os.path.exists("/sys/kernel/debug/tracing/kprobe_events")
        return None


def elaborate(script: Script, env: Env, opts: Optional[Options] = None) -> ir.Program:
    """The script as an unresolved IR program (bpftrace front end's conventions).
    Raises :class:`SourceError` (the place in the script) for what cannot be run."""
    try:
        return _Elaborator(script, env, opts or Options()).run()
    except ParseError as e:  # tapset text is this package's: a failure there is a bug, said as such
        if e.origin == "<tapset>":
            raise SourceError(f"internal tapset error: {e.message}", source=script.source, origin=script.origin) from None
        raise
