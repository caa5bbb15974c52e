"""SystemTap tapset points and functions added for the systemtap-doc examples (issue 19):
tcp.sendmsg/recvmsg on the sock length tracepoints, vfs.open, devname, SystemTap's names of
system call parameters, errno_str(), the sized user reads."""

import os
import sys

import pytest

from undertow.errors import SourceError
from undertow.lang import ir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_stap  # noqa: E402
from test_stap import FakeEnv, build, printfs, specs, walk_actions  # noqa: E402

MORE = {
    ("sock", "sock_send_length"): [("sk", "void *"), ("family", "__u16"), ("protocol", "__u16"), ("ret", "int"),
                                   ("flags", "int")],
    ("sock", "sock_recv_length"): [("sk", "void *"), ("family", "__u16"), ("protocol", "__u16"), ("ret", "int"),
                                   ("flags", "int")],
    ("syscalls", "sys_enter_futex"): [("__syscall_nr", "int"), ("uaddr", "u32 *"), ("op", "int"), ("val", "u32"),
                                      ("utime", "const struct __kernel_timespec *"), ("uaddr2", "u32 *"),
                                      ("val3", "u32")],
    ("syscalls", "sys_enter_wait4"): [("__syscall_nr", "int"), ("upid", "pid_t"), ("stat_addr", "int *"),
                                      ("options", "int"), ("ru", "struct rusage *")],
    ("syscalls", "sys_exit_futex"): [("__syscall_nr", "int"), ("ret", "long")],
}


@pytest.fixture(autouse=True)
def more_fields(monkeypatch):
    fields = dict(test_stap._FIELDS)
    fields.update(MORE)
    monkeypatch.setattr(test_stap, "_FIELDS", fields)


def guards(prog):
    return [a.cond for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.If)]


def test_tcp_sendmsg_and_recvmsg_return_on_the_sock_tracepoints():
    prog = build('probe tcp.sendmsg { printf("%s %s:%d %d\\n", name, daddr, dport, size) }')
    assert specs(prog) == ["tracepoint:sock:sock_send_length"]
    consts = {e.value for c in guards(prog) for e in c.walk() if isinstance(e, ir.Const)}
    assert 6 in consts  # TCP sockets only
    prog = build('probe tcp.recvmsg.return { printf("%d\\n", size) }')
    assert specs(prog) == ["tracepoint:sock:sock_recv_length"]


def test_tcp_sendmsg_names_the_missing_tracepoint():
    class Old(FakeEnv):
        def fields(self, group, event):
            return None if group == "sock" else super().fields(group, event)

    with pytest.raises(SourceError) as e:
        build('probe tcp.sendmsg { printf("x\\n") }', env=Old())
    assert "sock:sock_send_length" in e.value.message and "6.3" in e.value.message


def test_vfs_open_return_reads_the_path_at_the_entry_and_skips_failed_lookups():
    prog = build('probe vfs.open.return { printf("%s %s %d\\n", name, pathname, retval) }')
    assert "tracepoint:syscalls:sys_exit_openat" in specs(prog)
    assert "tracepoint:syscalls:sys_enter_openat" in specs(prog)  # the entry keeps pathname per thread
    assert any(isinstance(e, ir.Const) and e.value == "vfs.open" for p in prog.probes for e in p.exprs())
    prog = build('probe vfs.open { printf("%s\\n", pathname) }')
    assert sorted(specs(prog)) == ["tracepoint:syscalls:sys_enter_open", "tracepoint:syscalls:sys_enter_openat"]


def test_devname_is_the_block_device_or_na():
    prog = build('probe vfs.read { if (devname != "N/A") printf("%s\\n", devname) }')
    consts = {e.value for p in prog.probes for e in p.exprs() if isinstance(e, ir.Const)}
    assert "N/A" in consts


def test_systemtap_names_of_syscall_parameters():
    prog = build('probe syscall.futex { printf("%x %x %d\\n", futex_uaddr, utime_uaddr, op) }')
    assert printfs(prog)
    prog = build('probe syscall.wait4 { printf("%d %x\\n", pid, status_uaddr) }')
    fields = {e.name for p in prog.probes for e in p.exprs() if isinstance(e, ir.Field)}
    assert "upid" in fields and "stat_addr" in fields


def test_errno_str_compares_as_a_number_and_prints_the_name():
    prog = build('probe syscall.futex.return { if (errno_str(retval) == "ETIMEDOUT") printf("%s\\n", '
                 'errno_str(retval)) }')
    import errno

    cond = guards(prog)[-1]
    consts = {e.value for e in cond.walk() if isinstance(e, ir.Const)}
    assert errno.ETIMEDOUT in consts and "ETIMEDOUT" not in consts


