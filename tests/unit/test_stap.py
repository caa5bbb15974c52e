"""The SystemTap front end without a kernel (issue 19): parsing, the preprocessor, the
elaboration of the seed scripts through the tapsets (a fake kernel's tracepoints), types,
printf splicing and the errors with their places."""

import os

import pytest

from undertow.errors import ParseError, SourceError, TypeCheckError
from undertow.lang import ir
from undertow.lang.stap import Env, Options, elaborate, parse_script

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "stap")

_FIELDS = {
    ("syscalls", "sys_enter_connect"): [("__syscall_nr", "int"), ("fd", "int"), ("uservaddr", "struct sockaddr *"),
                                        ("addrlen", "int")],
    ("syscalls", "sys_enter_openat"): [("__syscall_nr", "int"), ("dfd", "int"), ("filename", "const char *"),
                                       ("flags", "int"), ("mode", "umode_t")],
    ("syscalls", "sys_enter_open"): [("__syscall_nr", "int"), ("filename", "const char *"), ("flags", "int"),
                                     ("mode", "umode_t")],
    ("syscalls", "sys_enter_read"): [("__syscall_nr", "int"), ("fd", "unsigned int"), ("buf", "char *"),
                                     ("count", "size_t")],
    ("syscalls", "sys_exit_read"): [("__syscall_nr", "int"), ("ret", "long")],
    ("syscalls", "sys_exit_openat"): [("__syscall_nr", "int"), ("ret", "long")],
    ("syscalls", "sys_enter_write"): [("__syscall_nr", "int"), ("fd", "unsigned int"), ("buf", "const char *"),
                                      ("count", "size_t")],
    ("net", "net_dev_queue"): [("skbaddr", "void *"), ("len", "unsigned int")],
    ("net", "netif_receive_skb"): [("skbaddr", "void *"), ("len", "unsigned int")],
    ("sched", "sched_process_exec"): [("filename", "__data_loc char[]"), ("pid", "pid_t")],
}


class FakeEnv(Env):
    def __init__(self, kprobes=False):
        self.kprobes = kprobes

    def fields(self, group, event):
        return _FIELDS.get((group, event))

    def events(self, pattern):
        import fnmatch

        return [k for k in _FIELDS if fnmatch.fnmatchcase(k[1], pattern)]

    def has_function(self, name):
        return name != "tcp_accept"

    def feature(self, name):
        return self.kprobes

    def tp_params(self, event):
        return {"sched_process_exec": [("p", "arg1")],
                "sched_process_fork": [("parent", "parent"), ("child", "child")]}.get(event)


def fixture(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


def build(text, params=(), env=None, **kw):
    return elaborate(parse_script(text, "t.stp", len(params)), env or FakeEnv(), Options(params, **kw))


def specs(prog):
    return [ap.describe() for p in prog.probes for ap in p.attach]


def walk_actions(acts):
    for a in acts:
        yield a
        if isinstance(a, ir.If):
            yield from walk_actions(a.then)
            yield from walk_actions(a.other)
        if isinstance(a, ir.While):
            yield from walk_actions(a.body)


def printfs(prog):
    return [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.Printf)]


@pytest.mark.parametrize("name", sorted(os.listdir(FIX)))
def test_every_seed_parses(name):
    s = parse_script(fixture(name), name)
    assert s.probes


def test_seed_realisations_on_a_kernel_without_kprobes():
    assert specs(build(fixture("hello.stp"))) == ["begin"]
    assert specs(build(fixture("connect.stp"))) == ["tracepoint:syscalls:sys_enter_connect"]
    assert specs(build(fixture("open.stp"))) == ["tracepoint:syscalls:sys_enter_open",
                                                 "tracepoint:syscalls:sys_enter_openat"]
    assert specs(build(fixture("dns_sent.stp"))) == ["tracepoint:net:net_dev_queue"]
    assert specs(build(fixture("udp_zero_in.stp"))) == ["tracepoint:net:netif_receive_skb"]
    assert specs(build(fixture("tcp_receive.stp"))) == ["tracepoint:net:netif_receive_skb"]
    assert specs(build(fixture("inodewatch.stp"), ["253", "0", "36398378"])) == [
        "tracepoint:syscalls:sys_enter_write", "tracepoint:syscalls:sys_enter_read"]
    # both accept points are optional: left out (tcp_accept does not exist; no kprobes), with the reason
    prog = build(fixture("accept.stp"))
    assert specs(prog) == ["begin"]
    notes = " ".join(prog.settings["stap_notes"])
    assert "no function 'tcp_accept'" in notes and "kprobes" in notes


