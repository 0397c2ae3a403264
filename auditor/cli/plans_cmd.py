"""`auditor plans audit [DIR]`: what the registered plans reward, before any deal is closed."""

from __future__ import annotations

import argparse
import sys

from auditor.cli import whatif_cmd


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plans", help="the plan registry (rules/plans.yaml)")
    plans_sub = p.add_subparsers(dest="plans_command", required=True, metavar="ACTION")
    audit = plans_sub.add_parser("audit", help="static findings on the registered plans")
    audit.add_argument("dir", nargs="?", help="rules directory (default: the repo's rules/)")
    audit.add_argument("--alerts-out", metavar="FILE", help="write the findings as alerts")
    audit.set_defaults(run=run_audit)
    whatif_cmd.register(plans_sub)


def run_audit(args: argparse.Namespace) -> int:
    from auditor.cli.common import load_rules_or_exit, rules_dir
    from auditor.plans.audit import FINDINGS, as_alert, audit

    directory = rules_dir(args.dir)
    pack = load_rules_or_exit(str(directory))
    registry = pack.plans
    if registry is None:
        print(f"no plans registered: {directory / 'plans.yaml'} does not exist", file=sys.stderr)
        return 2
    findings = audit(registry)
    for plan_id in sorted(registry.plans):
        mine = [f for f in findings if f.plan_id == plan_id]
        print(f"{plan_id}: " + (f"{len(mine)} of {len(FINDINGS)} findings" if mine else "clean"))
        for finding in mine:
            print(f"  [{finding.severity}] {finding.rule}: {finding.summary}")
    if args.alerts_out:
        with open(args.alerts_out, "w", encoding="utf-8") as out:
            for finding in findings:
                out.write(as_alert(finding, pack.currency.reporting).to_json() + "\n")
    return 0
