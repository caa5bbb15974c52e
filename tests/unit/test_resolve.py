"""Resolve + type check: declared kernel types, the fixture tracefs tree, the ELF fixtures.

The ftrace lines of surftrace's README are goldens here (through the ftrace
compiler), with the layouts the README's kernel had.
"""

from __future__ import annotations

import os
import sys

import pytest

from undertow.backends.ftrace.compile import compile_program
from undertow.errors import AttachUnavailableError, FeatureUnavailableError, ResolveError, TypeCheckError
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.probeline import parse_line, parse_lines
from undertow.lang.resolve import (
    DeclTypes, default_format, format_field_type, kprobe_alternative, resolve,
)
from undertow.lang.types import ArrayTy, IntTy, PtrTy, RecordTy, StrTy, U64

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TYPES, FakeKernel  # noqa: E402

ELF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "elf")


def res(*lines: str, kprobes: bool = True, arch: str = "x86_64", strict: bool = True) -> ir.Program:
    return resolve(parse_lines(list(lines)), FakeKernel(kprobes), arch=arch, strict_kprobes=strict, types=TYPES)


def ftrace(*lines: str, arch: str = "x86_64") -> list:
    prog = res(*lines, arch=arch)
    # without the $comm fetch every kprobe/uprobe event ends with (test_ftrace_compile.py)
    return [(s.definition.replace(" __comm=$comm:string", "") if s.definition else s.definition, s.filter)
            for s in compile_program(prog, get_arch(arch), group="g")]


def fail(cls, *lines: str, **kw):
    with pytest.raises(cls) as ei:
        res(*lines, **kw)
    e = ei.value
    assert e.render().count("^") == 1  # one caret line
    return e, e.source[e.span.start:e.span.end]


def emitted(prog: ir.Program, i: int = 0):
    return prog.probes[i].actions[0].fields


# ----------------------------------------------------------------- surftrace README goldens

@pytest.mark.parametrize("line,definition,filt", [
    ("p _do_fork", "p:g/e0 _do_fork", None),
    ("r _do_fork", "r:g/e0 _do_fork", None),
    ("p _do_fork comm=%0->comm", "p:g/e0 _do_fork comm=+0xafc(%di):string", None),
    ("p _do_fork comm=%0->comm  uesrs=S%0->mm->mm_users",
     "p:g/e0 _do_fork comm=+0xafc(%di):string uesrs=+0x48(+0x858(%di)):s32", None),
    ("p _do_fork comm=%0->comm  node=%0->pids[1].node.next",
     "p:g/e0 _do_fork comm=+0xafc(%di):string node=+0x988(%di):x64", None),
    ("p _do_fork comm=%0->comm  uesrs=S%0->mm->mm_users f:comm==systemd",
     "p:g/e0 _do_fork comm=+0xafc(%di):string uesrs=+0x48(+0x858(%di)):s32", 'comm=="systemd"'),
    ("p _do_fork comm=%0->comm  users=S%0->mm->mm_users f:comm==python||users<4",
     "p:g/e0 _do_fork comm=+0xafc(%di):string users=+0x48(+0x858(%di)):s32", 'comm=="python" || users<4'),
    ("p _do_fork comm=%0->comm  users=S%0->mm->mm_users f:common_pid==1&&(comm==python||users<4)",
     "p:g/e0 _do_fork comm=+0xafc(%di):string users=+0x48(+0x858(%di)):s32",
     'common_pid==1 && (comm=="python" || users<4)'),
    ("p _do_fork+21 r=%r12", "p:g/e0 _do_fork+21 r=%r12:x64", None),
    ("r _do_fork r=$retval", "r:g/e0 _do_fork r=$retval:s64", None),
    # beyond surftrace
    ("p tcp_connect daddr=sk->__sk_common.skc_daddr", "p:g/e0 tcp_connect daddr=+0x0(%di):u32", None),
    ("p tcp_connect ip_d=sk->__sk_common.skc_daddr sk->__sk_common.skc_dport f:ip_d==127.0.0.1",
     "p:g/e0 tcp_connect ip_d=+0x0(%di):u32 skc_dport=+0xc(%di):u16", "ip_d==0x100007f"),
    ("p do_sys_openat2 filename", "p:g/e0 do_sys_openat2 filename=+0x0(%si):ustring", None),
    ("r filp_open pos=$retval->f_pos", "r:g/e0 filp_open pos=+0x40($retval):s64", None),
    ("p _do_fork t=(struct task_struct *)%dx->pid", "p:g/e0 _do_fork t=+0x500(%dx):s32", None),
    ("p _do_fork j=@jiffies", "p:g/e0 _do_fork j=@jiffies:u64", None),
])
def test_surftrace_goldens(line, definition, filt):
    assert ftrace(line) == [(definition, filt)]


