"""The per-boot cache of compiled programs (undertow.backends.bpf.progcache), without BPF."""

import os
import types

import pytest

from undertow.backends.bpf import progcache as P
from undertow.kernel.cache import boot_id
from undertow.kernel.roots import Roots


@pytest.fixture
def roots(tmp_path):
    return Roots(cache_dir=str(tmp_path / "cache"))  # the live /proc: this boot's id


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
    same_name = P.Key("another undertow or kernel", "x", k.dir)
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
    open(os.path.join(old, "0123"), "w").close()
    monkeypatch.setattr(P, "MAX_ENTRIES", 3)
    keys = [_key(roots, text=f"BEGIN {{ printf(\"{i}\\n\"); }}") for i in range(5)]
    for i, k in enumerate(keys):
        assert P.store(roots, k, [], Compiled(i))
        os.utime(os.path.join(k.dir, k.name), ns=(i * 10**9, i * 10**9))
    assert not os.path.exists(old)
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
