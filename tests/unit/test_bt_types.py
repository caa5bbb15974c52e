"""bpftrace's value types in `undertow run` (issue 16): arrays, whole structs, tuples, buffers,
++/-- as values: how they are typed and laid out, and printed as bpftrace 0.17 prints them."""

from __future__ import annotations

import os
import struct
import sys
from types import SimpleNamespace

import pytest

from undertow.backends.bpf.compiler import compile_program
from undertow.errors import TypeCheckError
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.bt import parse_program
from undertow.lang.resolve import resolve
from undertow.output.bt import BtRenderer, format_printf
from undertow.output.native import native_json_text, native_text, native_value

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import FakeKernel  # noqa: E402

STRUCTS = """
struct T { uint32_t a; uint32_t b[2]; };
struct W { uint32_t a; struct T t; };
struct C { uint32_t a; void *b; struct W w[10]; };
struct Foo { struct { int m[1] } y; struct { int n } a; }
struct Bar { short a:4, b:8, c:3, d:1; int e:9, f:15, g:1, h:2, i:5 }
struct A { int x[4]; }
struct B { int y[2][2]; }
struct P { int m; int n; }
"""


def compiled(text: str):  # type: ignore[no-untyped-def]
    p = parse_program(STRUCTS + text)
    resolve(p, FakeKernel(), strict_kprobes=False, types=None, arch="x86_64")  # script structs on base types
    return p, compile_program(p, arch=get_arch("x86_64"), self_pid=4321)


def printed_sizes(text: str):  # type: ignore[no-untyped-def]
    p, _c = compiled(text)
    return [a.value.value for a in p.probes[0].actions if isinstance(a, ir.PrintValue)]


def render_map(spec, entries):  # type: ignore[no-untyped-def]
    return BtRenderer().map(SimpleNamespace(spec=spec, entries=entries, top=0, div=1))


def test_script_structs_are_laid_out_as_c_lays_them_out():
    """Nested structs take their largest member's alignment (struct W: 16 bytes, not 24),
    bitfields pack into units of their type without crossing one."""
    assert printed_sizes("BEGIN { print(sizeof(struct T)); print(sizeof(struct W)); print(sizeof(struct C)); "
                         "print(sizeof(struct Foo)); print(sizeof(struct Bar)); print(offsetof(struct C, w)); }") \
        == [12, 16, 176, 8, 8, 16]


def test_tuple_sizeof_is_bpftraces_padded_layout():
    assert printed_sizes("BEGIN { $a = ((int8) 1, (int64) 1, (int8) 1, (int64) 1); print(sizeof($a)); "
                         "$b = ((int8) 1, (int16) 1, (int32) 1); print(sizeof($b)); "
                         "$c = ((int32) 1, (int16) 1, (int8) 1); print(sizeof($c)); "
                         "$d = ((int8)-100, (int8) 100, \"abcdef\", 3, (int32) 1, (int64)-10, (int8)10, "
                         "(int16)-555, \"abc\"); print(sizeof($d)); "
                         "$e = ((int32)1, *(struct P *)0); print(sizeof($e)); "
                         "$f = ((int32)1, ((struct A *)0)->x); print(sizeof($f)); }") == [32, 8, 8, 48, 12, 20]


def test_whole_structs_and_arrays_are_held_in_maps_keys_and_tuples():
    _p, c = compiled("BEGIN { @s = *(struct Foo *)0; @k[*(struct P *)0, 42] = 0; @t = (1, ((struct A *)0)->x); "
                     "@b = ((struct B *)0)->y; }")
    s = c.maps["@s"]
    assert s.value.kind == "record" and s.value.size == 8
    data = struct.pack("<ii", 2, 3)
    assert render_map(s, [((), data)]) == "@s: { .y = { .m = [2] }, .a = { .n = 3 } }\n"
    k = c.maps["@k"]
    assert render_map(k, [((struct.pack("<ii", 2, 3), 42), 0)]) == "@k[{.m=2,.n=3}, 42]: 0\n"
    t = c.maps["@t"]
    assert render_map(t, [((), (1, struct.pack("<4i", 1, 2, 3, 4)))]) == "@t: (1, [1,2,3,4])\n"
    b = c.maps["@b"]
    assert render_map(b, [((), struct.pack("<4i", 5, 6, 7, 8))]) == "@b: [[5,6],[7,8]]\n"


def test_bitfields_read_unsigned_as_bpftrace_reads_them():
    p, _c = compiled("BEGIN { @b = *(struct Bar *)0; }")
    t = p.probes[0].actions[0].value.type
    # a=1 b=217 c=5 d=1 in the first short; e=500 at bit 16; f=31117 g=1 h=2 i=27 in the next int
    lo = 1 | 217 << 4 | 5 << 12 | 1 << 15 | 500 << 16
    hi = 31117 | 1 << 15 | 2 << 16 | 27 << 18
    v = native_value(t, struct.pack("<II", lo, hi))
    assert v == {"a": 1, "b": 217, "c": 5, "d": 1, "e": 500, "f": 31117, "g": 1, "h": 2, "i": 27}


