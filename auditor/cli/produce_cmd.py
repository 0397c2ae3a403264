"""`auditor produce FILE... --broker URL`: publish JSON Lines events to their topics."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from auditor.worker.settings import from_environment


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("produce", help="publish JSON Lines events to Kafka, keyed by account_id")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files, - for stdin")
    p.add_argument("--broker", help="kafka://host:port or host:port, comma-separated "
                                    "(env AUDITOR_BROKER; default localhost:9092)")
    p.add_argument("--topic-deals", dest="deals", help="topic for deal_closed (deals.closed)")
    p.add_argument("--topic-churns", dest="churns",
                   help="topic for account_churned (accounts.churned)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.produce.publisher import Publisher
    from auditor.worker.settings import parse_brokers

    try:
        settings = from_environment({
            "brokers": parse_brokers(args.broker) if args.broker else None,
            "deals": args.deals, "churns": args.churns,
        })
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    publisher = Publisher(settings.brokers, settings.topics, settings.security)
    with ExitStack() as stack:
        for path in args.files:
            stream = sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))
            publisher.publish(stream, "<stdin>" if path == "-" else path,
                              progress_every=0 if args.quiet else 1.0)
    report = publisher.close()
    for problem in report.invalid[:20]:
        print(f"invalid, not sent: {problem}", file=sys.stderr)
    if len(report.invalid) > 20:
        print(f"... and {len(report.invalid) - 20} more invalid lines", file=sys.stderr)
    sent = ", ".join(f"{n:,} to {topic}" for topic, n in sorted(report.sent.items())) or "nothing"
    print(f"\rsent {sent}; {len(report.invalid):,} invalid lines not sent; "
          f"{report.failed:,} failed", file=sys.stderr)
    return 1 if report.failed else 0