def test_accept_seed_with_kprobes_uses_a_return_probe():
    prog = build(fixture("accept.stp"), env=FakeEnv(kprobes=True))
    assert specs(prog) == ["begin", "kretprobe:inet_csk_accept"]


def test_constant_global_is_inlined_and_pid_printed_with_percent_s():
    prog = build(fixture("dns_sent.stp"))
    assert not prog.maps  # the_dport is never written: a constant, no map
    prog = build(fixture("open.stp"))
    (pf,) = {p.fmt for p in printfs(prog)}
    assert pf == "%d open %s\n"  # (sic) %s of pid(): SystemTap prints the number


def test_uaddr_af_compares_numbers_and_argstr_is_spliced():
    prog = build(fixture("connect.stp"))
    cond = next(a for a in walk_actions(prog.probes[0].actions) if isinstance(a, ir.If)).cond
    consts = [e.value for e in cond.walk() if isinstance(e, ir.Const)]
    assert 2 in consts and 10 in consts and "AF_INET" not in consts
    fmts = [p.fmt for p in printfs(prog)]
    assert "%s[%d]: %d, {AF_INET, %s, %d}, %d\n" in fmts
    assert "%s[%d]: %d, {AF_INET6, %04x:%04x:%04x:%04x:%04x:%04x:%04x:%04x, %d}, %d\n" in fmts


def test_positional_parameters():
    prog = build(fixture("inodewatch.stp"), ["253", "0", "36398378"])
    consts = [e.value for p in prog.probes for e in p.exprs() if isinstance(e, ir.Const)]
    assert 36398378 in consts and 253 in consts
    with pytest.raises(SourceError) as e:
        build(fixture("inodewatch.stp"), ["253"])
    assert "command line argument index 2 out of range" in e.value.message
    assert e.value.span is not None and "$2" == e.value.source[e.value.span.start:e.value.span.end]
    with pytest.raises(SourceError) as e:
        build(fixture("inodewatch.stp"), ["x", "0", "1"])
    assert "not a number" in e.value.message


def test_globals_arrays_stats_functions():
    text = """
global reads, sizes, n = 5
function kb(v) { return v / 1024 }
function label:string (p) { if (p > 0) s = "pos" else s = "neg"; return s }
probe syscall.read.return { if (retval > 0) { reads[execname(), pid()] += retval; sizes <<< retval } n++ }
probe end { printf("%d %d %s %d\\n", @count(sizes), @avg(sizes), label(n), kb(2048)); print(@hist_log(sizes)) }
"""
    prog = build(text)
    assert prog.maps["@reads"].agg == "sum"  # only added to, read by no BPF probe: a per-CPU sum
    assert {m: prog.maps[m].agg for m in prog.maps if m.startswith("@sizes")} == {
        "@sizes__count": "count", "@sizes__avg": "avg", "@sizes__hist_log": "hist"}
    assert prog.settings["stap_autoprint"] == ["reads"]  # written, never read: printed at the end
    ops = [a for p in prog.probes for a in walk_actions(p.actions) if isinstance(a, ir.MapOp)]
    assert [(o.op, o.map) for o in ops] == [("print", "@sizes__hist_log")]
    assert specs(prog)[0] == "begin"  # n = 5 is set first (n is written)


def test_preprocessor_conditionals():
    s = parse_script('%( kernel_v >= "2.6.9" %? probe begin { x = 1 } %: probe end { x = 2 } %)\n'
                     '%( arch == "nonesuch" %? probe never { } %)', "t")
    assert [pp.text() for p in s.probes for pp in p.points] == ["begin"]


