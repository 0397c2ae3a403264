"""A YAML loader that refuses what a rule file never needs: tags beyond plain data, and aliases
that expand into more nodes than a rule file could hold ("billion laughs").

The bound is on alias expansion, counted while composing: every node keeps its expanded size
(itself plus its children, aliases included), and each alias adds its anchor's size to the
document's total. That total is exactly what turning the document into Python data would
build beyond the nodes written out, so the check is exact and costs one number per node;
nothing is expanded before it passes.
"""

from __future__ import annotations

from typing import Any

import yaml

# Expanded nodes that aliases may add to a document; the default pack uses none.
MAX_ALIAS_EXPANSION = 10_000
# Nesting deeper than any rule file needs; also keeps the recursive composer off Python's limit.
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
# Plain data only: no Python objects, sets, binary or custom `!tags`. timestamp is for rule
# tests' `base:`; merge keys pass here so the loader can name them (it refuses them itself).
ALLOWED_TAGS = frozenset(_CORE + name for name in (
    "str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge",
))


class YamlRefused(yaml.MarkedYAMLError):
    """Well-formed YAML that a rule file must not contain."""


def short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class GuardedLoader(yaml.SafeLoader):
    """SafeLoader (pure Python, so composing can be watched) with tag and alias bounds."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[yaml.Node, int] = {}
        self._expanded = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self._next_mark()
            node = super().compose_node(parent, index)
            size = self._sizes.get(node) if node is not None else None
            if size is None:  # the anchor is still open: the alias is inside its own anchor
                raise YamlRefused(problem="an alias refers to the collection that contains it",
                                  problem_mark=mark)
            self._expanded += size
            if self._expanded > MAX_ALIAS_EXPANSION:
                raise YamlRefused(problem=f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} "
                                          "values; write the values out instead",
                                  problem_mark=mark)
            return node
        mark = self._next_mark()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(problem=f"nested more than {MAX_DEPTH} levels deep",
                              problem_mark=mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is None:
            return None
        if node.tag not in ALLOWED_TAGS:
            raise YamlRefused(problem=f"YAML tag {short_tag(node.tag)} is not allowed (rule "
                                      "files hold plain values, lists and mappings only)",
                              problem_mark=node.start_mark)
        self._sizes[node] = 1 + _children_size(node, self._sizes)
        return node

    def _next_mark(self) -> yaml.Mark:
        mark: yaml.Mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return mark


def _children_size(node: yaml.Node, sizes: dict[yaml.Node, int]) -> int:
    if isinstance(node, yaml.SequenceNode):
        return sum(sizes[item] for item in node.value)
    if isinstance(node, yaml.MappingNode):
        return sum(sizes[key] + sizes[value] for key, value in node.value)
    return 0
