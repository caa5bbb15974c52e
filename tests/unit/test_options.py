"""Option values (undertow/options.py): one rule per kind, the same in every command.

Each validator alone, then every command that has an option of that kind with each bad value:
exit status 2, one ``undertow CMD: error: argument ...`` line, no traceback.
"""

from __future__ import annotations

import argparse
import os
import stat
import threading

import pytest

from undertow import cli, options
from undertow.errors import OptionError

#: Above PID_MAX_LIMIT (4M, include/linux/threads.h): never a process.
NO_PID = 4 * 1024 * 1024 + 1


def _thread_id():
    """(tid of a new thread of this process, event ending it, the thread)."""
    ids, started, go = [], threading.Event(), threading.Event()

    def run() -> None:
        ids.append(threading.get_native_id())
        started.set()
        go.wait(10)

    t = threading.Thread(target=run)
    t.start()
    started.wait(10)
    return ids[0], go, t


# ------------------------------------------------------------------ validators


@pytest.mark.parametrize("text,value", [("1", 1.0), ("0.5", 0.5), ("1e3", 1000.0)])
def test_duration_accepts(text, value):
    assert options.duration(text) == value


@pytest.mark.parametrize("text,why", [("0", "must be > 0"), ("-1", "must be > 0"), ("-0.0", "must be > 0"),
                                      ("nan", "finite"), ("inf", "finite"), ("1e400", "finite"),
                                      ("abc", "not a number")])
def test_duration_refuses(text, why):
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        options.duration(text)


