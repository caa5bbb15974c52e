"""Techniques the rootkit tests plant, each harmless to the host (issue 20).

Run as a script it is the *namespace helper*: it enters private mount and network
namespaces (unshare(2) through ctypes), then

- makes an ``LD_PRELOAD`` readdir hider (``hider.c``, compiled by the test with gcc) effective
  for every program started there: ``/etc/ld.so.preload`` naming it, on an overlay over
  /etc that exists in this mount namespace only;
- starts a process named ``ut_hideme`` (the hider hides it) and one whose /proc entry it
  covers with a bind mount of an empty directory;
- opens a packet socket with a classic BPF filter (``SO_ATTACH_FILTER``) in the private
  network namespace;
- runs ``undertow rootkit`` there (its output to ``inside.json``), prints ``READY`` with the
  pids, and waits for its standard input to close; then ends its children (by pid).

The namespaces vanish with their last process: nothing is left on the host.
"""

import ctypes
import os
import shutil
import socket
import struct
import subprocess
import sys

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE, MS_BIND = 0x4000, 1 << 18, 0x1000
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003

HIDER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int hidden(DIR *d, const char *name) {
    char path[64], link[PATH_MAX], comm[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd(d));
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) return 0;
    link[n] = 0;
    if (strcmp(link, "/proc") || name[0] < '0' || name[0] > '9') return 0;
    snprintf(path, sizeof path, "/proc/%.20s/comm", name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(comm, sizeof comm, f) != NULL;
    fclose(f);
    comm[strcspn(comm, "\n")] = 0;
    return ok && strcmp(comm, HIDE) == 0;
}

struct dirent *readdir(DIR *d) {
    static struct dirent *(*real)(DIR *);
    struct dirent *e;
    if (!real) real = dlsym(RTLD_NEXT, "readdir");
    while ((e = real(d)) && hidden(d, e->d_name)) {}
    return e;
}

struct dirent64 *readdir64(DIR *d) {
    static struct dirent64 *(*real)(DIR *);
    struct dirent64 *e;
    if (!real) real = dlsym(RTLD_NEXT, "readdir64");
    while ((e = real(d)) && hidden(d, e->d_name)) {}
    return e;
}
"""

HIDDEN_COMM = "ut_hideme"


def build_hider(tmp):
    """Compile the readdir hider into ``tmp/hider.so``; returns its path (None: no gcc)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    src = os.path.join(tmp, "hider.c")
    with open(src, "w") as f:
        f.write(HIDER_C)
    out = os.path.join(tmp, "hider.so")
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", f'-DHIDE="{HIDDEN_COMM}"', "-o", out, src, "-ldl"],
                   check=True, capture_output=True, timeout=120)
    return out


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def filtered_packet_socket():
    """A packet socket with a one-instruction classic BPF filter (``ret #0xffff``)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    insn = ctypes.create_string_buffer(struct.pack("=HBBI", 0x06, 0, 0, 0xFFFF))  # BPF_RET|BPF_K
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("=HxxxxxxQ", 1, ctypes.addressof(insn)))
    return s, insn


def main(tmp, undertow_src):
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    up, work = os.path.join(tmp, "up"), os.path.join(tmp, "work")
    os.makedirs(up)
    os.makedirs(work)
    opts = f"lowerdir=/etc,upperdir={up},workdir={work}".encode()
    _check(libc.mount(b"overlay", b"/etc", b"overlay", 0, opts), "mount overlay on /etc")
    with open("/etc/ld.so.preload", "w") as f:
        f.write(os.path.join(tmp, "hider.so") + "\n")
    hideme = os.path.join(tmp, HIDDEN_COMM)
    shutil.copy("/bin/sleep", hideme)
    kids = [subprocess.Popen([hideme, "300"]), subprocess.Popen(["sleep", "300"])]
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    _check(libc.mount(empty.encode(), f"/proc/{kids[1].pid}".encode(), None, MS_BIND, None), "bind over /proc/PID")
    sock, _insn = filtered_packet_socket()
    try:
        env = dict(os.environ, PYTHONPATH=undertow_src)
        with open(os.path.join(tmp, "inside.json"), "w") as out:
            subprocess.run([sys.executable, "-m", "undertow", "rootkit", "--json", "--only", "processes",
                            "--only", "userspace"], stdout=out, stderr=subprocess.DEVNULL, env=env, timeout=120)
        print(f"READY {kids[0].pid} {kids[1].pid} {os.getpid()}", flush=True)
        sys.stdin.read()
    finally:
        sock.close()
        for k in kids:
            k.kill()
            k.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
