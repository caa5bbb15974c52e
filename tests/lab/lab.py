#!/usr/bin/env python3
"""The undertow kernel lab: run a command inside a stock Debian kernel under QEMU.

This machine's kernel has no kprobes and refuses fentry; Debian's stock kernels (6.1 and 6.12)
have both. The lab fetches a kernel package with ``apt-get download`` (never installs it),
extracts the ELF ``vmlinux`` from ``vmlinuz`` and boots it through its PVH entry with qboot
(no decompressor, no bootloader), with a busybox-static initramfs that loads the 9p/overlay
modules, shares the host's ``/`` read-only over virtio-9p under a tmpfs overlay, mounts
tracefs, debugfs, bpffs and cgroup2, and runs one command as root. The command's output comes
back on ttyS1 (streamed to the caller); the kernel console goes to a file on ttyS0 together with
the command's exit status. See docs/lab.md.

CLI::

    python3 tests/lab/lab.py run --kernel 6.1 -- uname -r
    python3 tests/lab/lab.py fetch --kernel 6.12
    python3 tests/lab/lab.py kprobe-check --kernel all
    python3 tests/lab/lab.py ci            # what tests/lab/run (and .ci/run) does

Exit status of ``run``: the command's own status; 1 when the command succeeded but the guest
kernel logged a splat (unless --allow-splat); 124 on timeout; 125 when the guest never reported
a status (boot failure, panic); 77 when the kernel or QEMU is unavailable (reason printed).

This is test tooling, not library code: it spawns qemu, apt-get and dpkg-deb (never through a
shell) and prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import lzma
import os
import re
import selectors
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUEST_INIT = os.path.join(HERE, "init")

EXIT_SPLAT = 1
EXIT_TIMEOUT = 124
EXIT_NO_STATUS = 125
EXIT_SKIP = 77

#: The series the lab knows, in the order CI runs them.
SERIES = ("6.1", "6.12")

#: Modules the guest needs to reach its root: virtio PCI transport, 9p over virtio, overlayfs.
#: Whatever is built in (modules.builtin) is skipped; dependencies come from each module's
#: own ``depends=`` modinfo string.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
QBOOT_CANDIDATES = ("/usr/share/qemu/qboot.rom", "/usr/share/qboot/bios.bin")

SPLAT_RE = re.compile(
    r"(BUG:|WARNING:|Oops|Call Trace|Kernel panic|general protection fault|"
    r"UBSAN:|KASAN:|kernel BUG at|watchdog: BUG|RCU detected stall|INFO: task .* blocked)"
)
MARK_RE = re.compile(r"UNDERTOW-LAB-(USERSPACE|START|EXIT|ERROR)(?:=(\S*))?(?: uptime=([\d.]+))?")


class LabUnavailable(Exception):
    """The lab cannot run here (no QEMU, no busybox, kernel not fetchable): a skip, with a reason."""


class LabError(Exception):
    """The lab could run but something in its own setup failed."""


# --------------------------------------------------------------------------- host checks


def _which(name: str) -> Optional[str]:
    return shutil.which(name)


def qemu_binary() -> str:
    """Path of qemu-system-x86_64, or LabUnavailable."""
    path = _which("qemu-system-x86_64")
    if not path:
        raise LabUnavailable("qemu-system-x86_64 not found (Debian package: qemu-system-x86)")
    return path


def qboot_rom() -> str:
    for p in QBOOT_CANDIDATES:
        if os.path.exists(p):
            return p
    raise LabUnavailable("qboot.rom not found (Debian package: qemu-system-data)")


def busybox_binary() -> str:
    for p in BUSYBOX_CANDIDATES:
        if os.path.exists(p) and _is_static(p):
            return p
    raise LabUnavailable("a static busybox was not found (Debian package: busybox-static)")


def _is_static(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (statically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def accel_args() -> List[str]:
    """KVM only when /dev/kvm is writable and the CPU advertises vmx/svm; else TCG.

    On the development machine /dev/kvm is a software PVM on which stock kernels do not run
    (QEMU aborts on MSR 0x10a), and /proc/cpuinfo has neither flag.
    """
    hw = False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    hw = "vmx" in flags or "svm" in flags
                    break
    except OSError:
        pass
    if hw and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    # Single-threaded TCG, not thread=multi: under MTTCG (QEMU 7.2) a vCPU can execute a stale
    # int3 left by x86 text_poke_bp() after the patch completed, and the guest dies with
    # "Oops: int3" in whatever code was patched (jump labels flipped by enabling a tracepoint or
    # a kprobe). Measured here on 6.12: toggling a kprobe and sched_switch in a loop panicked
    # 2 of 2 boots within 5 s with thread=multi, 0 of 2 in 40 s (~600 rounds) with
    # thread=single, at no measurable cost for these mostly single-threaded workloads.
    return ["-accel", "tcg,thread=%s" % os.environ.get("UNDERTOW_LAB_TCG_THREAD", "single"),
            "-cpu", "max"]


def cache_dir() -> str:
    d = os.environ.get("UNDERTOW_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "undertow-lab",
    )
    os.makedirs(d, exist_ok=True)
    return d


# --------------------------------------------------------------------------- package choice


def _run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)  # type: ignore[call-overload]


def _version_key(name: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def _series_re(series: str) -> "re.Pattern[str]":
    # linux-image-6.1.0-56-amd64, linux-image-6.12.117+deb12-amd64; not -dbg/-unsigned/cloud/rt.
    return re.compile(r"^linux-image-%s(\.[0-9]+)+(-[0-9]+)?(\+deb[0-9]+(u[0-9]+)?)?-amd64$"
                      % re.escape(series))


def _has_candidate(pkg: str) -> bool:
    r = _run(["apt-cache", "policy", pkg])
    m = re.search(r"Candidate:\s*(\S+)", r.stdout)
    return bool(m) and m.group(1) != "(none)"


def resolve_package(series: str) -> str:
    """Name of the newest amd64 image package of a kernel series, from the apt lists.

    "6.1" follows Debian stable's ``linux-image-amd64`` metapackage when it points into the
    series; any series falls back to the newest ``linux-image-<series>.*-amd64`` package with an
    installation candidate. Raises LabUnavailable with the reason when none is known.
    """
    if not _which("apt-cache"):
        raise LabUnavailable("apt-cache not found: the lab fetches Debian kernel packages")
    pat = _series_re(series)
    r = _run(["apt-cache", "depends", "linux-image-amd64"])
    for m in re.finditer(r"Depends:\s*(linux-image-\S+)", r.stdout):
        if pat.match(m.group(1)) and _has_candidate(m.group(1)):
            return m.group(1)
    r = _run(["apt-cache", "pkgnames", "linux-image-%s." % series])
    names = sorted((n for n in r.stdout.split() if pat.match(n)), key=_version_key, reverse=True)
    for n in names:
        if _has_candidate(n):
            return n
    raise LabUnavailable(
        "no linux-image-%s.*-amd64 package in the configured apt sources "
        "(run apt-get update; 6.12 for bookworm comes from bookworm-security or bookworm-backports)"
        % series)


def _cached_debs(pattern: str) -> List[str]:
    return sorted(glob.glob(os.path.join(cache_dir(), "debs", pattern)), key=_version_key,
                  reverse=True)


def fetch_deb(pkg: str) -> str:
    """Download ``pkg`` with apt-get download into <cache>/debs (reused when present)."""
    debs = os.path.join(cache_dir(), "debs")
    os.makedirs(debs, exist_ok=True)
    have = _cached_debs("%s_*_amd64.deb" % pkg)
    if have:
        return have[0]
    r = _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg], cwd=debs)
    have = _cached_debs("%s_*_amd64.deb" % pkg)
    if r.returncode != 0 or not have:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise LabUnavailable("apt-get download %s failed: %s" % (pkg, tail[0]))
    return have[0]


# --------------------------------------------------------------------------- vmlinux


_MAGICS = (
    ("xz", b"\xfd7zXZ\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("gzip", b"\x1f\x8b\x08"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("lzma", b"\x5d\x00\x00"),
    ("bzip2", b"BZh"),
    ("lzo", b"\x89LZO"),
)


def _decompress(kind: str, data: bytes) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        import zlib
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "bzip2":
        import bz2
        return bz2.BZ2Decompressor().decompress(data)
    tool = {"zstd": ["zstd", "-d", "-c", "-q"], "lz4": ["lz4", "-d", "-c", "-q"],
            "lzo": ["lzop", "-d", "-c", "-q"]}[kind]
    if not _which(tool[0]):
        raise LabUnavailable("%s not found: needed to decompress this vmlinuz (Debian package: %s)"
                             % (tool[0], {"lzo": "lzop"}.get(kind, kind)))
    # The kernel build appends the uncompressed size (4 bytes, little endian) after the stream
    # (scripts/Makefile.lib size_append); try without it first, then as is.
    for payload in (data[:-4], data):
        r = subprocess.run(tool, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.stdout[:4] == b"\x7fELF":
            return r.stdout
    raise LabError("%s could not decompress the kernel payload" % tool[0])


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage.

    The x86 boot protocol (Documentation/arch/x86/boot.rst, version >= 2.08) gives
    ``payload_offset``/``payload_length`` at 0x248/0x24c, relative to the protected-mode code
    that starts after (setup_sects + 1) * 512 bytes. When the header is missing or the payload
    is not a known format, scan for compression magics and keep the first that decompresses to
    an ELF file.
    """
    tried = []  # type: List[Tuple[str, int]]
    if vmlinuz[0x202:0x206] == b"HdrS" and struct.unpack_from("<H", vmlinuz, 0x206)[0] >= 0x208:
        setup_sects = vmlinuz[0x1F1] or 4
        off, length = struct.unpack_from("<II", vmlinuz, 0x248)
        start = (setup_sects + 1) * 512 + off
        payload = vmlinuz[start:start + length]
        for kind, magic in _MAGICS:
            if payload.startswith(magic):
                tried.append((kind, start))
                out = _decompress(kind, payload)
                if out[:4] == b"\x7fELF":
                    return out
    for kind, magic in _MAGICS:
        pos = vmlinuz.find(magic)
        while 0 <= pos < len(vmlinuz) and (kind, pos) not in tried:
            tried.append((kind, pos))
            try:
                out = _decompress(kind, vmlinuz[pos:])
            except LabUnavailable:
                raise
            except Exception:
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            pos = vmlinuz.find(magic, pos + 1)
            if len(tried) > 64:
                break
    raise LabError("no compressed ELF payload found in vmlinuz (tried %d candidates)" % len(tried))


