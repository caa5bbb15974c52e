"""undertow.kernel.elf on the committed fixtures (tests/fixtures/elf/make_fixtures.py).

Expected numbers were read once with ``readelf -hlsSnW`` on the committed files
and are hard-coded here (readelf is not run at test time).
"""

import os
import shutil
import struct

import pytest

from undertow.errors import ELFError, SymbolNotFoundError, UndertowError
from undertow.kernel.arch import AARCH64, X86_64
from undertow.kernel.elf import (
    ELFFile, USDTArg, find_library, parse_ld_so_cache, parse_usdt_args, resolve_object,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ELFDIR = os.path.join(os.path.dirname(HERE), "fixtures", "elf")


def fx(name):
    return os.path.join(ELFDIR, name)


# readelf -sW: symbol value and size; readelf -lW: the r-x PT_LOAD
NOPIE = {"fixture_work": (0x40114B, 28), "main": (0x401167, 52), "fixture_helper": (0x401136, 21)}
PIE = {"fixture_work": (0x115E, 28), "main": (0x117A, 52), "fixture_helper": (0x1149, 21)}
LIB = {"fixture_lib_add": (0x1119, 18), "fixture_lib_len": (0x112B, 31)}


def test_headers():
    with ELFFile(fx("prog-nopie")) as e:
        assert (e.bits, e.endian, e.machine, e.arch, e.elf_type) == (64, "little", 62, "x86_64", "EXEC")
        assert not e.is_pie and e.needed == ["libc.so.6"] and e.soname is None
        assert e.interpreter == "/lib64/ld-linux-x86-64.so.2"
        assert e.build_id == "a339471bd7bde8964a542052c57927c0c5e696c1"
        assert [(s.offset, s.vaddr, s.filesz, s.perms()) for s in e.loads] == [
            (0x0, 0x400000, 0x528, "r--"), (0x1000, 0x401000, 0x1A5, "r-x"),
            (0x2000, 0x402000, 0xC8, "r--"), (0x2DF8, 0x403DF8, 0x232, "rw-")]
        assert e.section(".stapsdt.base").addr == 0x402020
    with ELFFile(fx("prog-pie")) as e:
        assert e.elf_type == "DYN" and e.is_pie and not e.is_shared_library
        assert e.build_id == "7957f42167de53b974b28e85f1d870d687ad756c"
    with ELFFile(fx("libfixture.so")) as e:
        assert e.elf_type == "DYN" and not e.is_pie and e.is_shared_library
        assert e.soname == "libfixture.so.1" and e.needed == ["libc.so.6"]
        assert e.build_id == "a28fe4088cc9eef12fff8251b6f308cd9f93605b"


@pytest.mark.parametrize("path,table,seg_delta", [
    ("prog-nopie", NOPIE, 0x400000), ("prog-pie", PIE, 0), ("libfixture.so", LIB, 0)])
def test_symbol_file_offsets(path, table, seg_delta):
    e = ELFFile(fx(path))
    for name, (value, size) in table.items():
        sym = e.find_symbol(name)
        assert (sym.value, sym.size, sym.type, sym.defined) == (value, size, "FUNC", True)
        assert e.symbol_file_offset(name) == value - seg_delta
        assert e.symbol_file_offset(name, 4) == value - seg_delta + 4
        with pytest.raises(ELFError, match=r"Offset outside the function bounds \('%s' size is %d\)" % (name, size)):
            e.symbol_file_offset(name, size)


def test_symbol_details_and_versions():
    e = ELFFile(fx("prog-nopie"))
    helper = e.find_symbol("fixture_helper")
    assert helper.bind == "LOCAL" and helper.table == ".symtab" and helper.shndx == 14
    getpid = [s for s in e.symbols() if s.name == "getpid" and s.table == ".dynsym"][0]
    assert not getpid.defined and getpid.shndx == 0
    assert getpid.version == "GLIBC_2.2.5" and getpid.library == "libc.so.6"
    assert e.find_symbol("getpid@GLIBC_2.2.5").version == "GLIBC_2.2.5"
    assert e.find_symbol("fixture_counter").type == "OBJECT"
    names = {s.name for s in e.function_symbols()}
    assert {"main", "fixture_work", "fixture_helper", "_start"} <= names and "getpid" not in names


def test_undefined_symbol_names_its_library():
    e = ELFFile(fx("prog-pie"))
    with pytest.raises(ELFError) as ei:
        e.symbol_file_offset("getpid")
    assert "undefined" in ei.value.message
    assert any("libc.so.6:getpid" in h for h in ei.value.hints)
    lib = ELFFile(fx("libfixture.so"))
    with pytest.raises(ELFError) as ei:
        lib.symbol_file_offset("strlen")
    assert any("libc.so.6:strlen" in h for h in ei.value.hints)


@pytest.mark.parametrize("name", ["fixture_counter", "fixture_rodata", "fixture_ready_semaphore"])
def test_data_symbols_refused(name):
    for path in ("prog-nopie", "prog-pie"):
        with pytest.raises(ELFError, match="non-executable"):
            ELFFile(fx(path)).symbol_file_offset(name)


def test_unknown_symbol_did_you_mean():
    with pytest.raises(SymbolNotFoundError) as ei:
        ELFFile(fx("prog-pie")).find_symbol("fixture_wrok")
    assert any("fixture_work" in h for h in ei.value.hints)
    # the stripped PIE keeps only .dynsym: static and non-exported functions are gone
    with pytest.raises(SymbolNotFoundError) as ei:
        ELFFile(fx("prog-pie-stripped")).find_symbol("fixture_work")
    assert any("stripped" in h for h in ei.value.hints)


def test_vaddr_to_file_offset():
    e = ELFFile(fx("prog-nopie"))
    assert e.vaddr_to_file_offset(0x404028) == 0x3028  # .probes in the RW segment
    assert e.vaddr_to_file_offset(0x402020) == 0x2020
    with pytest.raises(ELFError, match="bss"):
        e.vaddr_to_file_offset(0x403DF8 + 0x234)  # filesz 0x232 < memsz 0x238
    with pytest.raises(ELFError, match="no loadable segment"):
        e.vaddr_to_file_offset(0x10)
    assert ELFFile(fx("prog-pie")).vaddr_to_file_offset(0x4028) == 0x3028


def _probes(path):
    return [(p.provider, p.name, p.pc, p.file_offset, p.semaphore, p.semaphore_file_offset, p.args)
            for p in ELFFile(fx(path)).usdt_probes()]


def test_usdt_probes():
    # readelf -n: Location / Semaphore; file offsets through the PT_LOADs above
    assert _probes("prog-nopie") == [
        ("fixture", "ready", 0x401159, 0x1159, 0x404028, 0x3028, "-4@%edi 8@%rsi"),
        ("fixture", "plain", 0x40115A, 0x115A, 0, None, ""),
    ]
    assert _probes("prog-pie") == [
        ("fixture", "ready", 0x116C, 0x116C, 0x4028, 0x3028, "-4@%edi 8@%rsi"),
        ("fixture", "plain", 0x116D, 0x116D, 0, None, ""),
    ]
    assert _probes("libfixture.so") == [("fixturelib", "add", 0x1126, 0x1126, 0, None, "-4@%edi 8@%rax")]
    p = ELFFile(fx("prog-pie")).usdt_probes()[0]
    assert p.full_name == "fixture:ready"
    assert p.arguments == (USDTArg("-4@%edi", 4, True, "reg", reg="edi"), USDTArg("8@%rsi", 8, False, "reg", reg="rsi"))
    assert ELFFile(fx("tiny-aarch64")).usdt_probes() == []


def test_usdt_base_adjustment():
    """A note whose base differs from .stapsdt.base's address (prelink moved the
    code) has its pc and semaphore shifted by the difference (SDT spec)."""
    data = bytearray(open(fx("prog-pie"), "rb").read())
    old = struct.pack("<QQQ", 0x116C, 0x2020, 0x4028)
    at = data.find(old)
    assert at > 0
    data[at:at + 24] = struct.pack("<QQQ", 0x116C - 0x100, 0x2020 - 0x100, 0x4028 - 0x100)
    p = ELFFile.from_bytes(data, "moved").usdt_probes()[0]
    assert (p.pc, p.file_offset, p.semaphore, p.semaphore_file_offset, p.base) == (0x116C, 0x116C, 0x4028, 0x3028, 0x1F20)


@pytest.mark.parametrize("text,expected", [
    ("-4@%edi", [USDTArg("-4@%edi", 4, True, "reg", reg="edi")]),
    ("8@-8(%rbp) 4@$5", [USDTArg("8@-8(%rbp)", 8, False, "mem", reg="rbp", offset=-8),
                         USDTArg("4@$5", 4, False, "const", value=5)]),
    ("2@8(%rax,%rbx,4)", [USDTArg("2@8(%rax,%rbx,4)", 2, False, "mem", reg="rax", offset=8, index="rbx", scale=4)]),
    ("8@sym+16(%rip)", [USDTArg("8@sym+16(%rip)", 8, False, "mem", reg="rip", offset=16, symbol="sym")]),
    ("-4@x0 8@[sp, 16] 4@[x1]", [USDTArg("-4@x0", 4, True, "reg", reg="x0"),
                                 USDTArg("8@[sp, 16]", 8, False, "mem", reg="sp", offset=16),
                                 USDTArg("4@[x1]", 4, False, "mem", reg="x1")]),
    ("x@%eax 4@!!", [USDTArg("x@%eax", 8, False, "unknown"), USDTArg("4@!!", 4, False, "unknown")]),
])
def test_usdt_arg_parsing(text, expected):
    assert parse_usdt_args(text) == expected


def test_hand_made_aarch64_and_big_endian():
    a = ELFFile(fx("tiny-aarch64"))
    assert (a.bits, a.endian, a.machine, a.arch, a.elf_type) == (64, "little", 183, "aarch64", "EXEC")
    assert a.symbol_file_offset("main") == 0x80 and a.symbol_file_offset("table") == 0x88
    p = ELFFile(fx("tiny-ppc32be"))
    assert (p.bits, p.endian, p.machine, p.arch, p.machine_name) == (32, "big", 20, None, "ppc")
    assert [(s.name, s.value, s.size, s.type, s.bind) for s in p.symbols()] == [
        ("main", 0x400080, 8, "FUNC", "GLOBAL"), ("table", 0x400088, 8, "OBJECT", "GLOBAL")]
    assert p.symbol_file_offset("main", 2) == 0x82
    assert p.needed == [] and p.build_id is None and p.usdt_probes() == []


def test_wrong_architecture_refused():
    with pytest.raises(ELFError) as ei:
        resolve_object(fx("tiny-aarch64"), X86_64)
    assert "aarch64" in ei.value.message and "x86_64" in ei.value.message
    assert resolve_object(fx("tiny-aarch64"), AARCH64) == fx("tiny-aarch64")
    with pytest.raises(ELFError, match="x86_64"):
        resolve_object(fx("prog-nopie"), AARCH64)
    assert resolve_object(fx("prog-nopie"), X86_64) == fx("prog-nopie")


def test_resolve_object_errors(tmp_path):
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ELFError) as ei:
        resolve_object(str(script), X86_64)
    assert "not an ELF" in ei.value.message and any("/bin/sh" in h for h in ei.value.hints)
    with pytest.raises(ELFError, match="no such file"):
        resolve_object(str(tmp_path / "missing"), X86_64)
    with pytest.raises(ELFError, match="directory"):
        ELFFile(str(tmp_path))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ELFError, match="empty"):
        ELFFile(str(tmp_path / "empty"))


