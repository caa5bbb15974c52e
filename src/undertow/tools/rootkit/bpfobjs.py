"""The BPF object inventory: every program, link and pinned object, who holds it, what it
is attached to, and the programs whose code calls a helper that a BPF rootkit needs.

Programs are walked with ``BPF_PROG_GET_NEXT_ID`` / ``BPF_PROG_GET_FD_BY_ID`` and described
with ``BPF_OBJ_GET_INFO_BY_FD`` (``struct bpf_prog_info``, include/uapi/linux/bpf.h),
including the verifier's translated instructions (``xlated_prog_insns``). A helper call in
them (``BPF_JMP|BPF_CALL``, ``src_reg`` 0) carries the helper's address minus
``__bpf_call_base`` (the verifier's fixup in kernel/bpf/verifier.c; zeroed by
``bpf_insn_prepare_dump`` when raw dumps are not allowed): resolved through kallsyms, that
names the helper. Flagged (ebpfkit, TripleCross, boopkit use them):

- ``bpf_probe_write_user`` (writes another process's memory: rewrites syscall arguments and
  results, e.g. a getdents64 buffer to hide files);
- ``bpf_override_return`` (makes a kernel function return what the program says);
- ``bpf_send_signal`` / ``bpf_send_signal_thread`` (kills or stops whoever calls something);
- on tc/XDP programs, the helpers that rewrite packets (``bpf_skb_store_bytes``, the
  checksum and ``adjust`` helpers).

Holders come from ``/proc/PID/fdinfo`` (``prog_id:``/``link_id:``), pins from every mounted
bpffs. Nothing is attached, changed or unpinned.
"""

from __future__ import annotations

import ctypes
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Optional, Set, Tuple

from .report import Context
from .views import comm_of, is_undertow, read_small

__all__ = ["check", "helper_calls", "DANGEROUS", "PACKET_WRITERS"]

CHECK = "bpf"
PROG_GET_NEXT_ID, PROG_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD = 11, 13, 15
LINK_GET_FD_BY_ID, LINK_GET_NEXT_ID = 30, 31
PROG_INFO_SIZE = 232  # through attach_btf_id (6.x); the kernel accepts a longer zeroed tail
LINK_INFO_SIZE = 64

DANGEROUS = {
    "bpf_probe_write_user": "writes the memory of the process that hit the probe",
    "bpf_override_return": "makes a kernel function return a value of its choosing",
    "bpf_send_signal": "sends a signal to the process that hit the probe",
    "bpf_send_signal_thread": "sends a signal to the thread that hit the probe",
}
PACKET_WRITERS = ("bpf_skb_store_bytes", "bpf_l3_csum_replace", "bpf_l4_csum_replace", "bpf_skb_adjust_room",
                  "bpf_xdp_adjust_head", "bpf_xdp_adjust_tail", "bpf_skb_change_head", "bpf_skb_change_tail",
                  "bpf_xdp_store_bytes")
PROG_TYPES = {1: "socket_filter", 2: "kprobe", 3: "sched_cls", 4: "sched_act", 5: "tracepoint", 6: "xdp",
              7: "perf_event", 8: "cgroup_skb", 9: "cgroup_sock", 10: "lwt_in", 11: "lwt_out", 12: "lwt_xmit",
              13: "sock_ops", 14: "sk_skb", 15: "cgroup_device", 16: "sk_msg", 17: "raw_tracepoint",
              18: "cgroup_sock_addr", 19: "lwt_seg6local", 20: "lirc_mode2", 21: "sk_reuseport",
              22: "flow_dissector", 23: "cgroup_sysctl", 24: "raw_tracepoint_writable", 25: "cgroup_sockopt",
              26: "tracing", 27: "struct_ops", 28: "ext", 29: "lsm", 30: "sk_lookup", 31: "syscall",
              32: "netfilter"}
LINK_TYPES = {1: "raw_tracepoint", 2: "tracing", 3: "cgroup", 4: "iter", 5: "netns", 6: "xdp", 7: "perf_event",
              8: "kprobe_multi", 9: "struct_ops", 10: "netfilter", 11: "tcx", 12: "uprobe_multi", 13: "netkit",
              14: "sockmap"}


def _next_id(cmd: int, start: int) -> Optional[int]:
    from ...errors import BPFError
    from ...kernel.bpfsys import bpf

    attr = bytearray(struct.pack("=III", start, 0, 0))
    try:
        bpf(cmd, attr)
    except BPFError as e:
        if e.errno == 2:  # ENOENT: no more
            return None
        raise
    return struct.unpack_from("=I", attr, 4)[0]