# --------------------------------------------------------------------------- modules


def module_name(path: str) -> str:
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def read_module(path: str) -> bytes:
    """The ELF bytes of a .ko, .ko.xz, .ko.zst or .ko.gz file."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        if not _which("zstd"):
            raise LabUnavailable("zstd not found: needed for .ko.zst modules (Debian package: zstd)")
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return data


def modinfo(ko: bytes) -> Dict[str, List[str]]:
    """The ``.modinfo`` section of an ELF64 module: NUL-separated ``key=value`` strings."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2 or ko[5] != 1:
        raise LabError("not a little-endian ELF64 module")
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def sh(i: int) -> Tuple[int, int, int]:
        name, _type, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, off, size

    _n, stroff, strsize = sh(shstrndx)
    info = {}  # type: Dict[str, List[str]]
    for i in range(shnum):
        name, off, size = sh(i)
        end = ko.index(b"\0", stroff + name)
        if ko[stroff + name:end] != b".modinfo":
            continue
        for item in ko[off:off + size].split(b"\0"):
            if b"=" in item:
                k, v = item.decode("utf-8", "replace").split("=", 1)
                info.setdefault(k, []).append(v)
    return info


def resolve_modules(moddir: str, roots: Iterable[str] = ROOT_MODULES) -> List[Tuple[str, str]]:
    """(name, path) of the modules needed for ``roots``, dependencies first.

    Built-in drivers (listed in modules.builtin) need nothing. Dependencies are read from each
    module's own ``depends=`` string, so no depmod output is needed.
    """
    index = {}  # type: Dict[str, str]
    for dirpath, _dirs, files in os.walk(os.path.join(moddir, "kernel")):
        for fn in files:
            if re.search(r"\.ko(\.(xz|zst|gz))?$", fn):
                index.setdefault(module_name(fn), os.path.join(dirpath, fn))
    builtin = set()
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            builtin = {module_name(line.strip()) for line in f if line.strip()}
    except OSError:
        pass
    order = []  # type: List[Tuple[str, str]]
    seen = set()

    def visit(name: str, stack: Tuple[str, ...]) -> None:
        if name in seen or name in builtin:
            return
        if name in stack:
            raise LabError("module dependency cycle: %s" % " -> ".join(stack + (name,)))
        path = index.get(name)
        if path is None:
            raise LabError("module %s is neither built in nor in %s" % (name, moddir))
        for dep in modinfo(read_module(path)).get("depends", [""])[0].split(","):
            if dep:
                visit(dep.replace("-", "_"), stack + (name,))
        seen.add(name)
        order.append((name, path))

    for r in roots:
        visit(r, ())
    return order


