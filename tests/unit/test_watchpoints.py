"""Hardware watchpoints (``watchpoint:``/``asyncwatchpoint:``, ``unwatch()``) as bpftrace 0.17
has them: parsing and its error words, resolution (the set-up uprobe of a function
watchpoint, numbering, the process), the compiled records, the session's attach logic."""

from __future__ import annotations

import errno
import io
import os
import sys
from types import SimpleNamespace

import pytest

from undertow.backends.bpf import watch as W
from undertow.backends.bpf.compiler import compile_program
from undertow.errors import BPFError, ParseError, ResolveError, UndertowError
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.bt import parse_program
from undertow.lang.bt.probes import parse_spec
from undertow.lang.resolve import resolve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import FakeKernel  # noqa: E402

ELF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "elf")
PROG = os.path.join(ELF, "prog-nopie")


def spec(text: str) -> ir.AttachPoint:
    return parse_spec(text, 0, text)[0]


# ------------------------------------------------------------------------------ parsing

def test_address_watchpoint():
    ap = spec("watchpoint:0x10000000:8:w")
    assert ap.kind == "watchpoint" and ap.target == ""
    assert ap.watch == {"addr": 0x10000000, "arg": None, "len": 8, "mode": "w", "async": False}


def test_function_watchpoints_and_aliases():
    ap = spec("w:increment+arg1:4:w")
    assert ap.target == "increment" and ap.watch["arg"] == 1 and not ap.watch["async"]
    ap = spec("aw:inc_*+arg0:2:wr")
    assert ap.wildcard and ap.watch["async"] and ap.watch["mode"] == "rw" and ap.watch["arg"] == 0
    assert spec("asyncwatchpoint:f+arg5:1:x").watch["arg"] == 5


@pytest.mark.parametrize("text,message", [
    ("watchpoint:0x10:8", "watchpoint probe type requires 3 arguments"),
    ("watchpoint:0:8:w", "watchpoint must be attached to a non-zero address"),
    ("watchpoint:0x10:3:w", "watchpoint length must be one of (1,2,4,8)"),
    ("watchpoint:0x10:8:", "watchpoint mode must be combination of (r,w,x)"),
    ("watchpoint:0x10:8:q", "watchpoint mode must be combination of (r,w,x)"),
    ("watchpoint:0x10:8:ww", "watchpoint modes may not be duplicated"),
    ("watchpoint:0x10:8:r", "invalid watchpoint mode: r"),
    ("watchpoint:0x10:8:xr", "invalid watchpoint mode: rx"),
    ("watchpoint:f+arg6:8:w", "x86_64 doesn't support arg6"),
    ("watchpoint:f+ar1:8:w", "Invalid function argument"),
    ("watchpoint:f+arg1+arg2:8:w", "Invalid function/address argument"),
    ("asyncwatchpoint:0x10:8:w", "asyncwatchpoint requires a function name"),
])
def test_bpftraces_checks(text, message):
    with pytest.raises(ParseError) as ei:
        spec(text)
    assert ei.value.message == message


def test_unwatch_is_a_statement_taking_an_integer():
    p = parse_program('BEGIN { unwatch(0x10); }')
    call = p.probes[0].actions[0].expr
    assert isinstance(call, ir.Call) and call.name == "unwatch"


# ----------------------------------------------------------------------------- resolving

def resolved(text: str, **settings):  # type: ignore[no-untyped-def]
    p = parse_program(text)
    p.settings.update(settings)
    resolve(p, FakeKernel(), strict_kprobes=False, types=None, arch="x86_64")
    return p


def test_address_watchpoint_on_the_command():
    p = resolved('watchpoint:0x10000000:8:w { printf("%s\\n", probe); }', cpid=77, cmd_path="./x")
    (probe,) = p.probes
    ap = probe.attach[0]
    assert ap.kind == "watchpoint" and ap.pid == 77 and probe.name == "watchpoint:268435456:8:w"
    assert probe.actions[0].args[0].value == "watchpoint:268435456:8:w"


