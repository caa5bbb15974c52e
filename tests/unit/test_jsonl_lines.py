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
