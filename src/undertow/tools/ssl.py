"""``undertow ssl``: the plaintext of TLS reads and writes, from uprobes on the TLS libraries.

The program (bpftrace language, built by :func:`build_program` for a set of library files
:mod:`undertow.tools.ssl_libs` found) has, for each library file:

- an entry uprobe on each read/write function that keeps, per thread, the connection
  object (``SSL *``, ``gnutls_session_t``, NSS's ``PRFileDesc *``: the first argument), the
  buffer (second argument) and, for ``SSL_read_ex``/``SSL_write_ex``, the ``size_t *`` that
  receives the byte count (fourth argument);
- a return uprobe that reads the count (the return value; for the ``_ex`` functions the
  ``size_t`` they stored when they return 1) and sends a record with the first
  ``--max-bytes`` bytes of the buffer (``bpf_probe_read_user``) and the connection's peer;
- an entry uprobe on the function that frees a connection (``SSL_free``,
  ``gnutls_deinit``, ``PR_Close``) that forgets the connection's peer.

**The peer.** The library's object holds the socket's fd (``SSL_get_fd``, a BIO), but at
offsets that change between versions and builds, and a uprobe cannot call the library.
Instead: while a thread is inside a TLS read or write, the library reads or writes its
socket (``read``/``write``/``recvfrom``/``sendto``/``recvmsg``/``sendmsg``/``readv``/
``writev``). The syscall tracepoints of the same program see the fd there; the fd leads,
through the task (``task->files->fdt->fd[fd]``, BTF), to the ``struct file``; when its
inode is a socket (``S_IFSOCK``), ``file->private_data`` is the ``struct socket`` whose
``sk->__sk_common`` holds family, peer address and port and local port. These are kept
per (process, connection object) and sent with every record of that connection, also with
the reads served from the library's own buffer (no syscall at all). A connection that made
no syscall inside a read or write since undertow started (possible for its first records
only) shows no peer. The kernel's memory is read at the tracepoint (kernel context); the
uprobe's return only reads the kept values.

**NSS** (``PR_Read``/``PR_Write``/``PR_Recv``/``PR_Send`` in ``libnspr4``) is NSPR's generic
I/O: only calls on a *layered* descriptor (``fd->methods->file_type == PR_DESC_LAYERED``,
which NSS's SSL layer sets in ``ssl_SetupIOMethods``) are kept; plain files and sockets are not.

Records: ``printf("%d %d %d %d %d %d %d %r")`` = library index, function code
(:data:`FUNCS`), byte count, fd + 1 (0: unknown), family | dport << 16 | lport << 32,
address words a, b, the bytes. Exec and executable ``mmap`` of a file are sent as
``printf("%d %d", -1, what)`` so the tool can look for new library files
(``sched:sched_process_exec``, ``syscalls:sys_enter_mmap`` with ``PROT_EXEC``).
"""

from __future__ import annotations

import base64
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    from .ssl_libs import TlsLibrary

__all__ = ["FUNCS", "build_program", "parse_record", "peer_of", "DEFAULT_MAX_BYTES", "MAX_BYTES_LIMIT"]

#: function code -> (name, direction, kind of count): "int" the return value (int),
#: "ssize" the return value (ssize_t), "ex" the size_t the 4th argument points to
FUNCS: Sequence[Tuple[str, str, str]] = (
    ("SSL_read", "read", "int"), ("SSL_write", "write", "int"),
    ("SSL_read_ex", "read", "ex"), ("SSL_write_ex", "write", "ex"),
    ("gnutls_record_recv", "read", "ssize"), ("gnutls_record_send", "write", "ssize"),
    ("PR_Read", "read", "int"), ("PR_Write", "write", "int"),
    ("PR_Recv", "read", "int"), ("PR_Send", "write", "int"),
)
_CODE = {name: i for i, (name, _d, _k) in enumerate(FUNCS)}

#: ``--max-bytes`` default and largest value (the program's ``bufsize``)
DEFAULT_MAX_BYTES = 128
MAX_BYTES_LIMIT = 4096

