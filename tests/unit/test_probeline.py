"""Probe-line parser: every example of surftrace's README, the new forms, spans and errors."""

from __future__ import annotations

import pytest

from undertow.errors import ParseError
from undertow.lang import ir
from undertow.lang.probeline import field_name_format, parse_file, parse_line, parse_lines, parse_text


def fields(p: ir.Probe):
    (emit,) = p.actions
    assert isinstance(emit, ir.Emit)
    return emit.fields


def text(p: ir.Probe, node) -> str:
    return p.source[node.span.start:node.span.end]


def perr(line: str) -> ParseError:
    with pytest.raises(ParseError) as ei:
        parse_line(line)
    return ei.value


def under_caret(e: ParseError) -> str:
    return e.source[e.span.start:e.span.end]


# ----------------------------------------------------------------- surftrace README (seed 004)

def test_entry_and_return():
    p, r = parse_lines(["p _do_fork", "r _do_fork"]).probes
    assert (p.attach[0].kind, p.attach[0].target) == ("kprobe", "_do_fork")
    assert (r.attach[0].kind, r.attach[0].target) == ("kretprobe", "_do_fork")
    assert fields(p) == [] and p.filter is None
    assert text(p, p.attach[0]) == "_do_fork"


def test_member_of_first_argument():
    p = parse_line("p _do_fork comm=%0->comm")
    (f,) = fields(p)
    assert f.name == "comm" and f.fmt is None
    assert isinstance(f.expr, ir.Member) and f.expr.name == "comm" and f.expr.arrow
    assert isinstance(f.expr.base, ir.Arg) and f.expr.base.index == 0
    assert text(p, f.expr) == "%0->comm"
    assert text(p, f.expr.base) == "%0"


def test_chain_and_signed_prefix():
    p = parse_line("p _do_fork comm=%0->comm  uesrs=S%0->mm->mm_users")
    comm, users = fields(p)
    assert users.name == "uesrs" and users.fmt == "s"
    assert isinstance(users.expr, ir.Member) and users.expr.name == "mm_users"
    assert users.expr.base.name == "mm"
    assert text(p, users.expr) == "%0->mm->mm_users"


@pytest.mark.parametrize("prefix,fmt", [("S", "s"), ("U", "u"), ("X", "x")])
def test_value_prefixes(prefix, fmt):
    (f,) = fields(parse_line(f"p f v={prefix}%0->x"))
    assert f.fmt == fmt


def test_index_and_dot_members():
    p = parse_line("p _do_fork comm=%0->comm  node=%0->pids[1].node.next")
    node = fields(p)[1].expr
    assert isinstance(node, ir.Member) and node.name == "next" and not node.arrow
    assert node.base.name == "node" and not node.base.arrow
    idx = node.base.base
    assert isinstance(idx, ir.Index) and idx.index.value == 1 and idx.base.name == "pids"


def test_filters_from_readme():
    p = parse_line("p _do_fork comm=%0->comm  uesrs=S%0->mm->mm_users f:comm==systemd")
    f = p.filter
    assert isinstance(f, ir.Binary) and f.op == "==" and f.left.name == "comm" and f.right.name == "systemd"
    p = parse_line("p _do_fork comm=%0->comm  users=S%0->mm->mm_users f:comm==python||users<4")
    assert p.filter.op == "||" and p.filter.right.op == "<" and p.filter.right.right.value == 4
    p = parse_line("p _do_fork comm=%0->comm  users=S%0->mm->mm_users f:common_pid==1&&(comm==python||users<4)")
    f = p.filter
    assert f.op == "&&" and f.left.left.name == "common_pid" and f.right.op == "||"
    assert text(p, f.right) == "(comm==python||users<4)"


def test_offset_and_register():
    p = parse_line("p _do_fork+21 r=%r12")
    assert p.attach[0].offset == 21 and p.attach[0].target == "_do_fork"
    (f,) = fields(p)
    assert isinstance(f.expr, ir.Register) and f.expr.name == "r12"
    assert parse_line("p _do_fork+0x15").attach[0].offset == 0x15
    assert parse_line("p _do_fork+010").attach[0].offset == 8  # octal, as kprobe_events reads it


def test_retval():
    (f,) = fields(parse_line("r _do_fork r=$retval"))
    assert isinstance(f.expr, ir.Retval) and f.name == "r"


SKB = ("p __netif_receive_skb_core proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)%0->saddr "
       "ip_dst=@(struct iphdr *)l3%0->daddr data=X@(struct iphdr *)l3%0->sdata[1] f:proto==1&&ip_src==127.0.0.1")


