"""rules/ directory -> a checked, compiled RulePack, or every error found with file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from auditor.errors import RuleError, RuleErrors
from auditor.events.currency import CurrencyTable
from auditor.rules.compiled import AggregateRule, DealRule, JoinRule, RuleMeta, RulePack
from auditor.rules.filters import (
    CHURN_FIELDS,
    DEAL_FIELDS,
    FilterError,
    NamedLists,
    compile_filter,
)
from auditor.rules.schema import (
    THRESHOLD_OPS,
    AggregateRuleSpec,
    CurrencyFile,
    DealRuleSpec,
    JoinRuleSpec,
    RuleFile,
)
from auditor.rules.yaml_source import YamlDocument, child_of, load_yaml

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
    files: list[tuple[YamlDocument, RuleFile]] = []
    lists: dict[str, list[Any]] = {}
    list_seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in NOT_RULE_FILES:
            continue
        sources.append(str(path))
        try:
            doc = load_yaml(path)
            rule_file = validate_document(doc, RuleFile)
        except RuleError as exc:
            errors.append(exc)
            continue
        files.append((doc, rule_file))
        for name, values in rule_file.lists.items():  # lists first: any rule may use any list
            where = f"{path}:{doc.line_of(('lists', name))}"
            if name in list_seen:
                errors.append(doc.error(f"duplicate list {name!r}, first defined at "
                                        f"{list_seen[name]}", ("lists", name)))
                continue
            list_seen[name] = where
            lists[name] = values

    for doc, rule_file in files:
        path = doc.path
        for index, spec in enumerate(rule_file.rules):
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
                                               spec.runbook.strip(), dict(spec.labels), where),
                                lists)
            except _SideFilterError as exc:
                errors.append(doc.error(str(exc), ("rules", index, exc.side, exc.field)))
                continue
            if isinstance(rule, DealRule):
                deal_rules.append(rule)
            elif isinstance(rule, JoinRule):
                join_rules.append(rule)
            else:
                aggregate_rules.append(rule)
    from auditor.plans.registry import load_plans  # it uses validate_document below

    plans = None
    try:
        plans = load_plans(directory)
    except RuleError as exc:
        errors.append(exc)
    if errors:
        raise RuleErrors(errors)
    return RulePack(tuple(deal_rules), tuple(join_rules), tuple(aggregate_rules), currency,
                    tuple(sources), plans)


def validate_document(doc: YamlDocument, model: type[M]) -> M:
    """`doc` as `model`, or the first problem as a RuleError naming file and line."""
    if not isinstance(doc.data, dict):
        raise doc.error(f"expected a mapping at the top of the file, with keys of "
                        f"{model.__name__}: {', '.join(model.model_fields)}")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        # A misspelt key also shows as the right key missing: name the misspelling, at its line.
        first = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
        loc = _without_union_tags(doc.data, tuple(first["loc"]))
        named = doc.existing(loc)
        # A missing key is not in the data, but is worth naming.
        if first["type"] == "missing" and loc:
            named = (*named, loc[-1])
        field = ".".join(str(p) for p in named) or "file"
        raise doc.error(f"{field}: {_plain(first)}", loc) from exc


def _without_union_tags(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the `kind` tags pydantic puts in a discriminated union's error path: a tag such as
    `deal` would otherwise be read as the rule's `deal:` key."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and out and isinstance(out[-1], int) and node.get("kind") == part:
            continue
        out.append(part)
        node = child_of(node, part)
    return tuple(out)


class _SideFilterError(FilterError):
    def __init__(self, side: str, exc: FilterError) -> None:
        super().__init__(exc.field, str(exc))
        self.side = side


def _filter(conditions: Any, side: str, lists: NamedLists) -> Any:
    try:
        return compile_filter(conditions, DEAL_FIELDS if side == "deal" else CHURN_FIELDS, lists)
    except FilterError as exc:
        raise _SideFilterError(side, exc) from exc


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
    spec = validate_document(doc, CurrencyFile)
    return CurrencyTable(spec.reporting_currency, dict(spec.rates))


def _compile(spec: Any, meta: RuleMeta, lists: NamedLists
             ) -> DealRule | JoinRule | AggregateRule:
    if isinstance(spec, DealRuleSpec):
        return DealRule(meta, _filter(spec.deal, "deal", lists), spec.min_upfront_share,
                        spec.severity, spec.at_risk)
    if isinstance(spec, JoinRuleSpec):
        deal = _filter(spec.deal, "deal", lists)
        churn = _filter(spec.churn, "churn", lists)
        tiers: tuple[tuple[float, str], ...] = ()
        if isinstance(spec.severity, str):
            fixed, otherwise = spec.severity, spec.severity
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
        _filter(spec.deal, "deal", lists), _filter(spec.churn, "churn", lists),
        spec.churn_within_days or 0.0, dict(min_deals), op, float(getattr(threshold, op)),
        spec.settle_days, spec.severity, spec.at_risk,
    )
