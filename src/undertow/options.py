"""Command-line option values: one rule per kind of option, the same in every command.

Each validator is an argparse ``type=``: it returns the value or raises
:class:`argparse.ArgumentTypeError`, which argparse turns into one line and exit status 2::

    undertow run: error: argument --duration: must be > 0 (seconds), not '0'

==================  =========================================================================
kind                rule
==================  =========================================================================
:func:`duration`    seconds, a finite number > 0 (``--duration 0`` is refused: no command
                    treats 0 as "no limit"; leave the option out to run until Ctrl-C)
:func:`count`       an integer >= 1
:func:`pid`         a process that exists when the command starts (``kill(pid, 0)``), and a
                    process, not one of its threads (``Tgid`` of ``/proc/PID/status``)
:func:`port`        0-65535 (0 is a real destination port: scanners send to it)
:func:`buffer_mb`   a power of two from 1 to 2048 MiB (the ring's ``max_entries`` is a u32
                    power of two: 2048 MiB is the largest)
:func:`output_file` its directory exists; it is not a directory, not a symbolic link, and
                    not a file owned by another user (see :func:`open_output`)
:func:`command`     splits like a shell would (:func:`shlex.split`) and names a program that
                    exists and can be executed (searched in ``PATH`` unless it holds a ``/``)
==================  =========================================================================

:func:`open_output` opens an ``-o`` file early in a command (before anything is attached), so
that a file that cannot be written is a usage error, not a traceback after the work. It never
follows a symbolic link as the last component (``O_NOFOLLOW``) nor one owned by another user
(not root) in the directory part, and refuses to truncate a file owned by another user: a
root tracer writing into a world-writable directory such as ``/tmp`` cannot be turned against
another file by a planted link or file.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import TextIO

from .errors import OptionError

__all__ = ["duration", "count", "pid", "port", "buffer_mb", "output_file", "command", "open_output",
           "BUFFER_MB_MAX"]

#: The kernel's largest pid_max (PID_MAX_LIMIT, include/linux/threads.h, 64-bit).
PID_MAX_LIMIT = 4 * 1024 * 1024

#: The largest ``--buffer-mb``: BPF ring buffer sizes are u32 powers of two (2^31 bytes).
BUFFER_MB_MAX = 2048


def _bad(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def duration(text: str) -> float:
    """``--duration SECONDS``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {_bad(text)}") from None
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf (math not imported for it)
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {_bad(text)} "
                                         "(leave the option out to run until Ctrl-C)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (seconds), not {_bad(text)}")
    return value


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {_bad(text)}") from None


