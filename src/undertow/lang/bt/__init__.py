"""The bpftrace language front end: bpftrace programs (``-e '...'`` and ``.bt`` files) to the IR.

``parse_program(text, origin, positional)`` is the entry point; see
docs/bpftrace.md for the supported language and the differences from bpftrace.
``quote_string(value)`` makes a string literal of any value (bytes exact) for program
text built from outside values (file names): the only way tools put one into a program.
"""

from __future__ import annotations

from .lexer import quote_string
from .parser import BUILTINS, FUNCTIONS, MAP_AGGREGATIONS, parse_program
from .preprocess import CMember, CStructDef
from .probes import parse_spec

__all__ = ["parse_program", "parse_spec", "BUILTINS", "FUNCTIONS", "MAP_AGGREGATIONS", "CStructDef", "CMember",
           "quote_string"]
