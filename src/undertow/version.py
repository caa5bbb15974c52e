"""undertow's version: a leaf module, so that any layer (kernel/ included) can name it
without importing the package face (``undertow/__init__``, which reaches the API)."""

from __future__ import annotations

__version__ = "0.1.0"
