"""Hidden sockets and sniffing sockets: three views of the same sockets.

- the BPF task_file iterator: every socket file every process holds, in every network
  namespace, read from ``struct socket``/``struct sock`` (family, type, protocol, state,
  local port, ``sk_filter``, the namespace's inode) — no /proc or netlink code runs;
- the /proc/PID/net tables (``tcp udp raw icmp udplite packet`` and their ``6``), the seq
  files netstat reads, of one process in each namespace (a rootkit hooking
  ``tcp4_seq_show`` hides from these);
- sock_diag (``NETLINK_SOCK_DIAG``, what ``ss`` reads) in undertow's own namespace.

A socket is compared only where the table must list it: TCP not in ``TCP_CLOSE`` (a socket
not yet listening or connected is in no hash table), UDP, UDP-Lite and ping sockets with a
local port, every raw and packet socket (``raw_hash_sk``, ``packet_create``).

Also: packet sockets and raw inet sockets with a classic BPF filter attached
(``SO_ATTACH_FILTER``: how BPFDoor-style backdoors wait for a magic packet without a
listening port), and interfaces in promiscuous mode (``IFF_PROMISC``).
"""

from __future__ import annotations

import os
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from .report import Context
from .views import IteratorUnavailable, comm_of, exe_of, read_small, run_iterator

__all__ = ["check", "held_sockets", "TABLES"]

CHECK = "sockets"
TABLES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6", "icmp", "icmp6", "packet")
S_IFSOCK = 0o140000
TCP_CLOSE = 7
AF_PACKET = 17
IFF_PROMISC = 0x100

# fields: tgid fd inode family type protocol state local-port filter netns
SOCK_ITER = (
    "iter:task_file /(ctx->file->f_inode->i_mode & 0xf000) == 0xc000/ {\n"
    "  $sk = ((struct socket *)ctx->file->private_data)->sk;\n"
    '  printf("%d %d %lu %d %d %d %d %d %lu %u\\n", ctx->task->tgid, ctx->fd, ctx->file->f_inode->i_ino,\n'
    "    $sk->__sk_common.skc_family, $sk->sk_type, $sk->sk_protocol, $sk->__sk_common.skc_state,\n"
    "    $sk->__sk_common.skc_num, (uint64)$sk->sk_filter, $sk->__sk_common.skc_net.net->ns.inum);\n"
    "}\n"
)


class Held:
    """A socket a process holds, as the task_file iterator read it."""

    __slots__ = ("pid", "fd", "inode", "family", "type", "protocol", "state", "port", "filter", "netns")

    def __init__(self, v: List[int]) -> None:
        (self.pid, self.fd, self.inode, self.family, self.type, self.protocol, self.state, self.port,
         self.filter, self.netns) = v[:10]

    def listed(self) -> bool:
        """Whether the namespace's /proc/net tables must list it (the module's doc)."""
        if self.family == AF_PACKET:
            return True
        if self.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        if self.type == socket.SOCK_RAW:
            return True
        if self.type == socket.SOCK_STREAM:
            return self.protocol == socket.IPPROTO_TCP and self.state != TCP_CLOSE
        if self.type == socket.SOCK_DGRAM:
            return self.protocol in (socket.IPPROTO_UDP, 136, socket.IPPROTO_ICMP, 58) and self.port != 0
        return False

    def describe(self) -> str:
        fam = {2: "inet", 10: "inet6", 17: "packet"}.get(self.family, str(self.family))
        typ = {1: "stream", 2: "dgram", 3: "raw"}.get(self.type, str(self.type))
        port = f" port {self.port}" if self.family != AF_PACKET and self.port else ""
        return f"{fam} {typ} protocol {self.protocol}{port} inode {self.inode}"


def held_sockets(ctx: Context) -> Optional[List[Held]]:
    """The iterator's sockets (cached in ``ctx``); None when the iterator cannot run."""
    if "held" not in ctx.cache:
        try:
            ctx.cache["held"] = [Held(v) for v in run_iterator(SOCK_ITER) if len(v) >= 10]
        except IteratorUnavailable as e:
            ctx.report.not_checked(CHECK, "BPF task_file iterator", str(e))
            ctx.cache["held"] = None
    return ctx.cache["held"]


