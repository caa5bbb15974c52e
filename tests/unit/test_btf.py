"""BTF reader on committed fixtures.

types.btf comes from types.c (make_fixtures.py: gcc -g + pahole -J); offsets below were
checked with `pahole --format_path=btf -C outer types.btf`. Kinds pahole does not emit
here (DECL_TAG, TYPE_TAG, VAR/DATASEC, split BTF) come from a tiny blob built in the test.
"""

import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from undertow.errors import BTFError, UnknownMemberError, UnknownTypeError
from undertow.kernel.btf import BTF, load_module_btf, load_vmlinux
from undertow.kernel.roots import Roots

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "btf", "types.btf")


@pytest.fixture(scope="module")
def btf():
    with open(FIX, "rb") as f:
        return BTF.from_bytes(f.read(), name="types")


def test_struct_layout_matches_pahole(btf):
    assert btf.sizeof("struct outer") == 160
    want = {"cv": 0, "addr": 4, "daddr": 4, "saddr": 8, "in": 12, "next": 72, "pp": 80, "str": 88,
            "f": 96, "d": 104, "ok": 112, "c": 116, "fl": 120, "fwd": 128, "cb": 136, "sg": 144, "bg": 152}
    for name, off in want.items():
        assert btf.member("struct outer", name).offset == off, name


def test_member_paths_arrays_and_anonymous(btf):
    mp = btf.member("struct outer", "in[2].name")
    assert (mp.offset, btf.type_str(mp.type)) == (12 + 2 * 20 + 4, "char[16]")
    mp = btf.member("struct outer", "saddr")
    assert mp.path == ("", "", "saddr") and btf.type_str(mp.type) == "__be32"
    assert btf.type_str(btf.strip(mp.type)) == "unsigned int"
    with pytest.raises(UnknownMemberError) as ei:
        btf.member("struct outer", "sadr")
    assert "struct outer" in ei.value.message and "saddr" in ei.value.hints[0]
    with pytest.raises(UnknownMemberError, match="past the end"):
        btf.member("struct outer", "in[3]")
    with pytest.raises(UnknownMemberError, match="not a struct"):
        btf.member("struct outer", "cv.x")


def test_bitfields(btf):
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in btf.members("struct flags")] == [
        ("lo", 0, 3), ("mid", 3, 5), ("hi", 8, 24), ("sc", 32, 0)]
    mp = btf.member("struct outer", "fl.hi")
    assert (mp.bit_offset, mp.bitfield_size) == (120 * 8 + 8, 24)


def test_type_spelling_and_parse(btf):
    assert btf.type_str(btf.member("struct outer", "pp").type) == "struct outer **"
    assert btf.type_str(btf.member("struct outer", "cv").type) == "volatile const int"
    assert btf.type_str(btf.member("struct outer", "cb").type) == "int (*)(int, char *)"
    assert btf.type_str(btf.member("struct outer", "fwd").type) == "union anon_host_fwd *"
    assert btf.type_str(btf.parse_type("struct inner **")) == "struct inner **"
    assert btf.sizeof(btf.parse_type("char[16]")) == 16
    assert btf.strip(btf.parse_type("u32")).name == "unsigned int"
    with pytest.raises(UnknownTypeError) as ei:
        btf.parse_type("struct innr *")
    assert "inner" in ei.value.hints[0]


def test_enums_and_funcs(btf):
    assert btf.enum_values("color") == {"RED": 0, "GREEN": 1, "BLUE": 7}
    assert btf.enum_values("sign") == {"NEG": -2, "POS": 3}
    big = btf.find("big")
    assert big.kind in ("enum64", "enum") and dict(big.values)["HUGE"] == 0x123456789
    sig = btf.func_proto("func_one")
    assert [(n, btf.type_str(t)) for n, t in sig.params] == [
        ("o", "struct outer *"), ("n", "int"), ("s", "const char *")]
    assert btf.type_str(btf.func_proto("func_two").ret) == "s64"
    assert btf.find_id("func_one", "func") == btf.find("func_one", "func").id
    # one pass over every function (list -lv) agrees with the lookups by name
    by_name = btf.ids_by_name("func")
    assert by_name["func_one"] == btf.find_id("func_one", "func")
    assert set(by_name) == set(btf.names("func"))
    sig2 = btf.func_proto_by_id(by_name["func_one"])
    assert [(n, btf.type_str(t)) for n, t in sig2.params] == [(n, btf.type_str(t)) for n, t in sig.params]
    assert "func_one" in set(btf.names("func")) and "outer" in set(btf.names("struct"))


