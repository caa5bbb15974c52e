"""Bad input that used to break (issue 14): each gives one diagnostic, an UndertowError with a
caret where there is source, never another exception, a hang or a traceback.

The shapes: depth (500 ``->``, 500 casts, 3,000 nested blocks), width (1,000 ``&&`` terms),
non-UTF-8 text, special files where an ELF file is expected, offsets like ``+09``, and
semantics the parsers used to accept (``printf("%d", "str")``, malformed script structs,
``cpid`` without ``-c``). The CLI side (exit code 1, no traceback) is in
tests/live/test_bad_input_live.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys

import pytest

from undertow.backends.bpf import progcache
from undertow.backends.bpf.compiler import compile_program
from undertow.errors import ELFError, ParseError, ResolveError, Span, TypeCheckError, render_caret
from undertow.kernel.arch import get_arch
from undertow.kernel.elf import ELFFile, open_regular, read_ld_so_cache, resolve_object
from undertow.kernel.tracefs import Tracefs
from undertow.lang import ir
from undertow.lang.bt import parse_program
from undertow.lang.probeline import parse_line
from undertow.lang.resolve import resolve
from undertow.output import bt as out_bt
from undertow.output.values import safe_stream

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TRACEFS, TYPES, FakeKernel  # noqa: E402

LIMIT = ir.MAX_EXPR_DEPTH
DEEP = f"expression nested too deeply (limit {LIMIT} levels)"
BLOCKS = f"blocks nested too deeply (limit {ir.MAX_BLOCK_DEPTH} levels)"


def depth(e: ir.Expr) -> int:
    best, stack = 0, [(e, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        stack += [(c, d + 1) for c in n.children()]
    return best


def bt_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as ei:
        parse_program(text)
    e = ei.value
    assert e.span is not None and 0 <= e.span.start < e.span.end <= len(text) + 1
    assert e.render()
    return e


def compile_bt(text: str, **settings: object):  # type: ignore[no-untyped-def]
    p = parse_program(text)
    p.settings.update(settings)
    resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    return compile_program(p, arch=get_arch("x86_64"), self_pid=4321)


@contextlib.contextmanager
def no_hang(seconds: int = 10):  # type: ignore[no-untyped-def]
    """Fail (not hang) if the body blocks: opening a FIFO used to wait forever."""
    def boom(*_a: object) -> None:
        raise AssertionError("blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- depth and width: probe lines


@pytest.mark.parametrize("line", [
    "p _do_fork x=%0" + "->a" * 500,
    "p _do_fork x=" + "(struct sock *)" * 500 + "%0",
    "p _do_fork x=" + "-" * 500 + "%0",
    "p _do_fork x=" + "(" * 500 + "%0" + ")" * 500,
    "p _do_fork x=%0" + "[1]" * 500,
    "e sched/sched_switch f:prev_pid" + "+1" * 500 + "==3",
    "p _do_fork x=" + "@(struct iphdr *)" * 500 + "%0",
])
def test_probe_line_nested_too_deeply_is_a_parse_error(line):
    with pytest.raises(ParseError) as ei:
        parse_line(line)
    assert ei.value.message == DEEP
    assert ei.value.span is not None and ei.value.span.end <= len(line)
    assert "^" in ei.value.render()


def test_probe_line_at_the_limit_resolves():
    chain = "->next" * (LIMIT - 2)  # the cast, then LIMIT - 2 members: LIMIT levels
    line = f"p _do_fork x=(struct list_head *)%0{chain}"
    probe = parse_line(line)
    assert depth(probe.actions[0].fields[0].expr) == LIMIT
    resolve(ir.Program([probe]), FakeKernel(), arch="x86_64", types=TYPES)
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_line(line + "->next")


def test_probe_line_filter_of_1000_terms_is_shallow_and_keeps_its_order():
    terms = [f"prev_pid=={i}" for i in range(1000)]
    probe = parse_line("e sched/sched_switch f:" + "&&".join(terms))
    f = probe.filter
    assert depth(f) <= 20
    leaves = [e.right.value for e in f.walk() if isinstance(e, ir.Binary) and e.op == "=="]
    assert leaves == list(range(1000))  # left to right: short-circuit order unchanged
    resolve(ir.Program([probe]), FakeKernel(), arch="x86_64", types=TYPES)
    # short chains keep the shape (and the filter text) they always had: ((a && b) && c)
    small = parse_line("e sched/sched_switch f:prev_pid==1&&prev_pid==2&&prev_pid==3").filter
    assert isinstance(small.left, ir.Binary) and small.left.op == "&&" and small.right.op == "=="


# --------------------------------------------------------------------------- depth and width: bpftrace


def _nest(kind: str, n: int) -> str:
    """A program whose deepest part is ``n`` levels (expression levels or blocks)."""
    if kind == "parens":
        return "BEGIN { @x = " + "(" * (n - 1) + "1 + 1" + ")" * (n - 1) + "; }"
    if kind == "unary":
        return "BEGIN { @x = " + "~" * (n - 1) + "pid; }"
    if kind == "casts":
        return "BEGIN { @x = " + "(uint64)" * (n - 1) + "pid; }"
    if kind == "members":
        return "kprobe:do_exit { @x = (uint64)((struct list_head *)arg0)" + "->next" * (n - 3) + "; }"
    if kind == "plus":
        return "BEGIN { @x = pid" + " + pid" * (n - 1) + "; }"
    if kind == "calls":
        return "BEGIN { @x = " + "bswap(" * (n - 1) + "1" + ")" * (n - 1) + "; }"
    if kind == "ternary":
        return "BEGIN { @x = " + "pid ? 1 : " * (n - 1) + "0; }"
    if kind == "ifs":
        return "BEGIN { " + "if (pid) { " * n + "@x = 1; " + "}" * n + " }"
    if kind == "elseif":
        return "BEGIN { if (pid == 0) { @x = 0; } " + " ".join(
            f"else if (pid == {i}) {{ @x = {i}; }}" for i in range(1, n)) + " }"
    assert kind == "while"
    return "BEGIN { $i = 0; " + "while ($i < 1) { " * n + "$i++; " + "}" * n + " }"


EXPR_KINDS = ["parens", "unary", "casts", "members", "plus", "calls", "ternary"]
BLOCK_KINDS = ["ifs", "elseif", "while"]


@pytest.mark.parametrize("kind", EXPR_KINDS + BLOCK_KINDS)
def test_bt_nesting_at_the_limit_parses_and_one_past_is_an_error(kind):
    parse_program(_nest(kind, LIMIT))
    e = bt_error(_nest(kind, LIMIT + 1))
    assert e.message == (BLOCKS if kind in BLOCK_KINDS else DEEP)
    assert e.hints


@pytest.mark.parametrize("text", [
    "BEGIN { $x = " + "(" * 5000 + "1" + ")" * 5000 + "; }",
    "BEGIN { @x = curtask" + "->parent" * 500 + "; }",
    "BEGIN { @x = " + "(uint64)" * 500 + "pid; }",
    "BEGIN { " + "if (1) { " * 3000 + "}" * 3000 + " }",
    "BEGIN { if (1) {} " + "else if (1) {} " * 3000 + "}",
    "BEGIN { @m[" + "@m[" * 500 + "1" + "]" * 500 + "] = 1; @m[1] += 1; }",
    "BEGIN { @x = " + "1 ? 1 : " * 3000 + "1; }",
    "#if " + "(" * 3000 + "1" + ")" * 3000 + "\n#endif\nBEGIN { }",
])
def test_bt_deep_input_is_a_parse_error_with_a_caret(text):
    e = bt_error(text)
    assert "nested too deeply" in e.message and e.span != Span(0, 1)


def test_bt_filter_of_1000_terms_compiles():
    text = ("tracepoint:syscalls:sys_enter_openat /" + " && ".join(f"pid != {i}" for i in range(1000))
            + "/ { @x = count(); }")
    prog = parse_program(text)
    assert depth(prog.probes[0].filter) <= 20
    c = compile_bt(text)
    assert len(c.probes[0].program) > 1000


def test_every_pass_stays_inside_the_recursion_limit_at_the_limits():
    """The worst case the parsers let through (64 nested blocks around a 64-level expression)
    parses, resolves, compiles, copies and goes through the program cache's pickling with
    Python's default recursion limit, and with room to spare."""
    assert sys.getrecursionlimit() >= 1000
    n = LIMIT
    for inner in ("bswap(" * (n - 1) + "1" + ")" * (n - 1), "(uint64)" * (n - 1) + "pid",
                  "pid ? 1 : " * (n - 1) + "0"):
        text = "BEGIN { " + "if (pid) { " * n + f"@x = {inner}; " + "}" * n + " }"
        prog = parse_program(text)
        ir.clone(prog.probes)
        c = compile_bt(text)
        data = progcache._pickle((1, "key", [], c))
        assert progcache._unpickle(data, None) is not None


