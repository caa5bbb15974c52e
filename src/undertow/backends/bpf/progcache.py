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

Unpickling runs code, and ``undertow run`` runs as root with a cache directory the
environment names: every read, write and removal goes through undertow.kernel.cache, which
opens the directory chain without following symlinks and refuses directories and entries
that are not the user's or that others can write. Removal (other boots' directories, the
least recently used entries) unlinks only names shaped like this module's own (a boot id
directory, 16 hex digits, ``.<entry>.<pid>.<random>`` temporary files) and never follows a
link.

An entry holds the resolver's warnings as text (printed again on a hit) and the
:class:`~undertow.backends.bpf.compiled.CompiledProgram`. Anything wrong with an entry (a
failed read, a pickle from another undertow) is a miss; it is never an error.
"""

from __future__ import annotations

import os
import sys
from time import time_ns
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence, Tuple

from ...kernel.cache import boot_id, is_boot_id, open_cache

__all__ = ["FORMAT", "Key", "program_key", "load", "store", "not_cacheable"]

#: Bumped when what an entry holds changes shape.
FORMAT = 1
#: Entries kept per boot; storing one more removes the least recently used.
MAX_ENTRIES = 64
#: Attach kinds whose targets live as long as the boot (and the module list).
_STABLE_KINDS = frozenset({"begin", "end", "tracepoint", "raw_tracepoint", "tp_btf", "iter", "kprobe", "kretprobe",
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
    the script alone: a run of another undertow or kernel replaces the entry), the verified
    cache directory (``base``, a :class:`~undertow.kernel.cache.CacheDir`), the boot's
    directory name in ``programs/`` (``boot``) and its path (``dir``, for messages)."""

    __slots__ = ("text", "name", "base", "boot", "dir")

    def __init__(self, text: str, script: str, base: Any, boot: str) -> None:
        self.text = text
        self.name = f"{_fnv1a(script.encode('utf-8', 'surrogateescape')):016x}"
        self.base = base
        self.boot = boot
        self.dir = f"{base.path}/programs/{boot}"


def program_key(roots: Any, text: str, origin: str, params: Sequence[str], unsafe: bool) -> Optional[Key]:
    """The cache key of this script on this boot, or None when caching is off (or the
    cache directory was refused: undertow.kernel.cache says why)."""
    if not roots.live:
        return None
    boot = boot_id(roots)
    if not is_boot_id(boot) or boot == "unknown-boot":
        return None
    base = open_cache(roots)
    if base is None:
        return None
    from ... import __version__

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("UNDERTOW_"))
    script = repr((text, origin, list(params), bool(unsafe)))
    return Key(repr((FORMAT, __version__, _source_stamp(), sys.version, sys.implementation.name,
                     os.uname().machine, boot, _modules(roots), env, script)), script, base, boot)


def _is_entry(name: str) -> bool:
    """An entry's name: 16 lower-case hex digits (Key.name)."""
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def _is_ours(name: str) -> bool:
    """A name this module writes in a boot's directory: an entry or a temporary file
    (undertow.kernel.cache.CacheDir.write: ``.<entry>.<pid>.<hex>``)."""
    if _is_entry(name):
        return True
    p = name.split(".")
    return len(p) == 4 and p[0] == "" and _is_entry(p[1]) and p[2].isdigit() and \
        all(c in "0123456789abcdef" for c in p[3])


def _boot_dir(key: Key, create: bool) -> Any:
    programs = key.base.subdir("programs", create=create)
    if programs is None:
        return None
    with programs:
        return programs.subdir(key.boot, create=create)


def load(roots: Any, key: Key) -> Optional[Tuple[List[str], Any]]:
    """``(warning lines, CompiledProgram)`` stored under ``key``, or None (a miss).
    ``roots``: where the lazily loaded vmlinux BTF comes from."""
    d = _boot_dir(key, create=False)
    if d is None:
        return None
    with d:
        data = d.read(key.name)  # ours, not writable by others, not a symlink
        if data is None:
            return None
        try:
            got = _unpickle(data, roots)
            if type(got) is not tuple or len(got) != 4 or got[0] != FORMAT or got[1] != key.text:
                return None
        except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss
            return None
        d.touch(key.name)  # recently used: kept by _trim
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
    try:
        data = _pickle((FORMAT, key.text, list(warnings), compiled))
        _unpickle(data, roots)
    except Exception:  # noqa: BLE001 - not picklable: run without a cache entry
        return False
    programs = key.base.subdir("programs")
    if programs is None:
        return False
    with programs:
        for name in programs.entries(hidden=True):
            if name != key.boot and is_boot_id(name):
                programs.remove_tree(name, keep=lambda n: not _is_ours(n))
        d = programs.subdir(key.boot)
    if d is None:
        return False
    with d:
        _trim(d, MAX_ENTRIES - 1)
        return d.write(key.name, data)


#: A temporary file older than this was left by a run that was killed.
_STALE_NS = 3600 * 10**9


def _trim(d: Any, keep: int) -> None:
    """Remove all but the ``keep`` most recently used entries of the boot's directory ``d``
    (a hit touches its entry's mtime, see :func:`load`), and temporary files of killed runs."""
    names = d.entries(hidden=True)
    entries = [n for n in names if _is_entry(n)]
    if len(entries) > keep:
        for n in sorted(entries, key=d.mtime_ns)[:len(entries) - keep]:
            d.remove(n)
    old = time_ns() - _STALE_NS
    for n in names:
        if n.startswith(".") and _is_ours(n) and d.mtime_ns(n) < old:
            d.remove(n)
