"""`undertow exec`: the program it generates and its record parser, on made-up records (no kernel)."""

import os

from undertow.commands import exec as exec_cmd
from undertow.lang.bt import parse_program
from undertow.tools import execs


class Rec:
    def __init__(self, *values, ts=1, pid=10, tid=10, comm="proc"):
        self.values, self.ts, self.pid, self.tid, self.comm = list(values), ts, pid, tid, comm


def _names(*names):
    return list(names) + ["/"] * (execs.PATH_DEPTH - len(names))


def _rec(raw, length, names, depth, *, top=1, nlink=1, unhashed=0, pseudo=0, magic=0xEF53,
         filename="/bin/x", comm="x"):
    ints = [1, 0, length, 4026531833, 4026531836, nlink, unhashed, pseudo, magic, depth, top]
    return Rec(*ints, filename, raw, *names, pid=42, comm=comm)


def test_program_parses_with_and_without_pid():
    assert len(parse_program(execs.program()).probes) == 4  # the exec + the failed execs' three
    followed = execs.program(1234)
    assert len(parse_program(followed).probes) == 6 and "pid == 1234 || @follow[pid]" in followed


def test_argv_split_and_truncated():
    assert execs.split_argv(b"ls\x00-l\x00", 6) == (["ls", "-l"], False)
    assert execs.split_argv(b"a\x00\x00b\x00", 5) == (["a", "", "b"], False)  # an empty argument stays
    argv, cut = execs.split_argv(b"x\x00" + b"y" * 10, 100)
    assert argv == ["x", "y" * 10] and cut  # the cut argument is kept as far as it was read
    assert execs.split_argv(b"\xff\x00", 2)[0] == ["\udcff"]  # not UTF-8: kept as surrogate escapes


def test_exe_paths_as_d_path_shows_them():
    assert execs.exe_path(["true", "bin", "usr"], 3, True, False, False) == "/usr/bin/true"
    assert execs.exe_path(["memfd:x"], 1, True, True, True) == "/memfd:x (deleted)"
    assert execs.exe_path(["drop", "tmp"], 2, True, False, True) == "/tmp/drop (deleted)"
    assert execs.exe_path(["f", "d"], 2, False, False, False) == ".../d/f"  # deeper than the walk


def test_record_to_event():
    d = execs.parse_record(_rec(b"sleep\x001\x00", 8, _names("sleep", "bin", "usr"), 3, comm="sleep"))
    assert d["pid"] == 42 and d["comm"] == "sleep" and d["argv"] == ["sleep", "1"] and not d["argv_truncated"]
    assert d["exe"] == "/usr/bin/sleep" and d["fileless"] is None
    assert d["netns"] == 4026531833 and d["pidns"] == 4026531836
    m = execs.parse_record(_rec(b"fexec\x00", 6, _names("memfd:payload"), 1, pseudo=1, nlink=0,
                                magic=execs.TMPFS_MAGIC, filename="/dev/fd/3"))
    assert m["fileless"] == "memfd" and m["exe"] == "/memfd:payload (deleted)" and m["filename"] == "/dev/fd/3"
    gone = execs.parse_record(_rec(b"x\x00", 2, _names("x", "tmp"), 2, unhashed=1, nlink=0))
    assert gone["fileless"] == "deleted" and gone["exe"] == "/tmp/x (deleted)"
    long = execs.parse_record(_rec(b"a\x00" * 2048, 9000, _names("x"), 1))
    assert long["argv_truncated"] and long["argv_bytes"] == 9000 and len(long["argv"]) == 2048
    failed = execs.parse_record(_rec(bytes(16), 16, _names("x"), 1))
    assert failed["argv"] is None  # the read gave zeros: /proc may add argv


def test_text_line_keeps_every_field_and_flags():
    own = (4026531833, 4026531836)
    d = {"pid": 42, "ppid": 1, "uid": 0, "comm": "memfd:payload", "filename": "/dev/fd/3",
         "exe": "/memfd:payload (deleted)", "fileless": "memfd", "argv": ["x" * 300, "\x1b[31m"],
         "argv_truncated": True, "argv_bytes": 9000, "netns": 1, "pidns": 4026531836}
    text = exec_cmd.line(d, own)
    assert "[FILELESS memfd: /memfd:payload (deleted)]" in text and "x" * 300 in text
    assert "[argv truncated: 9000 bytes" in text and "[netns 1 pidns 4026531836]" in text
    assert "\x1b" not in text and "\\x1b[31m" in text
    renamed = dict(d, comm="sleep", exe="/usr/bin/sleep", fileless=None, argv=["FAKENAME", "1"],
                   argv_truncated=False, netns=own[0])
    text = exec_cmd.line(renamed, own)
    assert "[exe /usr/bin/sleep] FAKENAME 1" in text and "netns" not in text
    esc = exec_cmd.line(dict(renamed, comm="\x01" * 15), own)
    assert "\\x01" * 15 in esc  # an escaped comm is not cut


def test_own_namespaces():
    from undertow.tools.proc import own_namespaces

    net, pid = own_namespaces()
    assert net == os.stat("/proc/self/ns/net").st_ino and pid == os.stat("/proc/self/ns/pid").st_ino


def test_summary_cells_are_not_cut():
    """An escaped name longer than its column widens the column (tools/common.py _cell)."""
    from undertow.tools.common import Column, Summary

    s = Summary([Column("pid", "PID", ">7"), Column("comm", "COMM", "<16")], "signal", values_header="HOW")
    s.add((7, "\x01" * 15), 1, "SIGKILL")
    assert "\\x01" * 15 + " SIGKILL" in s.text_lines()[1]


def test_program_has_the_failed_exec_probes():
    prog = parse_program(execs.program())
    assert len(prog.probes) == 4  # sched_process_exec, enter execve, enter execveat, the two exits
    assert "sys_exit_execveat" in execs.program() and "args.ret < 0" in execs.program()


def test_failed_exec_record():
    args = ["/tmp/x", "-v"] + [""] * (execs.FAILED_ARGS - 2)
    d = execs.parse_record(Rec("failed", -13, -100, 1, 0, 4026531833, 4026531836, 0, "/tmp/x", *args,
                               pid=42, comm="bash"))
    assert d["error"] == "EACCES" and d["result"] == -13 and d["syscall"] == "execve" and d["dirfd"] is None
    assert d["argv"] == ["/tmp/x", "-v"] and d["argv_truncated"] is False and d["comm"] == "bash"
    at = execs.parse_record(Rec("failed", -2, 1000003, 1, 0, 1, 2, 1, "", *(["a"] * execs.FAILED_ARGS)))
    assert at["syscall"] == "execveat" and at["dirfd"] == 3 and at["error"] == "ENOENT"
    assert at["argv_truncated"] is True and len(at["argv"]) == execs.FAILED_ARGS
    text = exec_cmd.line(dict(d, netns=None), (None, None))
    assert "[FAILED EACCES: /tmp/x] /tmp/x -v" in text


def test_loader_variables_from_the_environment():
    env = b"PATH=/bin\x00LD_PRELOAD=/tmp/evil.so\x00XLD_AUDIT=no\x00LD_AUDIT=/a.so\x00"
    assert execs.loader_vars(env) == {"ld_preload": "/tmp/evil.so", "ld_audit": "/a.so"}
    assert execs.loader_vars(b"HOME=/root\x00") == {"ld_preload": None, "ld_audit": None}
    d = execs.parse_record(Rec(*_rec(b"x\x00", 2, _names("x"), 1).values, len(env), env, pid=42))
    assert d["ld_preload"] == "/tmp/evil.so" and d["error"] is None
