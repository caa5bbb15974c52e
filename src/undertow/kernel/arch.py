"""Per-architecture register tables: names, argument registers, ``pt_regs`` offsets.

Two consumers need these facts:

- the ftrace backend spells registers in kprobe/uprobe fetch-args as ``%NAME``
  (Documentation/trace/kprobetrace.rst, "FETCHARGS": ``%REG``). The accepted
  names are the kernel's ``regoffset_table`` entries read by
  ``regs_query_register_offset()`` (arch/x86/kernel/ptrace.c,
  arch/arm64/kernel/ptrace.c);
- the BPF backend reads registers from the program context, a ``struct pt_regs``
  (x86_64: arch/x86/include/asm/ptrace.h; aarch64: the ``struct user_pt_regs``
  that opens ``struct pt_regs`` in arch/arm64/include/asm/ptrace.h, uapi
  layout in arch/arm64/include/uapi/asm/ptrace.h), so it needs byte offsets.

The calling conventions (System V AMD64 ABI: rdi rsi rdx rcx r8 r9, return in
rax; AAPCS64: x0..x7, return in x0) give the argument registers.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Mapping, Optional, Tuple

from ..errors import FeatureUnavailableError, ResolveError, did_you_mean

__all__ = ["Arch", "ARCHES", "X86_64", "AARCH64", "current_arch", "get_arch", "EM_X86_64", "EM_AARCH64"]

EM_386 = 3
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183

#: e_machine values of some architectures undertow does not support, for messages.
ELF_MACHINE_NAMES: Dict[int, str] = {
    2: "sparc", EM_386: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390",
    EM_ARM: "arm", 43: "sparcv9", 50: "ia64", EM_X86_64: "x86_64", EM_AARCH64: "aarch64",
    243: "riscv", 247: "bpf", 258: "loongarch",
}


class Arch:
    """The register facts of one architecture.

    ``arg_regs`` and ``ret_reg``, ``stack_reg``, ``ip_reg`` use the ftrace
    spelling without ``%`` (``di``, ``x0``). ``regs`` maps every ftrace register
    name to its byte offset in the ``struct pt_regs`` a BPF program receives as
    its context; ``aliases`` maps other spellings (``rdi``, ``edi``, ``lr``,
    ``pc``...) to those names.  A 32-bit alias (``edi``, ``w0``) names the
    same 8-byte slot: on these little-endian machines the low half sits at the
    same offset, the caller picks the width.
    """

    __slots__ = ("name", "elf_machine", "arg_regs", "ret_reg", "stack_reg", "ip_reg", "regs", "aliases",
                 "uname_machines", "frame_reg", "pt_regs_size", "reg_size", "bits", "endian")

    def __init__(self, name: str, elf_machine: int, arg_regs: Tuple[str, ...], ret_reg: str, stack_reg: str,
                 ip_reg: str, regs: Mapping[str, int], aliases: Mapping[str, str],
                 uname_machines: Tuple[str, ...] = (), frame_reg: str = "", pt_regs_size: int = 0,
                 reg_size: int = 8, bits: int = 64, endian: str = "little") -> None:
        self.name, self.elf_machine, self.arg_regs = name, elf_machine, arg_regs
        self.ret_reg, self.stack_reg, self.ip_reg = ret_reg, stack_reg, ip_reg
        self.regs, self.aliases, self.uname_machines = regs, aliases, uname_machines
        self.frame_reg, self.pt_regs_size, self.reg_size = frame_reg, pt_regs_size, reg_size
        self.bits, self.endian = bits, endian

    def canonical_reg(self, name: str) -> str:
        """The ftrace spelling of register ``name`` (``%rdi``, ``rdi``, ``%di`` -> ``di``).

        Raises :class:`undertow.errors.ResolveError` naming the closest registers.
        """
        n = name.strip()
        if n.startswith("%"):
            n = n[1:]
        n = n.lower()
        if n in self.regs:
            return n
        if n in self.aliases:
            return self.aliases[n]
        known = list(self.regs) + list(self.aliases)
        raise ResolveError(
            f"unknown register '{name}' on {self.name}",
            hints=[did_you_mean(n, known), f"{self.name} registers: " + " ".join(self.regs)],
        )

    def reg_offset(self, name: str) -> int:
        """Byte offset of register ``name`` in the ``struct pt_regs`` context of a BPF program."""
        return self.regs[self.canonical_reg(name)]

    def ftrace_reg(self, name: str) -> str:
        """The fetch-arg spelling, with ``%`` (``rdi`` -> ``%di``)."""
        return "%" + self.canonical_reg(name)

    def arg_reg(self, i: int) -> str:
        """The register (ftrace name, no ``%``) carrying integer argument ``i`` (0-based).

        Raises :class:`undertow.errors.ResolveError` past the last register
        argument: later arguments are on the stack.
        """
        if not isinstance(i, int) or i < 0:
            raise ResolveError(f"argument index must be a non-negative integer, not {i!r}")
        if i >= len(self.arg_regs):
            n = len(self.arg_regs)
            raise ResolveError(
                f"argument {i} is not passed in a register on {self.name} (only arg0..arg{n - 1} are)",
                hints=[
                    "later arguments are on the stack: read them with a stack fetch "
                    "($stackN in a probe line) or name them through the function's BTF arguments"
                ],
            )
        return self.arg_regs[i]


def _x86_64() -> Arch:
    # struct pt_regs, arch/x86/include/asm/ptrace.h (CONFIG_X86_64), 8 bytes each.
    order = ("r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss").split()
    regs = {n: 8 * i for i, n in enumerate(order)}
    aliases: Dict[str, str] = {}
    for short in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip"):
        aliases["r" + short] = short  # rax rbx ... rsp rip
        if short != "ip":
            aliases["e" + short] = short  # eax ... esp (same slot, low 32 bits)
    for k in range(8, 16):
        aliases[f"r{k}d"] = f"r{k}"
    aliases.update({"eflags": "flags", "rflags": "flags", "pc": "ip", "orig_rax": "orig_ax"})
    return Arch(
        name="x86_64",
        elf_machine=EM_X86_64,
        arg_regs=("di", "si", "dx", "cx", "r8", "r9"),
        ret_reg="ax",
        stack_reg="sp",
        ip_reg="ip",
        regs=regs,
        aliases=aliases,
        uname_machines=("x86_64", "amd64"),
        frame_reg="bp",
        pt_regs_size=8 * len(order),
    )


def _aarch64() -> Arch:
    # struct user_pt_regs { __u64 regs[31]; __u64 sp; __u64 pc; __u64 pstate; },
    # arch/arm64/include/uapi/asm/ptrace.h; struct pt_regs starts with it.
    regs = {f"x{i}": 8 * i for i in range(31)}
    regs.update({"sp": 248, "pc": 256, "pstate": 264})
    aliases = {f"w{i}": f"x{i}" for i in range(31)}
    aliases.update({"lr": "x30", "fp": "x29", "ip": "pc", "r0": "x0"})
    return Arch(
        name="aarch64",
        elf_machine=EM_AARCH64,
        arg_regs=tuple(f"x{i}" for i in range(8)),
        ret_reg="x0",
        stack_reg="sp",
        ip_reg="pc",
        regs=regs,
        aliases=aliases,
        uname_machines=("aarch64", "arm64"),
        frame_reg="x29",
        pt_regs_size=272,
    )


X86_64 = _x86_64()
AARCH64 = _aarch64()

#: Supported architectures by canonical name.
ARCHES: Dict[str, Arch] = {X86_64.name: X86_64, AARCH64.name: AARCH64}


def get_arch(name: str) -> Arch:
    """The :class:`Arch` for ``name``: a canonical name or a ``uname -m`` spelling
    (``x86_64``, ``amd64``, ``aarch64``, ``arm64``), case-insensitive.

    Raises :class:`undertow.errors.FeatureUnavailableError` listing the supported ones.
    """
    n = (name or "").strip().lower()
    for arch in ARCHES.values():
        if n == arch.name or n in arch.uname_machines:
            return arch
    supported = ", ".join(f"{a.name} ({'/'.join(a.uname_machines)})" for a in ARCHES.values())
    raise FeatureUnavailableError(
        "arch",
        f"unsupported architecture '{name}'",
        hints=[f"undertow knows the registers of: {supported}"],
    )


def arch_for_machine(e_machine: int) -> Optional[Arch]:
    """The supported :class:`Arch` whose ELF ``e_machine`` is this, or ``None``."""
    for arch in ARCHES.values():
        if arch.elf_machine == e_machine:
            return arch
    return None


def current_arch() -> Arch:
    """The architecture of the running machine, from ``os.uname().machine``."""
    return get_arch(os.uname().machine)
