"""The old home of session names and leftover removal: now :mod:`undertow.backends.leftovers`,
shared by both backends (the BPF backend names its legacy kprobe group the same way)."""

from __future__ import annotations

from ..leftovers import (  # noqa: F401 - re-exported for `undertow cleanup` and older imports
    DEFINITION_FILES, PREFIX, Leftover, Owner, next_session_name, owner_of, owner_pid, pid_is_undertow,
    remove, remove_stale, removable, report_removed, session_prefix, stale_state, survey,
)

__all__ = ["DEFINITION_FILES", "PREFIX", "Leftover", "Owner", "next_session_name", "owner_of", "owner_pid",
           "pid_is_undertow", "remove", "remove_stale", "removable", "report_removed", "session_prefix",
           "stale_state", "survey"]