def test_brace_lists_and_optional_points():
    s = parse_script("probe vfs.{write,read}?, syscall.open { }", "t")
    pts = [(pp.text(), pp.optional) for p in s.probes for pp in p.points]
    assert pts == [("vfs.write", True), ("vfs.read", True), ("syscall.open", False)]


@pytest.mark.parametrize("text,msg,at", [
    ('probe begin { printf("x) }', "unterminated string", '"x) }'),
    ("probe begin { x = }", "expected an expression", "}"),
    ("probe begin { printf(\"%d\\n\", execname()) }", "%d needs a number", "execname()"),
    ("probe nonesuch.point { }", "unknown probe point 'nonesuch.point'", "nonesuch.point"),
    ("probe syscall.nonesuch { }", "no system call 'nonesuch'", "syscall.nonesuch"),
    ("probe begin { y = x + 1 }", "unknown variable 'x'", "x"),
    ('probe syscall.connect { printf("%s\\n", uaddr_fa) }', "unknown variable 'uaddr_fa'", "uaddr_fa"),
    ("probe begin { f(1) }", "unknown function 'f'", "f"),
    ("function f(n) { return f(n) } probe begin { f(1) }", "recursive call", "f(n)"),
    ("probe begin %{ int x; %}", "expected '{'", "%{ int x; %}"),
    ("probe kernel.function(\"vfs_read\") { }", "needs kprobes", 'kernel.function("vfs_read")'),
])
def test_errors_have_a_place(text, msg, at):
    with pytest.raises(SourceError) as e:
        build(text)
    err = e.value
    assert msg in err.message
    assert err.span is not None and err.source[err.span.start:err.span.end].startswith(at), (
        err.source[err.span.start:err.span.end])
    assert "^" in err.render()


def test_type_mismatch_is_a_type_error():
    with pytest.raises(TypeCheckError):
        build('probe begin { x = 1; x = "a" }')


def test_parser_refuses_deep_nesting_cleanly():
    with pytest.raises(ParseError):
        parse_script("probe begin { x = " + "(" * 500 + "1" + ")" * 500 + " }", "t")


def test_embedded_c_is_refused():
    with pytest.raises(SourceError) as e:
        build("%{ #include <x.h> %}\nprobe begin { }")
    assert "embedded C" in e.value.message


def test_cli_refuses_guru_mode_and_module_passes(capsys):
    from undertow.cli import main

    assert main(["stap", "-g", "-e", "probe begin { }"]) == 2
    assert "guru mode" in capsys.readouterr().err
    assert main(["stap", "-p", "4", "-e", "probe begin { }"]) == 2
    assert main(["stap", "-p", "1", "-e", "probe begin, end { }"]) == 0
    assert capsys.readouterr().out == "probe begin, end\n"
    assert main(["stap", "-p", "1", "-e", "probe begin { printf(\"x) }"]) == 1
    err = capsys.readouterr().err
    assert "unterminated string" in err and "^" in err and "Traceback" not in err


def test_script_aliases_prologue_and_epilogue():
    prog = build("probe myopen = syscall.openat { fname = user_string($filename) }\n"
                 "probe myopen { printf(\"%s\\n\", fname) }")
    assert specs(prog) == ["tracepoint:syscalls:sys_enter_openat"]
    acts = prog.probes[0].actions
    assert isinstance(acts[0], ir.Assign) and acts[0].var == "$fname" and isinstance(acts[-1], ir.Printf)


def test_oneshot_never_and_foreach_handlers_run_here():
    prog = build('probe oneshot { printf("x\\n") } probe never { y = 1 }')
    assert specs(prog) == ["begin"] and isinstance(prog.probes[0].actions[-1], ir.Exit)
    prog = build("global a\nprobe syscall.openat { a[pid()]++ }\n"
                 "probe end { foreach (p in a- limit 2) printf(\"%d %d\\n\", p, a[p]) }")
    assert [h.when for h in prog.settings["stap_user"]] == ["end"]
    assert specs(prog) == ["tracepoint:syscalls:sys_enter_openat"]
    with pytest.raises(SourceError) as e:
        build("global a\nprobe syscall.openat { foreach (p in a) printf(\"%d\\n\", p) }")
    assert "foreach" in e.value.message
    # a global written there goes into its map (the userspace writer of lang/stap/userspace.py)
    prog = build("global a, n\nprobe syscall.openat { a[pid()]++ }\nprobe end { foreach (p in a) n++ }")
    assert [h.when for h in prog.settings["stap_user"]] == ["end"]


