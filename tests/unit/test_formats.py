"""tracefs format parsing and record decoding, on formats recorded from several kernels."""

from __future__ import annotations

import glob
import os
import struct

import pytest

from undertow.errors import UnknownFieldError
from undertow.kernel.formats import (
    FormatError,
    parse_format,
    parse_header_event,
    parse_header_page,
    split_args,
)

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = os.path.join(os.path.dirname(HERE), "fixtures", "formats")
KERNELS = sorted(d for d in os.listdir(FORMATS) if os.path.isdir(os.path.join(FORMATS, d)))
K618 = "linux-6.18-x86_64"
K510 = "linux-5.10.43-android-arm64"
K44 = "linux-4.4.88-android-arm64"
K34 = "linux-3.4.0-android-arm"


def load(kernel: str, group: str, event: str, **kw):  # type: ignore[no-untyped-def]
    with open(os.path.join(FORMATS, kernel, group, event, "format")) as f:
        return parse_format(f.read(), group, event, **kw)


def text_of(kernel: str, name: str) -> str:
    with open(os.path.join(FORMATS, kernel, name)) as f:
        return f.read()


def test_fixtures_cover_several_kernels() -> None:
    assert {K618, K510, K44, K34} <= set(KERNELS)


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(FORMATS, "*", "*", "*", "format"))),
    ids=lambda p: "/".join(p.split(os.sep)[-4:-1]),
)
def test_every_recorded_format_parses_and_decodes_zeros(path: str) -> None:
    group, event = path.split(os.sep)[-3:-1]
    with open(path) as f:
        fmt = parse_format(f.read(), group, event)
    assert fmt.name == event and fmt.id > 0
    common = [f.name for f in fmt.common_fields]
    assert common[:4] == ["common_type", "common_flags", "common_preempt_count", "common_pid"]
    assert all(f.is_common for f in fmt.fields[: len(common)])
    out = fmt.decoder()(bytes(fmt.fixed_size + 64))
    assert out["common_type"] == 0
    assert set(f.name for f in fmt.fields) == set(out)


def test_sched_switch_618_layout() -> None:
    fmt = load(K618, "sched", "sched_switch")
    assert fmt.id == 319 or fmt.id > 0
    f = fmt.field("prev_comm")
    assert (f.offset, f.size, f.array_len, f.is_string, f.type, f.elem_type) == (8, 16, 16, True, "char[16]", "char")
    st = fmt.field("prev_state")
    assert (st.offset, st.size, st.signed, st.type) == (32, 8, True, "long")
    assert fmt.field("next_pid").offset == 56
    assert fmt.field("common_pid").signed and not fmt.field("common_type").signed
    assert [f.name for f in fmt.event_fields][0] == "prev_comm"
    assert fmt.print_fmt.startswith("prev_comm=%s prev_pid=%d")
    assert len(fmt.print_args) == fmt.print_fmt.count("%")
    assert fmt.print_args[0] == "REC->prev_comm" and fmt.print_args[-1] == "REC->next_prio"
    assert fmt.print_args[3].startswith("(REC->prev_state &") and "__print_flags" in fmt.print_args[3]
    assert fmt.long_size == 8


def test_sched_switch_34_arm_has_padding_and_4_byte_long() -> None:
    fmt = load(K34, "sched", "sched_switch")
    assert [f.name for f in fmt.common_fields][-1] == "common_padding"
    assert fmt.field("prev_comm").offset == 12
    st = fmt.field("prev_state")
    assert (st.offset, st.size, st.signed) == (36, 4, True)
    assert fmt.long_size == 4


