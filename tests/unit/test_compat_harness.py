"""tests/compat/bpftrace_suite.py's judgement (issue 16), without running the suite."""

import importlib.util
import json
import os

HERE = os.path.dirname(__file__)
spec = importlib.util.spec_from_file_location(
    "bpftrace_suite", os.path.join(HERE, "..", "compat", "bpftrace_suite.py"))
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)


def _run(cases, kernel="6.18"):
    return {"label": "host", "kernel": kernel, "date": "2026-12-07", "tools": ["undertow"], "cases": cases}


def _row(u, b="PASS", traceback=False):
    return {"undertow": {"status": u, "traceback": traceback, "reason": ""}, "bpftrace": {"status": b}}


def test_a_clean_run_passes_and_reports_the_share(capsys):
    out = _run({"a.x": _row("PASS"), "a.y": _row("FAIL"), "a.z": _row("FAIL", "FAIL")})
    assert suite.check(out, None) == 0
    assert "undertow passes 1 of the 2 cases bpftrace passes (50.0%)" in capsys.readouterr().out


def test_tracebacks_hangs_and_regressions_fail(capsys):
    expected = _run({"a.x": _row("PASS"), "a.y": _row("PASS"), "a.z": _row("PASS")})
    out = _run({"a.x": _row("FAIL"), "a.y": _row("HANG"), "a.z": _row("PASS", traceback=True)})
    assert suite.check(out, expected) == 1
    text = capsys.readouterr().out
    assert "a.x: passed before, FAIL now" in text
    assert "a.y: a hang" in text
    assert "a.z: a Python traceback" in text


def test_a_skip_is_a_regression_on_the_same_kernel_only():
    expected = _run({"a.x": _row("PASS")})
    assert suite.check(_run({"a.x": _row("SKIP")}), expected) == 1
    assert suite.check(_run({"a.x": _row("SKIP")}, kernel="6.12"), expected) == 0


def test_expected_files_keep_statuses_not_outputs(tmp_path):
    out = _run({"a.x": {"undertow": {"status": "PASS", "reason": "", "output": "x" * 4000, "seconds": 1.0}}})
    path = tmp_path / "e.json"
    suite._write_expected(out, str(path))
    data = json.loads(path.read_text())
    assert data["cases"] == {"a.x": {"undertow": {"status": "PASS", "reason": ""}}}
    assert data["kernel"] == "6.18"


def test_on_another_kernel_a_failure_counts_where_bpftrace_passes():
    expected = _run({"a.x": _row("PASS"), "a.y": _row("PASS")})
    out = _run({"a.x": _row("FAIL", "FAIL"), "a.y": _row("FAIL", "PASS")}, kernel="6.12")
    assert suite.check(out, expected) == 1
    out = _run({"a.x": _row("FAIL", "FAIL"), "a.y": _row("PASS")}, kernel="6.12")
    assert suite.check(out, expected) == 0
