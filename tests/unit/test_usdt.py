"""USDT probes and uprobe specs in bpftrace programs (issue 16), on the committed ELF fixtures.

tests/fixtures/elf/prog-nopie has two markers: ``fixture:ready`` (``-4@%edi 8@%rsi``, with a
semaphore) and ``fixture:plain`` (no arguments). No kernel is needed: the resolver and the
code generator run against lang_fakes; the live tier runs them on real processes.
"""

import io
import os

import pytest

from undertow.backends.bpf.compiler import compile_program
from undertow.errors import ParseError, ResolveError, TypeCheckError
from undertow.kernel.arch import get_arch
from undertow.kernel.usdt import parse_usdt_args, split_subregister
from undertow.kernel.usdt_find import find_usdt, object_files, process_objects
from undertow.lang.bt import parse_program
from undertow.lang.resolve import resolve

from lang_fakes import TYPES, FakeKernel

HERE = os.path.dirname(os.path.abspath(__file__))
ELF = os.path.join(os.path.dirname(HERE), "fixtures", "elf")
NOPIE = os.path.join(ELF, "prog-nopie")


def attach(spec):
    return parse_program(spec + " { }").probes[0].attach[0]


def resolved(text, pid=None):
    p = parse_program(text)
    if pid:
        p.settings["pid"] = pid
    resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    return p


def compiled(text):
    return compile_program(resolved(text), arch=get_arch("x86_64"), self_pid=4321, output="ringbuf")


# ------------------------------------------------------------------ specs

@pytest.mark.parametrize("spec,obj,target", [
    ("usdt:./prog:tracetest:testprobe", "./prog", "tracetest:testprobe"),
    ("usdt:./prog:testprobe", "./prog", "testprobe"),          # any provider
    ("usdt::tracetest:testprobe", "", "tracetest:testprobe"),  # with -p: every mapped object
    ("usdt:::*probe2", "", ":*probe2"),
    ("usdt:*", "", "*"),                                        # with -p
    ('usdt:./prog:test:"\\"probe1\\""', "./prog", 'test:"probe1"'),  # quoted, escapes kept literally
])
def test_usdt_specs(spec, obj, target):
    ap = attach(spec)
    assert (ap.kind, ap.obj, ap.target) == ("usdt", obj, target)


@pytest.mark.parametrize("spec,target,offset", [
    ('uprobe:/bin/bash:"echo_builtin"+0', "echo_builtin", 0),
    ('uprobe:/bin/bash:"echo_builtin"+16', "echo_builtin", 16),
    ('uprobe:/bin/bash:"ns::f(int)"', "ns::f(int)", 0),       # a quoted C++ name keeps its ':'
    ("uprobe:/bin/bash:10", "", 10),                            # decimal address, as bpftrace reads it
    ("uprobe:/bin/bash:0x2ec00", "", 0x2EC00),
])
def test_uprobe_specs(spec, target, offset):
    ap = attach(spec)
    assert (ap.target, ap.offset) == (target, offset)


def test_unterminated_quote_is_a_parse_error():
    with pytest.raises(ParseError, match="unterminated quoted name"):
        parse_program('uprobe:/bin/bash:"echo_builtin { }')


# ------------------------------------------------------------------ finding markers

def test_find_usdt_in_a_file():
    found = find_usdt(NOPIE, "", "*")
    assert [(m.name.rsplit(":", 2)[1:], m.probe.file_offset) for m in found] == [
        (["fixture", "plain"], 0x115A), (["fixture", "ready"], 0x1159)]   # sorted by name, as bpftrace
    assert find_usdt(NOPIE, "fix*", "read?")[0].probe.semaphore_file_offset == 0x3028
    assert find_usdt(NOPIE, "other", "*") == []


def test_find_usdt_wildcard_paths_and_errors(tmp_path):
    assert {m.display for m in find_usdt(os.path.join(ELF, "prog-*pie"), "", "ready")} == {
        os.path.join(ELF, "prog-nopie"), os.path.join(ELF, "prog-pie")}
    (tmp_path / "not-elf").write_text("#!/bin/sh\n")
    assert find_usdt(str(tmp_path / "*"), "", "*") == []       # not ELF: no markers, no error
    with pytest.raises(Exception, match="no such file"):
        object_files("/nonexistent/dir/prog")


def test_process_objects_are_named_through_the_process_root():
    objs = process_objects(os.getpid())
    assert objs and all(o.startswith(f"/proc/{os.getpid()}/root/") for o in objs)
    assert len(objs) == len(set(objs))


# ------------------------------------------------------------------ resolving

def test_one_probe_per_location_named_as_bpftrace_names_it():
    p = resolved(f'usdt:{NOPIE}:* {{ printf("%s\\n", probe); }}')
    aps = [x.attach[0] for x in p.probes]
    assert [a.target for a in aps] == ["fixture:plain", "fixture:ready"]
    assert [x.name for x in p.probes] == [f"usdt:{NOPIE}:fixture:plain", f"usdt:{NOPIE}:fixture:ready"]
    ready = aps[1]
    assert ready.file_offset == 0x1159 and ready.usdt.semaphore_file_offset == 0x3028
    assert ready.path == NOPIE


def test_a_provider_left_out_must_match_one_marker(tmp_path):
    p = resolved(f"usdt:{NOPIE}:ready {{ }}")
    assert p.probes[0].attach[0].target == "fixture:ready"
    with pytest.raises(ResolveError, match="no USDT probe in .* matches nothing"):
        resolved(f"usdt:{NOPIE}:nothing {{ }}")