def count(text: str) -> int:
    """``--count N``: an integer >= 1."""
    value = _int(text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {_bad(text)}")
    return value


def pid(text: str) -> int:
    """``--pid PID`` / ``-p PID``: an existing process (a thread group), at start. The
    wording of a malformed or out-of-range pid is bpftrace's (``pid 'x1' is not a valid
    decimal number``, ``pid '5000000' out of valid pid range [1,4194304]``)."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"pid {_bad(text)} is not a valid decimal number")
    value = int(text, 10)
    if not 1 <= value <= PID_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"pid {_bad(text)} out of valid pid range [1,{PID_MAX_LIMIT}]")
    try:
        os.kill(value, 0)  # pid 0 and negatives would name process groups: refused above
    except ProcessLookupError:
        raise argparse.ArgumentTypeError(f"no process with pid {value}") from None
    except PermissionError:
        pass  # it exists, owned by someone else
    except OverflowError:
        raise argparse.ArgumentTypeError(f"no process with pid {value}") from None
    try:
        with open(f"/proc/{value}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    tgid = int(line.split()[1])
                    if tgid != value:
                        raise argparse.ArgumentTypeError(
                            f"{value} is a thread of process {tgid}: give the process id {tgid}")
                    break
    except (OSError, ValueError, IndexError):
        pass  # no /proc here: kill() said it exists
    return value


def port(text: str) -> int:
    """``--port N``: 0-65535."""
    value = _int(text, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {_bad(text)}")
    return value


def buffer_mb(text: str) -> int:
    """``--buffer-mb MB``: a power of two from 1 to :data:`BUFFER_MB_MAX`."""
    value = _int(text, "a size in MiB")
    if not 1 <= value <= BUFFER_MB_MAX or value & (value - 1):
        raise argparse.ArgumentTypeError(
            f"must be a power of two from 1 to {BUFFER_MB_MAX} (MiB), not {_bad(text)}")
    return value


def _check_output(path: str) -> None:
    """Why ``path`` cannot be an output file (:class:`ValueError` with the reason), checked
    without creating anything."""
    if not path:
        raise ValueError("an empty file name")
    head, tail = os.path.split(path)
    if not tail:
        raise ValueError(f"{path} names a directory, not a file")
    d = head or "."
    try:
        st = os.stat(d)
    except FileNotFoundError:
        raise ValueError(f"directory {d} does not exist") from None
    except NotADirectoryError:
        raise ValueError(f"{d} is not a directory") from None
    except OSError as e:
        raise ValueError(f"cannot reach directory {d}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{d} is not a directory")
    _check_links(head)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None
    _check_existing(path, st)


def _check_links(head: str) -> None:
    """Refuse a symbolic link in the directory part owned by another user (not root): one
    planted in a world-writable directory must not redirect the output."""
    me = os.geteuid()
    part = os.sep if head.startswith(os.sep) else ""
    for name in (p for p in head.split(os.sep) if p):
        part = os.path.join(part, name)
        try:
            st = os.lstat(part)
        except OSError:
            return  # os.stat() of the whole directory worked; open() will say the rest
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, me):
            raise ValueError(f"{part} is a symbolic link owned by uid {st.st_uid}: not followed "
                             "(give the real directory)")


def _check_existing(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path} is a symbolic link: not followed (give the file it points to)")
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path} is a directory")
    if stat.S_ISREG(st.st_mode) and st.st_uid != os.geteuid():
        raise ValueError(f"{path} belongs to uid {st.st_uid}: not overwriting another user's file")


def output_file(text: str) -> str:
    """``-o FILE``: a file that can be created or overwritten (see :func:`open_output`)."""
    try:
        _check_output(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def open_output(path: str, option: str = "-o", mode: int = 0o644) -> "TextIO":
    """Open ``path`` for writing (text, UTF-8, undecodable bytes kept): created with ``mode``,
    never through a symbolic link as its last component (``O_NOFOLLOW``), and truncated only
    once it is known to be this user's (or not a regular file: a FIFO, ``/dev/null``).

    Raises :class:`~undertow.errors.OptionError` (exit status 2) naming ``option``.
    """
    def fail(why: str) -> OptionError:
        return OptionError(f"argument {option}: {why}")

    try:
        _check_output(path)
    except ValueError as e:
        raise fail(str(e)) from None
    try:
        # O_NONBLOCK: a FIFO nobody reads is an error (ENXIO), not a wait forever
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise fail(f"{path} is a symbolic link: not followed (give the file it points to)") from None
        if e.errno == errno.ENXIO:
            raise fail(f"cannot write {path}: a FIFO no process reads") from None
        raise fail(f"cannot write {path}: {e.strerror}") from None
    try:
        os.set_blocking(fd, True)
        st = os.fstat(fd)
        try:
            _check_existing(path, st)
        except ValueError as e:
            raise fail(str(e)) from None
        if stat.S_ISREG(st.st_mode):
            os.ftruncate(fd, 0)
        return open(fd, "w", encoding="utf-8", errors="surrogateescape", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def command(text: str) -> str:
    """``-c CMD``: words as a shell would split them (no shell runs them), the first naming an
    executable program. Returns ``text`` (the command splits it again)."""
    import shlex

    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"cannot split {_bad(text)} into words: {e}") from None
    if not argv:
        raise argparse.ArgumentTypeError("needs a command")
    prog = argv[0]
    if os.sep in prog:
        if not os.path.isfile(prog):
            raise argparse.ArgumentTypeError(f"{prog}: no such file" if not os.path.exists(prog)
                                             else f"{prog}: not a file")
        if not os.access(prog, os.X_OK):
            raise argparse.ArgumentTypeError(f"{prog}: not executable")
    else:
        import shutil

        if shutil.which(prog) is None:
            raise argparse.ArgumentTypeError(f"{prog}: command not found (in PATH)")
    return text
