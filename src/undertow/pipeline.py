"""Commands for ``system()``: words as a shell splits them, ``|`` pipelines, no shell.

bpftrace hands ``system()``'s text to ``/bin/sh``; undertow never runs a shell as root on text
an event may have filled in (a process name can hold ``;`` or ``$(...)``). What scripts
actually write — ``system("bpftool link | grep kprobe_multi | wc -l")`` in bpftrace's own
suite — is words and pipes, and both are done here: the text is cut at each ``|`` outside
quotes, each part is split into words with :func:`shlex.split` (quotes and backslashes as
in a shell), and the commands are connected by pipes. Nothing else of a shell's syntax is
interpreted (``;``, ``&&``, ``>``, ``$VAR``, ``*`` stay literal words).
"""

from __future__ import annotations

import shlex
import subprocess
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional

__all__ = ["split_pipeline", "Pipeline"]


def split_pipeline(text: str) -> List[List[str]]:
    """``"a 'x|y' | b"`` -> ``[["a", "x|y"], ["b"]]``. Raises ValueError for unbalanced
    quotes or an empty command (``"a |"``, ``"| b"``, ``"a || b"``)."""
    parts, cur, quote, i = [], [], "", 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(c)
                i += 1
                c = text[i]
        elif c in "'\"":
            quote = c
        elif c == "\\" and i + 1 < len(text):
            cur.append(c)
            i += 1
            c = text[i]
        elif c == "|":
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if quote:
        raise ValueError("No closing quotation")
    parts.append("".join(cur))
    argvs = [shlex.split(p) for p in parts]
    if any(not a for a in argvs):
        raise ValueError("a '|' without a command on one side" if len(argvs) > 1 else "no command")
    return argvs


class Pipeline:
    """The running commands of one pipeline; :attr:`stdout` is the last one's output.

    Every command's standard input but the first's is the previous one's output; the first
    reads ``/dev/null``. Standard error is inherited (as a shell's pipeline leaves it)."""

    def __init__(self, argvs: List[List[str]]) -> None:
        self.procs: List[subprocess.Popen] = []
        self._text: Optional[str] = None
        stdin = subprocess.DEVNULL
        try:
            for n, argv in enumerate(argvs):
                last = n == len(argvs) - 1
                p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     text=last, errors="surrogateescape" if last else None)
                if self.procs:
                    self.procs[-1].stdout.close()  # only the next command holds the pipe
                self.procs.append(p)
                stdin = p.stdout
        except BaseException:
            self.kill()
            raise

    def communicate(self, timeout: float) -> str:
        """The last command's whole output once every command ended; raises
        :class:`subprocess.TimeoutExpired` (nothing lost: call again) while one runs."""
        if self._text is None:
            text, _ = self.procs[-1].communicate(timeout=timeout)
            self._text = text or ""
        for p in self.procs[:-1]:
            p.wait(timeout=timeout)
        return self._text

    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def kill(self) -> None:
        """End the commands still running (ours, by their Popen handles) and reap them all."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.communicate()
            except ValueError:  # its stdout was handed to the next command and closed
                p.wait()
