"""``-l`` for user-space probes, as bpftrace 0.17 lists them: ``uprobe:PATH:FUNC`` and
``usdt:PATH:PROVIDER:NAME``.

- ``uprobe:PATH:PATTERN``: the functions (``FUNC`` and ``GNU_IFUNC`` symbols) of PATH,
  named as written (``./testprogs/uprobe_test``); a wildcard PATH lists every file it
  matches; with ``-p PID``, ``uprobe:PATTERN`` lists the process's executable
  (``/proc/PID/root/...``).
- ``usdt:PATH:[PROVIDER:]NAME``: the markers of PATH (each once, whatever its number of
  locations); with ``-p PID`` those of every object the process has mapped
  (``usdt:*``, ``usdt:*:PROVIDER:NAME``).
- a wildcard probe type (``*:./prog:*``) lists both; a bare ``-l -p PID`` adds the
  process's uprobes and USDT markers to the kernel's probes.

Lines are sorted within each file, as bpftrace prints them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, TextIO, Tuple

from ..errors import ELFError, UsageError

__all__ = ["list_user", "list_user_wildcard", "USER_KINDS"]

#: probe types listed here (a wildcard type expands to these)
USER_KINDS = ("uprobe", "usdt")


def _files(obj: str) -> List[Tuple[str, str]]:
    """``[(display, path)]`` of the files ``obj`` names: a glob, a path as written, or a
    program or library name (shown resolved)."""
    from ..kernel.libraries import resolve_object
    from ..kernel.usdt_find import has_wildcard

    if has_wildcard(obj):
        return [(p, p) for p in sorted(glob.glob(obj)) if os.path.isfile(p)]
    if "/" in obj:
        if not os.path.exists(obj):
            raise UsageError(f"{obj}: no such file")
        return [(obj, obj)]
    path = resolve_object(obj)
    return [(path, path)]


def _functions(path: str) -> List[str]:
    from ..kernel.elffile import ELFFile

    try:
        with ELFFile(path) as f:
            return sorted({s.name for s in f.symbols()
                           if s.defined and s.name and s.type in ("FUNC", "GNU_IFUNC")})
    except (ELFError, OSError, ValueError):
        return []


def list_user(kind: str, rest: str, pid: Optional[int], out: TextIO, verbose: bool = False) -> int:
    """Print the ``kind`` (uprobe, uretprobe, usdt) probes ``rest`` (what follows
    ``kind:``) names; return how many. ``verbose`` (``-lv``): a function's parameters
    from the file's DWARF under it (``    int* n``), as bpftrace prints them."""
    from ..kernel.usdt_find import find_usdt, process_exe

    parts = rest.split(":")
    n = 0
    try:
        if kind == "usdt":
            if len(parts) == 1:
                obj, prov, name = ("", "", parts[0]) if pid else (parts[0], "", "*")
            elif len(parts) == 2:
                obj, prov, name = parts[0], "", parts[1]
            else:
                obj, prov, name = parts[0], parts[1], ":".join(parts[2:])
            if obj == "*" and pid:
                obj = ""
            seen = set()
            for m in find_usdt(obj, prov, name, pid):
                if m.name not in seen:
                    seen.add(m.name)
                    out.write(f"usdt:{m.name}\n")
                    n += 1
            return n
        if len(parts) == 1 and pid:
            exe = process_exe(pid)
            files, pat = [(exe, exe)], parts[0]
        else:
            obj, _, pat = rest.partition(":")
            files = _files(obj)
            pat = pat or "*"
        for display, path in files:
            for fn in _functions(path):
                if fnmatch.fnmatchcase(fn, pat):
                    out.write(f"{kind}:{display}:{fn}\n")
                    n += 1
                    if verbose:
                        from ..lang.dwarftypes import param_lines

                        for line in param_lines(path, fn):
                            out.write(f"    {line}\n")
    except ELFError as e:
        raise UsageError(e.message, hints=e.hints) from None
    return n


def list_user_wildcard(pattern: str, pid: Optional[int], out: TextIO) -> int:
    """A pattern without a known probe type: ``*:PATH:...`` (a wildcard type) lists the
    user-space probes it matches; a bare ``*`` with ``-p PID`` lists the process's."""
    head, colon, rest = pattern.partition(":")
    n = 0
    if not colon:
        if pid and pattern in ("*", ""):
            for kind in USER_KINDS:
                n += list_user(kind, "*", pid, out)
        return n
    if "*" not in head and "?" not in head:
        return 0
    for kind in USER_KINDS:
        if fnmatch.fnmatchcase(kind, head):
            try:
                n += list_user(kind, rest, pid, out)
            except UsageError:
                continue  # a kind this pattern does not fit
    return n
