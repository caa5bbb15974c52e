"""undertow: dynamic tracing of Linux from pure Python.

The core imports with the standard library alone. Heavier pieces (BTF, the
backends) are imported lazily by the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
