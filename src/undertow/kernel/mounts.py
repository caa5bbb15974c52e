"""Reading a file of a pseudo filesystem that is not mounted, without leaving a mount behind.

``/sys/kernel/security/lockdown`` lives in securityfs, which minimal systems
(containers, Firecracker VMs) often do not mount. Rather than change the
machine's mount table, :func:`read_from_private_mount` mounts the filesystem
read-only on a fresh temporary directory, reads the file, and detaches the
mount again (``umount2(MNT_DETACH)``). securityfs has a single superblock, so
the private mount shows the same files as /sys/kernel/security would.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MNT_DETACH = 2


def _libc() -> Optional[ctypes.CDLL]:
    try:
        # the interpreter's own symbols include libc's (ctypes.util.find_library would
        # import subprocess and may run ldconfig)
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def filesystem_supported(fstype: str, proc: str = "/proc") -> bool:
    """Whether ``fstype`` is listed in ``/proc/filesystems``."""
    try:
        with open(os.path.join(proc, "filesystems")) as f:
            return any(line.split()[-1] == fstype for line in f if line.strip())
    except OSError:
        return False


def read_from_private_mount(fstype: str, relpath: str, max_bytes: int = 65536) -> Optional[str]:
    """The text of ``relpath`` inside a private read-only mount of ``fstype``, or None.

    Never raises: any failure (not root, no such filesystem, EPERM in a
    container) returns None. The mount point is removed in every case.
    """
    libc = _libc()
    if libc is None or os.geteuid() != 0:
        return None
    try:
        where = tempfile.mkdtemp(prefix="undertow-mnt-")
    except OSError:
        return None
    mounted = False
    try:
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        if libc.mount(fstype.encode(), where.encode(), fstype.encode(), flags, None) != 0:
            return None
        mounted = True
        try:
            with open(os.path.join(where, relpath)) as f:
                return f.read(max_bytes)
        except OSError:
            return None
    finally:
        if mounted:
            libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
            libc.umount2(where.encode(), MNT_DETACH)
        try:
            os.rmdir(where)
        except OSError:
            pass