# --------------------------------------------------------------------------- initramfs


def cpio_newc(entries: Sequence[Tuple[str, int, bytes, int]]) -> bytes:
    """A newc ("070701") cpio archive with a trailer, 4-byte aligned.

    ``entries``: (path without leading /, mode incl. file type, data, rdev as major<<8|minor).
    Format: Documentation/driver-api/early-userspace/buffer-format.rst.
    """
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(list(entries) + [("TRAILER!!!", 0, b"", 0)], 1):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0,
                  rdev >> 8, rdev & 0xFF, len(nb), 0)
        out += b"070701" + b"".join(b"%08X" % v for v in fields) + nb
        pad()
        out += data
        pad()
    return bytes(out)


def build_base_initramfs(modules: Sequence[Tuple[str, str]], busybox: str) -> bytes:
    with open(busybox, "rb") as f:
        bb = f.read()
    with open(GUEST_INIT, "rb") as f:
        init = f.read()
    d, reg, x = 0o040755, 0o100644, 0o100755
    entries = [("bin", d, b"", 0), ("dev", d, b"", 0), ("dev/console", 0o020600, b"", (5 << 8) | 1),
               ("proc", d, b"", 0), ("sys", d, b"", 0), ("mnt", d, b"", 0), ("lab", d, b"", 0),
               ("lab/ko", d, b"", 0), ("bin/busybox", x, bb, 0), ("init", x, init, 0),
               ("lab/modules", reg, "".join(n + "\n" for n, _ in modules).encode(), 0)]
    for name, path in modules:
        entries.append(("lab/ko/%s.ko" % name, reg, read_module(path), 0))
    return cpio_newc(entries)


def command_file(argv: Sequence[str], cwd: str, env: Dict[str, str]) -> bytes:
    """The per-run /lab/cmd sourced by the guest init: every word quoted."""
    lines = ["# generated by tests/lab/lab.py", "LAB_CWD=%s" % shlex.quote(cwd)]
    for k, v in env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise LabError("bad environment variable name %r" % k)
        lines.append("export %s=%s" % (k, shlex.quote(v)))
    lines.append("set -- " + " ".join(shlex.quote(a) for a in argv))
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- kernels


@dataclasses.dataclass
class Kernel:
    """A prepared kernel: its uncompressed vmlinux and base initramfs in the cache."""

    series: str
    package: str
    release: str
    vmlinux: str
    initramfs: str
    modules: List[str]