def _fd_by_id(cmd: int, oid: int) -> Optional[int]:
    from ...errors import BPFError
    from ...kernel.bpfsys import bpf

    try:
        return bpf(cmd, bytearray(struct.pack("=III", oid, 0, 0)))
    except BPFError as e:
        if e.errno == 2:
            return None  # gone meanwhile
        raise


def _info(fd: int, buf: ctypes.Array) -> None:
    from ...kernel.bpfsys import bpf

    bpf(OBJ_GET_INFO_BY_FD, bytearray(struct.pack("=IIQ", fd, len(buf), ctypes.addressof(buf))))


def _ids(cmd: int) -> Iterator[int]:
    cur = 0
    while True:
        nxt = _next_id(cmd, cur)
        if nxt is None:
            return
        yield nxt
        cur = nxt


def prog_info(fd: int) -> Tuple[Dict[str, object], bytes]:
    """``(fields, xlated instructions)`` of the program ``fd``."""
    buf = ctypes.create_string_buffer(PROG_INFO_SIZE)
    _info(fd, buf)
    typ, pid_, tag = struct.unpack_from("=II8s", buf.raw, 0)
    xlen = struct.unpack_from("=I", buf.raw, 20)[0]
    uid = struct.unpack_from("=I", buf.raw, 48)[0]
    name = buf.raw[64:80].split(b"\0", 1)[0].decode("ascii", "replace")
    fields: Dict[str, object] = {"id": pid_, "type": PROG_TYPES.get(typ, str(typ)), "tag": tag.hex(),
                                 "name": name, "uid": uid}
    code = b""
    if xlen:
        ins = ctypes.create_string_buffer(xlen)
        buf2 = ctypes.create_string_buffer(PROG_INFO_SIZE)
        struct.pack_into("=IQ", buf2, 20, xlen, 0)  # xlated_prog_len, jited_prog_insns
        struct.pack_into("=Q", buf2, 32, ctypes.addressof(ins))  # xlated_prog_insns
        _info(fd, buf2)
        code = ins.raw[:struct.unpack_from("=I", buf2.raw, 20)[0]]
    return fields, code


def helper_calls(code: bytes) -> List[int]:
    """The ``imm`` of every helper call (``BPF_JMP|BPF_CALL`` = 0x85 with ``src_reg`` 0)
    in translated instructions."""
    out = []
    for off in range(0, len(code) - 7, 8):
        op, regs, _o, imm = struct.unpack_from("<BBhi", code, off)
        if op == 0x85 and regs >> 4 == 0:
            out.append(imm)
    return out


def _holders(proc: str) -> Tuple[Dict[int, List[int]], Dict[int, List[int]]]:
    """``({prog id: [pids]}, {link id: [pids]})`` from /proc/PID/fdinfo of BPF fds."""
    progs: Dict[int, List[int]] = {}
    links: Dict[int, List[int]] = {}
    from ..proc import fd_entries

    for pid, fd, path in fd_entries(proc):
        try:
            target = os.readlink(path)
        except OSError:
            continue
        if target not in ("anon_inode:bpf-prog", "anon_inode:bpf_link"):
            continue
        data = read_small(os.path.join(proc, str(pid), "fdinfo", str(fd)), 4096) or b""
        for line in data.split(b"\n"):
            for key, into in ((b"prog_id:", progs), (b"link_id:", links)):
                if line.startswith(key):
                    try:
                        into.setdefault(int(line.split()[1]), []).append(pid)
                    except (IndexError, ValueError):
                        pass
    return progs, links
    for p in pids:
        d = os.path.join(proc, p, "fd")
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if target not in ("anon_inode:bpf-prog", "anon_inode:bpf_link"):
                continue
            data = read_small(os.path.join(proc, p, "fdinfo", fd), 4096) or b""
            for line in data.split(b"\n"):
                for key, into in ((b"prog_id:", progs), (b"link_id:", links)):
                    if line.startswith(key):
                        try:
                            into.setdefault(int(line.split()[1]), []).append(int(p))
                        except (IndexError, ValueError):
                            pass
    return progs, links


def _bpffs_pins(proc: str, limit: int = 2000) -> List[str]:
    data = read_small(os.path.join(proc, "self", "mountinfo"), 1 << 22) or b""
    roots = []
    for line in data.decode("utf-8", "replace").splitlines():
        if " - bpf " in line:
            roots.append(line.split()[4])
    out: List[str] = []
    for r in roots:
        for dirpath, dirs, files in os.walk(r):
            out.extend(os.path.join(dirpath, f) for f in files)
            if len(out) >= limit:
                return out
    return out


