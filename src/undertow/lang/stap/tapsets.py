"""SystemTap's probe aliases (tapsets) realised with what the kernel offers without modules.

SystemTap's tapsets (tapset/linux/*.stp) define probe points such as ``syscall.open`` or
``netfilter.ip.local_out`` on top of ``kernel.function(...)`` probes and compute their
variables with DWARF and embedded C. undertow has neither; each alias here is realised
with tracepoints (present on every kernel, and the only hooks of a kernel without kprobes)
and BPF reading kernel structures through BTF. A :class:`Site` says where a probe point
attaches (bpftrace-language attach specs), what runs first (a prologue in the bpftrace
language, trusted text of this module: never user input), a guard, and how each tapset
variable is computed (bpftrace expressions over the prologue's ``$__`` variables).

Where a realisation differs from SystemTap's (what the tracepoint sees), docs/stap.md says so.
"""

from __future__ import annotations

import fnmatch
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["Site", "Var", "Unrealisable", "realise", "FAMILIES", "AF_NAMES", "list_points", "ANSI"]

#: address families by number (include/linux/socket.h), as SystemTap's _struct_sockaddr_u names them
AF_NAMES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}


#: tapset/ansi.stp: terminal control sequences -> (printf format, argument count)
ANSI: "Dict[str, Tuple[str, int]]" = {
    "ansi_clear_screen": ("\x1b[1;1H\x1b[J", 0), "ansi_new_line": ("\n", 0),
    "ansi_cursor_hide": ("\x1b[?25l", 0), "ansi_cursor_show": ("\x1b[?25h", 0),
    "ansi_cursor_save": ("\x1b7", 0), "ansi_cursor_restore": ("\x1b8", 0),
    "ansi_reset_color": ("\x1b[0;0m", 0), "ansi_set_color": ("\x1b[%dm", 1),
    "ansi_set_color2": ("\x1b[%d;%dm", 2), "ansi_set_color3": ("\x1b[%d;%d;%dm", 3),
    "ansi_cursor_move": ("\x1b[%d;%dH", 2),  # (x, y): the row first
}


class Var:
    """A tapset variable: ``ty`` ``long``/``string``; ``expr`` a bpftrace expression; or
    ``ty == "enum"`` (a string named from a number: ``expr`` the number, ``names`` the
    table), or ``ty == "comp"`` (a string made of parts: ``variants`` is a list of
    ``(condition or None, format, [expressions])``, printed where the script prints it)."""

    __slots__ = ("ty", "expr", "names", "variants", "doc")

    def __init__(self, ty: str, expr: str = "", names: Optional[Dict[int, str]] = None,
                 variants: Optional[List[Tuple[Optional[str], str, List[str]]]] = None, doc: str = "") -> None:
        self.ty, self.expr, self.names, self.variants, self.doc = ty, expr, names, variants, doc


class Site:
    """One realisation of a probe point: ``specs`` (bpftrace attach specs of this package, or
    :class:`~undertow.lang.ir.AttachPoint` made for names the script gives), ``prologue``
    (bpftrace statements run first), ``guard`` (a bpftrace condition; the body runs when it
    holds), ``vars`` (tapset variables), ``target`` (``$name`` -> a bpftrace expression, or
    None when the name is not known), ``ppfunc`` and ``pp`` (what ``ppfunc()``/``pp()``
    return), ``note`` (how it is realised, for -v and -p 2)."""

    __slots__ = ("specs", "prologue", "guard", "vars", "target", "ppfunc", "pp", "note", "optional", "helpers",
                 "entry")

    def __init__(self, specs: List[str], pp: str, ppfunc: str = "", prologue: str = "", guard: str = "",
                 vars: Optional[Dict[str, Var]] = None, target: "Optional[Callable[[str], Optional[str]]]" = None,
                 note: str = "") -> None:
        self.specs, self.pp, self.ppfunc, self.prologue, self.guard = specs, pp, ppfunc, prologue, guard
        self.vars = {} if vars is None else vars
        self.target = target
        self.note = note
        self.optional = False
        #: bpftrace probes the site needs beside it (an entry probe keeping a value for the
        #: return's), added to the program once
        self.helpers: List[str] = []
        #: a return's entry (its probes, target variables): ``@entry(expr)`` and the return's
        #: ``$param`` are evaluated there and kept per thread
        self.entry: Optional[Site] = None


