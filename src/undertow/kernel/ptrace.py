"""ptrace(2), wait4(2) and process_vm_readv(2) through ctypes, for the ptrace backend.

Only what a syscall tracer needs (Documentation: man 2 ptrace, include/uapi/linux/ptrace.h):
``PTRACE_SEIZE`` with options, ``PTRACE_GET_SYSCALL_INFO`` (Linux 5.3, commit 201766a20e30)
for the syscall number, arguments and return value at a seccomp, entry or exit stop,
``PTRACE_CONT``/``PTRACE_SYSCALL``/``PTRACE_LISTEN`` to resume, ``PTRACE_INTERRUPT`` and
``PTRACE_DETACH`` to let go, ``PTRACE_GETEVENTMSG`` for new tasks' ids. Every request must
come from the thread that seized the tracee (the kernel checks ``child->parent == current``).

Calls raise :class:`OSError` with the errno; :func:`wait_any` returns ``(tid, status)``
or ``(-1, errno)`` so the caller sees ``EINTR`` (a wake-up signal) and ``ECHILD``.
"""

from __future__ import annotations

import ctypes
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

__all__ = ["SyscallInfo", "seize", "get_syscall_info", "resume", "wait_any", "read_memory",
           "read_string", "AUDIT_ARCH"]

# include/uapi/linux/ptrace.h
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_PEEKDATA = 2
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E

O_TRACESYSGOOD = 0x1
O_TRACEFORK = 0x2
O_TRACEVFORK = 0x4
O_TRACECLONE = 0x8
O_TRACEEXEC = 0x10
O_TRACESECCOMP = 0x80
O_EXITKILL = 0x100000

EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_EXEC = 1, 2, 3, 4
EVENT_SECCOMP = 7
EVENT_STOP = 128

INFO_NONE, INFO_ENTRY, INFO_EXIT, INFO_SECCOMP = 0, 1, 2, 3

__WALL = 0x40000000
WNOHANG = 1

#: The native syscall ABI's AUDIT_ARCH_* (include/uapi/linux/audit.h): what seccomp_data.arch
#: and ptrace_syscall_info.arch hold for a 64-bit process of this architecture.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

_libc = None


def libc() -> ctypes.CDLL:
    """libc with errno kept (``ctypes.get_errno``), loaded once."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.ptrace.restype = ctypes.c_long
        lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        lib.wait4.restype = ctypes.c_int
        lib.wait4.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_void_p]
        lib.process_vm_readv.restype = ctypes.c_ssize_t
        lib.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                                         ctypes.c_ulong, ctypes.c_ulong]
        lib.prctl.restype = ctypes.c_int
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _libc = lib
    return _libc


_fns: List = []


def _ptrace_fn():  # type: ignore[no-untyped-def]
    if not _fns:
        lib = libc()
        # The calls made at every stop go through a second handle whose functions have no
        # argtypes: ctypes then passes Python ints as C ints and arrays/pointers as
        # addresses without a from_param() per argument (~1 us a call saved: 2.1 -> 1.0 us
        # for ptrace(2)). Only small ints (requests, ids, sizes, signals, flags) and ctypes
        # objects are passed to them; libffi widens an int to the 64-bit register slot, as
        # the variadic ptrace(3) reads its pid_t and void * arguments.
        raw = ctypes.CDLL(None, use_errno=True)
        raw.ptrace.restype = ctypes.c_long
        raw.wait4.restype = ctypes.c_int
        raw.process_vm_readv.restype = ctypes.c_ssize_t
        _fns.extend((lib.ptrace, raw.wait4, raw.ptrace, raw.process_vm_readv))
    return _fns[0]


def _call(req: int, tid: int, addr: int = 0, data: int = 0) -> int:
    """A ptrace request other than PEEK* (for those, -1 is always an error)."""
    r = (_fns[0] if _fns else _ptrace_fn())(req, tid, addr, data)
    if r == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r




def seize(tid: int, options: int) -> None:
    """``PTRACE_SEIZE``: trace ``tid`` without stopping it, with ``options`` (``O_*``)."""
    _call(PTRACE_SEIZE, tid, 0, options)


def resume(tid: int, how: int, sig: int = 0) -> None:
    """``PTRACE_CONT``, ``PTRACE_SYSCALL``, ``PTRACE_LISTEN`` or ``PTRACE_DETACH`` (``how``),
    delivering ``sig`` (0: none). Through the argtypes-free handle (every stop resumes)."""
    if (_fns[2] if _fns else (_ptrace_fn(), _fns[2])[1])(how, tid, 0, sig) == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def interrupt(tid: int) -> None:
    """``PTRACE_INTERRUPT``: make a seized tracee stop (``PTRACE_EVENT_STOP``)."""
    _call(PTRACE_INTERRUPT, tid)


def event_msg(tid: int) -> int:
    """``PTRACE_GETEVENTMSG``: the new task's id (fork/clone), the former thread id (exec)."""
    v = ctypes.c_ulong(0)
    _call(PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(v))
    return v.value


