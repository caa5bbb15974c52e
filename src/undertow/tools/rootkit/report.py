"""What the rootkit checks report: findings (two views disagree), notes (something seen that
a stated rule calls benign) and what could not be checked, with why."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

__all__ = ["Finding", "Note", "NotChecked", "Report", "Context", "SEVERITIES"]

#: severities, worst first
SEVERITIES = ("high", "medium", "low")


class Finding:
    """One disagreement: ``check`` (family), ``severity`` (high/medium/low), ``title``,
    ``evidence`` (view name -> what that view says: the views that disagree), ``next``
    (what to check next), ``key`` (a stable identifier: pid, inode, program id...)."""

    __slots__ = ("check", "severity", "title", "evidence", "next", "key")

    def __init__(self, check: str, severity: str, title: str, evidence: Dict[str, Any], next_: str,
                 key: Any = None) -> None:
        assert severity in SEVERITIES
        self.check, self.severity, self.title, self.evidence, self.next = check, severity, title, evidence, next_
        self.key = key

    def as_json(self) -> Dict[str, Any]:
        return {"type": "finding", "check": self.check, "severity": self.severity, "title": self.title,
                "evidence": self.evidence, "next": self.next, "key": self.key}

    def __repr__(self) -> str:
        return f"Finding({self.check}, {self.severity}, {self.title!r})"


class Note:
    """Something seen and judged benign by a stated rule (``why``); never changes the exit
    status (a sealed memfd executable: how runc protects its binary)."""

    __slots__ = ("check", "title", "why", "evidence")

    def __init__(self, check: str, title: str, why: str, evidence: Optional[Dict[str, Any]] = None) -> None:
        self.check, self.title, self.why, self.evidence = check, title, why, evidence or {}

    def as_json(self) -> Dict[str, Any]:
        return {"type": "note", "check": self.check, "title": self.title, "why": self.why,
                "evidence": self.evidence}


class NotChecked:
    """A view this run could not use: ``check`` (family), ``what``, ``why``; ``absent``:
    the kernel has no such mechanism at all (nothing can hide there: not an incomplete
    answer, the exit status stays 0)."""

    __slots__ = ("check", "what", "why", "absent")

    def __init__(self, check: str, what: str, why: str, absent: bool = False) -> None:
        self.check, self.what, self.why, self.absent = check, what, why, absent

    def as_json(self) -> Dict[str, Any]:
        return {"type": "not_checked" if not self.absent else "not_present", "check": self.check,
                "what": self.what, "why": self.why}


class Report:
    """Everything the checks found, in the order found."""

    def __init__(self) -> None:
        self.findings: List[Finding] = []
        self.notes: List[Note] = []
        self.skipped: List[NotChecked] = []
        self.inventory: List[Dict[str, Any]] = []  # BPF objects etc.: shown with --json

    def add(self, check: str, severity: str, title: str, evidence: Dict[str, Any], next_: str,
            key: Any = None) -> Finding:
        f = Finding(check, severity, title, evidence, next_, key)
        self.findings.append(f)
        return f

    def note(self, check: str, title: str, why: str, evidence: Optional[Dict[str, Any]] = None) -> None:
        self.notes.append(Note(check, title, why, evidence))

    def not_checked(self, check: str, what: str, why: str, absent: bool = False) -> None:
        self.skipped.append(NotChecked(check, what, why, absent))

    def exit_status(self) -> int:
        """0 clean, 1 findings, 2 something could not be checked (and nothing was found)."""
        if self.findings:
            return 1
        if any(not s.absent for s in self.skipped):
            return 2
        return 0


class Context:
    """What the checks share: options, the /proc root, caches of views more than one
    family reads (the task iterator's tasks, the process list)."""

    def __init__(self, quick: bool = False, proc: str = "/proc") -> None:
        self.quick, self.proc = quick, proc
        self.report = Report()
        self.cache: Dict[str, Any] = {}
        self.self_pid = os.getpid()
