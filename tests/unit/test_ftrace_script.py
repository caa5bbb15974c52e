"""`undertow trace -o`: the exported POSIX script is valid sh and quotes every user word."""

import shlex
import shutil
import subprocess

import pytest

from undertow.backends.ftrace.compile import EventSpec, OutField
from undertow.backends.ftrace.plan import FtracePlan
from undertow.backends.ftrace.script import render_script


def plan(marker="/tmp/pwned"):
    evil = f"p:undertow_1_0/e0 f x='$(touch {marker})' y=`touch {marker}`;rm"
    return FtracePlan(specs=[
        EventSpec("undertow_1_0", "e0", "kprobe", "p f", evil, "kprobe_events", filter="comm==\"a'b\""),
        EventSpec("sched", "sched_process_exec", "tracepoint", "e", None, None, filter=None),
        EventSpec(f"g$(touch {marker})", f"ev`touch {marker}`'\"", "tracepoint", "e", None, None,
                  filter="x=='$(touch " + marker + ")'"),
    ], instance="undertow_1_0", stack=True)


def test_script_is_valid_sh_and_quoted():
    text = render_script(plan())
    if shutil.which("sh"):
        assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    # the hostile definition appears only inside single quotes
    assert "'e0 f x='\"'\"'$(touch /tmp/pwned)'\"'\"' y=`touch /tmp/pwned`;rm'" in text
    assert "trap 'cleanup; exit 0' INT TERM HUP" in text
    assert 'printf \'%s\\n\' "-:$G/"e0' in text          # probe removed on exit
    assert '"$I/events/"sched/sched_process_exec/enable' in text
    assert "stacktrace" in text


def test_script_writes_exactly_the_hostile_words(tmp_path):
    """Run the script on a fake tracefs: every hostile word reaches its file byte for byte
    and nothing in it is run by the shell."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    marker = tmp_path / "pwned"
    p = plan(str(marker))
    tfs = tmp_path / "tracing"
    (tfs / "instances").mkdir(parents=True)
    (tfs / "trace").write_text("")
    (tfs / "kprobe_events").write_text("")
    mk = " ".join(f'"$I/events/"{shlex.quote(s.group)}/{shlex.quote(s.event)}' if not s.definition
                  else f'"$I/events/$G/"{shlex.quote(s.event)}' for s in p.specs)
    text = render_script(p).replace("T=/sys/kernel/tracing\n", f"T={shlex.quote(str(tfs))}\n", 1)
    text = text.replace('mkdir "$I" || exit 1', f'mkdir "$I" || exit 1\nmkdir -p {mk} "$I/options"\n'
                        ': > "$I/trace_pipe"', 1)
    res = subprocess.run([sh, "-c", text], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    inst = next((tfs / "instances").iterdir())
    group = inst.name
    lines = (tfs / "kprobe_events").read_text().splitlines()
    assert lines == [p.specs[0].definition.replace("undertow_1_0", group), f"-:{group}/e0"]
    evil = p.specs[2]
    assert (inst / "events" / evil.group / evil.event / "filter").read_text() == evil.filter + "\n"
    assert (inst / "events" / evil.group / evil.event / "enable").read_text() == "0"  # cleanup ran
    assert (inst / "events" / group / "e0" / "filter").read_text() == "comm==\"a'b\"\n"


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
