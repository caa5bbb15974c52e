"""tracefs: find (and mount) it, list trace events, read formats, write control files.

tracefs is the kernel's tracing control filesystem (Documentation/trace/ftrace.rst):
mounted at /sys/kernel/tracing since 4.1, and still reachable as
/sys/kernel/debug/tracing when debugfs is mounted. Everything here reads and
writes files under one tracefs directory given by :class:`~undertow.kernel.roots.Roots`,
so unit tests use a fake tree (tests/fixtures/tracefs/).

Writes go through ``os.open``/``os.write`` (never a shell); a refused write
raises :class:`~undertow.errors.TracefsError` carrying the new lines of
tracefs ``error_log`` (added in 5.4: the kernel explains kprobe/uprobe/filter
parse errors there).
"""

from __future__ import annotations

import errno as _errno
import fnmatch
import os
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ..errors import (
    TracefsError,
    TracefsPermissionError,
    UnknownEventError,
    did_you_mean,
)
from .roots import Roots

if TYPE_CHECKING:  # the format parser is imported by what reads formats (cleanup and list do not)
    from .formats import EventFormat, HeaderEvent, HeaderPage

__all__ = ["Tracefs", "Instance", "open_tracefs", "find_tracefs", "mount_tracefs"]

_MOUNT_HINT = "mount it as root: mount -t tracefs nodev /sys/kernel/tracing"
_CONFIG_HINT = "the kernel needs CONFIG_FTRACE (and CONFIG_TRACING/CONFIG_EVENT_TRACING) for tracefs"
_ROOT_HINT = "run as root (sudo undertow ...)"


def _is_tracefs_dir(path: str) -> bool:
    """A mounted tracefs (or debugfs/tracing) directory has ``trace`` or ``available_events``."""
    return os.path.exists(os.path.join(path, "trace")) or os.path.exists(
        os.path.join(path, "available_events")
    )


