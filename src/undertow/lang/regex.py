"""POSIX extended regular expressions (SystemTap's ``=~``): parsed here once, then either
translated to Python's :mod:`re` (handlers that run in undertow's process) or compiled to a
small deterministic automaton (DFA) that a BPF program walks over a string's bytes.

The syntax is POSIX ERE as regcomp(3) takes it: ``.``, bracket expressions (``[a-z]``,
``[^...]``, ``[[:alpha:]]``), ``* + ? {m} {m,} {m,n}``, ``|``, ``( )``, the anchors ``^``
and ``$``, and ``\\`` before any character to take it literally. The match is a search (the
expression may match anywhere in the string) over bytes; the string ends at its first NUL,
as a C string does. Back-references (``\\1``) are not ERE and are refused.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet, List, Optional, Tuple

__all__ = ["RegexError", "Dfa", "parse", "to_python", "compile_dfa", "MAX_STATES", "MATCH", "DEAD"]

#: the most DFA states a BPF matcher gets (each state is a few compares per byte)
MAX_STATES = 64
#: pseudo states of :class:`Dfa` transitions: the string matched / can no longer match
MATCH, DEAD = -1, -2
#: ERE's RE_DUP_MAX-like bound on ``{m,n}`` (glibc: 0x7fff; kept small: each copy is NFA states)
_MAX_REPEAT = 255

_CLASSES = {
    "alpha": lambda c: chr(c).isalpha() and c < 128, "digit": lambda c: 48 <= c <= 57,
    "alnum": lambda c: chr(c).isalnum() and c < 128, "upper": lambda c: 65 <= c <= 90,
    "lower": lambda c: 97 <= c <= 122, "space": lambda c: c in (9, 10, 11, 12, 13, 32),
    "blank": lambda c: c in (9, 32), "punct": lambda c: 33 <= c <= 126 and not chr(c).isalnum(),
    "print": lambda c: 32 <= c <= 126, "graph": lambda c: 33 <= c <= 126,
    "cntrl": lambda c: c < 32 or c == 127, "xdigit": lambda c: chr(c) in "0123456789abcdefABCDEF",
}
_ALL = frozenset(range(1, 256))


class RegexError(ValueError):
    """An invalid expression: ``pos`` is the offset in the pattern."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg)
        self.msg, self.pos = msg, pos


