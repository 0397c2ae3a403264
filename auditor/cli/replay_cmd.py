"""`auditor replay`: the embedded default -- JSON Lines files through the rules, no broker."""

from __future__ import annotations

import argparse
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from prometheus_client import generate_latest, start_http_server

from auditor.cli.common import load_rules_or_exit
from auditor.engine.alerts import Alert
from auditor.events.deadletter import DeadLetter
from auditor.metrics.collector import build_registry
from auditor.replay.progress import Progress
from auditor.replay.runner import Replay
from auditor.replay.summary import FindingsDigest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="audit events from JSON Lines files (- for stdin)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files, - for stdin")
    p.add_argument("--rules", help="rules directory (default: the repo's rules/)")
    p.add_argument("--alerts-out", help="write alerts as JSON Lines to this file")
    p.add_argument("--deadletter-out", help="write dead letters as JSON Lines to this file")
    p.add_argument("--metrics-out", help="write metrics in Prometheus text format to this file")
    p.add_argument("--metrics-port", type=int,
                   help="serve metrics on this port after the replay, until interrupted")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address to serve metrics on")
    p.add_argument("--allowed-lateness-days", type=float, default=30.0,
                   help="how far behind the newest event time an event still counts as on time")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rules = load_rules_or_exit(args.rules)
    digest = FindingsDigest()
    with ExitStack() as stack:
        alerts_out = _open(stack, args.alerts_out)
        dead_out = _open(stack, args.deadletter_out)

        def on_alert(alert: Alert) -> None:
            digest.add(alert)
            if alerts_out is not None:
                alerts_out.write(alert.to_json() + "\n")

        def on_deadletter(letter: DeadLetter) -> None:
            if dead_out is not None:
                dead_out.write(letter.to_json() + "\n")

        replay = Replay(rules, on_alert=on_alert, on_deadletter=on_deadletter,
                        lateness_days=args.allowed_lateness_days,
                        progress=Progress(quiet=args.quiet))
        try:
            counters = replay.run_files(args.files)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not args.quiet:
        print(digest.render(counters))
    registry = build_registry(counters, replay.engine.live_values)
    if args.metrics_out:
        Path(args.metrics_out).write_bytes(generate_latest(registry))
    if args.metrics_port is not None:
        server, _ = start_http_server(args.metrics_port, args.metrics_host, registry)
        print(f"serving metrics on http://{args.metrics_host}:{server.server_port}/metrics "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        finally:
            server.shutdown()
    return 0


def _open(stack: ExitStack, path: str | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(open(path, "w", encoding="utf-8"))
