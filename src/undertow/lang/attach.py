"""Probe kinds and attach points, for every front end's resolver.

- Kernels without kprobes (CONFIG_KPROBE_EVENTS off): :func:`check_kprobes` refuses a
  kprobe/kretprobe before anything touches tracefs, naming a tracepoint that carries the
  same data (:data:`KPROBE_ALTERNATIVES`, :func:`kprobe_alternative`).
- :class:`AttachResolver`, the root of the resolvers (:mod:`undertow.lang.resolve_expr`
  adds expressions; :mod:`undertow.lang.resolve_lines` and :mod:`undertow.lang.resolve_bt`
  are the front ends): the probe being resolved and errors pointing into its text, the
  types (:func:`undertow.lang.typeinfo.kernel_types`), tracepoint wildcards and formats
  (``events/<group>/<event>/format``, :meth:`Kernel.tracefs`), and uprobe objects: the
  file a ``PATH:SYMBOL`` names and the symbol's file offset, from its ELF symbol tables
  (:mod:`undertow.kernel.elf`; a symbol of glibc's libpthread stub is found in libc).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from ..errors import AttachUnavailableError, ELFError, ResolveError, SourceError, Span, UndertowError, did_you_mean
from . import ir
from .typeinfo import FuncSig, TypeInfo, kernel_types

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..kernel.arch import Arch

__all__ = ["KPROBE_ALTERNATIVES", "kprobe_alternative", "check_kprobes", "AttachResolver"]

# --------------------------------------------------------------------------- kprobe alternatives

#: Kernel function -> a tracepoint that carries the same data (for kernels without kprobes).
KPROBE_ALTERNATIVES: Dict[str, Tuple[str, str]] = {
    "tcp_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr/daddr/sport/dport"),
    "tcp_v4_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr/daddr/sport/dport"),
    "tcp_v6_connect": ("sock:inet_sock_set_state", "TCP state changes with saddr_v6/daddr_v6"),
    "inet_csk_accept": ("sock:inet_sock_set_state", "newstate==TCP_ESTABLISHED on accepted sockets"),
    "tcp_set_state": ("sock:inet_sock_set_state", "oldstate/newstate and addresses"),
    "tcp_retransmit_skb": ("tcp:tcp_retransmit_skb", "addresses and ports"),
    "tcp_v4_send_reset": ("tcp:tcp_send_reset", "addresses and ports"),
    "do_sys_openat2": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "do_sys_open": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "do_filp_open": ("syscalls:sys_enter_openat", "dfd, filename, flags, mode"),
    "_do_fork": ("sched:sched_process_fork", "parent and child comm/pid"),
    "do_fork": ("sched:sched_process_fork", "parent and child comm/pid"),
    "kernel_clone": ("sched:sched_process_fork", "parent and child comm/pid"),
    "copy_process": ("task:task_newtask", "pid, comm, clone_flags"),
    "do_exit": ("sched:sched_process_exit", "comm, pid, prio"),
    "do_execve": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "do_execveat_common": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "bprm_execve": ("sched:sched_process_exec", "filename, pid, old_pid"),
    "__netif_receive_skb_core": ("net:netif_receive_skb", "skbaddr, len, name"),
    "netif_receive_skb": ("net:netif_receive_skb", "skbaddr, len, name"),
    "__netif_receive_skb": ("net:netif_receive_skb", "skbaddr, len, name"),
    "dev_queue_xmit": ("net:net_dev_queue", "skbaddr, len, name"),
    "__dev_queue_xmit": ("net:net_dev_queue", "skbaddr, len, name"),
    "kfree_skb": ("skb:kfree_skb", "skbaddr, location, protocol, reason"),
    "kfree_skb_reason": ("skb:kfree_skb", "skbaddr, location, protocol, reason"),
    "vfs_write": ("syscalls:sys_enter_write", "fd, buf, count"),
    "vfs_read": ("syscalls:sys_enter_read", "fd, buf, count"),
    "do_unlinkat": ("syscalls:sys_enter_unlinkat", "dfd, pathname, flag"),
    "try_to_wake_up": ("sched:sched_waking", "comm, pid, prio, target_cpu"),
    "__schedule": ("sched:sched_switch", "prev/next comm and pid"),
    "schedule": ("sched:sched_switch", "prev/next comm and pid"),
    "wake_up_new_task": ("sched:sched_wakeup_new", "comm, pid, prio, target_cpu"),
    "__kmalloc": ("kmem:kmalloc", "call_site, ptr, bytes_req, bytes_alloc"),
    "kmem_cache_alloc": ("kmem:kmem_cache_alloc", "call_site, ptr, bytes_req"),
    "kfree": ("kmem:kfree", "call_site, ptr"),
    "handle_mm_fault": ("exceptions:page_fault_user", "address, ip, error_code"),
    "signal_generate": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "__send_signal": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "do_send_sig_info": ("signal:signal_generate", "sig, errno, code, comm, pid"),
    "udp_sendmsg": ("syscalls:sys_enter_sendto", "fd, buff, len, addr"),
    "tcp_sendmsg": ("syscalls:sys_enter_sendto", "fd, buff, len, addr"),
    "inet_bind": ("syscalls:sys_enter_bind", "fd, umyaddr, addrlen"),
    "inet_listen": ("syscalls:sys_enter_listen", "fd, backlog"),
    "__sys_connect": ("syscalls:sys_enter_connect", "fd, uservaddr, addrlen"),
    "__sys_accept4": ("syscalls:sys_exit_accept4", "ret"),
    "load_module": ("module:module_load", "name, taints"),
    "do_init_module": ("module:module_load", "name, taints"),
    "blk_mq_start_request": ("block:block_rq_issue", "dev, sector, nr_sector, rwbs, comm"),
    "blk_account_io_done": ("block:block_rq_complete", "dev, sector, nr_sector, rwbs, error"),
}

_SYSCALL_PREFIXES = ("__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_", "ksys_", "sys_")


def kprobe_alternative(symbol: str, ret: bool = False) -> Optional[Tuple[str, str]]:
    """A tracepoint carrying what a kprobe on ``symbol`` would see: ``(group:event, what)``."""
    if symbol in KPROBE_ALTERNATIVES:
        return KPROBE_ALTERNATIVES[symbol]
    for prefix in _SYSCALL_PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            name = symbol[len(prefix):]
            if ret:
                return (f"syscalls:sys_exit_{name}", "the return value")
            return (f"syscalls:sys_enter_{name}", "the syscall's arguments")
    return None


#: kretprobes bpftrace refuses because they can lock up the machine (the return trampoline
#: takes locks these functions hold or wait for).
BANNED_KRETPROBES = frozenset(("_raw_spin_lock", "_raw_spin_lock_irqsave", "_raw_spin_unlock_irqrestore",
                               "queued_spin_lock_slowpath"))


def check_kprobes(kernel: "Kernel", probe: ir.Probe, ap: ir.AttachPoint) -> None:
    """Raise :class:`AttachUnavailableError` when ``ap`` (a kprobe/kretprobe) cannot exist
    on ``kernel``: no ``kprobe_events`` (CONFIG_KPROBE_EVENTS). Reads the cached
    feature probes only; nothing is written to tracefs. Unknown -> no error. Before that,
    what bpftrace refuses whatever the kernel: a banned kretprobe, and a ``MODULE:`` that
    names no loaded module (``kprobe:syscalls:sys_exit_nanosleep``)."""
    if ap.kind == "kretprobe" and ap.target in BANNED_KRETPROBES:
        err = ResolveError(f"kretprobe:{ap.target} can't be used as it might lock up your system.",
                           source=probe.source, span=ap.span, origin=probe.origin)
        # bpftrace refuses it while attaching, with no place and "error:" in its message
        err.bpftrace_text = f"error: {err.message}"
        raise err
    if ap.obj and ap.obj != "vmlinux" and not os.path.isdir(f"/sys/module/{ap.obj}"):
        raise ResolveError(f"{ap.kind} probe type requires 1 argument ('{ap.obj}' is no loaded module)",
                           source=probe.source, span=ap.span, origin=probe.origin,
                           hints=[f"write {ap.kind}:FUNCTION, or {ap.kind}:MODULE:FUNCTION with a loaded module"])
    try:
        feats = kernel.features()
        feat = feats.get("kprobe_events")
    except UndertowError:
        return
    if feat is None or feat.available is not False:
        return
    what = "kretprobe" if ap.kind == "kretprobe" else "kprobe"
    hints: List[str] = []
    alt = kprobe_alternative(ap.target, ret=ap.kind == "kretprobe")
    if alt is not None:
        event, data = alt
        exists = _event_exists(kernel, event)
        if exists is not False:
            g, _, e = event.partition(":")
            hints.append(f"the tracepoint {event} carries the same data ({data}): try 'e {g}/{e}'")
    bpf_opts = []
    for name, label in (("bpf_fentry", "fentry"), ("bpf_fexit", "fexit"), ("bpf_raw_tracepoint", "raw tracepoints"),
                        ("bpf_tp_btf", "tp_btf")):
        try:
            if feats.available(name):
                bpf_opts.append(label)
        except Exception:  # noqa: BLE001 - hints only
            pass
    if bpf_opts:
        hints.append("the BPF backend can attach here with: " + ", ".join(bpf_opts))
    hints.append("'undertow list tracepoint:*' lists the tracepoints of this kernel")
    reason = feat.reason or "no kprobe_events"
    if "kprobe support" in reason:
        reason = reason.replace("the kernel has no kprobe support", "this kernel has no kprobe support")
    else:
        reason = f"this kernel has no kprobe support ({reason})"
    raise AttachUnavailableError(
        "kprobe_events",
        f"cannot put a {what} on {ap.target}: {reason}",
        source=probe.source, span=ap.span, origin=probe.origin, hints=hints)


def _event_exists(kernel: "Kernel", event: str) -> Optional[bool]:
    try:
        t = kernel.tracefs(mount=False)
    except Exception:  # noqa: BLE001 - unknown
        return None
    g, _, e = event.partition(":")
    try:
        return bool(t.has_event(g, e))
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- the resolver's root


class AttachResolver:
    """What every front end's resolver starts from: the kernel, the architecture, the
    types, the probe and attach point being resolved, and its attach points' facts.

    ``strict``: refuse kprobes on a kernel without them (off for ``-S``, which compiles
    for any kernel). ``types``: where types come from (None: :func:`kernel_types`, made
    on first use). ``quiet``: a caller that will skip a probe that fails (an attach point
    of a multi-probe block) needs no costly "did you mean" hints.
    """

    def __init__(self, kernel: "Kernel", arch: "Arch", strict: bool, types: Optional[TypeInfo]) -> None:
        self.kernel, self.arch, self.strict = kernel, arch, strict
        self._types = types
        self.warnings: List[SourceError] = []
        self.quiet = False
        self._elfs: Dict[str, Any] = {}
        self._usdt_cache: Dict[str, Any] = {}
        #: the process of -p (uprobe paths are looked up in its mount namespace too)
        self.pid: Optional[int] = None
        # per probe
        self.probe_: Optional[ir.Probe] = None
        self.ap: Optional[ir.AttachPoint] = None
        self.sig: Optional[FuncSig] = None
        self.fmt: Any = None

    @property
    def types(self) -> TypeInfo:
        if self._types is None:
            self._types = kernel_types(self.kernel)
        return self._types

    def probe(self, probe: ir.Probe) -> List[ir.Probe]:
        """Resolve ``probe`` (in place where it can): one probe per attach point it stands
        for. What each front end implements."""
        raise NotImplementedError

    def err(self, cls: type, msg: str, span: Optional[Span], *hints: str) -> SourceError:
        """An error of class ``cls`` pointing at ``span`` of the current probe's text."""
        p = self.probe_
        assert p is not None
        return cls(msg, source=p.source, span=span or p.span, origin=p.origin, hints=[h for h in hints if h])

    # -- tracepoints
    def expand_tracepoints(self, ap: ir.AttachPoint) -> List[Tuple[str, str]]:
        """The ``(group, event)`` pairs a wildcard tracepoint ``ap`` matches (at least one)."""
        t = self._tracefs(ap)
        found = t.events(ap.target)
        if not found:
            g, _, e = ap.target.partition(":")
            names = [f"{a}:{b}" for a, b in t.all_events()]
            raise self.err(ResolveError, f"no trace event matches {g}/{e}", ap.span,
                           did_you_mean(ap.target.replace("*", ""), names),
                           "list events with: undertow list 'tracepoint:*'")
        return found

    def _tracefs(self, ap: ir.AttachPoint) -> Any:
        try:
            return self.kernel.tracefs()
        except UndertowError as e:
            raise self.err(ResolveError, f"cannot read trace events for {ap.target}: {e.message}", ap.span,
                           *e.hints) from None

    def load_tracepoint(self, probe: ir.Probe, ap: ir.AttachPoint) -> None:
        """Read tracepoint ``ap``'s format into ``self.fmt``. An :class:`ir.Emit` without
        fields shows every field of the event (surftrace's ``e`` lines): filled in here."""
        g, _, e = ap.target.partition(":")
        t = self._tracefs(ap)
        try:
            self.fmt = t.event_format(g, e)
        except LookupError as ex:
            hints = list(getattr(ex, "hints", []))
            raise self.err(ResolveError, f"tracepoint not found: {g}:{e}", ap.span, *hints) from None
        except UndertowError as ex:
            raise self.err(ResolveError, f"cannot read the format of {g}/{e}: {ex.message}", ap.span,
                           *ex.hints) from None
        emits = [a for a in probe.actions if isinstance(a, ir.Emit)]
        if emits and not any(a.fields for a in emits):
            # surftrace shows every field of the event: make that explicit
            for f in self.fmt.event_fields:
                emits[0].fields.append(ir.EmitField(f.name, ir.Field(f.name), None, None))

    # -- uprobes
    def locate_uprobe(self, ap: ir.AttachPoint) -> None:
        """Fill ``ap.path`` (the file ``ap.obj`` names: a path, or a library found as the
        dynamic loader would) and ``ap.file_offset`` (of symbol ``ap.target`` + ``ap.offset``)."""
        try:
            ap.path = self.object_path(ap.obj)
        except ELFError as e:
            raise self.err(ResolveError, e.message, self._obj_span(ap), *e.hints) from None
        try:
            ap.file_offset = self._elf(ap.path).symbol_file_offset(ap.target, ap.offset)
        except (ELFError, LookupError) as e:
            # glibc 2.34+ keeps libpthread.so.0 as an empty stub whose functions live in
            # libc.so.6 (its DT_NEEDED): follow the stub's dependencies before giving up
            moved = self._symbol_in_needed(ap)
            if moved is None:
                # a caller that will skip this probe (quiet) needs no costly "did you mean"
                hints = [] if self.quiet else list(getattr(e, "hints", []))
                raise self.err(ResolveError, getattr(e, "message", str(e)), self._sym_span(ap),
                               *hints) from None
            ap.path, ap.file_offset = moved

    def object_path(self, obj: str) -> str:
        """The file a uprobe's ``obj`` names (:func:`undertow.kernel.elf.resolve_object`);
        with ``-p PID``, an absolute path this mount namespace lacks is looked up in the
        process's (``/proc/PID/root/PATH``), as bpftrace does."""
        from ..kernel.elf import resolve_object

        if self.pid and obj.startswith("/") and not os.path.exists(obj):
            alt = f"/proc/{self.pid}/root{obj}"
            if os.path.exists(alt):
                return resolve_object(alt, self.arch)
        return resolve_object(obj, self.arch)

    # -- USDT
    def expand_usdt(self, ap: ir.AttachPoint, pid: Optional[int]) -> List[ir.AttachPoint]:
        """One attach point per location of every USDT marker ``ap`` names, as bpftrace 0.17
        expands them (:func:`undertow.kernel.usdt_find.find_usdt`): ``obj`` becomes the file
        as bpftrace names it, ``path`` the file to attach to, ``target`` ``PROVIDER:NAME``,
        ``file_offset`` the location and ``usdt`` the note's record. A spec without
        wildcards whose provider is left out (or given with ``-p``) must match one marker."""
        import copy  # imported on first use (start-up)

        from ..kernel.usdt_find import find_usdt, has_wildcard

        provider, _, name = ap.target.rpartition(":")
        if not name:
            raise self.err(ResolveError, "a usdt probe needs a probe name", ap.span,
                           "write usdt:PATH:[PROVIDER:]NAME")
        if not ap.obj and not pid:
            raise self.err(ResolveError, "a usdt probe must name a file, or a process with -p PID", ap.span,
                           "write usdt:PATH:[PROVIDER:]NAME, or usdt::PROVIDER:NAME with -p PID")
        if ap.obj and not pid and not has_wildcard(ap.obj) and "/" in ap.obj and not os.path.isfile(ap.obj):
            raise self.err(ResolveError, f"usdt target file '{ap.obj}' does not exist or is not executable",
                           self._obj_span(ap))
        try:
            found = find_usdt(ap.obj, provider, name, pid, self._usdt_cache)
        except ELFError as e:
            raise self.err(ResolveError, e.message, self._obj_span(ap), *e.hints) from None
        spec = f"usdt:{ap.obj}:{ap.target}"
        if not found:
            where = f"process {pid}" if pid and not ap.obj else ap.obj
            raise self.err(ResolveError, f"no USDT probe in {where} matches {ap.target}", ap.span,
                           f"list them with: undertow run -l 'usdt:{ap.obj or '*'}:*'" +
                           (f" -p {pid}" if pid else ""))
        markers = sorted({m.name for m in found})
        if len(markers) > 1 and not (has_wildcard(ap.obj) or has_wildcard(provider) or has_wildcard(name)) \
                and (not provider or pid):
            raise self.err(ResolveError, f"namespace for {spec} not specified, matched {len(markers)} probes",
                           ap.span, "please specify a unique namespace or use '*' to attach to all matched probes")
        out = []
        for m in found:
            a2 = copy.copy(ap)
            a2.obj, a2.path, a2.wildcard = m.display, m.path, False
            a2.target = f"{m.probe.provider}:{m.probe.name}"
            a2.file_offset, a2.usdt = m.probe.file_offset, self._usdt_symbols(m.path, m.probe)
            out.append(a2)
        return out

    def _usdt_symbols(self, path: str, probe: Any) -> Any:
        """``probe`` with the link-time address of each symbol its arguments name
        (``-4@counter(%rip)``) in the argument's ``value``; a symbol the file lacks
        leaves the argument as it is (refused where it is used)."""
        if not any(a.symbol for a in probe.arguments):
            return probe
        import copy  # imported on first use (start-up)

        args = []
        for a in probe.arguments:
            if a.symbol:
                try:
                    sym = self._elf(path).find_symbol(a.symbol)
                    a = copy.copy(a)
                    a.value = int(sym.value)
                except (ELFError, LookupError, OSError):
                    pass
            args.append(a)
        p2 = copy.copy(probe)
        p2.arguments = tuple(args)
        return p2

    def _elf(self, path: str) -> Any:
        """One parsed ELF file per path for the whole resolve (symbol tables are big)."""
        from ..kernel.elf import ELFFile

        if path not in self._elfs:
            self._elfs[path] = ELFFile(path)
        return self._elfs[path]

    def _symbol_in_needed(self, ap: ir.AttachPoint) -> Optional[Tuple[str, int]]:
        from ..kernel.elf import find_library

        try:
            needed = self._elf(ap.path).needed
        except (ELFError, OSError):
            return None
        for lib in needed:
            try:
                path = find_library(lib, self.arch)
                return path, self._elf(path).symbol_file_offset(ap.target, ap.offset)
            except (ELFError, LookupError, OSError):
                continue
        return None

    def _obj_start(self, ap: ir.AttachPoint) -> Optional[int]:
        """Where ``ap.obj`` starts in the source: at the span's start (probe lines:
        ``/bin/bash:readline``) or after the spec's type (``uprobe:/bin/bash:readline``);
        ``None`` when it is not written there (``uprobe:$1:main``)."""
        if ap.span is None or self.probe_ is None:
            return None
        src, a = self.probe_.source, ap.span.start
        if src.startswith(ap.obj + ":", a):
            return a
        i = src.find(":" + ap.obj + ":", a, ap.span.end)
        return i + 1 if i >= 0 else None

    def _obj_span(self, ap: ir.AttachPoint) -> Optional[Span]:
        if ap.span is None:
            return None
        a = self._obj_start(ap)
        return ap.span if a is None else Span(a, a + len(ap.obj))

    def _sym_span(self, ap: ir.AttachPoint) -> Optional[Span]:
        if ap.span is None:
            return None
        a = self._obj_start(ap)
        return ap.span if a is None else Span(a + len(ap.obj) + 1, ap.span.end)

