"""`auditor plans whatif FILE... [--rules DIR] [--candidate PLANS_YAML] [--set PLAN.FIELD=VALUE]
[--json OUT]`: history paid again under changed plans."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(plans_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = plans_sub.add_parser(
        "whatif", help="replay history under changed plans: paid, recovered, unrecovered",
        description="Pays every historical deal of each plan again under a candidate plan and "
        "compares it with what was paid and recovered, per plan, team and quarter.")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files, - for stdin")
    p.add_argument("--rules", metavar="DIR", help="rules directory: the registry in force and "
                   "the reporting currency (default: the repo's rules/)")
    p.add_argument("--candidate", metavar="PLANS_YAML",
                   help="the candidate plans, a file of the plans.yaml schema "
                   "(default: the registry)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="PLAN.FIELD=VALUE",
                   help="change one value of the candidate, e.g. hunter-2026.clawback_days=180 "
                   "(repeatable; the value is a YAML scalar)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.cli.common import load_rules_or_exit
    from auditor.errors import AuditorError
    from auditor.events.decode import EventDecoder
    from auditor.whatif.candidate import build_candidate
    from auditor.whatif.history import read_history
    from auditor.whatif.report import render, to_json
    from auditor.whatif.runner import run_whatif

    pack = load_rules_or_exit(args.rules)
    try:
        candidate = build_candidate(
            pack.plans, Path(args.candidate) if args.candidate else None, args.overrides)
    except AuditorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        history = read_history(args.files, EventDecoder(pack.currency))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    whatif = run_whatif(history, pack.plans, candidate, pack.currency.reporting)
    print(render(whatif))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(whatif), indent=2) + "\n")
    return 0