def test_aarch64_registers():
    assert ftrace("p _do_fork comm=%0->comm c=%2", arch="aarch64") == [
        ("p:g/e0 _do_fork comm=+0xafc(%x0):string c=%x2:u64", None)]
    assert ftrace("p _do_fork lr=%lr", arch="aarch64") == [("p:g/e0 _do_fork lr=%x30:x64", None)]


# ----------------------------------------------------------------- what resolve fills in

def test_args_get_index_name_and_type():
    prog = res("p tcp_connect sk->__sk_common.skc_daddr x=%0")
    a, b = emitted(prog)
    arg = a.expr.base.base
    assert (arg.index, arg.name) == (0, "sk")
    assert isinstance(arg.type, PtrTy) and arg.type.target.name == "sock"
    assert (b.expr.index, b.expr.name) == (0, "sk")
    # anonymous union/struct members crossed: offset and path
    m = a.expr
    assert m.offset == 0 and m.path == ("", "", "skc_daddr")
    assert a.fmt == "ipv4"  # __be32 named ...daddr
    assert b.fmt == "x"  # a pointer


def test_default_formats():
    be16 = IntTy(2, False, "__be16", big_endian=True)
    assert default_format("dport", be16) == "b16"
    assert default_format("saddr", IntTy(4, False, "__be32", big_endian=True)) == "ipv4"
    assert default_format("x", IntTy(4, True, "int")) == "s"
    assert default_format("x", IntTy(8, False, "u64")) == "u"
    assert default_format("s", ArrayTy(IntTy(1, True, "char", is_char=True), 16)) == "str"
    assert default_format("s", PtrTy(IntTy(1, True, "char", is_char=True), "user")) == "ustr"
    assert default_format("p", PtrTy(RecordTy("sock"))) == "x"


def test_explicit_format_wins():
    prog = res("p _do_fork X%0->pid U%0->flags")
    assert [f.fmt for f in emitted(prog)] == ["x", "u"]


def test_bitfield():
    (f,) = emitted(res("p _do_fork b=%0->in_execve"))
    assert (f.expr.offset, f.expr.bit_offset, f.expr.bit_size) == (0xb10, 1, 1)
    assert ftrace("p _do_fork b=%0->in_execve") == [("p:g/e0 _do_fork b=+0xb10(%di):b1@1/32", None)]


def test_skb_headers_resolved_from_the_header_type():
    prog = res("p netif_receive_skb proto=@(struct iphdr *)l3%0->protocol "
               "ip_src=@(struct iphdr *)%0->saddr d=@(struct udphdr *)l3%0->sdata[1] "
               "f:proto==17&&ip_src==127.0.0.1")
    proto, src, d = emitted(prog)
    hdr = proto.expr.base
    assert isinstance(hdr, ir.SkbHeader) and hdr.layer == "l3"
    assert proto.expr.offset == 9 and src.expr.offset == 12 and src.fmt == "ipv4"
    assert d.expr.header.layer == "l4"  # udphdr read at l4 even when skb->data is at l3
    assert d.expr.type.size == 2


def test_tracepoint_fields_all_by_default():
    prog = res("e sched/sched_process_exec")
    names = [(f.name, f.fmt) for f in emitted(prog)]
    assert names == [("filename", "str"), ("pid", "s"), ("old_pid", "s")]
    assert all(isinstance(f.expr, ir.Field) and f.expr.fmt_field is not None for f in emitted(prog))


def test_tracepoint_selected_fields_and_filter():
    prog = res('e sched/sched_switch prev_comm next=next_pid f:prev_comm=="a b"&&next_pid>0')
    assert [f.name for f in emitted(prog)] == ["prev_comm", "next"]
    assert prog.probes[0].filter.left.left.fmt_field.name == "prev_comm"
    specs = compile_program(prog, get_arch("x86_64"), group="g")
    assert specs[0].filter == 'prev_comm=="a b" && next_pid>0'