# -- a hand-built blob for the kinds pahole did not emit, and split BTF

class Builder:
    def __init__(self, str_base=0, strings=b"\x00"):
        self.types, self.strs, self.str_base = [], bytearray(strings), str_base

    def s(self, text):
        off = len(self.strs) + self.str_base
        self.strs += text.encode() + b"\x00"
        return off

    def add(self, name, kind, vlen, size_type, extra=b"", kflag=0):
        self.types.append(struct.pack("<III", self.s(name) if name else 0,
                                      (kflag << 31) | (kind << 24) | vlen, size_type) + extra)
        return len(self.types)

    def blob(self):
        types = b"".join(self.types)
        strs = bytes(self.strs) if not self.str_base else bytes(self.strs)
        return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs)) + types + strs


def small():
    b = Builder()
    i = b.add("int", 1, 0, 4, struct.pack("<I", (1 << 24) | 32))           # 1
    tag = b.add("user", 18, 0, i)                                            # 2 type_tag
    ptr = b.add("", 2, 0, tag)                                               # 3 ptr -> tag -> int
    b.add("my_var", 14, 0, i, struct.pack("<I", 1))                          # 4 var
    b.add(".data", 15, 1, 4, struct.pack("<III", 4, 0, 4))                   # 5 datasec
    st_ = b.add("s", 4, 1, 8, struct.pack("<III", b.s("p"), ptr, 0))         # 6 struct s { int __user *p; }
    b.add("tagged", 17, 0, st_, struct.pack("<i", -1))                       # 7 decl_tag
    b.add("fl", 16, 0, 8)                                                    # 8 float
    return b


def test_tags_var_datasec_float():
    btf = BTF.from_bytes(small().blob(), name="small")
    ptr = btf.member("struct s", "p").type
    assert ptr.kind == "ptr" and ptr.target.kind == "type_tag" and ptr.target.name == "user"
    assert btf.type_str(ptr) == "int *"
    assert btf.find("my_var", "var").target.name == "int"
    assert btf.find(".data", "datasec").vars == ((4, 0, 4),)
    assert btf.find("tagged", "decl_tag").component_idx == -1
    assert btf.find("fl", "float").size == 8


def test_split_btf():
    base_b = small()
    base = BTF.from_bytes(base_b.blob(), name="base")
    sb = Builder(str_base=base.str_size, strings=b"")
    sb.add("mod_s", 4, 1, 4, struct.pack("<III", sb.s("x"), 1, 0))          # id 9, member int (base id 1)
    mod = BTF.from_bytes(sb.blob(), base=base, name="mod")
    t = mod.find("mod_s", "struct")
    assert t.id == 9 and mod.type_str(mod.member(t, "x").type) == "int"
    assert mod.find("s", "struct").id == 6  # base types visible through the module


def test_truncated_and_corrupt_never_crash():
    data = open(FIX, "rb").read()
    for cut in list(range(0, 40)) + list(range(40, len(data), 7)):
        try:
            b = BTF.from_bytes(data[:cut])
            for tid in range(1, b.next_id):
                b.type_by_id(tid)
        except BTFError:
            pass


@settings(max_examples=200)
@given(st.binary(min_size=24, max_size=400))
def test_random_headers(tail):
    data = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(tail) // 2, len(tail) // 2, len(tail) - len(tail) // 2) + tail
    try:
        b = BTF.from_bytes(data)
        for tid in range(1, min(b.next_id, 50)):
            t = b.type_by_id(tid)
            b.type_str(t)
    except BTFError:
        pass