def test_skb_headers_and_payload():
    p = parse_line(SKB)
    proto, src, dst, data = fields(p)
    hdr = proto.expr.base
    assert isinstance(hdr, ir.SkbHeader) and hdr.type_text == "struct iphdr *" and hdr.marker == "l3"
    assert isinstance(hdr.skb, ir.Arg) and hdr.skb.index == 0
    assert text(p, hdr) == "@(struct iphdr *)l3%0"
    assert src.expr.base.marker is None and src.expr.base.layer == "l3"  # default l3
    assert src.fmt == "ipv4" and dst.fmt == "ipv4"
    assert isinstance(data.expr, ir.Payload) and data.expr.elem_size == 2 and data.expr.index.value == 1
    assert data.fmt == "x"
    f = p.filter
    assert f.right.right.value == "127.0.0.1"


@pytest.mark.parametrize("view,size", [("cdata", 1), ("sdata", 2), ("ldata", 4), ("qdata", 8)])
def test_payload_views(view, size):
    (f,) = fields(parse_line(f"p f d=@(struct udphdr *)l4%0->{view}[3]"))
    assert f.expr.elem_size == size and f.expr.index.value == 3


def test_event_with_filter():
    p = parse_line("e sched/sched_stat_wait f:delay>1000000")
    ap = p.attach[0]
    assert ap.kind == "tracepoint" and ap.target == "sched:sched_stat_wait" and not ap.wildcard
    assert p.filter.op == ">" and p.filter.left.name == "delay" and p.filter.right.value == 1000000


# ----------------------------------------------------------------- beyond surftrace

def test_btf_argument_names_and_bare_fields():
    p = parse_line("p tcp_connect daddr=sk->__sk_common.skc_daddr sk->__sk_common.skc_dport")
    a, b = fields(p)
    assert a.name == "daddr" and isinstance(a.expr.base.base, ir.Arg) and a.expr.base.base.name == "sk"
    assert b.name == "skc_dport" and text(p, b.expr) == "sk->__sk_common.skc_dport"


@pytest.mark.parametrize("expr,name", [("%1", "arg1"), ("%di", "di"), ("$retval", "retval"), ("$comm", "comm"),
                                       ("@jiffies", "jiffies"), ("%0->pids[1]", "pids")])
def test_auto_names(expr, name):
    (f,) = fields(parse_line(f"p f {expr}"))
    assert f.name == name


def test_name_prefix_formats():
    assert field_name_format("ip_src") == "ipv4"
    assert field_name_format("b16_port") == "b16" and field_name_format("B32_x") == "B32"
    assert field_name_format("ip_") is None and field_name_format("ipx") is None
    (f,) = fields(parse_line("p f b16_port=%0->x"))
    assert f.fmt == "b16"


def test_wildcard_events_and_colon_form():
    p = parse_line("e syscalls/sys_enter_open*")
    assert p.attach[0].wildcard and p.attach[0].target == "syscalls:sys_enter_open*"
    assert parse_line("e sched:sched_switch").attach[0].target == "sched:sched_switch"


def test_uprobes():
    p = parse_line("P /bin/bash:readline+4 line=$retval")
    ap = p.attach[0]
    assert (ap.kind, ap.obj, ap.target, ap.offset) == ("uprobe", "/bin/bash", "readline", 4)
    r = parse_line("R libc:malloc r=$retval")
    assert (r.attach[0].kind, r.attach[0].obj, r.attach[0].target) == ("uretprobe", "libc", "malloc")


def test_casts_bind_to_the_operand():
    p = parse_line("p f v=(struct sock *)%0->sk_protocol w=(u32)(%0->x)")
    v, w = fields(p)
    assert isinstance(v.expr, ir.Member) and isinstance(v.expr.base, ir.Cast)
    assert v.expr.base.type_text == "struct sock *"
    assert isinstance(w.expr, ir.Cast) and w.expr.type_text == "u32" and isinstance(w.expr.expr, ir.Member)
    pp = parse_line("p f v=(struct sk_buff **)%0")
    assert fields(pp)[0].expr.type_text == "struct sk_buff **"


def test_quoted_strings_and_operators():
    p = parse_line('e syscalls/sys_enter_openat f:comm=="my proc" && !(flags & 1) || common_pid != 0x10')
    f = p.filter
    assert f.op == "||" and f.left.op == "&&"
    assert f.left.left.right.value == "my proc"
    assert isinstance(f.left.right, ir.Unary) and f.left.right.expr.op == "&"
    assert f.right.right.value == 16
    assert text(p, f.left.left.right) == '"my proc"'
    p = parse_line("e a/b f:comm=='x y'&&prev_pid>=-1")
    assert p.filter.left.right.value == "x y" and p.filter.right.right.value == -1