class Unrealisable(Exception):
    """A probe point this kernel (or undertow) cannot realise: ``message``, ``hints``."""

    def __init__(self, message: str, hints: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message, self.hints = message, list(hints)


class Env:
    """What the realisations may ask of the kernel: tracepoint fields, events, functions."""

    def fields(self, group: str, event: str) -> "Optional[List[Tuple[str, str]]]":
        """``[(name, C type)]`` of a tracepoint's own fields, or None when it does not exist."""
        raise NotImplementedError

    def events(self, pattern: str) -> "List[Tuple[str, str]]":
        """``(group, event)`` of the tracepoints whose event name matches ``pattern``."""
        raise NotImplementedError

    def has_function(self, name: str) -> "Optional[bool]":
        """Whether the kernel has this function (None: unknown)."""
        return None

    def feature(self, name: str) -> "Optional[bool]":
        """``kprobes``/``fentry``: whether this kernel attaches them (None: unknown)."""
        return None

    def tp_params(self, event: str) -> "Optional[List[Tuple[str, str]]]":
        """The arguments of a tracepoint's prototype (after ``__data``) as ``(name, the name
        its typed raw tracepoint gives it: the same, or argN)``, or None when unknown."""
        return None

    def functions(self, pattern: str) -> "List[str]":
        """Kernel functions matching ``pattern`` (``-l 'kernel.function("tcp_*")'``)."""
        return []


# --------------------------------------------------------------------------- syscalls

#: SystemTap names that are other syscalls' tracepoints here (syscall.open covers openat:
#: glibc's open() has called openat(2) since 2.26)
_SYSCALL_EVENTS = {"open": ["open", "openat"], "stat": ["newstat"], "lstat": ["newlstat"], "fstat": ["newfstat"],
                   "uname": ["newuname"], "fstatat": ["newfstatat"], "mmap2": ["mmap"]}
_STRING_NAMES = frozenset(("filename", "pathname", "oldname", "newname", "path", "name", "specialfilename",
                           "dev_name", "dir_name", "type", "special", "symlink", "target", "linkpath"))
_SOCKADDR = {"connect": "uservaddr", "bind": "umyaddr", "sendto": "addr"}


def _is_string_field(name: str, ctype: str) -> bool:
    return "char" in ctype and "*" in ctype and name in _STRING_NAMES


#: The kernel's ``%pI6`` (lib/vsprintf.c ip6_string(): eight big-endian 16-bit groups, each as
#: 4 hex digits, never compressed), which SystemTap's sockaddr formatting uses.
_PI6_FMT = ":".join(["%04x"] * 8)


def _pi6_args(s6: str) -> List[str]:
    return [f"bswap({s6}->sin6_addr.in6_u.u6_addr16[{i}])" for i in range(8)]


def _sockaddr_variants(field: str) -> List[Tuple[Optional[str], str, List[str]]]:
    sa = f"((struct sockaddr_in *)args.{field})"
    s6 = f"((struct sockaddr_in6 *)args.{field})"
    return [
        (f"{sa}->sin_family == 2", "{AF_INET, %s, %d}", [f"ntop(2, {sa}->sin_addr.s_addr)", f"bswap({sa}->sin_port)"]),
        # SystemTap formats the address with the kernel's %pI6: eight 4-digit groups, no "::"
        (f"{sa}->sin_family == 10", "{AF_INET6, " + _PI6_FMT + ", %d}", _pi6_args(s6) + [f"bswap({s6}->sin6_port)"]),
        (f"{sa}->sin_family == 1", '{AF_UNIX, "%s"}', [f"str(((struct sockaddr_un *)args.{field})->sun_path)"]),
        (None, "{unknown sockaddr with sa_family=%d}", [f"{sa}->sin_family"]),
    ]


def _syscall_sites(env: Env, name: str, ret: bool, pp: str) -> List[Site]:
    if any(c in name for c in "*?["):
        names = sorted({e[len("sys_enter_"):] for g, e in env.events("sys_enter_*") if g == "syscalls"
                        and fnmatch.fnmatchcase(e[len("sys_enter_"):], name)})
        if not names:
            raise Unrealisable(f"no system call matches '{name}'")
    else:
        names = [name]
    out: List[Site] = []
    for stap_name in names:
        events = _SYSCALL_EVENTS.get(stap_name, [stap_name])
        for ev in events:
            fields = env.fields("syscalls", f"sys_{'exit' if ret else 'enter'}_{ev}")
            if fields is None:
                continue
            out.append(_syscall_site(env, stap_name, ev, ret, fields, pp))
        if not any(s.pp.endswith(f"syscall.{stap_name}" + (".return" if ret else "")) for s in out) and len(names) == 1:
            raise Unrealisable(f"this kernel has no system call '{stap_name}' (no tracepoint "
                               f"syscalls:sys_{'exit' if ret else 'enter'}_{events[0]})",
                               ["undertow stap -l 'syscall.*' lists the system calls"])
    return out


def _syscall_site(env: Env, stap_name: str, ev: str, ret: bool, fields: List[Tuple[str, str]], pp: str) -> Site:
    spec = f"tracepoint:syscalls:sys_{'exit' if ret else 'enter'}_{ev}"
    vs: Dict[str, Var] = {"name": Var("string", _quote(stap_name))}
    names = {n for n, _t in fields}
    if ret:
        vs["retval"] = Var("long", "args.ret")
        vs["retstr"] = Var("retstr", "args.ret")  # "-2 (ENOENT)", as SystemTap's return_str()
    else:
        parts: List[Tuple[Optional[str], str, List[str]]] = [(None, "", [])]
        for fname, ctype in fields:
            if fname == "__syscall_nr":
                continue
            if fname in _SOCKADDR.values() and _SOCKADDR.get(stap_name) == fname:
                fmt_vars = _sockaddr_variants(fname)
                parts = [(c2 if c1 is None else (c1 if c2 is None else f"({c1}) && ({c2})"),
                          f1 + (", " if f1 else "") + f2, a1 + a2) for c1, f1, a1 in parts for c2, f2, a2 in fmt_vars]
                vs["uaddr_af"] = Var("enum", f"((struct sockaddr_in *)args.{fname})->sin_family", names=AF_NAMES)
                vs["uaddr_ip"] = Var("comp", variants=[(fmt_vars[0][0], "%s", [fmt_vars[0][2][0]]),
                                                       (fmt_vars[1][0], _PI6_FMT, fmt_vars[1][2][:8]),
                                                       (None, "", [])])
                vs["uaddr_ip_port"] = Var("long", f"bswap(((struct sockaddr_in *)args.{fname})->sin_port)")
                vs["uaddr"] = Var("long", f"(uint64)args.{fname}")
                continue
            if _is_string_field(fname, ctype):
                vs[fname] = Var("string", f"str(args.{fname})")
                piece, arg = '"%s"', f"str(args.{fname})"
            elif "*" in ctype:
                vs[fname] = Var("long", f"(uint64)args.{fname}")
                piece, arg = "0x%x", f"(uint64)args.{fname}"
            else:
                vs[fname] = Var("long", f"args.{fname}")
                piece, arg = "%d", f"args.{fname}"
            parts = [(c, f + (", " if f else "") + piece, a + [arg]) for c, f, a in parts]
        vs["argstr"] = Var("comp", variants=parts)
    if not ret:
        # SystemTap's tapsets name a pointer parameter P P_uaddr (tapset/linux/sysc_*.stp),
        # and a few parameters otherwise
        for fname, ctype in fields:
            if "*" in ctype and fname in vs and f"{fname}_uaddr" not in vs:
                vs[f"{fname}_uaddr"] = Var("long", f"(uint64)args.{fname}")
        for alias, fname in _SYSCALL_RENAMES.get(stap_name, {}).items():
            if fname in names and alias not in vs:
                vs[alias] = vs.get(fname) or Var("long", f"args.{fname}")
    if "fd" in names:
        vs.setdefault("fd", Var("long", "args.fd"))
    if "flags" in names and "open" in ev:
        vs["flags"] = Var("long", "args.flags")
    vs["__args__"] = Var("args", ",".join(n for n, _t in fields if n != "__syscall_nr"))
    site = Site([spec], pp=f"syscall.{stap_name}" + (".return" if ret else ""), ppfunc=_SYS_PREFIX + ev,
                vars=vs, target=lambda n: (f"args.{n}" if n in names else ("args.ret" if n == "return" and ret
                                                                            else None)),
                note=spec)
    if ret:
        efields = env.fields("syscalls", f"sys_enter_{ev}")
        if efields is not None:
            site.entry = _syscall_site(env, stap_name, ev, False, efields, pp)
    return site


#: SystemTap's names of system call parameters where the kernel's tracepoint names them otherwise
_SYSCALL_RENAMES: Dict[str, Dict[str, str]] = {
    "wait4": {"pid": "upid", "status_uaddr": "stat_addr", "rusage_uaddr": "ru"},
    "waitid": {"pid": "upid", "infop_uaddr": "infop", "rusage_uaddr": "ru"},
    "poll": {"timeout": "timeout_msecs"},
    "futex": {"futex_uaddr": "uaddr", "utime_uaddr": "utime", "uaddr2_uaddr": "uaddr2"},
    "nanosleep": {"req_uaddr": "rqtp", "rem_uaddr": "rmtp"},
    "select": {"readfds_uaddr": "inp", "writefds_uaddr": "outp", "exceptfds_uaddr": "exp", "timeout_uaddr": "tvp"},
}

#: the prefix of system call entry functions on this architecture (arch/*/include/asm/syscall_wrapper.h)
_SYS_PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}.get(__import__("os").uname().machine, "sys_")


