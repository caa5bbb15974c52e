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
    "#else", "/*", "*/", "//", "\n", " ", "\t", "config", "A", "AF_INET", "\\", "`", "\x00", "é",
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