#: the syscalls a TLS library uses on its socket (each has an ``fd`` field)
IO_SYSCALLS = ("read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg", "readv", "writev")

# PR_DESC_LAYERED in NSPR's prio.h (enum PRDescType)
_PR_DESC_LAYERED = 4

_KEEP_PEER = r"""
{
  $fdt = ((struct task_struct *)curtask)->files->fdt;
  if ((int64)args.fd >= 0 && args.fd < $fdt->max_fds) {
    $f = $fdt->fd[args.fd];
    if (($f->f_inode->i_mode & 0xf000) == 0xc000) {
      $sk = ((struct socket *)$f->private_data)->sk;
      $fam = $sk->__sk_common.skc_family;
      @tls_fd[pid, @tls_obj[tid]] = args.fd + 1;
      @tls_pm[pid, @tls_obj[tid]] = $fam | ($sk->__sk_common.skc_dport << 16) | ((uint64)$sk->__sk_common.skc_num << 32);
      if ($fam == 10) {
        @tls_pa[pid, @tls_obj[tid]] = (uint64)$sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0] | ((uint64)$sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1] << 32);
        @tls_pb[pid, @tls_obj[tid]] = (uint64)$sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2] | ((uint64)$sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3] << 32);
      } else {
        @tls_pa[pid, @tls_obj[tid]] = (uint64)$sk->__sk_common.skc_daddr;
        @tls_pb[pid, @tls_obj[tid]] = 0;
      }
    }
  }
}
"""

_WATCH = r"""
tracepoint:sched:sched_process_exec { printf("%d %d", -1, 0); }
tracepoint:syscalls:sys_enter_mmap /(int32)args.fd >= 0 && (args.prot & 4) != 0/ { printf("%d %d", -1, 1); }
"""


def _entry(path: str, func: str, layered_only: bool, ex: bool) -> str:
    keep = "@tls_obj[tid] = arg0; @tls_buf[tid] = arg1; " + ("@tls_ex[tid] = arg3;" if ex else "")
    if layered_only:
        # NSPR: only descriptors whose methods say PR_DESC_LAYERED (NSS's SSL layer)
        return (f"uprobe:{path}:{func} {{ $m = *(uint64 *)uptr(arg0); "
                f"if ($m != 0 && *(int32 *)uptr($m) == {_PR_DESC_LAYERED}) {{ {keep} }} }}\n")
    return f"uprobe:{path}:{func} {{ {keep} }}\n"


def _exit(path: str, func: str, lib_index: int) -> str:
    code = _CODE[func]
    kind = FUNCS[code][2]
    if kind == "ex":
        count = "$r = (int32)retval; $n = $r == 1 ? (int64)*(uint64 *)uptr(@tls_ex[tid]) : 0;"
    elif kind == "ssize":
        count = "$n = (int64)retval;"
    else:
        count = "$n = (int64)(int32)retval;"
    return (f"uretprobe:{path}:{func} /@tls_obj[tid]/ {{\n  {count}\n"
            f"  if ($n > 0) {{\n    $o = @tls_obj[tid];\n"
            f"    printf(\"%d %d %d %d %d %d %d %r\", {lib_index}, {code}, $n, @tls_fd[pid, $o], "
            f"@tls_pm[pid, $o], @tls_pa[pid, $o], @tls_pb[pid, $o], buf(uptr(@tls_buf[tid]), $n));\n  }}\n"
            f"  delete(@tls_obj[tid]); delete(@tls_buf[tid]);{' delete(@tls_ex[tid]);' if kind == 'ex' else ''}\n}}\n")


def _free(path: str, func: str) -> str:
    return (f"uprobe:{path}:{func} {{ delete(@tls_fd[pid, arg0]); delete(@tls_pm[pid, arg0]); "
            f"delete(@tls_pa[pid, arg0]); delete(@tls_pb[pid, arg0]); }}\n")


