"""`auditor`: the command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from auditor import __version__
from auditor.cli import (
    backtest_cmd,
    findings_cmd,
    plans_cmd,
    produce_cmd,
    replay_cmd,
    report_cmd,
    rules_cmd,
    simulate_cmd,
    sink_cmd,
    worker_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditor",
        description="Catches commission payouts that reward one-off deals over keeping customers.",
    )
    parser.add_argument("--version", action="version", version=f"comp-auditor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (replay_cmd, simulate_cmd, rules_cmd, plans_cmd, backtest_cmd, worker_cmd,
                   produce_cmd, report_cmd, findings_cmd, sink_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `auditor simulate | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
