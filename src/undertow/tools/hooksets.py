"""Which hook set each responder tool uses on this kernel, and why (issue 18).

Every tool (``dns icmp arp inbound connect filewatch exec exit modules``) picks the most
complete set of hooks the running kernel offers: kernel functions (fentry or BPF kprobes) where
they can be attached, the tracepoints everywhere else. The choice is made here, once: the tool
runs the set :func:`choose` returns and prints :meth:`Choice.text` with ``--verbose``;
``undertow doctor`` lists :func:`all_choices`. Nothing is attached to decide: the verdicts
come from the feature probes (:mod:`undertow.kernel.features`, cached per boot), kallsyms, BTF
and the tracefs event list.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["TOOLS", "Choice", "choose", "all_choices", "kprobe_targets"]

#: the responder tools, in the order ``doctor`` lists them
TOOLS = ("dns", "icmp", "arp", "inbound", "connect", "filewatch", "exec", "exit", "modules")


class Choice:
    """One tool's hook set: ``hooks`` (its name, e.g. ``kprobes``), ``detail`` (what is hooked,
    as ``--verbose`` says it), ``why`` (the kernel facts that decided it)."""

    __slots__ = ("tool", "hooks", "detail", "why", "extra")

    def __init__(self, tool: str, hooks: str, detail: str, why: str, **extra: Any) -> None:
        self.tool, self.hooks, self.detail, self.why = tool, hooks, detail, why
        self.extra: Dict[str, Any] = extra  # what the tool needs besides the name (e.g. rx_sk)

    def text(self) -> str:
        """The ``--verbose`` line's body: ``<set>: <hooks> (why: ...)``."""
        return f"{self.hooks}: {self.detail} (chosen because {self.why})"

    def to_json(self) -> Dict[str, str]:
        return {"hooks": self.hooks, "detail": self.detail, "why": self.why}


def _kernel(kernel: Any) -> Any:
    if kernel is None:
        from ..kernel import Kernel

        kernel = Kernel()
    return kernel


def _feature(kernel: Any, name: str) -> "tuple[bool, str]":
    """(available, reason) of a probed feature; (False, why) when probing failed."""
    try:
        f = kernel.features().get(name)
    except Exception as e:  # noqa: BLE001 - not root, no tracefs...: not usable, say why
        return False, f"features not probed ({e})"
    if f is None:
        return False, f"{name} not probed"
    return bool(f.available), f.reason


def kprobe_targets(kernel: Any, funcs: "Sequence[str]") -> "tuple[bool, str]":
    """Whether BPF kprobes work here and every function in ``funcs`` is in kallsyms (a
    kprobe target), with the reason."""
    ok, reason = _feature(kernel, "bpf_kprobe")
    if not ok:
        return False, f"no BPF kprobes ({reason})"
    try:
        syms = kernel.kallsyms()
        missing = [f for f in funcs if f not in syms]
    except Exception as e:  # noqa: BLE001 - kallsyms unreadable: no kprobe set
        return False, f"kallsyms unreadable ({e})"
    if missing:
        return False, "BPF kprobes work but the kernel lacks " + ", ".join(missing)
    return True, "BPF kprobes work and the kernel has " + ", ".join(funcs)


_SEEDED = "sockets open before the start from sock_diag and /proc/PID/net + /proc/PID/fd"

#: dns: what each hook set hooks
DNS_HOOKS = {
    "tracepoints": "syscalls:sys_enter_{connect,close,sendto,sendmsg,sendmmsg,write,writev} (BPF tracepoint "
                   "programs reading the user's buffers; the socket type through BTF from the fd); " + _SEEDED,
    "kprobes": "kprobes udp_sendmsg, udpv6_sendmsg, tcp_sendmsg (the message as the socket layer gets it, "
               "from every route: syscalls, io_uring, sendfile/splice; user buffers of ITER_UBUF/ITER_IOVEC "
               "read, page-backed data through the page's direct mapping) and syscalls:sys_enter_"
               "{connect,close} for the sockets' processes; " + _SEEDED,
}
#: the kernel functions the dns kprobe set attaches to
DNS_KPROBES = ("udp_sendmsg", "udpv6_sendmsg", "tcp_sendmsg")

ICMP_HOOKS = {
    "kprobes": "kprobes raw_sendmsg, ping_v4_sendmsg (+ rawv6_sendmsg, ping_v6_sendmsg where present: the "
               "message as the socket layer gets it, from every route: syscalls, io_uring, sendfile/splice); "
               "syscalls:sys_{enter,exit}_{socket,close,recvfrom,recvmsg,read} for what is received, "
               "icmp:icmp_send (the kernel's own errors); " + _SEEDED,
    "tracepoints": "syscalls:sys_{enter,exit}_{socket,close,sendto,sendmsg,sendmmsg,write,writev,recvfrom,"
                   "recvmsg,read} (BPF reading the buffers; fd -> socket through BTF for ping ids and "
                   "connected peers), icmp:icmp_send (the kernel's own errors); " + _SEEDED,
}

