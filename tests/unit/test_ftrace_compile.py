"""Golden tests: resolved IR -> exact kprobe_events/uprobe_events lines and filters.

The IR here is built by hand with the types and offsets resolve would attach,
so these tests pin the compiler alone (surftrace README examples, seed 004).
"""

import pytest

from undertow.backends.ftrace.compile import FtraceUnsupported, compile_program
from undertow.errors import Span
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.types import COMM, ArrayTy, IntTy, PtrTy, RecordTy, S32, U8, U32, U64

X86 = get_arch("x86_64")
ARM = get_arch("aarch64")
CHAR = IntTy(1, True, "char", is_char=True)
TASK = RecordTy("task_struct", "struct", 9000)
TASK_P = PtrTy(TASK)
MM_P = PtrTy(RecordTy("mm_struct", "struct", 1000))


def arg(i, t):
    a = ir.Arg(i)
    a.type = t
    return a


def member(base, name, off, t, arrow=True, **kw):
    m = ir.Member(base, name, arrow, off, **kw)
    m.type = t
    return m


def kprobe(target, fields, filt=None, kind="kprobe", offset=0):
    p = ir.Probe([ir.AttachPoint(kind, target, offset=offset)], filt, [ir.Emit(fields)])
    return ir.Program([p])


COMM_ARG = " __comm=$comm:string"


def one(prog, arch=X86):
    """The one spec of ``prog``; its definition without the $comm fetch every kprobe/uprobe
    event ends with (test_dynamic_events_fetch_comm), so goldens read as surftrace's."""
    (spec,) = compile_program(prog, arch, group="undertow_1")
    if spec.definition:
        assert spec.definition.endswith(COMM_ARG)
        spec.definition = spec.definition[:-len(COMM_ARG)]
    return spec


def test_comm_string_member():
    comm = member(arg(0, TASK_P), "comm", 0xAFC, ArrayTy(CHAR, 16))
    spec = one(kprobe("_do_fork", [ir.EmitField("comm", comm)]))
    assert spec.definition == "p:undertow_1/e0 _do_fork comm=+0xafc(%di):string"
    assert spec.definition_file == "kprobe_events"


def test_pointer_chain_signed():
    users = member(member(arg(0, TASK_P), "mm", 0x858, MM_P), "mm_users", 0x48, S32)
    spec = one(kprobe("_do_fork", [ir.EmitField("uesrs", users, "s")]))
    assert spec.definition == "p:undertow_1/e0 _do_fork uesrs=+0x48(+0x858(%di)):s32"


def test_aarch64_registers():
    comm = member(arg(0, TASK_P), "comm", 0x5C0, ArrayTy(CHAR, 16))
    spec = one(kprobe("_do_fork", [ir.EmitField("comm", comm)]), ARM)
    assert spec.definition == "p:undertow_1/e0 _do_fork comm=+0x5c0(%x0):string"


def test_dot_members_add_offsets_and_index():
    pids = member(arg(0, TASK_P), "pids", 0x970, ArrayTy(RecordTy("pid_link", "struct", 24), 3))
    idx = ir.Index(pids, ir.Const(1))
    idx.type = RecordTy("pid_link", "struct", 24)
    node = member(idx, "node", 0, RecordTy("hlist_node", "struct", 16), arrow=False)
    nxt = member(node, "next", 0, PtrTy(RecordTy("hlist_node", "struct", 16)), arrow=False)
    spec = one(kprobe("_do_fork", [ir.EmitField("node", nxt)]))
    assert spec.definition == "p:undertow_1/e0 _do_fork node=+0x988(%di):x64"


def test_offset_register_retval_and_filter():
    r12 = ir.Register("r12")
    r12.type = U64
    spec = one(kprobe("_do_fork", [ir.EmitField("r", r12, "x")], offset=21))
    assert spec.definition == "p:undertow_1/e0 _do_fork+21 r=%r12:x64"
    ret = ir.Retval()
    ret.type = IntTy(8, True, "long")
    f = ir.Binary("<", ir.Field("r"), ir.Const(0))
    spec = one(kprobe("_do_fork", [ir.EmitField("r", ret)], f, kind="kretprobe"))
    assert spec.definition == "r:undertow_1/e0 _do_fork r=$retval:s64"
    assert spec.filter == "r<0"


def test_filter_strings_ip_and_logic():
    comm = member(arg(0, TASK_P), "comm", 0xAFC, ArrayTy(CHAR, 16))
    users = member(member(arg(0, TASK_P), "mm", 0x858, MM_P), "mm_users", 0x48, S32)
    filt = ir.Binary("&&", ir.Binary("==", ir.Builtin("pid"), ir.Const(1)),
                     ir.Binary("||", ir.Binary("==", ir.Field("comm"), ir.Const("my proc")),
                               ir.Binary("<", ir.Field("users"), ir.Const(4))))
    spec = one(kprobe("_do_fork", [ir.EmitField("comm", comm), ir.EmitField("users", users, "s")], filt))
    assert spec.filter == 'common_pid==1 && (comm=="my proc" || users<4)'
    saddr = member(arg(0, PtrTy(RecordTy("iphdr", "struct", 20))), "saddr", 12, IntTy(4, False, "__be32", big_endian=True))
    spec = one(kprobe("ip_rcv", [ir.EmitField("ip_src", saddr, "ipv4")],
                      # the resolver turns the dotted address into the field's raw u32 (resolve_lines)
                      ir.Binary("==", ir.Field("ip_src"), ir.Const(0x100007F))))
    assert spec.definition.endswith("ip_src=+0xc(%di):u32")
    assert spec.filter == "ip_src==0x100007f"


def test_uprobe_uses_file_offset():
    ap = ir.AttachPoint("uprobe", "getpid", path="/usr/lib/x86_64-linux-gnu/libc.so.6", obj="libc", file_offset=0xE4A30)
    p = ir.Program([ir.Probe([ap], None, [ir.Emit([])])])
    spec = one(p)
    assert spec.definition == "p:undertow_1/e0 /usr/lib/x86_64-linux-gnu/libc.so.6:0xe4a30"
    assert spec.definition_file == "uprobe_events"


def test_user_pointer_string_in_kprobe_is_ustring():
    fname = arg(1, PtrTy(CHAR, space="user"))
    spec = one(kprobe("do_sys_openat2", [ir.EmitField("filename", fname)]))
    assert spec.definition == "p:undertow_1/e0 do_sys_openat2 filename=+0x0(%si):ustring"


def test_refusals_carry_spans():
    s = Span(3, 7)
    bad = ir.Binary("+", arg(0, U64), ir.Const(1)).at(s)
    with pytest.raises(FtraceUnsupported) as ei:
        one(kprobe("f", [ir.EmitField("x", bad)]))
    assert ei.value.span == s and "bpf" in ei.value.hints[0]
    with pytest.raises(FtraceUnsupported, match="return probe"):
        one(kprobe("f", [ir.EmitField("x", ir.Retval())]))
    with pytest.raises(FtraceUnsupported, match="whole struct"):
        one(kprobe("f", [ir.EmitField("x", arg(0, TASK))]))


def test_tracepoint_filter():
    ap = ir.AttachPoint("tracepoint", "syscalls:sys_enter_openat")
    filt = ir.Binary("~", ir.Field("comm"), ir.Const("py*"))
    prog = ir.Program([ir.Probe([ap], filt, [ir.Emit([])])])
    spec = one(prog)
    assert (spec.group, spec.event, spec.definition, spec.filter) == ("syscalls", "sys_enter_openat", None, 'comm~"py*"')
