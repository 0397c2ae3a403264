"""rules/ directory -> a checked, compiled RulePack, or every error found with file and line.

Every part of a file is checked on its own (each list, each rule, each filter), so one run
reports every mistake, each once, as `file:line: rule-id: message`: a broken part is left out
of the checks of the others instead of causing errors there (no cascade). Any error refuses the
whole directory, so at start-up and hot reload the rules in force stay in force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from auditor.errors import RuleError, RuleErrors
from auditor.events.currency import CurrencyTable
from auditor.rules.compiled import CompiledRule, RuleMeta
from auditor.rules.domains import CHURN_DOMAINS, DEAL_DOMAINS
from auditor.rules.exceptions import RuleException
from auditor.rules.filter_check import Problem, check_filter
from auditor.rules.filters import CHURN_FIELDS, DEAL_FIELDS, FilterError, compile_filter
from auditor.rules.hints import did_you_mean
from auditor.rules.kind import CompileContext, SpecError
from auditor.rules.kinds import kinds
from auditor.rules.kinds.aggregate import Groupable
from auditor.rules.measures import MeasureSpec, measure_filters
from auditor.rules.pack import DEFAULT_BOUNDED, RulePack
from auditor.rules.plans import load_plans
from auditor.rules.schema import (
    TOP_KEYS,
    CurrencyFile,
    ListName,
    MeasureName,
    rule_adapter,
    rule_file_model,
)
from auditor.rules.spec import (
    EXCEPTION_KEYS,
    STATUS_LABEL,
    Comparison,
    Condition,
    Filter,
    RuleExceptionSpec,
    RuleSpecBase,
    Scalar,
)
from auditor.rules.validation import SchemaProblem, model_keys, validate, validate_all
from auditor.rules.yaml_source import YamlDocument, load_yaml

CURRENCY_FILE = "currency.yaml"
BUILTIN_MEASURES = Path(__file__).with_name("builtin_measures.yaml")
# Files in a rules directory that are not rule files.
NOT_RULE_FILES = {CURRENCY_FILE, "plans.yaml"}

_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_LIST_NAME: TypeAdapter[str] = TypeAdapter(ListName)
_LIST_VALUES: TypeAdapter[list[Any]] = TypeAdapter(list[Scalar])
_MEASURE_NAME: TypeAdapter[str] = TypeAdapter(MeasureName)
_MEASURE: TypeAdapter[MeasureSpec] = TypeAdapter(MeasureSpec)
_BOUNDED: TypeAdapter[list[str]] = TypeAdapter(list[Groupable])
_EVENTS = {"deal": (DEAL_FIELDS, DEAL_DOMAINS), "churn": (CHURN_FIELDS, CHURN_DOMAINS)}
# A rule whose kind is unknown (already an error): its filters are checked as these.
_DEFAULT_FILTERS = {"deal": "deal", "churn": "churn"}
# A schema problem's path inside a rule's exceptions: `exceptions.2.reason: ...`.
_EXCEPTION_PATH = re.compile(r"^exceptions\.(\d+)(\.|(?=:))")


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
    # Named measures, and names whose definition failed its check (not also "unknown").
    measures: dict[str, MeasureSpec] = field(default_factory=dict)
    measure_where: dict[str, str] = field(default_factory=dict)
    broken_measures: set[str] = field(default_factory=set)
    bounded: list[str] | None = None  # bounded_dimensions, from every file that gives them


def load_rule_pack(directory: Path, today: date | None = None) -> RulePack:
    """Load every rule file in `directory`; raise RuleErrors listing all problems, if any.
    With `today`, an exception that expired before it is one of them (`rules check`); to run,
    an expired exception loads and matches nothing after its day."""
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

    # Measures after lists (their filters may use any list), the built-in ones first.
    for doc in [load_yaml(BUILTIN_MEASURES), *docs]:
        _read_measures(doc, lists, errors)
    rules: list[CompiledRule] = []
    first_seen: dict[str, str] = {}  # every rule id, enabled or not
    for doc in docs:
        raw_rules = doc.data.get("rules", [])
        for index in range(len(raw_rules)):
            rule = _load_rule(doc, index, lists, first_seen, errors, today)
            if rule is not None:
                rules.append(rule)
    enabled = {r.meta.id for r in rules}
    plans = None
    try:
        plans = load_plans(directory)
    except RuleError as exc:
        errors.append(exc)
    if errors:  # in file order, whichever check found them
        errors.sort(key=lambda e: (e.source or "", e.line or 0))
        raise RuleErrors(errors)
    bounded = tuple(lists.bounded) if lists.bounded is not None else DEFAULT_BOUNDED
    return RulePack(tuple(rules), currency, tuple(sources), plans,
                    tuple(sorted(set(first_seen) - enabled)), bounded)


def _read_top(doc: YamlDocument, errors: list[RuleError], lists: _Lists) -> bool:
    """Check a rule file's top level and read its lists; False when its rules cannot be read."""
    if not isinstance(doc.data, dict):
        errors.append(doc.error("expected a mapping at the top of the file, with keys "
                                + ", ".join(TOP_KEYS)))
        lists.unreadable = True
        return False
    for key in doc.data:
        if key not in TOP_KEYS:
            hint = did_you_mean(str(key), TOP_KEYS)
            errors.append(doc.error(f"{key}: unknown key"
                                    f"{hint or '; expected ' + ', '.join(TOP_KEYS)}", (key,)))
    if "bounded_dimensions" in doc.data:
        bounded, problems = validate(_BOUNDED, doc.data["bounded_dimensions"])
        for problem in problems:
            errors.append(doc.error(f"bounded_dimensions: {problem.message}",
                                    ("bounded_dimensions", *problem.loc)))
        if bounded:
            lists.bounded = sorted({*(lists.bounded or ()), *bounded})
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