EXEC_HOOKS = {
    "bpf": "sched:sched_process_exec with a BPF program reading the task through BTF: comm at the event, "
           "argv from the new mm's arg_start..arg_end (first 4096 bytes), the executed file from "
           "mm->exe_file (dentry walk), LD_PRELOAD/LD_AUDIT from env_start..env_end, netns/pidns inode "
           "numbers; syscalls:sys_{enter,exit}_{execve,execveat} for the execs that fail (filename, argv, "
           "error)",
    "ftrace": "sched:sched_process_exec via ftrace (no BPF/BTF here): comm followed through task_rename, "
              "argv and the executed file from /proc when the event is read (a process already gone "
              "shows only the filename); failed execs are not seen",
}

EXIT_HOOKS = ("sched:sched_process_exit (group leaders; task->exit_code, signal->group_exit_code, start_time, "
              "nsproxy->net_ns, thread_pid's pid namespace, mm's argument area via BTF); "
              "syscalls:sys_enter_exit_group and signal:signal_deliver (fatal signals) for the area where "
              "the tracepoint comes after exit_mm()")


def _send_kprobes(kernel: Any, funcs: Any, kernel_facts: Any) -> Tuple[bool, str, Any]:
    """``(usable, why, facts)`` of a send-path kprobe set (dns, icmp): its functions can be
    probed and BTF describes the msghdr/iov_iter the program reads."""
    ok, why = kprobe_targets(kernel, funcs)
    if not ok:
        return False, why, None
    try:
        f = kernel_facts(kernel)
    except Exception as e:  # noqa: BLE001 - no BTF for struct msghdr/iov_iter: the tracepoints
        return False, f"{why}, but BTF lacks what the program reads ({e})", None
    missing = [n for n in ("ITER_IOVEC", "ITER_KVEC", "ITER_BVEC") if n not in f.iters]
    if missing:
        return False, f"{why}, but BTF's enum iter_type lacks " + ", ".join(missing), None
    return True, why, f


def _dns(kernel: Any) -> Choice:
    from .dns_kprobes import kernel_facts

    ok, why, f = _send_kprobes(kernel, DNS_KPROBES, kernel_facts)
    if ok:
        detail = DNS_HOOKS["kprobes"]
        if [fn for fn in f.funcs if fn.endswith("sendpage")]:
            detail += "; kprobes udp_sendpage, tcp_sendpage (sendfile/splice before 6.5)"
        if f.bases is None:
            detail += "; page-backed sends (sendfile/splice) shown without their bytes (no direct-map bases)"
        return Choice("dns", "kprobes", detail, why, facts=f)
    return Choice("dns", "tracepoints", DNS_HOOKS["tracepoints"],
                  why + ": the syscall tracepoints (io_uring and sendfile/splice sends are not seen)")


def _icmp(kernel: Any) -> Choice:
    from .icmp_kprobes import FUNCS, kernel_facts

    ok, why, f = _send_kprobes(kernel, FUNCS, kernel_facts)
    if ok:
        return Choice("icmp", "kprobes", ICMP_HOOKS["kprobes"], why, facts=f)
    return Choice("icmp", "tracepoints", ICMP_HOOKS["tracepoints"],
                  why + ": the syscall tracepoints (io_uring and sendfile/splice sends are not seen)")


def _arp(kernel: Any) -> Choice:
    ok, why = kprobe_targets(kernel, ("__dev_direct_xmit",))
    hooks = "kprobes" if ok else "tracepoints"
    detail = ("net:net_dev_queue, net:netif_receive_skb (BPF reads the frame and its socket: skb->sk)"
              + (", kprobe:__dev_direct_xmit (PACKET_QDISC_BYPASS frames)" if ok else "")
              + "; AF_PACKET sockets and their sends tracked through syscall tracepoints; " + _SEEDED)
    if not ok:
        why += ": PACKET_QDISC_BYPASS frames are not seen"
    return Choice("arp", hooks, detail, why)


def _inbound(kernel: Any) -> Choice:
    from .inbound import HOOKS

    rx_sk = False
    try:
        rx_sk = any(f.name == "rx_sk" for f in kernel.tracefs().event_format("skb", "kfree_skb").fields)
    except Exception:  # noqa: BLE001 - an older kernel's format (or no tracefs): no rx_sk
        rx_sk = False
    ok, why = kprobe_targets(kernel, ("tcp_conn_request", "tcp_check_req"))
    hooks = "kprobes" if ok else "tracepoints"
    detail = HOOKS[hooks]
    if hooks == "tracepoints":
        why += "; skb:kfree_skb " + ("has rx_sk" if rx_sk else "has no rx_sk (RSTs ending a pending "
                                                                "request are not tied to a listener)")
    return Choice("inbound", hooks, detail, why, rx_sk=rx_sk)


def _connect(kernel: Any) -> Choice:
    from .connect import HOOKS

    ok, why = kprobe_targets(kernel, ("tcp_v4_connect", "tcp_v6_connect", "sk_error_report"))
    hooks = "kprobes" if ok else "tracepoints"
    return Choice("connect", hooks, HOOKS[hooks], why)


