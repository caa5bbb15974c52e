"""The ptrace backend's pure parts (no tracing): the syscall formats table, the seccomp
filter, value decoding (sockaddrs, open flags, errno names), filters, and the checks that
refuse what ptrace cannot run. The live side: tests/live/test_ptrace_live.py."""

import os
import struct

import pytest

from undertow.backends.ptrace.backend import PtraceBackend, syscall_target
from undertow.backends.ptrace.decode import convert, errno_name, open_flags, sockaddr_text, value_reader
from undertow.backends.ptrace.filter import compile_filter, unsupported
from undertow.kernel.formats import parse_format
from undertow.kernel.seccomp import RET_ALLOW, RET_TRACE, X32_SYSCALL_BIT, build_filter, encode
from undertow.kernel.syscall_events import SyscallEvents, format_text, syscall_args
from undertow.kernel.syscall_table import numbers
from undertow.lang import ir

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "formats", "linux-6.18-x86_64")
X86 = 0xC000003E


@pytest.mark.parametrize("event", ["sys_enter_openat", "sys_exit_openat", "sys_enter_connect",
                                   "sys_enter_execve", "sys_enter_sendto"])
def test_rebuilt_formats_match_the_recorded_ones(event):
    """The table rebuilds each format's fields exactly (names, types, offsets, sizes, signs)."""
    path = os.path.join(FIXTURES, event, "format")
    if not os.path.exists(path):
        path = os.path.join(FIXTURES, "syscalls", event, "format")
    with open(path) as f:
        real = parse_format(f.read(), "syscalls", event)
    ours = parse_format(format_text(event), "syscalls", event)
    key = [(x.name, x.type, x.offset, x.size, x.signed, x.is_common) for x in real.fields]
    assert [(x.name, x.type, x.offset, x.size, x.signed, x.is_common) for x in ours.fields] == key


def test_table_covers_the_architecture():
    args = syscall_args()
    assert args["openat"] == ["int dfd", "const char * filename", "int flags", "umode_t mode"]
    assert args["getpid"] == []
    ev = SyscallEvents("x86_64")
    assert ("syscalls", "sys_enter_openat") in ev.events("syscalls:sys_enter_open*")
    assert ev.events("syscalls/sys_exit_connect") == [("syscalls", "sys_exit_connect")]
    assert ev.event_format("syscalls", "sys_exit_connect").field("ret").signed
    with pytest.raises(LookupError) as e:
        ev.event_format("sched", "sched_switch")
    assert "ptrace" in " ".join(e.value.hints)


def _run_filter(prog, nr, arch=X86):
    """A tiny classic-BPF interpreter for the instructions build_filter emits."""
    data = struct.pack("=iI", nr, arch)
    a = 0
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == 0x20:
            a = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if a == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if a >= k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_seccomp_filter_traces_only_the_numbers_given():
    nrs = numbers("x86_64")
    prog = build_filter([nrs["openat"], nrs["connect"]], X86)
    assert _run_filter(prog, nrs["openat"]) == RET_TRACE
    assert _run_filter(prog, nrs["connect"]) == RET_TRACE
    assert _run_filter(prog, nrs["read"]) == RET_ALLOW
    assert _run_filter(prog, nrs["openat"], arch=0x40000003) == RET_ALLOW  # i386 ABI: untraced
    assert _run_filter(prog, X32_SYSCALL_BIT | nrs["openat"]) == RET_ALLOW
    assert len(encode(prog)) == 8 * len(prog)
    every = build_filter(range(0, 471), X86)  # every syscall: offsets stay within a byte
    assert all(jt < 256 and jf < 256 for _c, jt, jf, _k in every)
    assert _run_filter(every, 470) == RET_TRACE


def test_values_as_the_bpf_backend_shows_them():
    from undertow.lang.types import S32, U16, PtrTy, IntTy

    assert value_reader(S32, "s") == ("int", 32, True)
    assert convert(0xFFFFFFFFFFFFFF9C, 32, True) == -100  # AT_FDCWD in a 64-bit register
    assert convert(0x80000, *value_reader(S32, "s")[1:]) == 0x80000
    assert value_reader(U16, "u") == ("int", 16, False)
    char_p = PtrTy(IntTy(1, True, "char", is_char=True), "user")
    assert value_reader(char_p, "ustr")[0] == "str"
    assert value_reader(PtrTy(), "x") == ("int", 64, False)