def _read_measures(doc: YamlDocument, lists: _Lists, errors: list[RuleError]) -> None:
    raw = doc.data.get("measures", {})
    if not isinstance(raw, dict):
        errors.append(doc.error("measures: expected a mapping of measure names to measures",
                                ("measures",)))
        return
    for name, body in raw.items():
        name = str(name)
        loc = ("measures", name)
        where = f"{doc.path}:{doc.line_of(loc)}"
        if name in lists.measure_where:
            errors.append(doc.error(f"measure {name}: duplicate measure {name!r}, first "
                                    f"defined at {lists.measure_where[name]}", loc))
            continue
        lists.measure_where[name] = where
        before = len(errors)
        if validate(_MEASURE_NAME, name)[1]:
            errors.append(doc.error(f"measure {name}: the name must be lowercase letters, "
                                    "digits, _ or -", loc))
        spec, problems = validate(_MEASURE, body, model_keys(MeasureSpec))
        for problem in problems:
            errors.append(doc.error(f"measure {name}: {problem.message}",
                                    (*loc, *problem.loc)))
        if spec is not None:
            for at, conditions in measure_filters(spec).items():
                for found in _check_side("deal", conditions, lists):
                    errors.append(doc.error(
                        f"measure {name}: {'.'.join(at)}.{found.field}: {found.message}",
                        (*loc, *at, *found.loc)))
        if spec is None or len(errors) > before:
            lists.broken_measures.add(name)
        else:
            lists.measures[name] = spec


def _label(raw: Any, index: int) -> str:
    """How errors name a rule: its id, or its place when it has none."""
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    return rule_id if isinstance(rule_id, str) and rule_id else f"rule #{index + 1}"


def _load_rule(doc: YamlDocument, index: int, lists: _Lists, first_seen: dict[str, str],
               errors: list[RuleError], today: date | None = None) -> CompiledRule | None:
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
    spec, problems = validate(rule_adapter(), raw, _rule_keys())
    for problem in problems:
        errors.append(doc.error(f"{label}: {_exception_named(problem.message, raw)}",
                                (*at, *problem.loc)))
    kind = kinds().get(str(raw.get("kind"))) if isinstance(raw, dict) else None
    sides = kind.spec.FILTERS if kind is not None else _DEFAULT_FILTERS
    filters: dict[str, tuple[str, Filter]] = {}  # key -> (event, conditions)
    for side, event in sides.items():
        if spec is not None:
            filters[side] = (event, getattr(spec, side, {}))
        elif isinstance(raw, dict) and isinstance(raw.get(side), dict):
            # The rule is wrong elsewhere: the conditions that passed the schema are still
            # checked, for one full report; those that failed it were reported just above.
            conditions: Filter = {}
            for name, condition in raw[side].items():
                checked, failed = validate(_CONDITION, condition)
                if not failed and not any(p.loc[:2] == (side, name) for p in problems):
                    conditions[name] = checked
            filters[side] = (event, conditions)
    if spec is not None and isinstance(getattr(spec, "measure", None), MeasureSpec):
        for place, conditions in measure_filters(spec.measure).items():
            filters[".".join(("measure", *place))] = ("deal", conditions)
    elif (spec is not None and isinstance(getattr(spec, "measure", None), str)
          and spec.measure in lists.broken_measures):
        return None  # reported at the measure
    for side, (event, conditions) in filters.items():
        for found in _check_side(event, conditions, lists):
            if found.list_entry is not None:
                _list_entry_error(found, side, label, lists, errors)
            else:
                errors.append(doc.error(f"{label}: {side}.{found.field}: {found.message}",
                                        (*at, *side.split("."), *found.loc)))
    _check_exceptions(doc, at, label, raw, spec, problems, lists, errors, today)
    if spec is None or len(errors) > before or not spec.enabled:
        return None  # a disabled rule is checked all the same: enabling it must not surprise
    if lists.unreadable:
        return None  # the directory is refused anyway; its lists may be in the unread file
    assert isinstance(spec, RuleSpecBase) and kind is not None
    labels = dict(spec.labels)
    if spec.status != "stable":
        labels[STATUS_LABEL] = spec.status
    try:
        exceptions = tuple(_compile_exception(doc, (*at, "exceptions", i), exception, lists)
                           for i, exception in enumerate(spec.exceptions))
        meta = RuleMeta(spec.id, kind.name, spec.description.strip(), spec.runbook.strip(),
                        labels, where, spec.status, exceptions)
        return kind.compile(spec, CompileContext(meta, lists.values, lists.measures))
    except SpecError as exc:
        errors.append(doc.error(f"{label}: {exc}", (*at, *exc.loc)))
    except FilterError as exc:  # the checks above should have caught it; never crash a load
        errors.append(doc.error(f"{label}: {exc.field}: {exc}", at))
    return None


