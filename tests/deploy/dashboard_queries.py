"""The queries of the "Commission vs retention" dashboard, for tests that run them.

    from dashboard_queries import panel_queries
    for title, expr in panel_queries():
        ...  # query Prometheus with expr

The dashboard's variables ($team, $plan, $rule, $class, $__range) are expanded the way Grafana
does with "All" selected, by deploy/grafana/panels_text.py's `expand` (the same code that
prints the panels in a terminal); `raw_panel_queries` gives them as written.

Standard library only, so an end-to-end test can import it without the deploy extras.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD_JSON = GRAFANA_DIR / "dashboards" / "commission-vs-retention.json"
PANELS_TEXT = GRAFANA_DIR / "panels_text.py"
# The time range the tests expand $__range to: the dashboard's default (now-7d).
TEST_RANGE = "7d"

# Metrics that only `auditor worker` exports: a panel built on them has no data from
# `auditor replay --metrics-port N`.
WORKER_ONLY_METRICS = frozenset({"auditor_consumer_lag"})


def load_dashboard(path: Path = DASHBOARD_JSON) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows themselves are skipped, panels inside rows are not)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panels_text() -> ModuleType:
    """deploy/grafana/panels_text.py, imported by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("comp_auditor_panels_text", PANELS_TEXT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_panel_queries(path: Path = DASHBOARD_JSON) -> list[tuple[str, str]]:
    """(panel title, expr as written, Grafana variables included) for every target of every
    panel, in dashboard order.

    Hidden targets are included. Panels with several targets give several tuples with the same
    title.
    """
    return [
        (panel["title"], target["expr"])
        for panel in iter_panels(load_dashboard(path))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def panel_queries(path: Path = DASHBOARD_JSON) -> list[tuple[str, str]]:
    """Like `raw_panel_queries`, with every variable at "All" and $__range at TEST_RANGE:
    plain PromQL, as Grafana sends it to Prometheus."""
    expand = panels_text().expand
    return [(title, expand(expr, time_range=TEST_RANGE)) for title, expr in raw_panel_queries(path)]
