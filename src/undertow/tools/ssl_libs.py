"""Which TLS libraries processes map, found through ``/proc/PID/maps`` and ``map_files``.

``undertow ssl`` puts uprobes on the TLS libraries' read and write functions. A uprobe is
attached to a file's *inode* (kernel/events/uprobes.c: ``uprobe_register(inode, offset)``),
so one probe on ``libssl.so.3`` covers every process that maps that file, now and later.
What matters is to find each distinct library file once:

- each process's executable mappings (``/proc/PID/maps``, the ``x`` permission) whose file
  name is a TLS library's (:data:`KINDS`), and its main executable when it holds OpenSSL's
  functions itself (a static link: the symbols must be in ``.symtab``/``.dynsym``);
- the file is opened through ``/proc/PID/map_files/START-END`` (Documentation/filesystems/
  proc.rst): the link leads to the mapped file itself, whatever the process's mount
  namespace, and also when the file was deleted or replaced on disk (the library upgraded
  under a running server) -- no path the process or its owner can change is followed;
- the file must be a regular file (``fstat`` of the opened descriptor); the descriptor is
  kept open for the tool's life and the probes name it as ``/proc/self/fd/N``, which the
  kernel resolves to the same inode when the probe is attached (``kern_path`` follows the
  magic link);
- distinct files are told apart by ``(st_dev, st_ino)`` of the open descriptor.

Nothing read from ``/proc/PID/maps`` is trusted beyond that: a path is only a name to show
and to match against :data:`KINDS`; a process that names a file ``libssl.so.3`` that is not
OpenSSL gets probes only on the functions its ELF symbol table really defines.
"""

from __future__ import annotations

import os
import re
import stat
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple

__all__ = ["KINDS", "FUNCTIONS", "TlsLibrary", "LibraryScanner", "library_kind", "parse_maps_line"]

#: library kind -> the file names that are that library (a ``(deleted)`` suffix removed first)
KINDS = {
    "openssl": re.compile(r"libssl\.so(\.[0-9]+[a-z]?)*"),  # .3, .1.1, .1.0.2k (RHEL), .10
    "gnutls": re.compile(r"libgnutls\.so(\.[0-9]+)*"),
    "nss": re.compile(r"libnspr4\.so(\.[0-9]+)*"),
}

#: library kind -> the functions probed (those the file defines); the last one frees a
#: connection (its state in the program's maps is deleted there)
FUNCTIONS = {
    "openssl": ("SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex", "SSL_free"),
    "gnutls": ("gnutls_record_recv", "gnutls_record_send", "gnutls_deinit"),
    "nss": ("PR_Read", "PR_Write", "PR_Recv", "PR_Send", "PR_Close"),
}

#: the bytes a statically linked OpenSSL (or BoringSSL/LibreSSL) leaves in a string table
_STATIC_MARK = b"\x00SSL_write\x00"
#: library files probed at most: each is a program attached and a descriptor held, and a
#: hostile user could map many copies of a library to exhaust them
MAX_LIBRARIES = 64
#: executables larger than this are not searched for a static OpenSSL (a bound on start-up)
STATIC_MAX_BYTES = 512 << 20


def library_kind(path: str) -> Optional[str]:
    """The TLS library kind a mapped file's name says (``openssl``, ``gnutls``, ``nss``), or None."""
    if path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    name = path.rsplit("/", 1)[-1]
    for kind, rx in KINDS.items():
        if rx.fullmatch(name):
            return kind
    return None


def parse_maps_line(line: str) -> Optional[Tuple[str, str, int, int, str]]:
    """One ``/proc/PID/maps`` line -> ``(range "lo-hi", perms, dev, inode, path)``, or None
    for an anonymous or malformed line. ``dev`` is ``major << 20 | minor`` (hex ``MM:mm``
    in the file; fs/proc/task_mmu.c show_vma_header_prefix)."""
    parts = line.rstrip("\n").split(None, 5)
    if len(parts) < 6 or not parts[5].startswith("/"):
        return None
    rng, perms, _off, dev, ino, path = parts
    if not re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", rng) or len(perms) != 4:
        return None
    major, _, minor = dev.partition(":")
    try:
        return rng, perms, (int(major, 16) << 20) | int(minor, 16), int(ino), path
    except ValueError:
        return None


class TlsLibrary:
    """One TLS library file, held open: ``kind`` (:data:`KINDS`, ``static`` says it is an
    executable with OpenSSL linked in), ``functions`` it defines among :data:`FUNCTIONS`,
    ``path`` as the first process that mapped it names it (its mount namespace; with
    `` (deleted)`` when replaced), ``pid`` that process, ``dev``/``ino`` the file's identity,
    ``fd`` our descriptor and :attr:`probe_path` the path the probes attach through."""

    __slots__ = ("kind", "functions", "path", "pid", "dev", "ino", "fd", "static", "index")

    def __init__(self, kind: str, functions: List[str], path: str, pid: int, dev: int, ino: int, fd: int,
                 static: bool = False) -> None:
        self.kind, self.functions, self.path, self.pid = kind, functions, path, pid
        self.dev, self.ino, self.fd, self.static = dev, ino, fd, static
        #: the number the program's records carry for this library (set by the tool)
        self.index = -1

    @property
    def probe_path(self) -> str:
        """``/proc/self/fd/N``: the kernel resolves it to the inode we hold open."""
        return f"/proc/self/fd/{self.fd}"

    @property
    def deleted(self) -> bool:
        return self.path.endswith(" (deleted)")

    def to_dict(self) -> Dict[str, object]:
        return {"kind": self.kind, "path": self.path, "pid": self.pid, "static": self.static,
                "deleted": self.deleted, "functions": list(self.functions), "inode": self.ino}

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def _defined_functions(fd: int, wanted: Iterable[str]) -> List[str]:
    """Which of ``wanted`` the ELF file open on ``fd`` defines (``.symtab`` or ``.dynsym``);
    [] for a file that is not ELF or is malformed (kernel/elffile.py raises ELFError)."""
    from ..kernel.elffile import ELFFile

    try:
        elf = ELFFile(f"/proc/self/fd/{fd}")
    except Exception:  # noqa: BLE001 - any file a process maps: malformed is not our failure
        return []
    try:
        names = set(wanted)
        found = {s.name for s in elf.symbols() if s.defined and s.name in names and s.type in ("FUNC", "IFUNC")}
    except Exception:  # noqa: BLE001 - a crafted symbol table must not stop the tool
        return []
    finally:
        elf.close()
    return [n for n in wanted if n in found]


