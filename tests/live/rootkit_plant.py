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

import contextlib
import ctypes
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

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


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def write_user_program():
    """``(fd, helper)``: a tracepoint program calling bpf_probe_write_user (helper 36),
    loaded, never attached. Under lockdown (integrity) the kernel gives that helper to no
    program (LOCKDOWN_BPF_WRITE_USER, kernel/trace/bpf_trace.c): then one calling
    bpf_send_signal (109), which the check flags the same way."""
    from undertow.errors import VerifierError
    from undertow.kernel import bpfsys

    ins = [(0x7A, 10, -8, 0),   # *(u64 *)(r10 - 8) = 0
           (0xB7, 1, 0, 0),     # r1 = 0 (the user address)
           (0xBF, 2 | 10 << 4, 0, 0),  # r2 = r10
           (0x07, 2, 0, -8),    # r2 += -8
           (0xB7, 3, 0, 1),     # r3 = 1
           (0x85, 0, 0, 36),    # call bpf_probe_write_user
           (0xB7, 0, 0, 0),     # r0 = 0
           (0x95, 0, 0, 0)]     # exit
    raw = b"".join(struct.pack("<BBhi", c, r, o, i) for c, r, o, i in ins)
    try:
        return bpfsys.prog_load(bpfsys.ProgType.TRACEPOINT, raw, license="GPL", name="ut_rk_writeuser"), \
            "bpf_probe_write_user"
    except VerifierError as e:
        if "cannot use helper" not in str(e):
            raise
    ins = [(0xB7, 1, 0, 0),     # r1 = 0 (signal 0)
           (0x85, 0, 0, 109),   # call bpf_send_signal
           (0xB7, 0, 0, 0),
           (0x95, 0, 0, 0)]
    raw = b"".join(struct.pack("<BBhi", c, r, o, i) for c, r, o, i in ins)
    return bpfsys.prog_load(bpfsys.ProgType.TRACEPOINT, raw, license="GPL", name="ut_rk_signal"), \
        "bpf_send_signal"