def filewatch_choice(kernel: Any, force: Optional[str] = None) -> Choice:
    """filewatch's set: ``vfs`` when BPF can attach to the VFS functions (fentry, or BPF kprobes)
    and all of :data:`~undertow.tools.filewatch_prog.VFS_FUNCS` are in BTF, else ``syscalls``;
    ``force="syscalls"`` keeps the tracepoints (``--hooks syscalls``)."""
    from .filewatch import uring_tracepoint
    from .filewatch_prog import VFS_FUNCS

    hooks, why = "syscalls", ""
    fentry, fwhy = _feature(kernel, "bpf_fentry")
    kprobe, kwhy = _feature(kernel, "bpf_kprobe")
    if force == "syscalls":
        why = "--hooks syscalls"
    elif not (fentry or kprobe):
        why = f"no fentry ({fwhy}) and no BPF kprobes ({kwhy})"
    else:
        try:
            btf = kernel.btf()
            for fn in VFS_FUNCS:
                btf.find(fn, "func", hints=False)
            hooks = "vfs"
            why = ("fentry" if fentry else "BPF kprobes") + " work and BTF has " + ", ".join(VFS_FUNCS)
        except Exception as e:  # noqa: BLE001 - no BTF, a function missing: the tracepoint set
            why = f"a VFS function is not in BTF ({e})"
    uring = uring_tracepoint(kernel)
    desc = ("open/creat/openat/openat2/dup*/fcntl exits (fd -> inode and name via BTF), close, the write "
            "family, sendfile/splice/copy_file_range, fallocate, ftruncate, fchmod, fchown, mmap, and the "
            "path-based unlink/rename/link/chmod/chown/truncate/utimes calls (dirfd-relative paths resolved); ")
    desc += f"io_uring:{uring}" if uring else "no io_uring tracepoint with the request (kernel < 6.0)"
    if hooks == "vfs":
        desc = ("fentry (or kprobes) on security_file_permission, notify_change, vfs_rename, vfs_unlink, "
                "vfs_link, security_file_open; and syscall tracepoints: " + desc)
    else:
        desc = "tracepoints only: " + desc
    return Choice("filewatch", hooks, desc, why, uring=uring)


def exec_bpf_usable(kernel: Any) -> "tuple[bool, str]":
    """Whether this kernel runs exec's BPF program (BTF, BPF on tracepoints, a ring buffer)."""
    from ..kernel.features import detect_features

    want = ["btf", "bpf_tracepoint", "bpf_ringbuf"]
    try:
        feats = kernel._features or detect_features(kernel, only=want)
    except Exception as e:  # noqa: BLE001 - not probed: the ftrace fallback
        return False, f"features not probed ({e})"
    bad = [n for n in want if not feats.available(n)]
    if bad:
        return False, "no " + ", ".join(bad) + ": the ftrace fallback"
    return True, "BTF, BPF on tracepoints and a ring buffer work"


def _exec(kernel: Any) -> Choice:
    ok, why = exec_bpf_usable(kernel)
    hooks = "bpf" if ok else "ftrace"
    return Choice("exec", hooks, EXEC_HOOKS[hooks], why)


def _exit(kernel: Any) -> Choice:
    return Choice("exit", "tracepoints", EXIT_HOOKS, "the only set (every kernel with BPF and BTF)")


def _modules(kernel: Any) -> Choice:
    from .modules import capability, program

    can, cwhy = capability()
    try:
        text, hooks = program(kernel.tracefs())
    except Exception as e:  # noqa: BLE001 - no tracefs: nothing to hook
        text, hooks = "", f"tracefs unusable ({e})"
    if not text:
        return Choice("modules", "none", hooks or "no module tracepoints, unknown syscall numbers", cwhy)
    name = "tracepoints" if "raw_syscalls" not in hooks else "raw_syscalls"
    return Choice("modules", name, hooks, cwhy)


_CHOOSERS: "Dict[str, Callable[[Any], Choice]]" = {
    "dns": _dns, "icmp": _icmp, "arp": _arp, "inbound": _inbound, "connect": _connect,
    "filewatch": lambda k: filewatch_choice(k), "exec": _exec, "exit": _exit, "modules": _modules,
}


def choose(tool: str, kernel: Any = None) -> Choice:
    """The hook set ``tool`` (one of :data:`TOOLS`) uses on ``kernel`` (default: the running one)."""
    return _CHOOSERS[tool](_kernel(kernel))


def all_choices(kernel: Any = None) -> "List[Choice]":
    """Every tool's choice, in :data:`TOOLS` order; a tool whose check failed says why."""
    kernel = _kernel(kernel)
    out: List[Choice] = []
    for tool in TOOLS:
        try:
            out.append(_CHOOSERS[tool](kernel))
        except Exception as e:  # noqa: BLE001 - one tool's check must not hide the others
            out.append(Choice(tool, "unknown", "", f"the check failed: {e}"))
    return out
