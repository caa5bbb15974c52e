"""`undertow run`'s command line as bpftrace 0.17's (issue 16): options, the wording of errors
and warnings under the name `bpftrace` (commands/run_bt.py), listing, `-k`, `++` as a value."""

import io
import os
import sys

import pytest

from undertow import cli
from undertow.commands import list as list_cmd
from undertow.commands import run as run_cmd
from undertow.commands import run_bt
from undertow.errors import ParseError, SourceError, Span, UndertowError, UsageError
from undertow.lang import ir
from undertow.lang.bt import parse_program


@pytest.fixture
def as_bpftrace(monkeypatch):
    """This process started under the name bpftrace (as the compat harness's script is)."""
    monkeypatch.setattr(sys, "argv", ["/some/where/bpftrace"])


# ------------------------------------------------------------------ the name bpftrace

def test_persona_is_the_program_name():
    assert run_bt.persona("/usr/local/bin/bpftrace") and run_bt.persona("bpftrace")
    assert not run_bt.persona("/usr/bin/undertow") and not run_bt.persona("bpftrace.bt")
    assert not run_bt.persona("")


def test_help_and_bad_flags_print_bpftraces_usage(as_bpftrace, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-h"])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert err.startswith("USAGE:\n    bpftrace [options] filename\n")
    assert "-e 'program'" in err and "--info" in err
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-idonotexist"])
    assert e.value.code == 1
    assert capsys.readouterr().err.startswith("USAGE:")
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-e"])  # a missing argument
    assert e.value.code == 1 and capsys.readouterr().err.startswith("USAGE:")


@pytest.mark.parametrize("pid,line", [
    ("a1111", "ERROR: pid 'a1111' is not a valid decimal number"),
    ("111a1", "ERROR: pid '111a1' is not a valid decimal number"),
    ("not_a_pid", "ERROR: pid 'not_a_pid' is not a valid decimal number"),
    ("5000000", "ERROR: pid '5000000' out of valid pid range [1,4194304]"),
])
def test_pid_errors_are_bpftraces_lines(as_bpftrace, capsys, pid, line):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-p", pid, "file.bt"])
    assert e.value.code == 1
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize("args,text", [
    (["-f", "jsonx"], "ERROR: Invalid output format \"jsonx\"\nValid formats: 'text', 'json'\n"),
    (["-B", "some"], "ERROR: USAGE: -B must be either 'line', 'full', or 'none'.\n"),
])
def test_bad_format_and_buffering_values_are_bpftraces_errors(as_bpftrace, capsys, args, text):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", *args, "-e", "BEGIN { exit(); }"])
    assert e.value.code == 1
    assert capsys.readouterr().err == text


def test_banned_kretprobe_in_bpftraces_words(as_bpftrace, capsys):
    """bpftrace refuses them while attaching: no place, "error:" in the message."""
    assert cli.main(["run", "-e", "kretprobe:_raw_spin_lock { exit(); }"]) == 1
    assert capsys.readouterr().err == ("ERROR: error: kretprobe:_raw_spin_lock can't be used as it might "
                                       "lock up your system.\n")


def test_banned_kretprobe_in_undertows_words(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["undertow"])
    assert cli.main(["run", "-e", "kretprobe:queued_spin_lock_slowpath { exit(); }"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("undertow run: -e:1:1: error: kretprobe:queued_spin_lock_slowpath can't be used as "
                          "it might lock up your system.\n")


def test_missing_file_is_an_error_line(as_bpftrace, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "non_existent_file.bt"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("ERROR: failed to open file 'non_existent_file.bt': No such file or directory\n")


def test_without_the_name_errors_keep_undertows_wording(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["undertow"])
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "nope.bt"]) == 2
    assert capsys.readouterr().err.startswith("undertow run: error: failed to open file 'nope.bt': ")
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-p", "x1", "-e", "BEGIN{}"])
    assert e.value.code == 2
    assert "argument -p: pid 'x1' is not a valid decimal number" in capsys.readouterr().err


def test_located_errors_and_warnings_as_bpftrace_prints_them():
    src = 'kretprobe:_raw_spin_lock { exit(); }'
    e = SourceError("tracepoint not found: a:b", source=src, span=Span(0, 24), origin="-e")
    assert run_bt.render_error(e) == ("stdin:1:1-25: ERROR: tracepoint not found: a:b\n"
                                      "kretprobe:_raw_spin_lock { exit(); }\n"
                                      "~~~~~~~~~~~~~~~~~~~~~~~~")
    src2 = "BEGIN {}\ni:ms:100 { @[1] = 1; delete(@[2]); exit(); }"
    start = src2.index("delete")
    text = run_bt.render_located(src2, Span(start, start + 12), "warning",
                                 "Failed to map_delete_elem: No such file or directory (-2)", "script.bt")
    assert text.split("\n") == [
        "script.bt:2:22-34: WARNING: Failed to map_delete_elem: No such file or directory (-2)",
        "i:ms:100 { @[1] = 1; delete(@[2]); exit(); }",
        "                     ~~~~~~~~~~~~"]
    assert run_bt.render_error(UndertowError("Invalid output", hints=["h"])) == "ERROR: Invalid output\nHINT: h"
    assert run_bt.render_warning("undertow run: warning: x y") == "WARNING: x y"


def test_version_names_the_bpftrace_language(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "-V"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("undertow ") and "bpftrace v0.17.0" in out


def test_quiet_keep_going_and_include_options_parse():
    p = cli.build_parser(["run"], lazy=True)
    a = p.parse_args(["run", "-q", "-kk", "-I", "/x", "--include", "a.h", "--no-warnings", "-B", "full",
                      "-dd", "-e", "BEGIN{}"])
    assert a.quiet and a.helper_check == 2 and a.include_dirs == ["/x"] and a.include_files == ["a.h"]
    assert a.no_warnings and a.buffering == "full" and a.dry_run == 2


# ------------------------------------------------------------------ #include

def test_includes_found_nowhere_are_warnings(tmp_path):
    (tmp_path / "mine.h").write_text("")
    text = '#include <lol/no.h>\n#include <mine.h>\n#include <stdio.h>\nBEGIN { exit(); }'
    lines = run_cmd.include_warnings(text, [str(tmp_path)], [])
    if not os.path.exists("/usr/include/stdio.h"):
        lines = [x for x in lines if "stdio.h" not in x]
    assert len(lines) == 1 and "'lol/no.h' file not found" in lines[0]
    assert run_cmd.include_warnings("BEGIN { exit(); }", [], []) == []
    assert "'gone.h' file not found" in run_cmd.include_warnings("BEGIN {}", [], ["gone.h"])[0]


# ------------------------------------------------------------------ listing

def test_listing_patterns():
    with pytest.raises(UsageError, match=r"invalid character '\\'"):
        list_cmd.check_pattern("\\n")
    list_cmd.check_pattern("uprobe:./testprogs/uprobe_*:func*")
    list_cmd.check_pattern("struct task_struct")
    assert list_cmd.wildcard_kinds("*ware") == ["software", "hardware"]
    assert "uprobe" in list_cmd.wildcard_kinds("*") and "tracepoint" in list_cmd.wildcard_kinds("*")
    assert list_cmd.split_spec("software:*") == ("software", "*")


def test_software_and_hardware_events_are_listed():
    out = io.StringIO()
    assert list_cmd.list_pattern(None, "software:*", False, out) == 11
    assert "software:cpu-clock:\n" in out.getvalue() and "software:page-faults:\n" in out.getvalue()
    out = io.StringIO()
    n = list_cmd.list_pattern(None, "*ware:*cycles", False, out)
    assert n == 3 and "hardware:cpu-cycles:\n" in out.getvalue()


def test_uprobe_paths_stay_as_given_and_file_wildcards_expand(tmp_path, monkeypatch):
    exe = os.path.realpath(sys.executable)
    (tmp_path / "py1").symlink_to(exe)
    (tmp_path / "py2").symlink_to(exe)
    (tmp_path / "notelf").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert list_cmd._objects("./py*") == ["./py1", "./py2"]
    assert list_cmd._objects("./no*") == []
    out = io.StringIO()
    n = list_cmd.list_pattern(None, "uprobe:./py1:main", False, out)
    if n:  # a python with its symbols
        assert out.getvalue() == "uprobe:./py1:main\n"


def test_a_process_files_are_named_as_it_sees_them():
    objs = list_cmd._process_objects(os.getpid(), "*")
    assert objs and all(inside == f"/proc/{os.getpid()}/root{path}" for path, inside in objs)
    assert any("python" in p or "libc" in p for p, _ in objs)
    assert list_cmd._process_objects(os.getpid(), "no-such-lib*") == []


# ------------------------------------------------------------------ ++ and -- as values

def _actions(text):
    return parse_program(text).probes[0].actions


def test_increments_as_values_are_evaluated_in_place():
    """``$x++``/``--@x`` inside an expression (lang/ir.py IncDec: the code generator updates
    the variable or map where the value is read, so && and ?: keep their short circuit)."""
    pr = _actions('BEGIN { printf("%d\\n", $x++); }')[-1]
    assert isinstance(pr.args[0], ir.IncDec) and pr.args[0].post
    pr = _actions('BEGIN { @x = 10; printf("%d\\n", --@x); }')[-1]
    assert isinstance(pr.args[0], ir.IncDec) and not pr.args[0].post


def test_increments_as_statements_are_unchanged():
    assert [type(a).__name__ for a in _actions("BEGIN { $x = 1; $x++; ++$x; @m[1]++; }")] == \
        ["Assign", "Assign", "Assign", "MapUpdate"]


# ------------------------------------------------------------------ -k / -kk

def test_helper_checks_add_helper_error_records():
    sys.path.insert(0, os.path.dirname(__file__))
    from lang_fakes import TYPES, FakeKernel
    from undertow.backends.bpf.compiler import compile_program
    from undertow.kernel.arch import get_arch
    from undertow.lang.resolve import resolve

    def kinds(text, level):
        p = parse_program(text)
        if level:
            p.settings["helper_check"] = level
        resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
        c = compile_program(p, arch=get_arch("x86_64"), self_pid=1, output="ringbuf")
        return [(a.kind, a.extra.get("helper")) for a in c.actions if a.kind == "helper_error"]

    prog = 'i:ms:100 { @[1] = 1; delete(@[2]); printf("%d\\n", @[3]); exit(); }'
    assert kinds(prog, 0) == []
    assert kinds(prog, 1) == [("helper_error", "map_delete_elem")]
    assert kinds(prog, 2) == [("helper_error", "map_delete_elem"), ("helper_error", "map_lookup_elem")]


def test_a_string_variable_takes_strings_of_several_sizes():
    sys.path.insert(0, os.path.dirname(__file__))
    from lang_fakes import TYPES, FakeKernel
    from undertow.backends.bpf.compiler import compile_program
    from undertow.kernel.arch import get_arch
    from undertow.lang.resolve import resolve

    p = parse_program('i:ms:1 { $a = ""; if (10 < 2) { $a = "hi" } else { $a = "hello" } printf("a=%s\\n", $a); }')
    resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    c = compile_program(p, arch=get_arch("x86_64"), self_pid=1, output="ringbuf")
    (pf,) = [a for a in c.actions if a.kind == "printf"]
    assert pf.args[0][1].size == 6  # "hello" and its NUL: the slot of the longest