def test_syscall_pointer_and_int_declared_8_bytes() -> None:
    fmt = load(K618, "syscalls", "sys_enter_openat")
    fn = fmt.field("filename")
    assert fn.is_pointer and not fn.is_string and not fn.is_user_pointer
    assert (fn.type, fn.offset, fn.size, fn.signed) == ("const char *", 24, 8, False)
    dfd = fmt.field("dfd")
    assert (dfd.type, dfd.size) == ("int", 8)  # the syscall tracer widens every argument
    rec = bytearray(48)
    struct.pack_into("<HBBi", rec, 0, fmt.id, 1, 2, -5)
    struct.pack_into("<i", rec, 8, 257)
    struct.pack_into("<4Q", rec, 16, 0xFFFFFF9C, 0x7FFD0000, 0o2000000, 0o644)
    out = fmt.decode(bytes(rec))
    assert out["common_pid"] == -5 and out["__syscall_nr"] == 257
    assert out["dfd"] == 0xFFFFFF9C and out["filename"] == 0x7FFD0000 and out["mode"] == 0o644


def test_print_fmt_of_openat_splits_casts() -> None:
    fmt = load(K618, "syscalls", "sys_enter_openat")
    assert fmt.print_args == [
        "((unsigned long)(REC->dfd))", "((unsigned long)(REC->filename))",
        "((unsigned long)(REC->flags))", "((unsigned long)(REC->mode))",
    ]


def test_kfree_skb_drop_reason_enum_only_on_618() -> None:
    new = load(K618, "skb", "kfree_skb")
    reason = new.field("reason")
    assert (reason.type, reason.size, reason.signed) == ("enum skb_drop_reason", 4, False)
    last = new.print_args[-1]
    assert last.startswith("__print_symbolic(REC->reason,") and '{ 2, "NOT_SPECIFIED" }' in last
    assert len(new.print_args) == 5
    old = load(K510, "skb", "kfree_skb")
    assert not old.has_field("reason")
    with pytest.raises(UnknownFieldError) as ei:
        old.field("reason")
    assert isinstance(ei.value, LookupError)
    with pytest.raises(LookupError) as ei2:
        new.field("protocl")
    assert "did you mean protocol?" in ei2.value.hints


def test_inet_sock_set_state_byte_arrays_are_bytes() -> None:
    fmt = load(K618, "sock", "inet_sock_set_state")
    f = fmt.field("daddr")
    assert (f.array_len, f.elem_type, f.is_string) == (4, "__u8", False)
    rec = bytearray(fmt.fixed_size)
    o = fmt.field("daddr").offset
    rec[o : o + 4] = bytes([127, 0, 0, 1])
    struct.pack_into("<H", rec, fmt.field("dport").offset, 8080)
    out = fmt.decode(bytes(rec))
    assert out["daddr"] == b"\x7f\x00\x00\x01" and out["dport"] == 8080
    assert len(out["daddr_v6"]) == 16


def _exec_record(fmt, filename: bytes, pid: int = 42):  # type: ignore[no-untyped-def]
    loc = fmt.field("filename")
    head = bytearray(fmt.fixed_size)
    struct.pack_into("<H", head, 0, fmt.id)
    body = filename + b"\0"
    start = len(head)
    struct.pack_into("<I", head, loc.offset, (len(body) << 16) | start)
    struct.pack_into("<i", head, fmt.field("pid").offset, pid)
    return bytes(head) + body


@pytest.mark.parametrize("kernel", [K618, K510, K44, K34])
def test_data_loc_string_on_each_kernel(kernel: str) -> None:
    fmt = load(kernel, "sched", "sched_process_exec")
    f = fmt.field("filename")
    assert (f.dynamic, f.is_string, f.size, f.type) == ("data_loc", True, 4, "__data_loc char[]")
    rec = _exec_record(fmt, b"/usr/bin/true")
    out = fmt.decode(rec)
    assert out["filename"] == "/usr/bin/true" and out["pid"] == 42
    # at an offset inside a larger buffer (as in a ring-buffer page)
    page = b"\xAA" * 20 + rec + b"\xBB" * 8
    assert fmt.decode(page, 20, 20 + len(rec))["filename"] == "/usr/bin/true"


