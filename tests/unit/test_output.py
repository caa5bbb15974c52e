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
    assert "# 2 events shown of 3 read, 7 lost" in summary(s, shown=2)  # --count cut a read short


@given(st.dictionaries(st.text(min_size=1, max_size=5),
                       st.one_of(st.integers(-2**63, 2**64), st.binary(), st.text(),
                                 st.text().map(lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")))))
def test_json_always_valid_utf8(fields):
    buf = io.StringIO()
    JsonWriter(buf).event(Event(1, 0, 1, 1, "c", "p", fields))
    line = buf.getvalue()
    line.encode("utf-8")  # strict: no lone surrogates
    assert json.loads(line)["probe"] == "p"


def test_json_summary_says_shown_only_when_count_cut_a_read():
    s = Stats()
    s.count_event("p", 5)
    for shown, want in ((None, {"events": {"p": 5}, "lost": {}}), (2, {"events": {"p": 5}, "lost": {}, "shown": 2})):
        buf = io.StringIO()
        JsonWriter(buf).summary(s, shown)
        assert json.loads(buf.getvalue()) == {"summary": want}


def test_compiled_lines_print_what_the_generic_path_prints():
    """TextWriter formats a probe's events with a generated f-string; every value kind and
    display format must come out exactly as the field-by-field path prints it."""
    import io
    import random

    from undertow.events import Event
    from undertow.output.text import TextWriter

    rnd = random.Random(7)
    fmts = [None, "u", "s", "s32", "str", "ustr", "x", "ipv4", "b16", "B32", "sym", "enum"]
    values = [0, 1, -5, 2 ** 31, 2 ** 32 - 100, 2 ** 63 + 3, 2 ** 64 - 1, True, None, "a\x1bb", "plain",
              b"\x00\xff", [1, 2], 3.5, "0x10"]
    for trial in range(300):
        names = [f"f{i}" for i in range(rnd.randint(0, 5))]
        formats = {n: rnd.choice(fmts) for n in names if rnd.random() < 0.8}
        formats = {k: v for k, v in formats.items() if v is not None}
        evs = []
        for j in range(3):
            fields = {n: rnd.choice(values) for n in names}
            errors = {names[0]: "fault"} if names and rnd.random() < 0.1 else {}
            e = Event(10 ** 9 + j * 1234567, j, 100 + j, 100 + j, rnd.choice(["sh", "evil\x1b[2J", "x" * 20]),
                      f"grp:ev{trial % 4}", fields, formats=formats)
            e.errors = errors
            evs.append(e)
        fast, slow = io.StringIO(), io.StringIO()
        wf, ws = TextWriter(fast, t0=0), TextWriter(slow, t0=0)
        ws._header_done = wf._header_done = True
        for e in evs:
            wf.event(e)
            ws._generic(e)
        assert fast.getvalue() == slow.getvalue(), (names, formats)
        assert all(v is not None for v in wf._lines.values())  # the generated formatter ran


def test_strftime_ns_is_wall_clock_with_microseconds():
    import time

    from undertow.output.bt import strftime_ns

    now = time.monotonic_ns()
    text = strftime_ns("%Y-%m-%d %H:%M:%S.%f", now)
    shown = time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S")) + int(text[20:]) / 1e6
    assert abs(shown - time.time()) < 2 and len(text[20:]) == 6
    assert strftime_ns("%H%%", now).endswith("%")


def test_strftime_values_of_one_run_are_as_far_apart_as_their_nsecs():
    """bpftrace's call.strftime_microsecond_extension: 1%f of 1000123000 minus 1%f of 0 is
    123 (one offset to the wall clock per run, as bpftrace's boot time)."""
    from undertow.output.bt import strftime_ns

    for _ in range(200):
        a, b = int(strftime_ns("1%f", 1_000_123_000)), int(strftime_ns("1%f", 0))
        assert a - b in (123, 123 - 1_000_000), (a, b)   # the second may roll past a second
        a, b = int(strftime_ns("1%f", 1_000_000_123_000)), int(strftime_ns("1%f", 0))
        assert a - b in (123, 123 - 1_000_000), (a, b)
