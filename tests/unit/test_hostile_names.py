"""Hostile names never change a program's meaning (issue 14).

Values from outside (file names, process names, cgroup paths) reach program text only as
string literals made by :func:`undertow.lang.bt.quote_string`: the parsed literal is the
value's exact bytes, and the program's structure (probes, filters) is that of a benign name.
Every tool's program builder is fed the same hostile values.
"""

from __future__ import annotations

import os
import re
import types

import pytest

from undertow import cli
from undertow.errors import UsageError
from undertow.lang import ir
from undertow.lang.bt import parse_program, quote_string

HOSTILE = [
    'inj" || comm == "x',            # closes the literal, adds a condition
    'ends in a backslash\\',
    "new\nline",
    "nul\x00byte",                   # no file name holds one; the literal still must
    os.fsdecode(b"bad \xff\xfe utf-8"),
    "${HOME} $(id) `id` $1 $#",
    "\x1b]0;pwned\x07 \r\t",
    "single ' quote",
    "caf\u00e9 \u202e",
    "/*comment*/ //",
    "x" * 4096,
]
IDS = ["quote", "backslash", "newline", "nul", "not-utf8", "dollars", "controls", "squote", "unicode",
       "comment", "4KiB"]


def _nodes(obj):
    """Every IR expression under ``obj`` (a probe, an action, a list of them)."""
    if isinstance(obj, ir.Expr):
        yield from obj.walk()
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _nodes(x)
    elif isinstance(obj, ir.Node):
        for name in ir.slot_names(type(obj)):
            if name not in ("span", "type"):
                yield from _nodes(getattr(obj, name, None))


def _strings(obj):
    return [n.value for n in _nodes(obj) if isinstance(n, ir.Const) and isinstance(n.value, str)]


def _shape(e):
    """An expression's structure, string literals blanked."""
    if e is None:
        return None
    if isinstance(e, ir.Const):
        return ("str",) if isinstance(e.value, str) else ("const", e.value)
    kids = tuple(_shape(c) for c in e.children())
    return (type(e).__name__, getattr(e, "op", None), getattr(e, "name", None), kids)


# ------------------------------------------------------------------ the one escaping function


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_literal_is_the_exact_bytes(value):
    for v in (value, os.fsencode(value)):
        lit = quote_string(v)
        assert lit.isascii() and lit.isprintable() and lit[0] == lit[-1] == '"'
        prog = parse_program(f'tracepoint:syscalls:sys_enter_openat /str(args.filename) == {lit}/ '
                             f'{{ printf("%s\\n", {lit}); }}')
        assert len(prog.probes) == 1
        p = prog.probes[0]
        assert isinstance(p.filter, ir.Binary) and p.filter.op == "=="
        assert isinstance(p.filter.right, ir.Const)
        assert os.fsencode(p.filter.right.value) == os.fsencode(value)
        assert p.filter.right.value == value  # the same str a file name decodes to
        assert len(p.actions) == 1 and [os.fsencode(s) for s in _strings(p.actions)][-1] == os.fsencode(value)


def test_escapes_are_bytes():
    """``\\xHH``/``\\NNN`` are bytes (as in bpftrace): the str is their surrogateescape decoding."""
    def lit(text):
        return parse_program(f'BEGIN {{ printf("%s", "{text}"); }}').probes[0].actions[0].args[0].value

    assert lit(r"\xff") == "\udcff" and lit(r"\377") == "\udcff"
    assert lit(r"\xc3\xa9") == "\u00e9"  # UTF-8 bytes one by one make the character
    assert lit(r"\x41\x00") == "A\x00"
    chars = parse_program("BEGIN { @[0] = '\\xff'; @[1] = 'a'; }").probes[0].actions
    assert [a.value.value for a in chars] == [255, 97]


@pytest.mark.parametrize("value", [v for v in HOSTILE if len(v) < 200], ids=[i for i, v in zip(IDS, HOSTILE)
                                                                                 if len(v) < 200])