def _syscall_any(env: Env, ret: bool) -> List[Site]:
    """``syscall_any``: every system call, on ``raw_syscalls:sys_enter``/``sys_exit``; ``name``
    from the number (this architecture's table, arch/*/entry/syscalls)."""
    import os

    from ...kernel.syscall_table import names

    tp = "raw_syscalls:sys_exit" if ret else "raw_syscalls:sys_enter"
    if env.fields(*tp.split(":")) is None:
        raise Unrealisable(f"syscall_any needs the tracepoint {tp}, which this kernel lacks")
    table = names(os.uname().machine)
    if not table:
        raise Unrealisable(f"no system call table for {os.uname().machine} here")
    vs = {"name": Var("table", "args.id", names=table), "syscall_nr": Var("long", "args.id")}
    if ret:
        vs["retval"] = Var("long", "args.ret")
    return [Site([f"tracepoint:{tp}"], pp="syscall_any" + (".return" if ret else ""), ppfunc="",
                 vars=vs, target=lambda n: "args.ret" if n == "return" and ret else None,
                 note=f"tracepoint:{tp}")]


def _quote(s: str) -> str:
    from ..bt import quote_string

    return quote_string(s)


# --------------------------------------------------------------------------- vfs

_VFS = {"read": ["read", "pread64", "readv", "preadv", "preadv2"],
        "write": ["write", "pwrite64", "writev", "pwritev", "pwritev2"]}


