"""Helpers shared by subcommands: loading rules with a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

from auditor.errors import RuleErrors
from auditor.rules.compiled import RulePack
from auditor.rules.loader import default_rules_dir, load_rule_pack


def rules_dir(value: str | None) -> Path:
    return Path(value) if value else default_rules_dir()


def load_rules_or_exit(value: str | None) -> RulePack:
    try:
        return load_rule_pack(rules_dir(value))
    except RuleErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from exc
