"""tools/common.py: the tools' shared options, loop, filter and summary (fake tracers, no kernel)."""

import argparse
import contextlib
import io
import json
import os
import signal

import pytest

from undertow.events import Event, Lost
from undertow.tools import bpftool
from undertow.tools.common import Column, ProcessFilter, Summary, add_common_options, lost_line, run_loop
from undertow.tools.proc import ProcInfo


class FakeTracer:
    """What run_loop needs of an undertow.api.Tracer; ``actions`` may raise mid-stream."""

    class backend:
        name = "fake"

    def __init__(self, recs):
        self.recs, self.entered, self.closed, self.flushes_at = list(recs), False, False, []

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc):
        self.closed = True

    def records(self):
        for r in self.recs:
            if callable(r):
                r()
                continue
            yield r


def ev(ts, tgid, comm="proc", **fields):
    return Event(ts, 0, tgid, tgid, comm, "sched/sched_process_exec", fields)


def parser():
    p = argparse.ArgumentParser()
    add_common_options(p, "exits")
    return p


def test_common_options_parse_and_help():
    a = parser().parse_args(["--json", "--pid", "4", "--comm", "sh*", "--cgroup", "user.slice", "--duration",
                             "1.5", "--count", "3", "--summary"])
    assert (a.json, a.pid, a.comm, a.cgroup, a.duration, a.count, a.summary) == \
        (True, 4, "sh*", "user.slice", 1.5, 3, True)
    d = parser().parse_args([])
    assert (d.json, d.pid, d.comm, d.cgroup, d.duration, d.count, d.summary) == \
        (False, None, None, None, None, None, False)
    h = parser().format_help()
    assert "only this process and its children" in h and "stop after N exits" in h
    p = argparse.ArgumentParser()
    add_common_options(p, pid_help="only this process")
    assert "and its children" not in p.format_help()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        parser().parse_args(["--count", "many"])


def test_process_filter():
    info = ProcInfo(5)
    info.cgroup = "/system.slice/docker-abc.scope"
    gone = ProcInfo(6)
    gone.gone = True
    f = ProcessFilter("ut_*", "docker-")
    assert f.needs_proc
    assert f.accepts("ut_exec", info) and not f.accepts("UT_exec", info) and not f.accepts("xut_", info)
    assert not f.accepts("ut_exec", gone) and not f.accepts("ut_exec", None)
    assert not f.match_comm(None)
    open_ = ProcessFilter.from_args(argparse.Namespace(comm=None, cgroup=None))
    assert not open_.needs_proc and open_.accepts(None, None) and open_.accepts("anything", gone)


def test_loop_lost_in_band_and_counted():
    out = io.StringIO()
    seen = []
    t = FakeTracer([ev(1, 10), Lost(3, "overrun", cpu=1), ev(2, 11), Lost(2, "overrun"), Lost(1, "decode")])

    def handle(e):
        seen.append(e.pid)
        out.write(f"event {e.pid}\n")
        return True

    res = run_loop(t, handle, out=out)
    assert out.getvalue() == f"event 10\n{lost_line(3, 'overrun')}\nevent 11\n# LOST 2 events (overrun)\n" \
                             "# LOST 1 events (decode)\n"
    assert (res.shown, res.lost, res.lost_by_reason, res.stopped_by) == (2, 6, {"overrun": 5, "decode": 1}, "end")
    assert t.entered and t.closed and seen == [10, 11]

    out = io.StringIO()
    res = run_loop(FakeTracer([Lost(4, "ringbuf_full")]), handle, as_json=True, out=out)
    assert json.loads(out.getvalue()) == {"lost": 4, "reason": "ringbuf_full"} and res.lost == 4
    out = io.StringIO()
    res = run_loop(FakeTracer([Lost(4, "ringbuf_full")]), handle, as_json=True, lost_json=False, out=out)
    assert out.getvalue() == "" and res.lost == 4


def test_loop_count_counts_only_shown_events():
    t = FakeTracer([ev(i, 100 + i) for i in range(10)])
    handled = []

    def handle(e):
        handled.append(e.pid)
        return e.pid % 2 == 0  # odd pids filtered out

    res = run_loop(t, handle, count=3, out=io.StringIO())
    assert res.shown == 3 and res.stopped_by == "count" and handled == [100, 101, 102, 103, 104] and t.closed


