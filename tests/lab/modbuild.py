"""Build the lab's test kernel modules on the host, against Debian's linux-headers for a guest
kernel (tests/lab/rkmod: the test rootkit of tests/lab/guest/test_lkm_rootkit.py).

The headers are fetched with ``apt-get download`` (never installed: linux-headers-6.12 depends
on the image package) and unpacked under the lab's cache; their one absolute path (the
arch package's Makefile includes /usr/src/linux-headers-*-common/Makefile) is pointed at the
unpacked copy. The module is built with the host's gcc (Debian's kernels are built with gcc-12,
bookworm's gcc). Test tooling: it runs apt-get, dpkg-deb and make as lists of arguments, never
through a shell.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from typing import List, Optional, Tuple

import lab

HERE = os.path.dirname(os.path.abspath(__file__))
RKMOD_SRC = os.path.join(HERE, "rkmod")


def header_packages(release: str) -> List[str]:
    """``linux-headers-RELEASE`` and the headers/kbuild packages it depends on."""
    main = "linux-headers-" + release
    r = lab._run(["apt-cache", "depends", main])
    if r.returncode != 0 or "Depends" not in r.stdout:
        raise lab.LabUnavailable("no %s in the apt lists" % main)
    deps = re.findall(r"Depends:\s*(linux-(?:headers|kbuild)-\S+)", r.stdout)
    return [main] + sorted(set(deps))


def _fetch_any_arch(pkg: str) -> str:
    """``pkg``'s .deb in the lab's deb cache (the -common headers are ``_all``, not ``_amd64``)."""
    have = lab._cached_debs("%s_*.deb" % pkg)
    if have:
        return have[0]
    debs = os.path.join(lab.cache_dir(), "debs")
    os.makedirs(debs, exist_ok=True)
    r = lab._run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg], cwd=debs)
    have = lab._cached_debs("%s_*.deb" % pkg)
    if r.returncode != 0 or not have:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise lab.LabUnavailable("apt-get download %s failed: %s" % (pkg, tail[0]))
    return have[0]


def prepare_headers(release: str) -> str:
    """The unpacked headers tree for ``release`` (``.../usr/src/linux-headers-RELEASE``)."""
    root = os.path.join(lab.cache_dir(), "headers", release)
    tree = os.path.join(root, "usr", "src", "linux-headers-" + release)
    if os.path.exists(os.path.join(root, "ready")):
        return tree
    tmp = tempfile.mkdtemp(prefix="unpack-", dir=lab.cache_dir())
    try:
        for pkg in header_packages(release):
            r = lab._run(["dpkg-deb", "-x", _fetch_any_arch(pkg), tmp])
            if r.returncode != 0:
                raise lab.LabError("dpkg-deb -x %s failed: %s" % (pkg, r.stderr.strip()))
        mk = os.path.join(tmp, "usr", "src", "linux-headers-" + release, "Makefile")
        with open(mk) as f:
            text = f.read()
        with open(mk, "w") as f:
            f.write(re.sub(r"(?m)^include /usr/src/", "include %s/usr/src/" % root, text))
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.dirname(root), exist_ok=True)
        os.rename(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(root, "ready"), "w") as f:
        f.write("ok\n")
    return tree


def build_rootkit(release: str) -> Tuple[Optional[str], str]:
    """(path of utrk.ko built for ``release``, "") or (None, why it could not be built)."""
    out_dir = os.path.join(lab.cache_dir(), "modules", release)
    ko = os.path.join(out_dir, "utrk.ko")
    src_mtime = max(os.path.getmtime(p) for p in glob.glob(os.path.join(RKMOD_SRC, "*")))
    if os.path.exists(ko) and os.path.getmtime(ko) >= src_mtime:
        return ko, ""
    if not shutil.which("make") or not shutil.which("gcc"):
        return None, "make and gcc are needed to build the test module"
    try:
        tree = prepare_headers(release)
    except (lab.LabUnavailable, lab.LabError, OSError) as e:
        return None, "linux-headers for %s: %s" % (release, e)
    build = tempfile.mkdtemp(prefix="rkmod-", dir=lab.cache_dir())
    try:
        for name in os.listdir(RKMOD_SRC):
            shutil.copy(os.path.join(RKMOD_SRC, name), build)
        r = subprocess.run(["make", "-s", "-C", tree, "M=" + build, "modules"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0 or not os.path.exists(os.path.join(build, "utrk.ko")):
            tail = r.stdout.strip().splitlines()[-5:]
            return None, "building utrk.ko for %s failed: %s" % (release, " | ".join(tail))
        os.makedirs(out_dir, exist_ok=True)
        shutil.copy(os.path.join(build, "utrk.ko"), ko)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return ko, ""