def test_sockaddrs_flags_and_errnos():
    sin = struct.pack("=H", 2) + struct.pack("!H", 9) + bytes([127, 0, 0, 1]) + bytes(8)
    assert sockaddr_text(sin) == "127.0.0.1:9"
    sin6 = struct.pack("=H", 10) + struct.pack("!H", 80) + bytes(4) + bytes(15) + b"\x01" + bytes(4)
    assert sockaddr_text(sin6) == "[::1]:80"
    assert sockaddr_text(struct.pack("=H", 1) + b"/run/x.sock\0") == "/run/x.sock"
    assert sockaddr_text(struct.pack("=H", 1) + b"\0abstract") == "@abstract"
    assert sockaddr_text(b"\x02") == "(short)"
    assert open_flags(0o2000000) == "O_RDONLY|O_CLOEXEC"
    assert open_flags(0o1101) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert open_flags(0o4010002) == "O_RDWR|O_SYNC"
    assert open_flags(0o20200000) == "O_RDONLY|O_TMPFILE"
    assert errno_name(-111) == "ECONNREFUSED"
    assert errno_name(-512) == "ERESTARTSYS"
    assert errno_name(3) is None and errno_name(-5000) is None


def _f(name):
    return ir.Field(name)


def test_filters_evaluate_like_the_kernels():
    flt = ir.Binary("&&", ir.Binary("==", _f("comm"), ir.Const("cat")),
                    ir.Binary("~", _f("filename"), ir.Const("/etc/*")))
    fn = compile_filter(flt)
    assert fn({"f": {"filename": "/etc/hostname"}, "comm": "cat", "tid": 1, "pid": 1})
    assert not fn({"f": {"filename": "/usr/lib/x"}, "comm": "cat", "tid": 1, "pid": 1})
    assert not fn({"f": {"filename": "/etc/x"}, "comm": "ls", "tid": 1, "pid": 1})
    n = compile_filter(ir.Binary("||", ir.Binary(">", _f("flags"), ir.Const(0)),
                                 ir.Unary("!", ir.Binary("==", _f("common_pid"), ir.Const(7)))))
    assert n({"f": {"flags": 1}, "comm": "", "tid": 7, "pid": 7})
    assert not n({"f": {"flags": 0}, "comm": "", "tid": 7, "pid": 7})
    assert unsupported(ir.Binary("==", ir.Call("str", [_f("x")]), ir.Const(1))) is not None


def test_syscall_targets():
    assert syscall_target("syscalls:sys_enter_openat") == (False, "openat")
    assert syscall_target("syscalls/sys_exit_connect") == (True, "connect")
    assert syscall_target("sched:sched_switch") is None
    assert syscall_target("syscalls:sys_enter_") is None


def _program(lines, **settings):
    """Probe lines resolved against the shipped table (no tracefs needed)."""
    from undertow.api import parse
    from undertow.kernel import Roots
    from undertow.kernel.syscall_events import FormatsKernel
    from undertow.lang.resolve import resolve

    k = FormatsKernel(Roots.from_env())
    k._tracefs = SyscallEvents()  # the table, as a user who cannot read tracefs has it
    prog = parse(lines)
    prog.settings.update(settings)
    resolve(prog, k, arch="x86_64", strict_kprobes=False)
    return prog, k


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the resolved numbers are x86_64's")
def test_check_and_compile():
    prog, k = _program(["e syscalls/sys_enter_openat f:filename==\"/etc/hostname\"",
                        "e syscalls/sys_exit_open*", "e syscalls/sys_enter_connect fd n=$comm"], cmd=["true"])
    b = PtraceBackend()
    assert b.check(prog, k) == []
    plan = b.compile(prog, k, arch="x86_64")
    assert plan.numbers == sorted({257, 2, 42, 437} | set(plan.numbers))
    enter = plan.enter[257][0]
    assert [f[0] for f in enter.fields] == ["__syscall_nr", "dfd", "filename", "flags", "mode"]
    assert [e[0] for e in enter.extras] == ["flags_names"]
    connect = plan.enter[42][0]
    assert connect.fields == [("fd", 0, "int", 32, True), ("n", "comm", "str", 64, True)]
    assert connect.extras == []  # fields chosen: exactly those
    text = plan.render()
    assert "SECCOMP_RET_TRACE" in text and "k=0x7ff00000" in text


