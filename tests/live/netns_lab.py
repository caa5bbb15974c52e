"""Network namespaces a live test makes and removes (``ip netns``), for traffic that must not
touch the host's own tables: routes of type blackhole/unreachable/prohibit, veth pairs, a
forwarding peer that answers with ICMP errors. Everything is removed in :meth:`Netns.close`,
also when the test failed."""

import os
import shutil
import subprocess
import sys

IP = shutil.which("ip") or "/usr/sbin/ip"


def ip(*args, check=True):
    """Run ``ip ARGS``; a failure raises with ip's message (or returns it with ``check=False``)."""
    r = subprocess.run([IP, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Netns:
    """Named network namespaces (``ut_<tag>_<pid>_<n>``) with their loopback up."""

    def __init__(self, tag):
        self.tag, self.names = tag, []

    def add(self):
        name = f"ut_{self.tag}_{os.getpid()}_{len(self.names)}"
        ip("netns", "add", name)
        self.names.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    @staticmethod
    def inode(name):
        """The namespace's inode number (what the tools report as ``netns``)."""
        return os.stat(f"/run/netns/{name}").st_ino

    @staticmethod
    def popen(name, code, *args, **kw):
        """``python3 -c CODE ARGS`` inside the namespace (our child, stopped by its pid)."""
        return subprocess.Popen([IP, "netns", "exec", name, sys.executable, "-c", code, *map(str, args)], **kw)

    def close(self):
        for name in self.names:
            ip("netns", "del", name, check=False)
        self.names = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def veth_supported():
    """Whether this kernel makes veth pairs (a namespace is made and removed to find out)."""
    with Netns("vethcheck") as ns:
        try:
            n = ns.add()
        except RuntimeError:
            return False
        return ip("-n", n, "link", "add", "va", "type", "veth", "peer", "name", "vb", check=False).returncode == 0


def can_netns():
    """Whether ``ip netns`` works here (root, the ip tool, namespaces enabled)."""
    if os.geteuid() != 0 or not os.path.exists(IP):
        return False
    with Netns("check") as ns:
        try:
            ns.add()
        except RuntimeError:
            return False
    return True
