"""The cache directory (undertow.kernel.cache): opened without following symlinks, used only
when it and the directories above it are the user's, written atomically, never removing
through a path it did not check. "Someone else" is uid 65534 (needs root to chown)."""

import errno
import os
import stat

import pytest

from undertow.kernel import cache as C
from undertow.kernel.roots import Roots

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="making a file someone else's needs root (chown)")
OTHER = 65534


@pytest.fixture
def base(tmp_path):
    return tmp_path / "c" / "undertow"


def _open(path):
    return C.open_cache(Roots(cache_dir=str(path)))


def _mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_created_private_and_round_trips(base):
    d = _open(base)
    assert d is not None and d.path == str(base)
    with d:
        assert _mode(base) == 0o700 and _mode(base.parent) == 0o700
        assert d.read("x") is None
        assert d.write("x", b"one") and d.read("x") == b"one"
        assert d.write("x", b"two") and d.read("x") == b"two"  # replaced
        assert _mode(base / "x") == 0o600
        # no temporary file left; the tag marks the directory as undertow's
        assert sorted(d.entries()) == ["CACHEDIR.TAG", "x"] and sorted(d.entries(hidden=True)) == ["CACHEDIR.TAG", "x"]
        assert (base / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
        sub = d.subdir("s")
        assert sub is not None and _mode(base / "s") == 0o700
        with sub:
            assert sub.write("y", b"why") and sub.read("y") == b"why"
        assert d.subdir("missing", create=False) is None
        for bad in ("", ".", "..", "a/b", ".hidden", "x" * 300):
            assert not d.write(bad, b"no") and d.read(bad) is None and d.subdir(bad) is None
    assert C.read_cache(Roots(cache_dir=str(base)), "x") == b"two"
    assert C.write_cache(Roots(cache_dir=str(base)), "z", b"zz") and (base / "z").read_bytes() == b"zz"
    assert C.open_cache(Roots(cache_dir="")) is None  # off: no reason recorded either


def test_entries_that_are_not_plain_private_files_are_not_read(base, tmp_path):
    d = _open(base)
    with d:
        d.write("e", b"data")
        os.chmod(base / "e", 0o666)
        assert d.read("e") is None
        os.chmod(base / "e", 0o620)
        assert d.read("e") is None  # group-writable
        os.chmod(base / "e", 0o600)
        assert d.read("e") == b"data"
        assert d.read("e", limit=3) is None  # too big
        os.link(base / "e", tmp_path / "hardlink")
        assert d.read("e") is None  # two links: could be someone's file linked in
        os.unlink(tmp_path / "hardlink")
        (tmp_path / "target").write_bytes(b"target")
        os.symlink(tmp_path / "target", base / "link")
        assert d.read("link") is None
        os.mkfifo(base / "fifo", 0o600)
        assert d.read("fifo") is None  # and does not hang
        os.mkdir(base / "dir", 0o700)
        assert d.read("dir") is None


@needs_root
def test_an_entry_of_someone_else_is_not_read(base):
    with _open(base) as d:
        d.write("e", b"data")
        os.chown(base / "e", OTHER, OTHER)
        assert d.read("e") is None


def test_a_world_or_group_writable_cache_dir_is_refused(base):
    base.mkdir(parents=True)
    for mode in (0o777, 0o770, 0o1777):
        os.chmod(base, mode)
        assert _open(base) is None
        assert f"not using the cache {base}: {base} is writable by others (mode {mode:04o})" in C.refusals()[-1]
    assert os.listdir(base) == []
    os.chmod(base, 0o700)
    d = _open(base)
    assert d is not None
    os.chmod(base, 0o777)  # made writable after it was opened: checked on every use
    assert not d.write("x", b"1") and d.read("x") is None and d.subdir("s") is None
    d.close()


def test_ancestors_writable_by_others_are_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert _open(shared / "undertow") is None
    assert f"{shared} is writable by others (mode 0777)" in C.refusals()[-1]
    assert not (shared / "undertow").exists()
    os.chmod(shared, 0o1777)  # like /tmp
    d = _open(shared / "undertow")
    if ROOT or os.stat(shared).st_uid == 0:
        assert d is not None  # root-owned and sticky: others cannot rename our entries
        d.close()
    else:
        assert d is None  # sticky but not root's: its owner could


@needs_root
def test_directories_of_someone_else_are_refused(tmp_path, base):
    # the cache dir itself
    base.mkdir(parents=True)
    os.chown(base, OTHER, OTHER)
    assert _open(base) is None
    assert C.refusals()[-1].startswith(f"not using the cache {base}: {base} is owned by uid {OTHER}, not root")
    assert os.listdir(base) == []
    # an ancestor (HOME of a user, as with sudo -E)
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, OTHER, OTHER)
    assert _open(home / ".cache" / "undertow") is None
    assert f"{home} is owned by uid {OTHER}, not root" in C.refusals()[-1]
    assert os.listdir(home) == []
    # a subdirectory
    os.chown(base, 0, 0)
    with _open(base) as d:
        (base / "s").mkdir(mode=0o700)
        os.chown(base / "s", OTHER, OTHER)
        assert d.subdir("s") is None
        assert "s: it is owned by uid 65534" in C.refusals()[-1]