def _new_cache(entries):
    """An ld.so.cache in the glibc-ld.so.cache1.1 format: [(key, path, flags)]."""
    header = 48
    strings = b""
    offs = []
    base = header + 24 * len(entries)
    for key, path, _ in entries:
        k = base + len(strings); strings += key.encode() + b"\0"
        v = base + len(strings); strings += path.encode() + b"\0"
        offs.append((k, v))
    out = b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI12x", len(entries), len(strings), 2, 0)
    assert len(out) == header
    for (key, path, flags), (k, v) in zip(entries, offs):
        out += struct.pack("<iIIIQ", flags, k, v, 0, 0)
    return out + strings


def _old_cache(entries):
    """The old ld.so-1.7.0 format (strings relative to the end of the entries)."""
    strings = b""
    ents = b""
    for key, path, flags in entries:
        k = len(strings); strings += key.encode() + b"\0"
        v = len(strings); strings += path.encode() + b"\0"
        ents += struct.pack("<iII", flags, k, v)
    return b"ld.so-1.7.0\0" + struct.pack("<I", len(entries)) + ents + strings


@pytest.fixture
def libtree(tmp_path):
    """Library files: an x86_64 and an aarch64 libdemo, an x86_64 libfixture in two versions."""
    d = tmp_path / "lib"
    (d / "x86").mkdir(parents=True)
    (d / "arm").mkdir()
    shutil.copy(fx("libfixture.so"), d / "x86" / "libdemo.so.2")
    shutil.copy(fx("tiny-aarch64"), d / "arm" / "libdemo.so.2")
    shutil.copy(fx("libfixture.so"), d / "x86" / "libfixture.so.1")
    shutil.copy(fx("libfixture.so"), d / "x86" / "libfixture.so.10")
    shutil.copy(fx("tiny-aarch64"), d / "arm" / "libarmonly.so.1")
    (d / "x86" / "libscript.so").write_text("/* GNU ld script */\nGROUP ( libfixture.so.1 )\n")
    entries = [
        ("libdemo.so.2", str(d / "arm" / "libdemo.so.2"), 0x0A03),
        ("libdemo.so.2", str(d / "x86" / "libdemo.so.2"), 0x0303),
        ("libfixture.so.1", str(d / "x86" / "libfixture.so.1"), 0x0303),
        ("libfixture.so.10", str(d / "x86" / "libfixture.so.10"), 0x0303),
        ("libarmonly.so.1", str(d / "arm" / "libarmonly.so.1"), 0x0A03),
        ("libscript.so", str(d / "x86" / "libscript.so"), 0x0303),
    ]
    new = tmp_path / "ld.so.cache"
    new.write_bytes(_new_cache(entries))
    old = tmp_path / "ld.so.cache.old"
    old.write_bytes(_old_cache(entries))
    return d, str(new), str(old), entries


