"""Assembled programs are accepted (or rejected, for the right reason) by the real verifier."""

import os

import pytest

from undertow.backends.bpf import insn as I
from undertow.backends.bpf.asm import Asm, Reg, ret0_exit, zero_stack
from undertow.errors import BPFError, VerifierError
from undertow.kernel import syscalls as sc


def load(prog, fds=None):
    raw = prog.relocate(fds or {})
    return sc.prog_load(sc.ProgType.TRACEPOINT, raw, license="GPL", name="ut_asm")


def test_map_counter_program_loads():
    try:
        mfd = sc.map_create(sc.MapType.HASH, 8, 8, 16)
    except BPFError as e:
        pytest.skip(f"cannot create BPF maps here: {e}")
    try:
        a = Asm()
        zero_stack(a, -8, 8)
        a.call(I.Helper.get_current_pid_tgid)
        a.stx(I.DW, I.FP, -8, I.R0)
        a.ld_map_fd(I.R1, "m")
        a.mov64(I.R2, Reg(I.R10))
        a.add64(I.R2, -8)
        a.call(I.Helper.map_lookup_elem)
        a.jeq(I.R0, 0, "out")
        a.mov64(I.R1, 1)
        a.atomic_add(I.DW, I.R0, 0, I.R1)
        a.label("out")
        ret0_exit(a)
        fd = load(a.assemble(), {"m": mfd})
        os.close(fd)
    finally:
        os.close(mfd)


def test_missing_r0_is_rejected_with_log():
    a = Asm()
    a.exit_()
    with pytest.raises(VerifierError) as ei:
        load(a.assemble())
    assert "R0" in (ei.value.log + ei.value.message)
