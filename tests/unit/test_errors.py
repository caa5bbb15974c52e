from undertow.errors import ParseError, Span, UnknownMemberError, did_you_mean, render_caret


def test_caret_under_span():
    src = "p tcp_connect daddr=sk->__sk_common.skc_dadr"
    start = src.index("skc_dadr")
    text = render_caret(src, Span(start, start + 8), "error: no member skc_dadr", ["did you mean skc_daddr?"], "<cmdline>")
    lines = text.splitlines()
    assert lines[0] == f"<cmdline>:1:{start + 1}: error: no member skc_dadr"
    assert lines[1] == "  " + src
    assert lines[2] == "  " + " " * start + "^~~~~~~~"
    assert lines[3] == "hint: did you mean skc_daddr?"


def test_caret_second_line_and_escapes():
    src = "e sched/x\np \x1b[31mfoo bar"
    start = src.index("bar")
    out = ParseError("unexpected", source=src, span=Span(start, start + 3), origin="f.txt").render()
    lines = out.splitlines()
    assert lines[0].startswith("f.txt:2:")
    assert "\x1b" not in out and "\\x1b" in lines[1]
    # caret column follows the escaped rendering
    assert lines[2].index("^") == lines[1].index("bar")


def test_builtin_bases_and_hints():
    e = UnknownMemberError("struct sock has no member skc_dadr", hints=["did you mean skc_daddr?"])
    assert isinstance(e, LookupError)
    assert e.render() == "error: struct sock has no member skc_dadr\nhint: did you mean skc_daddr?"


def test_did_you_mean():
    assert did_you_mean("skc_dadr", ["skc_daddr", "skc_rcv_saddr", "skc_family"]) == "did you mean skc_daddr?"
    assert did_you_mean("zzzz", ["abc"]) == ""