def test_strings_hostile_bytes_replace_or_raw() -> None:
    fmt = load(K618, "sched", "sched_process_exec")
    rec = _exec_record(fmt, b"/tmp/\xff\x1b[31mx")
    assert fmt.decode(rec)["filename"] == "/tmp/\ufffd\x1b[31mx"
    assert fmt.decoder(raw_strings=True)(rec)["filename"] == b"/tmp/\xff\x1b[31mx"
    sw = load(K618, "sched", "sched_switch")
    rec2 = bytearray(sw.fixed_size)
    rec2[8:24] = b"bash\0garbage\0\0\0\0"
    assert sw.decode(bytes(rec2))["prev_comm"] == "bash"
    rec2[8:24] = b"A" * 16  # no NUL at all
    assert sw.decode(bytes(rec2))["prev_comm"] == "A" * 16


def test_data_loc_out_of_range_keeps_raw_word() -> None:
    fmt = load(K618, "sched", "sched_process_exec")
    rec = bytearray(_exec_record(fmt, b"/bin/sh"))
    bad = (0xFFFF << 16) | 0xFFF0
    struct.pack_into("<I", rec, fmt.field("filename").offset, bad)
    out = fmt.decode(bytes(rec))
    assert out["filename"] == bad and out["pid"] == 42
    # length running one byte past the record
    good_len = len(rec) - fmt.fixed_size
    struct.pack_into("<I", rec, fmt.field("filename").offset, ((good_len + 1) << 16) | fmt.fixed_size)
    assert isinstance(fmt.decode(bytes(rec))["filename"], int)


@pytest.mark.parametrize("cut", range(0, 40))
def test_truncated_records_never_raise(cut: int) -> None:
    fmt = load(K618, "sched", "sched_process_exec")
    rec = _exec_record(fmt, b"/usr/bin/env")[:cut]
    out = fmt.decode(rec)
    for f in fmt.fields:
        if f.offset + f.size <= cut:
            assert f.name in out
        else:
            assert f.name not in out
    if "filename" in out and cut < len(_exec_record(fmt, b"/usr/bin/env")):
        assert isinstance(out["filename"], int)


def test_hostile_random_records_never_raise() -> None:
    import random

    rnd = random.Random(1234)
    fmts = [parse_format(open(p).read()) for p in glob.glob(os.path.join(FORMATS, "*", "*", "*", "format"))]
    for fmt in fmts:
        dec = fmt.decoder()
        for _ in range(30):
            n = rnd.randrange(0, fmt.fixed_size + 40)
            dec(bytes(rnd.getrandbits(8) for _ in range(n)))


def test_data_loc_int_arrays_618() -> None:
    fmt = load(K618, "dma", "dma_map_sg")
    phys, lengths = fmt.field("phys_addrs"), fmt.field("lengths")
    assert (phys.dynamic, phys.elem_type, phys.is_string) == ("data_loc", "u64", False)
    assert lengths.elem_type == "unsigned int"
    rec = bytearray(fmt.fixed_size)
    extra = struct.pack("<2Q", 0x1000, 0x2000)
    lens = struct.pack("<3I", 1, 2, 3)
    struct.pack_into("<I", rec, phys.offset, (len(extra) << 16) | len(rec))
    struct.pack_into("<I", rec, lengths.offset, (len(lens) << 16) | (len(rec) + len(extra)))
    out = fmt.decode(bytes(rec) + extra + lens)
    assert out["phys_addrs"] == [0x1000, 0x2000] and out["lengths"] == [1, 2, 3]


def test_cpumask_data_loc_is_list_of_longs() -> None:
    fmt = load(K618, "ipi", "ipi_send_cpumask")
    f = fmt.field("cpumask")
    assert f.dynamic == "data_loc" and f.elem_type == "cpumask_t"
    rec = bytearray(fmt.fixed_size)
    struct.pack_into("<I", rec, f.offset, (8 << 16) | len(rec))
    assert fmt.decode(bytes(rec) + struct.pack("<Q", 0b1011))["cpumask"] == [0b1011]


