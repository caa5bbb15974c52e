"""The BTF reader against the running kernel's BTF, with pahole as the independent oracle."""

import io
import os
import re
import shutil
import subprocess

import pytest

from undertow import cli
from undertow.kernel import Kernel

VMLINUX = "/sys/kernel/btf/vmlinux"
pytestmark = pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no kernel BTF (CONFIG_DEBUG_INFO_BTF=n)")

CASES = [
    ("task_struct", "comm"), ("task_struct", "pid"), ("task_struct", "tgid"), ("task_struct", "mm"),
    ("sk_buff", "head"), ("sk_buff", "data"), ("sk_buff", "network_header"), ("sk_buff", "transport_header"),
    ("iphdr", "saddr"), ("iphdr", "daddr"), ("file", "f_pos"), ("sock_common", "skc_family"),
    ("sock", "__sk_common"), ("mm_struct", "pgd"),
]


def pahole_members(struct: str) -> dict:
    out = subprocess.run(["pahole", "--format_path=btf", "-C", struct, VMLINUX],
                         capture_output=True, text=True, check=True).stdout
    members = {}
    depth_of = {}
    for line in out.splitlines():
        # pahole prints members of anonymous structs/unions indented, with offsets
        # from the start of the outer struct; keep the shallowest member of a name.
        m = re.match(r"^(\t+)\S.*?[\s*](\w+)(?:\[\d+\])*;\s+/\*\s+(\d+)\s+(\d+)\s+\*/", line)
        if m:
            depth, name = len(m.group(1)), m.group(2)
            if name not in depth_of or depth < depth_of[name]:
                depth_of[name] = depth
                members[name] = (int(m.group(3)), int(m.group(4)))
    size = re.search(r"/\* size: (\d+),", out)
    return {"members": members, "size": int(size.group(1)) if size else None}


@pytest.mark.skipif(shutil.which("pahole") is None, reason="pahole (Debian: dwarves) is not installed")
@pytest.mark.parametrize("struct,member", CASES)
def test_offsets_match_pahole(struct, member):
    btf = Kernel().btf()
    oracle = pahole_members(struct)
    assert member in oracle["members"], f"pahole does not list {struct}.{member}"
    off, size = oracle["members"][member]
    mp = btf.member(f"struct {struct}", member)
    assert (mp.offset, btf.sizeof(mp.type)) == (off, size)
    assert btf.sizeof(f"struct {struct}") == oracle["size"]


def test_nested_anonymous_path_and_protos():
    btf = Kernel().btf()
    mp = btf.member("struct sock", "__sk_common.skc_daddr")
    assert mp.offset == 0 and btf.type_str(mp.type) == "__be32"
    sig = btf.func_proto("tcp_connect")
    assert [(n, btf.type_str(t)) for n, t in sig.params] == [("sk", "struct sock *")]
    sig = btf.func_proto("do_sys_openat2")
    assert [n for n, _ in sig.params] == ["dfd", "filename", "how"]
    assert btf.find_id("btf_trace_sched_switch", "typedef") > 0


def test_list_cli_shows_layouts(capsys):
    assert cli.main(["list", "-v", "struct task_struct"]) == 0
    out = capsys.readouterr().out
    comm = Kernel().btf().member("struct task_struct", "comm").offset
    assert re.search(rf"char comm\[16\];\s+/\*\s+{comm}\s+16 \*/", out)
    assert cli.main(["list", "-v", "kprobe:tcp_connect"]) == 0
    assert "struct sock *sk" in capsys.readouterr().out
    assert cli.main(["list", "-v", "struct task_strct"]) == 1
    err = capsys.readouterr().err
    assert "did you mean task_struct?" in err and "Traceback" not in err


def test_mapped_blob_reads_as_the_file():
    """Where the kernel lets /sys/kernel/btf/vmlinux be mapped (6.16+), the BTF is parsed
    from the mapping: the same bytes and the same types as a plain read."""
    import mmap

    from undertow.kernel.btf import BTF, _read_blob

    blob = _read_blob(VMLINUX)
    with open(VMLINUX, "rb") as f:
        whole = f.read()
    assert len(blob) == len(whole) and blob[:64] == whole[:64] and blob[-64:] == whole[-64:]
    a, b = BTF(blob, None, "vmlinux", None), BTF(whole, None, "vmlinux", None)
    for struct, member in CASES[:4]:
        assert a.member(struct, member).bit_offset == b.member(struct, member).bit_offset
    if not isinstance(blob, mmap.mmap):
        pytest.skip("this kernel does not allow mapping its BTF (before 6.16): read whole")
