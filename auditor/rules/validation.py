"""pydantic errors as sales ops should read them: one per mistake, at the data's own path.

pydantic reports a value that fits no member of a union once per member (`str`, `int`, ...,
`Comparison`), and a misspelt key twice (the unknown key, and the right key missing). Errors
are grouped by the place in the data they are about, the one that got deepest into the data is
kept, and a key missing next to an unknown one is taken as the same typo.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Set
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from auditor.errors import RuleError
from auditor.rules.hints import did_you_mean
from auditor.rules.yaml_source import YamlDocument, child_of

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
_MISSING = child_of(None, 0)  # what child_of returns for a part that is not in the data


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    loc: Loc  # a real path in the data (for the line)
    message: str  # starts with the path relative to the validated value, when there is one


def validate(adapter: TypeAdapter[Any], data: Any, vocabulary: Set[str] = frozenset()
             ) -> tuple[Any, list[SchemaProblem]]:
    """(value, []) or (None, every problem). Strict: rule files are never coerced."""
    try:
        return adapter.validate_python(data, strict=True), []
    except ValidationError as exc:
        return None, problems_of(exc, data, vocabulary)


def problems_of(exc: ValidationError, data: Any, vocabulary: Set[str] = frozenset()
                ) -> list[SchemaProblem]:
    errors = exc.errors(include_url=False)
    groups: dict[Loc, list[tuple[Loc, Any]]] = {}
    for error in errors:
        loc = _without_union_tags(data, tuple(error["loc"]))
        real = _existing(data, loc)
        groups.setdefault(_group(data, loc, error["type"]), []).append((real, error))
    unknown_parents = {real[:-1] for group in groups.values() for real, e in group
                       if e["type"] == "extra_forbidden"}
    problems = []
    for key, group in groups.items():
        real, error = max(group, key=lambda item: (item[1]["type"] == "extra_forbidden",
                                                   len(item[0]), item[1]["type"] == "missing"))
        if error["type"] == "missing" and key[:-1] in unknown_parents:
            continue  # the unknown key beside it is this key misspelt: said there
        shown = real
        if error["type"] == "missing" and key and key[-1] not in real:
            shown = (*real, key[-1])
        path = ".".join(str(p) for p in shown)
        text = _plain(error, real, vocabulary)
        problems.append(SchemaProblem(real, f"{path}: {text}" if path else text))
    return problems


def _group(data: Any, loc: Loc, kind: str) -> Loc:
    """The place an error is about: its path up to the first part that is not in the data (a
    union member's tag), plus the key itself when a key is missing."""
    node, out = data, list[str | int]()
    for part in loc[:-1] if kind == "missing" else loc:
        child = child_of(node, part)
        if child is _MISSING:
            return tuple(out)
        node, out = child, [*out, part]
    return (*out, loc[-1]) if kind == "missing" and loc else tuple(out)


def _existing(data: Any, loc: Loc) -> Loc:
    node, found = data, list[str | int]()
    for part in loc:
        child = child_of(node, part)
        if child is not _MISSING:
            node, found = child, [*found, part]
    return tuple(found)


def _without_union_tags(data: Any, loc: Loc) -> Loc:
    """Drop the `kind` tags pydantic puts in a discriminated union's path: a tag such as `deal`
    would otherwise be read as the rule's `deal:` key."""
    out: list[str | int] = []
    node, tag_skipped = data, False
    for part in loc:
        at_rule = not out or isinstance(out[-1], int)
        if isinstance(node, dict) and at_rule and node.get("kind") == part and not tag_skipped:
            tag_skipped = True  # once: `kind: deal` is followed by the `deal:` key
            continue
        tag_skipped = False
        out.append(part)
        node = child_of(node, part)
    return tuple(out)


_NUMBER_TYPES = {"float_type", "int_type", "float_parsing", "int_parsing", "int_from_float"}


def _plain(error: Any, real: Loc, vocabulary: Set[str]) -> str:
    kind, msg, given = error["type"], str(error["msg"]), error.get("input")
    if kind == "extra_forbidden":
        key = str(real[-1]) if real else ""
        hint = did_you_mean(key, vocabulary) if vocabulary else ""
        return f"unknown key{hint or ' (check the spelling; see the rule-file schema)'}"
    if kind == "missing":
        return "required key is missing"
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        return f"unknown kind: {tag}; expected {', '.join(expected)}" \
               f"{did_you_mean(tag, expected)}"
    if kind == "union_tag_not_found":
        return f"required key {str(ctx.get('discriminator', 'kind')).strip(chr(39))} is missing"
    if kind in _NUMBER_TYPES and isinstance(given, str):
        return f"{given!r} is text, not a number (write numbers without quotes or %; rule " \
               "files are not coerced)"
    if kind == "bool_type" and isinstance(given, str):
        return f"{given!r} is text: write true or false"
    if kind == "date_type":
        return (f"{given!r} is text: write a date unquoted, as YYYY-MM-DD"
                if isinstance(given, str) else "expected a date, written YYYY-MM-DD")
    return msg.removeprefix("Value error, ")


def model_keys(model: Any) -> frozenset[str]:
    """Every key (field name or alias) of `model` and the models it contains: the candidates
    for "did you mean" on an unknown key."""
    keys: set[str] = set()
    seen: set[int] = set()

    def walk(annotation: Any) -> None:
        if id(annotation) in seen:
            return
        seen.add(id(annotation))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, info in annotation.model_fields.items():
                keys.add(info.alias or name)
                walk(info.annotation)
            return
        for arg in typing.get_args(annotation):
            if isinstance(arg, (type, types.UnionType)) or typing.get_args(arg):
                walk(arg)

    walk(model)
    return frozenset(keys)


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
