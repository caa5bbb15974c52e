"""``undertow modules``: kernel modules loaded/removed, and every attempt, with the process."""

from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "modules", parents=[common],
        help="kernel modules loaded and removed, and every init/finit/delete_module attempt",
        description="Module loads and unloads, and every attempt to load or remove a module "
                    "(init_module, finit_module with the file, delete_module with the name) with the "
                    "process and the result. Says first whether this kernel can load modules at all; "
                    "on one that cannot, attempts are still watched (they fail with ENOSYS: a rootkit "
                    "trying). See docs/tools/modules.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts event module file size taints pid comm result error "
               "(+ ppid uid argv cwd exe cgroup container parents gone)\n"
               "events: load free init_module finit_module delete_module\n"
               "examples:\n  undertow modules\n  undertow modules --json --duration 3600",
    )
    add_options(p, "events")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any]) -> str:
    from ..output.text import escape
    from ..tools.common import cell

    what = d.get("module") or d.get("file") or (f"{d['size']} bytes" if d.get("size") is not None else "?")
    res = "" if d["result"] is None else ("ok" if d["result"] >= 0 else d.get("error") or str(d["result"]))
    # no field is cut: a long module path widens the line (issue 18)
    who = f"{d['pid']:>7} {cell(escape(d['comm'] or ''), 16)}" if d.get("pid") else f"{'-':>7} {'(kernel)':<16}"
    from ..output.text import hms_now
    return f"{hms_now()} {who} {cell(d['event'], 14)} {cell(escape(what), 36)} {res}"


def run(args: argparse.Namespace) -> int:
    from ..kernel import Kernel
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.modules import Pairing, capability, program

    can, why = capability()
    print(f"undertow modules: {why}" + ("" if can else "; watching attempts (they fail with ENOSYS)"),
          file=sys.stderr)
    text, hooks = program(Kernel().tracefs())
    if not text:
        print("undertow modules: no hook available on this kernel (no module tracepoints, unknown syscall "
              "numbers for this architecture)", file=sys.stderr)
        return 1
    pairing = Pairing()

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        return pairing.feed(rec)

    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'EVENT':<14} {'MODULE/FILE':<36} RESULT"
    shown = run_tool(args, "modules", text, parse, header, _line, hooks=f"{hooks} ({why})")
    if args.summary:
        print_summary(shown, args.json, "MODULES", "module")
    return 0
