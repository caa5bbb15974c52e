"""Subcommands of the ``undertow`` CLI, one module each (see ``undertow.cli``)."""

from __future__ import annotations


def seconds(text: str) -> float:
    """argparse type of ``--duration``: a positive, finite number of seconds (``nan`` used
    to trace forever, ``-1`` to stop at once)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)  # argparse: "invalid seconds value: 'nan'", exit code 2
    return value
