"""The SystemTap language front end: ``.stp`` scripts to undertow's IR (docs/stap.md).

``parse_script(text, origin, nparams)`` (pass 1) gives the syntax tree;
``elaborate(script, env, Options(params...))`` (pass 2) resolves probe points through the
tapsets (:mod:`.tapsets`) and translates the handlers into the IR the bpftrace front end
builds, which the BPF backend compiles and runs.
"""

from __future__ import annotations

from .elaborate import Options, StapError, TracefsEnv, elaborate
from .parser import STAP_VERSION, parse_script
from .tapsets import Env, list_points

__all__ = ["parse_script", "elaborate", "Options", "StapError", "Env", "TracefsEnv", "list_points", "STAP_VERSION"]
