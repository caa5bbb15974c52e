"""A probe line's filter (``f:``), resolved, as a Python function of one syscall stop.

The operators of the ftrace filter grammar (docs/probe-lines.md, "Filters"): ``&& || !``,
comparisons, ``&`` (and the other arithmetic the IR allows), ``~`` (a glob, as the kernel's
event filter matches strings: fnmatch). Names are the event's fields (their values as the
event shows them: a ``char *`` is the string read from the tracee), ``comm``, ``common_pid``
(the thread id, as in the kernel's event) and ``cpu`` (unknown to ptrace: -1).
"""

from __future__ import annotations

import fnmatch
import operator
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Set

from ...lang import ir

__all__ = ["compile_filter", "unsupported", "filter_fields"]

#: env: {"f": fields by event-field name, "comm": str, "tid": int, "pid": int}
Env = dict

_BIN = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "&": operator.and_, "|": operator.or_, "^": operator.xor, "+": operator.add,
    "-": operator.sub, "*": operator.mul, "<<": operator.lshift, ">>": operator.rshift,
}


def unsupported(e: "ir.Expr") -> "Optional[ir.Expr]":
    """The first node of ``e`` this module cannot evaluate, else None."""
    for n in e.walk():
        if isinstance(n, ir.Binary) and (n.op in _BIN or n.op in ("&&", "||", "~", "/", "%")):
            continue
        if isinstance(n, ir.Unary) and n.op in ("!", "-", "~"):
            continue
        if isinstance(n, ir.Const) and isinstance(n.value, (int, str)):
            continue
        if isinstance(n, ir.Field) and n.defined is None:
            continue
        if isinstance(n, ir.Builtin) and n.name in ("comm", "pid", "tid", "cpu"):
            continue
        return n
    return None


def filter_fields(e: "ir.Expr") -> "Set[str]":
    """The event fields ``e`` reads."""
    return {n.name for n in e.walk() if isinstance(n, ir.Field)
            and n.name not in ("comm", "COMM", "common_pid", "cpu", "CPU")}


def compile_filter(e: "ir.Expr") -> "Callable[[Dict[str, Any]], bool]":
    """``env -> bool`` for the resolved filter ``e`` (see the module's doc for ``env``)."""
    f = _compile(e)
    return lambda env: bool(f(env))


def _compile(e: "ir.Expr") -> "Callable[[Dict[str, Any]], Any]":
    if isinstance(e, ir.Const):
        v = e.value
        return lambda env: v
    if isinstance(e, ir.Field):
        name = e.name
        if name in ("comm", "COMM"):
            return lambda env: env["comm"]
        if name == "common_pid":
            return lambda env: env["tid"]
        if name in ("cpu", "CPU"):
            return lambda env: -1
        return lambda env: env["f"].get(name, 0)
    if isinstance(e, ir.Builtin):
        key = {"comm": "comm", "pid": "pid", "tid": "tid"}.get(e.name)
        if key is None:
            return lambda env: -1
        return lambda env: env[key]
    if isinstance(e, ir.Unary):
        x = _compile(e.expr)
        if e.op == "!":
            return lambda env: not x(env)
        if e.op == "-":
            return lambda env: -x(env)
        return lambda env: ~x(env)
    if isinstance(e, ir.Binary):
        a, b = _compile(e.left), _compile(e.right)
        op = e.op
        if op == "&&":
            return lambda env: bool(a(env)) and bool(b(env))
        if op == "||":
            return lambda env: bool(a(env)) or bool(b(env))
        if op == "~":
            return lambda env: fnmatch.fnmatchcase(str(a(env)), str(b(env)))
        if op in ("/", "%"):
            div = operator.floordiv if op == "/" else operator.mod
            return lambda env: (lambda y: div(a(env), y) if y else 0)(b(env))
        fn = _BIN[op]
        if op in ("==", "!=", "<", "<=", ">", ">="):
            def cmp(env: "Dict[str, Any]") -> bool:
                x, y = a(env), b(env)
                if type(x) is not type(y) and (isinstance(x, str) or isinstance(y, str)):
                    return op == "!="  # a string against a number (an unreadable string) never matches
                return fn(x, y)
            return cmp
        return lambda env: fn(a(env), b(env))
    raise ValueError(f"cannot evaluate {type(e).__name__} in a ptrace filter")
