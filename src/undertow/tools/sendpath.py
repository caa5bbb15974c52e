"""The message as the socket layer gets it: BPF code (bpftrace language) for kprobes on the
protocols' send functions, which every way of sending goes through (issue 18).

``udp_sendmsg``/``udpv6_sendmsg``/``tcp_sendmsg`` (``struct sock *sk, struct msghdr *msg,
size_t len``) are called for ``sendto``/``sendmsg``/``sendmmsg``/``write``/``writev``, for
io_uring's send/sendmsg/write requests (io_uring/net.c calls ``sock_sendmsg``) and, from
Linux 6.5 on, for ``sendfile``/``splice`` (``splice_to_socket()`` sends the pipe's pages with
``MSG_SPLICE_PAGES``); before 6.5 those go through ``udp_sendpage``/``tcp_sendpage`` (``struct
sock *sk, struct page *page, int offset, size_t size, int flags``), hooked where the kernel
has them. The data is found through ``msg->msg_iter`` by its type (``enum iter_type``, whose
values differ between kernels: read from BTF):

- ``ITER_UBUF``: one user buffer (``ubuf``; 6.0+: ``send``/``sendto``, io_uring's send);
- ``ITER_IOVEC``: an array of ``struct iovec`` (kernel copy) of user buffers; a 2-byte first
  iovec (a TCP length prefix written apart, ``dig +tcp``) is skipped for the second;
- ``ITER_KVEC``: kernel buffers (in-kernel senders);
- ``ITER_BVEC``: pages (``sendfile``/``splice`` on 6.5+), read through the kernel's direct
  map: ``page_offset_base + pfn * PAGE_SIZE`` with ``pfn = (page - vmemmap_base) /
  sizeof(struct page)`` (x86-64's ``page_to_virt()``; the two bases are kallsyms variables
  under ``CONFIG_RANDOMIZE_MEMORY``, constants without it). Without them a page-backed send
  is reported with no bytes.

The destination is ``msg->msg_name`` (the kernel's copy of the address) for a UDP send that
names one, else the socket's peer (``sk_daddr``/``sk_v6_daddr``, ``sk_dport``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["Facts", "facts", "locate", "page_address", "syscall_nr", "syscall_arg3", "syscall_name"]

#: x86-64's direct map and struct page array bases without CONFIG_RANDOMIZE_MEMORY
#: (Documentation/arch/x86/x86_64/mm.rst)
DEFAULT_BASES = (0xFFFF888000000000, 0xFFFFEA0000000000)


class Facts:
    """What the program needs to know about this kernel: the ``iter_type`` values, the
    iovec member's name (``iov`` before 6.4, ``__iov`` since), ``sizeof(struct page)``, how
    to read the direct-map bases (None: page-backed data not read), the send functions."""

    __slots__ = ("iters", "iov", "page_size", "bases", "funcs", "regs")

    def __init__(self, iters: Dict[str, int], iov: str, page_size: int, bases: Optional[Tuple[str, str]],
                 funcs: Sequence[str], regs: Optional[Tuple[int, int]] = None) -> None:
        self.iters, self.iov, self.page_size, self.bases, self.funcs = iters, iov, page_size, bases, list(funcs)
        self.regs = regs  # (THREAD_SIZE, sizeof(struct pt_regs)) on x86-64, else None


def facts(kernel: Any, want: Sequence[str]) -> Facts:
    """:class:`Facts` from the kernel's BTF and kallsyms; ``want``: the send functions the
    caller would hook (those kallsyms lacks are left out)."""
    import os

    btf = kernel.btf()
    iters: Dict[str, int] = {}
    for name in ("ITER_UBUF", "ITER_IOVEC", "ITER_KVEC", "ITER_BVEC"):
        c = btf.enum_constant(name)
        if c is not None:
            iters[name] = int(c[0])
    names = {m.name for m in btf.members("iov_iter")}
    iov = "__iov" if "__iov" in names else "iov"
    page_size = int(btf.find("page", "struct", hints=False).size)
    syms = kernel.kallsyms()
    bases: Optional[Tuple[str, str]] = None
    if os.uname().machine == "x86_64":
        if "page_offset_base" in syms and "vmemmap_base" in syms:
            bases = ('*(uint64 *)kaddr("page_offset_base")', '*(uint64 *)kaddr("vmemmap_base")')
        elif not _randomized(kernel):
            bases = (hex(DEFAULT_BASES[0]), hex(DEFAULT_BASES[1]))
    regs: Optional[Tuple[int, int]] = None
    if os.uname().machine == "x86_64":
        # THREAD_SIZE: 16 KiB, 32 KiB with KASAN (arch/x86/include/asm/page_64_types.h)
        regs = (32768 if "kasan_check_range" in syms else 16384, int(btf.find("pt_regs", "struct", hints=False).size))
    return Facts(iters, iov, page_size, bases, [f for f in want if f in syms], regs)


def _randomized(kernel: Any) -> bool:
    """Whether the direct map may be moved (CONFIG_RANDOMIZE_MEMORY; unknown: assume so)."""
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return "CONFIG_RANDOMIZE_MEMORY=y" in f.read()
    except OSError:
        return True


def _regs(f: Facts) -> str:
    size, regs = f.regs or (0, 0)
    return f"((struct pt_regs *)((uint64)((struct task_struct *)curtask)->stack + {size} - {regs}))"


def syscall_nr(f: Facts) -> str:
    """The current task's syscall number (``task_pt_regs(current)->orig_ax``: the top of its
    kernel stack, x86-64), or 0 where unknown. An io_uring worker thread, which never entered
    by a syscall, has -1 there."""
    return "0" if f.regs is None else _regs(f) + "->orig_ax"


def syscall_arg3(f: Facts) -> str:
    """The current syscall's third argument (``dx`` of the saved registers, x86-64), or 0."""
    return "0" if f.regs is None else _regs(f) + "->dx"


