"""Compiled programs kept for the next run of the same script, until the next boot.

Most of ``undertow run``'s start-up is Python importing and running the front end: the
bpftrace parser, the resolver (tracefs formats, BTF types) and the compiler. For one script
their result depends only on the script, its parameters, undertow's code and the running
kernel, so a second run of the same script can load the compiled programs and go straight
to ``BPF_PROG_LOAD`` (the verifier still checks every program, every run). SystemTap keeps
its compiled modules in ``~/.systemtap/cache`` the same way; bpftrace compiles every time.

The key covers: this module's ``FORMAT``, undertow's version and the size and
mtime of each source file that takes part in compiling (an edited checkout invalidates it), the Python
version, the machine, the kernel's boot id and its module list (``/proc/modules``: a module
reloaded gets new tracepoint ids and BTF), every ``UNDERTOW_*`` variable, and the script
with its origin, positional parameters and ``--unsafe``. An entry is named by a 64-bit
FNV-1a hash of the script, its origin and parameters, and holds the whole key, compared on
load (``hashlib`` costs ~2.7 ms to import, ``zlib`` 0.3 ms). Entries live in
``<cache dir>/programs/<boot id>/`` (see undertow.kernel.cache; ``UNDERTOW_CACHE_DIR=""``
turns every cache off, ``undertow run --no-cache`` this one); a store removes the
directories of other boots and keeps at most ``MAX_ENTRIES`` per boot (least recently used
out).

Not cached (:func:`not_cacheable` says why): programs with uprobes or USDT probes (the
binary can change on disk), ``-p``/``-c`` runs (the target pid is compiled in), programs
whose resolution read state that can change during a boot (``kaddr``, ``uaddr``,
``cgroupid``: the resolver marks them), and what does not survive pickling. The loading
process's pid and the session's start time are load-time relocations (asm.Asm.value_ref),
so a cached program is no more tied to the process that compiled it than to the one that
loads it.

Unpickling runs code: an entry is read only when it and the directories above it, up to the
cache directory, belong to the user running undertow and nobody else can write them.

An entry holds the resolver's warnings as text (printed again on a hit) and the
:class:`~undertow.backends.bpf.compiled.CompiledProgram`. Anything wrong with an entry (a
failed read, a pickle from another undertow) is a miss; it is never an error.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, List, Optional, Sequence, Tuple

from ...kernel.cache import boot_id, cache_dir

__all__ = ["FORMAT", "Key", "program_key", "load", "store", "not_cacheable"]

#: Bumped when what an entry holds changes shape.
FORMAT = 1
#: Entries kept per boot; storing one more removes the least recently used.
MAX_ENTRIES = 64
#: Attach kinds whose targets live as long as the boot (and the module list).
_STABLE_KINDS = frozenset({"begin", "end", "tracepoint", "raw_tracepoint", "tp_btf", "kprobe", "kretprobe",
                           "fentry", "fexit", "profile", "interval", "software", "hardware"})


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#: Subpackages whose code cannot change a compiled program (the commands, the output, the
#: ftrace backend): not stamped, ~0.3 ms less per run.
_NOT_COMPILING = frozenset({"__pycache__", "commands", "output", "tools", "ftrace"})


def _source_stamp() -> List[Tuple[str, int, int]]:
    """(path, size, mtime) of the source files of undertow's front end, BPF backend and
    kernel readers (~50 files, ~0.35 ms)."""
    root = _package_root()
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(".py"):
                try:
                    st = e.stat()
                except OSError:
                    continue
                out.append((e.path[len(root):], st.st_size, st.st_mtime_ns))
            elif e.name not in _NOT_COMPILING and e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    out.sort()
    return out


def _modules(roots: Any) -> str:
    """The kernel's module list with each module's size and address (refcounts left out:
    they change without anything we compiled changing); "" without modules."""
    try:
        with open(roots.proc_path("modules")) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    keep = []
    for line in lines:
        p = line.split()
        keep.append(" ".join(p[:2] + p[4:6]))  # name size ... state address
    return "\n".join(keep)


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Key:
    """What a cached program depends on (``text``), the entry's file name (``name``, from
    the script alone: a run of another undertow or kernel replaces the entry) and the
    directory of this boot's entries (``dir``)."""

    __slots__ = ("text", "name", "dir")

    def __init__(self, text: str, script: str, dir: str) -> None:
        self.text = text
        self.name = f"{_fnv1a(script.encode('utf-8', 'surrogateescape')):016x}"
        self.dir = dir


def program_key(roots: Any, text: str, origin: str, params: Sequence[str], unsafe: bool) -> Optional[Key]:
    """The cache key of this script on this boot, or None when caching is off."""
    base = cache_dir(roots)
    if base is None or not roots.live:
        return None
    from ... import __version__

    boot = boot_id(roots)
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("UNDERTOW_"))
    script = repr((text, origin, list(params), bool(unsafe)))
    return Key(repr((FORMAT, __version__, _source_stamp(), sys.version, sys.implementation.name,
                     os.uname().machine, boot, _modules(roots), env, script)), script,
               os.path.join(base, "programs", boot))