def test_address_watchpoint_without_a_process_watches_every_cpu():
    (probe,) = resolved("watchpoint:0x10000000:4:rw { }").probes
    assert probe.attach[0].pid is None


def test_function_watchpoint_gets_a_setup_uprobe():
    p = resolved('watchpoint:fixture_work+arg1:4:w { printf("%s\\n", probe); }', cpid=77, cmd_path=PROG)
    wp, setup = p.probes
    ap = wp.attach[0]
    assert ap.kind == "watchpoint" and ap.pid == 77 and ap.watch["id"] == 0
    assert wp.name == f"watchpoint:{PROG}:fixture_work:1:4:w"
    up = setup.attach[0]
    assert up.kind == "uprobe" and up.path == PROG and up.file_offset == 0x40114B - 0x400000
    calls = [a.expr for a in setup.actions]
    assert [c.name for c in calls] == ["signal", "watch-setup"]
    assert calls[0].args[0].value == 19  # SIGSTOP
    assert calls[1].args[0].value == 0 and calls[1].args[1].index == 1
    # only the -c command's calls set it up
    assert isinstance(setup.filter, ir.Binary) and setup.filter.right.name == "cpid"


def test_watch_target():
    from undertow.lang.watchpoints import watch_target

    assert watch_target(None, None, None) is None
    assert watch_target(55, None, None) == (55, "/proc/55/exe")
    assert watch_target(None, 9, "./prog") == (9, "./prog")
    assert watch_target(None, 9, "sh")[1].endswith("/sh")  # looked up in PATH


def test_async_watchpoint_does_not_stop_the_process_and_arg0_is_left_out_of_the_name(monkeypatch):
    import undertow.lang.resolve_bt as rb

    monkeypatch.setattr(rb, "watch_target", lambda pid, cpid, cmd: (pid, PROG))  # -p 55 running PROG
    p = resolved("asyncwatchpoint:fixture_work+arg0:8:w { }", pid=55)
    wp, setup = p.probes
    assert wp.name == f"asyncwatchpoint:{PROG}:fixture_work:8:w" and wp.attach[0].pid == 55
    assert [a.expr.name for a in setup.actions] == ["watch-setup"] and setup.filter is None


def test_wildcard_numbers_each_function():
    p = resolved("watchpoint:fixture_*+arg0:4:w { }", cpid=9, cmd_path=PROG)
    wps = [x for x in p.probes if x.attach[0].kind == "watchpoint"]
    assert [x.attach[0].target for x in wps] == ["fixture_helper", "fixture_work"]
    assert [x.attach[0].watch["id"] for x in wps] == [0, 1]


def test_function_watchpoint_needs_a_process():
    with pytest.raises(ResolveError) as ei:
        resolved("watchpoint:fixture_work+arg0:4:w { }")
    assert ei.value.message == "-p PID or -c CMD required for watchpoint"


def test_compiled_programs_and_records():
    p = resolved("watchpoint:fixture_work+arg0:4:w { unwatch(0x10); }", cpid=9, cmd_path=PROG)
    c = compile_program(p, arch=get_arch("x86_64"), self_pid=4321)
    assert [cp.prog_type for cp in c.probes] == ["PERF_EVENT", "KPROBE"]
    kinds = {a.kind: a for a in c.actions}
    assert kinds["watch"].extra == {"id": 0} and len(kinds["watch"].args) == 1
    assert len(kinds["unwatch"].args) == 1


# ------------------------------------------------------------------------------ the session

def test_breakpoint_type():
    assert W.breakpoint_type("w") == 2 and W.breakpoint_type("rw") == 3 and W.breakpoint_type("x") == 4


class FakeSys:
    def __init__(self, free: int = 4) -> None:
        self.free, self.opened, self.closed, self.next = free, [], [], 100

    def perf_event_open(self, attr, pid=-1, cpu=0):  # type: ignore[no-untyped-def]
        if self.free <= 0:
            raise BPFError("perf_event_open(breakpoint event) failed: ENOSPC", errno=errno.ENOSPC)
        self.free -= 1
        self.next += 1
        self.opened.append((attr.type, attr.bp_type, attr.config1, attr.config2, pid, cpu))
        return self.next

    def perf_event_set_bpf(self, fd, prog):  # type: ignore[no-untyped-def]
        pass

    def perf_event_enable(self, fd):  # type: ignore[no-untyped-def]
        pass

    def close_fd(self, fd):  # type: ignore[no-untyped-def]
        self.closed.append(fd)


