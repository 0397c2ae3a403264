"""`auditor backtest --baseline DIR --candidate DIR FILE...`: a rule change, tried on history."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from auditor.cli.common import add_jobs_argument


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backtest", help="replay history under two rule sets and compare alerts")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files, - for stdin")
    p.add_argument("--baseline", required=True, metavar="DIR", help="the rules in force")
    p.add_argument("--candidate", required=True, metavar="DIR", help="the changed rules")
    p.add_argument("--examples", type=int, default=3, help="alerts shown per difference")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--allowed-lateness-days", type=float, default=30.0)
    add_jobs_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.backtest.compare import compare, render, replay_alerts
    from auditor.cli.common import load_rules_or_exit
    from auditor.replay.parallel import resolve_jobs

    if "-" in args.files:
        print("error: backtest reads its input twice; give files, not -", file=sys.stderr)
        return 2
    baseline = load_rules_or_exit(args.baseline)
    candidate = load_rules_or_exit(args.candidate)
    jobs = resolve_jobs(args.jobs, args.files)
    try:
        before = replay_alerts(baseline, args.files, args.allowed_lateness_days, jobs)
        after = replay_alerts(candidate, args.files, args.allowed_lateness_days, jobs)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes = compare(before, after)
    print(render(changes, candidate.currency.reporting, args.examples))
    if args.json:
        report = {"baseline": args.baseline, "candidate": args.candidate, "files": args.files,
                  "rules": [c.to_dict(args.examples) for c in changes]}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