def _vfs_sites(env: Env, op: str, ret: bool) -> List[Site]:
    out = []
    for ev in _VFS[op]:
        fields = env.fields("syscalls", f"sys_{'exit' if ret else 'enter'}_{ev}")
        if fields is None:
            continue
        spec = f"tracepoint:syscalls:sys_{'exit' if ret else 'enter'}_{ev}"
        vs = {
            "name": Var("string", _quote(f"vfs.{op}")),
            "file": Var("long", "(uint64)$__f"),
            "ino": Var("long", "$__f->f_inode->i_ino"),
            "dev": Var("long", "$__f->f_inode->i_sb->s_dev"),
            "pos": Var("long", "$__f->f_pos"),
            # __find_bdevname(): the block device's name (the super block's s_id is set from
            # it, fs/super.c), "N/A" for a file system on no block device
            "devname": Var("string", '$__f->f_inode->i_sb->s_bdev ? $__f->f_inode->i_sb->s_id : "N/A"'),
        }
        if not ret:
            vs["buf"] = Var("long", "(uint64)args.buf" if ev in ("read", "write", "pread64", "pwrite64")
                            else "(uint64)args.vec")
            if ev in ("read", "write", "pread64", "pwrite64"):
                vs[f"bytes_to_{op}"] = Var("long", "args.count")
                vs["count"] = Var("long", "args.count")
        else:
            vs["retval"] = Var("long", "args.ret")
            vs["bytes_read" if op == "read" else "bytes_written"] = Var("long", "args.ret")
        names = {n for n, _t in fields}
        # the file the descriptor names, in the calling task's table (fs/file.c files_lookup_fd_raw)
        prologue = ("$__f = ((struct task_struct *)curtask)->files->fdt->fd[args.fd];" if "fd" in names
                    else "$__f = (struct file *)0;")
        helpers = []
        if ret:  # the descriptor is not in the exit tracepoint: kept from the entry, per thread
            helpers.append(f"tracepoint:syscalls:sys_enter_{ev} {{ @__stap_fd[tid] = (int64)args.fd; }}")
            prologue = ("$__fd = @__stap_fd[tid]; delete(@__stap_fd[tid]);"
                        "$__f = ((struct task_struct *)curtask)->files->fdt->fd[$__fd];")
        site = Site([spec], pp=f"vfs.{op}" + (".return" if ret else ""), ppfunc=f"vfs_{op}", prologue=prologue,
                    vars=vs, target=lambda n, names=names, ret=ret: (
                        f"args.{n}" if n in names else ("args.ret" if ret and n == "return" else None)),
                    note=f"{spec} (the file from the descriptor, fd -> struct file)")
        site.helpers = helpers
        out.append(site)
    return out


def _vfs_open(env: Env, head: str) -> List[Site]:
    """``vfs.open[.return]``: the open system calls (open, openat, openat2, creat: each ends in
    vfs_open() when the path resolves); ``pathname`` is the path as the caller gave it (SystemTap:
    the resolved dentry's path), in the return its value at the entry."""
    ret = head.endswith(".return")
    out = []
    for ev in ("open", "openat", "openat2", "creat"):
        fields = env.fields("syscalls", f"sys_{'exit' if ret else 'enter'}_{ev}")
        if fields is None:
            continue
        site = _syscall_site(env, "open", ev, ret, fields, head)
        for s in [site] + ([site.entry] if site.entry is not None else []):
            s.vars["name"] = Var("string", _quote("vfs.open"))
            if "filename" in s.vars:
                s.vars["pathname"] = s.vars["filename"]
        site.pp, site.ppfunc = head, "vfs_open"
        if ret:  # a path that does not resolve never reaches vfs_open() (fs/namei.c do_open)
            site.guard = "args.ret >= 0"
        out.append(site)
    if not out:
        raise Unrealisable(f"{head} needs the open system calls' tracepoints, which this kernel lacks")
    return out


# --------------------------------------------------------------------------- network

_IP_VARS = {
    "saddr": Var("ip", "$__ip->saddr"),
    "daddr": Var("ip", "$__ip->daddr"),
    "protocol": Var("long", "$__ip->protocol"),
    "family": Var("long", "2"),
    "iphdr": Var("long", "(uint64)$__ip"),
    "length": Var("long", "$__len"),
    "sport": Var("long", "($__ip->protocol == 6 || $__ip->protocol == 17) ? bswap($__l4->source) : 0"),
    "dport": Var("long", "($__ip->protocol == 6 || $__ip->protocol == 17) ? bswap($__l4->dest) : 0"),
    "urg": Var("long", "$__ip->protocol == 6 ? $__th->urg : 0"),
    "ack": Var("long", "$__ip->protocol == 6 ? $__th->ack : 0"),
    "psh": Var("long", "$__ip->protocol == 6 ? $__th->psh : 0"),
    "rst": Var("long", "$__ip->protocol == 6 ? $__th->rst : 0"),
    "syn": Var("long", "$__ip->protocol == 6 ? $__th->syn : 0"),
    "fin": Var("long", "$__ip->protocol == 6 ? $__th->fin : 0"),
    "pf": Var("string", '"NFPROTO_IPV4"'),
    "nf_drop": Var("long", "0"), "nf_accept": Var("long", "1"), "nf_stolen": Var("long", "2"),
    "nf_queue": Var("long", "3"), "nf_repeat": Var("long", "4"), "nf_stop": Var("long", "5"),
}

