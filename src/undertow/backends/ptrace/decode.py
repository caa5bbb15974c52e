"""Syscall values as the other backends show them, and what only ptrace adds.

A register holds each argument as 64 bits; the event field's type (from the syscall's format,
resolved by the probe-line resolver) says how the BPF backend shows it: an ``int`` is the low
32 bits, signed; a pointer the address; a ``char *`` the user string (at most 255 bytes,
the BPF backend's ``str()`` of 256). :func:`value_reader` makes that conversion once per field.

The extras (a line showing every field, docs/ptrace.md): the address a ``struct sockaddr *``
argument points to (``uservaddr_sa="127.0.0.1:9"``), the names of ``open``/``openat`` flags
(``flags_names="O_RDONLY|O_CLOEXEC"``) and the errno name of a failed syscall
(``errno="ECONNREFUSED"``), read from the tracee as strace reads them.
"""

from __future__ import annotations

import errno as _errno
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ...lang.types import EnumTy, IntTy, PtrTy

__all__ = ["value_reader", "errno_name", "sockaddr_text", "open_flags", "STRING_SIZE"]

#: Bytes of a string read at an event, NUL included (the BPF backend's ``str()`` size for
#: probe lines, backends/bpf/gen/records.py).
STRING_SIZE = 256

# The kernel's own restart codes (include/linux/errno.h), which a tracer sees at syscall exit.
_KERNEL_ERRNO = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
                 516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM"}


def errno_name(ret: int) -> Optional[str]:
    """``ECONNREFUSED`` for a return value of -111; None when ``ret`` is not an error code
    (-4095..-1, include/linux/err.h MAX_ERRNO)."""
    if not -4095 <= ret < 0:
        return None
    return _errno.errorcode.get(-ret) or _KERNEL_ERRNO.get(-ret) or f"E{-ret}"


def value_reader(ty: Any, fmt: Optional[str]) -> Tuple[str, int, bool]:
    """How to show a 64-bit register value of type ``ty`` under ``fmt``: ``("str", 0, False)``
    for a string read from the tracee, else ``("int", bits, signed)``."""
    if fmt in ("str", "ustr") and (isinstance(ty, PtrTy) or (isinstance(ty, IntTy) and ty.size == 8)):
        return "str", 0, False
    if isinstance(ty, (IntTy, EnumTy)):
        size = getattr(ty, "size", 8) or 8
        return "int", min(8, size) * 8, bool(getattr(ty, "signed", False))
    return "int", 64, False


def convert(raw: int, bits: int, signed: bool) -> int:
    """``raw`` (a 64-bit register) cut to ``bits`` and sign-extended when ``signed``."""
    v = raw & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def sockaddr_text(data: bytes) -> str:
    """A ``struct sockaddr`` as strace names its parts, shortly: ``127.0.0.1:9``, ``[::1]:80``,
    ``/run/x.sock`` (AF_UNIX; ``@name`` abstract), ``AF_NETLINK``, else ``family N``."""
    if len(data) < 2:
        return "(short)"
    fam = struct.unpack_from("=H", data)[0]
    if fam == socket.AF_INET and len(data) >= 8:
        port = struct.unpack_from("!H", data, 2)[0]
        return f"{socket.inet_ntop(socket.AF_INET, data[4:8])}:{port}"
    if fam == socket.AF_INET6 and len(data) >= 24:
        port = struct.unpack_from("!H", data, 2)[0]
        return f"[{socket.inet_ntop(socket.AF_INET6, data[8:24])}]:{port}"
    if fam == socket.AF_UNIX:
        path = data[2:]
        if path[:1] == b"\0":
            return "@" + path[1:].decode("utf-8", "surrogateescape")
        return path.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") or "(unnamed)"
    if fam == 0:
        return "AF_UNSPEC"
    try:
        return socket.AddressFamily(fam).name
    except ValueError:
        return f"family {fam}"


# include/uapi/asm-generic/fcntl.h (x86_64 and arm64 share these values, except arm64's
# O_DIRECTORY/O_NOFOLLOW/O_DIRECT/O_LARGEFILE: arch/arm64/include/uapi/asm/fcntl.h)
_O_FLAGS_X86 = [
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o4000000, "__O_SYNC"), (0o10000000, "O_PATH"), (0o20000000, "__O_TMPFILE"),
]
_O_FLAGS_ARM64 = [(0o40000, "O_DIRECTORY"), (0o100000, "O_NOFOLLOW"), (0o200000, "O_DIRECT"),
                  (0o400000, "O_LARGEFILE")]


_FLAGS_SEEN: Dict[Tuple[int, str], str] = {}


def open_flags(flags: int, arch: str = "x86_64") -> str:
    """``O_RDONLY|O_CLOEXEC`` for 0o2000000 (strace's spelling; ``O_SYNC`` and ``O_TMPFILE``
    as their composite names). Remembered per value (a program uses a few)."""
    got = _FLAGS_SEEN.get((flags, arch))
    if got is None:
        got = _open_flags(flags, arch)
        if len(_FLAGS_SEEN) < 4096:
            _FLAGS_SEEN[(flags, arch)] = got
    return got


def _open_flags(flags: int, arch: str) -> str:
    table = list(_O_FLAGS_X86)
    if arch == "aarch64":
        moved = {v for _, v in _O_FLAGS_ARM64}
        table = [(b, n) for b, n in table if n not in moved] + _O_FLAGS_ARM64
    parts = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[flags & 3]]
    rest = flags & ~3
    names = dict((n, b) for b, n in table)
    if rest & names["__O_SYNC"] and rest & names["O_DSYNC"]:
        parts.append("O_SYNC")
        rest &= ~(names["__O_SYNC"] | names["O_DSYNC"])
    if rest & names["__O_TMPFILE"] and rest & names["O_DIRECTORY"]:
        parts.append("O_TMPFILE")
        rest &= ~(names["__O_TMPFILE"] | names["O_DIRECTORY"])
    for bit, name in sorted(table):
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(f"{rest:#o}")
    return "|".join(parts)


def extras_for(event: str, arg_names: List[str], arg_types: List[str],
               arch: str) -> List[Tuple[str, Callable[..., Any]]]:
    """The extra fields of a ``sys_enter_<name>`` line showing every field: ``(field, make)``
    where ``make(args, read)`` gives the value (``read(addr, size)`` reads the tracee)."""
    out: List[Tuple[str, Callable[..., Any]]] = []
    name = event[len("sys_enter_"):] if event.startswith("sys_enter_") else ""
    if not name:
        return out
    for i, (an, at) in enumerate(zip(arg_names, arg_types)):
        if "struct sockaddr *" in at and "*" not in at.replace("struct sockaddr *", "", 1):
            # the length is the next argument when it is a plain integer (connect, bind, sendto)
            if i + 1 < len(arg_types) and "*" not in arg_types[i + 1]:
                def sa(args: List[int], read: Callable[[int, int], Optional[bytes]], i: int = i) -> Any:
                    size = args[i + 1] & 0xFFFFFFFF
                    if not args[i] or size == 0:
                        return None
                    data = read(args[i], min(size, 128))
                    return None if data is None else sockaddr_text(data)
                out.append((an + "_sa", sa))
        if an == "flags" and name in ("open", "openat"):
            out.append((an + "_names", lambda args, read, i=i: open_flags(args[i] & 0xFFFFFFFF, arch)))
    return out
