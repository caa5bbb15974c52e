"""The per-boot cache of compiled programs (undertow.backends.bpf.progcache), without BPF."""

import os
import types

import pytest

from undertow.backends.bpf import progcache as P
from undertow.kernel.cache import boot_id
from undertow.kernel.roots import Roots


@pytest.fixture
def roots(tmp_path):
    # the live /proc: this boot's id; a directory undertow made (tagged), so tests may
    # put things in it before the first open (kernel/cache.py: _is_ours)
    d = tmp_path / "cache"
    d.mkdir(mode=0o700)
    from undertow.kernel.cache import CACHEDIR_TAG

    (d / "CACHEDIR.TAG").write_bytes(CACHEDIR_TAG)
    os.chmod(d / "CACHEDIR.TAG", 0o600)
    return Roots(cache_dir=str(d))


def _key(roots, text="BEGIN { exit(); }", origin="-e", params=(), unsafe=False):
    return P.program_key(roots, text, origin, list(params), unsafe)


class Compiled:
    """Stands in for a CompiledProgram (picklable: a module-level class)."""

    def __init__(self, n):
        self.n = n


def test_the_key_follows_the_script_and_what_it_was_compiled_with(roots, monkeypatch):
    k = _key(roots)
    assert k.text == _key(roots).text and k.name == _key(roots).name
    for other in (_key(roots, text="END { }"), _key(roots, origin="x.bt"), _key(roots, params=["1"]),
                  _key(roots, unsafe=True)):
        assert other.text != k.text and other.name != k.name
    monkeypatch.setenv("UNDERTOW_BPF_OUTPUT", "perfbuf")
    assert _key(roots).text != k.text and _key(roots).name == k.name  # same entry, other contents
    monkeypatch.delenv("UNDERTOW_BPF_OUTPUT")
    stamp = P._source_stamp()
    assert any(path.endswith("compiler.py") for path, _s, _m in stamp)
    assert not any("/commands/" in path or "/tools/" in path for path, _s, _m in stamp)
    monkeypatch.setattr(P, "_source_stamp", lambda: stamp[:-1])  # an edited or removed source file
    assert _key(roots).text != k.text
    assert boot_id(roots) in k.text


def test_no_key_when_caching_is_off_or_the_kernel_is_not_live(tmp_path):
    assert _key(Roots(cache_dir="")) is None
    assert _key(Roots(cache_dir=str(tmp_path), live=False)) is None


def test_store_then_load_and_what_makes_a_miss(roots):
    k = _key(roots)
    assert P.load(roots, k) is None
    assert P.store(roots, k, ["undertow run: warning: w"], Compiled(7))
    warnings, got = P.load(roots, k)
    assert warnings == ["undertow run: warning: w"] and got.n == 7
    same_name = P.Key("another undertow or kernel", "x", k.base, k.boot)
    same_name.name = k.name
    assert P.load(roots, same_name) is None  # the whole key is compared, not only the name
    path = os.path.join(k.dir, k.name)
    with open(path, "wb") as f:
        f.write(b"\x80\x05garbage")
    assert P.load(roots, k) is None  # damaged: a miss, never an error


def test_what_does_not_pickle_is_not_stored(roots):
    k = _key(roots)
    assert not P.store(roots, k, [], Compiled(lambda: 0))
    assert P.load(roots, k) is None
    assert not os.path.exists(os.path.join(k.dir, k.name))


def test_other_boots_go_and_at_most_max_entries_stay(roots, monkeypatch):
    old = os.path.join(roots.cache_dir, "programs", "an-old-boot")
    os.makedirs(old)
    open(os.path.join(old, "0123456789abcdef"), "w").close()
    open(os.path.join(old, ".0123456789abcdef.77.00ff"), "w").close()  # a killed run's temporary file
    kept = os.path.join(roots.cache_dir, "programs", "another-boot")
    os.makedirs(kept)
    open(os.path.join(kept, "not-an-entry"), "w").close()  # not a name the cache makes: left alone
    monkeypatch.setattr(P, "MAX_ENTRIES", 3)
    keys = [_key(roots, text=f"BEGIN {{ printf(\"{i}\\n\"); }}") for i in range(5)]
    for i, k in enumerate(keys):
        assert P.store(roots, k, [], Compiled(i))
        os.utime(os.path.join(k.dir, k.name), ns=(i * 10**9, i * 10**9))
    assert not os.path.exists(old)
    assert os.listdir(kept) == ["not-an-entry"]
    assert sorted(os.listdir(keys[0].dir)) == sorted(k.name for k in keys[2:])
    assert P.load(roots, keys[4])[1].n == 4 and P.load(roots, keys[0]) is None


def test_not_cacheable_reasons():
    def prog(**settings):
        return types.SimpleNamespace(setting=lambda k, d=None: settings.get(k, d))

    def compiled(*kinds):
        return types.SimpleNamespace(probes=[types.SimpleNamespace(ap=types.SimpleNamespace(kind=k)) for k in kinds])

    ok = compiled("tracepoint", "kprobe", "begin", "profile")
    assert P.not_cacheable(prog(), ok, pid=None, cmd=None) is None
    assert "-p/-c" in P.not_cacheable(prog(), ok, pid=12, cmd=None)
    assert "-p/-c" in P.not_cacheable(prog(), ok, pid=None, cmd="ls")
    assert "cgroupid()" in P.not_cacheable(prog(volatile="cgroupid()"), ok, pid=None, cmd=None)
    assert "uprobe" in P.not_cacheable(prog(), compiled("tracepoint", "uprobe"), pid=None, cmd=None)
    assert "usdt" in P.not_cacheable(prog(), compiled("usdt"), pid=None, cmd=None)


