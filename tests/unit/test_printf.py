"""undertow.lang.printf finds the conversions the regular expressions it replaced found."""

import random
import re

import pytest

from undertow.lang.printf import conversions

# what lang/bt/parser.py (star widths, empty conversion reported) and output/bt.py used
PARSER = re.compile(r"%(?:%|(?P<flags>[-+ #0]*)(?P<width>\d+|\*)?(?:\.(?P<prec>\d+|\*))?"
                    r"(?P<len>hh|h|ll|l|z|j|t|L)?(?P<conv>[A-Za-z]?))")
OUTPUT = re.compile(r"%(?:%|(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?"
                    r"(?P<len>hh|h|ll|l|z|j|t|L)?(?P<conv>[A-Za-z]))")


def _by_regex(pattern, fmt):
    out = []
    for m in pattern.finditer(fmt):
        if m.group(0) == "%%":
            out.append((m.start(), m.end(), "", None, None, "%"))
        else:
            out.append((m.start(), m.end(), m.group("flags"), m.group("width"), m.group("prec"), m.group("conv")))
    return out


@pytest.mark.parametrize("pattern,kw", [(PARSER, {"star": True, "required": False}), (OUTPUT, {})])
def test_same_conversions_as_the_patterns(pattern, kw):
    alphabet = list("%%%-+ #0123.*dsxlhzjtLuq\\n é") + ["ll", "hh", "%%"]
    rnd = random.Random(3)
    for _ in range(20000):
        fmt = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))
        assert list(conversions(fmt, **kw)) == _by_regex(pattern, fmt), fmt


def test_examples():
    assert list(conversions("%-5d|%%|%08.3lx %s")) == [
        (0, 4, "-", "5", None, "d"), (5, 7, "", None, None, "%"), (8, 15, "0", "8", "3", "x"), (16, 18, "", None, None, "s")]
    assert list(conversions("100% done")) == [(3, 6, " ", None, None, "d")]  # "% d": flag " ", as C reads it
    assert list(conversions("50%.")) == []
    assert list(conversions("%*d %.*s", star=True)) == [(0, 3, "", "*", None, "d"), (4, 8, "", None, "*", "s")]
    assert list(conversions("%ll", required=False)) == [(0, 3, "", None, None, "")]
