"""SystemTap's ``=~`` (issue 19): POSIX extended regular expressions parsed by
lang/regex.py, searched with Python's re in handlers run here and by a DFA in BPF."""

import os
import random
import sys

import pytest

from undertow.errors import SourceError
from undertow.lang import ir
from undertow.lang.regex import DEAD, MATCH, RegexError, compile_dfa, parse, to_python

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_stap import build, printfs, walk_actions  # noqa: E402

PATTERNS = [
    r"(\.tar\.(gz|bz2|xz)|\.zip|\.tgz|\.tbz)$", "AF_INET*", "^a.c$", "^$", "x{2,3}y", "x{2,}", "(ab){1,2}c",
    "[[:digit:]]+-[^a-c]", "^(ab|cd)+e?$", "b$|^a", r"\^\$", "[]a]", "[^]a]z", "a|", "(|a)b", "[a-c-]x",
]


@pytest.mark.parametrize("pat", PATTERNS)
def test_dfa_agrees_with_a_search_of_the_same_expression(pat):
    dfa, rx = compile_dfa(pat), to_python(pat)
    rnd = random.Random(pat)
    alphabet = b"abcdexyz.tgzip01-AF_INET]^$"
    for _ in range(4000):
        s = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 9)))
        assert dfa.run(s) == bool(rx.search(s)), (pat, s)
    # the string ends at its first NUL, as a C string does
    assert dfa.run(b"foo\0.zip") == bool(rx.search(b"foo"))


def test_dfa_shapes():
    assert compile_dfa("a*").start_matches  # matches every string, even ""
    d = compile_dfa("^abc")
    (r1, r2, r3) = d.trans[0]
    assert r1 == (1, 96, DEAD) and r3 == (98, 255, DEAD) and r2[:2] == (97, 97) and r2[2] >= 0
    assert any(t == MATCH for row in compile_dfa("abc").trans for lo, hi, t in row)
    d = compile_dfa("x$")
    assert not d.at_end[0] and any(d.at_end)


@pytest.mark.parametrize("pat,msg", [
    ("(ab", "'(' without ')'"), ("ab)", "unmatched ')'"), ("*a", "nothing to repeat"), ("[ab", "without ']'"),
    ("a{3,1}", "bad repetition"), (r"(a)\1", "back-references"), ("[[:foo:]]", "unknown character class"),
    ("a\\", "trailing backslash"), ("[z-a]", "ends before it starts"),
])
def test_bad_expressions_are_refused_with_the_offset(pat, msg):
    with pytest.raises(RegexError) as e:
        parse(pat)
    assert msg in e.value.msg


def test_too_many_states_are_refused():
    with pytest.raises(RegexError) as e:
        compile_dfa("(a|b)*a(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)")  # 2^7 states: the classic blow-up
    assert "automaton states" in e.value.msg


def test_a_string_probe_variable_is_matched_in_bpf():
    prog = build('probe syscall.openat { if (filename =~ "\\\\.(gz|xz)$") printf("%s\\n", filename) }')
    conds = [a.cond for a in walk_actions(prog.probes[0].actions) if isinstance(a, ir.If)]
    calls = [e for c in conds for e in c.walk() if isinstance(e, ir.Call) and e.name == "regex_match"]
    assert len(calls) == 1 and calls[0].args[1].value == "\\.(gz|xz)$"
    prog = build('probe syscall.openat { if (filename !~ "x") printf("%s\\n", filename) }')
    cond = next(a.cond for a in walk_actions(prog.probes[0].actions) if isinstance(a, ir.If))
    assert isinstance(cond, ir.Unary) and cond.op == "!"


def test_the_bpf_matcher_compiles_to_a_bounded_loop():
    from undertow.backends.bpf.compiler import compile_program
    from undertow.kernel.arch import get_arch
    from undertow.lang.resolve import resolve

    from lang_fakes import FakeKernel

    prog = build('probe syscall.openat { if (filename =~ "\\\\.(tar\\\\.gz|zip)$") printf("%s\\n", filename) }')
    resolve(prog, FakeKernel(), strict_kprobes=False, types=None, arch="x86_64")
    compiled = compile_program(prog, arch=get_arch("x86_64"), self_pid=1)
    listing = compiled.probes[0].program.listing()
    assert "goto pc-" in listing  # the walk's back edge: one loop, not one copy per byte
    assert len(compiled.probes[0].program) < 1000


