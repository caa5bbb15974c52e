"""``-l`` for USDT markers, as bpftrace 0.17 lists them: ``usdt:PATH:PROVIDER:NAME``
(uprobes are listed by :mod:`undertow.commands.list`).

``usdt:PATH:[PROVIDER:]NAME`` lists the markers of PATH (each once, whatever its number of
locations); with ``-p PID`` those of every object the process has mapped (``usdt:*``,
``usdt:*:PROVIDER:NAME``). Lines are sorted within each file, as bpftrace prints them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional, TextIO

from ..errors import ELFError, UsageError

__all__ = ["list_usdt"]


def list_usdt(rest: str, pid: Optional[int], out: TextIO) -> int:
    """Print the USDT markers ``rest`` (what follows ``usdt:``) names; return how many."""
    from ..kernel.usdt_find import find_usdt

    parts = rest.split(":")
    if len(parts) == 1:
        obj, prov, name = ("", "", parts[0]) if pid else (parts[0], "", "*")
    elif len(parts) == 2:
        obj, prov, name = parts[0], "", parts[1]
    else:
        obj, prov, name = parts[0], parts[1], ":".join(parts[2:])
    if obj == "*" and pid:
        obj = ""
    n = 0
    seen = set()
    try:
        for m in find_usdt(obj, prov, name, pid):
            if m.name not in seen:
                seen.add(m.name)
                out.write(f"usdt:{m.name}\n")
                n += 1
    except ELFError as e:
        raise UsageError(e.message, hints=e.hints) from None
    return n
