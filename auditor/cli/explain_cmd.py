"""`auditor rules explain RULE --event FILE:LINE | --deal DEAL_ID FILE`: why a rule did or did
not fire for one deal, filter by filter, with the values compared."""

from __future__ import annotations

import argparse
import sys

from auditor.cli.common import rule_errors, rules_dir
from auditor.errors import RuleErrors


def register(rules_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = rules_sub.add_parser(
        "explain", help="why a rule did or did not fire for one deal, filter by filter",
        description="Explains one rule on one deal of a JSON Lines file: each filter with the "
        "values compared, each churn of the account for a join rule, the deal's period and "
        "its measure's numerator and denominator for an aggregate rule. The last line says "
        "whether it fires, as a replay of the file does. Exit 0 either way, 2 on bad input.")
    p.add_argument("rule", metavar="RULE", help="the rule id, e.g. discount-then-churn")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--event", metavar="FILE:LINE",
                       help="the deal_closed event on line LINE of FILE")
    which.add_argument("--deal", nargs=2, metavar=("DEAL_ID", "FILE"),
                       help="the deal DEAL_ID in the replay file FILE")
    p.add_argument("--account", metavar="ACCOUNT",
                   help="the deal's account (deal ids are unique per account only)")
    p.add_argument("--rules", metavar="DIR", help="rules directory (default: the repo's rules/)")
    p.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from auditor.explain.events import BadInput, find_by_id, find_by_line, parse_event_arg
    from auditor.explain.explainer import UnknownRule, explain, rule_spec
    from auditor.explain.specs import load_rule_book

    directory = rules_dir(args.rules)
    try:
        book = load_rule_book(directory)
    except RuleErrors as exc:
        return rule_errors(exc)
    try:
        rule_spec(book, args.rule)  # before the file is read
    except UnknownRule as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    currency = book.pack.currency
    try:
        if args.event is not None:
            path, line = parse_event_arg(args.event)
            found = find_by_line(path, line, currency, args.account)
        else:
            deal_id, path = args.deal
            found = find_by_id(path, deal_id, currency, args.account)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(explain(book, args.rule, found, path).text())
    return 0
