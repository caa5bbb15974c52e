"""The per-user cache directory (BTF indexes, feature probes, member offsets, compiled
programs), opened so that nobody else can steer what undertow reads or writes there.

undertow runs as root, and the cache's place comes from the environment
(``UNDERTOW_CACHE_DIR``, ``XDG_CACHE_HOME``, ``HOME``: ``sudo -E`` keeps a user's), so a
path is never trusted as such. :func:`open_cache` walks it from ``/`` one component at a
time with ``openat(O_DIRECTORY|O_NOFOLLOW)`` on the directory fd it verified last
(``fstat``):

- an *ancestor* (``/``, ``/home``, ``~/.cache``) belongs to root or to the effective user and
  nobody else can write it (a sticky root-owned directory such as ``/tmp`` is fine); a
  symlink on the way is followed only when root or the user owns it;
- the cache directory and every directory below it belong to the effective user and are not
  writable by group or others; a symlink there is refused;
- missing directories are created ``0700`` (``mkdirat``) and opened and checked like the rest.

Anything refused turns the cache off for the run: nothing is read or written, and the reason
is kept (:func:`refusals`; ``undertow -v`` prints it once through :func:`set_reporter`).
Everything afterwards goes through the verified fds (:class:`CacheDir`): a file is read only
when it is a regular file of the user's with one link, nobody else can write it and it is not
too big; a write goes to a fresh ``O_CREAT|O_EXCL|O_NOFOLLOW`` temporary file in the same
directory, is fsync'ed and renamed over the entry (``renameat``); removal unlinks names of
the verified directory only (``unlinkat`` never follows a symlink) and, for a subdirectory,
only names that look like the cache's own.

The cache is an optimisation: every failure here is a miss (``None``/``False``), never an
error. What is read is the caller's to validate as well (features.py, btf.py, Kernel).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple

from .roots import Roots

__all__ = ["CacheDir", "open_cache", "read_cache", "write_cache", "boot_id", "refusals", "set_reporter",
           "MAX_READ"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Files larger than this are not read (a caller may ask for less).
MAX_READ = 32 << 20
#: Symlinks followed on the way to the cache directory (the kernel allows 40).
_MAX_LINKS = 16
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

_refused: List[str] = []
_reporter: Optional[Callable[[str], None]] = None


def refusals() -> List[str]:
    """Why a cache (or a part of it) was not used in this process, oldest first."""
    return list(_refused)


def set_reporter(fn: Optional[Callable[[str], None]]) -> None:
    """Call ``fn(message)`` once for each new refusal (the CLI prints them with ``-v``)."""
    global _reporter
    _reporter = fn


def _refuse(message: str) -> None:
    if message not in _refused:
        _refused.append(message)
        if _reporter is not None:
            _reporter(message)


# <sys/stat.h>: not importing ``stat`` (nor ``errno``, imported on error paths) keeps this
# module's import cost at what a start-up can afford.
_S_IFMT, _S_IFDIR, _S_IFREG, _S_IFLNK, _S_ISVTX = 0o170000, 0o040000, 0o100000, 0o120000, 0o1000


def _who(uid: int) -> str:
    return "root" if uid == 0 else f"uid {uid}"


def _own_problem(st: os.stat_result, euid: int) -> Optional[str]:
    """Why a directory of the cache itself cannot be used (None: it can)."""
    if st.st_mode & _S_IFMT != _S_IFDIR:
        return "is not a directory"
    if st.st_uid != euid:
        return f"is owned by {_who(st.st_uid)}, not {_who(euid)}"
    if st.st_mode & 0o022:
        return f"is writable by others (mode {st.st_mode & 0o7777:04o})"
    return None


def _ancestor_problem(st: os.stat_result, euid: int) -> Optional[str]:
    """Why a directory above the cache cannot be trusted: someone other than root or us
    could rename or replace what is in it (a sticky root-owned directory, /tmp, is fine)."""
    if st.st_uid not in (0, euid):
        return f"is owned by {_who(st.st_uid)}, not {_who(euid)}"
    if st.st_mode & 0o022 and not (st.st_mode & _S_ISVTX and st.st_uid == 0):
        return f"is writable by others (mode {st.st_mode & 0o7777:04o})"
    return None


def _base_path(roots: Roots) -> Optional[str]:
    """The configured cache directory (absolute, not resolved), or None when off."""
    path = roots.cache_dir
    if path == "":
        return None
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not base.startswith("/"):  # the XDG spec: a relative value is ignored
            base = os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "undertow")
    return os.path.abspath(path)


def _open_chain(path: str, euid: int) -> Tuple[int, str]:
    """``(fd, "")`` of the verified directory ``path`` (absolute, normalised), created
    0700 where missing, or ``(-1, why not)``."""
    parts = [p for p in path.split("/") if p]
    shown = "/"
    try:
        fd = os.open("/", _DIR)
    except OSError as e:
        return -1, f"cannot open /: {e.strerror}"
    links = made = 0
    i = 0
    try:
        problem = _ancestor_problem(os.fstat(fd), euid) if parts else _own_problem(os.fstat(fd), euid)
        if problem:
            return -1, f"/ {problem}"
        while i < len(parts):
            name = parts[i]
            last = i == len(parts) - 1
            shown = "/" + "/".join(parts[:i + 1])
            if name in (".", ".."):  # only from a symlink's target: resolved textually below
                return -1, f"{shown}: unexpected '{name}'"
            try:
                nfd = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                made += 1
                if made > len(parts):  # removed as fast as we make it
                    return -1, f"cannot create {shown}"
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as e:
                    return -1, f"cannot create {shown}: {e.strerror}"
                continue  # opened and checked like any other
            except OSError as e:
                import errno

                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    return -1, f"cannot open {shown}: {e.strerror}"
                try:
                    lst = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if lst.st_mode & _S_IFMT != _S_IFLNK:
                        return -1, f"{shown} is not a directory"
                    if lst.st_uid not in (0, euid):
                        return -1, f"{shown} is a symlink owned by {_who(lst.st_uid)}, not {_who(euid)}"
                    target = os.readlink(name, dir_fd=fd)
                except OSError as e2:
                    return -1, f"cannot read {shown}: {e2.strerror}"
                links += 1
                if links > _MAX_LINKS:
                    return -1, f"{shown}: too many symlinks"
                # Splice the target in and walk again from /: every component is checked anew.
                rest = os.path.join(os.path.dirname(shown), target, *parts[i + 1:])
                parts = [p for p in os.path.normpath(rest).split("/") if p]
                os.close(fd)
                fd = -1
                fd = os.open("/", _DIR)
                i = 0
                continue
            os.close(fd)
            fd = nfd
            st = os.fstat(fd)
            problem = _own_problem(st, euid) if last else _ancestor_problem(st, euid)
            if problem:
                return -1, f"{shown} {problem}"
            i += 1
        ok, fd = fd, -1
        return ok, ""
    except OSError as e:
        return -1, f"cannot open {shown}: {e.strerror}"
    finally:
        if fd >= 0:
            os.close(fd)


def _check_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\x00" not in name and not name.startswith(".") \
        and len(name.encode("utf-8", "surrogateescape")) <= 200


class CacheDir:
    """A verified directory of the cache, held open (``fd``); ``path`` is for messages.

    Every method works on names in this directory through the fd and never follows a
    symlink; failures are misses (``None``/``False``). Close it (or use ``with``) when done.
    """

    __slots__ = ("fd", "path", "euid")

    def __init__(self, fd: int, path: str, euid: int) -> None:
        self.fd = fd
        self.path = path
        self.euid = euid

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "CacheDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"CacheDir({self.path!r})"

    def _usable(self) -> bool:
        """Still ours and private (checked on every use: cheap, and a long-lived object
        must notice a chmod)."""
        try:
            return self.fd >= 0 and _own_problem(os.fstat(self.fd), self.euid) is None
        except OSError:
            return False

    def _is_link(self, name: str) -> bool:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode & _S_IFMT == _S_IFLNK
        except OSError:
            return False

    def subdir(self, name: str, create: bool = True) -> Optional["CacheDir"]:
        """The subdirectory ``name`` (made 0700 when missing and ``create``), verified;
        None when absent or refused (a refusal is recorded)."""
        if not _check_name(name) or not self._usable():
            return None
        shown = f"{self.path}/{name}"
        for _ in range(2):
            try:
                fd = os.open(name, _DIR, dir_fd=self.fd)
                break
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o700, dir_fd=self.fd)
                except FileExistsError:
                    pass
                except OSError:
                    return None
            except OSError as e:
                import errno

                if e.errno in (errno.ELOOP, errno.ENOTDIR):  # O_DIRECTORY on a symlink: ENOTDIR
                    _refuse(f"not using the cache {shown}: it is " +
                            ("a symlink" if self._is_link(name) else "not a directory"))
                return None
        else:
            return None
        try:
            problem = _own_problem(os.fstat(fd), self.euid)
        except OSError as e:
            problem = e.strerror or "cannot be examined"
        if problem:
            os.close(fd)
            _refuse(f"not using the cache {shown}: it {problem}")
            return None
        return CacheDir(fd, shown, self.euid)

    def read(self, name: str, limit: int = MAX_READ) -> Optional[bytes]:
        """The bytes of entry ``name``: a regular file of ours with one link, not writable by
        group or others, at most ``limit`` bytes; else None."""
        if not _check_name(name) or not self._usable():
            return None
        try:
            # O_NONBLOCK: a FIFO in its place must not hang the run
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (st.st_mode & _S_IFMT != _S_IFREG or st.st_uid != self.euid or st.st_mode & 0o022
                    or st.st_nlink != 1 or st.st_size > limit):
                return None
            chunks = []
            left = st.st_size + 1  # one more: a file that grew is not taken
            while left > 0:
                b = os.read(fd, min(left, 1 << 20))
                if not b:
                    break
                chunks.append(b)
                left -= len(b)
            data = b"".join(chunks)
            return data if len(data) == st.st_size else None
        except OSError:
            return None
        finally:
            os.close(fd)

    def write(self, name: str, data: bytes) -> bool:
        """Replace entry ``name`` with ``data`` atomically: a new temporary file (mode 0600,
        ``O_EXCL|O_NOFOLLOW``, a random name), fsync, ``renameat`` over ``name``."""
        if not _check_name(name) or not self._usable():
            return False
        fd = -1
        tmp = ""
        for _ in range(4):
            tmp = f".{name[:64]}.{os.getpid()}.{os.urandom(6).hex()}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=self.fd)
                break
            except FileExistsError:
                continue
            except OSError:
                return False
        if fd < 0:
            return False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            return True
        except OSError:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass
            return False
        finally:
            if fd >= 0:
                os.close(fd)

    def entries(self, hidden: bool = False) -> List[str]:
        """Names in this directory (those starting with '.', temporary files, only with
        ``hidden``)."""
        if not self._usable():
            return []
        try:
            names = os.listdir(self.fd)
        except OSError:
            return []
        return names if hidden else [n for n in names if not n.startswith(".")]

    def mtime_ns(self, name: str) -> int:
        """The entry's mtime (its own, a symlink's included), 0 when it cannot be read."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mtime_ns
        except OSError:
            return 0

    def touch(self, name: str) -> None:
        """Mark entry ``name`` as just used (its mtime; a symlink's own, not its target's)."""
        if "/" in name:
            return
        try:
            os.utime(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            pass

    def remove(self, name: str) -> bool:
        """Unlink the name ``name`` of this directory (a symlink is removed itself)."""
        if not name or "/" in name or name in (".", ".."):
            return False
        try:
            os.unlink(name, dir_fd=self.fd)
            return True
        except OSError:
            return False

    def remove_tree(self, name: str, keep: Callable[[str], bool]) -> bool:
        """Remove the subdirectory ``name``: its entries for which ``keep`` is false are
        unlinked, then the directory if that left it empty. A symlink or a file named
        ``name`` is unlinked itself; a directory that is not ours is left alone; nothing is
        ever followed."""
        if not name or "/" in name or name in (".", "..") or not self._usable():
            return False
        try:
            fd = os.open(name, _DIR, dir_fd=self.fd)
        except OSError as e:
            import errno

            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                return self.remove(name)
            return False
        try:
            if _own_problem(os.fstat(fd), self.euid) is not None:
                return False
            for n in os.listdir(fd):
                if not keep(n):
                    try:
                        os.unlink(n, dir_fd=fd)
                    except OSError:
                        pass
        except OSError:
            return False
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=self.fd)
            return True
        except OSError:
            return False


