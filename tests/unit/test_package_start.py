"""undertow/__init__ gives SIGINT its default action only when it starts the command."""

import os
import subprocess
import sys

import pytest

import undertow

SRC = os.path.dirname(os.path.dirname(undertow.__file__))


@pytest.mark.parametrize("argv, orig, ours", [
    (["-m"], ["python3", "-m", "undertow", "run"], True),
    (["-m"], ["python3", "-mundertow"], True),
    (["-m"], ["python3", "-m", "mytool"], False),          # another package importing undertow
    (["/usr/local/bin/undertow", "run"], ["python3", "/usr/local/bin/undertow"], True),
    (["/home/u/undertow_check.py"], ["python3", "/home/u/undertow_check.py"], False),
    ([], [], False),
])
def test_started_as_the_command(monkeypatch, argv, orig, ours):
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", orig, raising=False)
    assert undertow._started_as_the_command() is ours


def test_a_library_import_keeps_python_s_sigint_handler():
    code = "import signal, undertow; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=SRC), check=True).stdout
    assert out.strip() == "True"
