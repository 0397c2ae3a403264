"""A rules directory as `explain` needs it: the compiled pack the engine runs, and beside it
each rule's spec (the YAML as validated), the named lists and the named measures, which the
compiled rules no longer show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from auditor.rules.loader import BUILTIN_MEASURES, NOT_RULE_FILES, load_rule_pack
from auditor.rules.measures import MeasureSpec
from auditor.rules.pack import RulePack
from auditor.rules.schema import rule_adapter
from auditor.rules.spec import RuleSpecBase, Scalar
from auditor.rules.yaml_source import load_yaml

AnySpec = RuleSpecBase
_LIST: TypeAdapter[list[Any]] = TypeAdapter(list[Scalar])
_MEASURE: TypeAdapter[MeasureSpec] = TypeAdapter(MeasureSpec)


@dataclass(frozen=True, slots=True)
class RuleBook:
    pack: RulePack
    specs: dict[str, AnySpec]  # every rule of the directory, enabled or not
    sources: dict[str, str]  # rule id -> file:line
    lists: dict[str, list[Any]]
    measures: dict[str, MeasureSpec]  # the built-in ones and the directory's, by name


def load_rule_book(directory: Path) -> RuleBook:
    """Raises RuleErrors, as `load_rule_pack` does, when the directory is wrong: only a
    directory the engine would run is read again, so every spec here validates."""
    pack = load_rule_pack(directory)
    specs: dict[str, AnySpec] = {}
    sources: dict[str, str] = {}
    lists: dict[str, list[Any]] = {}
    measures: dict[str, MeasureSpec] = {}
    for name, body in (load_yaml(BUILTIN_MEASURES).data.get("measures") or {}).items():
        measures[str(name)] = _MEASURE.validate_python(body)
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in NOT_RULE_FILES:
            continue
        doc = load_yaml(path)
        for name, values in (doc.data.get("lists") or {}).items():
            lists[str(name)] = _LIST.validate_python(values, strict=True)
        for name, body in (doc.data.get("measures") or {}).items():
            measures[str(name)] = _MEASURE.validate_python(body)
        for index, raw in enumerate(doc.data.get("rules") or []):
            spec = rule_adapter().validate_python(raw, strict=True)
            specs[spec.id] = spec
            sources[spec.id] = f"{doc.path}:{doc.line_of(('rules', index))}"
    return RuleBook(pack, specs, sources, lists, measures)
