"""Live checks of undertow.kernel.elf / kallsyms on this machine.

Ground truth is made independently: binutils (`nm -D`, `readelf -lW`) for
library offsets, a plain line scan of /proc/kallsyms for kernel symbols, and
real uprobes (tracefs, private instance) placed at the offsets the reader
computes, which must fire when the fixture program runs.
"""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

from undertow.kernel.arch import current_arch
from undertow.kernel.elf import ELFFile, find_library, resolve_object
from undertow.kernel.kallsyms import load_kallsyms
from undertow.kernel.roots import Roots

HERE = os.path.dirname(os.path.abspath(__file__))
ELFDIR = os.path.join(os.path.dirname(HERE), "fixtures", "elf")


def test_find_libc_here():
    path = find_library("libc")
    assert os.path.isabs(path) and os.path.exists(path)
    e = ELFFile(path)
    assert e.soname == "libc.so.6"
    assert e.machine == current_arch().elf_machine
    assert find_library("libc.so.6") == path
    assert resolve_object("libc") == path
    # the C library this Python process runs on maps the same file (same inode)
    maps = open("/proc/self/maps").read()
    mapped = {line.split()[-1] for line in maps.splitlines() if re.search(r"/libc[.-][^/]*so", line)}
    assert any(os.path.samefile(m, path) for m in mapped if os.path.exists(m))


def test_resolve_command_on_path():
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh on PATH")
    assert resolve_object("sh") == os.path.abspath(sh)


@pytest.mark.skipif(shutil.which("nm") is None or shutil.which("readelf") is None,
                    reason="binutils (nm, readelf) not installed: no independent oracle")
def test_getpid_offset_matches_binutils():
    path = find_library("libc")
    nm = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    values = {int(m.group(1), 16) for m in re.finditer(r"^([0-9a-f]+) [TW] getpid(@@\S+)?$", nm, re.M)}
    assert len(values) == 1, f"nm gave {values}"
    vaddr = values.pop()
    ph = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    expected = None
    for m in re.finditer(r"^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", ph, re.M):
        off, va, filesz = (int(x, 16) for x in m.groups())
        if va <= vaddr < va + filesz:
            expected = vaddr - va + off
    assert expected is not None
    assert ELFFile(path).symbol_file_offset("getpid") == expected
    assert ELFFile(path).symbol_file_offset("getpid", 1) == expected + 1


def test_proc_kallsyms():
    restrict = open("/proc/sys/kernel/kptr_restrict").read().strip()
    k = load_kallsyms(Roots())
    # independent scan of the same file
    raw = open("/proc/kallsyms").read().splitlines()
    zeroed = all(set(line.split()[0]) == {"0"} for line in raw[:100])
    assert k.addresses_available is (not zeroed), f"kptr_restrict={restrict}"
    assert len(k) == len(raw)
    name = "__x64_sys_getpid" if current_arch().name == "x86_64" else "__arm64_sys_getpid"
    truth = [line.split() for line in raw if line.split()[2:3] == [name]]
    if not truth:
        pytest.skip(f"{name} not in /proc/kallsyms")
    sym = k.lookup(name)
    assert sym is not None and sym.address == int(truth[0][0], 16) and sym.type == truth[0][1]
    assert name in k
    assert name in {s.name for s in k.match(name[:-3] + "p?d")}
    if not k.addresses_available:
        assert k.symbolize(0xFFFFFFFF81000000) is None
        pytest.skip(f"kallsyms addresses hidden (kptr_restrict={restrict}, no CAP_SYSLOG); names checked")
    got = k.symbolize(sym.address + 3)
    assert got is not None and got[1] == 3
    aliases = {line.split()[2] for line in raw if line.split()[0] == truth[0][0]}
    assert got[0] in aliases


# -- real uprobes at the computed offsets ------------------------------------

def _tracefs():
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(d, "uprobe_events")):
            return d
    if not os.path.ismount("/sys/kernel/tracing"):
        libc = ctypes.CDLL(None, use_errno=True)
        # Mounted like the library does; left mounted (a shared system mount, not a test probe).
        if libc.mount(b"nodev", b"/sys/kernel/tracing", b"tracefs", 0, None) == 0 and \
                os.path.exists("/sys/kernel/tracing/uprobe_events"):
            return "/sys/kernel/tracing"
    return None


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def test_uprobes_fire_at_computed_offsets(tmp_path):
    """A uprobe on fixture_work and one on the USDT probe fixture:ready (with its
    semaphore as reference counter) must each fire once per run of the fixture."""
    if current_arch().name != "x86_64":
        pytest.skip("the compiled fixtures are x86_64")
    tfs = _tracefs()
    if tfs is None:
        pytest.skip("no tracefs with uprobe_events")
    exe = str(tmp_path / "prog-pie")
    shutil.copy(os.path.join(ELFDIR, "prog-pie"), exe)
    os.chmod(exe, 0o755)
    e = ELFFile(exe)
    func_off = e.symbol_file_offset("fixture_work")
    usdt = [p for p in e.usdt_probes() if p.name == "ready"][0]
    tag = f"undertow_test_{os.getpid()}"
    ev_func, ev_usdt = f"{tag}_func", f"{tag}_usdt"
    inst = os.path.join(tfs, "instances", tag)
    events = os.path.join(tfs, "uprobe_events")
    created = []
    try:
        _append(events, f"p:uprobes/{ev_func} {exe}:{func_off:#x}\n")
        created.append(ev_func)
        _append(events, f"p:uprobes/{ev_usdt} {exe}:{usdt.file_offset:#x}({usdt.semaphore_file_offset:#x})\n")
        created.append(ev_usdt)
        os.mkdir(inst)
        for ev in created:
            _append(os.path.join(inst, "events", "uprobes", ev, "enable"), "1\n")
        for _ in range(2):
            subprocess.run([exe], check=True, capture_output=True)
        hits = {}
        for line in open(os.path.join(tfs, "uprobe_profile")).read().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] in created:
                hits[parts[1]] = int(parts[2])
        assert hits == {ev_func: 2, ev_usdt: 2}
    finally:
        for ev in created:
            try:
                _append(os.path.join(inst, "events", "uprobes", ev, "enable"), "0\n")
            except OSError:
                pass
        if os.path.isdir(inst):
            os.rmdir(inst)
        for ev in created:
            try:
                _append(events, f"-:uprobes/{ev}\n")
            except OSError:
                pass
    remaining = open(events).read()
    assert tag not in remaining