def test_userspace_interpreter_sorts_limits_and_formats():
    from undertow.lang.stap.userspace import Interpreter, Store

    class Maps(Store):
        def __init__(self):
            self.data = {"@a": [(("x", 1), 5), (("y", 2), 9), (("z", 3), 1)]}

        def entries(self, name):
            return self.data.get(name, [])

        def clear(self, name):
            self.data.pop(name, None)

        def hist(self, name):
            return ""

    text = ("global a\nprobe syscall.openat { a[execname(), pid()] = 1 }\n"
            "probe end { foreach ([n, p] in a- limit 2) printf(\"%-3s|%3d|%x\\n\", n, p, a[n, p]); delete a;"
            " printf(\"%d\\n\", [\"x\", 1] in a) }")
    prog = build(text)
    out = []
    interp = Interpreter(prog.settings["stap_script"], Maps(), out.append, [], 0, prog.settings["stap_gtypes"])
    assert interp.run(prog.settings["stap_user"][0])
    assert "".join(out) == "y  |  2|9\nx  |  1|5\n0\n"


def test_functions_with_early_returns_are_inlined():
    prog = build('function sign:string (n) { if (n < 0) return "neg"\n if (n == 0) return "zero"\n return "pos" }\n'
                 'probe begin { printf("%s\\n", sign(-1)) }')
    acts = list(walk_actions(prog.probes[0].actions))
    done = [a for a in acts if isinstance(a, ir.Assign) and a.var.endswith("_done")]
    assert len(done) == 4  # set to 0 first, to 1 at each of the three returns
    prog = build("function f(n) { while (n < 10) { if (n == 5) return 1\n n++ } return 0 }\n"
                 "probe syscall.openat { printf(\"%d\\n\", f(2)) }")
    loop = next(a for a in prog.probes[0].actions if isinstance(a, ir.While))
    assert any(isinstance(a, ir.Break) for a in walk_actions(loop.body))  # the return leaves the loop


def test_entry_values_in_return_probes():
    prog = build('probe syscall.openat.return { printf("%s %d\\n", user_string($filename), '
                 'gettimeofday_us() - @entry(gettimeofday_us())) }')
    # the return, and one entry probe per kept value ($filename, @entry(...)), each in a per-thread map
    assert specs(prog) == ["tracepoint:syscalls:sys_exit_openat", "tracepoint:syscalls:sys_enter_openat",
                           "tracepoint:syscalls:sys_enter_openat"]
    assert sorted(m for m in prog.maps if m.startswith("@__entry")) == ["@__entry1", "@__entry2"]
    prog = build('probe kernel.function("inet_csk_accept").return { x = @entry($sk) }', env=FakeEnv(kprobes=True))
    assert specs(prog) == ["fexit:inet_csk_accept", "fentry:inet_csk_accept"]
    with pytest.raises(SourceError) as e:
        build("probe syscall.openat { x = @entry(1) }")
    assert "@entry" in e.value.message


def test_syscall_any_names_come_from_a_table_filled_at_begin():
    env = FakeEnv()
    _FIELDS[("raw_syscalls", "sys_enter")] = [("id", "long"), ("args", "unsigned long[6]")]
    try:
        prog = build("global c\nprobe syscall_any { c[name]++ }", env=env)
    finally:
        del _FIELDS[("raw_syscalls", "sys_enter")]
    assert specs(prog) == ["begin", "tracepoint:raw_syscalls:sys_enter"]
    fill = prog.probes[0].actions
    assert len(fill) > 300 and all(isinstance(a, ir.MapUpdate) and a.map == "@__names1" for a in fill)


def test_nth_argument_functions_on_syscall_points():
    prog = build('probe syscall.openat { printf("%x\\n", pointer_arg(2)) }')
    fields = [e.name for e in prog.probes[0].exprs() if isinstance(e, ir.Field)]
    assert fields == ["filename"]


