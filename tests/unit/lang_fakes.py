"""Shared fakes for the lang tests: declared kernel types and a fixture-backed kernel.

The types imitate the x86_64 layouts surftrace's README shows (task_struct.comm at
0xafc, mm at 0x858, mm_users at 0x48), so the README's ftrace lines are goldens.
"""

from __future__ import annotations

import os

from undertow.errors import BTFError
from undertow.kernel.features import Feature, Features
from undertow.kernel.tracefs import Tracefs
from undertow.lang.resolve import UAPI_HEADERS, DeclTypes, FuncSig
from undertow.lang.types import S64, U64, ArrayTy, IntTy, PtrTy, RecordTy, VoidTy

# a few kernel symbols (kaddr(), kprobe wildcards): /proc/kallsyms lines
# (the functions the tests probe: a probe line's function must be a text symbol)
KALLSYMS = "ffffffff81000000 T _stext\nffffffff810c1000 T do_exit\nffffffff810c2000 T _do_fork\n" \
           "ffffffff810c2400 T tcp_connect\nffffffff810c2800 T netif_receive_skb\n" \
           "ffffffff810c2c00 t __netif_receive_skb_core\nffffffff810c3000 T do_sys_openat2\n" \
           "ffffffff810c3400 T filp_open\nffffffff810c3800 T kernel_clone\nffffffff810c3c00 t no_btf_func\n" \
           "ffffffff82a05000 D jiffies\nffffffff82a06000 D avenrun\n"
TRACEFS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "tracefs")


def rec(key: str) -> RecordTy:
    kind, name = key.split()
    return RecordTy(name, kind, 0, btf=key)


CHAR = IntTy(1, True, "char", is_char=True)
BE32 = IntTy(4, False, "__be32", big_endian=True)
BE16 = IntTy(2, False, "__be16", big_endian=True)
INT = IntTy(4, True, "int")

RECORDS = dict(UAPI_HEADERS)
RECORDS.update({
    "struct atomic_t": (4, [("counter", 0, INT)]),
    "struct list_head": (16, [("next", 0, PtrTy(rec("struct list_head"))), ("prev", 8, PtrTy(rec("struct list_head")))]),
    "struct pid_link": (24, [("node", 0, rec("struct list_head")), ("pid", 16, PtrTy(VoidTy()))]),
    "struct mm_struct": (0x400, [("mm_users", 0x48, rec("struct atomic_t"))]),
    "struct task_struct": (0x1000, [
        ("flags", 0x2c, IntTy(4, False, "unsigned int")), ("pid", 0x500, IntTy(4, True, "pid_t")),
        ("mm", 0x858, PtrTy(rec("struct mm_struct"))), ("pids", 0x970, ArrayTy(rec("struct pid_link"), 3)),
        ("comm", 0xafc, ArrayTy(CHAR, 16)), ("in_execve", 0xb10, IntTy(4, False, "unsigned int"), 1, 1)]),
    "union sock_common__addrs": (8, [("skc_addrpair", 0, U64), ("", 0, rec("struct sock_common__pair"))]),
    "struct sock_common__pair": (8, [("skc_daddr", 0, BE32), ("skc_rcv_saddr", 4, BE32)]),
    "struct sock_common": (0x88, [("", 0, rec("union sock_common__addrs")), ("skc_dport", 12, BE16),
                                  ("skc_num", 14, IntTy(2, False, "__u16"))]),
    "struct sock": (0x300, [("__sk_common", 0, rec("struct sock_common")), ("sk_protocol", 0x200, IntTy(2, False, "u16"))]),
    "struct sk_buff": (0xe8, [("len", 0x70, IntTy(4, False, "unsigned int")),
                              ("head", 0xc0, PtrTy(IntTy(1, False, "unsigned char"))),
                              ("data", 0xc8, PtrTy(IntTy(1, False, "unsigned char")))]),
    "struct file": (0x100, [("f_pos", 0x40, IntTy(8, True, "loff_t"))]),
    # BPF iterators' contexts (include/linux/bpf.h's __bpf_md_ptr: an anonymous union of the
    # pointer and a u64, as BTF has them)
    "struct bpf_iter_meta": (24, [("seq", 0, PtrTy(VoidTy())), ("session_id", 8, U64), ("seq_num", 16, U64)]),
    "union bpf_iter__meta_ptr": (8, [("meta", 0, PtrTy(rec("struct bpf_iter_meta"))), ("", 0, U64)]),
    "union bpf_iter__task_ptr": (8, [("task", 0, PtrTy(rec("struct task_struct"))), ("", 0, U64)]),
    "union bpf_iter__file_ptr": (8, [("file", 0, PtrTy(rec("struct file"))), ("", 0, U64)]),
    "struct bpf_iter__task": (16, [("", 0, rec("union bpf_iter__meta_ptr")), ("", 8, rec("union bpf_iter__task_ptr"))]),
    "struct bpf_iter__task_file": (32, [("", 0, rec("union bpf_iter__meta_ptr")),
                                        ("", 8, rec("union bpf_iter__task_ptr")),
                                        ("fd", 16, IntTy(4, False, "u32")),
                                        ("", 24, rec("union bpf_iter__file_ptr"))]),
})