def test_stack_and_arg_dollar():
    p = parse_line("p f $stack a=$arg2")
    (emit,) = p.actions
    assert emit.stack and [f.name for f in emit.fields] == ["a"]
    assert emit.fields[0].expr.index == 1


def test_old_tilde_connector():
    (f,) = fields(parse_line("p _do_fork comm=%0~->comm"))
    assert isinstance(f.expr, ir.Member) and f.expr.name == "comm"


def test_files_and_comments(tmp_path):
    path = tmp_path / "probes.txt"
    path.write_text("# a comment\n\np _do_fork comm=%0->comm\n  \ne sched/sched_switch\n")
    prog = parse_file(str(path))
    assert [p.attach[0].kind for p in prog.probes] == ["kprobe", "tracepoint"]
    assert prog.origin == str(path)
    # spans index the whole text, so carets report the right line
    path.write_text("p ok\n# x\np bad a=%0->\n")
    with pytest.raises(ParseError) as ei:
        parse_file(str(path))
    assert ei.value.render().startswith(f"{path}:3:")


def test_parse_lines_skips_blank_and_comments():
    prog = parse_lines(["", "# nothing", "p f"])
    assert len(prog.probes) == 1


def test_missing_file():
    with pytest.raises(ParseError, match="cannot read probe file"):
        parse_file("/nonexistent/undertow-probes")


# ----------------------------------------------------------------- errors: message, caret, hint

@pytest.mark.parametrize("line,msg,caret,hint", [
    ("x foo", "unknown probe type 'x'", "x", "p, r, e, P or R"),
    ("pfoo", "unknown probe type 'pfoo'", "pfoo", "put a space after 'p'"),
    ("kprobe foo", "unknown probe type", "kprobe", "one letter"),
    ("e sched", "expected GROUP/EVENT", "sched", "sched/sched_process_exec"),
    ("p foo+zz", "bad offset '+zz'", "+zz", "SYMBOL+OFFSET"),
    # issue 14: ValueError tracebacks; kprobe_events reads offsets with base 0 (09 is refused)
    ("p _do_fork+09", "bad offset '+09': a leading 0 means octal", "+09", "write +9 (decimal) or +0x9 (hex)"),
    ("P /usr/bin/bash:readline+08", "8 is not an octal digit", "+08", "+0x8"),
    ("e a/b f:pid==09", "bad number '09': a leading 0 means octal", "09", "write 9"),
    ("p foo a=", "expected an expression after 'a='", "=", "comm=%0->comm"),
    ("p foo a=%0 a=%1", "field 'a' defined twice", "a", "its own name"),
    ("p foo a=$bogus", "unknown special value $bogus", "$bogus", "$retval"),
    ("p foo a=$retva", "unknown special value $retva", "$retva", "did you mean retval"),
    ("p foo a=(struct x *", "unclosed '('", "(", "close it"),
    ('e a/b f:comm=="x', "unterminated string", '"x', 'close it with "'),
    ("p foo f:a=1", "unexpected '='", "=", "compare with =="),
    ("p foo f:", "empty filter", "f:", "f:common_pid"),
    ("p foo a=%0->", "expected a member name after '->'", "", ""),
    ("p foo a=12abc", "bad number '12abc'", "12abc", "hex"),
    ("P bash", "expected OBJ:SYMBOL", "bash", "libc:malloc"),
    ("p foo a=@", "expected a symbol name or a header type after '@'", "", "@jiffies"),
    ("p foo a=@(struct iphdr *)l5%0->saddr", "unknown layer marker 'l5'", "l5", "l2, l3 (the default) or l4"),
    ("p foo a=$arg0", "$arg numbers start at 1", "$arg0", ""),
    ("p foo a=%0-> b", "expected a member name", "", ""),
    ("p foo 1+2", "name this expression", "1+2", "v=1+2"),
])
def test_errors(line, msg, caret, hint):
    e = perr(line)
    assert msg in e.message
    if caret:
        assert under_caret(e) == caret
    if hint:
        assert any(hint in h for h in e.hints), e.hints
    out = e.render()
    assert out.startswith("<cmdline>:1:") and "^" in out


def test_caret_rendering_under_the_bad_member():
    e = perr("p _do_fork comm=%0->comm users=S%0->mm->")
    lines = e.render().splitlines()
    assert lines[1] == "  p _do_fork comm=%0->comm users=S%0->mm->"
    assert lines[2].index("^") == len(lines[1])  # just past the end


def test_parse_text_line_numbers():
    prog = parse_text("p a\np b x=%0->y\n", origin="f.txt")
    p = prog.probes[1]
    (f,) = fields(p)
    assert p.source[f.span.start:f.span.end] == "x=%0->y"