# the IPv4 header of a packet being sent: skb->head + network_header (set by ip_output
# before the device queue); the transport header likewise (set by the protocol)
_OUT_PROLOGUE = (
    "$__skb = (struct sk_buff *)args.skbaddr;"
    "$__ip = (struct iphdr *)($__skb->head + $__skb->network_header);"
    "$__l4 = (struct udphdr *)($__skb->head + $__skb->transport_header);"
    "$__th = (struct tcphdr *)($__skb->head + $__skb->transport_header);"
    "$__len = $__skb->len - ($__skb->network_header - ((uint64)$__skb->data - (uint64)$__skb->head));"
)
# a packet received: skb->data is at the network header when netif_receive_skb runs
# (eth_type_trans pulled the link header); the transport header follows IHL * 4 bytes
_IN_PROLOGUE = (
    "$__skb = (struct sk_buff *)args.skbaddr;"
    "$__ip = (struct iphdr *)$__skb->data;"
    "$__l4 = (struct udphdr *)($__skb->data + $__ip->ihl * 4);"
    "$__th = (struct tcphdr *)($__skb->data + $__ip->ihl * 4);"
    "$__len = $__skb->len;"
)
_IPV4 = "$__skb->protocol == 0x0008"  # htons(ETH_P_IP) on a little-endian CPU


def _nf_sites(env: Env, hook: str) -> List[Site]:
    if hook in ("local_out", "post_routing"):
        tp, prologue, note = "net:net_dev_queue", _OUT_PROLOGUE, "IPv4 packets as they are queued to a device"
    elif hook in ("local_in", "pre_routing"):
        tp, prologue, note = "net:netif_receive_skb", _IN_PROLOGUE, "IPv4 packets as a device hands them to the stack"
    else:
        raise Unrealisable(f"netfilter.ip.{hook} cannot be realised without kprobes or a netfilter hook program",
                           ["netfilter.ip.local_in/local_out/pre_routing/post_routing are realised on net: "
                            "tracepoints"])
    if env.fields(*tp.split(":")) is None:
        raise Unrealisable(f"netfilter.ip.{hook} needs the tracepoint {tp}, which this kernel lacks")
    vs = dict(_IP_VARS)
    return [Site([f"tracepoint:{tp}"], pp=f"netfilter.ip.{hook}", ppfunc="nf_hook_slow", prologue=prologue,
                 guard=_IPV4, vars=vs, note=f"tracepoint:{tp} ({note})")]


def _tcp_receive(env: Env) -> List[Site]:
    site = _nf_sites(env, "local_in")[0]
    site.guard = f"{_IPV4} && $__ip->protocol == 6"
    site.pp, site.ppfunc = "tcp.receive", "tcp_v4_rcv"
    site.note = "tracepoint:net:netif_receive_skb (IPv4 TCP segments as the device hands them to the stack)"
    return [site]


def _udp_send(env: Env) -> List[Site]:
    site = _nf_sites(env, "local_out")[0]
    site.guard = f"{_IPV4} && $__ip->protocol == 17"
    site.pp, site.ppfunc = "udp.sendmsg", "udp_sendmsg"
    site.vars = dict(site.vars)
    site.vars["size"] = Var("long", "bswap($__l4->len) - 8")
    site.note = "tracepoint:net:net_dev_queue (IPv4 UDP datagrams as they are queued to a device)"
    return [site]


def _udp_recv(env: Env) -> List[Site]:
    site = _nf_sites(env, "local_in")[0]
    site.guard = f"{_IPV4} && $__ip->protocol == 17"
    site.pp, site.ppfunc = "udp.recvmsg", "udp_rcv"
    site.note = "tracepoint:net:netif_receive_skb (IPv4 UDP datagrams as the device hands them to the stack)"
    return [site]


def _sock_length(env: Env, head: str) -> List[Site]:
    """``tcp.sendmsg``/``tcp.recvmsg`` and their returns on ``sock:sock_send_length`` /
    ``sock_recv_length`` (Linux 6.3+: sock_sendmsg()/sock_recvmsg() as the protocol's call
    returns, net/socket.c), TCP sockets only: one event per call, after it."""
    send = head.startswith("tcp.sendmsg")
    ev = "sock_send_length" if send else "sock_recv_length"
    if env.fields("sock", ev) is None:
        raise Unrealisable(f"{head} needs the tracepoint sock:{ev} (Linux 6.3+), which this kernel lacks",
                           ["tcp.receive sees TCP segments; syscall.sendto/recvfrom see the calls"])
    sk = "((struct sock *)args.sk)->__sk_common"
    vs = {
        "name": Var("string", _quote(head[:-len(".return")] if head.endswith(".return") else head)),
        "sock": Var("long", "(uint64)args.sk"), "family": Var("long", "args.family"),
        "size": Var("long", "args.ret"),
        "saddr": Var("ip", f"{sk}.skc_rcv_saddr"), "daddr": Var("ip", f"{sk}.skc_daddr"),
        "sport": Var("long", f"{sk}.skc_num"), "dport": Var("long", f"bswap({sk}.skc_dport)"),
    }
    if head.endswith(".return"):
        vs["retval"] = Var("long", "args.ret")
    spec = f"tracepoint:sock:{ev}"
    site = Site([spec], pp=head, ppfunc="tcp_sendmsg" if send else "tcp_recvmsg", vars=vs,
                guard="args.protocol == 6",
                target=lambda n: "(uint64)args.sk" if n == "sk" else ("args.ret" if n in ("return", "size") else None),
                note=f"{spec} (TCP sockets; as the call returns: size is what was "
                     f"{'sent' if send else 'received'}, or the error)")
    return [site]


