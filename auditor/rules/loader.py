"""rules/ directory -> a checked, compiled RulePack, or every error found with file and line.

Every part of a file is checked on its own (each list, each rule, each filter), so one run
reports every mistake, each once, as `file:line: rule-id: message`: a broken part is left out
of the checks of the others instead of causing errors there (no cascade). Any error refuses the
whole directory, so at start-up and hot reload the rules in force stay in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from auditor.errors import RuleError, RuleErrors
from auditor.events.currency import CurrencyTable
from auditor.rules.compiled import (
    AggregateRule,
    DealRule,
    JoinRule,
    MoneyClass,
    RuleMeta,
    RulePack,
)
from auditor.rules.domains import CHURN_DOMAINS, DEAL_DOMAINS
from auditor.rules.filter_check import Problem, check_filter
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS, FilterError, compile_filter
from auditor.rules.hints import did_you_mean
from auditor.rules.schema import (
    THRESHOLD_OPS,
    AggregateRuleSpec,
    Condition,
    CurrencyFile,
    DealRuleSpec,
    Filter,
    JoinRuleSpec,
    ListName,
    RuleFile,
    RuleSpec,
    Scalar,
)
from auditor.rules.validation import model_keys, validate
from auditor.rules.yaml_source import YamlDocument, load_yaml

CURRENCY_FILE = "currency.yaml"
# Files in a rules directory that are not rule files.
NOT_RULE_FILES = {CURRENCY_FILE, "plans.yaml"}

M = TypeVar("M", bound=BaseModel)

_RULE: TypeAdapter[Any] = TypeAdapter(RuleSpec)
_RULE_KEYS = model_keys(RuleFile)
_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_LIST_NAME: TypeAdapter[str] = TypeAdapter(ListName)
_LIST_VALUES: TypeAdapter[list[Any]] = TypeAdapter(list[Scalar])
_SIDES = {"deal": (DEAL_FIELDS, DEAL_DOMAINS), "churn": (CHURN_FIELDS, CHURN_DOMAINS)}


def default_rules_dir() -> Path:
    """The repo's rules/, next to the package."""
    return Path(__file__).resolve().parents[2] / "rules"


@dataclass
class _Lists:
    """Named lists of the directory. A list that failed its own check is kept, empty, so the
    rules using it are not also told it is unknown."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    where: dict[str, tuple[YamlDocument, str]] = field(default_factory=dict)  # doc, file:line
    unreadable: bool = False  # a file's lists could not be read: any name may be defined there
    reported: set[tuple[str, int]] = field(default_factory=set)  # entries already in error


def load_rule_pack(directory: Path) -> RulePack:
    """Load every rule file in `directory`; raise RuleErrors listing all problems, if any."""
    if not directory.is_dir():
        raise RuleErrors([RuleError("rules directory not found", str(directory))])
    errors: list[RuleError] = []
    currency = CurrencyTable()
    currency_path = directory / CURRENCY_FILE
    if currency_path.exists():
        currency = _load_currency(currency_path, errors) or currency

    sources: list[str] = []
    docs: list[YamlDocument] = []
    lists = _Lists()
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in NOT_RULE_FILES:
            continue
        sources.append(str(path))
        try:
            doc = load_yaml(path)
        except RuleError as exc:
            errors.append(exc)
            lists.unreadable = True
            continue
        if _read_top(doc, errors, lists):  # lists first: any rule may use any list
            docs.append(doc)

    rules: list[DealRule | JoinRule | AggregateRule] = []
    first_seen: dict[str, str] = {}  # every rule id, enabled or not
    for doc in docs:
        raw_rules = doc.data.get("rules", [])
        for index in range(len(raw_rules)):
            rule = _load_rule(doc, index, lists, first_seen, errors)
            if rule is not None:
                rules.append(rule)
    enabled = {r.meta.id for r in rules}
    from auditor.plans.registry import load_plans  # it uses validate_document below

    plans = None
    try:
        plans = load_plans(directory)
    except RuleError as exc:
        errors.append(exc)
    if errors:  # in file order, whichever check found them
        errors.sort(key=lambda e: (e.source or "", e.line or 0))
        raise RuleErrors(errors)
    return RulePack(tuple(r for r in rules if isinstance(r, DealRule)),
                    tuple(r for r in rules if isinstance(r, JoinRule)),
                    tuple(r for r in rules if isinstance(r, AggregateRule)),
                    currency, tuple(sources), plans,
                    tuple(sorted(set(first_seen) - enabled)))


def _read_top(doc: YamlDocument, errors: list[RuleError], lists: _Lists) -> bool:
    """Check a rule file's top level and read its lists; False when its rules cannot be read."""
    if not isinstance(doc.data, dict):
        errors.append(doc.error("expected a mapping at the top of the file, with keys "
                                + " and ".join(RuleFile.model_fields)))
        lists.unreadable = True
        return False
    for key in doc.data:
        if key not in RuleFile.model_fields:
            hint = did_you_mean(str(key), RuleFile.model_fields)
            errors.append(doc.error(f"{key}: unknown key{hint or '; expected lists or rules'}",
                                    (key,)))
    raw_lists = doc.data.get("lists", {})
    if not isinstance(raw_lists, dict):
        errors.append(doc.error("lists: expected a mapping of list names to lists", ("lists",)))
        lists.unreadable = True
    else:
        for name, values in raw_lists.items():
            _read_list(doc, str(name), values, lists, errors)
    if not isinstance(doc.data.get("rules", []), list):
        errors.append(doc.error("rules: expected a list of rules", ("rules",)))
        return False
    return True


