"""Create a session's ring buffer map while the program is still being compiled.

``BPF_MAP_CREATE`` of a ``BPF_MAP_TYPE_RINGBUF`` takes the kernel ~0.15-0.3 ms per MiB
(it allocates and maps every page: 16 MiB ~2-5 ms, 64 MiB 8-19 ms on the development VM).
ctypes releases the GIL during the system call, so a thread started before parsing
overlaps that work with the imports, the parse and the BTF resolution.
"""

from __future__ import annotations

import _thread
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["RingPrefetch", "default_buffer_mb"]


def default_buffer_mb() -> int:
    """The ring buffer size for a session, in MiB: 16, capped at ~3% of RAM, at least 4, a
    power of two. A 1M-event printf storm is read without loss with 8 or 16 MiB
    (bench/bt_storm.py): past half full the consumer moves the ring's contents to its
    user-space backlog (ringbuf.RingBuffer), so the kernel ring only has to absorb a few
    milliseconds. A bigger ring costs the kernel time to create (64 MiB: 8-19 ms on the
    development VM) and pinned memory; ``--buffer-mb`` asks for one."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) // 1024
                    break
    except (OSError, ValueError):
        pass
    mb = 16
    while mb > 4 and total and mb > total * 3 // 100:
        mb //= 2
    return mb


class RingPrefetch:
    """``BPF_MAP_CREATE`` of a ring buffer of ``size`` bytes, in a thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._fd: Optional[int] = None
        self._error: Optional[BaseException] = None
        self._taken = False
        # the low-level thread module: `threading` costs ~0.8 ms to import, and a lock
        # released when the work is done is all the joining needed
        self._done = _thread.allocate_lock()
        self._done.acquire()
        # imported here, not in the thread: an import there holds the GIL for milliseconds
        # (ctypes) in turns with this thread's own imports, and the map would be asked for
        # only once it is done; this way the thread goes straight into the system call
        from ...kernel import syscalls

        self._sc = syscalls
        try:
            _thread.start_new_thread(self._create, ())
        except RuntimeError:  # no thread to be had (limits): create it here, now
            self._create()

    def _create(self) -> None:
        sc = self._sc
        try:
            sc.raise_memlock_rlimit()
            self._fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, self.size)
        except BaseException as e:  # noqa: BLE001 - handed to take()'s caller
            self._error = e
        finally:
            self._done.release()

    def _join(self) -> None:
        self._done.acquire()
        self._done.release()

    def take(self) -> int:
        """The map's fd (now owned by the caller); raises what creating it raised."""
        self._join()
        if self._error is not None:
            raise self._error
        assert self._fd is not None
        self._taken = True
        return self._fd

    def discard(self) -> None:
        """Close the map if nobody took it (the program failed before attaching)."""
        self._join()
        if self._fd is not None and not self._taken:
            os.close(self._fd)
            self._fd = None
