"""What the bpftrace language names: builtin variables, functions and aggregations, the type
words a cast may use, keywords and operators (bpftrace 0.17's reference guide; see
docs/bpftrace.md for what undertow supports).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

__all__ = ["BUILTINS", "MAP_AGGREGATIONS", "FUNCTIONS", "VOID_FUNCTIONS", "UNSAFE_FUNCTIONS", "STRING_ARG",
           "INT_TYPES", "C_WORDS", "RECORD_WORDS", "KEYWORDS", "BINARY", "COMPOUND", "MANY", "is_decimal",
           "c_integer"]

#: Builtin variables (bpftrace reference guide, "Variables / Builtins").
BUILTINS = (
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "numaid", "cpu", "comm", "kstack", "ustack",
    "func", "probe", "curtask", "rand", "cgroup", "cpid", "username", "jiffies", "ctx", "args",
    "retval",
)

#: Aggregation functions: only valid as ``@map[...] = f(...)``; name -> (min args, max args).
MAP_AGGREGATIONS: Dict[str, Tuple[int, int]] = {
    "count": (0, 0), "sum": (1, 1), "avg": (1, 1), "min": (1, 1), "max": (1, 1),
    "stats": (1, 1), "hist": (1, 1), "lhist": (4, 4),
}

#: "any number of arguments" in :data:`FUNCTIONS`
MANY = 1 << 30

#: Functions: name -> (min args, max args).
FUNCTIONS: Dict[str, Tuple[int, int]] = {
    "printf": (1, MANY), "time": (0, 1), "join": (1, 2), "str": (1, 2), "buf": (1, 2),
    "ksym": (1, 1), "usym": (1, 1), "kaddr": (1, 1), "uaddr": (1, 1), "reg": (1, 1),
    "system": (1, MANY), "exit": (0, 0), "cgroupid": (1, 1), "kstack": (0, 2), "ustack": (0, 2),
    "ntop": (1, 2), "pton": (1, 1), "cat": (1, MANY), "signal": (1, 1), "strncmp": (3, 3),
    "strcontains": (2, 2), "override": (1, 1), "sizeof": (1, 1), "offsetof": (2, 2),
    "print": (1, 3), "strftime": (2, 2), "path": (1, 1), "uptr": (1, 1), "kptr": (1, 1),
    "macaddr": (1, 1), "bswap": (1, 1), "cgroup_path": (1, 2), "strerror": (1, 1),
    "delete": (1, 2), "clear": (1, 1), "zero": (1, 1), "len": (1, 1), "unwatch": (1, 1),
    "debugf": (1, 128),
}
FUNCTIONS.update(MAP_AGGREGATIONS)

#: Functions that are statements: they have no value.
VOID_FUNCTIONS = frozenset(("printf", "time", "join", "system", "exit", "cat", "signal", "override",
                            "print", "delete", "clear", "zero", "unwatch", "debugf"))

#: Functions that need ``--unsafe`` in bpftrace (listed in ``Program.settings["unsafe_calls"]``).
UNSAFE_FUNCTIONS = frozenset(("system", "signal", "override"))

#: Functions whose argument must be a string literal.
STRING_ARG = {"kaddr", "uaddr", "reg", "cgroupid", "time", "strftime", "cat", "system", "debugf"}

#: Integer type names a cast may use (bpftrace's own, then C spellings of them).
INT_TYPES = frozenset((
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
    "__u8", "__u16", "__u32", "__u64", "__s8", "__s16", "__s32", "__s64",
    "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t",
    "size_t", "ssize_t", "pid_t", "uid_t", "gid_t", "bool", "_Bool", "void",
    "char", "short", "int", "long", "unsigned", "signed",
))
C_WORDS = frozenset(("char", "short", "int", "long", "unsigned", "signed", "const", "volatile"))
RECORD_WORDS = frozenset(("struct", "union", "enum"))
KEYWORDS = frozenset(("if", "else", "unroll", "while", "for", "return", "break", "continue", "config"))

#: Binary operators and their precedence (C's; higher binds tighter).
BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
#: Compound assignments and the operator each applies.
COMPOUND = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%", "&=": "&", "|=": "|", "^=": "^",
            "<<=": "<<", ">>=": ">>"}

_ASCII_DIGITS = frozenset("0123456789")


def is_decimal(text: str) -> bool:
    """``-?[0-9]+`` (ASCII digits only: ``str.isdigit`` also takes other scripts' digits)."""
    digits = text[1:] if text.startswith("-") else text
    return digits != "" and all(c in _ASCII_DIGITS for c in digits)


_BASES = {"0x": 16, "0X": 16}


def c_integer(text: str) -> "Optional[int]":
    """``text`` as bpftrace 0.17 reads a positional parameter used as a number (C's
    ``strtoll`` with base 0, the whole text consumed): ``123``, ``-5``, ``0x1f`` (hex),
    ``0755`` (octal), leading white space allowed; None when it is not such a number
    (one that does not fit 64 bits is returned: the caller says so)."""
    body = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    base = 10
    if body[:2] in _BASES:
        base, body = 16, body[2:]
        digits = "0123456789abcdefABCDEF"
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
        digits = "01234567"
    else:
        digits = "0123456789"
    if not body or any(c not in digits for c in body):
        return None
    return sign * int(body, base)