def build_program(libs: Sequence["TlsLibrary"], watch: bool) -> str:
    """The program for ``libs`` (each with its ``index`` set), with the exec/mmap watch
    probes when ``watch``. Paths in it are ``/proc/self/fd/N`` (integers only: nothing a
    process chose goes into the text)."""
    from .ssl_libs import FUNCTIONS

    out: List[str] = []
    for lib in libs:
        path = lib.probe_path
        free = FUNCTIONS[lib.kind][-1]
        for func in lib.functions:
            if func == free:
                out.append(_free(path, func))
                continue
            out.append(_entry(path, func, lib.kind == "nss", FUNCS[_CODE[func]][2] == "ex"))
            out.append(_exit(path, func, lib.index))
    if libs:
        attach = ",".join(f"tracepoint:syscalls:sys_enter_{s}" for s in IO_SYSCALLS)
        out.append(f"{attach} /@tls_obj[tid]/" + _KEEP_PEER)
    if watch:
        out.append(_WATCH)
    return "".join(out)


def peer_of(fd1: int, pm: int, pa: int, pb: int) -> Dict[str, Any]:
    """The record's socket values -> ``fd``, ``family``, ``peer`` (``addr:port``,
    ``[v6]:port``), ``peer_addr``, ``peer_port``, ``local_port`` (None when unknown)."""
    import socket

    d: Dict[str, Any] = {"fd": fd1 - 1 if fd1 > 0 else None, "family": None, "peer": None,
                         "peer_addr": None, "peer_port": None, "local_port": None}
    if fd1 <= 0:
        return d
    fam = pm & 0xFFFF
    dport = (pm >> 16) & 0xFFFF
    dport = ((dport & 0xFF) << 8) | (dport >> 8)  # skc_dport is in network order
    lport = (pm >> 32) & 0xFFFF
    if fam == socket.AF_INET:
        addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", pa & 0xFFFFFFFF))
        d.update(family="inet", peer=f"{addr}:{dport}", peer_addr=addr, peer_port=dport, local_port=lport)
    elif fam == socket.AF_INET6:
        raw = struct.pack("<QQ", pa & (2 ** 64 - 1), pb & (2 ** 64 - 1))
        addr = socket.inet_ntop(socket.AF_INET6, raw)
        if raw[:12] == b"\x00" * 10 + b"\xff\xff":
            addr = socket.inet_ntop(socket.AF_INET, raw[12:])  # v4-mapped: shown as IPv4
            d.update(family="inet6", peer=f"{addr}:{dport}")
        else:
            d.update(family="inet6", peer=f"[{addr}]:{dport}")
        d.update(peer_addr=addr, peer_port=dport, local_port=lport)
    elif fam == socket.AF_UNIX:
        d.update(family="unix", peer="unix")
    else:
        d.update(family=str(fam))
    return d


#: the socket values of a record -> its peer fields (a connection's records share them)
_PEERS: Dict[Any, Dict[str, Any]] = {}


def parse_record(rec: Any, libs: Dict[int, "TlsLibrary"]) -> Optional[Dict[str, Any]]:
    """A data record -> the event dict (keys: docs/tools/ssl.md); None for a watch record
    (``values[0] == -1``) or one of an unknown library."""
    from ..output.values import escape

    v = rec.values
    if len(v) != 8 or v[0] < 0:
        return None
    lib = libs.get(v[0])
    if lib is None or not 0 <= v[1] < len(FUNCS):
        return None
    name, direction, _k = FUNCS[v[1]]
    length = int(v[2])
    data = bytes(v[7])[:max(0, length)]
    d: Dict[str, Any] = {
        "ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm,
        "library": lib.path, "library_kind": lib.kind, "static": lib.static, "function": name,
        "direction": direction, "length": length,
    }
    key = (v[3], v[4], v[5], v[6])
    peer = _PEERS.get(key)
    if peer is None:
        if len(_PEERS) > 4096:
            _PEERS.clear()
        peer = _PEERS[key] = peer_of(int(v[3]), int(v[4]), int(v[5]), int(v[6]))
    d.update(peer)
    d.update(captured=len(data), truncated=len(data) < length, data=escape(data),
             data_base64=base64.b64encode(data).decode("ascii"))
    return d


def is_watch(rec: Any) -> bool:
    """Whether a record says a process exec'd or mapped an executable file (rescan it)."""
    v = rec.values
    return len(v) == 2 and v[0] == -1