def test_loop_reports_why_the_tracer_stopped_and_what_it_left_unread():
    from undertow.events import Stats

    t = FakeTracer([ev(1, 1), ev(2, 2)])
    t.stopped_by = "signal"  # api.Tracer says so after a SIGINT/SIGTERM/SIGHUP (backends/loop.py)
    t.stats = Stats(not_drained=7)
    shown = []
    res = run_loop(t, lambda e: shown.append(e.pid) or True, out=io.StringIO())
    assert res.stopped_by == "signal" and shown == [1, 2] and t.closed
    assert res.not_drained == 7 and res.lost == 0

    def interrupt():
        raise KeyboardInterrupt  # a library caller's Ctrl-C (no undertow.stop handling)

    t = FakeTracer([ev(1, 1), interrupt, ev(2, 2)])
    res = run_loop(t, lambda e: True, out=io.StringIO())
    assert res.stopped_by == "interrupt" and res.shown == 1 and t.closed


class Flushes(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushed_at = []

    def flush(self):
        self.flushed_at.append(self.getvalue().count("\n"))


def test_loop_flushes_once_per_batch():
    class Batched(FakeTracer):
        def records(self):
            for i, r in enumerate(self.recs):
                self.left = 2 - i % 3  # batches of 3
                yield r

        def pending(self):
            return self.left

    out = Flushes()
    run_loop(Batched([ev(i, i) for i in range(6)]), lambda e: out.write("x\n") or True, out=out)
    assert out.flushed_at[:2] == [3, 6]


def events():
    return [
        {"ts": 5_000_000_000, "pid": 7, "comm": "miner", "qname": "pool.example"},
        {"ts": 6_000_000_000, "pid": 8, "comm": "curl", "qname": "a.example"},
        {"ts": 6_500_000_000, "pid": 7, "comm": "miner", "qname": "pool2.example"},
        {"ts": 7_000_000_000, "pid": 7, "comm": "miner", "qname": "pool.example"},
        {"ts": 8_000_000_000, "pid": None, "comm": "", "qname": None},
        {"ts": 9_000_000_000, "pid": 9, "comm": "evil\x1b[2J", "qname": "x" * 80},
    ]


def by_process():
    return Summary([Column("pid", "PID", ">7"), Column("comm", "COMM", "<16", "(kernel)")], "qname",
                   values_header="NAMES")


def test_summary_ranks_and_counts():
    s = by_process().add_events(events())
    rows = s.to_json()["summary"]
    assert [(r["pid"], r["count"]) for r in rows] == [(7, 3), (8, 1), (None, 1), (9, 1)]
    top = rows[0]
    assert (top["first_ts"], top["last_ts"], top["distinct_qname"], top["qname"]) == \
        (5_000_000_000, 7_000_000_000, 2, ["pool.example", "pool2.example"])
    assert rows[2]["qname"] == [] and rows[2]["distinct_qname"] == 0
    lines = s.text_lines()
    assert lines[0].split() == ["COUNT", "FIRST(s)", "LAST(s)", "PID", "COMM", "NAMES"]
    assert lines[1].split() == ["3", "0.000", "2.000", "7", "miner", "pool.example,", "pool2.example"]
    assert "(kernel)" in lines[3] and "\x1b" not in "".join(lines)


BPF_TOOLS_SUMMARY = (
    "\n  COUNT  FIRST(s)   LAST(s)     PID COMM             NAMES\n"
    "      3     0.000     2.000       7 miner            pool.example, pool2.example\n"
    "      1     1.000     1.000       8 curl             a.example\n"
    "      1     3.000     3.000       - (kernel)         \n"
)


def test_bpf_tools_summary_table():
    """tools/bpftool.print_summary (dns, icmp, arp, ...) is a Summary by pid and comm: the
    table it printed before it was built on Summary, byte for byte."""
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        bpftool.print_summary(events()[:-1], False, "NAMES", "qname")
    assert (o.getvalue(), e.getvalue()) == ("", BPF_TOOLS_SUMMARY)
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        bpftool.print_summary(events()[:-1], True, "NAMES", "qname")
    assert e.getvalue() == "" and json.loads(o.getvalue())["summary"][0] == {
        "pid": 7, "comm": "miner", "count": 3, "first_ts": 5_000_000_000, "last_ts": 7_000_000_000,
        "distinct_qname": 2, "qname": ["pool.example", "pool2.example"]}


def test_summary_values_limit_and_types():
    s = Summary([Column("comm", "COMM")], "port", values_limit=2)
    for i in range(5):
        s.add(("nc",), 10 + i, 1000 - i)
    r = s.to_json()["summary"][0]
    assert r["distinct_port"] == 5 and r["port"] == ["1000", "996"]  # compared as text
    raw = Summary([Column("filename", "PROGRAM")], "uids", distinct_count=False, values_limit=None,
                  stringify=False)
    raw.add(("/bin/sh",), 3, 1000)
    raw.add(("/bin/sh",), 1, 0)
    raw.add(("/bin/sh",), 2, None)
    r = raw.to_json()["summary"][0]
    assert r == {"filename": "/bin/sh", "count": 3, "first_ts": 1, "last_ts": 3, "uids": [0, 1000]}
    out = io.StringIO()
    Summary([Column("k", "K")]).write(True, out=out)
    assert json.loads(out.getvalue()) == {"summary": []}


# -- undertow exec on the shared loop: its output, byte for byte

EXEC_TEXT = (
    "TIME         PID    PPID   UID COMM             ARGV\n"
    "12:00:00     100       1     0 sh               prog 100\n"
    "# LOST 3 events (overrun)\n"
    "12:00:00     101       1     1 python3          prog 101\n"
    "12:00:00     102       1     0 sh               prog 102\n"
    "12:00:00     103       ?     ? bad\\x1bcomm      /tmp/\\xff\\n (exited before it was read)\n"
)
EXEC_NOTICE = ("undertow exec: no BPF on this kernel: sched:sched_process_exec via ftrace (no BPF/BTF here): "
               "comm followed through task_rename, argv and the executed file from /proc when the event is "
               "read (a process already gone shows only the filename); failed execs are not seen\n")
EXEC_SUMMARY = (
    "\n  COUNT   FIRST(s)   LAST(s)  PROGRAM\n"
    "      2      0.000     1.000  /bin/sh\n"
    "      1      0.500     0.500  /usr/bin/python3\n"
    "      1      1.500     1.500  /tmp/\\xff\\n\n"
)


def run_exec(monkeypatch, *argv):
    import time

    import undertow.api
    import undertow.tools.proc
    from undertow.commands import exec as exec_cmd

    recs = [ev(1_000_000_000, 100, "sh", filename="/bin/sh", pid=100), Lost(3, "overrun"),
            ev(1_500_000_000, 101, "python3", filename="/usr/bin/python3", pid=101),
            ev(2_000_000_000, 102, "sh", filename="/bin/sh", pid=102),
            ev(2_500_000_000, 103, "bad\x1bcomm", filename="/tmp/\udcff\n", pid=103)]

    def info(pid):
        i = ProcInfo(pid)
        if pid == 103:
            i.gone = True
            return i
        i.ppid, i.uid, i.argv, i.cwd, i.cgroup = 1, pid % 2, ["prog", str(pid)], "/", f"/cg{pid}"
        return i

    monkeypatch.setattr(undertow.api, "trace", lambda *a, **k: FakeTracer(recs))
    monkeypatch.setattr(undertow.tools.proc, "proc_info", info)
    monkeypatch.setattr(undertow.tools.proc, "namespaces", lambda pid, proc="/proc": (None, None))
    monkeypatch.setattr(exec_cmd, "_bpf_usable", lambda: False)  # the ftrace fallback: no BPF, no BTF
    monkeypatch.setattr(time, "strftime", lambda f: "12:00:00")
    p = argparse.ArgumentParser()
    p.add_argument("-v", dest="verbose", action="store_true")
    sub = p.add_subparsers()
    exec_cmd.register(sub, argparse.ArgumentParser(add_help=False))
    args = p.parse_args(["exec", *argv])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert args.func(args) == 0
    return out.getvalue(), err.getvalue()


def test_exec_text_and_summary_unchanged(monkeypatch):
    out, err = run_exec(monkeypatch, "--summary")
    assert out == EXEC_TEXT and err == EXEC_NOTICE + EXEC_SUMMARY


def test_exec_json_filters_count(monkeypatch):
    out, err = run_exec(monkeypatch, "--json", "--summary")
    lines = [json.loads(l) for l in out.splitlines()]
    assert lines.pop(1) == {"lost": 3, "reason": "overrun"}  # in-band, as in the BPF tools
    assert [l.get("pid") for l in lines[:-1]] == [100, 101, 102, 103] and err == EXEC_NOTICE
    assert list(lines[0]) == ["ts", "comm", "filename", "argv_truncated", "pid", "ppid", "uid", "argv", "cwd", "exe",
                              "cgroup", "container", "parents", "gone", "netns", "pidns", "fileless"]
    assert lines[3]["filename"] == "/tmp/\\xff\n" and lines[3]["gone"] is True
    assert lines[-1]["summary"][0] == {"filename": "/bin/sh", "count": 2, "first_ts": 1_000_000_000,
                                       "last_ts": 2_000_000_000, "uids": [0]}
    assert lines[-1]["summary"][2]["filename"] == lines[3]["filename"]
    out, _ = run_exec(monkeypatch, "--json", "--comm", "s*")
    assert [json.loads(l).get("pid") for l in out.splitlines()] == [100, None, 102]  # None: the loss line
    out, _ = run_exec(monkeypatch, "--json", "--cgroup", "cg10")
    assert [json.loads(l).get("pid") for l in out.splitlines()] == [100, None, 101, 102]
    out, _ = run_exec(monkeypatch, "--count", "2")
    assert out.count("prog ") == 2


# -- issue 18: text output never cuts a field


def test_cell_pads_and_never_cuts():
    from undertow.tools.common import cell

    assert cell("ab", 5) == "ab   " and cell(7, 4, ">") == "   7"
    long = "x" * 40
    assert cell(long, 16) == long


def test_summary_shows_long_keys_and_values_whole():
    s = Summary([Column("comm", "COMM", "<16")], "peer", values_header="PEERS")
    name = "averyveryverylongprogramname-with-more"
    peers = ["0a-" + "a" * 80, "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    for i, p in enumerate(peers):
        s.add((name,), i, p)
    line = s.text_lines()[1]
    assert name in line and peers[0] in line and line.endswith(" +1")


def test_ns_inode_and_note(tmp_path):
    from undertow.tools.common import ns_inode, ns_note

    (tmp_path / "42" / "ns").mkdir(parents=True)
    (tmp_path / "42" / "ns" / "net").symlink_to("net:[4026532001]")
    (tmp_path / "42" / "ns" / "pid").symlink_to("garbage")
    assert ns_inode("net", "42", str(tmp_path)) == 4026532001
    assert ns_inode("pid", "42", str(tmp_path)) is None and ns_inode("net", "43", str(tmp_path)) is None
    host = {"netns": 1, "pidns": 2}
    assert ns_note({"netns": 1, "pidns": 2}, host) == ""
    assert ns_note({"netns": 5, "pidns": 2}, host) == " netns:5"
    assert ns_note({"netns": None, "pidns": 9}, host) == " pidns:9"


def test_bpf_tool_lines_are_not_cut(monkeypatch, capsys):
    """run_tool writes a tool's text line whole, however long (no 100-column cut)."""
    import undertow.bpfrun
    from undertow.backends.bpf.runtime import Printed

    class FakeRun:
        stats = None

        def __init__(self, *a, **k):
            pass

        def compile(self):
            pass

        def start(self, mb):
            return self

        def batches(self, **k):
            yield [Printed("", None, ["x"]), Printed("", None, ["y"])]

        def finish(self, why):
            pass

        def close(self):
            pass

    monkeypatch.setattr(undertow.bpfrun, "BpfRun", FakeRun)
    args = argparse.Namespace(pid=None, comm=None, cgroup=None, json=False, verbose=False, duration=None,
                              count=None, drain=False, summary=True)  # --summary: the events are kept
    long = "L" * 150 + " MAC CHANGED"
    shown = bpftool.run_tool(args, "t", "", lambda rec: {"v": rec.values[0]}, "HEADER",
                             lambda d: long + d["v"])
    out = capsys.readouterr().out.splitlines()
    assert len(shown) == 2 and out == ["HEADER", long + "x", long + "y"]