def _table_inodes(proc: str, pid: int) -> Optional[Set[int]]:
    """Every socket inode in /proc/PID/net's tables; None when the namespace is unreadable."""
    out: Set[int] = set()
    ok = False
    for name in TABLES:
        data = read_small(os.path.join(proc, str(pid), "net", name), 64 << 20)
        if data is None:
            continue
        ok = True
        col = 8 if name == "packet" else 9
        for line in data.decode("ascii", "replace").splitlines()[1:]:
            f = line.split()
            if len(f) > col:
                try:
                    out.add(int(f[col]))
                except ValueError:
                    pass
    return out if ok else None


def _diag_inodes() -> Tuple[Set[int], List[str]]:
    """Socket inodes sock_diag dumps in this namespace (TCP without ``TCP_CLOSE``: 6.10+
    dumps bound-only sockets, which /proc/net/tcp never lists), and the dumps that failed."""
    from ..sockets import _dump

    out: Set[int] = set()
    failed: List[str] = []
    for fam in (socket.AF_INET, socket.AF_INET6):
        for proto, states in ((socket.IPPROTO_TCP, 0xFFFFFFFF & ~(1 << TCP_CLOSE)), (socket.IPPROTO_UDP, 0xFFFFFFFF)):
            req = struct.pack("=BBBBI", fam, proto, 0, 0, states) + bytes(48)
            try:
                for msg in _dump(req):
                    if len(msg) >= 72:
                        ino = struct.unpack_from("=I", msg, 68)[0]
                        if ino:
                            out.add(ino)
            except OSError as e:
                failed.append(f"{fam}/{proto}: {e.strerror}")
    try:
        for msg in _dump(struct.pack("=BBHIIII", AF_PACKET, 0, 0, 0, 0, 0, 0)):
            if len(msg) >= 8:
                out.add(struct.unpack_from("=I", msg, 4)[0])
    except OSError as e:
        failed.append(f"packet: {e.strerror}")
    return out, failed


def _ns_members(proc: str, wanted: Set[int]) -> Dict[int, int]:
    """A process in each network namespace of ``wanted`` (its /proc/PID/net shows that
    namespace's tables; a socket's namespace is where it was made, not necessarily where
    its holder runs now). A namespace no process runs in cannot be read: left out."""
    from ..common import ns_inode

    out: Dict[int, int] = {}
    if not wanted:
        return out
    try:
        pids = [n for n in os.listdir(proc) if n.isdigit()]
    except OSError:
        return out
    for p in pids:
        ns = ns_inode("net", p, proc)
        if ns in wanted and ns not in out:
            out[ns] = int(p)
            if len(out) == len(wanted):
                break
    return out


def _still_held(proc: str, h: Held) -> bool:
    try:
        return os.readlink(os.path.join(proc, str(h.pid), "fd", str(h.fd))) == f"socket:[{h.inode}]"
    except OSError:
        return False


def _holder(proc: str, h: Held) -> str:
    return f"pid {h.pid} ({comm_of(proc, h.pid)}, {exe_of(proc, h.pid) or '?'}) fd {h.fd}"


