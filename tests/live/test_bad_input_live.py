"""Issue 14 on the command line: each bad input gives one clear diagnostic (a caret where
there is source), exit code 1 and no traceback; nothing hangs; non-UTF-8 text works.

The parser-level cases are in tests/unit/test_bad_input.py; these run ``undertow`` as a user
does, on this kernel (``-S``/``-d`` attach nothing; the two live runs last a second).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tracefs, BTF, bpf)")

DEEP = "expression nested too deeply (limit 64 levels)"


def ut(*args: str, env: dict = None, timeout: int = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "undertow", *args], capture_output=True, timeout=timeout, env=e)


def refused(p: subprocess.CompletedProcess, message: str, caret: bool = True) -> str:
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 1, (p.returncode, err)
    assert "Traceback" not in err and message in err, err
    assert err.count("error:") == 1, err
    if caret:
        assert "^" in err, err
    return err


@pytest.mark.parametrize("args,message", [
    (["trace", "-S", "p _do_fork x=%0" + "->a" * 500], DEEP),
    (["trace", "-S", "p _do_fork x=" + "(struct sock *)" * 500 + "%0"], DEEP),
    (["trace", "-S", "p _do_fork+09"], "bad offset '+09': a leading 0 means octal"),
    (["trace", "-S", "P /usr/bin/bash:readline+08"], "bad offset '+08'"),
    (["run", "-d", "-e", "BEGIN { @x = curtask" + "->parent" * 500 + "; }"], DEEP),
    (["run", "-d", "-e", "BEGIN { @x = " + "(uint64)" * 500 + "pid; }"], DEEP),
    (["run", "-d", "-e", "BEGIN { " + "if (1) { " * 3000 + "}" * 3000 + " }"],
     "blocks nested too deeply (limit 64 levels)"),
    (["run", "-d", "-e", "uprobe:/usr/bin/bash:readline+08 { }"], "bad offset '+08'"),
    (["run", "-d", "-e", 'BEGIN { printf("%d\\n", "str"); }'],
     "printf: %d specifier expects a value of type integer (string supplied)"),
    (["run", "-d", "-e", "struct Foo { int a; char a; }\nBEGIN { }"], "duplicate member 'a' in struct Foo"),
    (["run", "-d", "-e", "struct Foo { char char c; }\nBEGIN { }"], "bad type 'char char'"),
    (["run", "-d", "-e", "tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @ = count(); }"],
     "cpid cannot be used without child command"),
    (["run", "-d", "-e", "kprobe:do_exit { @h[*curtask] = count(); }"], "a whole struct task_struct cannot be a map key"),
])
def test_bad_input_is_one_diagnostic(args, message):
    refused(ut(*args), message)


def test_a_filter_of_1000_terms_runs():
    terms = "&&".join(f"prev_pid!={i}" for i in range(1000, 2000))
    p = ut("trace", "-S", "--backend", "ftrace", f"e sched/sched_switch f:{terms}")
    refused(p, "the kernel takes less than 4096")  # event_filter_write() refuses a page or more
    p = ut("trace", "--duration", "1", "--count", "1", "--no-summary", f"e sched/sched_switch f:{terms}")
    assert p.returncode == 0 and b"sched_switch" in p.stdout, p.stderr
    prog = "tracepoint:syscalls:sys_enter_openat /" + " && ".join(f"pid != {i}" for i in range(1000)) + "/ { @ = count(); }"
    assert ut("run", "-d", "-e", prog).returncode == 0


def test_nesting_at_the_limit_compiles_and_one_past_is_refused():
    def prog(n: int) -> str:
        return "BEGIN { " + "if (pid) { " * 64 + "@x = " + "bswap(" * (n - 1) + "1" + ")" * (n - 1) + "; " + "}" * 64 + " }"

    p = ut("run", "-d", "-e", prog(64))
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
    refused(ut("run", "-d", "-e", prog(65)), DEEP)


def test_special_files_are_refused_at_once(tmp_path):
    fifo = str(tmp_path / "F")
    os.mkfifo(fifo)
    for args in (["trace", "-S", f"P {fifo}:main"], ["trace", "-o", str(tmp_path / "out.sh"), f"P {fifo}:main"],
                 ["run", "-d", "-e", f"uprobe:{fifo}:main {{ }}"], ["list", f"uprobe:{fifo}:*"]):
        p = ut(*args, timeout=60)  # used to block forever in open()
        refused(p, f"{fifo} is not a regular file (a FIFO)", caret=args[0] != "list")
    refused(ut("trace", "-S", "P /dev/null:main"), "/dev/null is not a regular file (a character device)")


def test_non_utf8_strings_in_programs_and_filters():
    # the byte 0xff as an escape, as a raw byte of the argument, in a map key; stdout strict (en_US.UTF-8)
    prog = 'BEGIN { printf("%s|%s|\udcfe\\n", "a\\xff", "b\udcff"); @["k\\xff"] = 1; exit(); }'
    for extra in ([], ["--json"]):
        p = ut("run", *extra, "-e", prog, env={"PYTHONIOENCODING": "utf-8:strict"})
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
        if extra:
            p.stdout.decode("utf-8")  # JSON: valid UTF-8
            assert b'a\\\\xff|b\\\\xff' in p.stdout and b'"k\\\\xff"' in p.stdout, p.stdout
        else:
            assert b"a\\xff|b\\xff|\xfe\n" in p.stdout, p.stdout  # values escaped, the format's own byte kept
    line = 'e sched/sched_switch f:prev_comm=="a\udcff"'
    p = ut("trace", "-S", line, env={"PYTHONIOENCODING": "utf-8:strict"})
    assert p.returncode == 0 and b'prev_comm=="a\xff"' in p.stdout, p.stderr
    p = ut("trace", "--duration", "1", "--no-summary", line)  # written to tracefs as the byte 0xff
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr


def usage_error(p: subprocess.CompletedProcess, message: str) -> str:
    """A bad option value: exit status 2, one error line naming the option (options.py)."""
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 2, (p.returncode, err)
    assert "Traceback" not in err and message in err, err
    assert err.count("error:") == 1, err
    return err


def test_output_paths_are_checked(tmp_path):
    """-o into a missing directory, a directory, a FIFO nobody reads: a usage error, not a
    traceback, and not an open() that waits forever."""
    fifo = str(tmp_path / "F")
    os.mkfifo(fifo)
    for path, why in ((str(tmp_path / "no" / "x"), "does not exist"), (str(tmp_path), "is a directory"),
                      (fifo, "a FIFO no process reads")):
        usage_error(ut("trace", "-o", path, "e sched/sched_switch", timeout=60), why)
        usage_error(ut("run", "-d", "-o", path, "-e", "BEGIN { }", timeout=60), why)


def test_command_line_values():
    """--duration nan traced forever (even SIGTERM could not end an open() of a FIFO)."""
    for cmd in (["trace", "e sched/sched_switch"], ["run", "-e", "BEGIN { exit(); }"], ["exec"]):
        for bad, why in (("nan", "must be a finite number"), ("-1", "must be > 0"), ("inf", "must be a finite")):
            usage_error(ut(*cmd, "--duration", bad, timeout=30), why)
    usage_error(ut("trace", "--count", "0", "e sched/sched_switch"), "argument --count: must be >= 1")
    usage_error(ut("run", "-c", "'unterminated", "-e", "BEGIN { exit(); }"), "No closing quotation")