def test_usdt_needs_a_file_or_a_pid():
    with pytest.raises(ResolveError, match="must name a file, or a process with -p PID"):
        resolved("usdt::fixture:ready { }")
    with pytest.raises(ResolveError, match="usdt target file '/nonexistent/x' does not exist"):
        resolved("usdt:/nonexistent/x:fixture:ready { }")


def test_argument_past_the_last_one_is_an_error():
    with pytest.raises(TypeCheckError, match="has 2 arguments"):
        resolved(f'usdt:{NOPIE}:fixture:ready {{ printf("%d\\n", arg2); }}')
    with pytest.raises(TypeCheckError, match="has 0 arguments"):
        resolved(f'usdt:{NOPIE}:fixture:plain {{ printf("%d\\n", arg0); }}')


# ------------------------------------------------------------------ code

def test_register_arguments_are_read_from_pt_regs_and_widened():
    c = compiled(f'usdt:{NOPIE}:fixture:ready {{ printf("%d %d\\n", arg0, arg1); }}')
    t = c.probes[0].program.listing()
    assert "r0 = *(u64 *)(r6 +112)" in t or "r0 = *(u64 *)(r6 +0x70)" in t   # %edi: di
    assert "r0 = *(u64 *)(r6 +104)" in t or "r0 = *(u64 *)(r6 +0x68)" in t   # %rsi: si
    assert "r0 s>>= 0x20" in t                                                # -4@: sign-extended from 32 bits
    assert c.probes[0].prog_type == "KPROBE"


@pytest.mark.parametrize("reg,full,shift", [
    ("al", "ax", 0), ("%ah", "ax", 8), ("sil", "si", 0), ("r8w", "r8", 0), ("r15d", "r15", 0),
    ("eax", "eax", 0), ("x0", "x0", 0)])
def test_subregisters(reg, full, shift):
    assert split_subregister(reg) == (full, shift)


def test_memory_and_index_operands():
    a, = parse_usdt_args("-4@-88(%rsp,%rax,8)")
    assert (a.kind, a.reg, a.offset, a.index, a.scale, a.size, a.signed) == ("mem", "rsp", -88, "rax", 8, 4, True)


# ------------------------------------------------------------------ listing

def test_list_usdt_and_uprobes_as_bpftrace():
    from undertow.commands.list import list_pattern

    out = io.StringIO()
    assert list_pattern(None, f"usdt:{NOPIE}:*", False, out) == 2
    assert out.getvalue() == f"usdt:{NOPIE}:fixture:plain\nusdt:{NOPIE}:fixture:ready\n"
    out = io.StringIO()
    list_pattern(None, f"uprobe:{NOPIE}:fixture_*", False, out)
    assert out.getvalue() == f"uprobe:{NOPIE}:fixture_helper\nuprobe:{NOPIE}:fixture_work\n"
    out = io.StringIO()
    list_pattern(None, f"u*:{NOPIE}:*", False, out)  # a wildcard kind: uprobes and USDT
    lines = out.getvalue().splitlines()
    assert f"usdt:{NOPIE}:fixture:ready" in lines and f"uprobe:{NOPIE}:main" in lines


# ------------------------------------------------------------------ stack arguments

def test_sarg_reads_the_stack_past_the_return_address():
    c = compiled(f'uprobe:{NOPIE}:fixture_work {{ printf("%d\\n", sarg1); }}')
    t = c.probes[0].program.listing()
    assert "r0 = *(u64 *)(r6 +152)" in t or "r0 = *(u64 *)(r6 +0x98)" in t   # sp
    assert "r0 += 0x10" in t or "r0 += 16" in t                               # (1 + 1) * 8
    assert "call bpf_probe_read_user#112" in t


def test_sarg_only_at_kprobes_and_uprobes():
    with pytest.raises(TypeCheckError, match="can only be used with 'kprobes' and 'uprobes'"):
        resolved('tracepoint:syscalls:sys_enter_openat { printf("%d\\n", sarg0); }')


def test_symbol_operands_are_the_symbol_where_the_file_is_loaded():
    import copy

    from undertow.kernel.arch import X86_64
    from undertow.kernel.elf import ELFFile
    from undertow.lang.attach import AttachResolver

    p = resolved(f'usdt:{NOPIE}:fixture:ready {{ printf("%d\\n", arg1); }}')
    ap = p.probes[0].attach[0]
    probe = copy.copy(ap.usdt)
    probe.arguments = (probe.arguments[0], parse_usdt_args("-8@fixture_counter+8(%rip)")[0])
    with_sym = AttachResolver(FakeKernel(), X86_64, False, TYPES)._usdt_symbols(NOPIE, probe)
    counter = ELFFile(NOPIE).find_symbol("fixture_counter").value
    assert with_sym.arguments[1].value == counter and with_sym.arguments[1].offset == 8
    ap.usdt = with_sym
    c = compile_program(p, arch=get_arch("x86_64"), self_pid=4321, output="ringbuf")
    t = c.probes[0].program.listing()
    assert "r0 = *(u64 *)(r6 +128)" in t or "r0 = *(u64 *)(r6 +0x80)" in t   # ip: the probe's address now
    assert f"w1 = {hex(counter - probe.pc)}" in t and "call bpf_probe_read_user#112" in t  # - note pc + symbol
