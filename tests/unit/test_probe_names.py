"""The ``probe`` of a probe line's events is the same on the ftrace and BPF backends (issue 21):
``uprobe:libc:getpid``, ``kretprobe:do_sys_openat2+0x4``..., the tracepoint's own name for
tracepoints; a named probe keeps its name. (tests/live/test_backends_agree_live.py compares
the events themselves.)"""

import pytest

from undertow.backends.bpf.compiler import compile_program as bpf_compile
from undertow.backends.ftrace.compile import compile_program as ftrace_compile
from undertow.kernel.arch import get_arch
from undertow.lang import ir

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def _names(ap, name=""):
    prog = ir.Program([ir.Probe([ap], None, [ir.Emit([])], name=name)])
    arch = get_arch("x86_64")
    ftrace = [s.probe_name for s in ftrace_compile(prog, arch)]
    bpf = [a.probe for a in bpf_compile(prog, arch=arch, self_pid=4321, pid=None, output="ringbuf").actions
           if a.kind == "emit"]
    return ftrace, bpf


@pytest.mark.parametrize("ap, want", [
    (ir.AttachPoint("uprobe", "getpid", path=LIBC, obj="libc", file_offset=0xE4A30), "uprobe:libc:getpid"),
    (ir.AttachPoint("uretprobe", "open", path=LIBC, obj="libc", file_offset=0x1000), "uretprobe:libc:open"),
    (ir.AttachPoint("kprobe", "do_sys_openat2"), "kprobe:do_sys_openat2"),
    (ir.AttachPoint("kretprobe", "tcp_connect", offset=4), "kretprobe:tcp_connect+0x4"),
])
def test_dynamic_probe_lines_are_named_alike(ap, want):
    assert _names(ap) == ([want], [want])


def test_a_named_probe_keeps_its_name():
    ap = ir.AttachPoint("uprobe", "getpid", path=LIBC, obj="libc", file_offset=0xE4A30)
    assert _names(ap, "mine") == (["mine"], ["mine"])