REL = """name: foo_rel_loc
ID: 1259
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__rel_loc char[] foo;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int bar;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__rel_loc unsigned long bitmask[];\toffset:16;\tsize:4;\tsigned:0;

print fmt: "foo_rel_loc %s, %d, %s", __get_rel_str(foo), REC->bar, __get_rel_bitmask(bitmask)
"""


def test_rel_loc_offsets_count_from_end_of_field() -> None:
    # Hand-made in the shape of samples/trace_events (kernel 5.18, commit 55de2c0b5610):
    # the low 16 bits are an offset from the end of the 4-byte __rel_loc word.
    fmt = parse_format(REL, "sample")
    foo, bm = fmt.field("foo"), fmt.field("bitmask")
    assert (foo.dynamic, foo.is_string, foo.type) == ("rel_loc", True, "__rel_loc char[]")
    assert (bm.dynamic, bm.elem_type, bm.type) == ("rel_loc", "unsigned long", "__rel_loc unsigned long[]")
    s = b"hello\0"
    words = struct.pack("<Q", 0xF0F0)
    rec = bytearray(20)
    # foo data at 20: relative to 8+4=12 -> 8 ; bitmask data at 26: relative to 20 -> 6
    struct.pack_into("<I", rec, 8, (len(s) << 16) | (20 - 12))
    struct.pack_into("<i", rec, 12, -7)
    struct.pack_into("<I", rec, 16, (len(words) << 16) | (26 - 20))
    out = fmt.decode(bytes(rec) + s + words)
    assert out == {"common_type": 0, "common_flags": 0, "common_preempt_count": 0, "common_pid": 0,
                   "foo": "hello", "bar": -7, "bitmask": [0xF0F0]}
    assert fmt.print_args == ["__get_rel_str(foo)", "REC->bar", "__get_rel_bitmask(bitmask)"]


def test_flexible_arrays_new_and_old_spelling() -> None:
    new = load(K618, "ftrace", "print")
    buf = new.field("buf")
    assert (buf.array_len, buf.size, buf.is_string, buf.type) == (0, 0, True, "char[]")
    rec = bytearray(16)
    struct.pack_into("<Q", rec, 8, 0xFFFFFFFF81000000)
    out = new.decode(bytes(rec) + b"hello world\n\0\0\0")
    assert out["buf"] == "hello world\n" and out["ip"] == 0xFFFFFFFF81000000
    old = load(K34, "ftrace", "print")
    obuf = old.field("buf")
    assert (obuf.array_len, obuf.size, obuf.is_string, obuf.type) == (0, 0, True, "char")
    rec = bytearray(16)
    struct.pack_into("<I", rec, 12, 0xC0008000)
    assert old.decode(bytes(rec) + b"hi\0\0")["buf"] == "hi"
    # 32-bit kernel: the long-size hint comes from header_page's commit
    hp = parse_header_page(text_of(K34, "header_page"))
    ks = load(K34, "ftrace", "kernel_stack", long_size=hp.commit_size)
    assert ks.long_size == 4 and ks.field("caller").array_len == 0
    rec = bytearray(16) + struct.pack("<3I", 1, 2, 3)
    assert ks.decode(bytes(rec))["caller"] == [1, 2, 3]
    fn = load(K618, "ftrace", "function")
    args = fn.field("args")
    assert args.array_len == 0 and args.type == "unsigned long[]"
    assert fn.decode(bytes(24) + struct.pack("<2Q", 5, 6))["args"] == [5, 6]


