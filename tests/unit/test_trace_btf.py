"""``undertow trace --btf FILE``: the target kernel's types for -S/-o (issue 17, item 5):
raw BTF or an ELF vmlinux's .BTF, checked before anything runs; -a for another
architecture without it warns that the offsets are this machine's."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from undertow.commands.trace import target_kernel
from undertow.errors import OptionError
from undertow.kernel.arch import current_arch

HERE = os.path.dirname(os.path.abspath(__file__))
TYPES_BTF = os.path.join(HERE, "..", "fixtures", "btf", "types.btf")
ELF = os.path.join(HERE, "..", "fixtures", "elf", "prog-pie")  # an x86_64 executable


@pytest.fixture(autouse=True)
def no_cache(monkeypatch):
    monkeypatch.setenv("UNDERTOW_CACHE_DIR", "")


def test_another_arch_without_btf_warns(capsys):
    other = "aarch64" if current_arch().name != "aarch64" else "x86_64"
    assert target_kernel(None, other) is None
    assert capsys.readouterr().err == (
        f"undertow trace: warning: -a {other}: struct offsets and argument types come from this machine's BTF "
        f"({current_arch().name}, /sys/kernel/btf/vmlinux), not the target's; give the target kernel's BTF or "
        "vmlinux with --btf FILE\n")
    assert target_kernel(None, current_arch().name) is None
    assert capsys.readouterr().err == ""


def test_raw_btf_file():
    k = target_kernel(TYPES_BTF, None)
    assert k.foreign is True
    assert k.btf().sizeof("struct outer") == 160


@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy (binutils) is not installed")
def test_elf_with_btf_section(tmp_path):
    vmlinux = tmp_path / "vmlinux"
    subprocess.run(["objcopy", "--add-section", f".BTF={TYPES_BTF}", ELF, str(vmlinux)], check=True)
    k = target_kernel(str(vmlinux), "x86_64")
    assert k.btf().sizeof("struct outer") == 160
    with pytest.raises(OptionError) as ei:
        target_kernel(str(vmlinux), "aarch64")
    assert ei.value.message == f"argument --btf: {vmlinux} is an x86_64 kernel, but the lines are for aarch64"


def test_bad_files(tmp_path):
    with pytest.raises(OptionError) as ei:
        target_kernel(str(tmp_path / "nope"), None)
    assert ei.value.message == f"argument --btf: {tmp_path / 'nope'} is not a file"
    with pytest.raises(OptionError) as ei:
        target_kernel(ELF, "x86_64")
    assert ei.value.message == f"argument --btf: {ELF}: {os.path.abspath(ELF)} is an ELF file without a .BTF section"
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not BTF at all" * 4)
    with pytest.raises(OptionError) as ei:
        target_kernel(str(junk), None)
    assert ei.value.message.startswith(f"argument --btf: {junk}: ")
    assert ei.value.exit_code == 2
