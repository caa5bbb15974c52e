import os

from undertow.tools.proc import proc_info

HERE = os.path.dirname(os.path.abspath(__file__))
PROC = os.path.join(HERE, "..", "fixtures", "proc")


def test_proc_info_from_fixture():
    info = proc_info(4242, PROC)
    assert (info.ppid, info.uid, info.argv) == (1, 1000, ["evil", "--flag"])
    assert info.container == "0123456789ab" and "docker-" in info.cgroup
    assert info.parents == [{"pid": 1, "comm": "init"}] and not info.gone


def test_gone_process_is_not_an_error():
    info = proc_info(999999, PROC)
    assert info.gone and info.argv is None


def test_exiting_argv_is_unknown_not_empty(tmp_path):
    """An exiting process (a zombie, or one whose mm is gone) shows an empty cmdline: its argv is
    not known from /proc; a kernel thread's empty cmdline is an empty argv."""
    for pid, extra, want in ((7, "State:\tZ (zombie)\nPPid:\t1\n", None), (9, "State:\tR\nPPid:\t1\n", None),
                             (8, "State:\tS (sleeping)\nPPid:\t2\nKthread:\t1\n", [])):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "status").write_text(f"Name:\tx\n{extra}Uid:\t0\t0\t0\t0\n")
        (d / "cmdline").write_bytes(b"")
        assert proc_info(pid, str(tmp_path)).argv == want
    from undertow.tools.proc import namespaces

    assert namespaces(7, str(tmp_path)) == (None, None)
