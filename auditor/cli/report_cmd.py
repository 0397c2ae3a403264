"""`auditor report --alerts FILE --out FILE`: a replay's results as one HTML file.

The page is self-contained (charts as inline SVG, style and script inline, nothing fetched),
so it opens offline. Optional inputs that are missing or unreadable leave their section saying
"not available" rather than failing the report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="a replay's results as one self-contained HTML file",
                       description="Writes one HTML file that opens offline: money by class, "
                       "rule and team per quarter, commission retention per plan and team, "
                       "the plan audit, a plan what-if, and a sortable table of the findings.")
    p.add_argument("--alerts", required=True, metavar="FILE",
                   help="alerts file (JSON Lines) of a replay")
    p.add_argument("--summary", metavar="FILE",
                   help="the replay's summary (auditor replay --summary-out); a missing file "
                   "is noted in the report")
    p.add_argument("--whatif", metavar="FILE", help="a plan what-if (auditor plans whatif "
                   "--json)")
    p.add_argument("--plans-audit", action="store_true",
                   help="include the plan audit (auditor plans audit) of the rules directory")
    p.add_argument("--rules", metavar="DIR", help="rules directory whose plans.yaml is audited "
                   "(default: the repo's rules/; implies --plans-audit)")
    p.add_argument("--out", required=True, metavar="FILE", help="HTML file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from auditor.cli.common import rules_dir
    from auditor.report.data import load_inputs
    from auditor.report.html import render

    rules = rules_dir(args.rules) if args.plans_audit or args.rules else None
    try:
        inputs = load_inputs(Path(args.alerts),
                             Path(args.summary) if args.summary else None,
                             Path(args.whatif) if args.whatif else None, rules)
    except OSError as exc:
        print(f"error: cannot read {args.alerts}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for number, why in inputs.alerts.skipped:
        print(f"warning: {args.alerts}:{number}: {why}; skipped", file=sys.stderr)
    for asked, part in ((args.summary, inputs.summary), (args.whatif, inputs.whatif),
                        (rules, inputs.plans)):
        if asked and part.value is None:
            print(f"note: {part.note}; that section says \"not available\"", file=sys.stderr)
    page = render(inputs)
    out = Path(args.out)
    try:
        _write_atomically(out, page)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"report: {out} ({len(inputs.alerts.findings):,} findings)")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old report or the new one, never half of one."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