def test_syscall_string_is_a_user_pointer():
    (f,) = [f for f in emitted(res("e syscalls/sys_enter_openat")) if f.name == "filename"]
    assert isinstance(f.expr.type, PtrTy) and f.expr.type.space == "user" and f.fmt == "ustr"


def test_wildcards_expand_to_one_probe_per_event():
    prog = res("e syscalls/sys_enter_open* f:comm==bash")
    targets = [p.attach[0].target for p in prog.probes]
    assert targets == ["syscalls:sys_enter_open", "syscalls:sys_enter_openat"]
    assert all(not p.attach[0].wildcard for p in prog.probes)
    assert prog.probes[0].filter is not prog.probes[1].filter


def test_format_field_types():
    from undertow.kernel.formats import Field
    assert format_field_type(Field("comm", "char[16]", 8, 16, True, array_len=16, elem_type="char")) == StrTy(16)
    t = format_field_type(Field("dfd", "int", 16, 8, False, elem_type="int"))
    assert isinstance(t, IntTy) and t.signed and t.size == 4


def test_uprobe_offsets_from_elf():
    prog = resolve(parse_lines([f"P {ELF}/prog-pie:fixture_work+4 a=%0", f"R {ELF}/prog-nopie:fixture_work r=$retval"]),
                   FakeKernel(False), arch="x86_64", types=TYPES)
    p, r = prog.probes
    assert p.attach[0].path == os.path.join(ELF, "prog-pie") and p.attach[0].file_offset == 0x115E + 4
    assert r.attach[0].file_offset == 0x40114B - 0x400000
    assert emitted(prog)[0].expr.type == U64


def test_uprobe_unknown_symbol():
    e, caret = fail(ResolveError, f"P {ELF}/prog-pie:fixture_wrk")
    assert caret == "fixture_wrk"
    assert any("fixture_work" in h for h in e.hints)


def test_uprobe_missing_object():
    e, caret = fail(ResolveError, "P /nonexistent/prog:main")
    assert caret == "/nonexistent/prog"


# ----------------------------------------------------------------- no kprobes on this kernel

def test_no_kprobes_names_a_tracepoint_before_touching_tracefs():
    k = FakeKernel(kprobes=False)
    with pytest.raises(AttachUnavailableError) as ei:
        resolve(parse_lines(["p tcp_connect daddr=sk->__sk_common.skc_daddr"]), k, arch="x86_64", types=TYPES)
    e = ei.value
    assert isinstance(e, FeatureUnavailableError) and e.feature == "kprobe_events"
    assert "no kprobe support" in e.message and "tcp_connect" in e.message
    assert any("sock:inet_sock_set_state" in h and "e sock/inet_sock_set_state" in h for h in e.hints)
    assert e.source[e.span.start:e.span.end] == "tcp_connect"
    assert "^" in e.render()


@pytest.mark.parametrize("sym,ret,event", [
    ("do_sys_openat2", False, "syscalls:sys_enter_openat"), ("_do_fork", False, "sched:sched_process_fork"),
    ("kernel_clone", False, "sched:sched_process_fork"), ("do_exit", False, "sched:sched_process_exit"),
    ("__netif_receive_skb_core", False, "net:netif_receive_skb"), ("vfs_write", False, "syscalls:sys_enter_write"),
    ("__x64_sys_openat", True, "syscalls:sys_exit_openat"), ("__arm64_sys_read", False, "syscalls:sys_enter_read"),
])
def test_kprobe_alternatives(sym, ret, event):
    assert kprobe_alternative(sym, ret)[0] == event


def test_offline_compiles_without_kprobes():
    prog = res("p _do_fork comm=%0->comm", kprobes=False, strict=False)
    assert emitted(prog)[0].expr.offset == 0xafc


# ----------------------------------------------------------------- type errors surftrace got wrong

