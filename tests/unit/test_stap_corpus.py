"""Debian's systemtap-doc examples through the SystemTap front end (issue 19): every script
parses or is refused with a located error, and elaborating never raises anything but an
undertow error (a fake kernel here; docs/stap.md has the counts on a real one)."""

import os

import pytest

from undertow.errors import SourceError, UndertowError
from undertow.lang.stap import Options, elaborate, parse_script

from test_stap import FakeEnv

ROOT = "/usr/share/systemtap/examples"

pytestmark = pytest.mark.skipif(not os.path.isdir(ROOT), reason="systemtap-doc is not installed (.ci/run installs it)")


def scripts():
    return sorted(os.path.join(d, f) for d, _s, fs in os.walk(ROOT) for f in fs if f.endswith(".stp"))


def test_examples_parse_or_fail_with_a_place_and_elaborate_without_crashing():
    parsed = 0
    for path in scripts():
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        params = ["1"] * 4
        try:
            script = parse_script(text, path, params=params)
        except SourceError as e:
            assert e.span is not None, (path, e.message)
            continue
        parsed += 1
        try:
            elaborate(script, FakeEnv(kprobes=True), Options(params))
        except UndertowError:
            pass
    assert parsed >= 170, parsed  # 174 of 201 on 2026-12-07 (docs/stap.md)