def prepare_kernel(series: str, package: Optional[str] = None, deb: Optional[str] = None,
                   log: Callable[[str], None] = lambda s: None) -> Kernel:
    """Fetch (if needed) and unpack a kernel into <cache>/kernels/<deb name>/.

    Raises LabUnavailable when QEMU/busybox are missing or the package cannot be found/fetched.
    """
    qemu_binary()
    qboot_rom()
    busybox = busybox_binary()
    if deb is None:
        try:
            package = package or resolve_package(series)
            deb = fetch_deb(package)
        except LabUnavailable as e:
            # Offline, or apt lists missing: fall back to the newest deb already cached.
            cached = _cached_debs("linux-image-%s.*-amd64_*.deb" % series) if not package else \
                _cached_debs("%s_*_amd64.deb" % package)
            cached = [c for c in cached if _series_re(series).match(os.path.basename(c).split("_")[0])] \
                if not package else cached
            if not cached:
                raise
            log("lab: %s; using cached %s" % (e, os.path.basename(cached[0])))
            deb = cached[0]
    package = os.path.basename(deb).split("_")[0]
    kdir = os.path.join(cache_dir(), "kernels", os.path.basename(deb)[:-4])
    stamp = os.path.join(kdir, "ready")
    init_mtime = os.path.getmtime(GUEST_INIT)
    if not (os.path.exists(stamp) and os.path.getmtime(stamp) >= init_mtime):
        t0 = time.monotonic()
        os.makedirs(kdir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="unpack-", dir=kdir)
        try:
            r = _run(["dpkg-deb", "-x", deb, tmp])
            if r.returncode != 0:
                raise LabError("dpkg-deb -x %s failed: %s" % (deb, r.stderr.strip()))
            vmlinuz = sorted(glob.glob(os.path.join(tmp, "boot", "vmlinuz-*")))
            moddirs = sorted(glob.glob(os.path.join(tmp, "lib", "modules", "*"))) or \
                sorted(glob.glob(os.path.join(tmp, "usr", "lib", "modules", "*")))
            if not vmlinuz or not moddirs:
                raise LabError("%s has no boot/vmlinuz-* or lib/modules/*" % deb)
            release = os.path.basename(moddirs[0])
            with open(vmlinuz[0], "rb") as f:
                elf = extract_vmlinux(f.read())
            with open(os.path.join(kdir, "vmlinux"), "wb") as f:
                f.write(elf)
            mods = resolve_modules(moddirs[0])
            with open(os.path.join(kdir, "initramfs.cpio"), "wb") as f:
                f.write(build_base_initramfs(mods, busybox))
            for fn in glob.glob(os.path.join(tmp, "boot", "config-*")):
                shutil.copy(fn, os.path.join(kdir, "config"))
            with open(os.path.join(kdir, "release"), "w") as f:
                f.write(release + "\n")
            with open(os.path.join(kdir, "modules"), "w") as f:
                f.write("".join(n + "\n" for n, _ in mods))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(stamp, "w") as f:
            f.write("ok\n")
        log("lab: unpacked %s in %.1f s" % (os.path.basename(deb), time.monotonic() - t0))
    with open(os.path.join(kdir, "release")) as f:
        release = f.read().strip()
    with open(os.path.join(kdir, "modules")) as f:
        mods_names = f.read().split()
    return Kernel(series, package, release, os.path.join(kdir, "vmlinux"),
                  os.path.join(kdir, "initramfs.cpio"), mods_names)


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class LabResult:
    """What one boot produced."""

    kernel: Kernel
    status: int                      #: the command's exit status, or EXIT_TIMEOUT/EXIT_NO_STATUS
    timed_out: bool
    seconds: float                   #: wall time, QEMU start to exit
    userspace_seconds: Optional[float]  #: wall time, QEMU start to the initramfs init
    start_seconds: Optional[float]   #: wall time, QEMU start to the command's start
    splats: List[str]
    console_tail: List[str]
    console_path: Optional[str]
    error: Optional[str] = None      #: UNDERTOW-LAB-ERROR from the guest init

    def exit_code(self, allow_splat: bool = False) -> int:
        if self.status == 0 and self.splats and not allow_splat:
            return EXIT_SPLAT
        return self.status


def _prune_runs(keep: int = 10) -> None:
    """Keep only the newest ``keep`` run directories (failed runs keep their console.log)."""
    runs = sorted(glob.glob(os.path.join(cache_dir(), "run-*")), key=os.path.getmtime)
    old = time.time() - 3 * 3600  # never one a guest may still be running in (several run at once)
    for d in runs[:-keep] if len(runs) > keep else []:
        if os.path.getmtime(d) < old:
            shutil.rmtree(d, ignore_errors=True)


DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "PYTHONUNBUFFERED": "1",
    "UNDERTOW_LAB": "1",
}


def guest_argv(argv: Sequence[str]) -> List[str]:
    """Replace a leading ``python3``/``python`` by this interpreter's real path.

    Under TCG a pyenv shim costs ~9 s per call; sys.executable is the real binary and is
    visible in the guest through the 9p root.
    """
    argv = list(argv)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = os.path.realpath(sys.executable)
    return argv