def _read_list(doc: YamlDocument, name: str, values: Any, lists: _Lists,
               errors: list[RuleError]) -> None:
    loc = ("lists", name)
    where = f"{doc.path}:{doc.line_of(loc)}"
    if name in lists.where:
        errors.append(doc.error(f"list {name}: duplicate list {name!r}, first defined at "
                                f"{lists.where[name][1]}", loc))
        return
    lists.where[name] = (doc, where)
    lists.values[name] = []
    _, name_problems = validate(_LIST_NAME, name)
    if name_problems:
        errors.append(doc.error(f"list {name}: the name must be lowercase letters, digits, "
                                "_ or -", loc))
        return
    checked, problems = validate(_LIST_VALUES, values)
    for problem in problems:
        errors.append(doc.error(f"list {name}: {problem.message}", (*loc, *problem.loc)))
    if checked is not None:
        lists.values[name] = checked


def _label(raw: Any, index: int) -> str:
    """How errors name a rule: its id, or its place when it has none."""
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    return rule_id if isinstance(rule_id, str) and rule_id else f"rule #{index + 1}"


def _load_rule(doc: YamlDocument, index: int, lists: _Lists, first_seen: dict[str, str],
               errors: list[RuleError]) -> DealRule | JoinRule | AggregateRule | None:
    """One rule, checked and compiled; None when it has an error (recorded in `errors`)."""
    raw = doc.data["rules"][index]
    at = ("rules", index)
    label = _label(raw, index)
    before = len(errors)
    where = f"{doc.path}:{doc.line_of(at)}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        if raw["id"] in first_seen:
            errors.append(doc.error(f"{label}: duplicate rule id {raw['id']!r}, first defined "
                                    f"at {first_seen[raw['id']]}", (*at, "id")))
        else:
            first_seen[raw["id"]] = where
    spec, problems = validate(_RULE, raw, _RULE_KEYS)
    for problem in problems:
        errors.append(doc.error(f"{label}: {problem.message}", (*at, *problem.loc)))
    filters: dict[str, Filter] = {}
    for side in _SIDES:
        if spec is not None:
            filters[side] = getattr(spec, side, {})
        elif isinstance(raw, dict) and isinstance(raw.get(side), dict):
            # The rule is wrong elsewhere: the conditions that passed the schema are still
            # checked, for one full report; those that failed it were reported just above.
            filters[side] = {}
            for name, condition in raw[side].items():
                checked, failed = validate(_CONDITION, condition)
                if not failed and not any(p.loc[:2] == (side, name) for p in problems):
                    filters[side][name] = checked
    for side, conditions in filters.items():
        for found in _check_side(side, conditions, lists):
            if found.list_entry is not None:
                _list_entry_error(found, side, label, lists, errors)
            else:
                errors.append(doc.error(f"{label}: {side}.{found.field}: {found.message}",
                                        (*at, side, *found.loc)))
    if spec is None or len(errors) > before or not spec.enabled:
        return None  # a disabled rule is checked all the same: enabling it must not surprise
    if lists.unreadable:
        return None  # the directory is refused anyway; its lists may be in the unread file
    meta = RuleMeta(spec.id, spec.kind, spec.description.strip(), spec.runbook.strip(),
                    dict(spec.labels), where)
    try:
        return _compile(spec, meta, lists.values)
    except FilterError as exc:  # the checks above should have caught it; never crash a load
        errors.append(doc.error(f"{label}: {exc.field}: {exc}", at))
        return None