def test_walk_and_clone_do_not_recurse_per_level():
    e: ir.Expr = ir.Const(1)
    for _ in range(5000):
        e = ir.Unary("-", e)
    assert sum(1 for _ in e.walk()) == 5001
    assert ir.too_deep(e, 64) is not None and ir.too_deep(ir.Const(1)) is None
    shared = ir.Var("$x")
    b = ir.Binary("+", shared, shared)
    b2 = ir.clone(b)
    assert b2 is not b and b2.left is b2.right and b2.left is not shared


# --------------------------------------------------------------------------- non-UTF-8 text


def test_string_escapes_and_raw_bytes_are_the_exact_bytes():
    prog = parse_program('BEGIN { printf("%s %s %s\\n", "a\\xff", "\\303\\251", "b\udcfe"); @c = \'\\xff\'; }')
    pf = prog.probes[0].actions[0]
    assert [ir.text_bytes(a.value) for a in pf.args] == [b"a\xff", b"\xc3\xa9", b"b\xfe"]
    assert prog.probes[0].actions[1].value.value == 0xFF
    assert ir.text_bytes("é\ud800") == b"\xc3\xa9\xed\xa0\x80"  # never raises


def test_program_with_non_utf8_strings_resolves_and_compiles():
    text = 'BEGIN { printf("%s|\udcff\\n", "a\\xff"); @m["\udcfe"] = 1; if (comm == "a\\xff") { exit(); } }'
    prog = parse_program(text)
    resolve(prog, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    assert prog.probes[0].actions[0].args[0].type.size == 3  # 'a', 0xff, NUL
    compile_program(prog, arch=get_arch("x86_64"), self_pid=4321)


def test_filter_with_an_undecodable_byte_is_written_as_that_byte(tmp_path):
    dst = str(tmp_path / "tracing")
    shutil.copytree(TRACEFS, dst)
    probe = parse_line('e sched/sched_switch f:prev_comm=="a\udcff"')
    assert ir.text_bytes(probe.filter.right.value) == b"a\xff"
    target = os.path.join(dst, "filter_test")
    open(target, "w").close()
    Tracefs(dst).write("filter_test", 'prev_comm=="a\udcff"')
    with open(target, "rb") as f:
        assert f.read() == b'prev_comm=="a\xff"'


def test_output_escapes_kernel_bytes_and_json_stays_utf8():
    assert out_bt.format_printf("%c|%c|%c", [0x1B, 0xFF, 65], ["int"] * 3, lambda v, k: str(v)) == "\\x1b|\\xff|A"
    from undertow.output.btjson import message

    line = message("printf", "a\udcff|\ud800")
    line.encode("utf-8")  # strict: no lone surrogate escapes
    assert json.loads(line)["data"] == "a\\xff|\\ud800"


def test_stdout_in_a_strict_locale_writes_the_users_bytes():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    safe_stream(stream)
    stream.write("a\udcff é \ud800\n")
    stream.flush()
    assert raw.getvalue() == b"a\xff \xc3\xa9 \\ud800\n"


def test_caret_under_an_undecodable_byte_is_aligned():
    text = 'e a/b f:comm=="\udcff'
    out = render_caret(text, Span(14, 16), "error: unterminated string")
    shown, caret = out.splitlines()[1:3]
    assert "\\xff" in shown and "\udcff" not in out
    assert caret.index("^") == shown.index('"\\xff') and caret.count("~") == 4


# --------------------------------------------------------------------------- special files


@pytest.fixture
def fifo(tmp_path):  # type: ignore[no-untyped-def]
    path = str(tmp_path / "F")
    os.mkfifo(path)
    return path


def test_a_fifo_is_not_opened_as_an_elf_file(fifo):
    with no_hang():
        for call in (lambda: open_regular(fifo), lambda: ELFFile(fifo), lambda: resolve_object(fifo)):
            with pytest.raises(ELFError) as ei:
                call()
            assert ei.value.message == f"{fifo} is not a regular file (a FIFO)"
        assert read_ld_so_cache(fifo) == []


def test_devices_and_directories_are_refused_and_symlinks_followed(tmp_path):
    with pytest.raises(ELFError, match=r"/dev/null is not a regular file \(a character device\)"):
        ELFFile("/dev/null")
    with pytest.raises(ELFError, match="is a directory"):
        ELFFile(str(tmp_path))
    link = str(tmp_path / "python")
    os.symlink(os.path.realpath(sys.executable), link)
    with ELFFile(link) as f:
        assert f.elf_type in ("EXEC", "DYN")


def test_uprobe_on_a_fifo_is_a_resolve_error_at_the_path(fifo):
    line = f"P {fifo}:main"
    with no_hang():
        with pytest.raises(ResolveError) as ei:
            resolve(ir.Program([parse_line(line)]), FakeKernel(), arch="x86_64", types=TYPES)
    e = ei.value
    assert "not a regular file (a FIFO)" in e.message and line[e.span.start:e.span.end] == fifo
    text = f"uprobe:{fifo}:main {{ }}"
    prog = parse_program(text)
    with no_hang():
        with pytest.raises(ResolveError) as ei:
            resolve(prog, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    assert text[ei.value.span.start:ei.value.span.end] == fifo


def test_cat_of_a_fifo_does_not_block(fifo):
    with no_hang():
        assert out_bt._cat(fifo) == ("", f"failed to open file '{fifo}': not a regular file")
    assert out_bt._cat(fifo + ".missing") == ("", f"failed to open file '{fifo}.missing': No such file or directory")


# --------------------------------------------------------------------------- semantics


def _type_error(text: str, **settings: object) -> TypeCheckError:
    with pytest.raises(TypeCheckError) as ei:
        compile_bt(text, **settings)
    return ei.value


@pytest.mark.parametrize("text,msg,bad", [
    ('BEGIN { printf("%d\\n", "str"); }', "printf: %d specifier expects a value of type integer (string supplied)",
     '"str"'),
    ('BEGIN { printf("%s %s\\n", comm, pid); }', "printf: %s specifier expects a value of type string "
     "(integer supplied)", "pid"),
    ('BEGIN { printf("%x\\n", (1, 2)); }', "(tuple supplied)", "(1, 2)"),
    ('BEGIN { printf("%r\\n", comm); }', "%r specifier expects a value of type buffer (string supplied)", "comm"),
    ('BEGIN { system("echo %d", comm); }', "system: %d specifier expects a value of type integer", "comm"),
])
def test_printf_argument_types(text, msg, bad):
    e = _type_error(text, unsafe=True)
    assert msg in e.message
    assert text[e.span.start:e.span.end] == bad


def test_printf_accepts_what_bpftrace_accepts():
    compile_bt('kprobe:do_exit { printf("%s %d %x %p %s %s %u %c %-5s|%5d %%\\n", comm, pid, curtask, curtask, '
               'kstack, ksym(arg0), (uint8)1, 65, "ab", 7); }')


@pytest.mark.parametrize("text,msg,bad", [
    ("struct Foo { int a; char a; }\nBEGIN { }", "duplicate member 'a' in struct Foo", "a"),
    ("struct Foo { char char c; }\nBEGIN { }", "bad type 'char char' for member 'c' of struct Foo", "char char"),
    ("struct Foo { struct struct x; }\nBEGIN { }", "bad type 'struct struct'", "struct struct"),
    ("struct Foo { unsigned signed x; }\nBEGIN { }", "one of signed or unsigned", "unsigned signed"),
    ("struct Foo { short long x; }\nBEGIN { }", "'short' and 'long' together", "short long"),
    ("struct Foo { int int; }\nBEGIN { }", "has no name ('int' is a C keyword)", "int"),
    ("struct Foo { int a; }\nstruct Foo { int b; }\nBEGIN { }", "struct Foo is defined twice", "Foo"),
])
def test_malformed_script_structs(text, msg, bad):
    e = bt_error(text)
    assert msg in e.message
    got = text[e.span.start:e.span.end]
    assert got == bad or (bad == "Foo" and got == "Foo" and e.span.start > text.index("\n"))


def test_script_structs_as_c_writes_them():
    p = parse_program("struct Foo { unsigned long long int a; const struct path *p; u64 b; long int c; "
                      "short int d; signed char e[4]; int f : 3; }\nBEGIN { }")
    assert [m.name for m in p.settings["c_structs"]["struct Foo"].members] == ["a", "p", "b", "c", "d", "e", "f"]


def test_cpid_needs_a_child_command():
    text = "tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @ = count(); }"
    e = _type_error(text)
    assert e.message == "cpid cannot be used without child command"
    assert text[e.span.start:e.span.end] == "cpid" and any("-c" in h for h in e.hints)
    compile_bt(text, cpid=1234)


# --------------------------------------------------------------------------- found by fuzzing the CLI


@pytest.mark.parametrize("stmt,msg,bad", [
    ("@h[*(struct task_struct *)arg0] = count();", "a whole struct task_struct cannot be a map key",
     "*(struct task_struct *)arg0"),
    ("@x = *(struct task_struct *)arg0;", "cannot be a map value", "*(struct task_struct *)arg0"),
    ("$x = *(struct task_struct *)arg0;", "cannot be a variable's value", "*(struct task_struct *)arg0"),
    ("print(*(struct task_struct *)arg0);", "cannot be printed", "*(struct task_struct *)arg0"),
    ("@t = (1, *(struct task_struct *)arg0);", "cannot be a tuple element", "*(struct task_struct *)arg0"),
    ("@z = (int32)*(struct task_struct *)arg0;", "cannot cast a whole struct task_struct to int32",
     "(int32)*(struct task_struct *)arg0"),
    ("@x = (1, 2); @x = (1, \"a\");", "@x holds (s64, s64); it cannot also hold (s64, string[2])", '(1, "a")'),
    ("@x = 1; @x = \"a\";", "@x holds s64; it cannot also hold string[2]", '"a"'),
    ("@x = bswap(\"a\");", "bswap() needs an integer", '"a"'),
    ("@x = ksym(comm);", "ksym() needs an integer", "comm"),
])
def test_values_without_a_layout_or_of_another_type(stmt, msg, bad):
    """These reached the BPF compiler and ended in a TypeError traceback or an error without a caret."""
    text = "kprobe:do_exit { " + stmt + " }"
    e = _type_error(text)
    assert msg in e.message and text[e.span.start:e.span.end] == bad


@pytest.mark.parametrize("text,msg,bad", [
    ("BEGIN { unroll(100) { unroll(100) { unroll(2) { @x = 1; } } } }",
     "nested unroll() repeats this body 20000 times (limit 10000)", "2"),
    ("\n".join(["#define A0 1"] + [f"#define A{i} (A{i - 1}+A{i - 1})" for i in range(1, 17)])
     + "\nBEGIN { @x = A16; }", "macros expand more than 10000 times", None),
    ("BEGIN { @h = lhist(1, 0, 1000000000000000000, 1); }", "lhist() too many buckets, will exceed 1000", "1"),
    ("BEGIN { @h = lhist(1, -10, 10, 1); }", "lhist() min must be non-negative", "-10"),
    ('BEGIN { printf("%*d\\n", 5, 1); }', "printf: '*' widths and precisions are not supported", "%*d"),
    ('BEGIN { printf("%99999999999999999999d\\n", 1); }', "is too large (limit 4096)",
     "%99999999999999999999d"),
    ("kprobe:do_exit+99999999999999999999 { }", "offset +99999999999999999999 is too large",
     "+99999999999999999999"),
])
def test_inputs_that_made_the_compiler_or_the_output_blow_up(text, msg, bad):
    e = bt_error(text)
    assert msg in e.message
    if bad is not None:
        assert text[e.span.start:e.span.end] == bad


@pytest.mark.parametrize("line", ["p foo x=\u00b2", "p foo+\u0663", "e a/b f:pid==\u0661\u0662"])
def test_digits_of_other_scripts_are_not_numbers(line):
    """'²' passed str.isdigit() and then failed an assertion; '٣' was read as 3."""
    with pytest.raises(ParseError):
        parse_line(line)


def test_probe_line_offsets_past_64_bits_and_file_names_with_nul():
    with pytest.raises(ParseError, match=r"offset \+99999999999999999999 is too large"):
        parse_line("p _do_fork+99999999999999999999")
    from undertow.lang.probeline import parse_file

    with pytest.raises(ParseError, match="cannot read probe file"):
        parse_file("probes\x00.txt")
