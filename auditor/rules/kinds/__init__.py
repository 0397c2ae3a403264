"""The rule kinds: one module each, exposing `KIND` (an auditor.rules.kind.RuleKind).

Adding a kind is adding a module here (and its tests): the loader, the rule-file schema, the
JSON Schema and the engine find it by this registry. Modules whose names start with `_` hold
what several kinds share.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from auditor.rules.kind import RuleKind

_registry: dict[str, RuleKind[Any]] = {}
_discovered: list[bool] = []


def kinds() -> dict[str, RuleKind[Any]]:
    """Every kind by name: this package's modules, then any `register`ed."""
    if not _discovered:
        _discovered.append(True)
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                _add(importlib.import_module(f"{__name__}.{module.name}").KIND)
    return _registry


def register(kind: RuleKind[Any]) -> None:
    """Add a kind whose module is elsewhere (a trial kind in a test)."""
    kinds()
    _add(kind)


def unregister(name: str) -> None:
    _registry.pop(name, None)


def _add(kind: RuleKind[Any]) -> None:
    known = _registry.get(kind.name)
    if known is not None and known is not kind:
        raise ValueError(f"rule kind {kind.name!r} is registered twice")
    _registry[kind.name] = kind
