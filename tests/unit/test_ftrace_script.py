"""`undertow trace -o`: the exported POSIX script is valid sh and quotes every user word."""

import shutil
import subprocess

import pytest

from undertow.backends.ftrace.compile import EventSpec, OutField
from undertow.backends.ftrace.plan import FtracePlan
from undertow.backends.ftrace.script import render_script


def plan():
    evil = "p:undertow_1_0/e0 f x='$(touch /tmp/pwned)' y=`id`;rm"
    return FtracePlan(specs=[
        EventSpec("undertow_1_0", "e0", "kprobe", "p f", evil, "kprobe_events", filter="comm==\"a'b\""),
        EventSpec("sched", "sched_process_exec", "tracepoint", "e", None, None, filter=None),
    ], instance="undertow_1_0", stack=True)


def test_script_is_valid_sh_and_quoted():
    text = render_script(plan())
    if shutil.which("sh"):
        assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    # the hostile definition appears only inside single quotes
    assert "'f x='\"'\"'$(touch /tmp/pwned)'\"'\"' y=`id`;rm'" in text
    assert "trap 'cleanup; exit 0' INT TERM HUP" in text
    assert 'printf \'%s\\n\' "-:$G/e0"' in text          # probe removed on exit
    assert "events/sched/sched_process_exec/enable" in text
    assert "stacktrace" in text


def test_cli_writes_script(tmp_path):
    from undertow import cli

    out = tmp_path / "s.sh"
    try:
        rc = cli.main(["trace", "-o", str(out), "e sched/sched_process_exec"])
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no tracefs formats here: {e}")
    if rc != 0:
        pytest.skip("tracefs not readable (not root)")
    text = out.read_text()
    assert text.startswith("#!/bin/sh") and "sched_process_exec" in text