def test_fixed_int_array_is_list() -> None:
    ks = load(K618, "ftrace", "kernel_stack")
    f = ks.field("caller")
    assert (f.array_len, f.size, f.type) == (8, 64, "unsigned long[8]")
    rec = bytearray(16) + struct.pack("<8Q", *range(8))
    assert ks.decode(bytes(rec))["caller"] == list(range(8))
    fmt = load(K618, "raw_syscalls", "sys_enter")
    assert fmt.field("args").array_len == 6
    assert fmt.print_fmt.count("%") == 7


def test_print_fmt_adjacent_literals_and_escapes() -> None:
    ks = load(K618, "ftrace", "kernel_stack")
    assert ks.print_fmt.startswith("\t=> %ps\n\t=> %ps\n")
    assert ks.print_fmt.count("%ps") == 8 and len(ks.print_args) == 8
    assert ks.print_args[0] == "(void *)REC->caller[0]"
    assert split_args('a, f(b, c), "x,y", \'\\,\', {1, 2}') == ["a", "f(b, c)", '"x,y"', "'\\,'", "{1, 2}"]
    assert split_args("") == []


def test_header_page_per_kernel() -> None:
    hp = parse_header_page(text_of(K618, "header_page"))
    assert (hp.commit_offset, hp.commit_size, hp.data_offset, hp.data_size) == (8, 8, 16, 4080)
    assert hp.overwrite_offset == 8 and hp.page_size == 4096
    hp34 = parse_header_page(text_of(K34, "header_page"))
    assert (hp34.commit_size, hp34.data_offset, hp34.data_size, hp34.page_size) == (4, 12, 4084, 4096)
    # the overlapping commit/overwrite fields decode independently
    from undertow.kernel.formats import EventFormat

    page = struct.pack("<Qq", 123456789, (1 << 63 >> 32) | 0x10) + bytes(16)
    out = EventFormat("", "header_page", 0, hp.fields).decode(page)
    assert out["timestamp"] == 123456789 and out["overwrite"] == 0x10
    with pytest.raises(FormatError):
        parse_header_page("nothing here")


def test_header_event_time_stamp_only_on_newer_kernels() -> None:
    new = parse_header_event(text_of(K618, "header_event"))
    assert (new.type_len_bits, new.time_delta_bits, new.array_bits) == (5, 27, 32)
    assert (new.padding, new.time_extend, new.time_stamp, new.data_max_type_len) == (29, 30, 31, 28)
    assert parse_header_event(text_of(K510, "header_event")).time_stamp == 31
    assert parse_header_event(text_of(K44, "header_event")).time_stamp is None
    assert parse_header_event(text_of(K34, "header_event")).time_stamp is None
    with pytest.raises(FormatError):
        parse_header_event("")


def test_module_load_only_recorded_where_modules_exist() -> None:
    fmt = load(K44, "module", "module_load")
    name = fmt.field("name")
    assert (name.offset, name.dynamic, name.is_string) == (12, "data_loc", True)
    assert fmt.print_args[0] == "__get_str(name)"
    assert not os.path.exists(os.path.join(FORMATS, K618, "module"))


def test_not_a_format_raises() -> None:
    with pytest.raises(FormatError) as ei:
        parse_format("hello\nworld\n")
    assert ei.value.hints
    with pytest.raises(ValueError):
        parse_format("")


def test_missing_signed_attribute_is_inferred() -> None:
    fmt = parse_format("name: x\nID: 3\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n"
                       "\tfield:int v;\toffset:4;\tsize:4;\n")
    assert not fmt.field("common_type").signed and fmt.field("v").signed
    assert fmt.decode(struct.pack("<HHi", 1, 0, -2)) == {"common_type": 1, "v": -2}


def test_decoder_is_cached_and_big_endian_option() -> None:
    fmt = load(K618, "sched", "sched_process_fork")
    assert fmt.decoder() is fmt.decoder()
    be = fmt.decoder(byteorder="big")
    rec = bytearray(fmt.fixed_size)
    struct.pack_into(">i", rec, fmt.field("child_pid").offset, 77)
    assert be(bytes(rec))["child_pid"] == 77