def test_ld_so_cache_formats(libtree):
    d, new, old, entries = libtree
    for path in (new, old):
        parsed = parse_ld_so_cache(open(path, "rb").read())
        assert [(e.key, e.path, e.flags) for e in parsed] == entries
    # the combined format: old header, then the new one; the new one wins
    both = _old_cache(entries[:1]) + b"\0" * 4 + _new_cache(entries)
    assert len(parse_ld_so_cache(both)) == len(entries)
    with pytest.raises(ELFError):
        parse_ld_so_cache(b"not a cache")
    for cut in range(0, len(open(new, "rb").read()), 7):
        try:
            parse_ld_so_cache(open(new, "rb").read()[:cut])
        except ELFError:
            pass


def test_find_library(libtree):
    d, new, old, _ = libtree
    for cache in (new, old):
        assert find_library("libdemo", X86_64, cache) == str(d / "x86" / "libdemo.so.2")
        assert find_library("demo", X86_64, cache) == str(d / "x86" / "libdemo.so.2")
        assert find_library("libdemo.so.2", X86_64, cache) == str(d / "x86" / "libdemo.so.2")
        assert find_library("libdemo", AARCH64, cache) == str(d / "arm" / "libdemo.so.2")
        assert find_library("libfixture", X86_64, cache) == str(d / "x86" / "libfixture.so.10")  # newest
        assert find_library("libfixture.so.1", X86_64, cache) == str(d / "x86" / "libfixture.so.1")
        with pytest.raises(ELFError) as ei:
            find_library("libarmonly", X86_64, cache)
        assert "aarch64" in ei.value.message and "x86_64" in ei.value.message
        with pytest.raises(ELFError) as ei:
            find_library("libfixtur", X86_64, cache, lib_dirs=[])
        assert "not found" in ei.value.message and any("libfixture" in h for h in ei.value.hints)
        with pytest.raises(ELFError):  # a linker script is not a library
            find_library("libscript", X86_64, cache, lib_dirs=[])


