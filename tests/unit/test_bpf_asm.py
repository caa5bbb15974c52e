"""Assembler: encoding goldens (from the ISA spec), labels, relocations, pitfalls, listings."""

import pytest

from undertow.backends.bpf import insn as I
from undertow.backends.bpf.asm import Asm, AsmError, Reg, bounded_len, null_check, ret0_exit, zero_stack
from undertow.backends.bpf.disasm import disassemble
from undertow.errors import Span


def hexs(prog):
    b = prog.bytes
    return [b[i:i + 8].hex(" ") for i in range(0, len(b), 8)]


def test_encoding_goldens():
    a = Asm()
    a.mov64(I.R1, 42)                       # b7: ALU64|MOV|K
    a.mov64(I.R6, Reg(I.R1))                # bf: ALU64|MOV|X
    a.add64(I.R1, -8)                       # 07
    a.ldx(I.W, I.R2, I.R6, 8)               # 61: LDX|W|MEM
    a.stx(I.DW, I.FP, -16, I.R2)            # 7b: STX|DW|MEM
    a.st(I.B, I.FP, -1, 7)                  # 72: ST|B|MEM
    a.call(I.Helper.probe_read_kernel)      # 85 imm 113
    a.atomic_add(I.DW, I.R0, 0, I.R1)       # db: STX|DW|ATOMIC
    a.endian(I.R3, 16, big=True)            # dc imm 16
    a.exit_()                               # 95
    assert hexs(a.assemble()) == [
        "b7 01 00 00 2a 00 00 00",
        "bf 16 00 00 00 00 00 00",
        "07 01 00 00 f8 ff ff ff",
        "61 62 08 00 00 00 00 00",
        "7b 2a f0 ff 00 00 00 00",
        "72 0a ff ff 07 00 00 00",
        "85 00 00 00 71 00 00 00",
        "db 10 00 00 00 00 00 00",
        "dc 03 00 00 10 00 00 00",
        "95 00 00 00 00 00 00 00",
    ]


def test_labels_forward_and_backward_with_wide_insns():
    a = Asm()
    a.label("top")
    a.jeq(I.R0, 0, "out")          # slot 0 -> out at slot 4: off 3
    a.ld_imm64(I.R1, 1 << 40)      # slots 1, 2
    a.ja("top")                    # slot 3 -> 0: off -4
    a.label("out")
    ret0_exit(a)
    p = a.assemble()
    assert [ins[3] for ins in p.insns][:4] == [3, 0, 0, -4]
    assert p.insns[1][4] == 0 and p.insns[2][4] == 1 << 8     # low/high halves
    assert p.labels == {"top": 0, "out": 4}
    with pytest.raises(AsmError, match="undefined label"):
        Asm().ja("nowhere").assemble()
    with pytest.raises(AsmError, match="twice"):
        Asm().label("x").label("x")


def test_immediates_never_truncate():
    with pytest.raises(AsmError, match="signed 32-bit"):
        Asm().mov64(I.R1, 1 << 31)
    with pytest.raises(AsmError):
        Asm().jeq(I.R1, 0x1_0000_0000, "x")
    a = Asm()
    a.mov_imm(I.R1, 5).mov_imm(I.R2, -5).mov_imm(I.R3, 0xFFFF_FFFF).mov_imm(I.R4, 1 << 40)
    p = a.assemble()
    codes = [ins[0] for ins in p.insns]
    assert codes == [0xB4, 0xB7, 0x18, 0x00, 0x18, 0x00]   # mov32, mov64, ld_imm64 x2
    assert (p.insns[2][4] & 0xFFFFFFFF, p.insns[3][4]) == (0xFFFFFFFF, 0)