def syscall_name(nr: int) -> Optional[str]:
    """The name of x86-64 syscall ``nr`` (``sendfile`` for ``sendfile64``), None if unknown."""
    import os

    if os.uname().machine != "x86_64" or nr <= 0:
        return None
    from ..kernel.syscall_table import names

    name = names("x86_64").get(nr)
    return "sendfile" if name == "sendfile64" else name


def page_address(f: Facts, page: str) -> str:
    """The direct-map address of ``page`` (a ``struct page *`` expression), or 0."""
    if f.bases is None:
        return "0"
    pob, vmb = f.bases
    return f"({pob} + (((uint64){page} - {vmb}) / {f.page_size}) * 4096)"


def locate(f: Facts, msg: str, length: str) -> str:
    """Code setting ``$b`` (address), ``$n`` (bytes), ``$pre`` (1: a 2-byte first iovec was
    skipped) and ``$user`` (1: ``$b`` is a user address) for the data of ``msg`` (a ``struct
    msghdr *`` expression) whose length is ``length``."""
    it = f.iters
    out = [f"""
    $it = {msg}->msg_iter.iter_type;
    $off = {msg}->msg_iter.iov_offset;
    $b = (uint64)0;
    $n = (uint64){length};
    $pre = 0;
    $user = 1;"""]
    if "ITER_UBUF" in it:
        out.append(f"""
    if ($it == {it['ITER_UBUF']}) {{ $b = (uint64){msg}->msg_iter.ubuf + $off; }}""")
    out.append(f"""
    if ($it == {it['ITER_IOVEC']}) {{
      $v = {msg}->msg_iter.{f.iov};
      $b = (uint64)$v->iov_base + $off;
      $n = $v->iov_len - $off;
      if ($n == 2 && {msg}->msg_iter.nr_segs > 1) {{
        $b = (uint64)$v[1].iov_base;
        $n = $v[1].iov_len;
        $pre = 1;
      }}
    }}
    if ($it == {it['ITER_KVEC']}) {{
      $k = {msg}->msg_iter.kvec;
      $b = (uint64)$k->iov_base + $off;
      $n = $k->iov_len - $off;
      $user = 0;
    }}
    if ($it == {it['ITER_BVEC']}) {{
      $bv = {msg}->msg_iter.bvec;
      $b = {page_address(f, '$bv->bv_page')};
      $b = $b != 0 ? $b + $bv->bv_offset + $off : 0;
      $n = $b != 0 ? $bv->bv_len - $off : 0;
      $user = 0;
    }}""")
    return "".join(out)