def test_find_library_in_directories(libtree, tmp_path):
    d, _, _, _ = libtree
    missing = str(tmp_path / "no-cache")
    assert find_library("libfixture", X86_64, missing, lib_dirs=[str(d / "arm"), str(d / "x86")]) == str(
        d / "x86" / "libfixture.so.10")
    assert find_library("libdemo", AARCH64, missing, lib_dirs=[str(d / "x86"), str(d / "arm")]) == str(
        d / "arm" / "libdemo.so.2")
    assert find_library(str(d / "x86" / "libdemo.so.2"), X86_64, missing) == str(d / "x86" / "libdemo.so.2")


# -- hostile input -----------------------------------------------------------

def workout(data, name="fuzz"):
    """Everything a caller may ask; only ELFError / SymbolNotFoundError may escape."""
    try:
        e = ELFFile.from_bytes(data, name)
        e.symbols()
        e.function_symbols()
        e.needed, e.soname, e.runpath, e.is_pie, e.interpreter, e.build_id, e.debuglink
        e.usdt_probes()
        for n in ("main", "fixture_work", "fixture_lib_add", "getpid", "strlen"):
            try:
                e.symbol_file_offset(n)
            except SymbolNotFoundError:
                pass
        for seg in e.loads[:2]:
            e.vaddr_to_file_offset(seg.vaddr)
    except ELFError:
        pass