def _has_static_mark(fd: int, size: int) -> bool:
    """Whether a string table (``SHT_STRTAB`` section) of the ELF file open on ``fd`` holds
    :data:`_STATIC_MARK`: a cheap test before parsing the symbol tables of every executable
    on the host, that reads only those sections (not the whole of a 200 MB binary)."""
    import mmap

    from ..kernel.elffile import ELFFile

    if size <= 0 or size > STATIC_MAX_BYTES:
        return False
    try:
        elf = ELFFile(f"/proc/self/fd/{fd}")
    except Exception:  # noqa: BLE001 - any executable on the host: malformed is not our failure
        return False
    try:
        areas = [(sec.offset, sec.size) for sec in elf.sections if sec.type == 3]  # SHT_STRTAB
    except Exception:  # noqa: BLE001
        return False
    finally:
        elf.close()
    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
            for off, n in areas:
                if 0 <= off < size and mm.find(_STATIC_MARK, off, min(size, off + n)) >= 0:
                    return True
    except (OSError, ValueError):
        return False
    return False


class LibraryScanner:
    """Finds TLS library files in processes (see the module's doc). ``proc``: the proc
    mount; ``static``: also look for OpenSSL linked into executables."""

    def __init__(self, proc: str = "/proc", static: bool = True) -> None:
        self.proc = proc
        self.static = static
        #: every file looked at: (dev, ino) -> the library, or None (not one)
        self.seen: Dict[Tuple[int, int], Optional[TlsLibrary]] = {}
        #: (dev, ino) of maps lines already decided (saves opening map_files again)
        self._maps_seen: Dict[Tuple[int, int], bool] = {}
        #: why a mapping could not be looked at (shown with -v)
        self.notes: List[str] = []

    def libraries(self) -> List[TlsLibrary]:
        return [lib for lib in self.seen.values() if lib is not None]

    def scan_all(self, pids: Optional[Iterable[int]] = None) -> List[TlsLibrary]:
        """New libraries in every process (or in ``pids``)."""
        if pids is None:
            try:
                pids = [int(n) for n in os.listdir(self.proc) if n.isdigit()]
            except OSError:
                pids = []
        new: List[TlsLibrary] = []
        for pid in pids:
            new += self.scan_pid(pid)
        return new

    def _exe_key(self, pid: int) -> Optional[Tuple[int, int]]:
        try:
            st = os.stat(f"{self.proc}/{pid}/exe")  # the magic link: the executable's inode
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def scan_pid(self, pid: int) -> List[TlsLibrary]:
        """New libraries mapped by process ``pid`` (none when it is gone or unreadable)."""
        try:
            with open(f"{self.proc}/{pid}/maps", "r", encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read(4 << 20).splitlines()
        except OSError:
            return []
        exe = self._exe_key(pid) if self.static else None
        new: List[TlsLibrary] = []
        for line in lines:
            m = parse_maps_line(line)
            if m is None or "x" not in m[1]:
                continue
            rng, _perms, dev, ino, path = m
            if self._maps_seen.get((dev, ino)):
                continue
            kind = library_kind(path)
            static = False
            if kind is None:
                if exe is None or ino != exe[1]:
                    continue
                static = True
            lib = self._open(pid, rng, path, kind, static)
            self._maps_seen[(dev, ino)] = True
            if lib is not None:
                new.append(lib)
        return new

    def _open(self, pid: int, rng: str, path: str, kind: Optional[str], static: bool) -> Optional[TlsLibrary]:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(f"{self.proc}/{pid}/map_files/{rng}", flags)
        except OSError as e:
            self.notes.append(f"pid {pid}: cannot open the mapping of {path!r}: {e.strerror}")
            return None
        keep = False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                return None
            if len(self.libraries()) >= MAX_LIBRARIES:
                self.notes.append(f"pid {pid}: {path!r} not probed: {MAX_LIBRARIES} library files already are")
                return None
            self.seen[key] = None
            if static:
                if not _has_static_mark(fd, st.st_size):
                    return None
                kind = "openssl"
            assert kind is not None
            funcs = _defined_functions(fd, FUNCTIONS[kind])
            io = [f for f in funcs if f != FUNCTIONS[kind][-1]]
            if not io:
                if not static:
                    self.notes.append(f"pid {pid}: {path!r} defines none of {', '.join(FUNCTIONS[kind][:-1])}")
                return None
            lib = TlsLibrary(kind, funcs, path, pid, st.st_dev, st.st_ino, fd, static=static)
            self.seen[key] = lib
            keep = True
            return lib
        finally:
            if not keep:
                os.close(fd)

    def close(self) -> None:
        """Close every library's descriptor (after the probes are detached)."""
        for lib in self.libraries():
            lib.close()
