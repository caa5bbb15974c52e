"""Kernel memory, read-only, through ``/proc/kcore`` (an ELF core file of the running kernel:
``PT_LOAD`` segments map kernel virtual addresses to file offsets, fs/proc/kcore.c), and the
system call table checked with it: every ``sys_call_table`` entry must point at the start of
a ``__x64_sys_*``/``__arm64_sys_*`` function (or ``sys_ni_syscall``) in core kernel text.

Where it cannot run: a kernel under lockdown (``/proc/kcore`` is refused at the
*confidentiality* level, or absent without ``CONFIG_PROC_KCORE``), and kernels whose kallsyms
lists no ``sys_call_table`` (a data symbol: ``CONFIG_KALLSYMS_ALL``).
"""

from __future__ import annotations

import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

from .report import Context

__all__ = ["Kcore", "check_syscall_table", "check_seq_ops", "SEQ_OPS"]

CHECK = "hooks"
PT_LOAD = 1


class Kcore:
    """``/proc/kcore`` opened for reading; :meth:`read` a kernel virtual address range."""

    def __init__(self, path: str = "/proc/kcore") -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            hdr = os.pread(self.fd, 64, 0)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
                raise OSError(22, "not a 64-bit ELF core")
            phoff = struct.unpack_from("<Q", hdr, 32)[0]
            phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
            table = os.pread(self.fd, phentsize * phnum, phoff)
            self.loads: List[Tuple[int, int, int]] = []  # (vaddr, filesz, offset)
            for i in range(phnum):
                p_type, _f, off, vaddr, _pa, filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
                if p_type == PT_LOAD:
                    self.loads.append((vaddr, filesz, off))
        except BaseException:
            os.close(self.fd)
            raise

    def read(self, addr: int, size: int) -> Optional[bytes]:
        """``size`` bytes at kernel address ``addr``, or None when no segment holds them."""
        for vaddr, filesz, off in self.loads:
            if vaddr <= addr and addr + size <= vaddr + filesz:
                data = os.pread(self.fd, size, off + addr - vaddr)
                return data if len(data) == size else None
        return None

    def close(self) -> None:
        os.close(self.fd)