def _prog_id(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("prog_id:"):
                return int(line.split()[1])
    return None


@contextlib.contextmanager
def planted(undertow_src, inside_cmds=None):
    """Plant every technique (the namespace helper's and, on the host, a memfd process, a
    deleted binary, someone's uprobe and tracefs instance, a BPF program calling a
    dangerous helper, and an instance of this running undertow process); yield what was
    planted (pids, names, ids, and the findings of the run inside the namespaces); remove
    everything on the way out, also on failure."""
    from undertow.backends.leftovers import next_session_name
    from undertow.kernel.roots import Roots
    from undertow.kernel.tracefs import find_tracefs

    tfs = find_tracefs(Roots())
    tmp = tempfile.mkdtemp(prefix="ut-rootkit-")
    me = os.getpid()
    p = {"uprobe": f"utfx_{me}/p1", "instance": f"utfx_{me}", "own_instance": next_session_name()}
    kids, helper, prog_fd, made = [], None, -1, []
    try:
        mfd = os.memfd_create("ut_rk_memfd", 0)
        with open("/bin/sleep", "rb") as f:
            os.write(mfd, f.read())
        kids.append(subprocess.Popen([f"/proc/self/fd/{mfd}", "3600"], pass_fds=[mfd]))
        os.close(mfd)
        p["memfd_pid"] = kids[-1].pid
        gone = os.path.join(tmp, "ut_rk_deleted")
        shutil.copy("/bin/sleep", gone)
        kids.append(subprocess.Popen([gone, "3600"]))
        os.unlink(gone)
        p["deleted_pid"] = kids[-1].pid
        _append(os.path.join(tfs, "uprobe_events"), f"p:{p['uprobe']} /bin/true:0x1000\n")
        made.append("uprobe")
        os.mkdir(os.path.join(tfs, "instances", p["instance"]))
        made.append("instance")
        os.mkdir(os.path.join(tfs, "instances", p["own_instance"]))
        made.append("own")
        prog_fd, p["helper"] = write_user_program()
        p["prog_id"] = _prog_id(prog_fd)
        build_hider(tmp)
        env = dict(os.environ, UT_INSIDE_CMDS=json.dumps(inside_cmds or []), PYTHONPATH=undertow_src)
        helper = subprocess.Popen([sys.executable, os.path.abspath(__file__), tmp, undertow_src],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        ready = helper.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError(f"the namespace helper failed: {helper.stderr.read()[-2000:]}")
        p["hidden_pid"], p["masked_pid"], p["helper_pid"] = map(int, ready[1:4])
        p["tmp"] = tmp
        p["inside_outputs"] = []
        for i in range(len(inside_cmds or [])):
            with open(os.path.join(tmp, f"inside-{i}.txt"), errors="replace") as f:
                p["inside_outputs"].append(f.read())
        p["mntns"] = os.readlink(f"/proc/{p['helper_pid']}/ns/mnt").split("[")[1].rstrip("]")
        with open(os.path.join(tmp, "inside.json")) as f:
            p["inside"] = [x for x in (json.loads(line) for line in f if line.strip()) if x["type"] == "finding"]
        yield p
    finally:
        if prog_fd >= 0:
            os.close(prog_fd)
        if "own" in made:
            os.rmdir(os.path.join(tfs, "instances", p["own_instance"]))
        if "instance" in made:
            os.rmdir(os.path.join(tfs, "instances", p["instance"]))
        if "uprobe" in made:
            _append(os.path.join(tfs, "uprobe_events"), f"-:{p['uprobe']}\n")
        for k in kids:
            k.kill()
            k.wait()
        if helper is not None:
            helper.stdin.close()
            try:
                helper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main(tmp, undertow_src):
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    # the overlay's upper and work directories on a tmpfs of this mount namespace: an upper
    # layer on overlayfs is refused (EINVAL) where / is itself an overlay (the lab's guests)
    layers = os.path.join(tmp, "layers")
    os.makedirs(layers)
    _check(libc.mount(b"tmpfs", layers.encode(), b"tmpfs", 0, b"mode=0700"), "mount tmpfs for the overlay")
    up, work = os.path.join(layers, "up"), os.path.join(layers, "work")
    os.makedirs(up)
    os.makedirs(work)
    opts = f"lowerdir=/etc,upperdir={up},workdir={work}".encode()
    _check(libc.mount(b"overlay", b"/etc", b"overlay", 0, opts), "mount overlay on /etc")
    with open("/etc/ld.so.preload", "w") as f:
        f.write(os.path.join(tmp, "hider.so") + "\n")
    hideme = os.path.join(tmp, HIDDEN_COMM)
    shutil.copy("/bin/sleep", hideme)
    kids = [subprocess.Popen([hideme, "3600"]), subprocess.Popen(["sleep", "3600"])]
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    _check(libc.mount(empty.encode(), f"/proc/{kids[1].pid}".encode(), None, MS_BIND, None), "bind over /proc/PID")
    sock, _insn = filtered_packet_socket()
    try:
        env = dict(os.environ, PYTHONPATH=undertow_src)
        with open(os.path.join(tmp, "inside.json"), "w") as out:
            subprocess.run([sys.executable, "-m", "undertow", "rootkit", "--json", "--only", "processes",
                            "--only", "userspace"], stdout=out, stderr=subprocess.DEVNULL, env=env, timeout=120)
        # the peers' runs inside the namespaces (bench/rootkit_peers.py): a JSON list of argv
        for i, argv in enumerate(json.loads(os.environ.get("UT_INSIDE_CMDS", "[]"))):
            with open(os.path.join(tmp, f"inside-{i}.txt"), "w") as out:
                try:
                    subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=600, cwd=tmp)
                except (OSError, subprocess.TimeoutExpired) as e:
                    out.write(f"\n[failed: {e}]\n")
        print(f"READY {kids[0].pid} {kids[1].pid} {os.getpid()}", flush=True)
        sys.stdin.read()
    finally:
        sock.close()
        for k in kids:
            k.kill()
            k.wait()


# The listener of listening_binaries(): "bind" enters a private mount namespace, mounts the
# copy over the packaged path and executes it ("serve"); "serve" listens on loopback, prints
# the port and waits for standard input to close.
LISTENER_PY = r"""
import ctypes, os, socket, sys
copy, target, mode, code = sys.argv[1:5]
if mode == "bind":
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    if (libc.unshare(0x00020000) or libc.mount(None, b"/", None, 0x4000 | (1 << 18), None)
            or libc.mount(copy.encode(), target.encode(), None, 0x1000, None)):
        raise OSError(ctypes.get_errno(), "unshare or mount")
    os.execv(target, [target, "-I", "-c", code, copy, target, "serve", code])
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def packaged_interpreter():
    """The Debian-packaged Python this host runs (``/usr/bin/python3.X``), or None."""
    path = os.path.realpath("/usr/bin/python3")
    stem = os.path.basename(path)
    info = "/var/lib/dpkg/info"
    if not os.path.isfile(path) or not os.path.isdir(info):
        return None
    for name in os.listdir(info):
        if name.endswith(".md5sums"):
            with open(os.path.join(info, name), errors="replace") as f:
                if any(line.rstrip("\n").endswith("  usr/bin/" + stem) for line in f):
                    return path
    return None


@contextlib.contextmanager
def listening_binaries(interpreter):
    """Two loopback listeners running ``interpreter``: the packaged file, and (in a private
    mount namespace) a copy with one byte appended, bind-mounted over the packaged path.
    Yields ``(clean_pid, modified_pid)``; ends both (by pid) and removes the copy."""
    tmp = tempfile.mkdtemp(prefix="ut-rk-exe-")
    kids = []
    try:
        copy = os.path.join(tmp, "python")
        shutil.copy(interpreter, copy)
        with open(copy, "ab") as f:
            f.write(b"\0undertow test")
        for mode in ("serve", "bind"):
            kids.append(subprocess.Popen([interpreter, "-I", "-c", LISTENER_PY, copy, interpreter, mode, LISTENER_PY],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for k in kids:
            if not k.stdout.readline().strip().isdigit():
                raise RuntimeError("a listener did not start")
        yield kids[0].pid, kids[1].pid
    finally:
        for k in kids:
            k.kill()
            k.wait()
            for f in (k.stdin, k.stdout):
                f.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
