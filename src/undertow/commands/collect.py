"""``undertow collect``: drain a JetStream stream of undertow events into ClickHouse (issue 22)."""

from __future__ import annotations

import argparse
import sys


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``undertow collect`` and its options."""
    from .. import options

    p = sub.add_parser(
        "collect", parents=[common],
        help="drain a NATS JetStream stream of events into ClickHouse, in batches",
        description="The one consumer between the hosts and ClickHouse: reads the events the hosts' "
                    "--output nats://... published, with a durable pull consumer, and inserts them into "
                    "ClickHouse in batches (INSERT ... FORMAT JSONEachRow over HTTP), acknowledging only "
                    "what ClickHouse stored. A refused batch is reported and comes again. See docs/fleet.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  undertow collect --from nats://127.0.0.1:4222/undertow.events \\\n"
               "      --to clickhouse+http://127.0.0.1:8123/undertow.events --create\n"
               "  undertow collect --from 'nats://10.0.0.5:4222/undertow.>?creds=/etc/undertow/collect.creds' \\\n"
               "      --to clickhouse+http://reader:secret@127.0.0.1:8123/ir.events --once\n"
               "  undertow collect --from undertow-results/web-3.ndjson undertow-results/db-1.ndjson \\\n"
               "      --to clickhouse+http://127.0.0.1:8123/undertow.events   # a sweep's NDJSON, brought back",
    )
    p.add_argument("--from", dest="src", required=True, metavar="URL|FILE", action="extend", nargs="+", type=_source,
                   help="nats://HOST:PORT/SUBJECT (?stream=NAME&consumer=NAME), or NDJSON files written by "
                        "--output - (several: a sweep without NATS brings them back)")
    p.add_argument("--to", dest="dst", required=True, metavar="URL",
                   type=lambda t: _url(t, "clickhouse"), help="clickhouse+http://HOST:PORT/DB.TABLE")
    p.add_argument("--create", action="store_true",
                   help="create the stream, the database and table, and new columns as events bring them")
    p.add_argument("--batch", type=options.count, default=1000, metavar="N",
                   help="messages per insert (default 1000; a partial batch is inserted after 0.5 s)")
    p.add_argument("--duration", type=options.duration, metavar="SECONDS", help="stop after SECONDS (> 0)")
    p.add_argument("--once", action="store_true", help="stop when the stream has nothing more to give")
    p.set_defaults(func=run, attaches=True)
    return p


def _source(text: str) -> object:
    """``--from``: a ``nats://`` URL, or an existing file (NDJSON)."""
    import os

    if "://" not in text and os.path.isfile(text):
        return text
    if "://" not in text:
        raise argparse.ArgumentTypeError(f"{text}: no such file (or give nats://HOST:PORT/SUBJECT)")
    return _url(text, "nats")


def _url(text: str, kind: str) -> object:
    from ..fleet import urls

    try:
        return urls.parse(text, allowed=(kind,))
    except urls.URLError as e:
        raise argparse.ArgumentTypeError(e.render().replace("\n", "\n  ")) from None


def run(args: argparse.Namespace) -> int:
    """Drain the stream into ClickHouse until a stop; 1 when refused rows were never stored."""
    from ..errors import UsageError
    from ..fleet.collect import Collector, load_files

    files = [s for s in args.src if isinstance(s, str)]
    urls_ = [s for s in args.src if not isinstance(s, str)]
    if files and urls_ or len(urls_) > 1:
        raise UsageError("--from takes one nats:// URL, or NDJSON files, not both",
                         hints=["run one collector per stream"])
    if files:
        stats, rc = load_files(files, args.dst, batch=args.batch, create=args.create)
        print(f"undertow collect: {stats}", file=sys.stderr)
        return rc
    c = Collector(urls_[0], args.dst, batch=args.batch, create=args.create)
    rc = c.run(duration=args.duration, once=args.once)
    print(f"undertow collect: {c.summary()}", file=sys.stderr)
    return rc