def check_syscall_table(ctx: Context, ks: object) -> None:
    """Compare each ``sys_call_table`` entry with the symbol it should point at."""
    from ...kernel.syscall_table import names

    rep = ctx.report
    arch = os.uname().machine
    prefix = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}.get(arch)
    if prefix is None:
        rep.not_checked(CHECK, "sys_call_table", f"not known on {arch}")
        return
    sym = ks.lookup("sys_call_table")  # type: ignore[attr-defined]
    stext, etext = ks.lookup("_stext"), ks.lookup("_etext")  # type: ignore[attr-defined]
    if sym is None or stext is None or etext is None or not ks.addresses_available:  # type: ignore[attr-defined]
        rep.not_checked(CHECK, "sys_call_table", "kallsyms lists no sys_call_table (a data symbol: "
                        "CONFIG_KALLSYMS_ALL=n) or hides addresses")
        return
    nrs = names(arch)
    size = ks.size_at(sym.address) or 0  # type: ignore[attr-defined]
    count = min(max(nrs) + 1, size // 8) if size else max(nrs) + 1
    try:
        kc = Kcore(os.path.join(ctx.proc, "kcore"))
    except OSError as e:
        rep.not_checked(CHECK, "sys_call_table", f"/proc/kcore: {e.strerror or e} (lockdown refuses it; "
                        "without it the table's entries cannot be read)")
        return
    try:
        raw = kc.read(sym.address, count * 8)
    finally:
        kc.close()
    if raw is None:
        rep.not_checked(CHECK, "sys_call_table", "/proc/kcore maps no segment over the table")
        return
    # every address a system call function starts at (an entry's symbol may have aliases at
    # the same address: __x64_sys_getpid and __do_sys_getpid for a call with no arguments)
    valid = {k.address for k in ks.match(prefix + "*") if k.module is None}  # type: ignore[attr-defined]
    valid |= {k.address for k in ks.lookup_all("sys_ni_syscall")}  # type: ignore[attr-defined]
    for nr in range(count):
        addr = struct.unpack_from("<Q", raw, nr * 8)[0]
        if addr == 0:
            break  # past the table (NR_syscalls entries, each set: sys_ni_syscall at the least) in its padding
        in_text = stext.address <= addr < etext.address
        if in_text and addr in valid:
            continue
        got = ks.symbolize(addr)  # type: ignore[attr-defined]
        name = nrs.get(nr, str(nr))
        where = f"{got[0]}+{got[1]:#x}" + (f" [{got[2]}]" if got and got[2] else "") if got else "no symbol"
        rep.add(CHECK, "high", f"sys_call_table[{nr}] ({name}) does not point at a system call function",
                {"sys_call_table (/proc/kcore)": f"entry {nr} = {addr:#x}",
                 "kallsyms": f"{where}; core text is {stext.address:#x}-{etext.address:#x}"
                             + ("" if in_text else " (outside it)")},
                f"the table was patched (a module rootkit's hook on {name}); on x86-64 6.9+ the table is not "
                "used for dispatch, so this is evidence, not the hook that runs: look at enabled_functions too",
                key=f"sys_call_table:{nr}")


#: the ``struct seq_operations`` behind each /proc/net table (kallsyms names of kernel 6.1 to
#: 6.18: net/ipv4/tcp_ipv4.c tcp4_seq_ops, net/ipv6/tcp_ipv6.c tcp6_seq_ops, net/ipv4/udp.c
#: udp_seq_ops, net/ipv6/udp.c udp6_seq_ops, net/ipv4/raw.c raw_seq_ops, net/ipv6/raw.c
#: raw6_seq_ops, net/packet/af_packet.c packet_seq_ops, net/unix/af_unix.c unix_seq_ops)
SEQ_OPS = (("tcp", "tcp4_seq_ops"), ("tcp6", "tcp6_seq_ops"), ("udp", "udp_seq_ops"),
           ("udp6", "udp6_seq_ops"), ("raw", "raw_seq_ops"), ("raw6", "raw6_seq_ops"),
           ("packet", "packet_seq_ops"), ("unix", "unix_seq_ops"))
#: include/linux/seq_file.h: struct seq_operations { start; stop; next; show; }
SEQ_FIELDS = ("start", "stop", "next", "show")


def check_seq_ops(ctx: Context, ks: object) -> None:
    """Each pointer of the ``struct seq_operations`` behind /proc/net/{tcp,udp,raw,packet,
    unix}[6] must be the start of a function in core kernel text (or, when the object itself
    lives in a module such as ``ipv6``, in that module): a rootkit that swaps ``show`` for
    its own filter hides connections from netstat without touching any code."""
    rep = ctx.report
    what = "/proc/net seq_operations"
    stext, etext = ks.lookup("_stext"), ks.lookup("_etext")  # type: ignore[attr-defined]
    if stext is None or etext is None or not ks.addresses_available:  # type: ignore[attr-defined]
        rep.not_checked(CHECK, what, "kallsyms hides addresses or lists no _stext/_etext")
        return
    objs = [(table, ks.lookup(name)) for table, name in SEQ_OPS]  # type: ignore[attr-defined]
    found = [(t, s) for t, s in objs if s is not None]
    if not found:
        rep.not_checked(CHECK, what, "kallsyms lists none of " + ", ".join(n for _t, n in SEQ_OPS)
                        + " (data symbols: CONFIG_KALLSYMS_ALL=n)")
        return
    missing = [n for (t, n), (_t, s) in zip(SEQ_OPS, objs) if s is None]
    try:
        kc = Kcore(os.path.join(ctx.proc, "kcore"))
    except OSError as e:
        rep.not_checked(CHECK, what, f"/proc/kcore: {e.strerror or e} (lockdown refuses it)")
        return
    unread = []
    try:
        for table, sym in found:
            raw = kc.read(sym.address, 8 * len(SEQ_FIELDS))
            if raw is None:
                unread.append(sym.name)
                continue
            for i, field in enumerate(SEQ_FIELDS):
                addr = struct.unpack_from("<Q", raw, i * 8)[0]
                got = ks.symbolize(addr)  # type: ignore[attr-defined]
                in_text = stext.address <= addr < etext.address
                if got is not None and got[1] == 0 and ((in_text and got[2] is None) or
                                                        (sym.module is not None and got[2] == sym.module)):
                    continue
                if addr == 0 and field != "show":
                    continue  # an unset optional callback (none of these leaves one unset today)
                where = (f"{got[0]}+{got[1]:#x}" + (f" [{got[2]}]" if got[2] else "")) if got else "no symbol"
                rep.add(CHECK, "high", f"/proc/net/{table}: {sym.name}.{field} does not point at a kernel function",
                        {f"{sym.name} (/proc/kcore)": f".{field} = {addr:#x}",
                         "kallsyms": f"{where}; core text is {stext.address:#x}-{etext.address:#x}"
                                     + ("" if in_text else " (outside it)")},
                        f"a rootkit replaced the /proc/net/{table} iterator to hide sockets from netstat: "
                        "compare the sockets check (sock_diag, the BPF iterator) and look for a hidden module",
                        key=f"seq_ops:{sym.name}.{field}")
    finally:
        kc.close()
    if unread:
        rep.not_checked(CHECK, what, "/proc/kcore maps no segment over " + ", ".join(unread))
    if missing and len(missing) < len(SEQ_OPS):
        rep.note(CHECK, "some /proc/net seq_operations are not in kallsyms",
                 "this kernel names them differently or lacks the protocol (not checked: "
                 + ", ".join(missing) + ")")