def test_compiler_compares_the_exact_bytes(value):
    """The BPF code compares the string read with exactly the literal's bytes (and its NUL)."""
    from test_bpf_compiler import compile_bt, listing

    c = compile_bt(f'tracepoint:syscalls:sys_enter_openat /str(args.filename) == {quote_string(value)}/ '
                   '{ printf("x"); }')
    t = listing(c)
    t = t[t.index("; call str"):]  # after the stop-flag test every probe starts with
    seen = [int(x, 16) for x in re.findall(r"if r1 != (0x[0-9a-f]+) goto", t)]
    assert seen == list(os.fsencode(value)) + [0]


# ------------------------------------------------------------------ filewatch


def _watch(path, ino):
    from undertow.tools.filewatch import Watch

    return Watch.known(path, ino, 8)  # no stat(): a name no file can have (NUL) goes through the builder too


def _filewatch(path, all_ops, hooks="syscalls"):
    from undertow.tools.filewatch import program

    return parse_program(program([_watch(path, 11), _watch("/etc/passwd", 12)], all_ops, hooks=hooks),
                         origin="<fw>")


def _sig(obj):
    """The node types of a program part in order, string literals blanked."""
    return [(type(n).__name__, getattr(n, "op", None)) for n in _nodes(obj)]


@pytest.mark.parametrize("hooks", ["syscalls", "vfs"])
@pytest.mark.parametrize("all_ops", [False, True], ids=["writes", "all"])
@pytest.mark.parametrize("name", [v for v in HOSTILE if len(v) < 200 and "/" not in v],
                         ids=[i for i, v in zip(IDS, HOSTILE) if len(v) < 200 and "/" not in v])
def test_filewatch_program_keeps_its_shape(name, all_ops, hooks):
    """A hostile file name gives the program of a benign one, with the name's exact bytes
    where the benign name's are (the whole path, the path from each directory, the name)."""
    path = "/tmp/" + name
    base = _filewatch("/tmp/benign", all_ops, hooks)
    prog = _filewatch(path, all_ops, hooks)
    assert len(prog.probes) == len(base.probes)
    seen = 0
    for p, b in zip(prog.probes, base.probes):
        assert [a.describe() for a in p.attach] == [a.describe() for a in b.attach]
        assert _sig([p.filter, p.actions]) == _sig([b.filter, b.actions])
        ps, bs = _strings([p.filter, p.actions]), _strings([b.filter, b.actions])
        assert len(ps) == len(bs)
        for x, y in zip(ps, bs):
            if y in ("/tmp/benign", "tmp/benign", "benign"):
                assert os.fsencode(x) == os.fsencode(y.replace("benign", name))
                seen += 1
            else:
                assert x == y
    assert seen > 0  # the name is compared (path-based calls, the name of an opened file)


def test_filewatch_long_paths():
    """A path-based comparison reads at most 255 bytes: a longer path is compared by the forms
    relative to its deeper directories that fit; writes are matched by inode, any length."""
    from undertow.tools.filewatch import path_limit, program

    limit = path_limit()
    assert limit == 255
    at = "/" + "d" * (limit - 1)
    assert len(os.fsencode(at)) == limit
    prog = parse_program(program([_watch(at, 1)], True))
    assert any(os.fsencode(s) == os.fsencode(at) for p in prog.probes for s in _strings([p.filter, p.actions]))
    long = "/tmp/" + "/".join(["y" * 200] * 20)  # 4 KiB
    prog = parse_program(program([_watch(long, 1)], True))
    lits = [os.fsencode(s) for p in prog.probes for s in _strings([p.filter, p.actions])]
    assert os.fsencode("y" * 200) in lits and max(len(x) for x in lits) <= limit
    # a multi-byte name is measured in bytes
    prog = parse_program(program([_watch("/" + "\u00e9" * 128, 1)], True))
    assert not any(s.startswith("/\u00e9") for p in prog.probes for s in _strings([p.filter, p.actions]))