def test_native_text_value_key_and_json_forms():
    v = {"m": 2, "s": "hi\x1b", "a": [1, -2]}
    assert native_text(v) == "{ .m = 2, .s = hi\\x1b, .a = [1,-2] }"
    assert native_text(v, key=True) == "{.m=2,.s=hi\\x1b,.a=[1,-2]}"
    assert native_json_text(v) == '{ "m": 2, "s": "hi\\u001b", "a": [1,-2] }'


def test_array_index_out_of_bounds_is_bpftraces_message():
    with pytest.raises(TypeCheckError) as ei:
        compiled("BEGIN { $a = (struct A *) 0; $x = $a->x[5]; }")
    assert "the index 5 is out of bounds for array of size 4" in ei.value.message


def test_arrays_and_structs_are_indexed_where_they_are_held():
    """$x[0] of an array in a variable, @m[0][1] of one in a map, $s.m of a struct variable:
    compiled (they were 'cannot take the address of var/mapread')."""
    compiled("BEGIN { $a = ((struct A *) 0)->x; @a[0] = ((struct A *) 0)->x; $s = *(struct P *)0; "
             "printf(\"%d %d %d %d\\n\", $a[1], @a[0][2], $s.n, @a[0][$1]); }".replace("$1", "1"))
    compiled("BEGIN { $c = (struct C *) 0; $w = $c->w; @w[0] = $c->w; printf(\"%d %d\\n\", $w[2].a, @w[0][3].t.b[1]); }")


def test_array_compare_is_a_byte_compare():
    _p, c = compiled("BEGIN { $a = (struct A *) 0; $b = (struct A *) 8; "
                     "if ($a->x == $b->x) { printf(\"eq\\n\"); } }")
    assert c.probes[0].program.listing().count("if r1 != r2") == 2  # two 8-byte words of int[4]


def test_increment_and_decrement_as_values():
    p, c = compiled("BEGIN { $x = 10; printf(\"%d %d %d %d\\n\", $x++, ++$x, $x--, --$x); @x = 1; "
                    "printf(\"%d\\n\", @x++); $c = (struct P *) 0; printf(\"%d\\n\", ($c++)->n); $i = 3; "
                    "while ($i-- > 0) { } $x++; }")
    pf = p.probes[0].actions[1]
    assert [(e.post, e.op) for e in pf.args] == [(True, "+"), (False, "+"), (True, "-"), (False, "-")]
    assert isinstance(p.probes[0].actions[-1], ir.Assign)  # $x++; alone stays a statement
    assert "@x" in c.maps


def test_signed_compare_only_when_both_sides_are_signed():
    _p, c = compiled("BEGIN { $a = (uint64) 0; printf(\"%d %d\\n\", $a > -1, (int64) 0 > -1); }")
    lst = c.probes[0].program.listing()
    assert " > " in lst and " s> " in lst


@pytest.mark.parametrize("conv,want", [("%r", "Hello\\x00"), ("%rx", "\\x48\\x65\\x6c\\x6c\\x6f\\x00"),
                                       ("%rh", "48 65 6c 6c 6f 00")])
def test_buffer_conversions(conv, want):
    r = BtRenderer()
    assert format_printf(conv + "|", [b"Hello\x00"], ["buf"], r.show) == want + "|"


def test_buf_of_a_literal_and_buffers_compared_compile():
    compiled("BEGIN { $a = buf(\"hi\", 2); $b = buf(\"bye\", 3); @k[buf(\"ok_key\", 8), 1] = count(); "
             "printf(\"%d %d %r\\n\", $a == $a, $a != $b, $a); }")


def test_a_string_variable_takes_its_largest_value():
    """$a = "" first and "hello" later (in a branch): one slot of the largest size."""
    _p, c = compiled('BEGIN { $a = ""; if (1 > 2) { $a = "hi" } else { $a = "hello" } printf("a=%s\\n", $a); }')
    assert c.probes[0].program.listing()


@pytest.mark.parametrize("n,msg", [(101, "unroll maximum value is 100"), (0, "unroll minimum value is 1")])
def test_unroll_bounds_in_bpftraces_words(n, msg):
    from undertow.errors import ParseError

    with pytest.raises(ParseError) as ei:
        parse_program(f"BEGIN {{ $a = 1; unroll ({n}) {{ $a = $a + 2; }} }}")
    assert ei.value.message == msg