FIXTURES = ["prog-nopie", "prog-pie", "prog-pie-stripped", "libfixture.so", "tiny-aarch64", "tiny-ppc32be"]


@pytest.mark.parametrize("name", FIXTURES)
def test_truncated_files_raise_elferror(name):
    data = open(fx(name), "rb").read()
    cuts = list(range(0, min(len(data), 300))) + list(range(300, len(data), 37))
    for cut in cuts:
        workout(data[:cut])
    with pytest.raises(ELFError):
        ELFFile.from_bytes(data[:40]).symbols()


@pytest.mark.parametrize("name", FIXTURES)
def test_flipped_bytes_raise_elferror(name):
    import random

    data = open(fx(name), "rb").read()
    rng = random.Random(1234)
    for _ in range(300):
        b = bytearray(data)
        for _k in range(rng.randint(1, 6)):
            i = rng.randrange(len(b)) if rng.random() < 0.5 else rng.randrange(min(len(b), 128))
            b[i] = rng.randrange(256)
        workout(bytes(b))


def test_hostile_values():
    data = bytearray(open(fx("prog-pie"), "rb").read())
    # e_shnum = 0 with shoff set: count from section 0 (zero) -> still parses
    bad = bytearray(data)
    struct.pack_into("<H", bad, 60, 0)
    ELFFile.from_bytes(bad)
    # huge e_phnum / e_shnum / offsets
    for off, fmt, val in [(56, "<H", 0xFFFF), (60, "<H", 0xFFFE), (32, "<Q", 1 << 62), (40, "<Q", 1 << 63),
                          (58, "<H", 1), (62, "<H", 0xFFFF)]:
        bad = bytearray(data)
        struct.pack_into(fmt, bad, off, val)
        workout(bytes(bad))
    with pytest.raises(ELFError):
        ELFFile.from_bytes(b"\x7fELF" + bytes([3, 1, 1]) + bytes(60))
    with pytest.raises(ELFError):
        ELFFile.from_bytes(b"MZ\x90\x00")


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _PIE = open(fx("prog-pie"), "rb").read()
    _LIB = open(fx("libfixture.so"), "rb").read()

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from([_PIE, _LIB]),
           st.lists(st.tuples(st.integers(0, len(_LIB) - 1), st.integers(0, 255)), max_size=8),
           st.integers(0, len(_LIB)))
    def test_property_mutations_only_raise_elferror(base, flips, cut):
        b = bytearray(base)
        for i, v in flips:
            b[i % len(b)] = v
        workout(bytes(b[: max(cut, 64)]))


def test_errors_are_undertow_errors():
    assert issubclass(ELFError, UndertowError) and issubclass(SymbolNotFoundError, LookupError)
