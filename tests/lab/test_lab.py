"""The kernel lab's own tests (not collected by default: run ``python3 -m pytest tests/lab``).

The first group checks the harness's pieces without QEMU (cpio layout, modinfo parsing,
quoting of the command file). The second boots stock kernels (skipped, with the reason, when
QEMU or the kernel package is unavailable) and checks what the lab promises: the command's exit
status and output come back, kprobes and kretprobes work from Python, a guest splat is
surfaced, and a timeout kills QEMU and reports the console tail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

pytestmark = pytest.mark.lab


# --------------------------------------------------------------------------- no QEMU needed


def test_cpio_newc_is_aligned_and_extractable(tmp_path):  # type: ignore[no-untyped-def]
    data = lab.cpio_newc([("d", 0o040755, b"", 0), ("d/f", 0o100644, b"hello\n", 0),
                          ("d/odd", 0o100755, b"x" * 5, 0)])
    assert len(data) % 4 == 0
    assert data.startswith(b"070701")
    busybox = next((p for p in lab.BUSYBOX_CANDIDATES if os.path.exists(p)), None)
    if busybox is None:
        pytest.skip("busybox not installed: cannot cross-check the archive with its cpio")
    subprocess.run([busybox, "cpio", "-i", "-d"], input=data, cwd=str(tmp_path), check=True,
                   stderr=subprocess.DEVNULL)
    assert (tmp_path / "d" / "f").read_bytes() == b"hello\n"
    assert (tmp_path / "d" / "odd").read_bytes() == b"xxxxx"
    assert os.access(str(tmp_path / "d" / "odd"), os.X_OK)


def test_command_file_quotes_every_word():  # type: ignore[no-untyped-def]
    text = lab.command_file(["printf", "%s|", "a b", "$(reboot)", "it's"], "/w d",
                            {"K": "v; rm -rf /"}).decode()
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh to evaluate the generated file with")
    out = subprocess.run([sh, "-c", text + '\ncd /; "$@"; printf "%s|%s" "$LAB_CWD" "$K"'],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    assert out == "a b|$(reboot)|it's|/w d|v; rm -rf /"


def test_command_file_rejects_bad_env_name():  # type: ignore[no-untyped-def]
    with pytest.raises(lab.LabError):
        lab.command_file(["true"], "/", {"A B": "x"})


def test_series_pattern_picks_plain_amd64_images():  # type: ignore[no-untyped-def]
    assert lab._series_re("6.1").match("linux-image-6.1.0-56-amd64")
    assert lab._series_re("6.12").match("linux-image-6.12.117+deb12-amd64")
    for name in ("linux-image-6.12.117+deb12-rt-amd64", "linux-image-6.12.117+deb12-cloud-amd64",
                 "linux-image-6.1.0-56-amd64-dbg", "linux-image-6.1.0-56-amd64-unsigned"):
        assert not lab._series_re("6.12").match(name) and not lab._series_re("6.1").match(name)
    assert not lab._series_re("6.1").match("linux-image-6.12.117+deb12-amd64")


def test_extract_vmlinux_finds_payload_by_magic():  # type: ignore[no-untyped-def]
    import lzma
    elf = b"\x7fELF" + bytes(range(256)) * 64
    blob = b"\0" * 1000 + lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    assert lab.extract_vmlinux(blob + b"\x01\x02\x03\x04") == elf


def test_stap_oracle_keeps_the_compiler_errors():  # type: ignore[no-untyped-def]
    import stap_oracle

    log = ("  CC [M]  /tmp/stapX/m_src.o\n"
           "In file included from /tmp/stapX/m_src.c:21:\n"
           "/usr/share/systemtap/runtime/stp_task_work.c:107:40: error: passing argument 2 of "
           "'task_work_cancel' from incompatible pointer type\n"
           "  107 |         twork = task_work_cancel(task, func);\n"
           "cc1: all warnings being treated as errors\n"
           "Pass 4: compilation failed.  [man error::pass4]\n"
           "Pass 4: compilation failed.  [man error::pass4]\n")
    assert stap_oracle._error_lines(log) == [
        "/usr/share/systemtap/runtime/stp_task_work.c:107:40: error: passing argument 2 of "
        "'task_work_cancel' from incompatible pointer type",
        "Pass 4: compilation failed.  [man error::pass4]"]


def test_stap_oracle_patches_only_kernels_with_task_work_cancel_func(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    import stap_oracle

    if not os.path.exists(os.path.join(stap_oracle.RUNTIME, "stp_task_work.c")):
        pytest.skip("SystemTap's runtime is not installed (apt-get install systemtap)")
    monkeypatch.setenv("UNDERTOW_LAB_CACHE", str(tmp_path / "cache"))
    os.makedirs(stap_oracle._cache())
    for name, decl in (("old", "int task_work_cancel(struct task_struct *, task_work_func_t);"),
                       ("new", "struct callback_head *task_work_cancel_func(struct task_struct *, "
                               "task_work_func_t);")):
        hdr = tmp_path / name / "common" / "include" / "linux"
        hdr.mkdir(parents=True)
        (hdr / "task_work.h").write_text(decl + "\n")
        (tmp_path / name / "tree").mkdir()
        os.symlink("../common", str(tmp_path / name / "tree" / "source"))
    rt, why = stap_oracle.patched_runtime(str(tmp_path / "old" / "tree"))
    assert rt is None and "old task_work_cancel" in why
    rt, why = stap_oracle.patched_runtime(str(tmp_path / "new" / "tree"))
    assert rt is not None, why
    with open(os.path.join(rt, "stp_task_work.c")) as f:
        text = f.read()
    assert "task_work_cancel_func(task, func)" in text
    assert 'kallsyms_lookup_name("task_work_cancel_func")' in text
    assert "task_work_cancel(task, func)" not in text


# --------------------------------------------------------------------------- booting kernels


_kernels: Dict[str, object] = {}


def kernel(series: str) -> "lab.Kernel":
    if series not in _kernels:
        try:
            _kernels[series] = lab.prepare_kernel(series)
        except lab.LabUnavailable as e:
            _kernels[series] = str(e)
    k = _kernels[series]
    if isinstance(k, str):
        pytest.skip("kernel %s unavailable: %s" % (series, k))
    return k  # type: ignore[return-value]


def boot(series: str, argv: List[str], **kw: object) -> "tuple[lab.LabResult, bytes]":
    out = bytearray()
    res = lab.run(kernel(series), argv, cwd=lab.REPO, stream=out.extend, **kw)  # type: ignore[arg-type]
    return res, bytes(out)


@pytest.mark.parametrize("series", lab.SERIES)
def test_exit_status_and_output_come_back(series):  # type: ignore[no-untyped-def]
    res, out = boot(series, ["python3", "-c",
                             "import os,sys; print(os.uname().release, os.getcwd()); "
                             "print(open('/proc/mounts').read()); sys.exit(7)"], timeout=120)
    assert res.status == 7, res.console_tail
    first, _, mounts = out.decode().partition("\n")
    assert first.split() == [res.kernel.release, lab.REPO]
    for fstype in ("tracefs", "debugfs", "bpf", "cgroup2", "overlay"):
        assert " %s " % fstype in mounts, fstype
    assert not res.splats


@pytest.mark.parametrize("series", lab.SERIES)
def test_kprobe_and_kretprobe_from_python(series):  # type: ignore[no-untyped-def]
    res, out = boot(series, lab.kprobe_check_argv(), timeout=120)
    assert res.exit_code() == 0, out.decode(errors="replace") + "\n".join(res.console_tail)
    assert b"OK: kprobe and kretprobe" in out


def test_splat_is_surfaced():  # type: ignore[no-untyped-def]
    # SysRq-l prints a backtrace of every CPU: a "Call Trace" in the console, harmless.
    res, _ = boot(lab.SERIES[0], ["python3", "-c",
                                  "open('/proc/sysrq-trigger', 'w').write('l')"], timeout=120)
    assert res.status == 0
    assert res.splats and any("Call Trace" in s for s in res.splats)
    assert res.exit_code() == lab.EXIT_SPLAT
    assert res.exit_code(allow_splat=True) == 0


def test_timeout_kills_qemu_and_keeps_console():  # type: ignore[no-untyped-def]
    res, _ = boot(lab.SERIES[0], ["sleep", "600"], timeout=20)
    assert res.timed_out and res.status == lab.EXIT_TIMEOUT
    assert res.seconds < 60
    assert any("UNDERTOW-LAB-START" in ln for ln in res.console_tail)
    assert res.console_path and os.path.exists(res.console_path)