def _exception_label(raw: Any, index: int) -> str:
    """How errors name an exception of a rule: `exceptions[name]`, or its place."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"exceptions[{name}]" if isinstance(name, str) and name else (
        f"exceptions[#{index + 1}]")


def _exception_named(message: str, raw: Any) -> str:
    """A schema problem inside an exception, said with the exception's name."""
    found = _EXCEPTION_PATH.match(message)
    if found is None or not isinstance(raw, dict) or not isinstance(raw.get("exceptions"), list):
        return message
    index = int(found.group(1))
    items = raw["exceptions"]
    label = _exception_label(items[index] if index < len(items) else None, index)
    rest = message[found.end():]
    return f"{label}: {rest}" if found.group(2) else label + rest


def _check_exceptions(doc: YamlDocument, at: tuple[str | int, ...], label: str, raw: Any,
                      spec: RuleSpecBase | None, problems: list[SchemaProblem], lists: _Lists,
                      errors: list[RuleError], today: date | None) -> None:
    """What the schema cannot see in a rule's exceptions: names used twice, deal filters,
    keys its findings never have, and (with `today`) those already expired."""
    items = raw.get("exceptions") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return
    specs: list[RuleExceptionSpec] | None = spec.exceptions if spec is not None else None
    group_by = spec.grouped_by() if spec is not None else None
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        loc = (*at, "exceptions", i)
        name = _exception_label(item, i)
        given = item.get("name") if isinstance(item, dict) else None
        if isinstance(given, str):
            if given in seen:
                errors.append(doc.error(f"{label}: {name}: duplicate exception name, first "
                                        f"at line {seen[given]}", (*loc, "name")))
            else:
                seen[given] = doc.line_of(loc)
        conditions: Filter = {}
        if specs is not None:
            conditions = specs[i].deal or {}
        elif isinstance(item, dict) and isinstance(item.get("deal"), dict):
            # As for the rule's own filters: what passed the schema is still checked.
            for field_name, condition in item["deal"].items():
                checked, failed = validate(_CONDITION, condition)
                if not failed and not any(p.loc[:4] == ("exceptions", i, "deal", field_name)
                                          for p in problems):
                    conditions[field_name] = checked
        for found in _check_side("deal", conditions, lists):
            if found.list_entry is not None:
                _list_entry_error(found, f"{name}.deal", label, lists, errors)
            else:
                errors.append(doc.error(f"{label}: {name}: deal.{found.field}: "
                                        f"{found.message}", (*loc, "deal", *found.loc)))
        expires = item.get("expires") if isinstance(item, dict) else None
        if (today is not None and isinstance(expires, date) and not isinstance(expires, datetime)
                and expires < today):
            errors.append(doc.error(f"{label}: {name}: expired on {expires.isoformat()}", loc))
        if specs is None:
            continue
        exception = specs[i]
        if group_by is not None:
            matched_by = (f"matched by {group_by} only" if group_by in EXCEPTION_KEYS
                          else "which no exception key matches")
            for key in [*exception.values(), *(["deal"] if exception.deal else [])]:
                if key != group_by:
                    errors.append(doc.error(
                        f"{label}: {name}: {key}: never matches: the rule's findings are "
                        f"groups of deals by {group_by}, {matched_by}", (*loc, key)))


def _compile_exception(doc: YamlDocument, loc: tuple[str | int, ...],
                       spec: RuleExceptionSpec, lists: _Lists) -> RuleException:
    matches: dict[str, Any] = {key: list(values) if len(values) > 1 else values[0]
                               for key, values in spec.values().items()}
    if spec.deal:
        matches["deal"] = {name: c.model_dump(exclude_none=True, by_alias=True)
                           if isinstance(c, Comparison) else c
                           for name, c in spec.deal.items()}
    return RuleException(
        spec.name, spec.reason.strip(), spec.owner.strip(), spec.expires,
        tuple((key, frozenset(values)) for key, values in spec.values().items()),
        compile_filter(spec.deal or {}, DEAL_FIELDS, lists.values), matches,
        f"{doc.path}:{doc.line_of(loc)}")


def _rule_keys() -> frozenset[str]:
    """Every key any rule may have: the candidates for "did you mean"."""
    return model_keys(rule_file_model())


def _check_side(event: str, conditions: Filter, lists: _Lists) -> list[Problem]:
    fields, domains = _EVENTS[event]
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
