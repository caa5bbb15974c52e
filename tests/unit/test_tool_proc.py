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
