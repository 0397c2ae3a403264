"""`auditor rules check`: validate a rules directory, every error as file:line: message."""

from __future__ import annotations

import argparse
import json
import sys

from auditor.cli.common import rules_dir
from auditor.errors import RuleErrors
from auditor.rules.loader import load_rule_pack


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="check rule files")
    rules_sub = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate rule files; exit 1 on any error")
    check.add_argument("dir", nargs="?", help="rules directory (default: the repo's rules/)")
    check.set_defaults(run=run_check)
    schema = rules_sub.add_parser(
        "schema", help="print the JSON Schema of rule files (for editor autocompletion)")
    schema.set_defaults(run=run_schema)


def run_check(args: argparse.Namespace) -> int:
    directory = rules_dir(args.dir)
    try:
        pack = load_rule_pack(directory)
    except RuleErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {directory}", file=sys.stderr)
        return 1
    print(f"{directory}: {pack.rule_count} rules OK ({', '.join(pack.sources)})")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from auditor.rules.schema import rule_file_json_schema

    print(json.dumps(rule_file_json_schema(), indent=2))
    return 0