class SyscallInfo:
    """``struct ptrace_syscall_info`` (include/uapi/linux/ptrace.h): ``op`` (``INFO_*``),
    ``arch`` (AUDIT_ARCH_*), then at an entry or seccomp stop ``nr`` and the six ``args``, at
    an exit stop ``rval`` and ``is_error``."""

    __slots__ = ("op", "arch", "nr", "args", "rval", "is_error")

    def __init__(self, op: int, arch: int, nr: int = -1, args: Tuple[int, ...] = (), rval: int = 0,
                 is_error: bool = False) -> None:
        self.op, self.arch, self.nr, self.args, self.rval, self.is_error = op, arch, nr, args, rval, is_error


_INFO_SIZE = 88  # u8 op, 3 pad, u32 arch, u64 ip, u64 sp, then the union (seccomp: 8 + 48 + 4, padded)
_info_buf = ctypes.create_string_buffer(_INFO_SIZE)
_HEAD = struct.Struct("<B3xIQQ")
_ENTRY = struct.Struct("<Q6Q")
_EXIT = struct.Struct("<qB")
#: the whole buffer as ``op, arch, ip, sp`` and the union's seven 64-bit words (native order:
#: the kernel writes the struct in the tracer's own byte order)
_WORDS = struct.Struct("=B3xIQQ7Q")
_NO_WORDS = (INFO_NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def syscall_words(tid: int) -> Tuple[int, ...]:
    """``PTRACE_GET_SYSCALL_INFO`` as one tuple, for the tracer's every stop (no object made):
    ``(op, arch, ip, sp, w0, .., w6)``. At an entry or seccomp stop ``w0`` is the number and
    ``w1..w6`` the arguments; at an exit stop ``w0`` is the return value as an unsigned
    64-bit word and ``w1 & 0xff`` the error flag. ``op`` is ``INFO_NONE`` when the kernel
    gave less than the header. The caller's thread only: the buffer is shared."""
    n = (_fns[2] if _fns else (_ptrace_fn(), _fns[2])[1])(PTRACE_GET_SYSCALL_INFO, tid, _INFO_SIZE, _info_buf)
    if n < 24:
        if n == -1:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return _NO_WORDS
    return _WORDS.unpack_from(_info_buf)


def get_syscall_info(tid: int) -> SyscallInfo:
    """``PTRACE_GET_SYSCALL_INFO`` at the tracee's current stop (the caller's thread only:
    the buffer is shared)."""
    n = _call(PTRACE_GET_SYSCALL_INFO, tid, _INFO_SIZE, ctypes.addressof(_info_buf))
    raw = _info_buf.raw[:max(0, min(n, _INFO_SIZE))]
    if len(raw) < 24:
        return SyscallInfo(INFO_NONE, 0)
    op, arch, _ip, _sp = _HEAD.unpack_from(raw)
    if op in (INFO_ENTRY, INFO_SECCOMP) and len(raw) >= 24 + 56:
        v = _ENTRY.unpack_from(raw, 24)
        return SyscallInfo(op, arch, v[0], v[1:])
    if op == INFO_EXIT and len(raw) >= 24 + 9:
        rval, err = _EXIT.unpack_from(raw, 24)
        return SyscallInfo(op, arch, rval=rval, is_error=bool(err))
    return SyscallInfo(op, arch)


_status = ctypes.c_int(0)
_status_ref = ctypes.pointer(_status)
_WALL_NOHANG = __WALL | WNOHANG


def wait_any(nohang: bool = False) -> Tuple[int, int]:
    """``wait4(-1, &status, __WALL)``: ``(tid, status)``; ``(0, 0)`` when ``nohang`` and nothing
    is ready; ``(-1, errno)`` on an error (``EINTR``: a signal woke the caller, ``ECHILD``: no
    child or tracee is left). The GIL is released while it waits (ctypes)."""
    if not _fns:
        _ptrace_fn()
    r = _fns[1](-1, _status_ref, _WALL_NOHANG if nohang else __WALL, None)
    if r < 0:
        return -1, ctypes.get_errno()
    return r, _status.value


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_vm_readv_ok = [True]
_one_buf = ctypes.create_string_buffer(512)
_one: List = [_IOVec(ctypes.addressof(_one_buf), 0), _IOVec(0, 0), _one_buf]
_one_ptrs = (ctypes.pointer(_one[0]), ctypes.pointer(_one[1]))


def read_memory(pid: int, addr: int, size: int) -> Optional[bytes]:
    """Up to ``size`` bytes of ``pid``'s memory at ``addr``: fewer when a page after the
    first is not mapped, None when nothing could be read (EFAULT, ESRCH, EPERM).
    ``process_vm_readv`` (one remote piece per page, since a piece that faults ends the
    transfer), ``PTRACE_PEEKDATA`` word by word where that call is missing (ENOSYS)."""
    if size <= 0 or addr <= 0:
        return None if addr <= 0 else b""
    if _vm_readv_ok[0]:
        if size <= _PAGE and (addr % _PAGE) + size <= _PAGE:
            # one page: the common case (a path), with buffers made once
            local, remote, buf = _one
            if size > len(buf):
                buf = ctypes.create_string_buffer(size)
                local.base = ctypes.addressof(buf)
                _one[2] = buf
            local.len = remote.len = size
            remote.base = addr
            n = (_fns[3] if _fns else (_ptrace_fn(), _fns[3])[1])(pid, _one_ptrs[0], 1, _one_ptrs[1], 1, 0)
            if n >= 0:
                return buf.raw[:n] if n else None
            if ctypes.get_errno() != 38:
                return None
            _vm_readv_ok[0] = False
            return read_memory(pid, addr, size)
        buf = ctypes.create_string_buffer(size)
        local = _IOVec(ctypes.addressof(buf), size)
        pieces: List[Tuple[int, int]] = []
        a, end = addr, addr + size
        while a < end:
            nxt = min(end, (a // _PAGE + 1) * _PAGE)
            pieces.append((a, nxt - a))
            a = nxt
        remote = (_IOVec * len(pieces))(*[_IOVec(p, n) for p, n in pieces])
        n = libc().process_vm_readv(pid, ctypes.byref(local), 1, remote, len(pieces), 0)
        if n >= 0:
            return buf.raw[:n] if n else None
        if ctypes.get_errno() != 38:  # ENOSYS: fall back to PTRACE_PEEKDATA
            return None
        _vm_readv_ok[0] = False
    out = bytearray()
    a = addr & ~7
    skip = addr - a
    while len(out) < size + skip:
        ctypes.set_errno(0)
        v = libc().ptrace(PTRACE_PEEKDATA, pid, a, 0)
        if v == -1 and ctypes.get_errno():
            break
        out += struct.pack("=q", v)
        a += 8
    got = bytes(out[skip:skip + size])
    return got or None


def read_string(pid: int, addr: int, limit: int) -> Optional[bytes]:
    """The NUL-terminated string at ``addr`` in ``pid``, at most ``limit - 1`` bytes (the
    BPF backend's ``str()`` of ``limit`` bytes); None when unreadable."""
    data = read_memory(pid, addr, limit)
    if data is None:
        return None
    return data[:limit - 1].split(b"\0", 1)[0]


def probe_ptrace() -> dict:
    """What ptrace offers this user, tested by doing it on a child of its own (created,
    seized, stopped, asked, detached, killed and reaped before returning):

    ``available`` (PTRACE_SEIZE of one's own child worked), ``reason``, ``syscall_info``
    (``PTRACE_GET_SYSCALL_INFO``, Linux 5.3), ``seccomp`` (the child could install a seccomp
    filter after ``PR_SET_NO_NEW_PRIVS``: commands stop only at the traced syscalls),
    ``yama_scope`` (``/proc/sys/kernel/yama/ptrace_scope``, "" without Yama) and
    ``attach`` (what ``-p`` may attach to, in words)."""
    import errno as _errno
    import signal as _signal

    out = {"available": False, "reason": "", "syscall_info": False, "seccomp": False, "yama_scope": "",
           "attach": ""}
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            out["yama_scope"] = f.read().strip()
    except OSError:
        pass
    scope = out["yama_scope"]
    root = os.geteuid() == 0
    out["attach"] = {
        "": "any process of your own user (no Yama)" if not root else "any process (root)",
        "0": "any process of your own user (Yama scope 0)" if not root else "any process (root)",
        "1": "only your own descendants (Yama scope 1: -c CMD works, -p of another of your processes "
             "needs CAP_SYS_PTRACE)" if not root else "any process (root, Yama scope 1)",
        "2": "nothing without CAP_SYS_PTRACE (Yama scope 2)" if not root else "any process (root, Yama scope 2)",
        "3": "nothing: ptrace attach is disabled (Yama scope 3)",
    }.get(scope, f"Yama scope {scope}")
    from .seccomp import RET_ALLOW, install_filter

    libc()
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(go_w)
            ok = b"1"
            try:
                install_filter([(0x06, 0, 0, RET_ALLOW)])
            except OSError:
                ok = b"0"
            os.write(w, ok)
            os.read(go_r, 1)  # held here until the parent is done
        finally:
            os._exit(0)
    os.close(w)
    os.close(go_r)
    try:
        out["seccomp"] = os.read(r, 1) == b"1"
        try:
            seize(pid, O_TRACESYSGOOD)
        except OSError as e:
            out["reason"] = f"PTRACE_SEIZE of your own child failed: {_errno.errorcode.get(e.errno, e.errno)}"
            return out
        out["available"] = True
        out["reason"] = "PTRACE_SEIZE of your own child works"
        try:
            interrupt(pid)
            while True:
                got, status = wait_any()
                if got == pid and os.WIFSTOPPED(status):
                    break
                if got < 0 and status != _errno.EINTR:
                    break
            try:
                n = _call(PTRACE_GET_SYSCALL_INFO, pid, _INFO_SIZE, ctypes.addressof(_info_buf))
                out["syscall_info"] = n > 0
            except OSError:
                out["syscall_info"] = False
            resume(pid, PTRACE_DETACH)
        except OSError:
            pass
    finally:
        try:
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
        for fd in (r, go_w):
            os.close(fd)
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    return out
