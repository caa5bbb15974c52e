"""undertow.kernel.kallsyms on recorded samples (tests/fixtures/kallsyms/README.md)."""

import os

import pytest

from undertow.errors import UndertowError
from undertow.kernel import Kernel
from undertow.kernel.kallsyms import KSym, load_kallsyms, parse_kallsyms
from undertow.kernel.roots import Roots


@pytest.fixture
def kdir(fixtures_dir):
    return lambda name: Roots(proc=os.path.join(fixtures_dir, "kallsyms", name), live=False)


def test_lookup_real_sample(kdir):
    k = load_kallsyms(kdir("x86_64-6.18"))
    assert k.addresses_available
    s = k.lookup("tcp_v4_connect")
    assert s == KSym("tcp_v4_connect", 0xFFFFFFFF8202F020, "T", None)
    assert s.is_text and s.is_global
    assert k.lookup("do_sys_openat2").type == "t"
    assert "tcp_connect" in k and "tcp_conn" not in k and "" not in k
    assert k.lookup("no_such_symbol") is None
    # a name that is only a suffix of a real one does not match
    assert k.lookup("v4_connect") is None


def test_lookup_through_index_agrees(kdir):
    k = load_kallsyms(kdir("x86_64-6.18"))
    by_text = [k.lookup(n) for n in ("tcp_v4_connect", "_stext", "ftrace_trampoline")]
    k._lookups = 10**6  # force the name index
    by_index = [k.lookup(n) for n in ("tcp_v4_connect", "_stext", "ftrace_trampoline")]
    assert by_text == by_index
    assert by_index[2].module == "__builtin__ftrace"


def test_duplicates_and_match(kdir):
    k = load_kallsyms(kdir("x86_64-6.18"))
    dup = k.lookup_all("xfrm_hash_resize")
    assert [hex(s.address) for s in dup] == ["0xffffffff820a4a40", "0xffffffff820b1680"]
    assert k.lookup("xfrm_hash_resize").address == 0xFFFFFFFF820A4A40  # first in file order
    names = [s.name for s in k.match("tcp_*connect")]
    assert names == ["tcp_connect", "tcp_v4_connect"]
    assert [s.name for s in k.match("__x64_sys_getp?d")] == ["__x64_sys_getpid"]
    assert k.match("nothing*here") == []
    assert len(k.match("*")) == len(k) == 92


def test_symbolize(kdir):
    k = load_kallsyms(kdir("x86_64-6.18"))
    assert k.symbolize(0xFFFFFFFF8202F020) == ("tcp_v4_connect", 0, None)
    assert k.symbolize(0xFFFFFFFF8202F020 + 0x2A) == ("tcp_v4_connect", 0x2A, None)
    # _stext, _text and srso_alias_untrain_ret share an address: like the kernel's
    # own sort, fewer leading underscores win.
    assert k.symbolize(0xFFFFFFFF81000000) == ("srso_alias_untrain_ret", 0, None)
    assert k.symbolize(0xFFFFFFFF81377CC5) == ("__do_sys_getpid", 5, None)
    assert k.symbolize(0xFFFFFFFFC0201010) == ("ftrace_trampoline", 0x10, "__builtin__ftrace")
    assert k.symbolize(0x1000) is None  # below every symbol
    assert k.symbolize(-1) is None
    assert k.symbolize(1 << 70) is None


def test_restricted_names_without_addresses(kdir):
    k = load_kallsyms(kdir("restricted"))
    assert k.addresses_available is False
    s = k.lookup("tcp_v4_connect")
    assert s is not None and s.address == 0 and s.type == "T"
    assert [x.name for x in k.match("tcp_*connect")] == ["tcp_connect", "tcp_v4_connect"]
    assert k.symbolize(0xFFFFFFFF8202F020) is None


def test_modules(kdir):
    k = load_kallsyms(kdir("modules"))
    assert k.modules() == ["__builtin__ftrace", "bpf", "ext4", "nf_conntrack"]
    assert k.lookup("ext4_file_open").module == "ext4"
    assert [s.module for s in k.lookup_all("init_module")] == ["ext4", "nf_conntrack"]
    assert k.lookup("init_module", module="nf_conntrack").address == 0xFFFFFFFFC0400400
    assert k.lookup("init_module", module="xfs") is None
    assert k.lookup("tcp_v4_rcv", module="").module is None
    # module addresses are not in file order; symbolize sorts them
    assert k.symbolize(0xFFFFFFFFC0400410) == ("init_module", 0x10, "nf_conntrack")
    assert k.symbolize(0xFFFFFFFFC0A14085) == ("ext4_fs_type", 5, "ext4")
    assert k.symbolize(0xFFFFFFFFC0300750) == ("bpf_prog_6deef7357e7b4530_sd_fw_ingress", 8, "bpf")
    assert k.symbolize(0xFFFFFFFF8202F5A1) == ("tcp_v4_rcv", 1, None)
    assert k.symbolize(0xFFFFFFFF81000001) == ("_stext", 1, None)
    assert [s.name for s in k.match("ext4_f*")] == ["ext4_fill_super", "ext4_file_open", "ext4_fs_type"]


def test_parse_text_and_hostile_lines():
    text = (
        "ffffffff81000000 T start\n"
        "garbage\n"
        "ffffffff81000010 t \x1b[31mevil\n"
        "ffffffff81000020 t with_module\t[m]\n"
    )
    k = parse_kallsyms(text)
    assert k.lookup("start").address == 0xFFFFFFFF81000000
    assert k.lookup("with_module").module == "m"
    assert k.symbolize(0xFFFFFFFF81000011)[0] == "\x1b[31mevil"
    assert len(k) == 3
    # absolute symbols are not locations; mixed address widths still compare as numbers
    k2 = parse_kallsyms("ffffffff81000000 T f\nffffffff81000008 A abs_const\n1000 t low\n")
    assert k2.symbolize(0xFFFFFFFF81000010) == ("f", 0x10, None)
    assert k2.symbolize(0x1004) == ("low", 4, None)
    empty = parse_kallsyms("")
    assert len(empty) == 0 and empty.lookup("x") is None and empty.symbolize(5) is None
    assert not empty.addresses_available


def test_missing_file_is_an_undertow_error(tmp_path):
    k = load_kallsyms(Roots(proc=str(tmp_path), live=False))
    with pytest.raises(UndertowError) as ei:
        k.lookup("x")
    assert "kallsyms" in ei.value.message and ei.value.hints


def test_kernel_facade(kdir):
    kern = Kernel(kdir("x86_64-6.18"))
    assert kern.kallsyms() is kern.kallsyms()
    assert kern.kallsyms().lookup("tcp_connect").address == 0xFFFFFFFF82026430