# ------------------------------------------------------------------ every tool's program builder


class _FakeTracefs:
    def events(self, pattern):
        return [pattern]


class _FakeKernel:
    def tracefs(self, mount=True):
        return _FakeTracefs()


TOOLS = ["dns", "icmp", "arp", "inbound", "connect", "exit", "modules", "filewatch"]


def _programs(monkeypatch, tmp_path, cmd, extra):
    """The program text (and the args) each tool hands to run_tool for this command line."""
    import undertow.kernel
    import undertow.tools.bpftool as bpftool
    import undertow.tools.filewatch as fw
    import undertow.tools.inbound as inbound

    got = []

    def fake_run_tool(args, name, program, *a, **kw):
        got.append((program, args))
        return []

    monkeypatch.setattr(bpftool, "run_tool", fake_run_tool)
    monkeypatch.setattr(undertow.kernel, "Kernel", _FakeKernel)
    monkeypatch.setattr(fw, "kernel_identity", lambda ws, kernel: None)
    monkeypatch.setattr(inbound, "drop_reasons", lambda kernel: {})
    argv = [cmd] + extra + ([str(tmp_path / "watched")] if cmd == "filewatch" else [])
    assert cli.main(argv) == 0
    assert len(got) == 1
    return got[0]


@pytest.mark.parametrize("cmd", TOOLS)
def test_tool_programs_do_not_depend_on_hostile_options(cmd, monkeypatch, tmp_path, capsys):
    """--comm/--cgroup are matched in user space and --pid is an int given to the compiler:
    none of them is pasted into the program, whatever it holds."""
    (tmp_path / "watched").write_text("")
    base, _ = _programs(monkeypatch, tmp_path, cmd, [])
    for value in HOSTILE:
        if "\x00" in value:
            continue  # argv cannot hold a NUL
        text, args = _programs(monkeypatch, tmp_path, cmd, ["--comm", value, "--cgroup", value,
                                                            "--pid", str(os.getpid())])
        assert text == base
        assert args.comm == value and args.cgroup == value
        assert args.pid is None or type(args.pid) is int
        prog = parse_program(text)
        assert all(value not in s for p in prog.probes for s in _strings([p.filter, p.actions]))
    capsys.readouterr()


def test_filewatch_command_puts_the_watched_name_in_as_its_bytes(monkeypatch, tmp_path, capsys):
    """The whole command: a real file with a hostile name, --all."""
    name = os.fsdecode(b'inj" || comm == "x \\ \xff\n$(id)')
    f = tmp_path / name
    f.write_text("")
    (tmp_path / "watched").write_text("")
    import undertow.kernel
    import undertow.tools.bpftool as bpftool
    import undertow.tools.filewatch as fw

    got = []
    monkeypatch.setattr(bpftool, "run_tool", lambda args, name_, program, *a, **kw: got.append(program) or [])
    monkeypatch.setattr(undertow.kernel, "Kernel", _FakeKernel)
    monkeypatch.setattr(fw, "kernel_identity", lambda ws, kernel: None)
    assert cli.main(["filewatch", "--all", str(f)]) == 0
    prog = parse_program(got[0])
    lits = {os.fsencode(s) for p in prog.probes for s in _strings([p.filter, p.actions])}
    rel = str(f).split("/")[1:]
    assert {os.fsencode("/".join(rel[i:])) for i in range(len(rel))} | {os.fsencode(str(f))} <= lits
    assert not [x for x in lits if b"inj" in x and not x.endswith(os.fsencode(name))]
    # 4 KiB: watched (path-based calls by the relative forms that fit)
    deep = tmp_path
    while len(os.fsencode(str(deep))) < 4096 - 300:
        deep = deep / ("z" * 240)
    os.makedirs(deep)
    long = deep / "file"
    long.write_text("")
    assert 3800 < len(os.fsencode(str(long))) < 4096  # PATH_MAX (4096) counts the NUL
    got.clear()
    assert cli.main(["filewatch", "--all", str(long)]) == 0 and got
    got.clear()
    assert cli.main(["filewatch", str(long)]) == 0 and got
    # longer than PATH_MAX: the kernel refuses the name, undertow says so in one line
    assert cli.main(["filewatch", str(long) + "/" + "w" * 200]) == 2
    err = capsys.readouterr().err
    assert err.startswith("undertow filewatch: error: cannot watch ") and "Traceback" not in err


