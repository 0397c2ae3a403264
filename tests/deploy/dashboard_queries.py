"""The queries of the "Commission vs retention" dashboard, for tests that run them.

    from dashboard_queries import panel_queries
    for title, expr in panel_queries():
        ...  # query Prometheus with expr

Standard library only, so an end-to-end test can import it without the deploy extras.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD_JSON = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "grafana"
    / "dashboards"
    / "commission-vs-retention.json"
)

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


def panel_queries(path: Path = DASHBOARD_JSON) -> list[tuple[str, str]]:
    """(panel title, PromQL expr) for every target of every panel, in dashboard order.

    Hidden targets are included. Panels with several targets give several tuples with the same
    title.
    """
    return [
        (panel["title"], target["expr"])
        for panel in iter_panels(load_dashboard(path))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
