"""Probe lines against the kernel's function names and quiet dead ends (issue 17, items 3
and 5): a function that is not in kallsyms, a compiler-made copy, offsets, registers in
hex, tracepoints a sysctl keeps silent, and how ``undertow trace`` says what it chose."""

from __future__ import annotations

import errno
import os
import shutil
import sys

import pytest

from undertow.backends.ftrace.compile import EventSpec, compile_program
from undertow.backends.ftrace.session import explain_definition_error
from undertow.commands.trace import diagnostic_lines
from undertow.errors import ResolveError, TracefsError, TypeCheckError
from undertow.kernel.arch import current_arch, get_arch
from undertow.kernel.kallsyms import Kallsyms
from undertow.kernel.roots import Roots
from undertow.kernel.tracefs import Tracefs
from undertow.lang.probeline import parse_lines
from undertow.lang.resolve import resolve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TRACEFS, TYPES, FakeKernel  # noqa: E402

# a 6.x kernel: no _do_fork, __netif_receive_skb_core only as a copy
KALLSYMS_6X = "\n".join([
    "ffffffff81000000 T _stext",
    "ffffffff81001000 T kernel_clone",
    "ffffffff81001400 t __netif_receive_skb_core.constprop.0",
    "ffffffff81001c00 T tcp_connect",
    "ffffffff81002000 T do_exit",
    "ffffffff82a05000 D jiffies",
]) + "\n"

X86_ONLY = pytest.mark.skipif(current_arch().name != "x86_64", reason="the kallsyms check runs for this machine's arch")


class Kernel6x(FakeKernel):
    def kallsyms(self):  # noqa: ANN201
        return Kallsyms(text=KALLSYMS_6X)


def res(*lines: str, arch: str = "x86_64", kernel=None):
    return resolve(parse_lines(list(lines)), kernel or Kernel6x(), arch=arch, strict_kprobes=True, types=TYPES)


def fail(cls, *lines: str, **kw):
    with pytest.raises(cls) as ei:
        res(*lines, **kw)
    e = ei.value
    return e, e.source[e.span.start:e.span.end]


@X86_ONLY
def test_a_renamed_function_is_named_before_anything_is_written():
    e, text = fail(ResolveError, "p _do_fork comm=%0->comm")
    assert e.message == "no function _do_fork in this kernel"
    assert text == "_do_fork"
    assert e.hints[0] == "_do_fork became kernel_clone (Linux 5.10)"
    assert e.render().splitlines()[:3] == ["<cmdline>:1:3: error: no function _do_fork in this kernel",
                                           "  p _do_fork comm=%0->comm", "    ^~~~~~~~"]


@X86_ONLY
def test_a_compiler_made_copy_is_probed_with_a_note():
    prog = res("p __netif_receive_skb_core x=%di")
    ap = prog.probes[0].attach[0]
    assert ap.target == "__netif_receive_skb_core.constprop.0"
    [note] = prog.warnings
    assert note.severity == "note"
    assert note.message.startswith("__netif_receive_skb_core is __netif_receive_skb_core.constprop.0 in this kernel")
    spec = compile_program(prog, get_arch("x86_64"), group="g")[0]
    assert spec.definition == "p:g/e0 __netif_receive_skb_core.constprop.0 x=%di:x64 __comm=$comm:string"
    # one line on stderr; with -v its place too
    assert diagnostic_lines(prog.warnings, False) == ["undertow trace: note: " + note.message]
    assert diagnostic_lines(prog.warnings, True)[0].startswith(
        "undertow trace: <cmdline>:1:3: note: __netif_receive_skb_core is")


@X86_ONLY
def test_a_copy_gets_no_btf_prototype():
    # BTF's prototype of __netif_receive_skb_core (struct sk_buff **pskb) is not used for the copy
    e, text = fail(TypeCheckError, "p __netif_receive_skb_core x=%0->len")
    assert text == "%0"
    assert e.hints[-1] == ("__netif_receive_skb_core.constprop.0 is a copy of __netif_receive_skb_core the compiler "
                           "made; BTF's prototype of __netif_receive_skb_core may not fit it, so its arguments have "
                           "no type")
    prog = res("p __netif_receive_skb_core n=((struct sk_buff *)%0)->len")
    assert compile_program(prog, get_arch("x86_64"), group="g")[0].definition == \
        "p:g/e0 __netif_receive_skb_core.constprop.0 n=+0x70(%di):u32 __comm=$comm:string"


@X86_ONLY
def test_an_offset_past_the_end_of_the_function():
    e, text = fail(ResolveError, "p kernel_clone+0x400")
    assert e.message == ("+0x400 is past the end of kernel_clone (0x400 bytes): the probe would land in another "
                         "function")
    assert text == "+0x400"
    assert e.hints == ["offsets inside kernel_clone run from 0 to 0x3ff"]
    assert res("p kernel_clone+0x3ff").probes[0].attach[0].offset == 0x3ff


