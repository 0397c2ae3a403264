"""`auditor rules exceptions [DIR] [--events FILE ...] [--json]`: every exception of the rules,
who owns it, why, what it matches, when it expires; with `--events`, how many findings of a
replay of the files each one kept from being alerts."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from auditor.cli.common import rule_errors, rules_dir, utc_today
from auditor.errors import RuleErrors
from auditor.rules.exceptions import RuleException

# Fewer days left than this: the status says when it expires, so its owner acts in time.
SOON_DAYS = 30


def register(rules_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = rules_sub.add_parser(
        "exceptions", help="list the rules' exceptions: owner, reason, expiry, findings kept",
        description="Lists every exception of the rules: its rule, owner, reason, what it "
        "matches, when it expires and its status (active, expires in N days, expired). With "
        "--events, replays the files with the rules and adds how many findings each exception "
        "kept from being alerts. Exit 0, 2 on bad input.")
    p.add_argument("dir", nargs="?", help="rules directory (default: the repo's rules/)")
    p.add_argument("--events", nargs="+", metavar="FILE",
                   help="JSON Lines event files to replay ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=run_exceptions)


def run_exceptions(args: argparse.Namespace) -> int:
    from auditor.rules.loader import load_rule_pack

    directory = rules_dir(args.dir)
    try:
        pack = load_rule_pack(directory)
    except RuleErrors as exc:
        return rule_errors(exc)
    counts: dict[tuple[str, str], int] | None = None
    if args.events:
        from auditor.replay.runner import Replay

        try:
            counters = Replay(pack).run_files(args.events)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        counts = dict(counters.excepted_series())
    today = utc_today()
    rows = [_row(rule_id, exception, today, counts) for rule_id, exception in pack.exceptions()]
    if args.json:
        print(json.dumps({"today": today.isoformat(), "exceptions": rows}, indent=1))
        return 0
    if not rows:
        print(f"{directory}: no exceptions")
        return 0
    for row in rows:
        print(_text(row))
    expired = sum(1 for row in rows if row["status"] == "expired")
    print(f"{len(rows)} exception(s), {expired} expired"
          + (f"; {sum(counts.values()):,} finding(s) excepted" if counts is not None else ""))
    return 0


def _row(rule_id: str, exception: RuleException, today: date,
         counts: dict[tuple[str, str], int] | None) -> dict[str, Any]:
    days_left = (exception.expires - today).days
    row: dict[str, Any] = {
        "rule": rule_id, "exception": exception.name, "owner": exception.owner,
        "reason": exception.reason, "matches": exception.matches,
        "expires": exception.expires.isoformat(), "status": _status(days_left),
        "days_left": days_left, "source": exception.source,
    }
    if counts is not None:
        row["findings"] = counts.get((rule_id, exception.name), 0)
    return row


def _status(days_left: int) -> str:
    if days_left < 0:
        return "expired"
    if days_left == 0:
        return "expires today"
    if days_left <= SOON_DAYS:
        return f"expires in {days_left} day{'s' if days_left > 1 else ''}"
    return "active"


def _text(row: dict[str, Any]) -> str:
    matches = "; ".join(f"{key}: {_value(value)}" for key, value in row["matches"].items())
    found = f", {row['findings']:,} finding(s) excepted" if "findings" in row else ""
    return (f"{row['rule']}  exceptions[{row['exception']}]  {row['status']} "
            f"(expires {row['expires']}){found}\n"
            f"  matches: {matches}\n"
            f"  owner:   {row['owner']}\n"
            f"  reason:  {row['reason']}\n"
            f"  at:      {row['source']}")


def _value(value: Any) -> str:
    """A value of `matches` as a rule file writes it."""
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
