"""``--output URL``, ``--create``, ``--run-id``: the fleet options of every command that emits
events (added by :func:`undertow.tools.common.add_common_options` and by ``trace``/``run``).

Light on purpose: building a parser imports this module, the URL parser only when an
``--output`` is given (start-up time, docs/contributing.md).
"""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any

OUTPUT_HELP = ("send the events to URL (repeatable): - (standard output), nats://HOST:PORT/SUBJECT "
               "(JetStream), clickhouse+http://HOST:PORT/DB.TABLE; the events are JSON and carry hostname "
               "machine_id boot_id run_id instance_id tool event_seq wall_ns (docs/fleet.md). Default: standard "
               "output only")


def output_url(text: str) -> Any:
    """argparse ``type=`` of ``--output``: a :class:`~undertow.fleet.urls.SinkURL`."""
    from . import urls

    try:
        return urls.parse(text)
    except urls.URLError as e:
        raise argparse.ArgumentTypeError(e.render().replace("\n", "\n  ")) from None


def run_id(text: str) -> str:
    """argparse ``type=`` of ``--run-id``: 1-64 of ``A-Z a-z 0-9 _ . : -`` (it goes into message ids)."""
    ok = 0 < len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.:-") for c in text)
    if not ok:
        raise argparse.ArgumentTypeError(f"1 to 64 letters, digits, _ . : or -, not {text[:40]!r}")
    return text


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--output URL`` (repeatable), ``--create`` and ``--run-id ID`` to ``parser``."""
    g = parser.add_argument_group("outputs (docs/fleet.md)")
    g.add_argument("--output", dest="outputs", action="append", type=output_url, metavar="URL", help=OUTPUT_HELP)
    g.add_argument("--create", action="store_true",
                   help="create the JetStream stream / ClickHouse table of the --output URLs when missing")
    g.add_argument("--run-id", type=run_id, metavar="ID",
                   help="the run id the events carry (default: a random one; a sweep gives all its hosts one)")
