"""Golden alerts: what the default rule pack finds on fixed simulated streams, kept as digests.

Each stream of STREAMS is simulated with `auditor simulate` and replayed with `auditor replay`
and the default rules, as `make demo` does. Its golden file, tests/golden/<stream>.json, holds
the digests of the result instead of the multi-MB alerts file: the count and sha256 of the
simulated events, of the alerts file (JSON Lines, byte for byte) and, per rule, of that rule's
lines. tests/e2e/test_golden_alerts.py compares a fresh run with them, so a refactor that
changes any alert byte fails, and names the rules whose alerts changed and by how many.

When a change of alerts is intended (a rule edited, a bug fixed, the simulator changed):

    scripts/golden-alerts            # or: make golden-alerts

prints what changed against the golden files and rewrites them; commit them with the change.
`scripts/golden-alerts --check` only compares (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parent
ROOT = GOLDEN_DIR.parents[1]

# name -> the arguments of `auditor simulate`. "demo" is `make demo`'s stream; "bench" is one
# the size of the replay benchmark's --quick run (about 100,000 events, its seed).
STREAMS: dict[str, tuple[str, ...]] = {
    "demo": ("--accounts", "5000", "--months", "24", "--seed", "7"),
    "bench": ("--accounts", "60000", "--months", "24", "--seed", "42"),
}

Digest = dict[str, Any]


def golden_path(stream: str) -> Path:
    return GOLDEN_DIR / f"{stream}.json"


def _auditor() -> str:
    """The console script beside the interpreter running this (the project's venv)."""
    found = shutil.which("auditor", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(f"no auditor console script beside {sys.executable}: "
                         "pip install -e '.[test]'")
    return found


def run_stream(stream: str, workdir: Path) -> tuple[Path, Path]:
    """Simulates `stream` and replays it with the default rules: (events file, alerts file)."""
    events, alerts = workdir / f"{stream}-events.jsonl", workdir / f"{stream}-alerts.jsonl"
    auditor = _auditor()
    for args in (("simulate", *STREAMS[stream], "--out", str(events)),
                 ("replay", str(events), "--alerts-out", str(alerts), "--quiet")):
        done = subprocess.run([auditor, *args], cwd=workdir, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"auditor {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stderr[-4000:]}")
    return events, alerts


def _lines(path: Path) -> list[bytes]:
    """The file's lines, each with its newline (a last line without one is kept as it is)."""
    return path.read_bytes().splitlines(keepends=True)


def _sha256(lines: list[bytes]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
    return h.hexdigest()


def digest(stream: str, events: Path, alerts: Path) -> Digest:
    """The golden file's content for a run of `stream`."""
    alert_lines = _lines(alerts)
    by_rule: dict[str, list[bytes]] = {}
    for line in alert_lines:
        by_rule.setdefault(json.loads(line)["rule"], []).append(line)
    event_lines = _lines(events)
    return {
        "stream": stream,
        "simulate": list(STREAMS[stream]),
        "events": {"count": len(event_lines), "sha256": _sha256(event_lines)},
        "alerts": {"count": len(alert_lines), "sha256": _sha256(alert_lines)},
        "rules": {rule: {"count": len(lines), "sha256": _sha256(lines)}
                  for rule, lines in sorted(by_rule.items())},
    }


def compute(stream: str) -> Digest:
    with tempfile.TemporaryDirectory(prefix=f"golden-{stream}-") as tmp:
        return digest(stream, *run_stream(stream, Path(tmp)))


def load(stream: str) -> Digest:
    result: Digest = json.loads(golden_path(stream).read_text(encoding="utf-8"))
    return result


def write(stream: str, value: Digest) -> Path:
    path = golden_path(stream)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    return path


def differences(golden: Digest, actual: Digest) -> list[str]:
    """What differs between a golden digest and a run's, one line each; empty when equal."""
    out: list[str] = []
    if golden.get("simulate") != actual["simulate"]:
        out.append(f"the stream's arguments changed: {golden.get('simulate')} in the golden "
                   f"file, {actual['simulate']} now")
    g_events, a_events = golden.get("events", {}), actual["events"]
    if g_events != a_events:
        out.append(f"the simulated events are not the golden run's ({a_events['count']} events, "
                   f"golden {g_events.get('count')}): the simulator changed, so the alerts "
                   "below are not comparable")
    g_rules, a_rules = golden.get("rules", {}), actual["rules"]
    for rule in sorted({*g_rules, *a_rules}):
        was = g_rules.get(rule, {"count": 0, "sha256": None})
        now = a_rules.get(rule, {"count": 0, "sha256": None})
        if was == now:
            continue
        if was["count"] != now["count"]:
            delta = now["count"] - was["count"]
            out.append(f"{rule}: {now['count']} alerts, golden {was['count']} ({delta:+d})")
        else:
            out.append(f"{rule}: {now['count']} alerts as golden, but their bytes or order "
                       "differ")
    g_alerts, a_alerts = golden.get("alerts", {}), actual["alerts"]
    if g_alerts != a_alerts:
        if g_rules == a_rules:
            out.append("every rule's alerts are as golden, but their order across rules "
                       "differs")
        out.append(f"alerts file: {a_alerts['count']} alerts, golden {g_alerts.get('count')}; "
                   f"sha256 {a_alerts['sha256']}, golden {g_alerts.get('sha256')}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/golden-alerts",
        description="Regenerate (or, with --check, compare) the golden alert digests in "
                    "tests/golden/ from the current tree.")
    parser.add_argument("--check", action="store_true",
                        help="compare only; exit 1 when a stream's alerts differ")
    parser.add_argument("streams", nargs="*", metavar="STREAM",
                        help=f"streams to run ({', '.join(STREAMS)}; default: all)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.streams if s not in STREAMS]
    if unknown:
        parser.error(f"unknown stream(s) {', '.join(unknown)}: {', '.join(STREAMS)}")
    differ = False
    for stream in args.streams or list(STREAMS):
        actual = compute(stream)
        path = golden_path(stream)
        shown = path.relative_to(ROOT)
        changes = differences(load(stream), actual) if path.exists() else ["no golden file"]
        differ |= bool(changes)
        for change in changes:
            print(f"{stream}: {change}")
        if args.check:
            print(f"{shown}: {'differs' if changes else 'as golden'}")
        elif changes:
            write(stream, actual)
            print(f"{shown}: written ({actual['alerts']['count']} alerts, "
                  f"{len(actual['rules'])} rules)")
        else:
            print(f"{shown}: unchanged ({actual['alerts']['count']} alerts)")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