def _unescape_mount(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo (fs/proc_namespace.c mangle()).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts_candidates(roots: Roots) -> List[str]:
    """tracefs mount points (and debugfs/tracing) listed in ``<proc>/mounts``."""
    try:
        with open(roots.proc_path("mounts"), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    tracefs, debugfs = [], []
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt, fstype = _unescape_mount(parts[1]), parts[2]
        if fstype == "tracefs":
            tracefs.append(mnt)
        elif fstype == "debugfs":
            debugfs.append(os.path.join(mnt, "tracing"))
    return tracefs + debugfs


def find_tracefs(roots: Roots) -> Optional[str]:
    """The mounted tracefs directory, or ``None``.

    Order: ``roots.tracefs``; ``<sys>/kernel/tracing``; ``<sys>/kernel/debug/tracing``;
    tracefs/debugfs mounts listed in ``<proc>/mounts`` (only for the live kernel's
    roots, where those paths are real).
    """
    if roots.tracefs:
        return roots.tracefs if os.path.isdir(roots.tracefs) else None
    cands = [roots.sys_path("kernel", "tracing"), roots.sys_path("kernel", "debug", "tracing")]
    for c in cands:
        if _is_tracefs_dir(c):
            return c
    if roots.live or roots.proc != "/proc":  # read only when the usual places have none
        for c in _mounts_candidates(roots):
            if _is_tracefs_dir(c):
                return c
    return None


def mount_tracefs(target: str = "/sys/kernel/tracing") -> None:
    """``mount("nodev", target, "tracefs", 0, NULL)`` through libc (no subprocess).

    Raises :class:`TracefsError` (``TracefsPermissionError`` on EPERM/EACCES)
    with the errno and a hint.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's symbols include libc's
    except OSError as e:
        raise TracefsError(f"cannot load the C library to mount tracefs: {e}", hints=[_MOUNT_HINT]) from None
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    libc.mount.restype = ctypes.c_int
    if libc.mount(b"nodev", os.fsencode(target), b"tracefs", 0, None) == 0:
        return
    err = ctypes.get_errno()
    msg = f"cannot mount tracefs on {target}: {os.strerror(err)}"
    if err in (_errno.EPERM, _errno.EACCES):
        e: TracefsError = TracefsPermissionError(msg, hints=[_ROOT_HINT, _MOUNT_HINT])
    elif err == _errno.ENODEV:
        e = TracefsError(f"this kernel has no tracefs ({os.strerror(err)})", hints=[_CONFIG_HINT])
    else:
        e = TracefsError(msg, hints=[_MOUNT_HINT, _CONFIG_HINT])
    e.errno = err
    raise e


def open_tracefs(roots: Roots, mount: bool = True) -> "Tracefs":
    """The :class:`Tracefs` of ``roots``, mounting tracefs first when it is absent,
    ``mount`` is true, ``roots.live`` and we are root.

    Raises :class:`TracefsError` (``TracefsPermissionError`` when only root could
    go further) with hints.
    """
    path = find_tracefs(roots)
    if path is None and roots.tracefs:
        raise TracefsError(
            f"tracefs directory {roots.tracefs} does not exist",
            hints=["check UNDERTOW_TRACEFS / Roots.tracefs"],
        )
    if path is None:
        target = roots.sys_path("kernel", "tracing")
        is_root = os.geteuid() == 0
        if mount and roots.live and is_root and os.path.isdir(target):
            mount_tracefs(target)
            if _is_tracefs_dir(target):
                path = target
        if path is None:
            denied = _denied_mount(roots, target)
            if denied is not None:
                raise denied
            if not is_root and roots.live:
                raise TracefsPermissionError(
                    "tracefs is not mounted, and only root can mount it",
                    hints=[_ROOT_HINT, _MOUNT_HINT],
                )
            hints = [_MOUNT_HINT, _CONFIG_HINT]
            if not os.path.isdir(target):
                hints.insert(0, f"{target} does not exist: the kernel may lack tracefs (before 4.1: "
                             "mount -t debugfs nodev /sys/kernel/debug)")
            raise TracefsError("tracefs is not mounted", hints=hints)
    if not os.access(path, os.R_OK | os.X_OK):
        raise _denied(path)
    return Tracefs(path)


def _denied(path: str) -> TracefsPermissionError:
    """tracefs is mounted at ``path`` but this user may not enter it (EACCES)."""
    how = ""
    try:
        st = os.stat(path)
        how = f" (mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid})"
    except OSError:
        pass
    e = TracefsPermissionError(
        f"permission denied: tracefs is mounted at {path} but this user (uid {os.geteuid()}) "
        f"may not read it{how}",
        hints=["run as root (sudo undertow ...): tracefs is checked by file owner and mode, "
               "CAP_BPF and CAP_PERFMON do not open it"])
    e.errno = _errno.EACCES
    return e


def _denied_mount(roots: Roots, target: str) -> "Optional[TracefsPermissionError]":
    """When tracefs is mounted but this user cannot look inside: the error saying so.

    Found through ``<proc>/mounts`` (readable by everyone), or ``target`` (the usual mount
    point) when it exists and cannot be entered: a tracefs mount is mode 0700, root's, and
    the files under it cannot even be seen without entering it."""
    cands = _mounts_candidates(roots) if (roots.live or roots.proc != "/proc") else []
    if os.path.isdir(target) and target not in cands:
        cands.append(target)
    for c in cands:
        try:
            os.stat(c)
        except FileNotFoundError:
            continue
        except OSError:  # a parent cannot be searched (debugfs is mode 0700 too)
            return _denied(c)
        if not os.access(c, os.R_OK | os.X_OK):
            return _denied(c)
    return None


def _event_name_ok(group: str, event: str) -> bool:
    """A group and an event name that stay inside ``events/`` (no ``/``, ``.``, ``..``)."""
    return bool(group and event) and "/" not in group + event and not {group, event} & {".", ".."}


def _check_relpath(relpath: str) -> str:
    rel = relpath.lstrip("/")
    parts = rel.split("/")
    if not rel or any(p in ("..",) for p in parts):
        raise TracefsError(f"bad tracefs path {relpath!r}", hints=["use a path relative to tracefs"])
    return rel


def _hint_for_errno(err: int, relpath: str, exists: bool = False) -> List[str]:
    if err == _errno.ENOENT:
        if exists:
            return ["the kernel could not find something the text names (file, symbol, event)"]
        return [f"{relpath} does not exist in this kernel's tracefs"]
    if err in (_errno.EPERM, _errno.EACCES):
        return [_ROOT_HINT, "under kernel lockdown (confidentiality) tracefs writes are refused"]
    if err == _errno.EBUSY:
        return ["it is in use (an enabled event or probe, an open trace_pipe); disable it first"]
    if err == _errno.EINVAL:
        return ["the kernel rejected the text (syntax, unknown field or argument)"]
    if err == _errno.ENODEV:
        return ["this tracefs file exists but the feature is not available"]
    return []


def _new_log(before: str, after: str) -> str:
    """The part of ``error_log`` added between two reads (the log keeps only the last few
    entries, so the old text may have been partly dropped)."""
    if not after or after == before:
        return ""
    if after.startswith(before):
        return after[len(before) :].strip("\n")
    old_lines = before.splitlines()
    new_lines = after.splitlines()
    # find the end of the old text's last entry inside the new text
    for k in range(len(old_lines), 0, -1):
        tail = old_lines[-k:]
        for i in range(len(new_lines) - k, -1, -1):
            if new_lines[i : i + k] == tail:
                return "\n".join(new_lines[i + k :]).strip("\n")
    return after.strip("\n")


class _TracefsDir:
    """Reading and writing files below one tracefs directory (the top or an instance)."""

    path: str

    def _abs(self, relpath: str) -> str:
        return os.path.join(self.path, _check_relpath(relpath))

    def has(self, relpath: str) -> bool:
        """Whether ``relpath`` exists (e.g. ``kprobe_events``, ``dynamic_events``, ``error_log``)."""
        try:
            return os.path.lexists(self._abs(relpath))
        except TracefsError:
            return False

    def readable(self, relpath: str) -> bool:
        """Whether ``relpath`` can actually be read (opens it non-blocking and reads a byte:
        ``os.access`` says yes for root, but e.g. available_filter_functions gives
        EPERM under lockdown)."""
        try:
            fd = os.open(self._abs(relpath), os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, TracefsError):
            return False
        try:
            os.read(fd, 1)
            return True
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def read(self, relpath: str) -> str:
        """The text of ``relpath`` (UTF-8, undecodable bytes replaced)."""
        path = self._abs(relpath)
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            err = TracefsError(
                f"cannot read {relpath} in tracefs: {e.strerror or e}",
                hints=_hint_for_errno(e.errno or 0, relpath),
            )
            err.errno = e.errno
            raise err from None

    def error_log(self) -> str:
        """The text of ``error_log`` ("" when absent: kernels before 5.4)."""
        try:
            with open(os.path.join(self.path, "error_log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def write(self, relpath: str, text: str, append: bool = True) -> None:
        """Write ``text`` to ``relpath`` with ``os.open(O_WRONLY|O_APPEND)`` (``O_TRUNC``
        when ``append`` is false: for ``kprobe_events`` that clears every probe).

        On failure raises :class:`TracefsError` with the errno, a hint, and in
        ``kernel_log`` the lines the kernel added to ``error_log`` meanwhile.
        """
        path = self._abs(relpath)
        before = self.error_log()
        flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
        data = text.encode("utf-8", "surrogateescape")  # a file name's undecodable bytes kept
        try:
            fd = os.open(path, flags)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    if n <= 0:
                        break
                    view = view[n:]
                if not data:
                    os.write(fd, b"")
            finally:
                os.close(fd)
        except OSError as e:
            log = _new_log(before, self.error_log())
            shown = text if len(text) <= 200 else text[:200] + "..."
            err = TracefsError(
                f"writing {shown.rstrip(chr(10))!r} to {relpath} failed: {e.strerror or e}",
                hints=_hint_for_errno(e.errno or 0, relpath, os.path.exists(path)),
                kernel_log=log,
            )
            err.errno = e.errno
            raise err from None


class Instance(_TracefsDir):
    """A tracefs instance (``instances/<name>``): its own buffer, events and options.

    Read/write paths are relative to the instance directory.
    """

    def __init__(self, tracefs: "Tracefs", name: str) -> None:
        self.tracefs = tracefs
        self.name = name
        self.path = os.path.join(tracefs.path, "instances", name)

    def __repr__(self) -> str:
        return f"Instance({self.name!r}, path={self.path!r})"


def _check_instance_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or "\0" in name or name.strip() != name:
        raise TracefsError(f"bad tracefs instance name {name!r}",
                           hints=["use a plain name such as undertow_<pid>_<n>"])


class Tracefs(_TracefsDir):
    """One mounted tracefs directory (``path``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._formats: Dict[Tuple[str, str], EventFormat] = {}
        self._events: Optional[List[Tuple[str, str]]] = None
        self._header_page: Optional[HeaderPage] = None

    def __repr__(self) -> str:
        return f"Tracefs({self.path!r})"

    # ---------------------------------------------------------------- events

    def all_events(self) -> List[Tuple[str, str]]:
        """Every (group, event), sorted: from ``available_events``, else by walking ``events/``."""
        if self._events is None:
            found = set()
            try:
                text = self.read("available_events")
            except TracefsError:
                text = ""
            for line in text.splitlines():
                g, sep, e = line.strip().partition(":")
                if sep and g and e:
                    found.add((g, e))
            if not found:
                found = set(self._walk_events())
            self._events = sorted(found)
        return list(self._events)

    def _walk_events(self) -> List[Tuple[str, str]]:
        out = []
        base = os.path.join(self.path, "events")
        try:
            groups = os.listdir(base)
        except OSError:
            return out
        for g in groups:
            gdir = os.path.join(base, g)
            if not os.path.isdir(gdir):
                continue
            try:
                names = os.listdir(gdir)
            except OSError:
                continue
            for e in names:
                if os.path.exists(os.path.join(gdir, e, "format")):
                    out.append((g, e))
        return out

    def events(self, pattern: str = "*") -> List[Tuple[str, str]]:
        """Sorted (group, event) pairs matching a shell wildcard.

        ``pattern`` is ``group:event`` or ``group/event`` (``*``, ``?``, ``[...]``
        in either part), or a bare event-name pattern (``sys_enter_open*``).
        """
        pat = pattern.strip()
        if "/" in pat and ":" not in pat:
            pat = pat.replace("/", ":", 1)
        evs = self.all_events()
        if ":" in pat:
            return [(g, e) for g, e in evs if fnmatch.fnmatchcase(f"{g}:{e}", pat)]
        return [(g, e) for g, e in evs
                if fnmatch.fnmatchcase(e, pat) or fnmatch.fnmatchcase(f"{g}:{e}", pat)]

    def has_event(self, group: str, event: str) -> bool:
        return os.path.exists(os.path.join(self.path, "events", group, event, "format"))

    def header_page(self) -> HeaderPage:
        """``events/header_page`` parsed (ring-buffer page layout)."""
        if self._header_page is None:
            from .formats import parse_header_page  # the format parser: only for what reads formats

            self._header_page = parse_header_page(self.read("events/header_page"))
        return self._header_page

    def header_event(self) -> HeaderEvent:
        """``events/header_event`` parsed (compressed record header)."""
        from .formats import parse_header_event

        return parse_header_event(self.read("events/header_event"))

    def _long_size(self) -> Optional[int]:
        try:
            return self.header_page().commit_size  # local_t is a long
        except Exception:  # noqa: BLE001 - absent or odd header_page: guess per event
            return None

    def event_format(self, group: str, event: str) -> EventFormat:
        """The parsed ``events/<group>/<event>/format`` (cached).

        Raises :class:`UnknownEventError` (a LookupError) with the closest event
        names when there is no such event.
        """
        key = (group, event)
        fmt = self._formats.get(key)
        if fmt is not None:
            return fmt
        bad = not _event_name_ok(group, event)
        path = os.path.join(self.path, "events", group, event, "format")
        if bad or not os.path.exists(path):
            names = [f"{g}:{e}" for g, e in self.all_events()]
            want = f"{group}:{event}"
            hints = [did_you_mean(want, names)]
            if not hints[0]:
                same = [n for n in names if n.endswith(":" + event)]
                hints = [did_you_mean(want, same) or did_you_mean(event, [n.split(":", 1)[1] for n in names])]
            hints.append("list events with: undertow list 'tracepoint:*'")
            raise UnknownEventError(f"no trace event {want} in this kernel", hints=hints)
        from .formats import parse_format

        fmt = parse_format(self.read(f"events/{group}/{event}/format"), group, event,
                           long_size=self._long_size())
        self._formats[key] = fmt
        return fmt

    def event_id(self, group: str, event: str) -> int:
        """The event's id (what ``perf_event_open`` takes): from its parsed format when
        there is one, else from ``events/<group>/<event>/id`` (one short read instead of
        reading and parsing the format). Raises :class:`TracefsError` when there is none."""
        fmt = self._formats.get((group, event))
        if fmt is not None:
            return fmt.id
        if not _event_name_ok(group, event):
            raise UnknownEventError(f"no trace event {group}:{event} in this kernel")
        text = self.read(f"events/{group}/{event}/id").strip()
        try:
            return int(text)
        except ValueError:
            raise TracefsError(f"events/{group}/{event}/id holds {text!r}, not a number") from None

    # ------------------------------------------------------------- instances

    def instance(self, name: str) -> Instance:
        """An :class:`Instance` object for an existing instance (not created)."""
        _check_instance_name(name)
        return Instance(self, name)

    def create_instance(self, name: str, exist_ok: bool = False) -> Instance:
        """``mkdir instances/<name>``: a private buffer with its own events and settings."""
        _check_instance_name(name)
        path = os.path.join(self.path, "instances", name)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not exist_ok:
                err = TracefsError(
                    f"tracefs instance {name} already exists",
                    hints=["a previous run may have left it: undertow cleanup"],
                )
                err.errno = _errno.EEXIST
                raise err from None
        except OSError as e:
            hints = _hint_for_errno(e.errno or 0, "instances")
            if e.errno == _errno.ENOENT:
                hints = ["this tracefs has no instances/ directory"]
            err = TracefsError(f"cannot create tracefs instance {name}: {e.strerror or e}", hints=hints)
            err.errno = e.errno
            raise err from None
        return Instance(self, name)

    def remove_instance(self, name: str, missing_ok: bool = True, timeout: float = 1.0) -> None:
        """``rmdir instances/<name>``, retrying while the kernel says EBUSY (a reader
        still holds a file open) for up to ``timeout`` seconds."""
        _check_instance_name(name)
        path = os.path.join(self.path, "instances", name)
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                if missing_ok:
                    return
                raise TracefsError(f"no tracefs instance {name}") from None
            except OSError as e:
                if e.errno == _errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                err = TracefsError(
                    f"cannot remove tracefs instance {name}: {e.strerror or e}",
                    hints=_hint_for_errno(e.errno or 0, f"instances/{name}"),
                )
                err.errno = e.errno
                raise err from None

    def instances(self) -> List[str]:
        """Names of the existing instances, sorted."""
        try:
            names = os.listdir(os.path.join(self.path, "instances"))
        except OSError:
            return []
        return sorted(n for n in names if not n.startswith(".")
                      and os.path.isdir(os.path.join(self.path, "instances", n)))
