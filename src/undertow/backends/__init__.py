"""undertow.backends"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, List, Optional

#: Told what a session's start removed of killed sessions' leftovers (``instances/NAME``,
#: ``uprobe_events GROUP/EVENT``; backends/leftovers.py). The library never prints:
#: the command line sets this (``undertow.cli.report_cleanup``); sessions also keep the
#: list (``removed_stale``). Here, not in leftovers.py, so setting it imports nothing.
leftovers_reporter: Optional[Callable[[List[str]], None]] = None
