"""kprobe_events' own fetch arguments as probe-line fields (issue 17, item 4a), strings for
``char *`` casts on ftrace (4b), renamed tracepoint fields (4c), the $comm fetch (4d).

The IR a fetch argument becomes is checked through the ftrace compiler (the exact
kprobe_events text) and by the round trip: every ``NAME=FETCHARG:TYPE`` that ``-S`` prints
for a line, written back as the line's fields, compiles to the same definition.
"""

from __future__ import annotations

import os
import sys

import pytest

from undertow.backends.ftrace.compile import compile_program, pointer_strings
from undertow.errors import ParseError
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.probeline import parse_line, parse_lines
from undertow.lang.resolve import resolve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TYPES, FakeKernel  # noqa: E402

COMM_ARG = "__comm=$comm:string"


def res(*lines: str) -> ir.Program:
    return resolve(parse_lines(list(lines)), FakeKernel(True), arch="x86_64", strict_kprobes=True, types=TYPES)


def definition(line: str) -> str:
    (spec,) = compile_program(res(line), get_arch("x86_64"), group="g")
    assert spec.definition is not None
    return spec.definition


def args(line: str) -> str:
    """The fetch arguments of ``line``'s definition, without the $comm fetch."""
    d = definition(line).split(" ", 2)[2]
    assert d.endswith(" " + COMM_ARG)
    return d[: -len(COMM_ARG) - 1]


@pytest.mark.parametrize("fields,fetch", [
    ("host=+0(%di):string", "host=+0x0(%di):string"),
    ("a=+8(+0(%si)):u32", "a=+0x8(+0x0(%si)):u32"),
    ("a=-8(%di):s16", "a=-0x8(%di):s16"),
    ("a=+0x10(%di)", "a=+0x10(%di):x64"),               # the kernel's default type
    ("a=+u8(%di):u32", "a=+0x8(%di):u32"),             # user memory: the BPF backend reads it so
    ("a=+u0(%di):string", "a=+0x0(%di):ustring"),
    ("a=%di:u8", "a=%di:u8"),
    ("a=%di:string", "a=+0x0(%di):string"),             # the string %di points to
    ("a=$arg2:x32", "a=%si:x32"),
    ("a=$stack2", "a=+0x10(%sp):x64"),
    ("a=+8($stack):s64", "a=+0x8(%sp):s64"),
    ("a=$stack:x64", "a=%sp:x64"),
    ("a=+0x10(%di):b4@2/32", "a=+0x10(%di):b4@2/32"),
    ("a=+0(%di):u8[4]", "a=+0x0(%di):u8[4]"),
    ("a=\\42", "a=\\42:s64"),
    ("a=$comm:string", "a=$comm:string"),
    ("a=+0(%0):symbol", "a=+0x0(%di):x64"),
    ("a=+0x858(%0)->mm_users", None),                   # a fetch has no type: refused below
])
def test_fetch_arguments_compile(fields, fetch):
    if fetch is None:
        with pytest.raises(Exception) as ei:
            args(f"p _do_fork {fields}")
        assert "no type here" in str(ei.value) or "->" in str(ei.value)
        return
    assert args(f"p _do_fork {fields}") == fetch


@pytest.mark.parametrize("line", [
    "p _do_fork comm=%0->comm",
    "p _do_fork comm=%0->comm uesrs=S%0->mm->mm_users",
    "p _do_fork comm=%0->comm node=%0->pids[1].node.next",
    "p _do_fork+21 r=%r12",
    "r _do_fork r=$retval",
    "p _do_fork t=(struct task_struct *)%dx->pid",
    "p _do_fork c=(char *)%1 x=X%0 s=S%2",
    "p _do_fork a=+0x10(%di):b4@2/32 b=$stack3 c=+0(%di):u16[2]",
])
def test_show_output_reads_back(line):
    """What -S prints for a line, written back as the line's fields, means the same."""
    first = definition(line)
    head = " ".join(line.split()[:2])
    again = definition(head + " " + first.split(" ", 2)[2])
    assert again == first


def test_char_pointer_casts_are_strings_on_ftrace():
    assert args("p _do_fork c=(char *)%1") == "c=+0x0(%si):string"
    assert args("r _do_fork c=(char *)$retval") == "c=+0x0($retval):string"
    assert args("p _do_fork c=X(char *)%1") == "c=%si:x64"  # X: the pointer itself