def open_cache(roots: Roots) -> Optional[CacheDir]:
    """The verified cache directory of ``roots`` (created 0700), or None when caching is off
    (``roots.cache_dir == ""``), impossible, or refused (the reason is recorded)."""
    path = _base_path(roots)
    if path is None:
        return None
    euid = os.geteuid()
    fd, why = _open_chain(path, euid)
    if fd < 0:
        hint = "" if why.startswith("cannot ") else \
            ' (set UNDERTOW_CACHE_DIR to a directory of your own, or to "" for none)'
        _refuse(f"not using the cache {path}: {why}{hint}")
        return None
    d = CacheDir(fd, path, euid)
    if not _is_ours(d, path):
        d.close()
        _refuse(f"not using the cache {path}: it holds other files and no CACHEDIR.TAG, so it is not a "
                'cache directory undertow made (set UNDERTOW_CACHE_DIR to a new directory, or to "" for none)')
        return None
    return d


#: The cache directory tag (https://bford.info/cachedir/): marks the directory as undertow's
#: cache, for backup tools and for undertow itself.
CACHEDIR_TAG = (b"Signature: 8a477f597d28d172789f06886806bc55\n"
                b"# This file is a cache directory tag created by undertow.\n"
                b"# For information about cache directory tags see https://bford.info/cachedir/\n")