def check(ctx: Context) -> None:
    """List the BPF objects and flag dangerous programs; add findings to ``ctx.report``."""
    from ... import stop
    from ...errors import BPFError
    from ...kernel.kallsyms import Kallsyms

    rep, proc = ctx.report, ctx.proc
    try:
        ks: Optional[Kallsyms] = Kallsyms(os.path.join(proc, "kallsyms"))
        base_sym = ks.lookup("__bpf_call_base") if ks is not None else None
        base = base_sym.address if base_sym is not None and ks.addresses_available else None
    except OSError:
        ks, base = None, None
    if base is None:
        rep.not_checked(CHECK, "helper calls of loaded programs", "kallsyms gives no address of "
                        "__bpf_call_base (kptr_restrict?): helper calls cannot be named")
    progs, links = _holders(proc)
    ucache: Dict[int, bool] = {}
    zeroed = False
    try:
        ids = list(_ids(PROG_GET_NEXT_ID))
    except BPFError as e:
        rep.not_checked(CHECK, "BPF programs", f"BPF_PROG_GET_NEXT_ID: {e.message}")
        ids = []
    for pid_ in ids:
        stop.check()
        try:
            fd = _fd_by_id(PROG_GET_FD_BY_ID, pid_)
        except BPFError as e:
            rep.not_checked(CHECK, f"BPF program {pid_}", e.message)
            continue
        if fd is None:
            continue
        try:
            fields, code = prog_info(fd)
        except BPFError as e:
            rep.not_checked(CHECK, f"BPF program {pid_}", e.message)
            continue
        finally:
            os.close(fd)
        holders = progs.get(pid_, [])
        names: List[str] = []
        calls = helper_calls(code)
        if calls and base is not None and ks is not None:
            if all(c == 0 for c in calls):
                zeroed = True
            for c in calls:
                sym = ks.symbolize(base + c) if c else None
                if sym is not None and sym[1] == 0:
                    names.append(sym[0])
        fields.update({"type_": "bpf_program", "holders": holders,
                       "helpers": sorted(set(names))})
        obj = dict(fields)
        obj["type"] = "bpf_object"
        obj["kind"] = "program"
        obj["prog_type"] = fields["type"]
        obj.pop("type_", None)
        rep.inventory.append(obj)
        who = ", ".join(f"pid {h} ({comm_of(proc, h)}{', undertow' if is_undertow(proc, h, ucache) else ''})"
                        for h in holders[:5]) or "no process (attached by a link or pinned)"
        bad = [n for n in names if n in DANGEROUS]
        if fields["type"] in ("sched_cls", "sched_act", "xdp"):
            bad += [n for n in names if n in PACKET_WRITERS]
        for n in sorted(set(bad)):
            rep.add(CHECK, "high" if n in DANGEROUS else "medium",
                    f"BPF program {pid_} ({fields['type']} {fields['name'] or '-'}) calls {n}",
                    {"BPF program": f"id {pid_} type {fields['type']} name {fields['name'] or '-'} "
                                    f"tag {fields['tag']} loaded by uid {fields['uid']}",
                     "its code": f"calls {n}: {DANGEROUS.get(n, 'rewrites packets')}",
                     "held by": who},
                    "bpftool prog dump xlated id N; bpftool link list / perf_event attachments show where it "
                    "runs; the holder's binary", key=pid_)
    if zeroed:
        rep.not_checked(CHECK, "helper calls", "the kernel zeroed helper addresses in the dump "
                        "(bpf_dump_raw_ok: kptr_restrict)")
    try:
        lids = list(_ids(LINK_GET_NEXT_ID))
    except BPFError as e:
        rep.not_checked(CHECK, "BPF links", f"BPF_LINK_GET_NEXT_ID: {e.message}")
        lids = []
    for lid in lids:
        try:
            fd = _fd_by_id(LINK_GET_FD_BY_ID, lid)
        except BPFError:
            continue
        if fd is None:
            continue
        try:
            buf = ctypes.create_string_buffer(LINK_INFO_SIZE)
            _info(fd, buf)
            ltype, _id, prog = struct.unpack_from("=III", buf.raw, 0)
        except BPFError:
            continue
        finally:
            os.close(fd)
        rep.inventory.append({"type": "bpf_object", "kind": "link", "id": lid,
                              "link_type": LINK_TYPES.get(ltype, str(ltype)), "prog_id": prog,
                              "holders": links.get(lid, [])})
    for path in _bpffs_pins(proc):
        rep.inventory.append({"type": "bpf_object", "kind": "pin", "path": path})
