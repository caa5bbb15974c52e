"""Tracepoint code generation against a recorded format (no kernel needed)."""

import os
import struct

import pytest

from undertow.backends.bpf.codegen import HEADER, Unsupported, compile_tracepoint, decode_record
from undertow.backends.bpf.disasm import disassemble
from undertow.kernel.formats import parse_format
from undertow.lang import ir
from undertow.lang.types import IntTy, PtrTy

HERE = os.path.dirname(os.path.abspath(__file__))
FMT = os.path.join(HERE, "..", "fixtures", "formats")


def openat_format():
    for root, _dirs, files in os.walk(FMT):
        if root.endswith(os.path.join("syscalls", "sys_enter_openat")) and "format" in files:
            return parse_format(open(os.path.join(root, "format")).read(), "syscalls", "sys_enter_openat")
    pytest.skip("no recorded sys_enter_openat format")


def probe(filter_=None, names=("filename", "flags")):
    fmt = openat_format()
    fields = []
    for n in names:
        fe = ir.Field(n, fmt.field(n))
        fe.type = PtrTy(IntTy(1, True, "char", is_char=True), "user") if n == "filename" else IntTy(4, True, "int")
        fields.append(ir.EmitField(n, fe))
    return ir.Probe([ir.AttachPoint("tracepoint", "syscalls:sys_enter_openat")], filter_, [ir.Emit(fields)],
                    name="syscalls:sys_enter_openat")


def fref(name):
    return ir.Field(name)


def test_program_shape_and_string_filter():
    long_name = "/" + "x" * 100
    p = probe(ir.Binary("&&", ir.Binary("==", fref("filename"), ir.Const(long_name)),
                        ir.Unary("!", ir.Binary("<", fref("flags"), ir.Const(0)))))
    pc = compile_tracepoint(p, p.attach[0], 3, self_pid=1234)
    text = disassemble(pc.program.bytes, labels=pc.program.labels)
    assert "if r0 == 0x4d2 goto" in text                       # own pid excluded
    assert "call bpf_probe_read_user_str#114" in text
    assert "call bpf_ringbuf_discard#133" in text and "call bpf_ringbuf_submit#132" in text
    slot = {s.name: s for s in pc.slots}["filename"]
    assert slot.size >= len(long_name) + 1                     # room for the literal
    assert text.count("r1 = *(u8 *)(r7") == len(long_name) + 1  # byte-wise compare incl. NUL


def test_record_decoding():
    p = probe()
    pc = compile_tracepoint(p, p.attach[0], 0, None)
    rec = bytearray(pc.record_size)
    HEADER.pack_into(rec, 0, 123, 10, 11, b"cat\x00", 0, 0b1, 1)
    s = {x.name: x for x in pc.slots}
    rec[s["filename"].offset:s["filename"].offset + 5] = b"/etc\x00"
    struct.pack_into("<q", rec, s["flags"].offset, -1)
    ts, cpu, tgid, tid, comm, fields, errors = decode_record(memoryview(bytes(rec)), pc)
    assert (ts, cpu, tgid, tid, comm) == (123, 1, 10, 11, "cat")
    assert fields["filename"] == "/etc" and "filename" in errors   # error bit 0 set


def test_unsupported_nodes_are_refused_with_spans():
    p = probe(ir.Binary("==", ir.Binary("+", fref("flags"), ir.Const(1)), ir.Const(2)).at(None))
    with pytest.raises(Unsupported):
        compile_tracepoint(p, p.attach[0], 0, None)
    k = ir.Probe([ir.AttachPoint("kprobe", "tcp_connect")], None, [ir.Emit([])])
    with pytest.raises(Unsupported, match="kprobe"):
        compile_tracepoint(k, k.attach[0], 0, None)