# --------------------------------------------------------------------------- tracepoint-backed aliases

#: alias -> (tracepoint, {variable: (type, bpftrace expression)}, ppfunc)
_TP_ALIASES: Dict[str, Tuple[str, Dict[str, Tuple[str, str]], str]] = {
    # an exec attempt (its path as the caller gave it), and its success
    "kprocess.exec": ("syscalls:sys_enter_execve|syscalls:sys_enter_execveat",
                      {"filename": ("string", "str(args.filename)")}, "do_execveat_common"),
    "kprocess.exec_complete": ("sched:sched_process_exec", {"success": ("long", "1"), "errno": ("long", "0")},
                               "exec_binprm"),
    "kprocess.exit": ("sched:sched_process_exit", {"code": ("long", "((struct task_struct *)curtask)->exit_code"),
                                                   "task": ("long", "(uint64)curtask")}, "do_exit"),
    # the new task itself is the tracepoint's second argument (TP_PROTO(parent, child))
    "kprocess.create": ("btf:sched_process_fork", {"task": ("long", "(uint64)args.{child}"),
                                                   "new_pid": ("long", "args.{child}->tgid"),
                                                   "new_tid": ("long", "args.{child}->pid")}, "wake_up_new_task"),
    "kprocess.release": ("btf:sched_process_free", {"task": ("long", "(uint64)args.{p}"),
                                                    "pid": ("long", "args.{p}->tgid"),
                                                    "released_pid": ("long", "args.{p}->tgid"),
                                                    "released_tid": ("long", "args.{p}->pid")}, "release_task"),
    "process.end": ("sched:sched_process_exit", {}, "do_exit"),
    "process.thread.end": ("sched:sched_process_exit", {}, "do_exit"),  # every thread's exit
    "scheduler.process_exit": ("sched:sched_process_exit", {"pid": ("long", "args.pid"),
                                                            "priority": ("long", "args.prio")}, "do_exit"),
    "scheduler.process_fork": ("sched:sched_process_fork", {"parent_pid": ("long", "args.parent_pid"),
                                                            "child_pid": ("long", "args.child_pid")}, "kernel_clone"),
    "scheduler.process_exec": ("sched:sched_process_exec", {"filename": ("string", "str(args.filename)")},
                               "exec_binprm"),
    "scheduler.ctxswitch": ("sched:sched_switch", {
        "prev_pid": ("long", "args.prev_pid"), "next_pid": ("long", "args.next_pid"),
        "prev_task_name": ("string", "args.prev_comm"), "next_task_name": ("string", "args.next_comm"),
        "prev_priority": ("long", "args.prev_prio"), "next_priority": ("long", "args.next_prio"),
        "prevtsk_state": ("long", "args.prev_state")}, "__schedule"),
    "scheduler.wakeup": ("sched:sched_wakeup", {"task_pid": ("long", "args.pid"), "task_cpu": ("long", "args.target_cpu"),
                                                "task_priority": ("long", "args.prio")}, "try_to_wake_up"),
    "scheduler.wakeup_new": ("sched:sched_wakeup_new", {"task_pid": ("long", "args.pid")}, "wake_up_new_task"),
    "scheduler.migrate": ("sched:sched_migrate_task", {"pid": ("long", "args.pid"), "cpu_from": ("long", "args.orig_cpu"),
                                                       "cpu_to": ("long", "args.dest_cpu")}, "set_task_cpu"),
    "signal.send": ("signal:signal_generate", {"sig": ("long", "args.sig"), "sig_pid": ("long", "args.pid"),
                                               "pid_name": ("string", "args.comm"), "sig_name": ("enum", "args.sig")},
                    "__send_signal_locked"),
    "signal.deliver": ("signal:signal_deliver", {"sig": ("long", "args.sig"), "sig_name": ("enum", "args.sig")},
                       "handle_signal"),
    "irq_handler.entry": ("irq:irq_handler_entry", {"irq": ("long", "args.irq"), "dev_name": ("string", "str(args.name)")},
                          "handle_irq_event_percpu"),
    "netdev.transmit": ("net:net_dev_queue", {"dev_name": ("string", "str(args.name)"), "length": ("long", "args.len"),
                                              "protocol": ("long", "bswap(((struct sk_buff *)args.skbaddr)->protocol)"),
                                              "truesize": ("long", "((struct sk_buff *)args.skbaddr)->truesize")},
                        "__dev_queue_xmit"),
    "netdev.receive": ("net:netif_receive_skb", {"dev_name": ("string", "str(args.name)"), "length": ("long", "args.len"),
                                                 "protocol": ("long", "bswap(((struct sk_buff *)args.skbaddr)->protocol)"),
                                                 "netdev": ("long", "(uint64)((struct sk_buff *)args.skbaddr)->dev")},
                       "__netif_receive_skb_core"),
    "vm.pagefault": ("exceptions:page_fault_user|exceptions:page_fault_kernel",
                     {"address": ("long", "args.address"), "write_access": ("long", "(args.error_code & 2) >> 1")},
                     "handle_mm_fault"),
    "ioblock.request": ("block:block_bio_queue", {"dev": ("long", "args.dev"), "sector": ("long", "args.sector"),
                                                  "size": ("long", "args.nr_sector * 512")}, "submit_bio_noacct"),
    "irq_handler.exit": ("irq:irq_handler_exit", {"irq": ("long", "args.irq"), "ret": ("long", "args.ret")},
                         "handle_irq_event_percpu"),
    "softirq.entry": ("irq:softirq_entry", {"vec_nr": ("long", "args.vec")}, "handle_softirqs"),
    "softirq.exit": ("irq:softirq_exit", {"vec_nr": ("long", "args.vec")}, "handle_softirqs"),
    "workqueue.execute": ("workqueue:workqueue_execute_start", {"wq_thread": ("long", "(uint64)curtask"),
                                                               "work_func": ("long", "(uint64)args.function")},
                          "process_one_work"),
    "ioblock_trace.request": ("block:block_rq_issue", {"sector": ("long", "args.sector"), "bytes_done": ("long", "args.bytes"),
                                                       "rw": ("string", "args.rwbs")}, "blk_mq_start_request"),
    "process.begin": ("sched:sched_process_exec", {}, "exec_binprm"),
    "tcp.disconnect": ("tcp:tcp_destroy_sock", {"sport": ("long", "args.sport"), "dport": ("long", "args.dport"),
                                                "saddr": ("string", "ntop(2, *(uint32 *)args.saddr)"),
                                                "daddr": ("string", "ntop(2, *(uint32 *)args.daddr)"),
                                                "sock": ("long", "(uint64)args.skaddr")}, "tcp_disconnect"),
    "kernel.trace_sched_switch": ("sched:sched_switch", {}, "__schedule"),
}
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
                8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM",
                15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP",
                21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM",
                27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}