def test_fetch_type_errors_point_at_the_type():
    with pytest.raises(ParseError) as ei:
        parse_line("p _do_fork a=+0(%di):symstr")
    assert ei.value.source[ei.value.span.start:ei.value.span.end] == ":symstr"
    assert "not supported" in ei.value.message
    with pytest.raises(ParseError) as ei:
        parse_line("p _do_fork a=%di:b4@2/32")
    assert "reads memory" in ei.value.message
    with pytest.raises(ParseError) as ei:
        parse_line("p _do_fork a=+0(%di):b40@2/32")
    assert "bad bitfield" in ei.value.message
    with pytest.raises(ParseError) as ei:
        parse_line("p _do_fork a=+09(%di)")
    assert "octal" in ei.value.message


def test_ternary_is_not_a_type_suffix():
    p = parse_line("p _do_fork a=%0?%1:%2")
    assert isinstance(p.actions[0].fields[0].expr, ir.Ternary)


def test_dynamic_events_fetch_comm_once():
    assert definition("p _do_fork").endswith(" " + COMM_ARG)
    # a line pasted from -S holds the fetch already: not twice
    assert definition("p _do_fork " + COMM_ARG).count("$comm") == 1


def test_tracepoint_char_pointer_field_prefers_another_backend():
    prog = res("e syscalls/sys_enter_openat")
    why = pointer_strings(prog.probes[0])
    assert why is not None and "filename" in why.message and "address" in why.message
    assert pointer_strings(res("e syscalls/sys_enter_openat dfd flags").probes[0]) is None
    assert pointer_strings(res("e syscalls/sys_enter_openat f=X(filename)").probes[0]) is None


def test_renamed_tracepoint_fields_keep_their_source():
    (spec,) = compile_program(res("e sched/sched_switch prev_comm next=next_pid"), get_arch("x86_64"),
                              group="g")
    assert [(f.name, f.src) for f in spec.fields] == [("prev_comm", "prev_comm"), ("next", "next_pid")]


class _Fake:
    """A backend whose check() gives fixed refusals."""

    def __init__(self, name, refusals):
        self.name, self.refusals = name, refusals

    def check(self, program, kernel):
        return list(self.refusals)


def test_auto_takes_the_backend_that_shows_strings():
    from undertow.backends.base import NoBackendError, Refusal, choose_why

    weak = Refusal("sys_enter_openat records only the address", fallback=True)
    ftrace, bpf = _Fake("ftrace", [weak]), _Fake("bpf", [])
    b, why = choose_why([ftrace, bpf], ir.Program([]), None)
    assert b is bpf and why == "ftrace: sys_enter_openat records only the address"
    # BPF cannot run here: ftrace runs it, showing the address, and says so
    b, why = choose_why([ftrace, _Fake("bpf", [Refusal("bpf_ringbuf is not available")])], ir.Program([]), None)
    assert b is ftrace and why == ("ftrace: sys_enter_openat records only the address; "
                                   "bpf: bpf_ringbuf is not available")
    # --backend ftrace alone
    assert choose_why([ftrace], ir.Program([]), None)[0] is ftrace
    with pytest.raises(NoBackendError):
        choose_why([_Fake("ftrace", [weak, Refusal("cannot")]), _Fake("bpf", [Refusal("no")])],
                   ir.Program([]), None)


def test_shown_format_renames_fields_for_the_reader():
    from undertow.backends.ftrace.compile import OutField
    from undertow.backends.ftrace.session import shown_format

    fmt = FakeKernel(True).tracefs().event_format("sched", "sched_switch")
    assert shown_format(fmt, [OutField("prev_comm", "", None, "prev_comm")]) is fmt
    out = shown_format(fmt, [OutField("prev_comm", "", None, "prev_comm"), OutField("next", "", None, "next_pid"),
                             OutField("again", "", None, "next_pid")])
    assert [f.name for f in out.event_fields] == ["prev_comm", "next", "again"]
    assert out.id == fmt.id and out.field("next").offset == fmt.field("next_pid").offset
    rec = bytearray(fmt.fixed_size)
    rec[0:2] = fmt.id.to_bytes(2, "little")
    o = fmt.field("next_pid").offset
    rec[o:o + 4] = (4242).to_bytes(4, "little")
    d = out.decode(bytes(rec))
    assert d["next"] == 4242 and d["again"] == 4242 and "next_pid" not in d
