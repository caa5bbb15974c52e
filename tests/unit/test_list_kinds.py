"""``undertow list`` lists what this kernel can attach (issue 17, item 5): without kprobes
a bare pattern leaves the kernel functions out and says why on stderr; an explicit
``kprobe:`` pattern still lists them, marked on stderr as not attachable here."""

from __future__ import annotations

import io
import os
import shutil
import sys

from undertow.commands import list as list_cmd
from undertow.kernel.tracefs import Tracefs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TRACEFS, FakeKernel  # noqa: E402

NO_KPROBES = ("the kernel has no kprobe support (CONFIG_KPROBES=n: no kprobe_events, no kprobe PMU)")


def kernel(tmp_path, kprobes: bool) -> FakeKernel:
    k = FakeKernel(kprobes)
    tfs = tmp_path / "tracefs"
    shutil.copytree(TRACEFS, tfs)
    (tfs / "available_filter_functions").write_text("tcp_connect\nkernel_clone\ndo_exit\n")
    k._t = Tracefs(str(tfs))
    return k


def test_bare_pattern_without_kprobes_lists_tracepoints_only(tmp_path, capsys):
    out = io.StringIO()
    n = list_cmd.list_pattern(kernel(tmp_path, False), "*", False, out, attachable=True)
    lines = out.getvalue().splitlines()
    assert n == len(lines) and lines and all(line.startswith("tracepoint:") for line in lines)
    assert capsys.readouterr().err == (
        f"undertow list: kernel functions (kprobe:) left out, this kernel cannot attach them: {NO_KPROBES}; "
        "'undertow list kprobe:PATTERN' lists them anyway\n")


def test_bare_pattern_with_kprobes_lists_functions_too(tmp_path, capsys):
    out = io.StringIO()
    list_cmd.list_pattern(kernel(tmp_path, True), "*", False, out, attachable=True)
    assert "kprobe:tcp_connect" in out.getvalue().splitlines()
    assert capsys.readouterr().err == ""


def test_explicit_kprobes_are_listed_and_marked(tmp_path, capsys):
    out = io.StringIO()
    assert list_cmd.list_pattern(kernel(tmp_path, False), "kprobe:*", False, out, attachable=True) == 3
    assert out.getvalue() == "kprobe:do_exit\nkprobe:kernel_clone\nkprobe:tcp_connect\n"  # the format is kept
    assert capsys.readouterr().err == (
        f"undertow list: these kprobe: points cannot be attached on this kernel: {NO_KPROBES}\n")


def test_run_l_lists_as_bpftrace(tmp_path, capsys):
    # `undertow run -l` (bpftrace -l): kernel functions whatever the kernel can attach, no notes
    out = io.StringIO()
    list_cmd.list_pattern(kernel(tmp_path, False), "*", False, out)
    assert "kprobe:tcp_connect" in out.getvalue().splitlines()
    assert capsys.readouterr().err == ""


def test_kfunc_spelling_is_kept_in_the_listing(tmp_path):
    # bpftrace 0.17 lists BTF function probes as kfunc:/kretfunc: (its suite's EXPECT kretfunc);
    # fentry:/fexit: keep theirs
    for spelled in ("kfunc", "kretfunc", "fentry", "fexit"):
        out = io.StringIO()
        list_cmd.list_pattern(kernel(tmp_path / spelled, True), f"{spelled}:kernel_*", False, out)
        assert out.getvalue() == f"{spelled}:kernel_clone\n"
