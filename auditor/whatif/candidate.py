"""The candidate plans: a plans file of the registry's schema, or the registry with overrides.

An override is `PLAN.FIELD=VALUE`, e.g. `hunter-2026.clawback_days=180` or
`hunter-2026.rates.renewal=0.05`. VALUE is read as a YAML scalar (`180` is a number, `acv` is
text) and the changed plan is validated strictly, as plans.yaml is: `"180"` (text) for a number,
a share above 1 or an unknown plan or field is an error, with a "did you mean" when a near
name exists.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter

from auditor.errors import AuditorError
from auditor.rules.hints import did_you_mean
from auditor.rules.plans import PlanRegistry, PlanSpec, load_plans_file
from auditor.rules.validation import model_keys, validate
from auditor.rules.yaml_guard import GuardedLoader

_PLAN: TypeAdapter[PlanSpec] = TypeAdapter(PlanSpec)
# Fields a plan is known by, or that hold more than one value: a candidate file changes them.
_NOT_SETTABLE = {"id": "a plan's id", "accelerators": "the accelerators"}


class CandidateError(AuditorError):
    """A candidate that cannot be built: a bad `--set`, or nothing to apply it to."""


@dataclass(frozen=True, slots=True)
class Override:
    plan_id: str
    field: str  # dotted path inside the plan: `clawback_days`, `rates.renewal`
    value: Any
    text: str  # as given on the command line


def settable_fields() -> tuple[str, ...]:
    """Every single value of a plan that `--set` can change, as dotted paths."""
    found: list[str] = []
    for name, info in PlanSpec.model_fields.items():
        annotation = info.annotation
        if name in _NOT_SETTABLE:
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(f"{name}.{sub}" for sub in annotation.model_fields)
        elif get_origin(annotation) is dict:
            found.extend(f"{name}.{key}" for key in get_args(get_args(annotation)[0]))
        else:
            found.append(name)
    return tuple(found)


def parse_override(text: str, plan_ids: Collection[str]) -> Override:
    key, eq, raw = text.partition("=")
    if not eq or "." not in key:
        raise CandidateError(f"--set {text}: expected PLAN.FIELD=VALUE, "
                             "e.g. hunter-2026.clawback_days=180")
    # The longest plan id the key starts with: an id may itself hold a dot.
    matching = [p for p in plan_ids if key.startswith(p + ".")]
    if not matching:
        plan = key.split(".", 1)[0]
        known = ", ".join(sorted(plan_ids))
        raise CandidateError(f"--set {text}: unknown plan {plan!r}"
                             f"{did_you_mean(plan, plan_ids) or f' (plans: {known})'}")
    plan_id = max(matching, key=len)
    field = key[len(plan_id) + 1:]
    fields = settable_fields()
    if field in _NOT_SETTABLE:
        raise CandidateError(f"--set {text}: {_NOT_SETTABLE[field]} cannot be set here; "
                             "write a candidate plans file (--candidate)")
    if field not in fields:
        raise CandidateError(f"--set {text}: unknown field {field!r}"
                             f"{did_you_mean(field, fields) or '; fields: ' + ', '.join(fields)}")
    return Override(plan_id, field, _scalar(text, raw), text)


def _scalar(text: str, raw: str) -> Any:
    if not raw.strip():
        raise CandidateError(f"--set {text}: no value after '='")
    try:
        node = yaml.compose(raw, Loader=GuardedLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise CandidateError(f"--set {text}: not a YAML value: {problem}") from exc
    if node is not None and not isinstance(node, yaml.ScalarNode):
        raise CandidateError(f"--set {text}: a single value is expected (a number or a word)")
    if node is None:
        return None
    return yaml.constructor.SafeConstructor().construct_object(node)


def apply_overrides(registry: PlanRegistry, overrides: Sequence[Override]) -> PlanRegistry:
    """The registry with each override applied in turn, each change validated as it is made."""
    plans = dict(registry.plans)
    for override in overrides:
        data = plans[override.plan_id].model_dump()
        *parents, leaf = override.field.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = override.value
        plan, problems = validate(_PLAN, data, model_keys(PlanSpec))
        if problems:
            raise CandidateError(f"--set {override.text}: {problems[0].message}")
        plans[override.plan_id] = plan
    return PlanRegistry(plans, registry.audit, registry.source)


def build_candidate(registry: PlanRegistry | None, candidate_file: Path | None,
                    sets: Sequence[str]) -> PlanRegistry:
    """The candidate file if given, else the registry; then the overrides. RuleError when the
    file is invalid, CandidateError when an override is."""
    base = load_plans_file(candidate_file) if candidate_file is not None else registry
    if base is None:
        raise CandidateError("no plans to compare: the rules directory has no plans.yaml; "
                             "give --candidate PLANS_YAML")
    overrides = [parse_override(text, base.plans) for text in sets]
    return apply_overrides(base, overrides)


def changes(before: PlanSpec | None, after: PlanSpec) -> dict[str, list[Any]]:
    """{dotted field: [old, new]} for every value that differs; old is None for a new plan."""
    old = _flat(before.model_dump(mode="json")) if before is not None else {}
    new = _flat(after.model_dump(mode="json"))
    return {name: [old.get(name), value] for name, value in new.items()
            if name != "id" and old.get(name) != value}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