def load(roots: Any, key: Key) -> Optional[Tuple[List[str], Any]]:
    """``(warning lines, CompiledProgram)`` stored under ``key``, or None (a miss).
    ``roots``: where the lazily loaded vmlinux BTF comes from."""
    d = key.dir
    if not all(_private(p) for p in (os.path.dirname(os.path.dirname(d)), os.path.dirname(d), d)):
        return None
    try:
        fd = os.open(os.path.join(d, key.name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not _private(fd):
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read()
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    try:
        got = _unpickle(data, roots)
        if type(got) is not tuple or len(got) != 4 or got[0] != FORMAT or got[1] != key.text:
            return None
    except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss
        return None
    try:
        os.utime(os.path.join(d, key.name))  # recently used: kept by _trim
    except OSError:
        pass
    return list(got[2]), got[3]


# Types cast to kernel structs (``(struct task_struct *)curtask``) keep the vmlinux BTF
# they came from, a mapping of /sys/kernel/btf/vmlinux: it is pickled as a reference and
# loaded again, lazily, only if something asks it for more (printing a whole struct).


def _pickle(obj: Any) -> bytes:
    import io
    import pickle

    from ...kernel.btf import BTF

    class Pickler(pickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if type(o) is BTF and o.name == "vmlinux" and o.base is None:
                return "btf:vmlinux"
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def _unpickle(data: bytes, roots: Any) -> Any:
    import io

    try:
        from _pickle import Unpickler  # the C unpickler alone: `pickle` costs ~1.8 ms more to import
    except ImportError:  # pragma: no cover - an interpreter without it
        from pickle import Unpickler

    class Loader(Unpickler):  # type: ignore[misc, valid-type]
        def persistent_load(self, pid: Any) -> Any:
            if pid == "btf:vmlinux":
                return _LazyBTF(roots)
            raise ValueError(f"unknown reference {pid!r}")

    return Loader(io.BytesIO(data)).load()


class _LazyBTF:
    """The vmlinux BTF, loaded (kernel.btf.load_vmlinux: shared with the run's Kernel) on
    the first attribute asked of it."""

    def __init__(self, roots: Any) -> None:
        self._roots = roots

    def __getattr__(self, name: str) -> Any:
        from ...kernel.btf import load_vmlinux

        return getattr(load_vmlinux(self.__dict__["_roots"]), name)


def _private(path: Any) -> bool:
    """Whether ``path`` (or an fd) belongs to us and nobody else can write it: unpickling
    runs code, and ``undertow run`` runs as root (UNDERTOW_CACHE_DIR may name any place)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def not_cacheable(program: Any, compiled: Any, *, pid: Optional[int], cmd: Optional[str]) -> Optional[str]:
    """Why this compiled program must not be reused by a later run (None: it may be)."""
    if pid or cmd:
        return "-p/-c compile a process id in"
    why = program.setting("volatile")
    if why:
        return f"{why} reads state that can change before the next run"
    for cp in compiled.probes:
        if cp.ap.kind not in _STABLE_KINDS:
            return f"{cp.ap.kind} probes depend on files that can change"
    return None


def store(roots: Any, key: Key, warnings: Sequence[str], compiled: Any) -> bool:
    """Keep ``compiled`` under ``key``; True when it was written. Entries of other boots
    are removed first. Checked by loading it back: what does not survive the round trip
    (an object holding a file or a mapping) is not kept."""
    d = key.dir
    try:
        data = _pickle((FORMAT, key.text, list(warnings), compiled))
        _unpickle(data, roots)
    except Exception:  # noqa: BLE001 - not picklable: run without a cache entry
        return False
    parent = os.path.dirname(d)
    try:
        for name in os.listdir(parent):
            if name != os.path.basename(d):
                _remove_tree(os.path.join(parent, name))
    except OSError:
        pass
    _trim(d, MAX_ENTRIES - 1)
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        tmp = os.path.join(d, f".{key.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(d, key.name))
    except OSError:
        return False
    return True


def _trim(d: str, keep: int) -> None:
    """Remove all but the ``keep`` most recently used entries of ``d`` (a hit touches its
    entry's mtime, see :func:`load`)."""
    try:
        names = [n for n in os.listdir(d) if not n.startswith(".")]
    except OSError:
        return
    if len(names) <= keep:
        return
    def mtime(n: str) -> int:
        try:
            return os.stat(os.path.join(d, n)).st_mtime_ns
        except OSError:
            return 0
    for n in sorted(names, key=mtime)[:len(names) - keep]:
        try:
            os.unlink(os.path.join(d, n))
        except OSError:
            pass


def _remove_tree(path: str) -> None:
    """Remove a directory of entries (flat: files only)."""
    for name in os.listdir(path):
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    os.rmdir(path)