def test_entries_others_could_write_are_not_read(roots):
    """Unpickling runs code (and undertow runs as root): a writable-by-others entry or
    directory, or a symlinked entry, is a miss."""
    k = _key(roots)
    assert P.store(roots, k, [], Compiled(1))
    d = k.dir
    path = os.path.join(d, k.name)
    os.chmod(path, 0o666)
    assert P.load(roots, k) is None
    os.chmod(path, 0o600)
    assert P.load(roots, k)[1].n == 1
    os.chmod(d, 0o777)
    assert P.load(roots, k) is None
    os.chmod(d, 0o700)
    os.rename(path, path + ".real")
    os.symlink(path + ".real", path)
    assert P.load(roots, k) is None


# -- issue 14: the cache directory is not trusted ------------------------------------------

def _victim(tmp_path, n=3):
    """A directory of someone's files (named like cache entries too) an attacker points at."""
    v = tmp_path / "victim"
    v.mkdir()
    for i in range(n):
        (v / f"{i:016x}").write_text(f"precious {i}")
    (v / "notes.txt").write_text("precious")
    return v


def _intact(v, n=3):
    assert sorted(os.listdir(v)) == sorted([f"{i:016x}" for i in range(n)] + ["notes.txt"])
    assert all((v / f"{i:016x}").read_text() == f"precious {i}" for i in range(n))


def test_a_symlinked_directory_of_another_boot_is_unlinked_not_followed(roots, tmp_path):
    """programs/<x> -> a victim directory: a store removed every file of the target (3/3)."""
    v = _victim(tmp_path)
    os.makedirs(os.path.join(roots.cache_dir, "programs"))
    os.symlink(v, os.path.join(roots.cache_dir, "programs", "an-old-boot"))
    k = _key(roots)
    assert P.store(roots, k, [], Compiled(1))
    _intact(v)
    assert os.listdir(os.path.join(roots.cache_dir, "programs")) == [k.boot]  # the link itself went


def test_a_symlinked_directory_of_this_boot_is_refused(roots, tmp_path, monkeypatch):
    """programs/<boot> -> a victim directory: a store trimmed files there and wrote a root
    pickle into it; now nothing is read, trimmed or written through the link."""
    from undertow.kernel import cache as C

    v = _victim(tmp_path, n=5)
    monkeypatch.setattr(P, "MAX_ENTRIES", 2)
    k = _key(roots)
    os.makedirs(os.path.join(roots.cache_dir, "programs"))
    os.symlink(v, k.dir)
    assert not P.store(roots, k, [], Compiled(1))
    assert P.load(roots, k) is None
    _intact(v, n=5)
    assert f"not using the cache {k.dir}: it is a symlink" in C.refusals()


def test_a_symlink_planted_at_the_temporary_name_is_not_written_through(roots, tmp_path, monkeypatch):
    """`.<name>.<pid>` -> a root-owned file: a store overwrote it with pickle bytes. The
    temporary name is now random and created O_EXCL|O_NOFOLLOW: even a planted link at the
    very name chosen only makes the store pick another."""
    victim = tmp_path / "victim-file"
    victim.write_text("precious")
    k = _key(roots)
    d = os.path.join(roots.cache_dir, "programs", k.boot)
    os.makedirs(d)
    os.symlink(victim, os.path.join(d, f".{k.name}.{os.getpid()}"))
    draws = iter([b"\x01" * 6, b"\x01" * 6, b"\x02" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(draws))
    os.symlink(victim, os.path.join(d, f".{k.name}.{os.getpid()}.{'01' * 6}"))
    assert P.store(roots, k, [], Compiled(5))
    assert victim.read_text() == "precious"
    monkeypatch.undo()
    assert P.load(roots, k)[1].n == 5
    os.symlink(victim, os.path.join(d, "0123456789abcdef"))  # a link in place of an entry is not read
    k2 = P.Key(k.text, "", k.base, k.boot)
    k2.name = "0123456789abcdef"
    assert P.load(roots, k2) is None


def test_a_world_writable_cache_dir_is_not_used(tmp_path):
    """UNDERTOW_CACHE_DIR naming a world-writable directory: root created programs/ in it."""
    from undertow.kernel import cache as C

    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    roots = Roots(cache_dir=str(d))
    assert _key(roots) is None
    assert os.listdir(d) == []
    assert any(str(d) in r and "writable by others" in r for r in C.refusals())


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory someone else's needs root (chown)")
def test_a_cache_dir_of_another_user_is_not_used(tmp_path):
    """A cache dir the user controls (UNDERTOW_CACHE_DIR, or HOME kept by `sudo -E`) with a
    symlinked programs/<x>: root's run deleted the files of the target; now no cache at all."""
    from undertow.kernel import cache as C

    v = _victim(tmp_path)
    home = tmp_path / "home"
    (home / "programs").mkdir(parents=True)
    os.symlink(v, home / "programs" / "an-old-boot")
    for p in (home, home / "programs"):
        os.chown(p, 65534, 65534)
    os.lchown(home / "programs" / "an-old-boot", 65534, 65534)
    roots = Roots(cache_dir=str(home))
    assert _key(roots) is None
    _intact(v)
    assert os.listdir(home / "programs") == ["an-old-boot"]
    assert f"not using the cache {home}: {home} is owned by uid 65534, not root" in " ".join(C.refusals())