TASK_P = PtrTy(rec("struct task_struct"))
FUNCS = {
    # CONFIG_FORK2 flavour from surftrace's README: the first argument is a task
    "_do_fork": FuncSig("_do_fork", [("parent", TASK_P), ("source", TASK_P), ("clone_flags", U64)], S64),
    "tcp_connect": FuncSig("tcp_connect", [("sk", PtrTy(rec("struct sock")))], INT),
    "__netif_receive_skb_core": FuncSig("__netif_receive_skb_core", [
        ("pskb", PtrTy(PtrTy(rec("struct sk_buff")))), ("pfmemalloc", IntTy(1, False, "bool", is_bool=True)),
        ("ppt_prev", PtrTy(VoidTy()))], INT),
    "netif_receive_skb": FuncSig("netif_receive_skb", [("skb", PtrTy(rec("struct sk_buff")))], INT),
    "do_sys_openat2": FuncSig("do_sys_openat2", [("dfd", INT), ("filename", PtrTy(CHAR, "user")),
                                                 ("how", PtrTy(VoidTy()))], IntTy(8, True, "long")),
    "filp_open": FuncSig("filp_open", [("filename", PtrTy(CHAR))], PtrTy(rec("struct file"))),
    "do_exit": FuncSig("do_exit", [("code", IntTy(8, True, "long"))], VoidTy()),
}

TYPES = DeclTypes(RECORDS, FUNCS, typedefs={"atomic_t": rec("struct atomic_t")}, variables={"jiffies": U64})


class FakeKernel:
    """The Kernel facade's methods resolve uses, over the fixture tracefs tree."""

    def __init__(self, kprobes: bool = True) -> None:
        self.kprobes = kprobes
        self._t = Tracefs(TRACEFS)
        self.tracefs_calls = 0

    def tracefs(self, mount: bool = True) -> Tracefs:
        self.tracefs_calls += 1
        return self._t

    def btf(self):  # noqa: ANN201
        raise BTFError("no BTF in this fake kernel")

    def kallsyms(self):  # noqa: ANN201
        from undertow.kernel.kallsyms import Kallsyms

        return Kallsyms(text=KALLSYMS)

    def features(self) -> Features:
        reason = "kprobe_events present" if self.kprobes else \
            "the kernel has no kprobe support (CONFIG_KPROBES=n: no kprobe_events, no kprobe PMU)"
        feats = {
            "bpf_iter_task": Feature("bpf_iter_task", True, "bpf_iter_task iterator created"),
            "bpf_iter_task_file": Feature("bpf_iter_task_file", False, "BTF has no FUNC bpf_iter_task_file"),
            "kprobe_events": Feature("kprobe_events", self.kprobes, reason),
            "bpf_raw_tracepoint": Feature("bpf_raw_tracepoint", True, "loaded"),
            "bpf_fentry": Feature("bpf_fentry", False, "EPERM"),
        }
        return Features("6.18", "x86_64", {}, feats)