def _tp_alias(env: Env, name: str) -> List[Site]:
    tps, table, ppfunc = _TP_ALIASES[name]
    if tps.startswith("btf:"):  # the typed raw tracepoint (tp_btf): its prototype's arguments
        from .. import ir

        event = tps[4:]
        params = env.tp_params(event)
        if params is None:
            raise Unrealisable(f"{name} needs the typed raw tracepoint {event} (BTF, Linux 6.4+ names its "
                               "arguments), which this kernel lacks")
        # the table's expressions name the arguments {name}: as the resolver names them here
        names = dict(params)
        try:
            vs = {v: Var(ty, expr.format(**names)) for v, (ty, expr) in table.items()}
        except KeyError as e:
            raise Unrealisable(f"{name}: the tracepoint {event} has no argument {e} here") from None
        return [Site([ir.AttachPoint("tp_btf", target=event)], pp=name, ppfunc=ppfunc, vars=vs,
                     note=f"tp_btf:{event} ({', '.join(n for n, _a in params)})")]
    here = [(tp, env.fields(*tp.split(":"))) for tp in tps.split("|")]  # "a|b": both, where they exist
    here = [(tp, f) for tp, f in here if f is not None]
    if not here:
        raise Unrealisable(f"{name} needs the tracepoint {tps.replace('|', ' or ')}, which this kernel lacks")
    names = {n for _tp, fields in here for n, _t in fields}
    vs = {}
    for v, (ty, expr) in table.items():
        vs[v] = Var("enum", expr, names=SIGNAL_NAMES) if ty == "enum" else Var(ty, expr)
    specs = [f"tracepoint:{tp}" for tp, _f in here]
    return [Site(specs, pp=name, ppfunc=ppfunc, vars=vs,
                 target=lambda n: f"args.{n}" if n in names else None, note=", ".join(specs))]


#: probe-point families (the first parts) undertow realises, for -l and messages
FAMILIES = ("begin", "end", "error", "never", "timer.s(N)", "timer.ms(N)", "timer.us(N)", "timer.hz(N)",
            "timer.jiffies(N)", "timer.profile", "syscall.NAME[.return]", "nd_syscall.NAME[.return]",
            "vfs.read", "vfs.write", "vfs.open", "netfilter.ip.local_in", "netfilter.ip.local_out", "netfilter.ip.pre_routing",
            "netfilter.ip.post_routing", "tcp.receive", "tcp.sendmsg[.return]", "tcp.recvmsg[.return]",
            "udp.recvmsg", "udp.sendmsg", 'kernel.function("F")[.call|.return]',
            'module("M").function("F")[.return]', 'kernel.trace("TP")', 'process("PATH").function("F")[.return]',
            'process("PATH").mark("M")', *sorted(_TP_ALIASES))