def test_check_refuses_with_reasons():
    b = PtraceBackend()
    prog, k = _program(["e syscalls/sys_enter_openat"])
    assert "-p PID or -c CMD" in b.check(prog, k)[0].message
    prog, k = _program(["e syscalls/sys_enter_openat x=flags+1"], pid=12345)
    r = b.check(prog, k)
    assert r and "fields" in r[0].message and r[0].span is not None


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the resolved numbers are x86_64's")
def test_tracer_follows_stops(monkeypatch):
    """The tracer's bookkeeping over a scripted sequence of wait statuses (no real tracee):
    seccomp stop -> entry event, exit stop -> exit event with the errno name, a fork's new
    task, an exec by a thread (it takes the leader's id), a signal delivered on resume."""
    import signal as sig

    from undertow.backends.ptrace import tracer as T
    from undertow.kernel import ptrace as pt

    prog, k = _program(["e syscalls/sys_enter_openat", "e syscalls/sys_exit_openat"], cmd=["true"])
    plan = PtraceBackend().compile(prog, k, arch="x86_64")
    tr = T.Tracer(plan)
    tr.tasks[100] = T.Task(100, 100)
    infos, resumed = [], []
    monkeypatch.setattr(pt, "syscall_words", lambda tid: infos.pop(0))
    monkeypatch.setattr(pt, "resume", lambda tid, how, s=0: resumed.append((tid, how, s)))
    msgs = [101, 102]  # the fork's new pid, then the exec's former thread id
    monkeypatch.setattr(pt, "event_msg", lambda tid: msgs.pop(0))
    monkeypatch.setattr(pt, "read_string", lambda pid, addr, n: b"/etc/hostname")
    monkeypatch.setattr(T, "_comm", lambda tid: "cat")
    monkeypatch.setattr(T, "_tgid", lambda tid: 100 if tid == 102 else tid)
    seccomp = (pt.EVENT_SECCOMP << 16) | (sig.SIGTRAP << 8) | 0x7F
    syscall = ((sig.SIGTRAP | 0x80) << 8) | 0x7F

    # PTRACE_GET_SYSCALL_INFO's words: op, arch, ip, sp, then nr and the arguments, or the
    # return value (unsigned) and the error flag
    infos.append((pt.INFO_SECCOMP, X86, 0, 0, 257, 0xFFFFFFFFFFFFFF9C, 0x1000, 0o2000000, 0, 0, 0))
    tr.out = []
    tr._handle(100, seccomp)
    assert resumed[-1] == (100, pt.PTRACE_SYSCALL, 0)  # its exit is traced
    infos.append((pt.INFO_EXIT, X86, 0, 0, (1 << 64) - 2, 1, 0, 0, 0, 0, 0))
    tr._handle(100, syscall)
    assert resumed[-1] == (100, pt.PTRACE_CONT, 0)
    enter, exit_ = tr.out
    assert enter.fields["filename"] == "/etc/hostname" and enter.fields["dfd"] == -100
    assert enter.fields["flags_names"] == "O_RDONLY|O_CLOEXEC" and enter.comm == "cat" and enter.cpu == -1
    assert exit_.fields == {"__syscall_nr": 257, "ret": -2, "errno": "ENOENT"}

    tr._handle(100, (pt.EVENT_FORK << 16) | (sig.SIGTRAP << 8) | 0x7F)  # fork: task 101
    assert 101 in tr.tasks and tr.tasks[101].tgid == 101
    tr._handle(101, (pt.EVENT_STOP << 16) | (sig.SIGTRAP << 8) | 0x7F)  # its first stop: resumed
    assert resumed[-1] == (101, pt.PTRACE_CONT, 0)
    tr._handle(101, (sig.SIGUSR1 << 8) | 0x7F)  # a signal for it: delivered
    assert resumed[-1] == (101, pt.PTRACE_CONT, sig.SIGUSR1)
    tr._handle(101, (pt.EVENT_STOP << 16) | (sig.SIGSTOP << 8) | 0x7F)  # group-stop: kept stopped
    assert resumed[-1] == (101, pt.PTRACE_LISTEN, 0)

    tr.tasks[102] = T.Task(102, 100)  # thread 102 of process 100 execs: it becomes 100
    tr.tasks[102].nr = 59
    tr.tasks[100].comm = "cat"
    tr._handle(100, (pt.EVENT_EXEC << 16) | (sig.SIGTRAP << 8) | 0x7F)
    assert 102 not in tr.tasks and tr.tasks[100].comm is None and tr.tasks[100].nr == 59
    assert 101 in tr.tasks  # another process: untouched
    tr._handle(101, 0)  # exited
    assert 101 not in tr.tasks


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the resolved numbers are x86_64's")
def test_text_lines_made_by_the_tracer_are_the_writers(monkeypatch):
    """`undertow trace`'s text: the tracer formats lines itself (set_render) where it can;
    they must be exactly the lines the TextWriter prints for the tracer's Events, for every
    field kind (ints signed and not, strings, $comm/$pid, the extras, errno or not, a string
    that cannot be read, a filter), and counted alike."""
    import io
    import signal as sig

    from undertow.backends.ptrace import tracer as T
    from undertow.kernel import ptrace as pt
    from undertow.output.text import TextWriter

    lines = ["e syscalls/sys_enter_openat", "e syscalls/sys_exit_openat",
             'e syscalls/sys_enter_openat path=filename flags $comm $pid f:filename~"/etc/*"',
             "e syscalls/sys_enter_connect", "e syscalls/sys_exit_connect ret"]
    seccomp = (pt.EVENT_SECCOMP << 16) | (sig.SIGTRAP << 8) | 0x7F
    syscall = ((sig.SIGTRAP | 0x80) << 8) | 0x7F
    strings = {0x1000: b"/etc/hostname", 0x2000: b"/tmp/\x1b]0;x\x07\"q\"", 0x3000: None}
    sa = struct.pack("=H", 2) + struct.pack("!H", 9) + bytes([127, 0, 0, 1]) + bytes(8)
    stops = [  # (status, words)
        (seccomp, (pt.INFO_SECCOMP, X86, 0, 0, 257, (1 << 64) - 100, 0x1000, 0o2000000, 0, 0, 0)),
        (syscall, (pt.INFO_EXIT, X86, 0, 0, 3, 0, 0, 0, 0, 0, 0)),
        (seccomp, (pt.INFO_SECCOMP, X86, 0, 0, 257, (1 << 64) - 100, 0x2000, 0o101, 0o644, 0, 0)),
        (syscall, (pt.INFO_EXIT, X86, 0, 0, (1 << 64) - 2, 1, 0, 0, 0, 0, 0)),
        (seccomp, (pt.INFO_SECCOMP, X86, 0, 0, 257, 5, 0x3000, 0, 0, 0, 0)),  # unreadable: EFAULT
        (syscall, (pt.INFO_EXIT, X86, 0, 0, 4, 0, 0, 0, 0, 0, 0)),
        (seccomp, (pt.INFO_SECCOMP, X86, 0, 0, 42, 3, 0x4000, 16, 0, 0, 0)),
        (syscall, (pt.INFO_EXIT, X86, 0, 0, (1 << 64) - 111, 1, 0, 0, 0, 0, 0)),
    ]

    def run(render):
        prog, k = _program(lines, cmd=["true"])
        tr = T.Tracer(PtraceBackend().compile(prog, k, arch="x86_64"))
        tr.tasks[100] = T.Task(100, 100)
        out = io.StringIO()
        w = TextWriter(out)
        if render:
            tr.set_render(w)  # the EVENT column wide enough for every probe from the start
        else:
            w.reserve([s.name for ss in tr.plan.enter.values() for s in ss]
                      + [s.name for ss in tr.plan.exit.values() for s in ss])
        words = [s[1] for s in stops]
        clock = iter(range(10 ** 9, 2 * 10 ** 9, 1234567))
        monkeypatch.setattr(pt, "syscall_words", lambda tid: words.pop(0))
        monkeypatch.setattr(pt, "resume", lambda tid, how, s=0: None)
        monkeypatch.setattr(pt, "read_string", lambda pid, addr, n: strings.get(addr))
        monkeypatch.setattr(pt, "read_memory", lambda pid, addr, n: sa[:n])
        monkeypatch.setattr(T.time, "monotonic_ns", lambda: next(clock))
        monkeypatch.setattr(T, "_comm", lambda tid: "we\tird")
        tr.out = []
        for status, _w in stops:
            tr._handle(100, status)
        w.batch(tr.out)
        return tr.out, out.getvalue(), tr.stats.events

    events, want, counts = run(False)
    recs, got, counts2 = run(True)
    assert got == want and counts == counts2
    assert sum(r.__class__ is str for r in recs) >= 8  # made as lines, but the EFAULT one
    assert 'filename=<EFAULT>' in got and 'uservaddr_sa="127.0.0.1:9"' in got and 'errno="ENOENT"' in got and 'ret=-111\n' in got
    assert 'path="/etc/hostname" flags=524288 comm="we\\tird" pid=100' in got


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the resolved numbers are x86_64's")
@pytest.mark.parametrize("child_first", [False, True])
def test_a_new_task_shows_its_return_from_fork(monkeypatch, child_first):
    """The child of a traced fork/clone returns 0 from it (the ftrace and BPF backends show
    that sys_exit event in the child; no ptrace stop reports it): the tracer makes it at the
    child's first stop, whether that comes before or after the parent's fork event."""
    import signal as sig

    from undertow.backends.ptrace import tracer as T
    from undertow.kernel import ptrace as pt

    prog, k = _program(["e syscalls/sys_exit_clone"], cmd=["true"])
    tr = T.Tracer(PtraceBackend().compile(prog, k, arch="x86_64"))
    parent = tr.tasks[100] = T.Task(100, 100)
    parent.started = True
    words = [(pt.INFO_SECCOMP, X86, 0, 0, 56, 0x1200011, 0, 0, 0, 0, 0),
             (pt.INFO_EXIT, X86, 0, 0, 101, 0, 0, 0, 0, 0, 0)]
    monkeypatch.setattr(pt, "syscall_words", lambda tid: words.pop(0))
    monkeypatch.setattr(pt, "resume", lambda tid, how, s=0: None)
    monkeypatch.setattr(pt, "event_msg", lambda tid: 101)
    monkeypatch.setattr(T, "_comm", lambda tid: "forker")
    monkeypatch.setattr(T, "_tgid", lambda tid: tid)
    seccomp = (pt.EVENT_SECCOMP << 16) | (sig.SIGTRAP << 8) | 0x7F
    fork = (pt.EVENT_FORK << 16) | (sig.SIGTRAP << 8) | 0x7F
    first = (pt.EVENT_STOP << 16) | (sig.SIGTRAP << 8) | 0x7F
    syscall = ((sig.SIGTRAP | 0x80) << 8) | 0x7F
    tr.out = []
    order = [(100, seccomp), (101, first), (100, fork)] if child_first else [(100, seccomp), (100, fork), (101, first)]
    for tid, status in order + [(100, syscall)]:
        tr._handle(tid, status)
    got = [(e.tid, e.fields["ret"]) for e in tr.out]
    assert sorted(got) == [(100, 101), (101, 0)]
    assert all(e.probe == "syscalls:sys_exit_clone" and e.fields["__syscall_nr"] == 56 for e in tr.out)
