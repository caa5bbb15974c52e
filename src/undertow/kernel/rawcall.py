"""Calling the kernel through ctypes: the syscall numbers of bpf(2) and perf_event_open(2),
libc's ``syscall()``, buffers kept alive while the kernel reads them, errno names and
hints for people, and the file descriptors the calls return (the caller owns them).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple, Union

from ..errors import BPFError

__all__ = ["syscall_numbers", "errno_name", "close_fd", "closing_fd"]

# Syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h
# for the architectures using the generic table).
_SYSCALLS = {
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "arm64": (280, 241),
    "riscv64": (280, 241),
    "loongarch64": (280, 241),
}

_libc = None


def syscall_fn():  # type: ignore[no-untyped-def]
    """libc's ``syscall()`` (errno kept for :func:`ctypes.get_errno`), loaded once."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


_THIS_MACHINE: List[Tuple[int, int]] = []


def syscall_numbers(machine: Optional[str] = None) -> Tuple[int, int]:
    """``(SYS_bpf, SYS_perf_event_open)`` for ``machine`` (default: this one).

    Raises :class:`BPFError` on an architecture undertow does not know.
    """
    if machine is None and _THIS_MACHINE:
        return _THIS_MACHINE[0]  # every bpf() call asks: uname(2) once per process
    m = machine or os.uname().machine
    try:
        if machine is None:
            _THIS_MACHINE.append(_SYSCALLS[m])
        return _SYSCALLS[m]
    except KeyError:
        raise BPFError(
            f"undertow does not know the bpf(2) syscall number on {m}",
            errno=_errno.ENOSYS,
            hints=["use the ftrace backend (--backend ftrace)"],
        ) from None


def errno_name(err: int) -> str:
    """``EPERM (Operation not permitted)`` for ``errno.EPERM``."""
    # Python names 95 ENOTSUP; the kernel sources (and people reading them) say EOPNOTSUPP.
    name = "EOPNOTSUPP" if err == _errno.EOPNOTSUPP else _errno.errorcode.get(err, "E?")
    return f"{name} ({os.strerror(err)})"


def errno_hints(err: int) -> List[str]:
    if err == _errno.EPERM:
        if os.geteuid() != 0:
            return ["bpf(2) needs root (or CAP_BPF with CAP_PERFMON for tracing programs)"]
        return ["the kernel refused it although we are root (lockdown, an LSM, or a sysctl)"]
    if err == _errno.EACCES:
        return ["the verifier refused the program; --debug shows its log"]
    if err == _errno.ENOSYS:
        return ["this kernel was built without bpf(2) (CONFIG_BPF_SYSCALL=n): "
                "use the ftrace backend"]
    if err == _errno.E2BIG:
        return ["the kernel does not know a field undertow set: it is older than that feature"]
    if err == _errno.EINVAL:
        return ["the kernel does not support this combination (too old, or a config option is off)"]
    return []


class Pinned:
    """Keeps ctypes buffers alive while the kernel reads the pointers to them."""

    def __init__(self) -> None:
        self._keep: List[object] = []

    def buf(self, data: Union[bytes, bytearray, None]) -> int:
        if data is None:
            return 0
        b = ctypes.create_string_buffer(bytes(data), len(data) or 1)
        self._keep.append(b)
        return ctypes.addressof(b)

    def out(self, size: int) -> Tuple[int, "ctypes.Array[ctypes.c_char]"]:
        b = ctypes.create_string_buffer(max(1, size))
        self._keep.append(b)
        return ctypes.addressof(b), b

    def cstr(self, text: Union[str, bytes, None]) -> int:
        if text is None:
            return 0
        raw = os.fsencode(text) if isinstance(text, str) else bytes(text)  # paths: any bytes
        return self.buf(raw + b"\0")


def close_fd(fd: Optional[int]) -> None:
    """Close ``fd`` if it is a valid descriptor; never raises."""
    if fd is None or fd < 0:
        return
    try:
        os.close(fd)
    except OSError:
        pass


class closing_fd:  # noqa: N801 - used like contextlib.closing (not imported: start-up)
    """``with closing_fd(prog_load(...)) as fd:`` closes the fd on every exit path."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        close_fd(self.fd)
