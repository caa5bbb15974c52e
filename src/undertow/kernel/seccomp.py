"""A seccomp filter that stops a process only at the syscalls being traced (as
``strace --seccomp-bpf`` does), built as classic BPF in Python and installed with prctl(2).

Documentation/userspace-api/seccomp_filter.rst: the filter sees ``struct seccomp_data``
(``int nr`` at offset 0, ``__u32 arch`` at 4) and returns ``SECCOMP_RET_TRACE`` (the tracer
gets a ``PTRACE_EVENT_SECCOMP`` stop before the syscall runs) or ``SECCOMP_RET_ALLOW``.
Syscalls of another ABI (a 32-bit ``int 0x80`` on x86_64, x32's numbers with bit 30 set)
are allowed untraced: the numbers traced are the native ones. Installing needs
``PR_SET_NO_NEW_PRIVS`` (or CAP_SYS_ADMIN); a filter cannot be removed, and with no tracer a
``SECCOMP_RET_TRACE`` syscall fails with ENOSYS: only a process undertow starts and traces
to its end gets one.
"""

from __future__ import annotations

import ctypes
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Iterable, List

__all__ = ["build_filter", "install_filter", "RET_TRACE", "RET_ALLOW"]

# include/uapi/linux/seccomp.h, include/uapi/linux/filter.h, include/uapi/linux/prctl.h
RET_ALLOW = 0x7FFF0000
RET_TRACE = 0x7FF00000
BPF_LD_W_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35      # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06      # BPF_RET | BPF_K
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
X32_SYSCALL_BIT = 0x40000000
MAX_INSNS = 4096      # BPF_MAXINSNS

_INSN = struct.Struct("=HBBI")


def build_filter(numbers: "Iterable[int]", audit_arch: int) -> List[tuple]:
    """The filter's instructions ``(code, jt, jf, k)``: other ABIs and x32 numbers allowed,
    then for each traced number ``jeq nr -> ret TRACE``, finally ``ret ALLOW``. Each test
    jumps over the single ``ret`` after it (offsets stay under 256 whatever the count)."""
    nrs = sorted(set(int(n) for n in numbers))
    prog = [
        (BPF_LD_W_ABS, 0, 0, 4),                  # A = seccomp_data.arch
        (BPF_JEQ_K, 1, 0, audit_arch),            # native ABI: go on
        (BPF_RET_K, 0, 0, RET_ALLOW),
        (BPF_LD_W_ABS, 0, 0, 0),                  # A = seccomp_data.nr
        (BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),       # x32 (x86_64): not traced
        (BPF_RET_K, 0, 0, RET_ALLOW),
    ]
    for nr in nrs:
        prog.append((BPF_JEQ_K, 0, 1, nr))
        prog.append((BPF_RET_K, 0, 0, RET_TRACE))
    prog.append((BPF_RET_K, 0, 0, RET_ALLOW))
    if len(prog) > MAX_INSNS:
        raise ValueError(f"a seccomp filter of {len(prog)} instructions is over the kernel's {MAX_INSNS}")
    return prog


def encode(prog: "List[tuple]") -> bytes:
    """The instructions as ``struct sock_filter`` array bytes."""
    return b"".join(_INSN.pack(*i) for i in prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_filter(prog: "List[tuple]") -> None:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1)`` then ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
    &prog)`` on the calling thread (the child undertow forked, before its execve).
    Raises OSError."""
    from .ptrace import libc

    lib = libc()
    raw = ctypes.create_string_buffer(encode(prog))
    fprog = _SockFprog(len(prog), ctypes.addressof(raw))
    if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS)")
    if lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_SECCOMP)")
