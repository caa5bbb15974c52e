"""system()'s commands: words and ``|`` pipelines as a shell splits them, nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from undertow.pipeline import Pipeline, split_pipeline


@pytest.mark.parametrize("text, argvs", [
    ("bpftool link | grep kprobe_multi | wc -l", [["bpftool", "link"], ["grep", "kprobe_multi"], ["wc", "-l"]]),
    ("a|b", [["a"], ["b"]]),
    ("grep 'x|y' f", [["grep", "x|y", "f"]]),
    ('grep "x|y" | "w c"', [["grep", "x|y"], ["w c"]]),
    (r"grep x\|y", [["grep", "x|y"]]),
    (r'echo "a \" | b"', [["echo", 'a " | b']]),
    ("echo a; rm -rf / && $(id) > f", [["echo", "a;", "rm", "-rf", "/", "&&", "$(id)", ">", "f"]]),
])
def test_split(text, argvs):
    assert split_pipeline(text) == argvs


@pytest.mark.parametrize("text, why", [
    ("a |", "a '|' without a command on one side"),
    ("| b", "a '|' without a command on one side"),
    ("a || b", "a '|' without a command on one side"),
    ("", "no command"),
    ("echo 'x", "No closing quotation"),
])
def test_refused(text, why):
    with pytest.raises(ValueError, match=why):
        split_pipeline(text)


def test_pipeline_connects_the_commands():
    py = sys.executable
    p = Pipeline([[py, "-c", "print('a\\nb\\nc')"], [py, "-c", "import sys; print(len(sys.stdin.readlines()))"]])
    try:
        assert p.communicate(timeout=30) == "3\n"
        assert [q.returncode for q in p.procs] == [0, 0]
    finally:
        p.kill()


def test_a_reader_that_stops_early_ends_the_writer():
    # `yes | head -1`: the writer gets EPIPE/SIGPIPE once the reader is gone (undertow keeps no copy
    # of the pipe), so the pipeline ends
    p = Pipeline([["yes"], ["head", "-1"]])
    try:
        assert p.communicate(timeout=30) == "y\n"
    except subprocess.TimeoutExpired:
        pytest.fail("the writer kept running after its reader ended")
    finally:
        p.kill()
    assert not p.running()
