"""The report's charts: matplotlib figures rendered as inline SVG.

Why matplotlib as SVG (and not a JavaScript charting library): the report must open offline,
years later, from an e-mail attachment or a file share. Inline SVG needs no script and no
network, renders in every browser and prints; matplotlib is the long-maintained standard
plotting library of Python; with its bundled DejaVu fonts drawn as paths, a fixed hash salt and
no date, the same figures give the same bytes. Interactivity is limited to the tables, which
need a few lines of plain JavaScript, not a charting runtime of several megabytes.

Figures are built with the object API (matplotlib.figure.Figure), never pyplot: no global
state, no GUI backend, safe to call from any thread.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter
from matplotlib.typing import RcKeyType

# Money classes of the alert contract, in the order of the stack, with colours that keep
# their meaning from chart to chart; "unclassified" is an older alert without a class.
CLASS_COLOURS = {
    "unrecovered": "#c0392b",
    "recoverable": "#e67e22",
    "exposure": "#2e86c1",
    "overpaid": "#8e44ad",
    "unclassified": "#95a5a6",
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "path",  # glyphs as paths: no font needed where the report is opened
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(xlink:href="#|href="#|url\(#)([^")]+)')


@dataclass(frozen=True)
class Chart:
    name: str  # unique in the report; prefixes the SVG's ids
    title: str
    svg: str


def colour_for(label: str, index: int) -> str:
    return CLASS_COLOURS.get(label, PALETTE[index % len(PALETTE)])


def stacked_bars(name: str, title: str, periods: Sequence[str],
                 series: Mapping[str, Sequence[float]], ylabel: str) -> Chart:
    """Bars per period, stacked by series (in the order given)."""
    with matplotlib.rc_context(_RC):
        return _stacked_bars(name, title, periods, series, ylabel)


def _stacked_bars(name: str, title: str, periods: Sequence[str],
                  series: Mapping[str, Sequence[float]], ylabel: str) -> Chart:
    fig = _figure()
    ax = fig.add_subplot()
    positions = list(range(len(periods)))
    bottom = [0.0] * len(periods)
    for index, (label, values) in enumerate(series.items()):
        ax.bar(positions, list(values), bottom=list(bottom), label=label, width=0.7,
               color=colour_for(label, index))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(positions, list(periods), rotation=45 if len(periods) > 8 else 0,
                  ha="right" if len(periods) > 8 else "center")
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(_short_money))
    ax.grid(axis="y", linewidth=0.5, alpha=0.5)
    ax.set_axisbelow(True)
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, loc="left")
    return _render(name, title, fig)


@dataclass(frozen=True)
class Line:
    label: str
    periods: Sequence[str]
    values: Sequence[float | None]
    live: Sequence[bool]  # a live estimate, not settled yet


def share_lines(name: str, title: str, periods: Sequence[str], lines: Sequence[Line],
                target: float | None) -> Chart:
    """A share (0..1) per period, one line per group; settled points filled, live estimates
    hollow; the target as a dashed horizontal line."""
    with matplotlib.rc_context(_RC):
        return _share_lines(name, title, periods, lines, target)


def _share_lines(name: str, title: str, periods: Sequence[str], lines: Sequence[Line],
                 target: float | None) -> Chart:
    fig = _figure()
    ax = fig.add_subplot()
    where = {p: i for i, p in enumerate(periods)}
    for index, line in enumerate(lines):
        colour = colour_for(line.label, index)
        points = [(where[p], v, live) for p, v, live in
                  zip(line.periods, line.values, line.live, strict=True) if v is not None]
        xs = [x for x, _, _ in points]
        ys = [y for _, y, _ in points]
        ax.plot(xs, ys, color=colour, linewidth=1.6, label=line.label)
        settled = [(x, y) for x, y, live in points if not live]
        live = [(x, y) for x, y, live_ in points if live_]
        if settled:
            ax.plot(*zip(*settled, strict=True), linestyle="none", marker="o", markersize=5,
                    color=colour)
        if live:
            ax.plot(*zip(*live, strict=True), linestyle="none", marker="o", markersize=5,
                    markerfacecolor="white", color=colour)
    if target is not None:
        ax.axhline(target, color="#333333", linestyle="--", linewidth=1.0,
                   label=f"target {target:.0%}")
    ax.set_xticks(list(range(len(periods))), list(periods),
                  rotation=45 if len(periods) > 8 else 0,
                  ha="right" if len(periods) > 8 else "center")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("commission retained")
    ax.grid(axis="y", linewidth=0.5, alpha=0.5)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, loc="left")
    return _render(name, title, fig)


def _figure() -> Figure:
    return Figure(figsize=(8.6, 3.4), layout="constrained")


def _render(name: str, title: str, fig: Figure) -> Chart:
    buffer = io.StringIO()
    # A fixed salt per chart: ids are stable from run to run, and differ between charts.
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None,
                                                    "Title": title})
    return Chart(name, title, inline_svg(buffer.getvalue(), name, title))


def inline_svg(svg: str, name: str, title: str) -> str:
    """A standalone SVG document made fit to sit in an HTML page beside others: no XML
    prolog, ids (and references to them) prefixed with the chart's name so no two charts
    share one, scaled by CSS through its viewBox, labelled for screen readers."""
    svg = svg[svg.index("<svg"):]
    svg = _METADATA.sub("", svg)
    svg = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", svg)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    head += f' class="chart" data-chart="{name}" role="img" aria-label="{label}"'
    return head + svg[head_end:]


def _short_money(value: float, _position: float | None = None) -> str:
    """1.25M, 3.5k, 750: as few digits as tell the ticks apart."""
    magnitude = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{value / scale:,.2f}".rstrip("0").rstrip(".") + suffix
    return f"{value:,.2f}".rstrip("0").rstrip(".")