@pytest.mark.parametrize("line,cls,msg,caret,hint", [
    ("p __netif_receive_skb_core x=%0->len", TypeCheckError, "a pointer to a pointer", "%0",
     "(*pskb)->len"),
    ("p _do_fork x=%0->pids[3].node", TypeCheckError, "the index 3 is out of bounds for array of size 3", "3", "0..2"),
    ("p _do_fork x=%0->comm.x", TypeCheckError, "'.' needs a struct", "x", ""),
    ("p _do_fork x=%0.comm", TypeCheckError, "use '->'", "comm", "parent->comm"),
    ("r _do_fork f=$retval->f_pos", TypeCheckError, "'->' needs a pointer to a struct", "f_pos",
     "integers have no members"),
    ("p _do_fork x=%0->com", ResolveError, "struct task_struct has no member 'com'", "com", "did you mean comm"),
    ("p tcp_connect x=sk->skc_daddr", ResolveError, "no member 'skc_daddr'", "skc_daddr",
     "sk->__sk_common.skc_daddr"),
    ("p tcp_connect x=sk->__sk_common.skc_dadr", ResolveError, "no member 'skc_dadr'", "skc_dadr",
     "did you mean skc_daddr"),
    ("p _do_fork %5", TypeCheckError, "takes 3 arguments; there is no %5", "%5", "struct task_struct *"),
    ("p _do_fork x=prent->pid", ResolveError, "no argument named 'prent'", "prent", "did you mean parent"),
    ("p no_btf_func x=sk->x", ResolveError, "cannot name the arguments", "sk", "%0"),
    ("p no_btf_func x=%0->x", TypeCheckError, "has no type here", "%0", "(struct NAME *)"),
    ("p _do_fork x=$retval", TypeCheckError, "only at a return probe", "$retval", "r _do_fork"),
    ("r _do_fork x=%0", TypeCheckError, "not available at a return probe", "%0", ""),
    ("r do_exit x=$retval", TypeCheckError, "returns void", "$retval", ""),
    ("p _do_fork x=(struct sockk *)%0->x", ResolveError, "unknown type 'struct sockk'", "(struct sockk *)",
     "did you mean struct sock"),
    ("p _do_fork x=%zz", ResolveError, "unknown register 'zz'", "%zz", "registers"),
    ("p _do_fork x=%0->mm", None, "", "", ""),
    ("p _do_fork x=*%0", TypeCheckError, "cannot print a whole struct task_struct", "*%0", "members"),
    ("p netif_receive_skb x=@(struct ethhdr *)l3%0->h_proto", TypeCheckError, "layer-2 header", "(struct ethhdr *)",
     "l2"),
    ("p _do_fork x=@(struct iphdr *)%0->saddr", TypeCheckError, "needs a struct sk_buff *", "%0", ""),
    ("p netif_receive_skb x=@(struct foo *)%0->saddr", TypeCheckError, "not a protocol header", "(struct foo *)",
     "struct iphdr *"),
    ("p _do_fork comm=%0->comm f:com==bash", ResolveError, "unknown field 'com'", "com", "did you mean comm"),
    ("p _do_fork pid=%0->pid f:pid==\"x\"", TypeCheckError, "cannot compare", "pid==\"x\"", ""),
    ("p _do_fork comm=%0->comm f:comm>bash", TypeCheckError, "strings compare with", "comm>bash", ""),
    ("p tcp_connect ip_d=sk->__sk_common.skc_daddr f:ip_d==1.2.3.999", TypeCheckError, "not an IPv4 address",
     "1.2.3.999", "dotted"),
    ("p _do_fork ip_x=%0->flags2", ResolveError, "no member 'flags2'", "flags2", "flags"),
    ("e sched/sched_swich", ResolveError, "tracepoint not found: sched:sched_swich", "sched/sched_swich",
     "sched:sched_switch"),
    ("e sched/sched_switch next_pidd", ResolveError, "has no field 'next_pidd'", "next_pidd", "next_pid"),
    ("e sched/sched_switch f:prev_pidd==1", ResolveError, "unknown field 'prev_pidd'", "prev_pidd", "prev_pid"),
    ("e nosuch/ev*", ResolveError, "no trace event matches", "nosuch/ev*", "undertow list"),
    ("e sched/sched_switch x=%0", TypeCheckError, "tracepoints have fields", "%0", "prev_comm"),
])
def test_type_errors(line, cls, msg, caret, hint):
    if cls is None:  # a pointer prints as hex: allowed
        res(line)
        return
    e, under = fail(cls, line)
    assert msg in e.message, e.message
    assert under == caret
    if hint:
        assert any(hint in h for h in e.hints), e.hints


