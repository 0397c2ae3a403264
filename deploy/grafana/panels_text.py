"""What finance sees on the "Commission vs retention" dashboard, as text in a terminal.

    python deploy/grafana/panels_text.py --prometheus http://localhost:9090
    python deploy/grafana/panels_text.py --team na-midmarket --class unrecovered --range 30d

Runs every PromQL panel query of deploy/grafana/dashboards/commission-vs-retention.json
against a Prometheus and prints each panel's current values, amounts with their currency and
shares as percentages: a quick look without a Grafana, and what the README's rendering of the
dashboard was made with (the findings table, SQL on the findings store, is only named). The
dashboard's variables are expanded as Grafana does: `--team`, `--plan`, `--rule` and `--class`
(each may be repeated; "All" when not given) and `$__range`, the time range the totals are
taken over (`--range`, default 7d, the dashboard's default range).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "commission-vs-retention.json"
DEFAULT_RANGE = "7d"
# What Grafana puts in a regex matcher when "All" is selected (the variables' allValue).
ALL = ".*"
_VARIABLE = re.compile(r"\$(__range|[A-Za-z_]\w*)\b|\$\{(\w+)\}")


def expand(expr: str, values: Mapping[str, Sequence[str]] | None = None,
           time_range: str = DEFAULT_RANGE) -> str:
    """`expr` with the dashboard's variables replaced as Grafana replaces them.

    A variable not in `values` (or given no value) is "All"; several values become
    `(a|b)`, regex-escaped, as Grafana formats a multi-value variable for Prometheus.
    """
    values = values or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "__range":
            return time_range
        chosen = list(values.get(name) or ())
        if not chosen:
            return ALL
        escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in chosen]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return _VARIABLE.sub(replace, expr)


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


def unit_of(panel: dict[str, Any], ref_id: str) -> str:
    """The unit Grafana shows a target's values in: a per-query override, else the panel's."""
    field_config = panel.get("fieldConfig", {})
    unit = field_config.get("defaults", {}).get("unit") or ""
    for override in field_config.get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") == "byFrameRefID" and matcher.get("options") == ref_id:
            for prop in override.get("properties", []):
                if prop.get("id") == "unit":
                    unit = prop["value"]
    return str(unit)


def format_value(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.1%}"
    if unit.startswith("currency:"):
        return f"{value:,.2f} {unit.removeprefix('currency:').strip()}"
    if re.fullmatch(r"currency[A-Z]{3}", unit):
        return f"{value:,.2f} {unit.removeprefix('currency')}"
    return f"{value:,.2f}"


def render(prometheus: str, dashboard: dict[str, Any],
           values: Mapping[str, Sequence[str]] | None = None,
           time_range: str = DEFAULT_RANGE) -> str:
    out = [f"== {dashboard.get('title', 'dashboard')} =="]
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            out.append(f"\n-- {panel['title']} --")
            continue
        out.append(f"{panel['title']}:")
        for target in panel.get("targets", []):
            if "expr" not in target:  # the findings table: SQL on the findings store
                out.append("    (a table of the PostgreSQL findings store: not shown here)")
                continue
            unit = unit_of(panel, target.get("refId", ""))
            rows = []
            for series in query(prometheus, expand(target["expr"], values, time_range)):
                labels = ", ".join(f"{k}={v}" for k, v in sorted(series["metric"].items())
                                   if k != "__name__")
                name = labels or f"({target.get('legendFormat') or 'total'})"
                rows.append((name, format_value(float(series["value"][1]), unit)))
            for name, value in sorted(rows):  # Prometheus answers in no particular order
                out.append(f"    {name:<64} {value:>18}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://localhost:9090")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--range", default=DEFAULT_RANGE, dest="time_range",
                        help="the time range totals are taken over ($__range), e.g. 7d, 90d")
    for name in ("team", "plan", "rule", "class"):
        parser.add_argument(f"--{name}", action="append", default=[], metavar="VALUE",
                            help=f"show only this {name} (repeat for several; default: all)")
    args = parser.parse_args()
    values = {name: getattr(args, name) for name in ("team", "plan", "rule", "class")}
    print(render(args.prometheus, json.loads(args.dashboard.read_text()), values,
                 args.time_range))
    return 0


if __name__ == "__main__":
    sys.exit(main())
