"""Safe YAML loading that remembers the line of every value, so errors can say file:line.

Composed by GuardedLoader (yaml_guard.py): plain tags only, alias expansion bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from auditor.errors import RuleError
from auditor.rules.yaml_guard import GuardedLoader, YamlRefused

Path_ = tuple[str | int, ...]


class YamlDocument:
    """Plain data from one YAML file, plus the 1-based line of each value by its path."""

    def __init__(self, path: Path, data: Any, lines: dict[Path_, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, loc: tuple[Any, ...]) -> int:
        """The line of the deepest value on `loc` that exists (pydantic adds union tags)."""
        return self.lines.get(self.existing(loc), 1)

    def existing(self, loc: tuple[Any, ...]) -> Path_:
        """The parts of `loc` that are real keys or indexes of the data, in order."""
        node = self.data
        found: Path_ = ()
        for part in loc:
            child = child_of(node, part)
            if child is not _MISSING:
                node = child
                found = (*found, part)
        return found

    def error(self, message: str, loc: tuple[Any, ...] = ()) -> RuleError:
        return RuleError(message, str(self.path), self.line_of(loc))


_MISSING = object()


def child_of(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def load_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read: {exc}", str(path)) from exc
    try:
        node = yaml.compose(text, Loader=GuardedLoader)
    except YamlRefused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise RuleError(str(exc.problem), str(path), line) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleError(f"not valid YAML: {exc.problem or exc}", str(path), line) from exc
    lines: dict[Path_, int] = {}
    data = _to_data(node, (), lines, path) if node is not None else None
    return YamlDocument(path, data, lines)


def _to_data(node: yaml.Node, at: Path_, lines: dict[Path_, int], path: Path) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise RuleError("YAML merge keys (<<) are not supported", str(path),
                                key_node.start_mark.line + 1)
            key = _scalar(key_node, path)
            if key in result:
                raise RuleError(f"duplicate key {key!r}", str(path), key_node.start_mark.line + 1)
            result[key] = _to_data(value_node, (*at, key), lines, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_data(item, (*at, i), lines, path) for i, item in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: yaml.Node, path: Path) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise RuleError("a key must be a plain value", str(path), node.start_mark.line + 1)
    # SafeConstructor resolves only plain YAML types: no Python objects, nothing executed.
    try:
        return _CONSTRUCTOR.construct_object(node)
    except ValueError as exc:  # a date-like value that is no date: 2026-02-30
        raise RuleError(f"{node.value!r} is not a valid date ({exc})", str(path),
                        node.start_mark.line + 1) from exc


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
