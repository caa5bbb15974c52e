"""Register tables of undertow.kernel.arch (values from the kernel headers, see arch.py)."""

import pytest

from undertow.errors import FeatureUnavailableError, ResolveError, UndertowError
from undertow.kernel import arch as A


def test_x86_64_pt_regs_offsets():
    x = A.get_arch("x86_64")
    # struct pt_regs, arch/x86/include/asm/ptrace.h
    expected = dict(r15=0, r14=8, r13=16, r12=24, bp=32, bx=40, r11=48, r10=56, r9=64, r8=72, ax=80,
                    cx=88, dx=96, si=104, di=112, orig_ax=120, ip=128, cs=136, flags=144, sp=152, ss=160)
    assert dict(x.regs) == expected
    assert x.pt_regs_size == 168
    assert x.elf_machine == 62


def test_x86_64_abi_registers():
    x = A.X86_64
    assert [x.arg_reg(i) for i in range(6)] == ["di", "si", "dx", "cx", "r8", "r9"]
    assert x.ret_reg == "ax" and x.stack_reg == "sp" and x.ip_reg == "ip"


@pytest.mark.parametrize("spelling,canon,offset", [
    ("%di", "di", 112), ("di", "di", 112), ("%rdi", "di", 112), ("%edi", "di", 112), ("RDI", "di", 112),
    ("%rax", "ax", 80), ("%rip", "ip", 128), ("%pc", "ip", 128), ("%rsp", "sp", 152), ("%r8d", "r8", 72),
])
def test_x86_64_aliases(spelling, canon, offset):
    assert A.X86_64.canonical_reg(spelling) == canon
    assert A.X86_64.reg_offset(spelling) == offset
    assert A.X86_64.ftrace_reg(spelling) == "%" + canon


def test_aarch64_tables():
    a = A.get_arch("arm64")
    assert a is A.AARCH64 and a.name == "aarch64" and a.elf_machine == 183
    assert a.arg_regs == tuple(f"x{i}" for i in range(8))
    assert a.ret_reg == "x0"
    # struct user_pt_regs: regs[31], sp, pc, pstate
    assert a.reg_offset("x0") == 0 and a.reg_offset("%x7") == 56 and a.reg_offset("x30") == 240
    assert a.reg_offset("sp") == 248 and a.reg_offset("%pc") == 256 and a.reg_offset("pstate") == 264
    assert a.reg_offset("lr") == 240 and a.reg_offset("%ip") == 256 and a.reg_offset("w3") == 24


def test_arg_past_registers_is_an_error():
    with pytest.raises(ResolveError) as ei:
        A.X86_64.arg_reg(6)
    assert "stack" in " ".join(ei.value.hints)
    assert A.AARCH64.arg_reg(7) == "x7"
    with pytest.raises(ResolveError):
        A.AARCH64.arg_reg(8)
    with pytest.raises(ResolveError):
        A.X86_64.arg_reg(-1)


def test_unknown_register_suggests():
    with pytest.raises(ResolveError) as ei:
        A.X86_64.reg_offset("%rdz")
    assert isinstance(ei.value, LookupError)
    assert any("rdx" in h or "rdi" in h for h in ei.value.hints)
    with pytest.raises(ResolveError):
        A.AARCH64.reg_offset("%di")


@pytest.mark.parametrize("name,canon", [("x86_64", "x86_64"), ("amd64", "x86_64"), ("AArch64", "aarch64"),
                                        ("arm64", "aarch64")])
def test_get_arch_names(name, canon):
    assert A.get_arch(name).name == canon


def test_get_arch_unknown_lists_supported():
    with pytest.raises(FeatureUnavailableError) as ei:
        A.get_arch("mips")
    assert isinstance(ei.value, UndertowError)
    text = ei.value.render()
    assert "mips" in text and "x86_64" in text and "aarch64" in text


def test_current_arch(monkeypatch):
    class U:
        machine = "aarch64"

    monkeypatch.setattr(A.os, "uname", lambda: U())
    assert A.current_arch() is A.AARCH64
    U.machine = "riscv64"
    with pytest.raises(FeatureUnavailableError):
        A.current_arch()


def test_arch_for_machine_and_hashable():
    assert A.arch_for_machine(62) is A.X86_64
    assert A.arch_for_machine(183) is A.AARCH64
    assert A.arch_for_machine(20) is None
    assert len({A.X86_64, A.AARCH64, A.get_arch("amd64")}) == 2
    assert set(A.ARCHES) == {"x86_64", "aarch64"}