def run(kernel: Kernel, argv: Sequence[str], cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None, timeout: float = 600.0,
        stream: Optional[Callable[[bytes], None]] = None, memory_mb: int = 2048,
        cpus: Optional[int] = None, keep: bool = False, show_console: bool = False) -> LabResult:
    """Boot ``kernel`` and run ``argv`` in it as root; return the result.

    ``stream`` receives the command's stdout+stderr bytes as they arrive (ttyS1). On timeout
    QEMU is killed by its own PID. The console log (ttyS0) is kept when the run fails or
    ``keep`` is set, and its path is in the result.
    """
    qemu = qemu_binary()
    cwd = os.path.abspath(cwd or os.getcwd())
    full_env = dict(DEFAULT_ENV)
    full_env.update(env or {})
    _prune_runs()
    rundir = tempfile.mkdtemp(prefix="run-", dir=cache_dir())
    console = os.path.join(rundir, "console.log")
    initrd = os.path.join(rundir, "initrd.cpio")
    with open(kernel.initramfs, "rb") as f:
        base = f.read()
    with open(initrd, "wb") as f:
        # A second archive appended to the first must start on a 4-byte boundary, or the kernel
        # stops with "Initramfs unpacking failed: invalid magic" (init/initramfs.c).
        f.write(base + b"\0" * (-len(base) % 4))
        f.write(cpio_newc([("lab", 0o040755, b"", 0),
                           ("lab/cmd", 0o100644, command_file(guest_argv(argv), cwd, full_env), 0)]))
    cpus = cpus or max(1, min(4, os.cpu_count() or 1))
    append = [
        "console=ttyS0,115200", "loglevel=5", "panic=-1",
        "mitigations=off", "nokaslr", "tsc=reliable", "no_timer_check", "random.trust_cpu=on",
        "8250.nr_uarts=2", "rdinit=/init",
    ]
    cmd = [qemu, "-machine", "pc", "-bios", qboot_rom()] + accel_args() + [
        "-smp", str(cpus), "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", kernel.vmlinux, "-initrd", initrd, "-append", " ".join(append),
        "-serial", "file:" + console,
        "-chardev", "stdio,id=out,signal=off", "-serial", "chardev:out",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    qemu_err = bytearray()
    console_pos = 0
    console_buf = b""
    marks = {}  # type: Dict[str, float]
    status = None  # type: Optional[int]
    error = None  # type: Optional[str]
    timed_out = False
    open_fds = 2

    def poll_console() -> None:
        nonlocal console_pos, console_buf, status, error
        try:
            with open(console, "rb") as f:
                f.seek(console_pos)
                chunk = f.read()
        except OSError:
            return
        console_pos += len(chunk)
        console_buf += chunk
        if show_console and chunk:
            sys.stderr.write(chunk.decode("utf-8", "replace"))
        *lines, console_buf = console_buf.split(b"\n")
        for raw in lines:
            m = MARK_RE.search(raw.decode("utf-8", "replace"))
            if not m:
                continue
            marks.setdefault(m.group(1), time.monotonic() - t0)
            if m.group(1) == "EXIT" and status is None:
                status = int(m.group(2))
            if m.group(1) == "ERROR" and error is None:
                error = raw.decode("utf-8", "replace").split("=", 1)[1]

    try:
        while open_fds:
            remaining = t0 + timeout - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(0.25, remaining)):
                data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not data:
                    sel.unregister(key.fileobj)
                    open_fds -= 1
                elif key.data == "out":
                    if stream:
                        stream(data)
                else:
                    qemu_err += data
            poll_console()
        if timed_out:
            proc.kill()  # by its own PID (Popen.kill sends SIGKILL to proc.pid)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    seconds = time.monotonic() - t0
    poll_console()
    with open(console, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    lines = text.splitlines()
    splats = [ln for ln in lines if SPLAT_RE.search(ln) and "UNDERTOW-LAB" not in ln]
    if qemu_err.strip():
        lines.append("[qemu stderr] " + qemu_err.decode("utf-8", "replace").strip())
    if timed_out:
        final = EXIT_TIMEOUT
    elif status is None:
        final = EXIT_NO_STATUS
    else:
        final = status
    result = LabResult(kernel, final, timed_out, seconds, marks.get("USERSPACE"),
                       marks.get("START"), splats, lines[-40:], console, error)
    if final == 0 and not splats and not keep:
        shutil.rmtree(rundir, ignore_errors=True)
        result.console_path = None
    else:
        try:
            os.unlink(initrd)
        except OSError:
            pass
    return result


# --------------------------------------------------------------------------- CLI


def _stdout_stream(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _kernels_arg(value: str) -> List[str]:
    return list(SERIES) if value == "all" else value.split(",")


def report(res: LabResult, allow_splat: bool = False, what: str = "") -> None:
    """Print warnings (splats, timeout, boot failure) and a one-line summary to stderr."""
    if res.splats:
        _log("lab: WARNING: guest kernel splat in %s (%d line(s)):" % (res.kernel.release, len(res.splats)))
        for ln in res.splats[:10]:
            _log("lab:   " + ln)
    if res.timed_out or res.status == EXIT_NO_STATUS or res.error:
        why = "timed out" if res.timed_out else (res.error or "no exit status from the guest")
        _log("lab: %s; console tail (%s):" % (why, res.console_path))
        for ln in res.console_tail[-25:]:
            _log("lab: | " + ln)
    up = "%.1f" % res.userspace_seconds if res.userspace_seconds is not None else "-"
    st = "%.1f" % res.start_seconds if res.start_seconds is not None else "-"
    _log("lab: %s %s (%s): exit %d in %.1f s (userspace at %s s, command at %s s)%s"
         % (res.kernel.series, what or "run", res.kernel.release, res.exit_code(allow_splat),
            res.seconds, up, st, "" if not res.splats else ", SPLAT"))


def _env_pairs(pairs: Sequence[str]) -> Dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep:
            raise SystemExit("lab: --env wants KEY=VALUE, got %r" % p)
        out[k] = v
    return out


def cmd_fetch(args: argparse.Namespace) -> int:
    rc = 0
    for s in _kernels_arg(args.kernel):
        try:
            k = prepare_kernel(s, args.package, args.deb, log=_log)
            print("%s %s %s %s" % (s, k.release, k.vmlinux, ",".join(k.modules)))
        except LabUnavailable as e:
            _log("lab: %s: skipped: %s" % (s, e))
            rc = rc or EXIT_SKIP
    return rc


def cmd_run(args: argparse.Namespace) -> int:
    argv = args.command
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise SystemExit("lab: no command given (lab.py run --kernel 6.1 -- CMD...)")
    rc = 0
    for s in _kernels_arg(args.kernel):
        try:
            k = prepare_kernel(s, args.package, args.deb, log=_log)
        except LabUnavailable as e:
            _log("lab: %s: skipped: %s" % (s, e))
            rc = rc or EXIT_SKIP
            continue
        res = run(k, argv, cwd=args.cwd, env=_env_pairs(args.env), timeout=args.timeout,
                  stream=_stdout_stream, memory_mb=args.memory, cpus=args.cpus, keep=args.keep,
                  show_console=args.console)
        report(res, args.allow_splat)
        code = res.exit_code(args.allow_splat)
        if code != 0 and (rc == 0 or rc == EXIT_SKIP):
            rc = code
    return rc


def kprobe_check_argv() -> List[str]:
    return [os.path.realpath(sys.executable), os.path.join(HERE, "kprobe_check.py")]


def live_argv() -> List[str]:
    # --durations: CI's log shows where each guest's time goes (the tiers' budget is tight)
    return [os.path.realpath(sys.executable), "-m", "pytest", "tests/live", "-q",
            "-p", "no:cacheprovider", "--durations=15"] + \
        ["--ignore=" + os.path.join("tests", "live", f) for f in HOST_ONLY_LIVE]


#: Live tests of undertow's own behaviour that no kernel version changes — input checking,
#: option values, cache files, unprivileged users, ELF parsing, the program cache, the
#: bpftrace comparison: the host's live tier runs them; in the guests (~15x slower user
#: space) they took ~4 of the 6.1 tier's 21 minutes (2026-12-07, 1244 s of a 1320 s limit).
#: The fleet outputs (NATS, ClickHouse, the Ansible sweep: issue 22) test transports and
#: servers, not the kernel, and those servers would start ~15x slower there.
HOST_ONLY_LIVE = ("test_bad_input_live.py", "test_options_live.py", "test_cache_live.py",
                  "test_unprivileged_live.py", "test_elf_live.py", "test_run_progcache_live.py",
                  "test_compat_bpftrace.py", "test_fleet_live.py", "test_fleet_ansible_live.py",
                  # ptrace + seccomp behave alike since 5.3 (PTRACE_GET_SYSCALL_INFO): checked
                  # once per change by hand in 6.1 (docs/ptrace.md), not in every tier
                  "test_ptrace_live.py")


#: Where the host fetches bpftrace's suite for the guests (they have no network; the host's
#: ``/`` is their read-only lower layer, so this path is readable inside them).
COMPAT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "undertow-compat")
#: Kernels the bpftrace suite runs in (issue 16): the cases the host's kernel skipped
#: (kprobe, kretprobe, kfunc, kprobe_multi), on the newest stock kernel.
COMPAT_KERNELS = ("6.12",)


def compat_argv(series: str, source: str) -> List[str]:
    """bpftrace 0.17's runtime cases the host's kernel skipped, judged as on the host
    (tests/compat/bpftrace_suite.py --ci: tracebacks, hangs, regressions fail)."""
    return [os.path.realpath(sys.executable), os.path.join(REPO, "tests", "compat", "bpftrace_suite.py"),
            # undertow only: bpftrace's LLVM takes minutes per case under TCG
            "--ci", "--tools", "undertow", "--label", series, "--source", source, "-v",
            # user space is ~15x slower under TCG: a stop takes seconds, not a hang, and a
            # case past the engine's 1-5 s timeouts once is run again (printed, never hidden)
            "--hang-after", "60", "--retries", "1",
            "--only-skipped-in", os.path.join(REPO, "tests", "compat", "expected-host.json")]


def fetch_compat() -> Tuple[Optional[str], str]:
    """(the suite's source tree, "") or (None, why): fetched on the host, where the network is."""
    if os.environ.get("UNDERTOW_LAB_COMPAT", "1") == "0":
        return None, "UNDERTOW_LAB_COMPAT=0"
    if not os.path.exists(os.path.join(REPO, "tests", "compat", "expected-host.json")):
        return None, "tests/compat/expected-host.json is missing (the host's statuses)"
    env = dict(os.environ, UNDERTOW_COMPAT_CACHE=COMPAT_CACHE)
    p = subprocess.run([sys.executable, os.path.join(REPO, "tests", "compat", "bpftrace_suite.py"),
                        "--fetch-only"], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        return None, "cannot fetch bpftrace's source package: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return p.stdout.strip().splitlines()[-1], ""


def doctor_argv() -> List[str]:
    return [os.path.realpath(sys.executable), "-m", "undertow", "doctor", "--json"]


#: Features ``undertow doctor --json`` must report available inside the lab's kernels (failure
#: otherwise), and features whose absence is only warned about (see docs/lab.md).
DOCTOR_REQUIRED = ("kprobe_events", "bpf_kprobe")
DOCTOR_WANTED = ("bpf_fentry", "bpf_kprobe_multi", "bpf_tp_btf")


def check_doctor(output: bytes, required: Sequence[str], wanted: Sequence[str]) -> Tuple[bool, str]:
    """Judge ``undertow doctor --json`` output: (ok, one-line description).

    Reads ``features.<name>.available`` / ``.reason``; a missing required feature fails, a
    missing wanted one is listed.
    """
    import json
    try:
        features = json.loads(output.decode("utf-8", "replace"))["features"]
    except (ValueError, KeyError, TypeError) as e:
        return False, "doctor output is not the expected JSON (%s)" % e
    ok = True
    words = []
    for name in list(required) + [w for w in wanted if w not in required]:
        f = features.get(name) or {}
        if f.get("available"):
            words.append("%s yes" % name)
            continue
        words.append("%s NO (%s)" % (name, f.get("reason", "not reported")))
        if name in required:
            ok = False
    return ok, ", ".join(words)


def cmd_ci(args: argparse.Namespace) -> int:
    """Per kernel series: the kprobe check, the live tier and ``undertow doctor --json``.

    Exits non-zero when any run fails; a kernel that cannot be had is skipped with its reason.
    Every run gets at most its own timeout and what is left of the overall ``--budget``; a step
    the budget no longer allows is reported and counts as a failure (a missing run is no pass).
    """
    t_start = time.monotonic()
    env = {"PYTHONPATH": os.path.join(REPO, "src")}
    if os.environ.get("CI"):
        env["CI"] = os.environ["CI"]
    steps = [("kprobe-check", kprobe_check_argv(), 120.0),
             ("live tier", live_argv() + list(args.pytest_args), args.timeout)]
    if os.path.exists(os.path.join(REPO, "src", "undertow", "commands", "doctor.py")):
        steps.append(("doctor", doctor_argv(), 180.0))
    else:
        _log("lab: undertow doctor not present yet (src/undertow/commands/doctor.py): not run")
    required = list(DOCTOR_REQUIRED) + list(args.require)
    summary = []
    kernels = _kernels_arg(args.kernel)
    compat_source, why = (None, "")
    if any(s in COMPAT_KERNELS for s in kernels):
        compat_source, why = fetch_compat()
        if compat_source is None:
            summary.append("lab: bpftrace suite not run: %s" % why)
    ready = []
    for s in kernels:  # downloads one after the other: the package cache is shared
        try:
            ready.append((s, prepare_kernel(s, log=_log)))
        except LabUnavailable as e:
            summary.append("lab: %-5s skipped: %s" % (s, e))
    lkm_argv = {s: lkm_rootkit_argv(k.release) for s, k in ready}  # builds: one at a time
    stap_argv = {s: stap_oracle_argv(k.release) for s, k in ready}  # opt-in, see docs/lab.md
    parallel = _parallel_guests(len(ready))
    results = {}  # type: Dict[str, Tuple[bool, str]]

    def one_kernel(s: str, k: "Kernel") -> None:
        out_stream = _PrefixedStream(s) if parallel else None
        kernel_steps = list(steps)
        kernel_steps.append(("lkm rootkit", lkm_argv[s], 600.0))
        if stap_argv[s]:
            kernel_steps.append(("stap oracle", stap_argv[s], 600.0))
        if compat_source is not None and s in COMPAT_KERNELS:
            kernel_steps.append(("bpftrace suite", compat_argv(s, compat_source), args.compat_timeout))
        results[s] = _ci_kernel(s, k, kernel_steps, args, env, required, t_start, out_stream)

    if parallel:
        # Each guest's TCG runs on one host thread (thread=single, see accel_args): with two
        # host CPUs the two kernels' tiers run side by side, in the time of the longer one.
        _log("lab: %d kernels side by side (UNDERTOW_LAB_PARALLEL=0: one after the other)" % len(ready))
        threads = [threading.Thread(target=one_kernel, args=sk, name="lab-" + sk[0]) for sk in ready]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for s, k in ready:
            one_kernel(s, k)
    failed = False
    for s, _k in ready:
        ok, line = results.get(s, (False, "lab: %-5s no result" % s))
        failed = failed or not ok
        summary.append(line)
    summary.append("lab: total %.1f s" % (time.monotonic() - t_start))
    for line in summary:
        print(line)
    sys.stdout.flush()
    return 1 if failed else 0


def lkm_rootkit_argv(release: str) -> List[str]:
    """The module rootkit test (issue 20) for a guest of ``release``; builds utrk.ko for it on
    the host first (tests/lab/modbuild.py). When it cannot be built the test skips, saying why
    (the module's path is missing), and the reason is logged here."""
    import modbuild  # noqa: E402 - it imports this module

    ko, why = modbuild.build_rootkit(release)
    if ko is None:
        _log("lab: %s: no test rootkit module: %s" % (release, why))
    return [os.path.realpath(sys.executable), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
            os.path.join("tests", "lab", "guest", "test_lkm_rootkit.py")]


def stap_oracle_argv(release: str) -> Optional[List[str]]:
    """Real SystemTap as the oracle of ``undertow stap`` (issue 19), only with UNDERTOW_LAB_STAP=1:
    builds the seed scripts' modules for ``release`` on the host (tests/lab/stap_oracle.py; minutes
    per script, and Debian's systemtap must be installed), then the guest compares the lines.
    None when not asked for or when SystemTap built nothing (the reasons are logged)."""
    if os.environ.get("UNDERTOW_LAB_STAP") != "1":
        return None
    import stap_oracle  # noqa: E402 - it imports modbuild, which imports this module

    res = stap_oracle.build_all(release, log=_log)
    if not any(x.get("ko") for x in res.get("seeds", {}).values()):
        for line in stap_oracle.describe(res):
            _log("lab: " + line)
        return None
    return stap_oracle.guest_argv()


def _parallel_guests(n: int) -> bool:
    """Run ``n`` kernels' guests at once: when there are several, the host has a CPU per guest,
    and UNDERTOW_LAB_PARALLEL is not 0."""
    if n < 2 or os.environ.get("UNDERTOW_LAB_PARALLEL", "1") == "0":
        return False
    return (os.cpu_count() or 1) >= n


class _PrefixedStream:
    """A guest's output, whole lines at a time, each prefixed with its kernel (``[6.1] ``), so
    that two guests running at once stay readable in one log."""

    _lock = threading.Lock()

    def __init__(self, label: str) -> None:
        self.prefix = ("[%s] " % label).encode()
        self.partial = b""

    def __call__(self, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        if lines:
            text = b"".join(self.prefix + ln + b"\n" for ln in lines)
            with self._lock:
                _stdout_stream(text)

    def flush(self) -> None:
        if self.partial:
            self(b"\n")


def _ci_kernel(s: str, k: "Kernel", kernel_steps: List[Tuple[str, List[str], float]], args: argparse.Namespace,
               env: Dict[str, str], required: List[str], t_start: float,
               out_stream: Optional[_PrefixedStream]) -> Tuple[bool, str]:
    """One kernel's steps, in order: (all passed, its summary line)."""
    failed = False
    parts = []
    emit = out_stream or _stdout_stream
    for what, argv, tmo in kernel_steps:
        left = args.budget - (time.monotonic() - t_start)
        if left < 30:
            _log("lab: %s %s not run: the lab budget of %.0f s is spent" % (s, what, args.budget))
            parts.append("%s NOT RUN (budget)" % what)
            failed = True
            continue
        _log("lab: === %s: %s in %s ===" % (s, what, k.release))
        out = bytearray()

        def stream(data: bytes) -> None:
            # The doctor's JSON is long: keep it, print it only when judged wrong.
            if what == "doctor":
                out.extend(data)
            else:
                emit(data)

        res = run(k, argv, cwd=REPO, env=env, timeout=min(tmo, left), stream=stream,
                  memory_mb=args.memory, cpus=args.cpus)
        if out_stream is not None:
            out_stream.flush()
        report(res, args.allow_splat, what)
        code = res.exit_code(args.allow_splat)
        if what == "live tier" and code == 5:
            _log("lab: pytest collected no tests in tests/live (exit 5): counted as passed")
            code = 0
        note = ""
        if what == "doctor" and code == 0:
            ok, desc = check_doctor(bytes(out), required, DOCTOR_WANTED)
            _log("lab: %s doctor: %s" % (s, desc))
            if not ok:
                emit(bytes(out))
                code = 1
                note = " (required feature missing)"
        elif what == "doctor":
            emit(bytes(out))
        failed = failed or code != 0
        parts.append("%s exit %d %.1f s%s" % (what, code, res.seconds, note))
    return not failed, "lab: %-5s %s: %s" % (s, k.release, "; ".join(parts))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description="undertow kernel lab (docs/lab.md)")
    sub = ap.add_subparsers(dest="cmd")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kernel", default="6.1",
                        help="kernel series: 6.1, 6.12, a comma list, or 'all' (default 6.1)")
    common.add_argument("--memory", type=int, default=2048, help="guest MiB (default 2048)")
    common.add_argument("--cpus", type=int, default=None, help="guest CPUs (default min(4, host))")
    common.add_argument("--allow-splat", action="store_true",
                        help="do not fail a run because the guest kernel logged BUG/WARNING/Oops")
    p = sub.add_parser("fetch", parents=[common], help="download and unpack kernels, print them")
    p.add_argument("--package", help="exact linux-image package instead of the series' newest")
    p.add_argument("--deb", help="a local linux-image .deb file")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("run", parents=[common], help="run a command inside a kernel")
    p.add_argument("--package", help="exact linux-image package instead of the series' newest")
    p.add_argument("--deb", help="a local linux-image .deb file")
    p.add_argument("--cwd", default=None, help="directory to run in (default: current)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--keep", action="store_true", help="keep the run directory (console.log)")
    p.add_argument("--console", action="store_true", help="echo the kernel console to stderr")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("kprobe-check", parents=[common],
                       help="run tests/lab/kprobe_check.py (kprobe+kretprobe from Python)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=lambda a: cmd_run(argparse.Namespace(
        command=kprobe_check_argv(), kernel=a.kernel, package=None, deb=None, cwd=REPO, env=[],
        timeout=a.timeout, memory=a.memory, cpus=a.cpus, keep=False, console=False,
        allow_splat=a.allow_splat)))
    p = sub.add_parser("ci", parents=[common], help="kprobe check + live tier + doctor per kernel")
    p.add_argument("--timeout", type=float, default=420.0,
                   help="live tier timeout per kernel (default 420 s)")
    p.add_argument("--budget", type=float, default=float(os.environ.get("UNDERTOW_LAB_BUDGET", 840)),
                   help="seconds for the whole lab (default 840, or $UNDERTOW_LAB_BUDGET)")
    p.add_argument("--require", action="append", default=[], metavar="FEATURE",
                   help="doctor feature that must be available (besides %s)" % ", ".join(DOCTOR_REQUIRED))
    p.add_argument("--compat-timeout", type=float, default=900.0,
                   help="bpftrace suite timeout in %s (default 900 s; UNDERTOW_LAB_COMPAT=0: not run)"
                   % ", ".join(COMPAT_KERNELS))
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments for the live tier")
    p.set_defaults(func=cmd_ci)
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    if args.cmd == "ci" and args.kernel == "6.1" and "--kernel" not in (argv or sys.argv):
        args.kernel = "all"
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