def test_enumerated_names_are_matched_at_translation():
    prog = build('probe syscall.connect { if (uaddr_af =~ "^AF_INET6?$") printf("%d\\n", pid()) }')
    cond = next(a.cond for a in walk_actions(prog.probes[0].actions) if isinstance(a, ir.If))
    consts = {e.value for e in cond.walk() if isinstance(e, ir.Const)}
    assert {2, 10} <= consts and not any(isinstance(e, ir.Call) for e in cond.walk())


def test_literals_fold_and_bad_expressions_have_a_place():
    prog = build('probe begin { if ("abc" =~ "b.") printf("yes\\n") }')
    assert printfs(prog)
    with pytest.raises(SourceError) as e:
        build('probe syscall.openat { if (filename =~ "(ab") printf("x\\n") }')
    assert "bad regular expression" in e.value.message and e.value.span.start > 30
    with pytest.raises(SourceError) as e:
        build('probe syscall.openat { p = "x"; if (filename =~ p) printf("x\\n") }')
    assert "literal" in e.value.message
    with pytest.raises(SourceError) as e:
        build('probe syscall.openat { if (pid() =~ "1") printf("x\\n") }')
    assert "number" in e.value.message


def test_uaddr_ip_compares_with_an_address():
    prog = build('probe syscall.connect { if (uaddr_ip == "127.0.0.1") printf("%d\\n", pid()) }')
    cond = next(a.cond for a in walk_actions(prog.probes[0].actions) if isinstance(a, ir.If))
    consts = {e.value for e in cond.walk() if isinstance(e, ir.Const)}
    assert int.from_bytes(bytes([127, 0, 0, 1]), sys.byteorder) in consts


def test_handlers_here_search_and_keep_the_match():
    from undertow.lang.stap.userspace import Interpreter, Store

    class Maps(Store):
        def entries(self, name):
            return [(("eth0",), 1), (("lo",), 2), (("wlan1",), 3)]

        def clear(self, name):
            pass

    text = ("global a\nprobe syscall.openat { a[execname()] = 1 }\n"
            "probe end { foreach (n in a+) if (n =~ \"^([a-z]+)([0-9])$\") printf(\"%s:%s \", matched(1),"
            " matched(2)); if (\"x\" !~ \"y\") println(\"no\") }")
    prog = build(text)
    out = []
    interp = Interpreter(prog.settings["stap_script"], Maps(), out.append, [], 0, prog.settings["stap_gtypes"])
    assert interp.run(prog.settings["stap_user"][0])
    assert "".join(out) == "eth:0 wlan:1 no\n"


def test_handlers_here_write_globals_into_the_maps_or_keep_them():
    from undertow.lang.stap.userspace import Interpreter, Store

    class Maps(Store):
        def __init__(self):
            self.data = {"@n": [((), 5)], "@seen": [((7,), 2), ((8,), 1)]}
            self.writes = []

        def entries(self, name):
            return self.data.get(name, [])

        def clear(self, name):
            self.data.pop(name, None)

        def set(self, name, key, value):
            if name not in self.data:
                return False
            self.writes.append((name, key, value))
            return True

        def delete(self, name, key):
            self.writes.append((name, key, None))
            return True

    text = ("global n, seen, kept\nprobe syscall.openat { n++; seen[tid()]++ }\n"
            "probe timer.s(1) { foreach (t in seen) { if (seen[t] > 1) delete seen[t] } "
            "printf(\"%d %d\\n\", n, kept); n = 0; kept += 2 }")
    prog = build(text)
    maps = Maps()
    interp = Interpreter(prog.settings["stap_script"], maps, [].append, [], 0, prog.settings["stap_gtypes"])
    out = []
    interp.write = out.append
    assert interp.run(prog.settings["stap_user"][0])
    assert interp.run(prog.settings["stap_user"][0])
    assert ("@seen", (7,), None) in maps.writes and ("@seen", (8,), None) not in maps.writes
    assert ("@n", (), 0) in maps.writes
    assert "".join(out) == "5 0\n5 2\n"  # n comes again from the (fake) map; kept is kept here


def test_statistics_cannot_be_added_to_here():
    with pytest.raises(SourceError) as e:
        build("global s, a\nprobe syscall.openat { a[pid()]++ }\nprobe end { foreach (p in a) s <<< p }")
    assert "<<<" in e.value.message


def test_map_keys_and_values_encode_as_decoded():
    from undertow.backends.bpf.layout import Slot, decode, encode

    key = Slot("tuple", 24, elems=[(0, Slot("int", 8, True)), (8, Slot("str", 16))])
    raw = encode(key, (-3, "eth0"))
    assert len(raw) == 24 and decode(key, raw) == (-3, "eth0")
    with pytest.raises(ValueError):
        encode(Slot("int", 8, True), "x")