@pytest.mark.parametrize("fn,cast", [("user_uint16", "uint16"), ("user_int64", "int64"), ("user_uint8", "uint8"),
                                     ("user_ushort", "uint16")])
def test_sized_user_reads(fn, cast):
    prog = build(f'probe syscall.openat {{ printf("%d\\n", {fn}($filename)) }}')
    casts = {e.type_text.replace(" ", "") for p in prog.probes for e in p.exprs() if isinstance(e, ir.Cast)}
    assert f"{cast}*" in casts


def test_user_string2_takes_the_error_text():
    prog = build('probe syscall.openat { printf("%s\\n", user_string2($filename, "<unknown>")) }')
    assert printfs(prog)


def test_begin_handlers_parsing_arguments_run_here():
    from undertow.lang.stap.userspace import Interpreter, Store

    class NoMaps(Store):
        def entries(self, name):
            return []

        def clear(self, name):
            pass

    text = ('global top = 10, names, rest\n'
            'probe begin { for (i = 1; i <= argc; i++) { arg = tokenize(argv[i], "=")\n'
            '  if (arg == "top") { top = strtol(tokenize("", "="), 10); continue }\n'
            '  argv[i] = ""; names[arg] = 1 }\n'
            ' w = tokenize("a--b-c", "-"); while (w != "") { rest .= w . ","; w = tokenize("", "-") }\n'
            ' printf("%d %d %s %s\\n", top, argc, rest, str_replace("x\\"y", "\\"", "")) }\n'
            'probe syscall.openat { if (execname() in names) printf("%d\\n", top) }')
    params = ["top=3", "cat"]
    prog = build(text, params)
    assert [h.when for h in prog.settings["stap_user"]] == ["begin"]
    out = []
    interp = Interpreter(prog.settings["stap_script"], NoMaps(), out.append, params, 0,
                         prog.settings["stap_gtypes"])
    assert interp.run(prog.settings["stap_user"][0])
    assert "".join(out) == "3 2 a,b,c, xy\n"
    assert interp.shadow["@names"] == {("cat",): 1}
    # the BPF probe reads the globals the begin handler writes: maps, not constants
    assert "@names" in prog.maps and "@top" in prog.maps


def test_calls_inside_a_macro_body_and_nested_macros():
    from undertow.lang.stap import parse_script

    s = parse_script('@define inner(x) %( f(@x) %)\n@define outer(a) %( y = (@inner(@a) > 1) %)\n'
                     'probe begin { @outer(2) }', "t.stp")
    from undertow.lang.stap.ast import N

    calls, stack = [], [s.probes[0].body]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, N):
            if n.kind == "call":
                calls.append(n.name)
            stack.extend(v for v in n.__dict__.values() if isinstance(v, (N, list)))
    assert calls == ["f"]  # the tokens of a macro share one place: f( is still a call


def test_dead_branches_of_defined_are_not_translated():
    # $nosuch is only read where @defined says it exists: no error, no code
    prog = build('probe syscall.openat { if (!@defined($nosuch)) printf("a\\n") else printf("%d\\n", $nosuch) }')
    assert [p.fmt for p in printfs(prog)] == ["a\n"]
    prog = build('probe syscall.openat { printf("%d\\n", @choose_defined($nosuch, 7)) }')
    consts = [e.value for p in prog.probes for e in p.exprs() if isinstance(e, ir.Const)]
    assert 7 in consts


def test_target_set_pid_follows_forks_from_the_target():
    prog = build('probe syscall.openat { if (target_set_pid(pid())) printf("%d\\n", pid()) }', target_pid=42)
    assert "tracepoint:sched:sched_process_fork" in specs(prog)
    assert "@__tset" in prog.maps
    consts = [e.value for p in prog.probes for e in p.exprs() if isinstance(e, ir.Const)]
    assert 42 in consts


def test_cpu_clock_takes_a_cpu():
    prog = build('probe syscall.openat { printf("%d %d\\n", cpu_clock_us(0), cpu_clock_ns(cpu())) }')
    assert printfs(prog)


