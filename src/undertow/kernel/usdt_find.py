"""Finding USDT probes, as bpftrace 0.17 finds them: the files a ``usdt:`` spec names and
the markers in them.

- without a process: the path as written (``./testprogs/usdt_test``), or the files a
  wildcard path matches (``./testprogs/usdt*``), or a library name (``libc``);
- with ``-p PID``: every ELF object the process has mapped, named through its root
  (``/proc/PID/root/usr/lib/...``, so a process in another mount namespace is found too);
  a path given with ``-p`` picks the mapped objects whose absolute path ends with it.

Each marker may have several locations (an inlined function holds one per inlining): each
:class:`USDTMatch` is one location, named ``usdt:PATH:PROVIDER:NAME`` (``display``) as
bpftrace prints it, with the file to attach to (``path``) and the note's record
(:class:`undertow.kernel.usdt.USDTProbe`: file offset, semaphore, argument specs).
Matches come sorted by that name, as bpftrace's probe matcher sorts them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ..errors import ELFError
from .usdt import USDTProbe

__all__ = ["USDTMatch", "find_usdt", "process_objects", "process_exe", "object_files", "has_wildcard"]


class USDTMatch:
    """One location of one USDT marker: ``display`` is the file as bpftrace names it,
    ``path`` the file to open and attach to, ``probe`` the note's record."""

    __slots__ = ("display", "path", "probe")

    def __init__(self, display: str, path: str, probe: USDTProbe) -> None:
        self.display, self.path, self.probe = display, path, probe

    @property
    def name(self) -> str:
        """``PATH:PROVIDER:NAME`` (without the ``usdt:`` type)."""
        return f"{self.display}:{self.probe.provider}:{self.probe.name}"


def has_wildcard(text: str) -> bool:
    """Whether ``text`` has a ``*`` or ``?`` wildcard."""
    return "*" in text or "?" in text


def process_objects(pid: int) -> List[str]:
    """The files process ``pid`` has mapped (its executable, its libraries), in the order of
    ``/proc/PID/maps``, each as ``/proc/PID/root/ABSOLUTE`` (valid in any mount namespace).

    Raises :class:`ELFError` when the process cannot be read (gone, or not ours)."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        hint = "the process is not running" if not os.path.exists(f"/proc/{pid}") else ""
        raise ELFError(f"cannot read the mappings of process {pid}: {e.strerror}",
                       hints=[hint] if hint else []) from None
    seen: Dict[str, None] = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if not path.startswith("/") or path.endswith(" (deleted)"):
            continue
        seen.setdefault(f"/proc/{pid}/root{path}", None)
    return list(seen)


def process_exe(pid: int) -> str:
    """Process ``pid``'s executable as ``/proc/PID/root/ABSOLUTE``."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError as e:
        raise ELFError(f"cannot read the executable of process {pid}: {e.strerror}") from None
    if exe.endswith(" (deleted)"):
        exe = exe[: -len(" (deleted)")]
    return f"/proc/{pid}/root{exe}"


def object_files(obj: str, pid: Optional[int] = None) -> List[Tuple[str, str]]:
    """``[(display, path)]``: the files ``obj`` names (see the module's docstring); ``obj``
    may be empty with ``pid`` (every mapped object). Raises :class:`ELFError` when a
    path without wildcards names no file."""
    if pid:
        mapped = process_objects(pid)
        if not obj:
            return [(m, m) for m in mapped]
        want = obj
        if not has_wildcard(obj):
            want = os.path.abspath(obj)
        out = [(m, m) for m in mapped if fnmatch.fnmatchcase(m, "*" + want)]
        if not out and not has_wildcard(obj):
            real = os.path.realpath(obj)
            out = [(m, m) for m in mapped if m.endswith(real)]
        return out
    if not obj:
        raise ELFError("a usdt probe needs a file (usdt:PATH:[PROVIDER:]NAME), or a process (-p PID)",
                       hints=["usdt::PROVIDER:NAME and usdt:NAME work with -p PID"])
    if has_wildcard(obj):
        return [(p, p) for p in sorted(glob.glob(obj)) if os.path.isfile(p)]
    if os.path.exists(obj):
        return [(obj, obj)]
    if "/" not in obj:
        from .libraries import resolve_object

        path = resolve_object(obj)
        return [(path, path)]
    raise ELFError(f"no such file: {obj}", hints=["give the path of a binary or library with USDT probes"])


def _probes(path: str, cache: Dict[str, List[USDTProbe]]) -> List[USDTProbe]:
    if path not in cache:
        from .elffile import ELFFile

        try:
            with ELFFile(path) as f:
                cache[path] = f.usdt_probes()
        except (ELFError, OSError, ValueError):
            cache[path] = []  # not an ELF file, or unreadable: no markers
    return cache[path]


def find_usdt(obj: str, provider: str, name: str, pid: Optional[int] = None,
              cache: Optional[Dict[str, List[USDTProbe]]] = None) -> List[USDTMatch]:
    """Every location of the markers ``provider:name`` (``*``/``?`` wildcards; an empty
    provider matches any) in the files ``obj`` names, sorted by their names."""
    cache = {} if cache is None else cache
    prov = provider or "*"
    out: List[Tuple[str, int, USDTMatch]] = []
    for display, path in object_files(obj, pid):
        for i, p in enumerate(_probes(path, cache)):
            if fnmatch.fnmatchcase(p.provider, prov) and fnmatch.fnmatchcase(p.name, name):
                m = USDTMatch(display, path, p)
                out.append((m.name, i, m))
    out.sort(key=lambda t: (t[0], t[1]))
    return [m for _n, _i, m in out]
