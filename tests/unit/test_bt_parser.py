"""The bpftrace front end (undertow.lang.bt) on bpftrace's own material and on errors."""

from __future__ import annotations

import glob
import os

import pytest

from undertow.errors import ParseError, Span
from undertow.lang import ir
from undertow.lang.bt import parse_program, parse_spec
from undertow.lang.bt.preprocess import preprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BT = os.path.join(os.path.dirname(HERE), "fixtures", "bt")
TOOLS = sorted(glob.glob(os.path.join(BT, "tools", "*.bt")))


def _one_liners(name):
    out = []
    with open(os.path.join(BT, name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            prog, *args = line.split("\t")
            out.append(pytest.param(prog, args, id=prog[:60]))
    return out


def _tool(name):
    with open(os.path.join(BT, "tools", name), encoding="utf-8") as f:
        return parse_program(f.read(), name)


def _err(src, positional=()):
    with pytest.raises(ParseError) as ei:
        parse_program(src, "<test>", positional)
    e = ei.value
    assert e.source == src and e.origin == "<test>"
    return e


def _at(src, e, text, nth=0):
    """The caret starts at the ``nth`` occurrence of ``text`` in ``src`` and covers it."""
    start = -1
    for _ in range(nth + 1):
        start = src.index(text, start + 1)
    assert (e.span.start, e.span.end) == (start, start + len(text)), (e.span, src[e.span.start:e.span.end])


# --------------------------------------------------------------------------- bpftrace's own material


def test_fixture_counts():
    assert len(TOOLS) == 38  # bpftrace v0.17.0 tools/*.bt
    assert len(_one_liners("tutorial_one_liners.txt")) == 11
    assert len(_one_liners("reference_guide_one_liners.txt")) >= 120


@pytest.mark.parametrize("path", TOOLS, ids=[os.path.basename(p) for p in TOOLS])
def test_every_017_tool_parses(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    prog = parse_program(text, os.path.basename(path))
    assert prog.probes
    for p in prog.probes:
        assert p.source == text and p.origin == os.path.basename(path)
        assert p.span is not None and 0 <= p.span.start < p.span.end <= len(text)
        for e in p.exprs():
            assert e.span is not None, (path, e)
            assert 0 <= e.span.start < e.span.end <= len(text)
        for ap in p.attach:
            assert text[ap.span.start:ap.span.end].split(":")[0] in p.name


@pytest.mark.parametrize("prog,args", _one_liners("tutorial_one_liners.txt"))
def test_tutorial_one_liners_parse(prog, args):
    assert parse_program(prog, "<cmdline>", args).probes


@pytest.mark.parametrize("prog,args", _one_liners("reference_guide_one_liners.txt"))
def test_reference_guide_one_liners_parse(prog, args):
    assert parse_program(prog, "<cmdline>", args).probes


def test_include_on_its_own_line_then_program():
    p = parse_program('#include <linux/socket.h>\nBEGIN { printf("%s\\n", ntop(AF_INET, 0x0100007f)); }')
    call = p.probes[0].actions[0].args[0]
    assert call.name == "ntop" and call.args[0].value == 2 and call.args[1].value == 0x0100007F
    assert p.settings["includes"] == ["<linux/socket.h>"]
    p = parse_program("#include <errno.h>\nBEGIN { print(strerror(EPERM)); }")
    assert p.probes[0].actions[0].value.args[0].value == 1


# --------------------------------------------------------------------------- IR shapes


def test_execsnoop_shape():
    prog = _tool("execsnoop.bt")
    begin, execs = prog.probes
    assert begin.attach[0].kind == "begin" and begin.name == "BEGIN"
    assert begin.actions[0].fmt == "%-10s %-5s %s\n"
    assert [a.value for a in begin.actions[0].args] == ["TIME(ms)", "PID", "ARGS"]
    ap = execs.attach[0]
    assert (ap.kind, ap.target, ap.wildcard) == ("tracepoint", "syscalls:sys_enter_exec*", True)
    assert execs.name == "tracepoint:syscalls:sys_enter_exec*"
    pf, join = execs.actions
    div = pf.args[0]
    assert isinstance(div, ir.Binary) and div.op == "/" and div.right.value == 1_000_000
    assert isinstance(div.left, ir.Builtin) and div.left.name == "elapsed"
    assert isinstance(join, ir.ExprStmt) and join.expr.name == "join"
    assert isinstance(join.expr.args[0], ir.Field) and join.expr.args[0].name == "argv"
    assert prog.source[join.expr.args[0].span.start:join.expr.args[0].span.end] == "args->argv"


def test_opensnoop_shape():
    prog = _tool("opensnoop.bt")
    enter, exit_ = prog.probes[1:3]
    assert [a.target for a in enter.attach] == ["syscalls:sys_enter_open", "syscalls:sys_enter_openat"]
    assert enter.name == "tracepoint:syscalls:sys_enter_open,tracepoint:syscalls:sys_enter_openat"
    upd = enter.actions[0]
    assert isinstance(upd, ir.MapUpdate) and (upd.map, upd.agg) == ("@filename", "assign")
    assert isinstance(upd.key[0], ir.Builtin) and upd.key[0].name == "tid"
    assert isinstance(upd.value, ir.Field) and upd.value.name == "filename"
    assert isinstance(exit_.filter, ir.MapRead) and exit_.filter.map == "@filename"
    ret, fd, errno, pf, delete = exit_.actions
    assert isinstance(fd.value, ir.Ternary) and fd.value.other.value == -1
    assert isinstance(errno.value.other, ir.Unary) and errno.value.other.op == "-"
    assert isinstance(pf, ir.Printf) and len(pf.args) == 5
    assert isinstance(delete, ir.MapOp) and delete.op == "delete" and delete.map == "@filename"
    end = prog.probes[3]
    assert isinstance(end.actions[0], ir.MapOp) and end.actions[0].op == "clear"
    assert prog.maps["@filename"].agg == "assign"


def test_biolatency_hist():
    prog = _tool("biolatency.bt")
    done = prog.probes[2]
    assert [a.kind for a in done.attach] == ["kprobe", "kprobe"]
    upd = done.actions[0]
    assert (upd.map, upd.agg, upd.key) == ("@usecs", "hist", [])
    assert isinstance(upd.value, ir.Binary) and upd.value.op == "/"
    assert isinstance(upd.value.left, ir.Binary) and upd.value.left.op == "-"
    assert isinstance(done.filter.key[0], ir.Arg) and done.filter.key[0].index == 0
    assert prog.maps["@usecs"].agg == "hist"


def test_lhist_and_stats():
    prog = parse_program("kretprobe:vfs_read { @bytes = lhist(retval, 0, 2000, 200); @s[comm] = stats(retval); }")
    lh, st = prog.probes[0].actions
    assert lh.agg == "lhist" and isinstance(lh.value, ir.Retval) and [a.value for a in lh.agg_args] == [0, 2000, 200]
    assert prog.maps["@bytes"].agg_args == (0, 2000, 200)
    assert st.agg == "stats" and st.key[0].name == "comm"


def test_tcpconnect_struct_casts():
    prog = _tool("tcpconnect.bt")
    kp = prog.probes[1]
    assert kp.attach[0].kind == "kprobe" and kp.attach[0].target == "tcp_connect"
    sk, fam, cond = kp.actions
    assert isinstance(sk.value, ir.Cast) and sk.value.type_text == "struct sock *"
    assert isinstance(sk.value.expr, ir.Arg) and sk.value.expr.index == 0
    m = fam.value
    assert isinstance(m, ir.Member) and m.name == "skc_family" and not m.arrow
    assert isinstance(m.base, ir.Member) and m.base.name == "__sk_common" and m.base.arrow
    assert isinstance(cond, ir.If)
    c = cond.cond
    assert c.op == "||" and c.left.right.value == 2 and c.right.right.value == 10  # AF_INET, AF_INET6
    inner = cond.then[0]
    v6 = inner.other[0].value.args[0]
    assert isinstance(v6, ir.Member) and v6.name == "u6_addr8" and v6.base.name == "in6_u"
    assert isinstance(cond.then[-3], ir.ExprStmt) and cond.then[-3].expr.name == "time"
    assert prog.settings["includes"] == ["<sys/socket.h>"]  # the #else branch: BTF is assumed


def test_seed_article_tcpconnect_with_shift_flip():
    src = """#include <linux/socket.h>
#include <net/sock.h>
kprobe:tcp_connect
{
$sk =((struct sock *) arg0);
$dport =$sk->__sk_common.skc_dport;
//Destination port is big endian, it must be flipped
$dport =($dport >> 8) | (($dport << 8) & 0x00FF00);
}
"""
    a = parse_program(src).probes[0].actions[-1].value
    assert a.op == "|" and a.left.op == ">>" and a.right.op == "&" and a.right.left.op == "<<"
    assert a.right.right.value == 0xFF00


def test_c_precedence():
    e = parse_program("BEGIN { $x = 1 + 2 * 3 << 1 == 14 && !0 || 5 & 3 ^ 1 | 8; }").probes[0].actions[0].value
    # ((((1 + (2*3)) << 1) == 14) && !0) || (((5 & 3) ^ 1) | 8)
    assert e.op == "||"
    assert e.left.op == "&&" and e.left.left.op == "==" and e.left.left.left.op == "<<"
    assert e.left.left.left.left.op == "+" and e.left.left.left.left.right.op == "*"
    assert isinstance(e.left.right, ir.Unary) and e.left.right.op == "!"
    assert e.right.op == "|" and e.right.left.op == "^" and e.right.left.left.op == "&"
    t = parse_program("BEGIN { $x = 1 ? 2 : 3 ? 4 : 5; $y = 10 - 3 - 2; }").probes[0].actions
    assert isinstance(t[0].value.other, ir.Ternary)
    assert t[1].value.left.op == "-" and t[1].value.right.value == 2  # left associative


def test_cast_binds_tighter_than_division():
    prog = _tool("naptime.bt")
    last = prog.probes[1].actions[-1].args[-1]
    assert last.op == "/" and isinstance(last.left, ir.Cast) and last.left.type_text == "uint64"
    assert isinstance(last.left.expr, ir.Member) and last.left.expr.name == "tv_nsec"
    assert isinstance(last.left.expr.base, ir.Field) and last.left.expr.base.name == "rqtp"


def test_while_loop_and_loop_control():
    prog = parse_program("i:ms:100 { $i = 0; while ($i <= 100) { printf(\"%d \", $i); $i++; "
                         "if ($i == 50) { continue } if ($i > 90) { break; } } exit(); }")
    p = prog.probes[0]
    assert p.attach[0].kind == "interval" and p.attach[0].target == "ms:100" and p.name == "interval:ms:100"
    loop = p.actions[1]
    assert isinstance(loop, ir.While) and loop.cond.op == "<=" and loop.bound == 0
    inc = loop.body[1]
    assert isinstance(inc, ir.Assign) and inc.var == "$i" and inc.value.op == "+" and inc.value.right.value == 1
    assert isinstance(loop.body[2].then[0], ir.Continue) and isinstance(loop.body[3].then[0], ir.Break)
    assert isinstance(p.actions[2], ir.Exit)


def test_unroll():
    act = parse_program("kprobe:do_nanosleep { $i = 1; unroll(5) { $i = $i + 1; } }").probes[0].actions[1]
    assert isinstance(act, ir.While) and act.cond is None and act.bound == 5 and len(act.body) == 1


def test_positional_parameters():
    src = 'BEGIN { printf("I got %d, %s (%d args) %s %d\\n", $1, str($2), $#, str($3), $4); }'
    pf = parse_program(src, positional=["42", "hello"]).probes[0].actions[0]
    assert [getattr(a, "value", None) for a in pf.args] == [42, None, 2, None, 0]
    assert pf.args[1].args[0].value == "hello" and pf.args[3].args[0].value == ""  # missing: "" in str()
    assert src[pf.args[0].span.start:pf.args[0].span.end] == "$1"
    pf = parse_program('BEGIN { printf("%s\\n", str($1 + 1)) }', positional=["hello"]).probes[0].actions[0]
    assert pf.args[0].args[0].value == "ello"
    f = parse_program("tracepoint:block:block_rq_issue /args->bytes > $1/ { @ = hist(args->bytes); }",
                      positional=["65536"]).probes[0].filter
    assert f.right.value == 65536 and f.left.name == "bytes"
    # numbers as bpftrace reads them (strtoll, base 0): octal, hex; str() of one is its text
    pf = parse_program('BEGIN { printf("%d %o %x %s %s\\n", $1, $2, $3, str($1), str($3)); }',
                       positional=["123", "0775", "0x123"]).probes[0].actions[0]
    # str($N) reads the parameter's text
    assert [a.value if isinstance(a, ir.Const) else a.args[0].value for a in pf.args] == \
        [123, 0o775, 0x123, "123", "0x123"]
    ka = parse_program('BEGIN { @ = kaddr(str($1)); }', positional=["vfs_read"]).probes[0].actions[0]
    assert ka.value.args[0].value == "vfs_read"
    ap = parse_program("uprobe:$1:readline { }", positional=["/bin/bash"]).probes[0].attach[0]
    assert (ap.obj, ap.target) == ("/bin/bash", "readline")


def test_increments_and_compound_assignments():
    acts = parse_program("k:vfs_read { @[probe]++; @n--; $x = 0; $x += 5; @s[pid] <<= 2; ++@m; }").probes[0].actions
    a0 = acts[0]
    assert isinstance(a0, ir.MapUpdate) and a0.map == "@" and a0.agg == "assign"
    assert a0.value.op == "+" and isinstance(a0.value.left, ir.MapRead) and a0.value.left.key[0].name == "probe"
    assert a0.value.left.key[0] is not a0.key[0]  # no shared nodes between write and read
    assert acts[1].value.op == "-"
    assert isinstance(acts[3], ir.Assign) and acts[3].value.op == "+" and acts[3].value.left.name == "$x"
    assert acts[4].value.op == "<<" and acts[5].value.op == "+"


def test_ternary_statement_becomes_if():
    a = parse_program('BEGIN { pid & 1 ? printf("Odd\\n") : printf("Even\\n"); exit(); }').probes[0].actions[0]
    assert isinstance(a, ir.If) and a.then[0].fmt == "Odd\n" and a.other[0].fmt == "Even\n"


def test_map_functions_and_print_forms():
    src = ("kprobe:vfs_* { @[func] = count(); @t[1, \"a\"] = 1; } END { print(@, 5); print(@, 5, 10); "
           "print(@t[1, \"a\"]); print(comm); clear(@); zero(@t); delete(@t[1, \"a\"]); delete(@t, (1, \"a\")); }")
    prog = parse_program(src)
    assert prog.probes[0].attach[0].wildcard and prog.maps["@"].agg == "count"
    acts = prog.probes[1].actions
    assert isinstance(acts[0], ir.MapOp) and acts[0].op == "print" and [a.value for a in acts[0].args] == [5]
    assert [a.value for a in acts[1].args] == [5, 10]
    assert isinstance(acts[2], ir.PrintValue) and isinstance(acts[2].value, ir.MapRead)
    assert isinstance(acts[3], ir.PrintValue) and acts[3].value.name == "comm"
    assert (acts[4].op, acts[4].map) == ("clear", "@") and (acts[5].op, acts[5].map) == ("zero", "@t")
    assert acts[6].op == "delete" and [k.value for k in acts[6].key] == [1, "a"]
    assert acts[7].op == "delete" and [k.value for k in acts[7].key] == [1, "a"]


def test_functions_and_builtins():
    src = ('kprobe:f { @[kstack(perf, 3)] = count(); @u[ustack(5)] = count(); @k[kstack] = count(); '
           '$a = ksym(reg("ip")); $b = usym(arg1); $c = kaddr("avenrun"); $d = *uaddr("ps1_prompt"); '
           '$e = buf(arg0, 16); $f = str(arg0, 8); $g = ntop(AF_INET6, arg1); $h = strftime("%H", nsecs); '
           '$i = (int8)retval; $j = cgroup; $k = curtask; $l = sarg0; $m = username; $n = args; '
           '$o = bswap(arg0); $p = \'a\'; $q = 0x1f + 0755 + 1_000 + 1e3 + 10ULL; cat("/proc/%d/status", pid); }')
    acts = parse_program(src).probes[0].actions
    k = acts[0].key[0]
    assert k.name == "kstack" and [a.value for a in k.args] == ["perf", 3]
    assert acts[1].key[0].args[0].value == 5 and isinstance(acts[2].key[0], ir.Builtin)
    v = {a.var: a.value for a in acts if isinstance(a, ir.Assign)}
    assert v["$a"].args[0].name == "reg" and v["$a"].args[0].args[0].value == "ip"
    assert isinstance(v["$d"], ir.Deref) and v["$d"].expr.name == "uaddr"
    assert v["$g"].args[0].value == 10
    assert isinstance(v["$i"], ir.Cast) and v["$i"].type_text == "int8" and isinstance(v["$i"].expr, ir.Retval)
    assert v["$l"].name == "sarg0" and v["$n"].name == "args"
    assert v["$p"].value == ord("a")
    q = v["$q"]
    consts = [q.right.value, q.left.right.value, q.left.left.right.value, q.left.left.left.right.value,
              q.left.left.left.left.value]
    assert consts == [10, 1000, 1000, 0o755, 0x1F]
    assert isinstance(acts[-1], ir.ExprStmt) and acts[-1].expr.name == "cat"


def test_unsafe_calls_are_marked():
    src = 'kprobe:f { system("ps -p %d\\n", pid); signal("SIGKILL"); override(0); }'
    prog = parse_program(src)
    assert [n for n, _ in prog.settings["unsafe_calls"]] == ["system", "signal", "override"]
    name, span = prog.settings["unsafe_calls"][1]
    assert src[span.start:span.end] == 'signal("SIGKILL")'
    assert parse_program("BEGIN { exit(); }").settings["unsafe_calls"] == []


def test_sizeof_offsetof_tuples_and_script_structs():
    src = ("struct Foo { int x; char c[4]; struct Foo *next; unsigned long long n : 3; };\n"
           "BEGIN { printf(\"%d %d %d\\n\", sizeof(struct Foo), sizeof(uint32), offsetof(struct Foo, c)); "
           "$t = (1, 2, \"string\"); printf(\"%d %s\\n\", $t.1, $t.2); $s = (struct Foo *)0; @x = $s->c[1]; "
           "$z = sizeof($t); }")
    prog = parse_program(src)
    foo = prog.settings["c_structs"]["struct Foo"]
    assert [(m.name, m.type_text, m.dims, m.bits) for m in foo.members] == [
        ("x", "int", (), None), ("c", "char", (4,), None), ("next", "struct Foo *", (), None),
        ("n", "unsigned long long", (), 3)]
    assert src[foo.span.start:foo.span.end].startswith("struct Foo {")
    pf, tup, pf2, s, x, z = prog.probes[0].actions
    assert [a.args[0].type_text for a in pf.args] == ["struct Foo", "uint32", "struct Foo"]
    assert pf.args[2].args[1].value == "c"
    assert isinstance(tup.value, ir.TupleExpr) and len(tup.value.elems) == 3
    assert isinstance(pf2.args[0], ir.TupleIndex) and pf2.args[0].index == 1
    assert isinstance(x.value, ir.Index) and x.value.base.name == "c"
    assert isinstance(z.value.args[0], ir.Var)


def test_defines_and_conditionals():
    src = ("#define LIMIT (1 << 4)\n#define NAME \"bash\"\n#ifndef BPFTRACE_HAVE_BTF\nstruct gone { int a; };\n"
           "#else\n#include <sys/socket.h>\n#endif\n#if 0\nthis is not bpftrace\n#endif\n"
           "kprobe:f /comm == NAME && arg0 > LIMIT/ { @ = count(); }\n")
    prog = parse_program(src)
    f = prog.probes[0].filter
    assert f.left.right.value == "bash" and f.right.right.op == "<<"
    assert src[f.right.right.span.start:f.right.right.span.end] == "LIMIT"
    assert "c_structs" not in prog.settings and prog.settings["defines"]["LIMIT"] == "(1 << 4)"


def test_enum_identifiers_left_for_resolve():
    prog = _tool("tcplife.bt")
    cond = prog.probes[1].actions[2].cond
    assert isinstance(cond.left.right, ir.Ident) and cond.left.right.name == "TCP_FIN_WAIT1"
    runq = _tool("runqlat.bt").probes[2].actions[0].cond
    assert runq.right.value == 0  # TASK_RUNNING: a macro, not in BTF


def test_config_block_and_comments():
    src = ("config = { BPFTRACE_STRLEN = 100; stack_mode = perf }\n/* c */ BEGIN // x\n"
           "{ /* a /b/ */ printf(\"// not a comment\\n\"); }")
    prog = parse_program(src)
    assert prog.settings["config"] == {"BPFTRACE_STRLEN": 100, "stack_mode": "perf"}
    assert prog.probes[0].actions[0].fmt == "// not a comment\n"


def test_filter_division_and_end_slash():
    f = parse_program("kprobe:f /arg0 / 2 > 1/ { }").probes[0].filter
    assert f.op == ">" and f.left.op == "/"
    f = parse_program("kprobe:f /(arg0 / 2)/{ }").probes[0].filter
    assert f.op == "/"


# --------------------------------------------------------------------------- probe specs


@pytest.mark.parametrize("spec,kind,target,obj,offset,name", [
    ("BEGIN", "begin", "", "", 0, "BEGIN"),
    ("t:syscalls:sys_enter_openat", "tracepoint", "syscalls:sys_enter_openat", "", 0,
     "tracepoint:syscalls:sys_enter_openat"),
    ("rawtracepoint:sched_switch", "raw_tracepoint", "sched_switch", "", 0, "rawtracepoint:sched_switch"),
    ("rt:sched_switch", "raw_tracepoint", "sched_switch", "", 0, "rawtracepoint:sched_switch"),
    ("k:do_sys_open+9", "kprobe", "do_sys_open", "", 9, "kprobe:do_sys_open+9"),
    # a leading 0 is octal, as bpftrace 0.17 (stoll base 0) and kprobe_events read it
    ("k:do_sys_open+010", "kprobe", "do_sys_open", "", 8, "kprobe:do_sys_open+010"),
    ("k:do_sys_open+0x1F", "kprobe", "do_sys_open", "", 31, "kprobe:do_sys_open+0x1F"),
    ("kr:vfs_read", "kretprobe", "vfs_read", "", 0, "kretprobe:vfs_read"),
    ("kfunc:kvm:x86_emulate_insn", "fentry", "x86_emulate_insn", "kvm", 0, "kfunc:kvm:x86_emulate_insn"),
    ("fr:fget", "fexit", "fget", "", 0, "kretfunc:fget"),
    ("fentry:fget", "fentry", "fget", "", 0, "fentry:fget"),
    ("uprobe:/bin/bash:0x2ec00", "uprobe", "", "/bin/bash", 0x2EC00, "uprobe:/bin/bash:0x2ec00"),
    ("u:libc:malloc+4", "uprobe", "malloc", "libc", 4, "uprobe:libc:malloc+4"),
    ("ur:/bin/bash:readline", "uretprobe", "readline", "/bin/bash", 0, "uretprobe:/bin/bash:readline"),
    ("usdt:/root/tick:tock:loop", "usdt", "tock:loop", "/root/tick", 0, "usdt:/root/tick:tock:loop"),
    ("U:./a.out:loop", "usdt", "loop", "./a.out", 0, "usdt:./a.out:loop"),
    ("profile:hz:99", "profile", "hz:99", "", 0, "profile:hz:99"),
    ("i:s:1", "interval", "s:1", "", 0, "interval:s:1"),
    ("software:faults:100", "software", "page-faults:100", "", 0, "software:faults:100"),
    ("s:cpu-clock:", "software", "cpu-clock", "", 0, "software:cpu-clock:"),
    ("hardware:cache-misses:1000000", "hardware", "cache-misses:1000000", "", 0, "hardware:cache-misses:1000000"),
    ("iter:task", "iter", "task", "", 0, "iter:task"),
    ("it:task_file", "iter", "task_file", "", 0, "iter:task_file"),
])
def test_probe_specs(spec, kind, target, obj, offset, name):
    prog = parse_program(spec + " { }")
    ap = prog.probes[0].attach[0]
    assert (ap.kind, ap.target, ap.obj, ap.offset) == (kind, target, obj, offset)
    assert prog.probes[0].name == name and ap.span == Span(0, len(spec))


@pytest.mark.parametrize("spec,msg,bad", [
    ("kprbe:f", "unknown probe type 'kprbe'", "kprbe"),
    ("tracepoint:syscalls", "tracepoint probe needs GROUP:EVENT", "tracepoint:syscalls"),
    ("profile:min:5", "unknown profile unit 'min'", "min"),
    ("interval:s:0", "interval rate must be a positive integer", "0"),
    ("software:fualts:1", "unknown software event 'fualts'", "fualts"),
    ("kretprobe:f+4", "kretprobe probes take no offset", "+4"),
    ("kprobe:f+08", "bad offset '+08': a leading 0 means octal, and 8 is not an octal digit", "+08"),
    ("uprobe:/bin/bash:readline+09", "bad offset '+09'", "+09"),
    ("iter:task*", "iter probe type does not support wildcards", "task*"),
    ("BEGIN:x", "BEGIN takes no fields", ":x"),
])
def test_bad_probe_specs(spec, msg, bad):
    e = _err(spec + " { }")
    assert msg in e.message
    _at(spec + " { }", e, bad)


def test_probe_spec_hints():
    e = _err("kprbe:f { }")
    assert "did you mean kprobe?" in e.hints and any("probe types:" in h for h in e.hints)
    e = _err("software:fualts:1 { }")
    assert "did you mean faults?" in e.hints


def test_parse_spec_direct():
    ap, name = parse_spec("t:sched:sched*", 10, " " * 10 + "t:sched:sched*")
    assert ap.wildcard and ap.span == Span(10, 24) and name == "tracepoint:sched:sched*"


# --------------------------------------------------------------------------- errors with carets


def test_error_missing_semicolon():
    src = "BEGIN { $x = 1 $y = 2 }"
    e = _err(src)
    assert e.message == "unexpected '$y', expected ';'"
    _at(src, e, "$y")
    assert e.render().splitlines()[0] == "<test>:1:16: error: unexpected '$y', expected ';'"


def test_error_unclosed_block_points_at_end():
    src = "BEGIN { printf(\"x\");\n"
    e = _err(src)
    assert e.message == "unexpected end of input, expected '}'"
    assert e.span.start == len(src)


def test_error_count_without_parens():
    src = "kprobe:f { @x = count; }"
    e = _err(src)
    assert "did you mean count()?" in e.hints
    _at(src, e, "count")


def test_error_misspelt_builtin_and_function():
    src = 'tracepoint:syscalls:sys_enter_openat { printf("%s\\n", cmm); }'
    e = _err(src)
    assert e.message == "unknown identifier 'cmm'" and "did you mean comm?" in e.hints
    _at(src, e, "cmm")
    src = 'BEGIN { prinft("x"); }'
    e = _err(src)
    assert e.message == "unknown function 'prinft'" and "printf" in e.hints[0]
    _at(src, e, "prinft")


def test_error_printf_arity_and_conversions():
    src = 'BEGIN { printf("%d %s\\n", pid); }'
    e = _err(src)
    assert e.message == "printf: not enough arguments for format string (1 supplied, 2 expected)"
    _at(src, e, '"%d %s\\n"')
    src = 'BEGIN { printf("%d\\n", pid, comm); }'
    e = _err(src)
    assert "too many arguments" in e.message
    _at(src, e, "comm")
    src = 'BEGIN { printf("100%% %-10.3q\\n", pid); }'
    e = _err(src)
    assert e.message == "printf: unknown conversion '%-10.3q' in format string"
    _at(src, e, "%-10.3q")
    assert parse_program('BEGIN { printf("100%% %-10.10s %5lu %llx %r\\n", comm, 1, 2, buf(arg0, 4)); }')


def test_error_aggregation_misuse():
    src = "kprobe:f { $x = count(); }"
    e = _err(src)
    assert "only be assigned to a map" in e.message
    _at(src, e, "count")
    src = "kprobe:f { @x = hist(1) + 1; }"
    _at(src, _err(src), "+")
    src = "kprobe:f { @x = count(); } kprobe:g { @x = hist(arg0); }"
    e = _err(src)
    assert "@x already holds count()" in e.message
    src = "kprobe:f { @x = lhist(arg0, 10, 0, 1); }"
    _at(src, _err(src), "0", 2)


def test_error_void_function_as_value():
    src = 'BEGIN { $x = printf("a"); }'
    e = _err(src)
    assert e.message == "printf() has no value; it can only be a statement"
    _at(src, e, 'printf("a")')


def test_error_assign_to_non_lvalue():
    src = "BEGIN { pid = 3; }"
    e = _err(src)
    assert "only $variables and @maps" in e.message
    _at(src, e, "pid")
    src = "BEGIN { $1 = 3; }"
    assert "positional" in _err(src).message


def test_error_lexical():
    src = 'BEGIN { printf("abc); }'
    e = _err(src)
    assert e.message == "unterminated string"
    assert e.span.start == src.index('"abc')
    src = "BEGIN { $x = 0x; }"
    e = _err(src)
    _at(src, e, "0x")
    src = "BEGIN { $x = 12ab; }"
    _at(src, _err(src), "12ab")
    src = 'BEGIN { printf("\\q"); }'
    e = _err(src)
    assert "escape" in e.message
    _at(src, e, "\\q")
    src = "BEGIN { /* never closed }"
    assert _err(src).message == "unterminated comment"
    src = "BEGIN { $x = 1 ` 2; }"
    _at(src, _err(src), "`")


def test_error_misc():
    assert "'break' outside a while loop" in _err("BEGIN { break; }").message
    assert "unroll minimum value is 1" in _err("BEGIN { unroll(0) { } }").message
    assert "unroll maximum value is 100" in _err("BEGIN { unroll(101) { } }").message
    src = "BEGIN { $x = (struct sock *); }"
    assert "expected an expression to cast" in _err(src).message
    assert "no probes" in _err("// nothing\n").message
    src = "kprobe:a kprobe:b { }"
    e = _err(src)
    _at(src, e, "kprobe", 1)
    assert any("','" in h for h in e.hints)
    assert "#if without #endif" in _err("#ifdef X\nBEGIN { }").message
    src = "BEGIN { $x = 1; }\n#bogus\n"
    _at(src, _err(src), "#bogus")
    src = "kprobe:f { $x = &arg0; }"
    _at(src, _err(src), "&")


def test_error_render_multiline():
    src = "BEGIN\n{\n  @x = count;\n}\n"
    text = _err(src).render()
    assert text.splitlines()[:3] == ["<test>:3:8: error: 'count' is a map function", "    @x = count;",
                                     "         ^~~~~"]


def test_preprocess_keeps_offsets():
    src = open(os.path.join(BT, "tools", "dcsnoop.bt"), encoding="utf-8").read()
    pp = preprocess(src)
    assert len(pp.text) == len(src) and pp.text.count("\n") == src.count("\n")
    assert "struct nameidata {" not in pp.text and "Brendan" not in pp.text
    assert pp.text.index("kprobe:d_lookup") == src.index("kprobe:d_lookup")


def test_non_text_input():
    with pytest.raises(ParseError):
        parse_program(b"BEGIN {}")  # type: ignore[arg-type]


def test_args_both_spellings_and_kfunc():
    a, b = parse_program("t:syscalls:sys_enter_openat { $a = args.filename; $b = args->flags; }").probes[0].actions
    assert isinstance(a.value, ir.Field) and a.value.name == "filename"
    assert isinstance(b.value, ir.Field) and b.value.name == "flags"
    pf = parse_program('kretfunc:fget { printf("fd %d name %s\\n", args->fd, '
                       'str(retval->f_path.dentry->d_name.name)); }').probes[0].actions[0]
    assert pf.args[0].name == "fd"
    chain = pf.args[1].args[0]
    names = []
    while isinstance(chain, ir.Member):
        names.append((chain.name, chain.arrow))
        chain = chain.base
    assert isinstance(chain, ir.Retval)
    assert names == [("name", False), ("d_name", True), ("dentry", False), ("f_path", True)]
    m = parse_program("kprobe:f { $x = args->a->b; }").probes[0].actions[0].value
    assert isinstance(m, ir.Member) and m.name == "b" and isinstance(m.base, ir.Field)


def test_an_arrow_member_starts_at_the_parentheses_around_its_base():
    """bpftrace's place for ``(X)->m`` (e.g. a -kk helper error's column) is the first '('."""
    src = "struct foo {int a;}; BEGIN { $tmp = ((struct foo*) 0)->a; exit(); }"
    p = parse_program(src)
    m = p.probes[0].actions[0].value
    assert isinstance(m, ir.Member) and src[m.span.start:m.span.end] == "((struct foo*) 0)->a"
    p = parse_program("BEGIN { $x = (1 + 2) * 3; $y = ($x)[0]; }")
    idx = p.probes[0].actions[1].value
    assert isinstance(idx, ir.Index) and idx.span.start == "BEGIN { $x = (1 + 2) * 3; $y = ($x)[0]; }".index("$x)")
