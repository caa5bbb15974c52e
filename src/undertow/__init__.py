"""undertow: dynamic tracing of Linux from pure Python.

The core imports with the standard library alone. Heavier pieces (BTF, the
backends) are imported lazily by the functions that need them.
"""

# No `from __future__ import annotations` and no import before the SIGINT line below: each
# import is a window in which Python's KeyboardInterrupt can land in the import system's
# module-lock callback, where Python reports it as "Exception ignored" and drops it
# (tests/live/test_lifecycle_live.py, lost_at_startup).
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
    # _signal (the C module under `signal`) is loaded by the interpreter's start-up: taken
    # from sys.modules it costs no import.
    import sys as _sys

    _sig = _sys.modules.get("_signal")
    if _sig is None:
        import signal as _sig
    _sig.signal(_sig.SIGINT, _sig.SIG_DFL)

from .version import __version__  # noqa: E402

__all__ = ["__version__", "trace"]


def trace(*lines: str, **kwargs: "Any") -> "Any":
    """Trace surftrace-style probe lines; see :func:`undertow.api.trace`."""
    from .api import trace as _trace

    return _trace(*lines, **kwargs)
