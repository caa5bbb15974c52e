"""undertow: dynamic tracing of Linux from pure Python.

The core imports with the standard library alone. Heavier pieces (BTF, the
backends) are imported lazily by the functions that need them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any



def _started_as_the_command() -> bool:
    """Whether this import is the start of the ``undertow`` program (``python -m undertow``
    or the console script), not a library user's ``import undertow``."""
    import sys

    argv = sys.argv[:1]
    if argv == ["-m"]:  # runpy sets argv[0] to "-m" while it imports the package (3.10+: orig_argv)
        orig = getattr(sys, "orig_argv", [])
        return any(a == "-mundertow" or (a == "-m" and orig[i + 1:i + 2] == ["undertow"])
                   for i, a in enumerate(orig))
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == "undertow"


if _started_as_the_command():
    # The package face is the first of undertow that Python runs for the command, before
    # __main__ or cli.main can say anything: a Ctrl-C from here on ends the process quietly
    # (status -SIGINT) instead of printing a KeyboardInterrupt traceback from an import.
    # cli.main keeps this until the command runs inside undertow.stop.handling().
    import signal as _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)

from .version import __version__  # noqa: E402

__all__ = ["__version__", "trace"]


def trace(*lines: str, **kwargs: Any) -> Any:
    """Trace surftrace-style probe lines; see :func:`undertow.api.trace`."""
    from .api import trace as _trace

    return _trace(*lines, **kwargs)