def check(ctx: Context) -> None:
    """Compare the socket views; add findings to ``ctx.report``."""
    from ..common import ns_inode

    rep, proc = ctx.report, ctx.proc
    mine = ns_inode("net", "self", proc)
    held = held_sockets(ctx)
    tables: Dict[int, Optional[Set[int]]] = {}
    reader: Dict[int, int] = {}
    if mine is not None:
        tables[mine] = _table_inodes(proc, os.getpid())
        reader[mine] = os.getpid()
    diag, failed = _diag_inodes()
    for f in failed:
        rep.not_checked(CHECK, f"sock_diag {f}", "the dump failed")
    if held is not None:
        members = _ns_members(proc, {h.netns for h in held} - set(tables))
        for ns, pid in members.items():
            tables[ns] = _table_inodes(proc, pid)
            reader[ns] = pid
        fresh: Optional[Dict[int, Held]] = None

        def confirmed(h: Held) -> bool:
            # read the socket again: a connection that ended meanwhile is unhashed (TCP_CLOSE)
            # while its holder has not closed it yet
            nonlocal fresh
            if fresh is None:
                try:
                    fresh = {x.inode: x for x in (Held(v) for v in run_iterator(SOCK_ITER) if len(v) >= 10)}
                except IteratorUnavailable:
                    fresh = {}
            x = fresh.get(h.inode)
            return x is not None and x.listed() and _still_held(proc, h)

        for h in held:
            if not h.listed():
                continue
            tab = tables.get(h.netns)
            in_diag = h.inode in diag if h.netns == mine else None
            if tab is not None and h.inode not in tab:
                again = _table_inodes(proc, reader[h.netns]) or set()
                if h.inode in again or not confirmed(h) or \
                        h.inode in (_table_inodes(proc, reader[h.netns]) or ()):
                    continue
                ev = {"BPF task_file iterator": f"{_holder(proc, h)} holds {h.describe()}",
                      f"/proc/{reader[h.netns]}/net tables": f"do not list inode {h.inode}"}
                if in_diag is not None:
                    ev["sock_diag"] = "lists it" if in_diag else "does not list it either"
                rep.add(CHECK, "high", f"socket inode {h.inode} of pid {h.pid} is hidden from /proc/net",
                        ev, "a hook on the /proc/net seq files (tcp4_seq_show...): look for hidden modules, "
                        "ftrace hooks, BPF programs; ss and lsof -p of the pid", key=h.inode)
            elif in_diag is False and h.family != AF_PACKET and h.type != socket.SOCK_RAW and \
                    not (h.type == socket.SOCK_DGRAM and h.protocol in (socket.IPPROTO_ICMP, 58, 136)):
                if h.inode in _diag_inodes()[0] or not confirmed(h) or h.inode in _diag_inodes()[0]:  # before and after
                    continue
                rep.add(CHECK, "high", f"socket inode {h.inode} of pid {h.pid} is hidden from sock_diag",
                        {"BPF task_file iterator": f"{_holder(proc, h)} holds {h.describe()}",
                         "sock_diag (ss)": f"does not dump inode {h.inode}",
                         "/proc/net": "lists it"},
                        "a hook on netlink sock_diag (inet_diag_dump...) or on recvmsg", key=h.inode)
        for h in held:
            if h.filter and (h.family == AF_PACKET or (h.family in (2, 10) and h.type == socket.SOCK_RAW)):
                if not _still_held(proc, h):
                    continue
                rep.add(CHECK, "medium", f"pid {h.pid} ({comm_of(proc, h.pid)}) has a "
                        f"{'packet' if h.family == AF_PACKET else 'raw'} socket with a classic BPF filter",
                        {"BPF task_file iterator": f"{_holder(proc, h)}: {h.describe()}, sk_filter set",
                         "listening ports": "none needed: the filter picks the packets it wants"},
                        "BPFDoor-style backdoors wait for a magic packet this way; DHCP clients and tcpdump do "
                        "too: check the binary (its package, its path) and its parent", key=h.inode)
    # sock_diag vs the tables, in this namespace (catches hiding when the iterator cannot run)
    tab = tables.get(mine) if mine is not None else None
    if tab is not None and not failed:
        for ino in sorted(diag - tab):
            again_tab = _table_inodes(proc, os.getpid()) or set()
            if ino in again_tab or ino not in _diag_inodes()[0]:
                continue
            if held is not None and any(h.inode == ino for h in held):
                continue  # judged above with its holder
            rep.add(CHECK, "high", f"socket inode {ino} is in sock_diag but hidden from /proc/net",
                    {"sock_diag (ss)": f"dumps inode {ino}", "/proc/net tables": f"do not list inode {ino}"},
                    "a hook on the /proc/net seq files; find the holder with ls -l /proc/*/fd", key=ino)
    # promiscuous interfaces of this namespace
    try:
        ifaces = os.listdir("/sys/class/net")
    except OSError:
        ifaces = []
    for ifc in sorted(ifaces):
        raw = read_small(os.path.join("/sys/class/net", ifc, "flags"), 32)
        try:
            flags = int(raw.strip(), 16) if raw else 0
        except ValueError:
            continue
        if flags & IFF_PROMISC and os.path.exists(os.path.join("/sys/class/net", ifc, "brport")):
            rep.note(CHECK, f"interface {ifc} is in promiscuous mode", "a bridge port: bridges put their ports "
                     "in promiscuous mode", {f"/sys/class/net/{ifc}/flags": hex(flags)})
        elif flags & IFF_PROMISC:
            rep.add(CHECK, "medium", f"interface {ifc} is in promiscuous mode",
                    {f"/sys/class/net/{ifc}/flags": hex(flags)},
                    "someone captures every frame: find packet sockets (ss -0 -p)", key=ifc)