def test_a_return_probe_has_no_offset():
    e, text = fail(ResolveError, "r kernel_clone+4")
    assert e.message == "a return probe attaches at the function's entry: +0x4 is refused by the kernel"
    assert text == "+4"


def test_aarch64_offsets_are_multiples_of_4_and_kallsyms_is_not_the_targets():
    e, text = fail(ResolveError, "p kernel_clone+6", arch="aarch64")
    assert e.message == "+0x6 is not an instruction boundary: aarch64 instructions are 4 bytes"
    assert e.hints == ["use a multiple of 4, e.g. +0x4"]
    if current_arch().name != "aarch64":
        # this machine's kallsyms says nothing about an aarch64 kernel
        assert res("p _do_fork+8", arch="aarch64").probes[0].attach[0].target == "_do_fork"


def test_a_foreign_kernel_is_not_checked_against_this_kallsyms():
    k = Kernel6x()
    k.foreign = True  # trace --btf: the lines are for another kernel
    assert res("p _do_fork", kernel=k).probes[0].attach[0].target == "_do_fork"


@X86_ONLY
def test_registers_and_untyped_values_show_in_hex():
    prog = res("p kernel_clone+21 r=%r12 s=S%r12", "p _do_fork+4 f=clone_flags a=%0",
               kernel=FakeKernel())
    # (the COMM at the event is fetched too: __comm, backends/ftrace/compile.py)
    defs = [s.definition.replace(" __comm=$comm:string", "") for s in compile_program(prog, get_arch("x86_64"), group="g")]
    assert defs == ["p:g/e0 kernel_clone+21 r=%r12:x64 s=%r12:s64",
                    # a typed argument keeps its type: u64 clone_flags in decimal, the task pointer in hex
                    "p:g/e1 _do_fork+4 f=%dx:u64 a=%di:x64"]
    assert [f.fmt for f in prog.probes[0].actions[0].fields] == ["x", "s"]


def test_ftrace_explains_an_offset_inside_an_instruction():
    spec = EventSpec("g", "e0", "kprobe", "p", "p:g/e0 kernel_clone+3", "kprobe_events")
    err = TracefsError("writing 'p:g/e0 kernel_clone+3' to kprobe_events failed: Invalid or incomplete multibyte "
                       "or wide character", kernel_log="trace_kprobe: error: Failed to register probe event")
    err.errno = errno.EILSEQ
    new = explain_definition_error(spec, err)
    assert new.message == ("the kernel refused a kprobe at kernel_clone+3: +3 is not the start of an instruction of "
                           "kernel_clone (EILSEQ; the kernel decodes kernel_clone from its entry and a probe must "
                           "sit on an instruction boundary)")
    assert new.hints[-1].startswith("the kernel said: writing 'p:g/e0 kernel_clone+3'")
    assert new.kernel_log == err.kernel_log
    other = TracefsError("x")
    other.errno = errno.EINVAL
    assert explain_definition_error(spec, other) is other


# ----------------------------------------------------------------- tracepoints a sysctl keeps silent

SCHED_STAT_WAIT = """name: sched_stat_wait
ID: 300
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:u64 delay;\toffset:32;\tsize:8;\tsigned:0;

print fmt: "comm=%s pid=%d delay=%Lu [ns]", REC->comm, REC->pid, (unsigned long long)REC->delay
"""


class SchedstatsKernel(FakeKernel):
    def __init__(self, tmp, value):
        super().__init__()
        tfs = tmp / "tracefs"
        shutil.copytree(TRACEFS, tfs)
        ev = tfs / "events" / "sched" / "sched_stat_wait"
        ev.mkdir()
        (ev / "format").write_text(SCHED_STAT_WAIT)
        (ev / "id").write_text("300\n")
        self._t = Tracefs(str(tfs))
        proc = tmp / "proc"
        (proc / "sys" / "kernel").mkdir(parents=True)
        if value is not None:
            (proc / "sys" / "kernel" / "sched_schedstats").write_text(value + "\n")
        self.roots = Roots(proc=str(proc), sys=str(tmp / "sys"), live=False)


def test_sched_stat_wait_while_schedstats_are_off(tmp_path):
    prog = res("e sched/sched_stat_wait f:delay>1000000", "e sched/sched_stat_wait",
               kernel=SchedstatsKernel(tmp_path, "0"))
    [w] = prog.warnings  # once, whatever the number of lines
    assert w.message == ("sched/sched_stat_wait fires only while scheduler statistics are collected, and "
                         "kernel.sched_schedstats is 0 here: expect no events (sysctl -w kernel.sched_schedstats=1 "
                         "turns them on; undertow leaves it as it is)")
    assert diagnostic_lines(prog.warnings, False)[0].startswith(
        "undertow trace: <cmdline>:1:3: warning: sched/sched_stat_wait fires only while")


@pytest.mark.parametrize("value", ["1", None])
def test_sched_stat_wait_with_schedstats_on_or_unknown(tmp_path, value):
    assert res("e sched/sched_stat_wait", kernel=SchedstatsKernel(tmp_path, value)).warnings == []
