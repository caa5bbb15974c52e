"""How much of Debian's systemtap-doc examples undertow's SystemTap front end takes (issue 19).

    python3 tests/compat/stap_corpus.py [--kprobes] [--run] [--meta] [DIR]   # default /usr/share/systemtap/examples

``--kprobes``: elaborate as on a kernel with kprobes (the lab's), this kernel's functions and
tracepoints otherwise. ``--run``: also run each script that elaborates for 2 s
(``undertow stap --duration 2``, root) and count those that load, attach and end cleanly.

For each ``*.stp``: pass 1 (parse) and pass 2 (elaborate, against this kernel's tracepoints),
and the first reason of each failure, grouped; the table of docs/stap.md comes from here.
Scripts are given ``1`` for each ``$N``; ``--meta``: the arguments of the ``stap`` command line
of their ``.meta`` file's ``test_installcheck`` (or ``test_check``) where it has one (a probe
point for ``probe $1``), ``1`` for the others.
"""

from __future__ import annotations

import collections
import os
import re
import sys


def main(argv: list) -> int:
    kprobes = "--kprobes" in argv
    run = "--run" in argv
    meta = "--meta" in argv
    argv = [a for a in argv if a not in ("--kprobes", "--run", "--meta")]
    root = argv[1] if len(argv) > 1 else "/usr/share/systemtap/examples"
    from undertow.errors import UndertowError
    from undertow.kernel import Kernel
    from undertow.lang.stap import Options, TracefsEnv, elaborate, parse_script

    env = TracefsEnv(Kernel())
    if kprobes:
        env.feature = lambda name: True  # type: ignore[method-assign]
    files = sorted(os.path.join(d, f) for d, _s, fs in os.walk(root) for f in fs if f.endswith(".stp"))
    parsed = elaborated = ran = 0
    why3: "collections.Counter[str]" = collections.Counter()
    why1: "collections.Counter[str]" = collections.Counter()
    why2: "collections.Counter[str]" = collections.Counter()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        n = max([int(m) for m in re.findall(r"[$@](\d+)", text)] + [0])
        params = ["1"] * n
        if meta:
            given = _meta_args(path)
            params = given + ["1"] * max(0, n - len(given)) if given is not None else params
        try:
            script = parse_script(text, path, params=params)
        except UndertowError as e:
            why1[_reason(e.message)] += 1
            continue
        parsed += 1
        try:
            elaborate(script, env, Options(params))
        except UndertowError as e:
            why2[_reason(e.message)] += 1
            continue
        except Exception as e:  # noqa: BLE001 - a bug of undertow's: counted and named, not hidden
            why2[f"INTERNAL ERROR (a bug): {type(e).__name__}: {e}"[:110]] += 1
            continue
        elaborated += 1
        if run:
            import subprocess

            res = subprocess.run([sys.executable, "-m", "undertow", "stap", "--duration", "2", path] + params,
                                 capture_output=True, text=True, timeout=120)
            if res.returncode == 0 and "Traceback" not in res.stderr:
                ran += 1
            else:
                lines = [x for x in res.stderr.splitlines() if "error" in x] or res.stderr.splitlines()[-1:]
                why3[_reason(lines[0].split("error: ", 1)[-1] if lines else f"status {res.returncode}")] += 1
    print(f"{len(files)} scripts: {parsed} parse (-p 1), {elaborated} elaborate (-p 2)"
          + (f", {ran} run 2 s here" if run else ""))
    print("\nparse failures:")
    for r, c in why1.most_common():
        print(f"  {c:4d}  {r}")
    print("\nelaboration failures:")
    for r, c in why2.most_common():
        print(f"  {c:4d}  {r}")
    if run:
        print("\nrun failures:")
        for r, c in why3.most_common():
            print(f"  {c:4d}  {r}")
    return 0


def _meta_args(path: str) -> "list | None":
    """The script's arguments on the ``stap`` command line of its ``.meta`` test line."""
    import shlex

    try:
        with open(path[:-len(".stp")] + ".meta", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    name = os.path.basename(path)
    for key in ("test_installcheck:", "test_check:"):
        for line in lines:
            if not line.startswith(key):
                continue
            try:
                words = shlex.split(line[len(key):])
            except ValueError:
                continue
            if name not in words:
                continue
            out, rest = [], words[words.index(name) + 1:]
            for w in rest:
                if w.startswith("-") or w in (";", "&&", "|"):
                    break
                out.append(w)
            return out
    return None


def _reason(msg: str) -> str:
    msg = re.sub(r"function (\w+)\(\)", "function X()", msg)
    msg = re.sub(r"\d+", "N", msg)
    return msg[:110]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
