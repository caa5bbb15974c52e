import io
import json

from hypothesis import given, strategies as st

from undertow.events import Event, Lost, Stats
from undertow.output.jsonl import JsonWriter
from undertow.output.text import TextWriter, escape, summary
from undertow.output.values import bswap, format_value


def ev(**fields):
    return Event(5 * 10**9, 0, 100, 101, "comm", "probe", fields)


def test_escape_terminal_sequences():
    assert escape("a\x1b]0;x\x07b") == "a\\x1b]0;x\\x07b"
    assert escape(b"\xff\x00ok") == "\\xff\\x00ok"
    assert escape("\u202etxt") == "\\u202etxt"
    assert escape("back\\slash\nnl") == "back\\\\slash\\nnl"


@given(st.text())
def test_escape_never_emits_controls(s):
    out = escape(s)
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0 for c in out)


def test_formats():
    assert format_value(0x0100007F, "ipv4") == "127.0.0.1"
    assert format_value(0x5000, "b16") == 80
    assert format_value(0x5000, "B16") == "0x50"
    assert format_value(255, "x") == "0xff"
    assert format_value(-1, "x") == "0xffffffffffffffff"
    assert bswap(0x11223344, 4) == 0x44332211


def test_text_line_and_lost_and_summary():
    buf = io.StringIO()
    w = TextWriter(buf)
    e = ev(comm="x\x1b[31m", port=0x5000)
    e.formats["port"] = "b16"
    w.event(e)
    w.lost(Lost(7, "overrun", cpu=1))
    text = buf.getvalue()
    assert "\x1b" not in text
    assert 'comm="x\\x1b[31m" port=80' in text
    assert "# LOST 7 events on cpu 1 (overrun)" in text
    s = Stats()
    s.count_event("probe", 3)
    s.count_lost("overrun", 7)
    assert "3 events, 7 lost" in summary(s)


@given(st.dictionaries(st.text(min_size=1, max_size=5),
                       st.one_of(st.integers(-2**63, 2**64), st.binary(), st.text(),
                                 st.text().map(lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")))))
def test_json_always_valid_utf8(fields):
    buf = io.StringIO()
    JsonWriter(buf).event(Event(1, 0, 1, 1, "c", "p", fields))
    line = buf.getvalue()
    line.encode("utf-8")  # strict: no lone surrogates
    assert json.loads(line)["probe"] == "p"
