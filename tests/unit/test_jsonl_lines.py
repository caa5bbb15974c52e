"""JSON lines of the tools: the fast encoder path gives what clean() + json.dumps gave."""

from __future__ import annotations

import json

import pytest

from undertow.output.jsonl import clean, dumps, encoded, merged_line


@pytest.mark.parametrize("value", [
    {"comm": "sshd", "pid": 1, "argv": ["a", "b"], "x": None},
    {"comm": "bad\udcff\udc80name", "nested": {"k\udcfe": ["v\ud800"]}},
    {"payload": b"\x00\xff", "list": [b"ab"]},
    {"comm": "snowman \u2603"},
    {},
])
def test_dumps_is_clean_then_dumps(value):
    assert dumps(value) == json.dumps(clean(value), ensure_ascii=False)
    dumps(value).encode("utf-8")  # strict UTF-8, always


def test_merged_line_event_wins_over_proc():
    info = encoded({"comm": "from-proc", "argv": ["x\udcff"], "cwd": "/"})
    line = merged_line({"pid": 7, "comm": "kernel-comm", "argv": None}, info)
    assert json.loads(line) == {"pid": 7, "comm": "kernel-comm", "argv": ["x\\xff"], "cwd": "/"}
    assert json.loads(merged_line({}, info)) == {"comm": "from-proc", "argv": ["x\\xff"], "cwd": "/"}
    assert merged_line({"pid": 1}, {}) == '{"pid": 1}'


def test_merged_line_memo_gives_the_same_line():
    """The memo (the shared keys and the joined rest, per set of event keys) changes no byte."""
    info = encoded({"pid": 7, "comm": "from-proc", "argv": ["x"], "netns": 5, "cwd": None})
    memo: dict = {}
    events = [{"pid": 7, "comm": "kernel-comm", "netns": 9}, {"pid": 7, "comm": "k2", "netns": None},
              {"pid": 7, "comm": None, "netns": 9}, {"pid": 7, "comm": "k3", "netns": 9, "more": "é"}, {},
              {"ts": 1}, {"pid": 7, "comm": "kernel-comm", "netns": 9}]
    for _ in range(2):
        for ev in events:
            before = dict(ev)
            assert merged_line(ev, info, memo) == merged_line(dict(ev), info)
            assert ev == before  # the event is left as it is


def test_encoded_as_dumps_of_each_pair():
    """encoded()'s shortcuts (keys once; None, bools, ints directly) give dumps' text."""
    import enum

    class E(enum.IntEnum):
        A = 3

    d = {"pid": 7, "neg": -12, "big": 2 ** 70, "none": None, "t": True, "f": False, "e": E.A, "fl": 0.5,
         "s": "caf\u00e9 \udcff", "argv": ["x", None], "parents": [{"pid": 1, "comm": "init"}], "b": b"\x00",
         "k\u00e9y \"q\"": 1}
    for _ in range(2):  # the second time through the key cache
        got = encoded(d)
        assert list(got) == list(d)
        for k, v in d.items():
            assert got[k] == dumps(k) + ": " + dumps(v)
