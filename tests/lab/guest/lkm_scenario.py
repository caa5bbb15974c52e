"""The loadable-module rootkit scenario of issue 20, inside a lab guest (never on a host).

``planted(ko)`` loads tests/lab/rkmod's utrk.ko (built on the host by tests/lab/modbuild.py),
starts a process and a TCP listener for it to hide, and undoes all of it on exit (the module is
put back on the module list and removed; the process is ended by its pid). ``python3
lkm_scenario.py KO`` runs the peers (unhide, unhide-tcp, chkrootkit, rkhunter) in the scenario
and prints what each reported: the table of docs/tools/rootkit.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List

SYS_FINIT_MODULE = 313  # x86-64
SYS_DELETE_MODULE = 176
PARAMS = "/sys/module/utrk/parameters/"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def load(ko: str) -> None:
    fd = os.open(ko, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().syscall(SYS_FINIT_MODULE, fd, b"", 0) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "finit_module(%s): %s" % (ko, os.strerror(e)))
    finally:
        os.close(fd)


def unload() -> None:
    if not os.path.exists(PARAMS):
        return
    with open(PARAMS + "reveal", "w") as f:
        f.write("1")
    for _ in range(50):  # EAGAIN/EBUSY while a hooked call is still returning
        if _libc().syscall(SYS_DELETE_MODULE, b"utrk", os.O_NONBLOCK) == 0:
            return
        time.sleep(0.1)
    raise OSError(ctypes.get_errno(), "delete_module(utrk) failed")


@contextlib.contextmanager
def planted(ko: str) -> Iterator[Dict[str, int]]:
    """The rootkit loaded, hiding a `sleep` process and a TCP listener on 127.0.0.1."""
    sleeper = subprocess.Popen(["sleep", "600"])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        port = lsock.getsockname()[1]
        load(ko)
        try:
            with open(PARAMS + "hide_pid", "w") as f:
                f.write(str(sleeper.pid))
            with open(PARAMS + "hide_port", "w") as f:
                f.write(str(port))
            yield {"pid": sleeper.pid, "port": port}
        finally:
            unload()
    finally:
        lsock.close()
        sleeper.kill()
        sleeper.wait()


#: The peers' checks that concern this scenario (under TCG a whole chkrootkit run, which walks
#: the host's file system through 9p, took over 15 minutes; `unhide sys procall` 7).
PEERS: List[List[str]] = [
    ["unhide", "quick"],
    ["unhide-tcp"],
    ["chkrootkit", "-q", "lkm"],
    ["rkhunter", "--check", "--sk", "--nocolors", "--rwo", "--noappend-log",
     "--enable", "hidden_procs,hidden_ports,loaded_modules,avail_modules,known_rkts"],
]


def main(argv: List[str]) -> int:
    with planted(argv[1]) as what:
        print("planted: hidden pid %(pid)d, hidden port %(port)d" % what, flush=True)
        for cmd in PEERS:
            t0 = time.monotonic()
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True, timeout=600)
                out, rc = p.stdout, p.returncode
            except FileNotFoundError:
                out, rc = "(not installed)", -1
            except subprocess.TimeoutExpired as e:
                got = e.stdout or b""
                out = (got.decode("utf-8", "replace") if isinstance(got, bytes) else got) + "\n(timed out)"
                rc = -2
            print("=== %s: exit %d in %.0f s" % (" ".join(cmd), rc, time.monotonic() - t0))
            print(out.strip()[-4000:], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
