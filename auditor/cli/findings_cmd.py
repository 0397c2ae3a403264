"""`auditor findings export ALERTS --out FILE`: an alerts file as CSV for finance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auditor.cli.sink_cmd import register_load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("findings", help="findings (alerts) for finance: export as CSV, "
                                    "load into PostgreSQL")
    findings_sub = p.add_subparsers(dest="findings_command", required=True, metavar="ACTION")
    export = findings_sub.add_parser(
        "export", help="write an alerts file as CSV, one column per field, evidence as JSON last")
    export.add_argument("alerts", metavar="ALERTS", help="alerts file (JSON Lines), - for stdin")
    export.add_argument("--out", metavar="FILE", default="-",
                        help="CSV file to write (default: standard output)")
    export.set_defaults(run=run_export)
    register_load(findings_sub)


def run_export(args: argparse.Namespace) -> int:
    from auditor.findings.export import write_csv
    from auditor.findings.read import parse_alerts, read_alerts

    try:
        alerts = parse_alerts(sys.stdin) if args.alerts == "-" else read_alerts(Path(args.alerts))
    except OSError as exc:
        print(f"error: cannot read {args.alerts}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for number, why in alerts.skipped:
        print(f"warning: {args.alerts}:{number}: {why}; skipped", file=sys.stderr)
    if args.out == "-":
        count = write_csv(alerts.findings, sys.stdout)
    else:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as out:
                count = write_csv(alerts.findings, out)
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"{count} findings written to {args.out}", file=sys.stderr)
    return 0