def test_macros():
    s = parse_script('@define TWICE(x) %( (@x * 2) %)\n@define NAME %( "n" %)\n'
                     'probe begin { y = @TWICE(3); z = @NAME }', "t")
    body = s.probes[0].body.body
    assert body[0].expr.value.kind == "binary" and body[1].expr.value.value == "n"


def test_histograms_are_drawn_as_systemtap_draws_them():
    from undertow.commands.stap import _hist_text

    class Spec:
        agg, lhist = "hist", None

    class Rec:
        spec = Spec()
        entries = [((), {1: 2, 3: 4, 10: 1})]  # log2 buckets: 0, [2,4), [256,512)
    text = _hist_text(Rec())
    assert text.endswith("0\n\n")
    lines = text.rstrip("\n").splitlines()
    assert lines[0] == "value |-------------------------------------------------- count"
    assert lines[1] == "   -1 |" + " " * 50 + " 0"  # one empty bucket before the first
    assert lines[2].startswith("    0 |@@@@@@@@@@@@@@@@@@@@@@@@@") and lines[2].endswith(" 2")
    assert lines[4].startswith("    2 |" + "@" * 50) and lines[4].endswith(" 4")
    assert "~" in [x.strip() for x in lines]  # the long empty run between 4 and 256
    assert lines[-2].startswith("  256 |@") and lines[-1].startswith("  512 |")


def test_addresses_compare_with_text_and_never_probes_only_type():
    prog = build('probe netfilter.ip.local_out { if (daddr == "127.0.0.2") printf("%s\\n", daddr) }')
    consts = [e.value for e in prog.probes[0].exprs() if isinstance(e, ir.Const)]
    assert int.from_bytes(bytes([127, 0, 0, 2]), "little") in consts and "127.0.0.2" not in consts
    prog = build("global t, names\nprobe never { t = 0; names[0] = \"\" }\n"
                 "probe syscall.openat { if (t == pid() && !(pid() in names)) printf(\"x\\n\") }")
    assert not prog.maps  # written only in probe never: constants, no maps


def test_string_arrays_are_typed_before_a_read_that_comes_first():
    prog = build("global names\nprobe syscall.openat { if (!(pid() in names)) names[pid()] = execname() }")
    first = prog.probes[0]
    assert specs(prog)[0] == "begin" and isinstance(first.actions[0], ir.If)
    upd = first.actions[0].then[0]
    assert isinstance(upd, ir.MapUpdate) and upd.map == "@names" and upd.value.value == ""
    assert [k.value for k in upd.key] == [0]


def test_source_file_wildcards_are_refused():
    with pytest.raises(SourceError) as e:
        build('probe kernel.function("*@net/socket.c").call { }', env=FakeEnv(kprobes=True))
    assert "DWARF" in e.value.message
    prog = build('probe kernel.function("vfs_read@fs/read_write.c") { }', env=FakeEnv(kprobes=True))
    assert specs(prog) == ["kprobe:vfs_read"]


def test_strings_from_maps_are_escaped_where_printed():
    from undertow.lang.stap.userspace import Interpreter, Store
    from undertow.output.values import escape

    class Maps(Store):
        def entries(self, name):
            return [((b"evil\x1b[2Jname\0junk",), 1)] if name == "@a" else []

        def clear(self, name):
            pass

        def hist(self, name, key=None):
            return ""
    prog = build("global a\nprobe syscall.openat { a[execname()] = 1 }\n"
                 "probe end { foreach (n in a) printf(\"%s|%s\\n\", n, \"lit\\ttab\") }")
    out = []
    Interpreter(prog.settings["stap_script"], Maps(), out.append, [], 0, prog.settings["stap_gtypes"],
                escape=escape).run(prog.settings["stap_user"][0])
    assert out == ["evil\\x1b[2Jname|lit\ttab\n"]


def test_listing_probe_points_and_their_variables():
    from undertow.lang.stap import list_points

    got = dict(list_points(FakeEnv(), "syscall.conn*"))
    assert ("uaddr_af", "string") in got["syscall.connect"] and ("fd", "long") in got["syscall.connect"]
    assert not any(v.startswith("__") for v, _t in got["syscall.connect"])
    got = dict(list_points(FakeEnv(), "netfilter.ip.*"))
    assert set(got) == {"netfilter.ip.local_out", "netfilter.ip.local_in", "netfilter.ip.pre_routing",
                        "netfilter.ip.post_routing"}
    assert ("daddr", "string") in got["netfilter.ip.local_out"]


