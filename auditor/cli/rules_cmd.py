"""`auditor rules check`: validate a rules directory, every error as file:line: message."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from auditor.cli import exceptions_cmd, explain_cmd
from auditor.cli.common import rules_dir, utc_today
from auditor.errors import RuleErrors
from auditor.rules.loader import load_rule_pack


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="check, test and describe rule files")
    rules_sub = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate rule files; exit 1 on any error")
    check.add_argument("dir", nargs="?", help="rules directory (default: the repo's rules/)")
    check.set_defaults(run=run_check)
    test = rules_sub.add_parser(
        "test", help="run the rule tests in DIR/tests/*.yaml; exit 1 if one fails")
    test.add_argument("dir", nargs="?", help="rules directory (default: the repo's rules/)")
    test.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    test.add_argument("--strict", action="store_true",
                      help="an enabled rule that no test names is an error (exit 1)")
    test.set_defaults(run=run_test)
    schema = rules_sub.add_parser(
        "schema", help="print the JSON Schema of rule files (for editor autocompletion)")
    schema.set_defaults(run=run_schema)
    explain_cmd.register(rules_sub)
    exceptions_cmd.register(rules_sub)


def run_check(args: argparse.Namespace) -> int:
    directory = rules_dir(args.dir)
    try:
        pack = load_rule_pack(directory, today=utc_today())  # an expired exception is an error
    except RuleErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {directory}", file=sys.stderr)
        return 1
    for rule in pack.rules:
        if rule.meta.status == "deprecated":
            print(f"{rule.meta.source}: {rule.meta.id}: warning: the rule is deprecated (it "
                  "still runs; remove it, or set status: stable)", file=sys.stderr)
    trial = [r.meta.id for r in pack.rules if r.meta.status == "experimental"]
    print(f"{directory}: {pack.rule_count} rules OK ({', '.join(pack.sources)})"
          + (f"; experimental, not counted in money: {', '.join(trial)}" if trial else ""))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from auditor.rules.schema import rule_file_json_schema

    print(json.dumps(rule_file_json_schema(), indent=2))
    return 0


def run_test(args: argparse.Namespace) -> int:
    from auditor.ruletest.junit import write_junit
    from auditor.ruletest.runner import load_tests, run_all, untested_rules

    directory = rules_dir(args.dir)
    try:
        pack = load_rule_pack(directory)
        tests = load_tests(directory, pack)
    except RuleErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {directory}", file=sys.stderr)
        return 2
    results = run_all(pack, directory, tests)
    untested = untested_rules(pack, tests)
    sources = pack.by_id()
    for rule_id in untested:  # a rule without a test can be broken by any edit, unnoticed
        level = "error" if args.strict else "warning"
        print(f"{sources[rule_id].meta.source}: {rule_id}: {level}: no test names this rule "
              f"(add one under {directory / 'tests'})", file=sys.stderr)
    failed = [r for r in results if not r.passed]
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        print(f"{mark} {result.name}  ({result.file}:{result.line})")
        if not result.passed:
            print(result.diff())
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if args.junit:
        write_junit(results, Path(args.junit))
    if not results:
        print(f"no tests in {directory / 'tests'}", file=sys.stderr)
    return 1 if failed or (args.strict and untested) else 0