def test_struct_typedef_cast_and_member_through_anon():
    t = DeclTypes({"struct a": (8, [("", 0, RecordTy("b", "union", 0, btf="union b"))]),
                   "union b": (8, [("x", 4, IntTy(4, True, "int"))])})
    mi = t.member(t.record("struct a"), "x")
    assert mi.offset == 4 and mi.path == ("", "x")
    assert t.member_names(t.record("struct a")) == ["x"]
    assert isinstance(t.parse_type("const struct a *"), PtrTy)
    assert t.parse_type("char __user *").space == "user"
    with pytest.raises(LookupError):
        t.parse_type("struct nope *")


# ----------------------------------------------------------------- skb header views (issue 17)

def test_skb_header_at_the_marker_layer_is_at_skb_data_on_ftrace():
    """surftrace's own translation (seed 004): proto=+0x9(+0xf0(%di)) with skb->data at 0xf0
    there, 0xc8 here; a dotted address in the filter is the field's raw u32."""
    assert ftrace("p netif_receive_skb proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)%0->saddr "
                  "f:proto==1&&ip_src==127.0.0.1") == [
        ("p:g/e0 netif_receive_skb proto=+0x9(+0xc8(%di)):u8 ip_src=+0xc(+0xc8(%di)):u32",
         "proto==1 && ip_src==0x100007f")]


def test_skb_header_through_a_pointer_to_the_skb():
    """__netif_receive_skb_core(struct sk_buff **pskb, ...) since 5.7: one dereference."""
    assert ftrace("p __netif_receive_skb_core s=@(struct iphdr *)l3%0->saddr") == [
        ("p:g/e0 __netif_receive_skb_core s=+0xc(+0xc8(+0x0(%di))):u32", None)]


def test_payload_after_a_fixed_size_header_runs_on_ftrace():
    assert ftrace("p netif_receive_skb d=@(struct udphdr *)l4%0->sdata[1]") == [
        ("p:g/e0 netif_receive_skb d=+0xa(+0xc8(%di)):u16", None)]


@pytest.mark.parametrize("line", [
    "p netif_receive_skb d=@(struct iphdr *)l3%0->sdata[1]",        # after the IPv4 header: IHL
    "p netif_receive_skb d=@(struct udphdr *)l3%0->dest",           # a layer-4 header behind IPv4
    "p netif_receive_skb d=@(struct iphdr *)l2%0->protocol",        # behind Ethernet and VLAN tags
])
def test_views_whose_address_needs_a_length_from_the_packet_are_refused_by_ftrace(line):
    from undertow.backends.ftrace.compile import FtraceUnsupported

    with pytest.raises(FtraceUnsupported) as ei:
        ftrace(line)
    assert "kprobe_events cannot add fetched values" in ei.value.message
    assert any("BPF backend" in h for h in ei.value.hints)


def test_layer4_header_behind_ipv4_walks_the_ihl():
    (d,) = emitted(res("p netif_receive_skb d=@(struct udphdr *)l3%0->dest"))
    hdr = d.expr.base
    assert isinstance(hdr, ir.SkbHeader) and hdr.layer == "l4"
    kinds = {type(x).__name__ for x in hdr.addr.walk()}
    assert "Ternary" in kinds  # IPv4 (IHL * 4) or IPv6 (40) or no header
    consts = {x.value for x in hdr.addr.walk() if isinstance(x, ir.Const)}
    assert {4, 6, 15, 40} <= consts


def test_numbers_compared_with_byte_swapped_fields_are_in_the_field_s_order():
    prog = res("p tcp_connect b16_dport=sk->__sk_common.skc_dport f:b16_dport==22")
    assert prog.probes[0].filter.right.value == 0x1600  # htons(22) as a little-endian load reads it
    assert ftrace("p tcp_connect b16_dport=sk->__sk_common.skc_dport f:b16_dport==22")[0][1] == "b16_dport==5632"


def test_clone_prototypes_by_release():
    from undertow.kernel.functions import base_name, clone_param

    assert base_name("__netif_receive_skb_core.constprop.0") == "__netif_receive_skb_core"
    assert base_name("f.isra.0.part.1") == "f"
    assert clone_param("__netif_receive_skb_core.constprop.0", 0, "6.1.0-57-amd64") == "struct sk_buff **"
    assert clone_param("__netif_receive_skb_core", 0, "5.4.0-100-generic") is None  # backport unknowable
    assert clone_param("__netif_receive_skb_core", 5, "6.12.1") is None
    assert clone_param("vfs_read", 0, "6.12.1") is None
