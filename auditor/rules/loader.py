"""rules/ directory -> a checked, compiled RulePack, or every error found with file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from auditor.errors import RuleError, RuleErrors
from auditor.events.currency import CurrencyTable
from auditor.rules.compiled import AggregateRule, DealRule, JoinRule, RuleMeta, RulePack
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS, FilterError, compile_filter
from auditor.rules.schema import (
    THRESHOLD_OPS,
    AggregateRuleSpec,
    CurrencyFile,
    DealRuleSpec,
    JoinRuleSpec,
    RuleFile,
)
from auditor.rules.yaml_source import YamlDocument, load_yaml

CURRENCY_FILE = "currency.yaml"
# Files in a rules directory that are not rule files.
NOT_RULE_FILES = {CURRENCY_FILE, "plans.yaml"}

M = TypeVar("M", bound=BaseModel)


def default_rules_dir() -> Path:
    """The repo's rules/, next to the package."""
    return Path(__file__).resolve().parents[2] / "rules"


def load_rule_pack(directory: Path) -> RulePack:
    """Load every rule file in `directory`; raise RuleErrors listing all problems, if any."""
    if not directory.is_dir():
        raise RuleErrors([RuleError("rules directory not found", str(directory))])
    errors: list[RuleError] = []
    currency = CurrencyTable()
    currency_path = directory / CURRENCY_FILE
    if currency_path.exists():
        try:
            currency = _load_currency(currency_path)
        except RuleError as exc:
            errors.append(exc)

    deal_rules: list[DealRule] = []
    join_rules: list[JoinRule] = []
    aggregate_rules: list[AggregateRule] = []
    first_seen: dict[str, str] = {}
    sources: list[str] = []
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in NOT_RULE_FILES:
            continue
        sources.append(str(path))
        try:
            doc = load_yaml(path)
            specs = _validate(doc, RuleFile).rules
        except RuleError as exc:
            errors.append(exc)
            continue
        for index, spec in enumerate(specs):
            where = f"{path}:{doc.line_of(('rules', index))}"
            if spec.id in first_seen:
                errors.append(doc.error(f"duplicate rule id {spec.id!r}, first defined at "
                                        f"{first_seen[spec.id]}", ("rules", index, "id")))
                continue
            first_seen[spec.id] = where
            if not spec.enabled:
                continue
            try:
                rule = _compile(spec, RuleMeta(spec.id, spec.kind, spec.description.strip(),
                                               spec.runbook.strip(), dict(spec.labels), where))
            except FilterError as exc:
                side = "churn" if exc.field in spec.churn and exc.field not in spec.deal else "deal"
                errors.append(doc.error(str(exc), ("rules", index, side, exc.field)))
                continue
            if isinstance(rule, DealRule):
                deal_rules.append(rule)
            elif isinstance(rule, JoinRule):
                join_rules.append(rule)
            else:
                aggregate_rules.append(rule)
    if errors:
        raise RuleErrors(errors)
    return RulePack(tuple(deal_rules), tuple(join_rules), tuple(aggregate_rules), currency,
                    tuple(sources))


def _validate(doc: YamlDocument, model: type[M]) -> M:
    if not isinstance(doc.data, dict):
        raise doc.error(f"expected a mapping at the top of the file, with keys of "
                        f"{model.__name__}: {', '.join(model.model_fields)}")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first["loc"])
        named = doc.existing(loc)
        # A missing key is not in the data, but is worth naming.
        if first["type"] == "missing" and loc:
            named = (*named, loc[-1])
        field = ".".join(str(p) for p in named) or "file"
        raise doc.error(f"{field}: {_plain(first)}", loc) from exc


def _plain(error: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the rule-file schema)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind: {msg.split('found using')[0].removeprefix('Input tag ').strip()}; " \
               "expected deal, churn-after-deal, deal-after-churn or aggregate"
    return str(msg).removeprefix("Value error, ")


def _load_currency(path: Path) -> CurrencyTable:
    doc = load_yaml(path)
    spec = _validate(doc, CurrencyFile)
    return CurrencyTable(spec.reporting_currency, dict(spec.rates))


def _compile(spec: Any, meta: RuleMeta) -> DealRule | JoinRule | AggregateRule:
    if isinstance(spec, DealRuleSpec):
        return DealRule(meta, compile_filter(spec.deal, DEAL_FIELDS), spec.min_upfront_share,
                        spec.severity, spec.at_risk)
    if isinstance(spec, JoinRuleSpec):
        deal = compile_filter(spec.deal, DEAL_FIELDS)
        churn = compile_filter(spec.churn, CHURN_FIELDS)
        if isinstance(spec.severity, str):
            fixed, tiers, otherwise = spec.severity, (), spec.severity
        else:
            fixed = None
            tiers = tuple((t.max_days, t.severity) for t in spec.severity.tiers)
            otherwise = spec.severity.otherwise
        return JoinRule(meta, spec.kind == "deal-after-churn", deal, churn, spec.within_days,
                        spec.unless_clawback_covers, fixed, tiers, otherwise, spec.at_risk)
    assert isinstance(spec, AggregateRuleSpec)
    threshold = spec.threshold
    op = next(k for k in THRESHOLD_OPS if getattr(threshold, k) is not None)
    min_deals = spec.min_deals if isinstance(spec.min_deals, dict) else {"all": spec.min_deals}
    return AggregateRule(
        meta, spec.measure, spec.group_by,
        compile_filter(spec.deal, DEAL_FIELDS), compile_filter(spec.churn, CHURN_FIELDS),
        spec.churn_within_days or 0.0, dict(min_deals), op, float(getattr(threshold, op)),
        spec.settle_days, spec.severity, spec.at_risk,
    )