def test_slices_parse_and_go_to_the_reader_from_bpf():
    prog = build("global arr\nprobe syscall.openat { arr[pid(), tid()]++ }\n"
                 "probe syscall.read { delete arr[pid(), *] }")
    calls = [a.expr for p in prog.probes for a in walk_actions(p.actions)
             if isinstance(a, ir.ExprStmt) and isinstance(a.expr, ir.Call) and a.expr.name == "delete_slice"]
    assert len(calls) == 1 and [c.value for c in calls[0].args[:2]] == ["@arr", "k*"] and len(calls[0].args) == 3
    prog = build("global arr\nprobe syscall.openat { arr[pid(), tid()]++ }\nprobe syscall.read { delete arr[*, *] }")
    assert any(isinstance(a, ir.MapOp) and a.op == "clear" for p in prog.probes for a in walk_actions(p.actions))
    with pytest.raises(SourceError) as e:
        build("global arr\nprobe syscall.openat { arr[pid(), tid()]++; x = arr[pid(), *] }")
    assert "slice" in e.value.message


def test_slices_deleted_by_handlers_here():
    from undertow.lang.stap.userspace import Interpreter, Store

    class Maps(Store):
        def __init__(self):
            self.deleted = []

        def entries(self, name):
            return [((1, 2), 1), ((1, 3), 1), ((2, 2), 1)]

        def clear(self, name):
            pass

        def delete(self, name, key):
            self.deleted.append(key)
            return True

    prog = build("global arr\nprobe syscall.openat { arr[pid(), tid()]++ }\n"
                 "probe end { foreach ([p, t] in arr) n++; delete arr[1, *] }")
    maps = Maps()
    interp = Interpreter(prog.settings["stap_script"], maps, [].append, [], 0, prog.settings["stap_gtypes"])
    assert interp.run(prog.settings["stap_user"][0])
    assert sorted(maps.deleted) == [(1, 2), (1, 3)]


def test_procfs_probes_say_why():
    with pytest.raises(SourceError) as e:
        build('probe prometheus { printf("x") }')
    assert "module" in e.value.message


def test_continue_in_a_for_loop_runs_the_step():
    prog = build('probe begin { for (i = 0; i < 4; i++) { if (i == 1) continue; printf("%d\\n", i) } exit() }')
    loops = [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.While)]
    if loops:  # translated for BPF: the continue is preceded by the step
        ifs = [a for a in walk_actions(loops[0].body) if isinstance(a, ir.If)]
        then = ifs[0].then
        assert isinstance(then[-1], ir.Continue) and len(then) >= 2
    else:  # run here
        from undertow.lang.stap.userspace import Interpreter, Store

        out = []
        interp = Interpreter(prog.settings["stap_script"], Store(), out.append, [], 0, prog.settings["stap_gtypes"])
        interp.run(prog.settings["stap_user"][0])
        assert "".join(out) == "0\n2\n3\n"
    prog = build('global n\nprobe syscall.openat { for (i = 0; i < 4; i++) { if (i == 1) continue; n += i } }')
    (loop,) = [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.While)]
    (cont_if,) = [a for a in walk_actions(loop.body) if isinstance(a, ir.If) and
                  any(isinstance(x, ir.Continue) for x in a.then)]
    assert len(cont_if.then) >= 2 and isinstance(cont_if.then[-1], ir.Continue)  # the step, then continue


def test_and_or_as_statements_run_their_right_side_conditionally():
    prog = build('global n\nprobe syscall.openat { n > 2 && exit(); n++ }')
    ifs = [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.If)]
    assert any(any(isinstance(x, ir.Exit) for x in a.then) for a in ifs)
    prog = build('probe syscall.openat { pid() == 1 || printf("not init\\n") }')
    ifs = [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.If)]
    assert any(isinstance(a.cond, ir.Unary) and any(isinstance(x, ir.Printf) for x in a.then) for a in ifs)


def test_a_probe_point_given_as_an_argument_keeps_its_function_argument():
    from undertow.lang.stap import parse_script

    s = parse_script('probe $1 { printf("x\\n") }\nprobe $2.return { }', "t.stp",
                     params=['kernel.function("sys_*")', "syscall.open"])
    assert [pp.text() for p in s.probes for pp in p.points] == ['kernel.function("sys_*")', "syscall.open.return"]


def test_cmdline_str_reads_the_argument_area_in_bpf():
    # the code (a read of [arg_start, arg_end) and a bounded loop) is checked live: the fake
    # kernel here has no task_struct
    prog = build('probe syscall.openat { printf("%s\\n", cmdline_str()) }')
    calls = [e for p in prog.probes for e in p.exprs() if isinstance(e, ir.Call) and e.name == "cmdline_str"]
    assert len(calls) == 1 and len(calls[0].args) == 2
    members = [e.name for e in calls[0].walk() if isinstance(e, ir.Member)]
    assert "arg_start" in members and "arg_end" in members and "mm" in members
