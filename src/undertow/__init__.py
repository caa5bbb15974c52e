"""undertow: dynamic tracing of Linux from pure Python.

The core imports with the standard library alone. Heavier pieces (BTF, the
backends) are imported lazily by the functions that need them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any

from .version import __version__

__all__ = ["__version__", "trace"]


def trace(*lines: str, **kwargs: Any) -> Any:
    """Trace surftrace-style probe lines; see :func:`undertow.api.trace`."""
    from .api import trace as _trace

    return _trace(*lines, **kwargs)