def test_load_and_cache(tmp_path):
    sysd = tmp_path / "sys" / "kernel" / "btf"
    sysd.mkdir(parents=True)
    (sysd / "vmlinux").write_bytes(open(FIX, "rb").read())
    cache = tmp_path / "cache"
    roots = Roots(sys=str(tmp_path / "sys"), cache_dir=str(cache), live=False)
    b1 = load_vmlinux(roots)
    assert b1.sizeof("struct outer") == 160
    entries = [n for n in os.listdir(cache) if n != "CACHEDIR.TAG"]
    assert len(entries) == 1 and entries[0].startswith("btf-index-")
    from undertow.kernel import btf as kbtf
    kbtf._VMLINUX.clear()
    assert load_vmlinux(roots).member("struct outer", "d").offset == 104  # from the cache
    # a corrupt cache entry is rebuilt, not trusted
    (cache / entries[0]).write_bytes(b"\x00" * 16)
    kbtf._VMLINUX.clear()
    assert load_vmlinux(roots).sizeof("struct inner") == 20
    # an unwritable cache dir is not an error
    kbtf._VMLINUX.clear()
    assert load_vmlinux(Roots(sys=str(tmp_path / "sys"), cache_dir="/proc/nonexistent/x", live=False))
    with pytest.raises(BTFError) as ei:
        load_vmlinux(Roots(sys=str(tmp_path / "nope"), live=False))
    assert "CONFIG_DEBUG_INFO_BTF" in ei.value.hints[0]
    with pytest.raises(BTFError):
        load_module_btf(roots, "../evil", b1)


def _member_roots(tmp_path, boot="b00t"):
    sysd = tmp_path / "sys" / "kernel" / "btf"
    sysd.mkdir(parents=True, exist_ok=True)
    (sysd / "vmlinux").write_bytes(open(FIX, "rb").read())
    bootd = tmp_path / "proc" / "sys" / "kernel" / "random"
    bootd.mkdir(parents=True, exist_ok=True)
    (bootd / "boot_id").write_text(boot + "\n")
    return Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), cache_dir=str(tmp_path / "c"), live=True)


def test_member_offset_is_cached_per_boot(tmp_path, monkeypatch):
    from undertow.kernel import Kernel
    from undertow.kernel import btf as kbtf

    roots = _member_roots(tmp_path)
    kbtf._VMLINUX.clear()
    fl_hi = BTF.from_bytes(open(FIX, "rb").read()).member("struct outer", "fl.hi").offset
    want = {"d": 104, "saddr": 8, "fl.hi": fl_hi}
    for path, off in want.items():
        assert Kernel(roots).member_offset("struct outer", path) == off
    names = [n for n in os.listdir(tmp_path / "c") if n.startswith("member-b00t-")]
    assert len(names) == 3
    kbtf._VMLINUX.clear()

    def no_btf(roots):
        raise AssertionError("a cache hit loads no BTF")

    monkeypatch.setattr(kbtf, "load_vmlinux", no_btf)
    for path, off in want.items():  # a later run of the same boot: checked against the blob's records
        assert Kernel(roots).member_offset("struct outer", path) == off
    monkeypatch.undo()
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text("other\n")
    (tmp_path / "sys" / "kernel" / "btf" / "vmlinux").unlink()  # another boot: asks BTF again (gone here)
    with pytest.raises(BTFError):
        Kernel(roots).member_offset("struct outer", "d")
    kbtf._VMLINUX.clear()


