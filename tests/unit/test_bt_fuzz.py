"""Fuzzing the bpftrace front end: any text either parses or raises ParseError, nothing else.

A ParseError must also carry a span inside the text (so the caret can be drawn)
and render without raising.
"""

from __future__ import annotations

import glob
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from undertow.errors import ParseError  # noqa: E402
from undertow.lang import ir  # noqa: E402
from undertow.lang.bt import parse_program  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = sorted(glob.glob(os.path.join(os.path.dirname(HERE), "fixtures", "bt", "tools", "*.bt")))
SOURCES = [open(p, encoding="utf-8").read() for p in TOOLS]

VOCAB = [
    "BEGIN", "END", "kprobe:f", "kretprobe:f", "tracepoint:a:b", "t:x:y*", "uprobe:/bin/sh:main",
    "usdt:/p:a:b", "profile:hz:99", "interval:s:1", "software:cpu:", "hardware:cycles:1", "iter:task",
    "{", "}", "(", ")", "[", "]", "/", ";", ",", ".", "->", "?", ":", "=", "+=", "<<=", "++", "--",
    "+", "-", "*", "%", "&", "|", "^", "!", "~", "<", ">", "==", "!=", "&&", "||", "<<", ">>",
    "$x", "$1", "$#", "$0", "@", "@m", "@m[", "pid", "comm", "args", "arg0", "retval", "kstack",
    "printf(", '"%d %s\\n"', '"%"', "'a'", "'", '"', "count()", "hist(", "lhist(", "str(", "sizeof(",
    "offsetof(", "struct", "struct sock *", "(uint64)", "if", "else", "while", "unroll(", "return",
    "break", "continue", "delete(", "clear(", "print(", "exit()", "0", "1", "0x", "1e6", "1_0",
    "077", "99999999999999999999999", "#include <x>", "#define A B", "#define B A", "#if", "#endif",
    "#else", "/*", "*/", "//", "\n", " ", "\t", "config", "A", "AF_INET", "\\", "`", "\x00", "é", "\u00b2", "\u0663", "\udcff",
]

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def _check(text, positional=()):
    try:
        prog = parse_program(text, "<fuzz>", positional)
    except ParseError as e:
        assert e.span is not None
        assert 0 <= e.span.start <= e.span.end <= len(text) + 1, (e.span, len(text))
        assert e.render()
        return
    assert isinstance(prog, ir.Program) and prog.probes
    for p in prog.probes:
        for e in p.exprs():
            assert e.span is not None


@_SETTINGS
@given(st.text(max_size=200))
def test_random_text(text):
    _check(text)


@_SETTINGS
@given(st.lists(st.sampled_from(VOCAB), max_size=40), st.lists(st.text(max_size=5), max_size=3))
def test_token_soup(tokens, positional):
    _check(" ".join(tokens), positional)
    _check("".join(tokens), positional)


@_SETTINGS
@given(st.sampled_from(range(len(SOURCES))), st.data())
def test_mutated_tools(i, data):
    src = SOURCES[i]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(src)))
        op = data.draw(st.sampled_from(["delete", "insert", "truncate"]))
        if op == "delete":
            n = data.draw(st.integers(1, 20))
            src = src[:pos] + src[pos + n:]
        elif op == "insert":
            src = src[:pos] + data.draw(st.sampled_from(VOCAB)) + src[pos:]
        else:
            src = src[:pos]
    _check(src)


def test_deep_nesting_is_a_parse_error():
    for text in ("BEGIN { $x = " + "(" * 5000 + "1" + ")" * 5000 + "; }",
                 "BEGIN { $x = " + "-" * 5000 + "1; }",
                 "BEGIN { " + "if (1) { " * 3000 + "}" * 3000 + " }"):
        _check(text)


# --------------------------------------------------------------------------- issue 14 shapes
# Depth, width and non-UTF-8 text, through the whole front end and the BPF compiler (fixture
# kernel): only UndertowError subclasses may escape, and whatever parses is within the
# parsers' nesting limits, so every later pass (resolve, compile, clone, the program cache's
# pickling) is safe.

