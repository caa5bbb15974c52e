"""The ftrace backend: probe lines as tracefs text, read back as binary pages.

- ``compile.py``: resolved IR -> :class:`~.compile.EventSpec` (kprobe/uprobe definitions, filters)
- ``plan.py``: :class:`~.plan.FtracePlan`, what ``-S`` shows
- ``session.py``: :class:`~.session.FtraceSession`, the instance lifecycle and the reader
- ``ringbuf.py``: ``trace_pipe_raw`` page decoding
- ``cleanup.py``: the old home of :mod:`undertow.backends.leftovers` (session names, removal of
  state left by killed sessions: ``undertow cleanup``), shared with the BPF backend
- ``script.py``: ``-o`` export as a POSIX shell script
- ``backend.py``: :class:`~.backend.FtraceBackend` tying them together
"""

from __future__ import annotations
