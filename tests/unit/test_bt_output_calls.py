"""`undertow run` output and calls as bpftrace 0.17 has them (issue 16): `-f json` shapes
(src/output.cpp's JsonOutput, text for text), map order and print(@, top, div), cat()
errors, positional parameters, strcontains, cgroup_path, pton."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import pytest

from undertow.backends.bpf.compiled import MapSpec
from undertow.backends.bpf.compiler import compile_program
from undertow.backends.bpf.layout import Slot
from undertow.kernel.arch import get_arch
from undertow.kernel.cgroups import cgroup_paths
from undertow.lang import ir
from undertow.lang.bt import parse_program
from undertow.lang.bt.language import c_integer
from undertow.lang.resolve import resolve
from undertow.output.bt import BtRenderer, _cat, cat_bytes_max, order_entries
from undertow.output.btjson import jstr, message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import FakeKernel  # noqa: E402

INT = Slot("int", 8, True)
STR = Slot("str", 16)


def spec(name: str, agg: str, keys=(), value: Slot = INT, lhist=(0, 0, 1)) -> MapSpec:  # type: ignore[no-untyped-def]
    elems, off = [], 0
    for s in keys:
        elems.append((off, s))
        off += (s.size + 7) & ~7
    m = MapSpec(name, agg, Slot("tuple", off, elems=elems), value)
    m.lhist = lhist
    return m


def show(sp: MapSpec, entries, top: int = 0, div: int = 1, json_mode: bool = False) -> str:  # type: ignore[no-untyped-def]
    return BtRenderer(json_mode=json_mode).map(SimpleNamespace(spec=sp, entries=entries, top=top, div=div))


# ----------------------------------------------------------------------------- -f json

def test_json_tuple_and_strings_are_bpftraces_text():
    tup = Slot("tuple", 40, elems=[(0, INT), (8, INT), (16, STR), (32, Slot("tuple", 16, elems=[(0, INT), (8, INT)]))])
    assert show(spec("@", "assign", value=tup), [((), (1, 2, "string", (4, 5)))], json_mode=True) == \
        '{"type": "map", "data": {"@": [1,2,"string",[4,5]]}}\n'
    assert show(spec("@", "assign", value=Slot("tuple", 24, elems=[(0, INT), (8, STR)])),
                [((), (1, 'with "quotes"'))], json_mode=True) == \
        '{"type": "map", "data": {"@": [1,"with \\"quotes\\""]}}\n'
    line = show(spec("@scalar_str", "assign", value=STR), [((), "a b \n d e")], json_mode=True)
    assert json.loads(line)["data"]["@scalar_str"] == "a b \n d e"  # escaped once, by JSON only


def test_json_print_value_lines():
    r = BtRenderer(json_mode=True)
    rec = SimpleNamespace(action=SimpleNamespace(kind="value", args=[(0, INT)], fmt=""), values=[5], raw=b"")
    assert r.printed(rec) == '{"type": "value", "data": 5}\n'
    tup = Slot("tuple", 32, elems=[(0, INT), (8, INT), (16, STR)])
    rec = SimpleNamespace(action=SimpleNamespace(kind="value", args=[(0, tup)], fmt=""), values=[(1, 2, "string")],
                          raw=b"")
    assert r.printed(rec) == '{"type": "value", "data": [1,2,"string"]}\n'
    assert r.syscall("a b c\n") == '{"type": "syscall", "data": "a b c\\n"}\n'


def test_json_messages_escape_as_bpftrace_and_stay_safe():
    assert message("printf", 'test \r \n \t \\ " bar') == \
        '{"type": "printf", "data": "test \\r \\n \\t \\\\ \\" bar"}\n'
    # characters that could disguise text on a terminal: \\u escapes, the same string once parsed
    text = jstr("a\u202eb\x7f\x85")
    assert "\u202e" not in text and "\x7f" not in text and json.loads(text) == "a\u202eb\x7f\x85"
    assert json.loads(jstr("bad \udcff byte")) == "bad \\xff byte"


def test_json_avg_is_stats_with_top_and_div():
    sp = spec("@", "avg", keys=[STR])
    entries = [(("a",), 10), (("b",), 20), (("c",), 30), (("d",), 40)]
    assert show(sp, entries, top=2, div=10, json_mode=True) == '{"type": "stats", "data": {"@": {"c": 3, "d": 4}}}\n'
    st = spec("@stats", "stats", keys=[STR])
    assert show(st, [(("curl",), (1, 2, 2)), (("zsh",), (1, 10, 10))], top=1, json_mode=True) == \
        '{"type": "stats", "data": {"@stats": {"curl": {"count": 1, "average": 2, "total": 2}, ' \
        '"zsh": {"count": 1, "average": 10, "total": 10}}}}\n'  # top ignored for stats, as bpftrace


def test_json_hist_top_keeps_bpftraces_order():
    sp = spec("@", "hist", keys=[INT])
    entries = [((2,), {6: 1}), ((1,), {5: 1}), ((3,), {6: 1})]
    assert show(sp, entries, top=2, json_mode=True) == \
        '{"type": "hist", "data": {"@": {"2": [{"min": 16, "max": 31, "count": 1}], ' \
        '"3": [{"min": 16, "max": 31, "count": 1}]}}}\n'
    assert show(spec("@h", "hist"), [((), {3: 0})], json_mode=True) == '{"type": "hist", "data": {"@h": []}}\n'
    lh = spec("@h", "lhist", lhist=(0, 100, 10))
    assert json.loads(show(lh, [((), {1: 1, 11: 1})], json_mode=True))["data"]["@h"][-1] == {"min": 100, "count": 1}


def test_json_empty_map_prints_nothing_text_prints_a_line():
    sp = spec("@a", "assign", keys=[INT])
    assert show(sp, [], json_mode=True) == ""
    assert show(sp, []) == "\n"


# ----------------------------------------------------------------------------- text maps

def test_text_maps_end_as_bpftraces():
    assert show(spec("@a", "assign"), [((), 1)]) == "@a: 1\n"  # no blank line after a plain map
    assert show(spec("@s", "stats"), [((), (1, 3, 3))]) == "@s: count 1, average 3, total 3\n\n"
    assert show(spec("@v", "avg"), [((), 3)]) == "@v: 3\n\n"
    h = show(spec("@h", "hist", keys=[INT]), [((1,), {3: 1}), ((2,), {3: 2})])
    assert h.startswith("@h[1]: \n[2, 4)") and "|\n\n@h[2]: \n" in h and h.endswith("|\n\n")


def test_print_top_div_as_bpftrace():
    sp = spec("@m", "assign", keys=[INT])
    assert show(sp, [((1,), -7)], div=2) == "@m[1]: -3\n"  # C's division, towards zero
    sp = spec("@c", "count", keys=[STR])
    assert show(sp, [(("a",), 1), (("b",), 5), (("c",), 3)], top=2) == "@c[c]: 3\n@c[b]: 5\n"
    st = spec("@s", "stats", keys=[STR])
    got = show(st, [(("x",), (1, 1, 1)), (("y",), (1, 5, 5)), (("z",), (1, 3, 3))], top=1, div=2)
    assert got == ("@s[x]: count 1, average 1, total 1\n@s[z]: count 1, average 3, total 3\n"
                   "@s[y]: count 1, average 5, total 5\n\n")


def test_non_integer_values_sort_by_key():
    sp = spec("@", "assign", keys=[INT], value=STR)
    assert [k for k, _v in order_entries(sp, [((3,), "c"), ((1,), "z"), ((2,), "a")])] == [(1,), (2,), (3,)]


def test_hist_bars_from_counts_numbers_divided():
    h = show(spec("@h", "hist"), [((), {3: 10, 4: 5})], div=5)
    assert "[2, 4)                 2 |" + "@" * 52 + "|" in h
    assert "[4, 8)                 1 |" + "@" * 26 + " " * 26 + "|" in h


# ----------------------------------------------------------------------------- cat()

def test_cat_errors_and_limit(tmp_path):
    f = tmp_path / "f"
    f.write_text("0123456789\n")
    assert _cat(str(f), 1) == ("0", "")
    assert _cat(str(tmp_path / "no")) == ("", f"failed to open file '{tmp_path}/no': No such file or directory")
    assert cat_bytes_max({}) == 10240 and cat_bytes_max({"BPFTRACE_CAT_BYTES_MAX": "1"}) == 1
    with pytest.raises(ValueError):
        cat_bytes_max({"BPFTRACE_CAT_BYTES_MAX": "x"})
    errors = []
    r = BtRenderer(on_error=errors.append)
    act = SimpleNamespace(kind="cat", fmt=str(tmp_path / "no"), args=[])
    assert r.printed(SimpleNamespace(action=act, values=[], raw=b"")) == ""
    assert errors == [f"ERROR: failed to open file '{tmp_path}/no': No such file or directory"]


# ----------------------------------------------------------------------------- the language

def test_positional_numbers_as_strtoll_base_0():
    assert [c_integer(t) for t in ("123", "0775", "0x123", "-5", " 7", "0", "08", "1a", "", "0x")] == \
        [123, 0o775, 0x123, -5, 7, 0, None, None, None, None]


def _consts(text: str, params):  # type: ignore[no-untyped-def]
    p = parse_program(text, positional=params)
    out = []
    for a in p.probes[0].actions:
        for e in a.exprs():
            out.extend(n.value for n in e.walk() if isinstance(n, ir.Const))
    return out


def test_positional_parameters():
    assert _consts('BEGIN { printf("%d %o %x", $1, $2, $3); }', ["123", "0775", "0x123"])[-3:] == [123, 509, 291]
    assert _consts('BEGIN { printf("-%s-", str($1)); }', ["1"])[-1:] == ["1"]
    p = parse_program('BEGIN { @ = kaddr(str($1)); }', positional=["vfs_read"])
    call = p.probes[0].actions[0].value
    assert call.name == "kaddr" and call.args[0].value == "vfs_read"


def _resolved(text: str):  # type: ignore[no-untyped-def]
    p = parse_program(text)
    resolve(p, FakeKernel(), strict_kprobes=False, types=None, arch="x86_64")
    return p


def test_strcontains_folds_literals_and_compiles_otherwise():
    p = _resolved('BEGIN { $a = strcontains("abc", "a"); $b = strcontains("abc", "x"); }')
    assert [a.value.value for a in p.probes[0].actions] == [1, 0]
    p = _resolved('BEGIN { $h = "hello"; $n = "ll"; $a = strcontains($h, $n); $b = strcontains($h, "lo"); }')
    compile_program(p, arch=get_arch("x86_64"), self_pid=1)


def test_pton_ipv6_is_16_bytes():
    p = _resolved('BEGIN { printf("%s", ntop(pton("::1"))); }')
    arg = p.probes[0].actions[0].args[0].args[0]
    assert arg.value == bytes(15) + b"\x01" and arg.type.size == 16
    compile_program(p, arch=get_arch("x86_64"), self_pid=1)


def test_cgroup_paths_as_bpftrace(tmp_path):
    v2, v1 = tmp_path / "unified", tmp_path / "memory"
    (v2 / "a" / "b").mkdir(parents=True)
    (v1 / "a").mkdir(parents=True)
    ino = os.stat(v2 / "a" / "b").st_ino
    mounts = [("memory", str(v1)), ("unified", str(v2))]
    assert cgroup_paths(ino, "*", mounts) == "unified:/a/b"
    assert cgroup_paths(os.stat(v1).st_ino, "*", mounts) == "memory:/"
    assert cgroup_paths(ino, "mem*", mounts) == ""
    p = _resolved('BEGIN { printf("%s", cgroup_path(cgroup, "unified")); }')
    assert p.probes[0].actions[0].args[0].type.fmt == "unified"