def test_symlinks_on_the_way(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    os.symlink(real, link)
    d = _open(link / "undertow")  # a link of ours (or root's): followed, the target checked
    assert d is not None
    d.close()
    assert (real / "undertow").is_dir()
    os.symlink("real/undertow", tmp_path / "rel")
    d = _open(tmp_path / "rel")  # relative target, and a link as the cache dir itself
    assert d is not None and d.write("x", b"1") and (real / "undertow" / "x").exists()
    d.close()
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    assert _open(loop / "undertow") is None
    assert f"{loop}: too many symlinks" in C.refusals()[-1]
    (tmp_path / "file").write_text("")
    assert _open(tmp_path / "file" / "undertow") is None
    assert f"{tmp_path}/file is not a directory" in C.refusals()[-1]


@needs_root
def test_a_symlink_of_someone_else_on_the_way_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    os.symlink(real, link)
    os.lchown(link, OTHER, OTHER)
    assert _open(link / "undertow") is None
    assert f"{link} is a symlink owned by uid {OTHER}, not root" in C.refusals()[-1]
    assert not (real / "undertow").exists()


def test_subdir_symlink_is_refused_and_remove_never_follows(base, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    with _open(base) as d:
        os.symlink(victim, base / "s")
        assert d.subdir("s") is None
        assert f"{base}/s: it is a symlink" in C.refusals()[-1]
        assert d.remove_tree("s", keep=lambda n: False)  # unlinks the link, not the files
        assert not os.path.lexists(base / "s") and (victim / "keep").read_text() == "precious"
        os.symlink(victim / "keep", base / "f")
        assert d.remove("f") and (victim / "keep").exists()
        sub = d.subdir("t")
        sub.write("a", b"1")
        sub.write("b", b"2")
        os.symlink(victim, base / "t" / "c")
        sub.close()
        assert not d.remove_tree("t", keep=lambda n: n == "b")  # "b" is kept, so the dir stays
        assert sorted(os.listdir(base / "t")) == ["b"] and (victim / "keep").exists()
        assert d.remove_tree("t", keep=lambda n: False) and not (base / "t").exists()


def test_writes_are_atomic_and_leave_nothing_on_failure(base, monkeypatch):
    with _open(base) as d:
        d.write("x", b"old")

        def fail(fd):
            raise OSError(errno.EIO, "I/O error")

        monkeypatch.setattr(os, "fsync", fail)
        assert not d.write("x", b"new")
        monkeypatch.undo()
        assert d.read("x") == b"old" and sorted(d.entries(hidden=True)) == ["CACHEDIR.TAG", "x"]
        (base / "dir").mkdir()
        assert not d.write("dir", b"x")  # rename(2) of a file over a directory fails
        assert sorted(d.entries(hidden=True)) == ["CACHEDIR.TAG", "dir", "x"]


def test_the_reporter_hears_each_reason_once(tmp_path):
    shared = tmp_path / "ww"
    shared.mkdir()
    os.chmod(shared, 0o777)
    heard = []
    C.set_reporter(heard.append)
    try:
        for _ in range(3):
            assert _open(shared) is None
    finally:
        C.set_reporter(None)
    assert len(heard) == 1 and heard[0].startswith(f"not using the cache {shared}: ")


def test_boot_id_is_a_plain_word(tmp_path):
    d = tmp_path / "proc" / "sys" / "kernel" / "random"
    d.mkdir(parents=True)
    roots = Roots(proc=str(tmp_path / "proc"))
    for text, want in (("1d697138-a0f3-43f0-9a5d-a6b3e97a6f01\n", "1d697138-a0f3-43f0-9a5d-a6b3e97a6f01"),
                       ("../../etc\n", "unknown-boot"), ("a/b", "unknown-boot"), ("", "unknown-boot"),
                       ("x" * 65, "unknown-boot")):
        (d / "boot_id").write_text(text)
        assert C.boot_id(roots) == want


def test_a_directory_undertow_did_not_make_is_not_used(tmp_path):
    """Root may be handed any directory it owns (sudo -E, UNDERTOW_CACHE_DIR=/etc): one that
    holds other files and no CACHEDIR.TAG receives nothing; an empty one, or one named
    undertow (the default), is tagged and used."""
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o700)
    (etc / "passwd").write_text("root:x:0:0\n")
    heard = []
    C.set_reporter(heard.append)
    try:
        assert _open(etc) is None
    finally:
        C.set_reporter(None)
    assert sorted(os.listdir(etc)) == ["passwd"] and "CACHEDIR.TAG" in heard[0]
    old = tmp_path / "undertow"
    old.mkdir(mode=0o700)
    (old / "features-0.1.0-0.json").write_text("{}")
    d = _open(old)
    assert d is not None
    d.close()
    assert (old / "CACHEDIR.TAG").exists()
    (etc / "CACHEDIR.TAG").write_bytes(C.CACHEDIR_TAG)
    d = _open(etc)
    assert d is not None
    d.close()
