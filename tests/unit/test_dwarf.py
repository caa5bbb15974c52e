"""The DWARF reader (kernel/dwarf.py) and uprobe arguments by name (lang/dwarftypes.py), issue 16.

Fixtures: tests/fixtures/elf/prog-dwarf5 and prog-dwarf4, dwarf.c built with ``gcc -O0 -g``
(make_fixtures.py). The expected types are dwarf.c's declarations; bpftrace 0.17 -lv prints
parameters as ``int* n``, ``struct fx_rec* rec``.
"""

import io
import os

import pytest

from undertow.backends.bpf.compiler import compile_program
from undertow.errors import ELFError, ResolveError
from undertow.kernel.arch import get_arch
from undertow.kernel.dwarf import DwarfInfo
from undertow.lang.bt import parse_program
from undertow.lang.dwarftypes import dwarf_types, function_sig, param_lines
from undertow.lang.resolve import resolve
from undertow.lang.typeinfo import UAPI_HEADERS, DeclTypes, LayeredTypes, TypeInfo
from undertow.lang.types import ArrayTy, EnumTy, IntTy, PtrTy, RecordTy

from lang_fakes import FakeKernel

HERE = os.path.dirname(os.path.abspath(__file__))
ELF = os.path.join(os.path.dirname(HERE), "fixtures", "elf")
DW5, DW4 = os.path.join(ELF, "prog-dwarf5"), os.path.join(ELF, "prog-dwarf4")


@pytest.mark.parametrize("path", [DW5, DW4])
def test_parameters_and_their_types(path):
    d = DwarfInfo.load(path)
    assert [(n, d.type_text(t)) for n, t in d.function("fx_take")] == [
        ("n", "int*"), ("c", "char"), ("rec", "struct fx_rec*"), ("names", "const char**"),
        ("u", "union fx_any"), ("col", "enum fx_color")]
    assert [(n, d.type_text(t)) for n, t in d.function("main")] == [("argc", "int"), ("argv", "char**")]
    assert d.function("nope") is None


@pytest.mark.parametrize("path", [DW5, DW4])
def test_struct_layouts_and_bitfields(path):
    d = DwarfInfo.load(path)
    rec = d.types["struct fx_rec"]
    assert d.byte_size(rec) == 72
    assert [(n, o, d.type_text(t)) for n, o, t, _b, _s in d.members(rec)] == [
        ("a", 0, "int"), ("name", 4, "char[10]"), ("grid", 16, "int[2][3]"), ("inner", 40, "struct fx_inner"),
        ("label", 48, "const char*"), ("next", 56, "struct fx_rec*"), ("tag", 64, "fx_u32")]
    inner = d.types["struct fx_inner"]
    # DWARF 5 writes DW_AT_data_bit_offset, DWARF 4 (gcc) the older DW_AT_bit_offset: same layout
    assert [(n, o, b, s) for n, o, _t, b, s in d.members(inner)] == [
        ("s", 0, None, None), ("bits", 2, 0, 3), ("more", 2, 3, 5)]


def test_no_debug_info_and_hostile_data(tmp_path):
    assert DwarfInfo.load(os.path.join(ELF, "prog-nopie")) is None
    data = open(DW5, "rb").read()
    d = DwarfInfo.load(DW5)
    assert d is not None
    # a unit whose length runs past the section, abbreviations that do not exist
    with pytest.raises(ELFError):
        DwarfInfo({".debug_info": b"\xff\x00\x00\x00\x05\x00\x01\x08\x00\x00\x00\x00", ".debug_abbrev": b"\0"})
    with pytest.raises(ELFError):
        DwarfInfo({".debug_info": b"\x0c\x00\x00\x00\x05\x00\x01\x08\x00\x00\x00\x00\x07\x00\x00\x00",
                   ".debug_abbrev": b"\0"})
    assert len(data) > 0


def test_ir_types_from_dwarf():
    sig = function_sig(DW5, "fx_take")
    types = dict(sig.params)
    assert types["n"] == PtrTy(IntTy(4, True, "int"), "user")
    assert isinstance(types["c"], IntTy) and types["c"].is_char and types["c"].size == 1
    rec = types["rec"].target
    assert isinstance(rec, RecordTy) and (rec.name, rec.size) == ("fx_rec", 72)
    assert isinstance(types["col"], EnumTy)
    t = dwarf_types(DW5, LayeredTypes(TypeInfo(), DeclTypes(UAPI_HEADERS)))
    m = t.member(rec, "grid")
    assert m.offset == 16 and m.type == ArrayTy(ArrayTy(IntTy(4, True, "int"), 3), 2)
    assert t.member(t.parse_type("struct fx_inner"), "more").bit_offset == 3
    assert t.parse_type("fx_u32").size == 4


def test_list_parameters_as_bpftrace():
    assert param_lines(DW5, "fx_take")[:3] == ["int* n", "char c", "struct fx_rec* rec"]
    from undertow.commands.list import list_pattern

    out = io.StringIO()
    list_pattern(None, f"uprobe:{DW5}:main", True, out)
    assert out.getvalue() == f"uprobe:{DW5}:main\n    int argc\n    char** argv\n"


def _compile(text):
    p = parse_program(text)
    resolve(p, FakeKernel(), strict_kprobes=False, arch="x86_64")  # the kernel's types (none here)
    return p, compile_program(p, arch=get_arch("x86_64"), self_pid=4321, output="ringbuf")


def test_args_by_name_read_the_argument_registers():
    p, c = _compile(f'uprobe:{DW5}:fx_take {{ printf("%c %d %d\\n", args->c, *(args->n), args->rec->a); }}')
    t = c.probes[0].program.listing()
    assert "r0 = *(u64 *)(r6 +104)" in t or "r0 = *(u64 *)(r6 +0x68)" in t   # c: the second register (si)
    assert "call bpf_probe_read_user#112" in t                                # *n, rec->a: user memory


def test_script_structs_win_over_dwarf():
    p, _c = _compile(f'struct fx_rec {{ int b; }} uprobe:{DW5}:fx_take {{ printf("%d\\n", ((struct fx_rec *)arg2)->b); }}')
    p2, _c2 = _compile(f'uprobe:{DW5}:fx_take {{ printf("%d\\n", ((struct fx_rec *)arg2)->tag); }}')
    with pytest.raises(ResolveError):
        _compile(f'uprobe:{DW5}:fx_take {{ printf("%d\\n", args->nope); }}')
