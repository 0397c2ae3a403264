"""What finance sees on the "Commission vs retention" dashboard, as text in a terminal.

    python deploy/grafana/panels_text.py --prometheus http://localhost:9090

Runs every panel query of deploy/grafana/dashboards/commission-vs-retention.json against a
Prometheus and prints each panel's current values: a quick look without a Grafana, and what the
README's rendering of the dashboard was made with.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "commission-vs-retention.json"


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found.append(panel)
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["data"]["result"]  # type: ignore[no-any-return]


def render(prometheus: str, dashboard: dict[str, Any]) -> str:
    out = [f"== {dashboard.get('title', 'dashboard')} =="]
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            out.append(f"\n-- {panel['title']} --")
            continue
        out.append(f"{panel['title']}:")
        for target in panel.get("targets", []):
            for series in query(prometheus, target["expr"]):
                labels = ", ".join(f"{k}={v}" for k, v in sorted(series["metric"].items())
                                   if k != "__name__")
                value = float(series["value"][1])
                out.append(f"    {labels or '(total)':<60} {value:>16,.2f}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://localhost:9090")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    args = parser.parse_args()
    print(render(args.prometheus, json.loads(args.dashboard.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
