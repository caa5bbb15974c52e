"""The optional file spool of a network sink (``spool_dir=DIR`` in the ``--output`` URL).

Events a run could not send — still spooled when its linger ended — are written to a new file
``DIR/<instance_id>.ndjson`` instead of being counted as lost, and the next run with the same
``spool_dir`` sends them first (their ``Nats-Msg-Id`` is the one they had: a copy the server
already holds is dropped as a duplicate). Events the memory spool cannot hold go there too,
up to ``spool_file_mb`` (default 64 MiB per run).

Root writes there, so the directory is checked as root must (docs/security.md): created 0700
when missing, opened with ``O_DIRECTORY | O_NOFOLLOW``, and refused unless it is owned by the
user undertow runs as and writable by no one else; files are created with ``O_CREAT |
O_EXCL | O_NOFOLLOW`` (mode 0600) relative to that directory's descriptor, and read back only
when they are regular files owned by the same user (``O_NOFOLLOW``, ``fstat``). A predictable
path in ``/tmp`` is therefore refused (``/tmp`` is writable by all).
"""

from __future__ import annotations

import json
import os
import re
import stat
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional

from ..errors import OptionError

_NAME = re.compile(r"[0-9a-f]{16}\.ndjson")


def open_dir(path: str) -> int:
    """A descriptor of the spool directory ``path`` (created 0700 if missing), checked: a
    directory, not a symbolic link, owned by this user, not writable by group or others; no
    symbolic link of another user (not root) on the way (a link planted in /tmp)."""
    from ..options import _check_links

    try:
        _check_links(os.path.dirname(os.path.abspath(path)))
    except ValueError as e:
        raise OptionError(f"spool_dir={path}: {e}") from None
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise OptionError(f"spool_dir={path}: {e.strerror}",
                          hints=["a directory of its own, e.g. /var/lib/undertow/spool"]) from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise OptionError(f"spool_dir={path} is owned or writable by another user: refused",
                          hints=["give a directory only this user can write, e.g. /var/lib/undertow/spool"])
    return fd


class FileSpool:
    """Writes one run's leftovers to a new file; reads and removes earlier runs' files."""

    def __init__(self, path: str, instance_id: str, limit_bytes: int) -> None:
        self.path, self.instance_id, self.limit = path, instance_id, limit_bytes
        self.dfd = open_dir(path)
        self.fd = -1
        self.written = 0
        self.events = 0

    def _open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(f"{self.instance_id}.ndjson",
                              os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=self.dfd)

    def write(self, events: List[Dict[str, Any]]) -> int:
        """Append ``events``; returns how many fit under the size limit (the rest are not written)."""
        from ..output.jsonl import dumps

        data = []
        n = 0
        for ev in events:
            line = (dumps(ev) + "\n").encode("utf-8", "surrogateescape")
            if self.written + len(line) > self.limit:
                break
            data.append(line)
            self.written += len(line)
            n += 1
        if data:
            self._open()
            os.write(self.fd, b"".join(data))
            self.events += n
        return n

    def take_old(self, limit: int) -> Iterator[Dict[str, Any]]:
        """Events of earlier runs' files (each file removed once read), at most ``limit``;
        a file that does not pass the checks is left alone."""
        taken = 0
        for name in sorted(os.listdir(self.dfd)):
            if taken >= limit or not _NAME.fullmatch(name) or name == f"{self.instance_id}.ndjson":
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=self.dfd)
            except OSError:
                continue
            with open(fd, "rb", closefd=True) as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                    continue
                lines = f.read(self.limit + 1).splitlines()
            events: List[Dict[str, Any]] = []
            for ln in lines:
                try:
                    ev = json.loads(ln)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    events.append(ev)
            os.unlink(name, dir_fd=self.dfd)
            taken += len(events)
            yield from events

    def close(self) -> None:
        """Close the file and the directory descriptor."""
        for fd in (self.fd, self.dfd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.dfd = -1


def from_url(url: Any, instance_id: str) -> Optional[FileSpool]:
    """The file spool a URL asks for (``spool_dir=``), or None."""
    path = url.params.get("spool_dir")
    if not path:
        return None
    return FileSpool(path, instance_id, int(url.number("spool_file_mb", 64, 1) * 1024 * 1024))