import sys  # noqa: E402

from undertow.backends.bpf import progcache  # noqa: E402
from undertow.backends.bpf.compiler import compile_program  # noqa: E402
from undertow.errors import UndertowError  # noqa: E402
from undertow.kernel.arch import get_arch  # noqa: E402
from undertow.lang.resolve import resolve  # noqa: E402

sys.path.insert(0, HERE)
from lang_fakes import TYPES, FakeKernel  # noqa: E402

_DEEP = {  # opening, closing around a leaf; n of them nest n levels
    "parens": ("(", ")"), "neg": ("-", ""), "not": ("!", ""), "cast": ("(uint64)", ""),
    "deref": ("*", ""), "call": ("bswap(", ")"), "str": ("str(", ")"), "index": ("@m[", "]"),
    "ternary": ("pid ? 1 : ", ""), "tuple": ("(1, ", ")"),
}
_WIDE = ["&&", "||", "+", "-", "*", "&", "==", "<"]
_POSTFIX = ["->next", ".next", "[1]", ".1"]


def _pipeline(text):
    """parse -> resolve -> compile -> pickle: ParseError/UndertowError only."""
    try:
        prog = parse_program(text, "<fuzz>")
    except ParseError as e:
        assert e.span is not None and e.render()
        return
    for p in prog.probes:
        for e in p.exprs():
            assert ir.too_deep(e, ir.MAX_EXPR_DEPTH + 1) is None  # a Call/statement may add one level
    try:
        resolve(prog, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
        compiled = compile_program(prog, arch=get_arch("x86_64"), self_pid=4321)
    except UndertowError as e:
        assert e.render()
        return
    progcache._unpickle(progcache._pickle((1, "k", [], compiled)), None)


@st.composite
def shaped(draw):
    n = draw(st.sampled_from([1, 2, 10, 62, 63, 64, 65, 66, 200, 1000, 3000]))
    kind = draw(st.sampled_from(["deep", "wide", "postfix", "blocks", "elseif", "mixed"]))
    if kind == "deep":
        o, c = _DEEP[draw(st.sampled_from(sorted(_DEEP)))]
        return "BEGIN { @m[1] = 1; @x = " + o * n + "1" + c * n + "; }"
    if kind == "wide":
        op = draw(st.sampled_from(_WIDE))
        return "tracepoint:syscalls:sys_enter_openat /" + f" {op} ".join(f"pid != {i}" for i in range(n)) + \
            "/ { @x = count(); }"
    if kind == "postfix":
        return "kprobe:do_exit { @x = (uint64)((struct list_head *)arg0)" + draw(st.sampled_from(_POSTFIX)) * n + "; }"
    if kind == "blocks":
        word = draw(st.sampled_from(["if (pid) {", "while (pid) {", "unroll(2) {"]))
        return "BEGIN { " + (word + " ") * n + "@x = 1; " + "}" * n + " }"
    if kind == "elseif":
        return "BEGIN { if (pid == 0) { @x = 0; } " + "else if (pid) { @x = 1; } " * n + "}"
    k = min(n, 64)
    o, c = _DEEP[draw(st.sampled_from(sorted(_DEEP)))]
    return "BEGIN { @m[1] = 1; " + "if (pid) { " * k + "@x = " + o * k + "1" + c * k + "; " + "}" * k + " }"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(shaped())
def test_depth_and_width(text):
    _pipeline(text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(range(len(SOURCES))), st.binary(min_size=1, max_size=8), st.data())
def test_non_utf8_bytes_in_programs(i, raw, data):
    """Undecodable bytes (as argv and files deliver them: surrogate escapes) in strings,
    comments, names and formats."""
    src = SOURCES[i]
    bad = raw.decode("utf-8", "surrogateescape")
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(src)))
        src = src[:pos] + bad + src[pos:]
    _pipeline(src)
    _pipeline('BEGIN { printf("%s' + bad + '\\n", "' + bad + '"); @["' + bad + '"] = 1; exit(); }')
