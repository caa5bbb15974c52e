"""What `undertow run` imports on its way to the first event (start-up is compared with
bpftrace: bench/bt_startup.py). Each module listed here was taken off that path on purpose;
importing one again costs 1-5 ms of every one-liner."""

import json
import os
import subprocess
import sys

import undertow

RUN_PATH = ["undertow.cli", "undertow.commands.run", "undertow.kernel", "undertow.lang.bt",
            "undertow.lang.resolve", "undertow.lang.resolve_bt", "undertow.backends.bpf.compiler",
            "undertow.backends.bpf.runtime", "undertow.backends.bpf.ringprefetch", "undertow.output.bt",
            "undertow.kernel.tracefs"]
# typing is on it (~2.6 ms, issue 15: the ordinary `from typing import ...` over a home-made stand-in)
NOT_ON_IT = ["gettext", "locale", "json", "ipaddress", "tempfile", "copy", "shutil", "inspect",
             "dataclasses", "threading", "subprocess", "contextlib", "undertow.output.text",
             "undertow.backends.bpf.perfbuf"]


def _fresh(code: str) -> subprocess.CompletedProcess:
    src = os.path.dirname(os.path.dirname(undertow.__file__))  # the tree under test, installed or not
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


def test_the_run_path_leaves_these_modules_out():
    code = (f"import sys, json, importlib\nbefore = set(sys.modules)\n"
            f"for m in {RUN_PATH!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(set(sys.modules) - before)))")
    out = _fresh(code)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert set(RUN_PATH) <= loaded
    assert not loaded & set(NOT_ON_IT), sorted(loaded & set(NOT_ON_IT))


def test_argparse_without_gettext_still_reports_errors_and_help():
    out = _fresh("import sys\nfrom undertow.cli import main\n"
                 "assert 'gettext' not in sys.modules and 'locale' not in sys.modules\n"
                 "sys.argv[0] = 'undertow'\nsys.exit(main(['run', '--bogus']))")
    assert out.returncode == 2
    assert "usage: undertow" in out.stderr and "unrecognized arguments: --bogus" in out.stderr
    out = _fresh("import gettext, sys\nfrom undertow.cli import main\n"
                 "assert gettext.__file__.endswith('gettext.py')\nsys.exit(main(['run', '-h']))")
    assert out.returncode == 0 and "positional parameters $1" in out.stdout, out.stderr