def test_map_relocation_and_origins():
    a = Asm()
    a.origin = node = type("Node", (), {"span": Span(3, 9)})()
    a.ld_map_fd(I.R1, "counts")
    a.origin = None
    ret0_exit(a)
    p = a.assemble()
    assert p.relocs == [(0, "counts")] and p.insns[0][2] == I.PSEUDO_MAP_FD
    raw = p.relocate({"counts": 7})
    assert raw[:8].hex(" ") == "18 11 00 00 07 00 00 00"
    assert p.origin_of(0) is node and p.origin_of(1) is node and p.origin_of(2) is None
    with pytest.raises(AsmError, match="no fd"):
        p.relocate({})


def test_run_time_values_are_patched_at_load():
    """The loading process's pid and the session's start time are relocations, not
    constants: a compiled program can be loaded by another process (the program cache)."""
    a = Asm()
    a.jeq(I.R0, 1234, "out").value_ref("self_pid")
    a.ld_imm64(I.R1, 5 << 40).value_ref("start_ns")
    a.label("out")
    ret0_exit(a)
    p = a.assemble()
    assert p.relocs == [(0, ("value", "self_pid")), (1, ("value", "start_ns"))]
    assert p.insns[0][4] == 1234  # the placeholder: what a listing shows
    raw = p.relocate({("value", "self_pid"): 4321, ("value", "start_ns"): (7 << 40) + 0x89ABCDEF})
    assert raw[:8].hex(" ") == "15 00 02 00 e1 10 00 00"           # jeq r0, 4321, +2
    assert raw[8:24].hex(" ") == "18 01 00 00 ef cd ab 89 00 00 00 00 00 07 00 00"
    with pytest.raises(AsmError, match="no value"):
        p.relocate({("value", "self_pid"): 1})
    with pytest.raises(AsmError, match="signed 32-bit"):
        p.relocate({("value", "self_pid"): 1 << 40, ("value", "start_ns"): 0})
    with pytest.raises(AsmError):
        Asm().value_ref("x")


def test_pitfall_helpers():
    a = Asm()
    zero_stack(a, -16, 12)
    p = a.assemble()
    assert [(ins[0], ins[3]) for ins in p.insns] == [(0x7A, -16), (0x62, -8)]   # st DW then st W
    with pytest.raises(AsmError):
        zero_stack(Asm(), 8, 8)
    with pytest.raises(AsmError):
        bounded_len(Asm(), I.R2, 100)
    b = Asm()
    bounded_len(b, I.R2, 255)
    null_check(b, I.R0, "x")
    b.label("x")
    ret0_exit(b)
    assert b.assemble().insns[0][:1] == (0x57,)


def test_disassembly_of_every_class():
    a = Asm()
    a.mov32(I.R1, 1)
    a.mov64(I.R2, Reg(I.R10))
    a.add64(I.R2, -8)
    a.neg64(I.R3)
    a.ldx(I.H, I.R4, I.R6, 2)
    a.stx(I.W, I.FP, -4, I.R4)
    a.st(I.DW, I.FP, -8, 0)
    a.atomic_add(I.W, I.R0, 0, I.R1, fetch=True)
    a.endian(I.R5, 32, big=False)
    a.ld_map_fd(I.R1, "m")
    a.ld_imm64(I.R2, 0x1122334455667788)
    a.jump("jsgt", I.R1, Reg(I.R2), "end", is32=True)
    a.call(I.Helper.ringbuf_reserve)
    a.label("end")
    a.exit_()
    p = a.assemble()
    text = disassemble(p.relocate({"m": 5}), labels=p.labels)
    for want in ["w1 = 0x1", "r2 = r10", "r2 += -0x8", "r3 = -r3", "r4 = *(u16 *)(r6 +2)",
                 "*(u32 *)(r10 -4) = r4", "*(u64 *)(r10 -8) = 0x0", "lock *(u32 *)(r0 +0) += r1 fetch",
                 "r5 = le32 r5", "r1 = map[fd:5]", "r2 = 0x1122334455667788 ll",
                 "if w1 s> w2 goto pc+1", "call bpf_ringbuf_reserve#131", "end:", "exit"]:
        assert want in text, want