def test_thread_indent_is_one_printf_per_depth():
    prog = build('probe syscall.openat { printf("%s x\\n", thread_indent(1)) }')
    fmts = [p.fmt for p in printfs(prog)]
    assert fmts[0] == "%6d %s(%d): x\n" and fmts[1] == "%6d %s(%d):  x\n" and len(fmts) == 13
    assert {"@__indent", "@__indent_ts"} <= set(prog.maps)


def test_nth_argument_at_function_probes():
    prog = build('probe kernel.function("vfs_read") { printf("%d\\n", int_arg(3)) }', env=FakeEnv(kprobes=True))
    assert [e.index for e in prog.probes[0].exprs() if isinstance(e, ir.Arg)] == [2]


def test_variance_from_count_sum_and_squares():
    prog = build("global x\nprobe syscall.read.return { x <<< retval }\n"
                 "probe end { printf(\"%d\\n\", @variance(x)) }")
    assert {m: prog.maps[m].agg for m in prog.maps} == {"@x__count": "count", "@x__sum": "sum", "@x__sumsq": "sum"}


def test_try_runs_its_body_catch_never():
    prog = build('probe begin { try { x = kernel_string(0) } catch (m) { printf("%s\\n", m) } printf("a\\n") }')
    assert [p.fmt for p in printfs(prog)] == ["a\n"]
    assert any("catch" in note for note in prog.settings["stap_notes"])


def test_handlers_here_name_kernel_addresses_and_compare_safely():
    from undertow.lang.stap.userspace import Interpreter, Store

    class Maps(Store):
        def entries(self, name):
            return [((b"bash", 0xffff1000), 3)] if name == "@f__count" else []

        def clear(self, name):
            pass

        def hist(self, name, key=None):
            return ""
    prog = build("global f\nprobe syscall.openat { f[execname(), 1] <<< 1 }\n"
                 "probe end { foreach ([e+, a] in f) { if (last != e) printf(\"%s\\n\", e); last = e\n"
                 " printf(\" %s %d\\n\", symdata(a), @count(f[e, a])) } }")
    out = []
    Interpreter(prog.settings["stap_script"], Maps(), out.append, [], 0, prog.settings["stap_gtypes"],
                ksym=lambda addr: ("ext4_ioctl", 0, None)).run(prog.settings["stap_user"][0])
    assert "".join(out) == "bash\n ext4_ioctl+0x0 [kernel] 3\n"


def test_kernel_trace_structure_arguments_use_the_typed_raw_tracepoint():
    prog = build('probe kernel.trace("sched_process_exec") { printf("%d\\n", $p->pid) }')
    assert specs(prog) == ["tp_btf:sched_process_exec"]
    prog = build('probe kernel.trace("sched_process_exec") { printf("%d\\n", $pid) }')
    assert specs(prog) == ["tracepoint:sched:sched_process_exec"]


def test_kprocess_create_reads_the_new_task_from_the_typed_tracepoint():
    prog = build('probe kprocess.create { printf("%d\\n", new_pid) }')
    assert specs(prog) == ["tp_btf:sched_process_fork"]
    members = [e for e in prog.probes[0].exprs() if isinstance(e, ir.Member)]
    assert any(m.name == "tgid" for m in members)


def test_begin_handlers_with_loops_that_only_print_run_here():
    prog = build('probe begin { for (i = 0; i < 3; i++) printf("%d\\n", i); exit() }')
    assert [h.when for h in prog.settings["stap_user"]] == ["begin"]
    # writing a global: here too (into its map); statistics or target variables: BPF
    prog = build('global n\nprobe begin { for (i = 0; i < 3; i++) n++ }')
    assert [h.when for h in prog.settings["stap_user"]] == ["begin"]
    prog = build('global s\nprobe begin { for (i = 0; i < 3; i++) s <<< i }\nprobe end { print(@count(s)) }')
    assert not prog.settings["stap_user"]