def test_count():
    assert options.count("1") == 1 and options.count("100000") == 100000
    for bad in ("0", "-5", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            options.count(bad)


def test_pid_exists_and_is_a_process():
    assert options.pid(str(os.getpid())) == os.getpid()
    free = next(p for p in range(NO_PID - 1, 1, -1) if not os.path.exists(f"/proc/{p}"))
    with pytest.raises(argparse.ArgumentTypeError, match=f"no process with pid {free}$"):
        options.pid(str(free))
    for bad in ("0", str(1 << 70), "5000000"):  # kill(0, 0) names a process group: never asked
        with pytest.raises(argparse.ArgumentTypeError, match=r"out of valid pid range \[1,4194304\]$"):
            options.pid(bad)
    for bad in ("-1", "12x", "a1111", "111a1", " 12", "1_000", "\u0661"):  # as bpftrace words it
        with pytest.raises(argparse.ArgumentTypeError, match="^pid '.*' is not a valid decimal number$"):
            options.pid(bad)
    tid, go, t = _thread_id()
    try:
        with pytest.raises(argparse.ArgumentTypeError, match=f"thread of process {os.getpid()}"):
            options.pid(str(tid))
    finally:
        go.set()
        t.join()


def test_port():
    assert [options.port(p) for p in ("0", "22", "65535")] == [0, 22, 65535]
    for bad in ("65536", "99999", "-1", "http"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.port(bad)


def test_buffer_mb():
    assert [options.buffer_mb(v) for v in ("1", "16", "2048")] == [1, 16, 2048]
    for bad in ("0", "3", "4096", "-2", "1.0"):
        with pytest.raises(argparse.ArgumentTypeError, match="power of two|not a size"):
            options.buffer_mb(bad)


def test_command(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    assert options.command("ls -l /") == "ls -l /"
    assert options.command("/bin/sh -c 'exit 0'") == "/bin/sh -c 'exit 0'"
    for bad, why in (('echo "unterminated', "No closing quotation"), ("", "needs a command"),
                     ("   ", "needs a command"), ("/nonexistent/x", "no such file"),
                     ("no-such-command-undertow", "command not found"), ("/", "not a file"),
                     (str(plain), "not executable")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            options.command(bad)


# ------------------------------------------------------------------ output files


def test_output_file_checks(tmp_path):
    ok = tmp_path / "out.txt"
    assert options.output_file(str(ok)) == str(ok)
    for bad, why in ((str(tmp_path / "no" / "x"), "does not exist"), (str(tmp_path), "is a directory"),
                     (str(tmp_path) + "/", "names a directory"), ("", "empty"),
                     (str(ok) + "/x", "does not exist")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            options.output_file(bad)
    ok.write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        options.output_file(str(ok / "x"))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(argparse.ArgumentTypeError, match="symbolic link"):
        options.output_file(str(link))


def test_open_output_writes_truncates_and_never_follows_a_link(tmp_path):
    f = tmp_path / "out.txt"
    f.write_text("old contents that must go\n")
    with options.open_output(str(f)) as out:
        out.write("new \udcff\n")
    assert f.read_bytes() == b"new \xff\n"
    target = tmp_path / "victim"
    target.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OptionError, match="argument -o: .*symbolic link") as ei:
        options.open_output(str(link))
    assert ei.value.exit_code == 2
    assert target.read_text() == "keep\n"
    with pytest.raises(OptionError, match="directory .* does not exist"):
        options.open_output(str(tmp_path / "no" / "x"))
    created = tmp_path / "script.sh"
    with options.open_output(str(created), "-o", 0o755) as out:
        out.write("#!/bin/sh\n")
    assert stat.S_IMODE(created.stat().st_mode) & 0o100


def test_open_output_refuses_another_users_file(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    f = tmp_path / "theirs"
    f.write_text("theirs\n")
    os.chown(f, 65534, 65534)
    with pytest.raises(argparse.ArgumentTypeError, match="belongs to uid 65534"):
        options.output_file(str(f))
    with pytest.raises(OptionError, match="belongs to uid 65534"):
        options.open_output(str(f))
    assert f.read_text() == "theirs\n"  # not truncated
    # a link to a directory, planted by another user: not followed
    d = tmp_path / "real"
    d.mkdir()
    link = tmp_path / "dirlink"
    link.symlink_to(d)
    os.lchown(link, 65534, 65534)
    with pytest.raises(argparse.ArgumentTypeError, match="owned by uid 65534"):
        options.output_file(str(link / "out"))
    os.lchown(link, 0, 0)  # root's own link (as /var/run -> /run) is followed
    assert options.output_file(str(link / "out")) == str(link / "out")


def test_open_output_to_a_fifo_is_not_truncated(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with options.open_output(str(fifo)) as out:
            out.write("x\n")
        assert os.read(r, 10) == b"x\n"
    finally:
        os.close(r)


# ------------------------------------------------------------------ every command, every bad value

TOOLS = ["exec", "dns", "icmp", "arp", "filewatch", "inbound", "connect", "exit", "modules"]


def _argv(cmd, opt, value, tmp):
    """A command line of ``cmd`` that is valid but for ``opt value``."""
    tail = {"filewatch": [tmp], "trace": ["e sched/sched_process_exec"], "run": ["-e", "BEGIN { exit(); }"]}
    return [cmd, opt, value] + tail.get(cmd, [])


def _cases():
    bad = {
        "duration": ["-1", "0", "nan", "inf", "soon"],
        "count": ["-5", "0", "1.5"],
        "pid": [str(NO_PID), "0", "-1", "me"],
        "port": ["99999", "-1", "65536"],
        "buffer": ["4096", "0", "3"],
        "output": ["/nonexistent/dir/x", "DIR", "LINK"],
        "command": ['echo "unterminated', "/nonexistent", "", "no-such-command-undertow"],
    }
    where = {
        "duration": [(c, "--duration") for c in TOOLS + ["run", "trace"]],
        "count": [(c, "--count") for c in TOOLS + ["trace"]],
        "pid": [(c, "--pid") for c in TOOLS] + [("run", "-p"), ("trace", "-p"), ("trace", "--pid")],
        "port": [("inbound", "--port")],
        "buffer": [("run", "--buffer-mb")],
        "output": [("run", "-o"), ("trace", "-o"), ("trace", "--output-script")],
        "command": [("run", "-c")],
    }
    for kind, values in bad.items():
        for cmd, opt in where[kind]:
            for v in values:
                yield pytest.param(cmd, opt, v, id=f"{cmd}-{opt}-{v}")


@pytest.mark.parametrize("cmd,opt,value", list(_cases()))
def test_bad_value_is_a_usage_error(cmd, opt, value, tmp_path, capsys):
    watched = tmp_path / "watched"
    watched.write_text("")
    (tmp_path / "LINK").symlink_to(tmp_path / "elsewhere")
    value = {"DIR": str(tmp_path), "LINK": str(tmp_path / "LINK")}.get(value, value)
    with pytest.raises(SystemExit) as ei:
        cli.main(_argv(cmd, opt, value, str(watched)))
    err = capsys.readouterr().err
    assert ei.value.code == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1 and lines[0] == err.rstrip("\n").splitlines()[-1]
    names = lines[0].split(": error: argument ", 1)[1].split(": ", 1)[0].split("/")
    assert lines[0].startswith(f"undertow {cmd}: error: argument ") and opt in names, lines[0]
    assert not (tmp_path / "elsewhere").exists()


def test_zero_duration_means_the_same_everywhere(capsys):
    """--duration 0 was "forever" for run and "at once" for trace: now refused by both."""
    for cmd in ("run", "trace", "exec"):
        with pytest.raises(SystemExit) as ei:
            cli.main([cmd, "--duration", "0", "e x"])
        assert ei.value.code == 2
        assert "must be > 0" in capsys.readouterr().err


def test_option_error_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    """An -o file that becomes unwritable after argparse checked it: OptionError, status 2."""
    out = tmp_path / "out"

    def late(path, option="-o", mode=0o644):
        raise OptionError(f"argument {option}: cannot write {path}: Permission denied")

    monkeypatch.setattr(options, "open_output", late)
    rc = cli.main(["run", "-o", str(out), "-e", "BEGIN { exit(); }"])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"undertow run: error: argument -o: cannot write {out}: Permission denied\n"