def test_exec_passes_no_value_into_its_probe_line(monkeypatch):
    """Without BPF: the ftrace probe line holds no value of the command line."""
    import undertow.api
    from undertow.commands import exec as exec_cmd

    seen = []

    class _Tracer:
        def __init__(self, *lines, **kw):
            seen.append((lines, kw))

    monkeypatch.setattr(exec_cmd, "_bpf_usable", lambda: False)
    monkeypatch.setattr(undertow.api, "trace", _Tracer)
    monkeypatch.setattr("undertow.tools.common.run_loop", lambda *a, **kw: types.SimpleNamespace())
    assert cli.main(["exec", "--comm", HOSTILE[0], "--cgroup", HOSTILE[1], "--pid", str(os.getpid())]) == 0
    (lines, kw), = seen
    assert lines == ("e sched/sched_process_exec",) and kw["pid"] == os.getpid() and type(kw["pid"]) is int


def test_exec_program_holds_only_the_pid(monkeypatch):
    """With BPF: --comm/--cgroup are matched in user space; --pid enters the program as an
    integer (it follows the process's children), never as text of the command line."""
    from undertow.commands import exec as exec_cmd
    from undertow.tools import bpftool

    got = []
    monkeypatch.setattr(exec_cmd, "_bpf_usable", lambda: True)
    monkeypatch.setattr(bpftool, "run_tool", lambda args, name_, program, *a, **kw: got.append((args, program)) or [])
    assert cli.main(["exec", "--comm", HOSTILE[0], "--cgroup", HOSTILE[1], "--pid", str(os.getpid())]) == 0
    (args, program), = got
    assert args.pid is None and args.comm == HOSTILE[0]  # run_tool's one-process filter is not used
    prog = parse_program(program)
    assert not [s for p in prog.probes for s in _strings(p.filter and [p.filter])]
    assert f"pid == {os.getpid()} ||" in program


def test_positional_parameters_are_literals():
    """``undertow run -e PROG ARG``: $1 is a constant holding the argument, never program text."""
    for value in HOSTILE:
        if "\x00" in value or value.isdigit():
            continue
        prog = parse_program('tracepoint:syscalls:sys_enter_openat /str(args.filename) == str($1)/ '
                             '{ printf("%s\\n", str($1)); }', positional=[value])
        assert len(prog.probes) == 1
        assert os.fsencode(_strings([prog.probes[0].filter])[0]) == os.fsencode(value)


# ------------------------------------------------------------------ ftrace filter strings


def test_ftrace_filter_strings():
    from undertow.backends.ftrace.compile import FtraceUnsupported, _quote_filter_string

    assert _quote_filter_string("abc", None) == '"abc"'
    assert _quote_filter_string('a"b', None) == "'a\"b'"  # the kernel takes either quote, no escapes
    assert _quote_filter_string("a'b", None) == '"a\'b"'
    assert _quote_filter_string("a\\", None) == '"a\\"'  # a backslash is a byte like any other
    for bad in ("both ' and \"", "new\nline", "nul\x00", "x" * 256):
        with pytest.raises(FtraceUnsupported):
            _quote_filter_string(bad, None)
    assert _quote_filter_string("x" * 255, None) == '"' + "x" * 255 + '"'


def test_api_trace_takes_an_int_pid_only():
    from undertow.api import trace

    for bad in ("1 2", "1/../x", 1.0, True, 0, -3):
        with pytest.raises(UsageError, match="pid must be a positive int"):
            trace("e sched/sched_process_exec", pid=bad, offline=True)