def realise(env: Env, parts: Sequence[Tuple[str, object]], pp: str) -> Optional[List[Site]]:
    """The sites of a tapset probe point (``parts`` as the parser gives them), None when the
    point is not a tapset alias this module knows. Raises :class:`Unrealisable`."""
    names = [p for p, _a in parts]
    head = ".".join(names)
    if names[0] in ("syscall", "nd_syscall", "nd1_syscall", "dw_syscall") and len(names) >= 2:
        ret = names[-1] == "return"
        core = names[1:-1] if ret else names[1:]
        if len(core) != 1:
            raise Unrealisable(f"unknown system call probe point '{pp}'")
        return _syscall_sites(env, core[0], ret, pp)
    if head in ("syscall_any", "syscall_any.return", "nd_syscall_any", "nd_syscall_any.return"):
        return _syscall_any(env, head.endswith(".return"))
    if head in ("vfs.open", "vfs.open.return"):
        return _vfs_open(env, head)
    if names[0] == "vfs" and len(names) >= 2 and names[1] in _VFS:
        return _vfs_sites(env, names[1], names[-1] == "return")
    if head.startswith("netfilter.ip.") and len(names) == 3:
        return _nf_sites(env, names[2])
    if head.startswith("netfilter.ipv4.") and len(names) == 3:
        return _nf_sites(env, names[2])
    if head == "tcp.receive":
        return _tcp_receive(env)
    if head in ("udp.recvmsg", "udp.recvmsg.return"):
        return _udp_recv(env)
    if head == "udp.sendmsg":
        return _udp_send(env)
    if head in ("tcp.sendmsg", "tcp.sendmsg.return", "tcp.recvmsg", "tcp.recvmsg.return"):
        return _sock_length(env, head)
    if names[0] in ("procfs", "prometheus"):
        raise Unrealisable(f"{head}: procfs probes serve a file under /proc/systemtap/ that SystemTap's kernel "
                           "module makes; undertow loads no module",
                           ["print the values from an end or timer probe instead"])
    if head in ("udp.disconnect",):
        raise Unrealisable(f"{head} is not realised on tracepoints (no tracepoint sees udp_disconnect())",
                           ["syscall.connect sees the calls"])
    if head in _TP_ALIASES:
        return _tp_alias(env, head)
    if any(c in head for c in "*?") and not any(a is not None for _n, a in parts):
        matched = [a for a in _TP_ALIASES if fnmatch.fnmatchcase(a, head)]
        if matched:
            return [s for a in matched for s in _tp_alias(env, a)]
    return None


def list_points(env: Env, pattern: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """Probe points matching ``pattern`` and their variables (``-l``/``-L``)."""
    out: List[Tuple[str, List[Tuple[str, str]]]] = []
    for head in ("kernel.function(", "kernel.trace("):
        if pattern.startswith(head) and pattern.endswith(")"):
            inner = pattern[len(head):-1].strip('"')
            if head == "kernel.trace(":
                for g, e in env.events(inner.split(":", 1)[-1]):
                    fields = env.fields(g, e) or []
                    out.append((f'kernel.trace("{g}:{e}")', [(f"${n}", "long" if "char" not in t else "string")
                                                             for n, t in fields]))
            else:
                out.extend((f'kernel.function("{f}")', []) for f in env.functions(inner))
            return out
    candidates: List[Tuple[str, Sequence[Tuple[str, object]]]] = []
    for name in ("syscall_any", "syscall_any.return", "vfs.open", "vfs.open.return", "vfs.read", "vfs.write",
                 "vfs.read.return",
                 "vfs.write.return", "netfilter.ip.local_in", "netfilter.ip.local_out",
                 "netfilter.ip.pre_routing", "netfilter.ip.post_routing", "tcp.receive", "tcp.sendmsg",
                 "tcp.sendmsg.return", "tcp.recvmsg", "tcp.recvmsg.return", "udp.recvmsg",
                 "udp.sendmsg", *sorted(_TP_ALIASES)):
        candidates.append((name, [(p, None) for p in name.split(".")]))
    if pattern.startswith(("syscall", "nd_syscall")) or pattern in ("*", "**"):
        head = "nd_syscall" if pattern.startswith("nd_") else "syscall"
        for g, e in env.events("sys_enter_*"):
            if g == "syscalls":
                n = e[len("sys_enter_"):]
                candidates.append((f"{head}.{n}", [(head, None), (n, None)]))
                candidates.append((f"{head}.{n}.return", [(head, None), (n, None), ("return", None)]))
    seen = set()
    for name, parts in candidates:
        if name in seen or not (fnmatch.fnmatchcase(name, pattern) or (pattern.endswith("*") is False and
                                                                         name.startswith(pattern + "."))):
            continue
        seen.add(name)
        try:
            sites = realise(env, parts, name) or []
        except Unrealisable:
            continue
        if not sites:
            continue
        vs = sites[0].vars
        out.append((name, [(v, "string" if vs[v].ty in ("string", "comp", "enum", "table", "ip", "retstr") else "long")
                           for v in sorted(vs) if not v.startswith("__")]))
    return out


def string_var_names() -> "frozenset":
    """Names of tapset variables that are strings somewhere (the elaborator types globals
    assigned from them before it knows the probe point)."""
    out = {"name", "argstr", "retstr", "uaddr_af", "uaddr_ip", "filename", "pathname", "oldname", "newname"}
    out |= {v for v, var in _IP_VARS.items() if var.ty in ("string", "ip")}
    out |= {v for _tp, table, _f in _TP_ALIASES.values() for v, (ty, _e) in table.items()
            if ty in ("string", "enum")}
    return frozenset(out)