def test_a_planted_member_offset_is_a_miss(tmp_path):
    """The member offset cache holds the BTF records the offset was read from; a value the
    BTF does not back (another number, a record of another member, another blob) is a miss
    and is computed again (and the entry rewritten)."""
    from undertow.kernel import Kernel
    from undertow.kernel import btf as kbtf
    from undertow.kernel.btfcheck import check_member_witness

    roots = _member_roots(tmp_path)
    kbtf._VMLINUX.clear()
    k = Kernel(roots)
    assert k.member_offset("struct outer", "saddr") == 8
    entry = tmp_path / "c" / "member-b00t-struct outer-saddr"
    good = entry.read_bytes()
    size, off, chain = good.decode().split(" ")
    assert off == "8" and len(chain.split(",")) == 3  # outer -> anonymous union -> anonymous struct -> saddr
    d_rec = k.btf().member_witness("struct outer", "d").decode().split(" ")[2]
    vmlinux = roots.btf_vmlinux
    planted = [
        b"104",                                               # the old format: a bare number
        f"{size} 104 {chain}".encode(),                       # right records, wrong sum
        f"{size} 104 {d_rec}".encode(),                       # another member's record ("d")
        f"{int(size) + 4} 8 {chain}".encode(),                # another blob
        f"{size} 8 {chain.replace(':', ':9', 1)}".encode(),   # a member index past the record
        f"{size} 8 1:0".encode(),                             # not a record boundary
        b"\xff" * 40,
    ]
    for p in planted:
        assert check_member_witness(vmlinux, "struct outer", "saddr", p) is None, p
        entry.write_bytes(p)
        kbtf._VMLINUX.clear()
        assert Kernel(roots).member_offset("struct outer", "saddr") == 8
        assert entry.read_bytes() == good  # computed again and rewritten
    assert check_member_witness(vmlinux, "struct outer", "saddr", good) == 8
    assert check_member_witness(vmlinux, "struct inner", "saddr", good) is None  # another struct
    assert check_member_witness(vmlinux, "struct outer", "daddr", good) is None  # another path
    kbtf._VMLINUX.clear()


@pytest.mark.parametrize("sampled", [True, False], ids=["at-load", "at-use"])
def test_a_crafted_btf_index_is_not_believed(tmp_path, monkeypatch, sampled):
    """A cached index that does not describe the blob (swapped entries, offsets out of the
    type section, wrong names) is a miss: rebuilt, right names and types, cache rewritten.
    Caught by the sample checked at load or, for entries the sample skipped (vmlinux has
    127k), when the type is decoded."""
    from undertow.kernel import btf as kbtf

    sysd = tmp_path / "sys" / "kernel" / "btf"
    sysd.mkdir(parents=True)
    (sysd / "vmlinux").write_bytes(open(FIX, "rb").read())
    cache = tmp_path / "cache"
    roots = Roots(sys=str(tmp_path / "sys"), cache_dir=str(cache), live=False)
    kbtf._VMLINUX.clear()
    real = load_vmlinux(roots)
    (entry,) = [cache / n for n in os.listdir(cache) if n != "CACHEDIR.TAG"]
    good = entry.read_bytes()
    n = len(good) // 8
    offs = list(struct.unpack(f"<{n}I", good[:4 * n]))
    names = list(struct.unpack(f"<{n}I", good[4 * n:]))
    outer = real.find("outer", "struct").id - 1
    inner = real.find("inner", "struct").id - 1

    def pack(o, m):
        return struct.pack(f"<{n}I", *o) + struct.pack(f"<{n}I", *m)

    swapped_o, swapped_m = offs[:], names[:]
    swapped_o[outer], swapped_o[inner] = offs[inner], offs[outer]
    swapped_m[outer], swapped_m[inner] = names[inner], names[outer]
    renamed = names[:]
    renamed[outer] = names[inner]
    crafted = [pack(swapped_o, swapped_m),                      # "outer" is inner's record
               pack(offs, renamed),                             # "inner" names outer's record
               pack(offs[:outer] + [0xFFFFFF00] + offs[outer + 1:], names),  # outside the section
               good[:-8] + b"\x00" * 8]
    if not sampled:
        monkeypatch.setattr(BTF, "_index_fits", lambda self: True)
    for bad in crafted:
        entry.write_bytes(bad)
        kbtf._VMLINUX.clear()
        b = load_vmlinux(roots)
        assert b.find("outer", "struct").size == 160 and b.sizeof("struct inner") == 20
        assert b.member("struct outer", "d").offset == 104
        assert [b.type_by_id(i).name for i in b.ids("inner")] == ["inner"]
        b.type_by_id(b.next_id - 1)  # the last entries (damaged in the last case) are used too
        assert entry.read_bytes() == good, "the cache entry is rewritten"
    kbtf._VMLINUX.clear()