# AST: ("set", frozenset of bytes) ("cat", [..]) ("alt", [..]) ("rep", node, min, max|None)
#      ("group", node, n) ("bol",) ("eol",) ("empty",)
class _Parser:
    def __init__(self, pattern: str) -> None:
        self.s = pattern.encode("utf-8", "surrogateescape")
        self.i = 0
        self.groups = 0

    def peek(self) -> Optional[int]:
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self) -> Any:
        node = self.alt()
        if self.i < len(self.s):
            raise RegexError("unmatched ')'", self.i)
        return node

    def alt(self) -> Any:
        branches = [self.cat()]
        while self.peek() == ord("|"):
            self.i += 1
            branches.append(self.cat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def cat(self) -> Any:
        items: List[Any] = []
        while self.peek() is not None and self.peek() not in (ord("|"), ord(")")):
            items.append(self.repeat())
        if not items:
            return ("empty",)
        return items[0] if len(items) == 1 else ("cat", items)

    def repeat(self) -> Any:
        start = self.i
        node = self.atom()
        while True:
            c = self.peek()
            if c in (ord("*"), ord("+"), ord("?")):
                self.i += 1
                lo, hi = {ord("*"): (0, None), ord("+"): (1, None), ord("?"): (0, 1)}[c]
            elif c == ord("{") and self._is_bound():
                lo, hi = self.bound()
            else:
                return node
            if node[0] in ("bol", "eol"):
                raise RegexError("nothing to repeat", start)
            node = ("rep", node, lo, hi)

    def _is_bound(self) -> bool:
        j = self.i + 1
        return j < len(self.s) and 48 <= self.s[j] <= 57

    def bound(self) -> Tuple[int, Optional[int]]:
        start = self.i
        end = self.s.find(b"}", self.i)
        if end < 0:
            raise RegexError("'{' without '}'", start)
        body = self.s[self.i + 1:end].decode("ascii", "replace")
        self.i = end + 1
        lo_s, comma, hi_s = body.partition(",")
        try:
            lo = int(lo_s)
            hi = (int(hi_s) if hi_s else None) if comma else lo
        except ValueError:
            raise RegexError(f"bad repetition '{{{body}}}'", start) from None
        if lo > _MAX_REPEAT or (hi is not None and (hi > _MAX_REPEAT or hi < lo)):
            raise RegexError(f"bad repetition '{{{body}}}' (at most {_MAX_REPEAT}, min <= max)", start)
        return lo, hi

    def atom(self) -> Any:
        c = self.peek()
        start = self.i
        self.i += 1
        if c == ord("("):
            self.groups += 1
            n = self.groups
            inner = self.alt()
            if self.peek() != ord(")"):
                raise RegexError("'(' without ')'", start)
            self.i += 1
            return ("group", inner, n)
        if c == ord("["):
            return ("set", self.bracket(start))
        if c == ord("."):
            return ("set", _ALL)
        if c == ord("^"):
            return ("bol",)
        if c == ord("$"):
            return ("eol",)
        if c in (ord("*"), ord("+"), ord("?")):
            raise RegexError("nothing to repeat", start)
        if c == ord("\\"):
            if self.i >= len(self.s):
                raise RegexError("trailing backslash", start)
            e = self.s[self.i]
            self.i += 1
            if 49 <= e <= 57:
                raise RegexError("back-references are not extended regular expressions", start)
            return ("set", frozenset((e,)))
        return ("set", frozenset((c,)))  # type: ignore[arg-type]

    def bracket(self, start: int) -> FrozenSet[int]:
        s = self.s
        neg = False
        if self.peek() == ord("^"):
            neg = True
            self.i += 1
        out: set = set()
        first = True
        while True:
            if self.i >= len(s):
                raise RegexError("'[' without ']'", start)
            c = s[self.i]
            if c == ord("]") and not first:
                self.i += 1
                break
            first = False
            if s.startswith(b"[:", self.i):
                end = s.find(b":]", self.i + 2)
                name = s[self.i + 2:end].decode("ascii", "replace") if end > 0 else ""
                if end < 0 or name not in _CLASSES:
                    raise RegexError(f"unknown character class '[:{name}:]'", self.i)
                out.update(b for b in range(1, 256) if _CLASSES[name](b))
                self.i = end + 2
                continue
            if s.startswith(b"[=", self.i) or s.startswith(b"[.", self.i):
                raise RegexError("collating elements and equivalence classes are not supported", self.i)
            self.i += 1
            if self.i + 1 < len(s) and s[self.i] == ord("-") and s[self.i + 1] != ord("]"):
                hi = s[self.i + 1]
                if hi < c:
                    raise RegexError("a range ends before it starts", self.i)
                out.update(range(c, hi + 1))
                self.i += 2
            else:
                out.add(c)
        out.discard(0)
        return frozenset(_ALL - out if neg else out)


def parse(pattern: str) -> Tuple[Any, int]:
    """The expression's syntax tree and its number of groups (``matched(n)``: 0..groups)."""
    p = _Parser(pattern)
    return p.parse(), p.groups


def to_python(pattern: str) -> "Any":
    """A compiled :mod:`re` bytes pattern equivalent to the ERE (``search`` it)."""
    import re

    tree, _n = parse(pattern)
    return re.compile(_py(tree).encode("latin-1"), re.DOTALL)


def _py(n: Any) -> str:
    k = n[0]
    if k == "set":
        vals = sorted(n[1])
        if len(vals) == 1:
            return "\\x%02x" % vals[0]
        parts, i = [], 0
        while i < len(vals):
            j = i
            while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
                j += 1
            parts.append("\\x%02x" % vals[i] + ("-\\x%02x" % vals[j] if j > i else ""))
            i = j + 1
        return "[" + "".join(parts) + "]"
    if k == "cat":
        return "".join(_py(x) for x in n[1])
    if k == "alt":
        return "(?:" + "|".join(_py(x) for x in n[1]) + ")"
    if k == "group":
        return "(" + _py(n[1]) + ")"
    if k == "rep":
        lo, hi = n[2], n[3]
        q = "*" if (lo, hi) == (0, None) else "+" if (lo, hi) == (1, None) else "?" if (lo, hi) == (0, 1) \
            else "{%d,%s}" % (lo, "" if hi is None else hi)
        return "(?:" + _py(n[1]) + ")" + q
    if k == "bol":
        return "\\A"
    if k == "eol":
        return "\\Z"
    return ""


class Dfa:
    """``trans[s]``: (lo, hi, target) byte ranges (1..255) of state ``s`` (0 is the start), a
    target being a state, :data:`MATCH` or :data:`DEAD`; ``at_end[s]``: the string ending in
    state ``s`` matches (a ``$``); ``start_matches``: every string matches (the empty one too)."""

    def __init__(self, trans: List[List[Tuple[int, int, int]]], at_end: List[bool], start_matches: bool) -> None:
        self.trans, self.at_end, self.start_matches = trans, at_end, start_matches

    def run(self, data: bytes) -> bool:
        """Walk the automaton as the BPF program does (for tests)."""
        if self.start_matches:
            return True
        s = 0
        for b in data.split(b"\0", 1)[0]:
            for lo, hi, t in self.trans[s]:
                if lo <= b <= hi:
                    break
            if t == MATCH:
                return True
            if t == DEAD:
                return False
            s = t
        return self.at_end[s]


class _Nfa:
    def __init__(self) -> None:
        self.edges: List[List[Tuple[Any, int]]] = []

    def state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def build(self, n: Any, a: int, b: int) -> None:
        """Edges from ``a`` to ``b`` recognising ``n``."""
        k = n[0]
        if k == "set":
            self.edges[a].append((n[1], b))
        elif k in ("bol", "eol"):
            self.edges[a].append((k, b))
        elif k == "empty":
            self.edges[a].append((None, b))
        elif k == "group":
            self.build(n[1], a, b)
        elif k == "alt":
            for x in n[1]:
                self.build(x, a, b)
        elif k == "cat":
            cur = a
            for x in n[1][:-1]:
                nxt = self.state()
                self.build(x, cur, nxt)
                cur = nxt
            self.build(n[1][-1], cur, b)
        elif k == "rep":
            inner, lo, hi = n[1], n[2], n[3]
            cur = a
            for _ in range(lo):
                nxt = self.state()
                self.build(inner, cur, nxt)
                cur = nxt
            if hi is None:
                loop = self.state()
                self.edges[cur].append((None, loop))
                self.build(inner, loop, loop)
                self.edges[loop].append((None, b))
            else:
                for _ in range(hi - lo):
                    nxt = self.state()
                    self.build(inner, cur, nxt)
                    self.edges[cur].append((None, b))
                    cur = nxt
                self.edges[cur].append((None, b))
            if len(self.edges) > 20000:
                raise RegexError("the expression is too large", 0)


def compile_dfa(pattern: str, max_states: int = MAX_STATES) -> Dfa:
    """The search automaton of ``pattern``: RegexError when it is invalid or needs more than
    ``max_states`` states."""
    tree, _n = parse(pattern)
    nfa = _Nfa()
    start, accept = nfa.state(), nfa.state()
    nfa.build(tree, start, accept)
    edges = nfa.edges

    def closure(states: "set", at_start: bool, at_end: bool) -> FrozenSet[int]:
        out, stack = set(states), list(states)
        while stack:
            s = stack.pop()
            for lab, t in edges[s]:
                if (lab is None or (lab == "bol" and at_start) or (lab == "eol" and at_end)) and t not in out:
                    out.add(t)
                    stack.append(t)
        return frozenset(out)

    init = closure({start}, True, False)
    if accept in init:
        return Dfa([[(1, 255, MATCH)]], [True], True)
    keys: Dict[Tuple[FrozenSet[int], bool], int] = {(init, True): 0}
    sets: List[Tuple[FrozenSet[int], bool]] = [(init, True)]
    raw: List[List[int]] = []
    i = 0
    while i < len(sets):
        cur, first = sets[i]
        row = []
        for byte in range(1, 256):
            moved = {t for s in cur for lab, t in edges[s] if isinstance(lab, frozenset) and byte in lab}
            nxt = closure(moved | {start}, False, False)  # a search: a match may start at any byte
            if accept in nxt:
                row.append(MATCH)
                continue
            key = (nxt, False)
            if key not in keys:
                if len(sets) >= max_states:
                    raise RegexError(f"the expression needs more than {max_states} automaton states", 0)
                keys[key] = len(sets)
                sets.append(key)
            row.append(keys[key])
        raw.append(row)
        i += 1
    at_end = [accept in closure(set(s), first, True) for s, first in sets]
    # states from which no match can come any more (an anchored expression that failed): DEAD
    live = {s for s in range(len(sets)) if at_end[s] or MATCH in raw[s]}
    grew = True
    while grew:
        grew = False
        for s in range(len(sets)):
            if s not in live and any(t in live for t in raw[s] if t >= 0):
                live.add(s)
                grew = True
    trans = []
    for s in range(len(sets)):
        row = [t if t < 0 or t in live else DEAD for t in raw[s]]
        ranges: List[Tuple[int, int, int]] = []
        for b, t in enumerate(row, 1):
            if ranges and ranges[-1][2] == t and ranges[-1][1] == b - 1:
                ranges[-1] = (ranges[-1][0], b, t)
            else:
                ranges.append((b, b, t))
        trans.append(ranges)
    if 0 not in live:
        trans[0] = [(1, 255, DEAD)]
    return Dfa(trans, at_end, False)