def watches(monkeypatch, free: int = 4):  # type: ignore[no-untyped-def]
    fake = FakeSys(free)
    for name in ("perf_event_open", "perf_event_set_bpf", "perf_event_enable", "close_fd"):
        monkeypatch.setattr(W.sc, name, getattr(fake, name))
    kills = []
    monkeypatch.setattr(W.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    owned: list = []
    ws = W.Watches(owned.append, lambda fd: (owned.remove(fd), fake.close_fd(fd)), lambda: [0, 1])
    return ws, fake, owned, kills


def cp(wid: int = 0, pid=42, asy: bool = False, target: str = "f"):  # type: ignore[no-untyped-def]
    ap = SimpleNamespace(pid=pid, target=target, watch={"addr": 0, "arg": 0, "len": 4, "mode": "w",
                                                         "async": asy, "id": wid})
    return SimpleNamespace(ap=ap, name=f"watchpoint:x:f{wid}:4:w")


def test_address_arrives_attaches_once_and_resumes(monkeypatch):
    ws, fake, owned, kills = watches(monkeypatch)
    ws.wait(cp(), 7)
    out: list = []
    ws.arrived(0, 0x1000, out)
    ws.arrived(0, 0x1000, out)  # the same address again: not attached twice
    assert fake.opened == [(5, 2, 0x1000, 4, 42, -1)] and owned == [101]
    assert kills == [(42, W.signal.SIGCONT)] * 2 and out == []


def test_out_of_registers_is_bpftraces_message(monkeypatch):
    ws, fake, _owned, kills = watches(monkeypatch, free=0)
    ws.wait(cp(), 7)
    out: list = []
    ws.arrived(0, 0x1000, out)
    assert [n.text for n in out] == [W.OUT_OF_REGISTERS] and kills  # resumed all the same


def test_other_attach_errors_are_errors_and_still_resume(monkeypatch):
    ws, fake, _owned, kills = watches(monkeypatch)

    def refuse(attr, pid=-1, cpu=0):  # type: ignore[no-untyped-def]
        raise BPFError("perf_event_open(breakpoint event) failed: EINVAL", errno=errno.EINVAL)

    monkeypatch.setattr(W.sc, "perf_event_open", refuse)
    ws.wait(cp(), 7)
    with pytest.raises(UndertowError):
        ws.arrived(0, 0x1000, [])
    assert kills


def test_async_is_not_resumed_and_unwatch_detaches(monkeypatch):
    ws, fake, owned, kills = watches(monkeypatch)
    ws.wait(cp(0, asy=True), 7)
    ws.wait(cp(1, asy=True), 8)
    ws.arrived(0, 0x1000, [])
    ws.arrived(1, 0x1000, [])
    assert kills == [] and len(owned) == 2
    ws.unwatch(0x2000)  # not watched: nothing
    ws.unwatch(0x1000)
    assert owned == [] and fake.closed == [101, 102]


def test_without_a_process_every_cpu(monkeypatch):
    ws, fake, owned, _kills = watches(monkeypatch)
    ws.attach(cp(pid=None, target=""), 7, 0xffff0000)
    assert [(o[4], o[5]) for o in fake.opened] == [(-1, 0), (-1, 1)]


def test_notice_printed_as_bpftrace_prints_it():
    from undertow.commands.run import _emit

    out = io.StringIO()
    _emit([W.Notice(W.OUT_OF_REGISTERS)], None, out, False, SimpleNamespace())
    assert out.getvalue() == "Failed to attach watchpoint probe. You are out of watchpoint registers.\n"
    out = io.StringIO()
    _emit([W.Notice("x")], None, out, True, SimpleNamespace())
    assert out.getvalue() == '{"type": "lost_events", "data": "x"}\n'