def _is_ours(d: "CacheDir", path: str) -> bool:
    """Whether ``d`` is a cache directory undertow made: it holds its CACHEDIR.TAG, or it is
    empty or named ``undertow`` (the default's name; tagged now). Root may be handed any
    directory it owns as UNDERTOW_CACHE_DIR (``sudo -E``, a user's ``XDG_CACHE_HOME``):
    ``/etc`` passes every ownership check, and must not receive cache files."""
    tag = d.read("CACHEDIR.TAG", 4096)
    if tag is not None and tag.startswith(CACHEDIR_TAG[:43]):
        return True
    if d.entries(hidden=True) and os.path.basename(path.rstrip("/")) != "undertow":
        return False
    d.write("CACHEDIR.TAG", CACHEDIR_TAG)
    return True


def read_cache(roots: Roots, name: str, limit: int = MAX_READ) -> Optional[bytes]:
    """Entry ``name`` of the cache directory (see :meth:`CacheDir.read`), or None."""
    d = open_cache(roots)
    if d is None:
        return None
    with d:
        return d.read(name, limit)


def write_cache(roots: Roots, name: str, data: bytes) -> bool:
    """Atomically write ``data`` as cache entry ``name`` (see :meth:`CacheDir.write`)."""
    d = open_cache(roots)
    if d is None:
        return False
    with d:
        return d.write(name, data)


def boot_id(roots: Roots) -> str:
    """The kernel's boot id (``/proc/sys/kernel/random/boot_id``: changes every boot): keys
    caches valid for one boot and names a directory, so anything but a plain word is
    ``unknown-boot``."""
    try:
        with open(roots.proc_path("sys", "kernel", "random", "boot_id")) as f:
            b = f.read(128).strip()
    except (OSError, UnicodeDecodeError):
        return "unknown-boot"
    return b if is_boot_id(b) else "unknown-boot"


def is_boot_id(name: str) -> bool:
    """Whether ``name`` could be a directory :func:`boot_id` named (a word of letters,
    digits, '-' and '_', at most 64 characters)."""
    return 0 < len(name) <= 64 and name[0] not in "-_" and set(name) <= _WORD
