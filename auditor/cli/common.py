"""Helpers shared by subcommands: loading rules with a clear error, the --jobs option."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from auditor.errors import RuleErrors
from auditor.rules.exceptions import expired_warning
from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.rules.pack import RulePack


def rules_dir(value: str | None) -> Path:
    return Path(value) if value else default_rules_dir()


def utc_today() -> date:
    """The day exceptions expire by: `rules check` refuses, and running warns, past it."""
    return datetime.now(UTC).date()


def rule_errors(exc: RuleErrors) -> int:
    """Print a refused rules directory's errors; the exit code for it (2: bad input)."""
    for error in exc.errors:
        print(f"error: {error}", file=sys.stderr)
    return 2


def load_rules_or_exit(value: str | None) -> RulePack:
    try:
        pack = load_rule_pack(rules_dir(value))
    except RuleErrors as exc:
        raise SystemExit(rule_errors(exc)) from exc
    for rule_id, exception in pack.expired_exceptions(utc_today()):
        print(f"warning: {expired_warning(rule_id, exception)}", file=sys.stderr)
    return pack


def add_jobs_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", "-j", type=positive_int, metavar="N",
                   help="processes to audit with, the accounts shared out between them; the "
                        "output is the same as with 1 (default: the usable cores, but 1 for "
                        "stdin and for inputs under 16 MiB)")


def positive_int(value: str) -> int:
    jobs = int(value)
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {jobs}")
    return jobs