def _check_side(side: str, conditions: Filter, lists: _Lists) -> list[Problem]:
    fields, domains = _SIDES[side]
    return check_filter(conditions, fields, domains, lists.values, lists.unreadable)


def _list_entry_error(problem: Problem, side: str, label: str, lists: _Lists,
                      errors: list[RuleError]) -> None:
    """A bad value in a named list is reported once, at the list, however many rules use it."""
    assert problem.list_entry is not None
    name, index = problem.list_entry
    if problem.list_entry in lists.reported:
        return
    lists.reported.add(problem.list_entry)
    doc, _ = lists.where[name]
    errors.append(doc.error(f"list {name}: {problem.message} (the list is used for "
                            f"{side}.{problem.field} by {label})", ("lists", name, index)))


def validate_document(doc: YamlDocument, model: type[M]) -> M:
    """`doc` as `model` (strict: no coercion), or its first problem as a RuleError."""
    found = validate_all(doc, model)
    if isinstance(found, list):
        raise found[0]
    return found


def validate_all(doc: YamlDocument, model: type[M]) -> M | list[RuleError]:
    """`doc` as `model`, or every problem as a RuleError naming file and line."""
    if not isinstance(doc.data, dict):
        return [doc.error(f"expected a mapping at the top of the file, with keys of "
                          f"{model.__name__}: {', '.join(model.model_fields)}")]
    value, problems = validate(TypeAdapter(model), doc.data, model_keys(model))
    if problems:
        return [doc.error(p.message, p.loc) for p in problems]
    assert isinstance(value, model)
    return value


def _load_currency(path: Path, errors: list[RuleError]) -> CurrencyTable | None:
    try:
        doc = load_yaml(path)
    except RuleError as exc:
        errors.append(exc)
        return None
    spec = validate_all(doc, CurrencyFile)
    if isinstance(spec, list):
        errors.extend(spec)
        return None
    return CurrencyTable(spec.reporting_currency, dict(spec.rates))


def _compile(spec: Any, meta: RuleMeta, lists: dict[str, list[Any]]
             ) -> DealRule | JoinRule | AggregateRule:
    if isinstance(spec, DealRuleSpec):
        return DealRule(meta, compile_filter(spec.deal, DEAL_FIELDS, lists),
                        spec.min_upfront_share, spec.severity, spec.at_risk, _money(spec))
    if isinstance(spec, JoinRuleSpec):
        deal = compile_filter(spec.deal, DEAL_FIELDS, lists)
        churn = compile_filter(spec.churn, CHURN_FIELDS, lists)
        tiers: tuple[tuple[float, str], ...] = ()
        if isinstance(spec.severity, str):
            fixed, otherwise = spec.severity, spec.severity
        else:
            fixed = None
            tiers = tuple((t.max_days, t.severity) for t in spec.severity.tiers)
            otherwise = spec.severity.otherwise
        return JoinRule(meta, spec.kind == "deal-after-churn", deal, churn, spec.within_days,
                        spec.unless_clawback_covers, fixed, tiers, otherwise, spec.at_risk,
                        _money(spec))
    assert isinstance(spec, AggregateRuleSpec)
    threshold = spec.threshold
    op = next(k for k in THRESHOLD_OPS if getattr(threshold, k) is not None)
    min_deals = spec.min_deals if isinstance(spec.min_deals, dict) else {"all": spec.min_deals}
    return AggregateRule(
        meta, spec.measure, spec.group_by,
        compile_filter(spec.deal, DEAL_FIELDS, lists),
        compile_filter(spec.churn, CHURN_FIELDS, lists),
        spec.churn_within_days or 0.0, dict(min_deals), op, float(getattr(threshold, op)),
        spec.settle_days, spec.severity, spec.at_risk, _money(spec),
        spec.churn_within_months or 0,
    )


def _money(spec: Any) -> MoneyClass | None:
    stated = spec.money_class
    if stated is None:
        return None
    if isinstance(stated, str):
        return MoneyClass(stated)
    return MoneyClass(stated.otherwise, stated.clawback_covers)
