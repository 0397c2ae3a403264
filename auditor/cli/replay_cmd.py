"""`auditor replay`: the embedded default -- JSON Lines files through the rules, no broker."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from prometheus_client import generate_latest, start_http_server

from auditor.cli.common import add_jobs_argument, load_rules_or_exit, rules_dir
from auditor.engine.alerts import Alert
from auditor.errors import RuleErrors
from auditor.events.deadletter import DeadLetter
from auditor.metrics.collector import build_registry
from auditor.metrics.retention import RetentionCollector
from auditor.plans.metrics import PlanFindingsCollector
from auditor.replay.parallel import make_replay, resolve_jobs
from auditor.replay.progress import Progress
from auditor.replay.runner import Replay
from auditor.replay.summary import FindingsDigest, summary_data
from auditor.rules.pack import RulePack
from auditor.rules.reload import DEFAULT_INTERVAL_SECONDS, RuleReloader


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="audit events from JSON Lines files (- for stdin)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files, - for stdin")
    p.add_argument("--rules", help="rules directory (default: the repo's rules/)")
    p.add_argument("--alerts-out", help="write alerts as JSON Lines to this file")
    p.add_argument("--deadletter-out", help="write dead letters as JSON Lines to this file")
    p.add_argument("--metrics-out", help="write metrics in Prometheus text format to this file")
    p.add_argument("--summary-out",
                   help="write the summary as JSON to this file (what `auditor report` reads)")
    p.add_argument("--metrics-port", type=int,
                   help="serve metrics on this port after the replay, until interrupted")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address to serve metrics on")
    p.add_argument("--reload-seconds", type=float, default=DEFAULT_INTERVAL_SECONDS,
                   help="with --metrics-port: how often to look for changed rule files and "
                        "reload them (0: never)")
    p.add_argument("--allowed-lateness-days", type=float, default=30.0,
                   help="how far behind the newest event time an event still counts as on time")
    add_jobs_argument(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rules = load_rules_or_exit(args.rules)
    feeding = threading.Event()
    digest = FindingsDigest()
    with ExitStack() as stack:
        # Reading a live pipe: write each output line as it comes, for whoever tails the file.
        live = "-" in args.files
        alerts_out = _open(stack, args.alerts_out, live)
        dead_out = _open(stack, args.deadletter_out, live)

        def on_alert(alert: Alert) -> None:
            digest.add(alert)
            if alerts_out is not None:
                alerts_out.write(alert.to_json() + "\n")

        def on_deadletter(letter: DeadLetter) -> None:
            if dead_out is not None:
                dead_out.write(letter.to_json() + "\n")

        reloading = args.metrics_port is not None and args.reload_seconds > 0
        # Reloaded rules apply from the next event: in one process only.
        jobs = 1 if reloading else resolve_jobs(args.jobs, args.files)
        if reloading and args.jobs is not None and args.jobs > 1:
            print("note: --metrics-port reloading rules runs in one process (--jobs 1); "
                  "--reload-seconds 0 allows more", file=sys.stderr)
        replay = make_replay(rules, jobs, on_alert=on_alert, on_deadletter=on_deadletter,
                             lateness_days=args.allowed_lateness_days,
                             progress=Progress(quiet=args.quiet))
        if reloading and isinstance(replay, Replay):
            _watch_rules(replay, rules_dir(args.rules), args.reload_seconds, feeding)
        feeding.set()
        try:
            counters = replay.run_files(args.files)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            with _handover:
                feeding.clear()
                if replay.pending_rules is not None:  # arrived with the last line
                    replay.set_rules(replay.pending_rules)
                    replay.pending_rules = None
    if not args.quiet:
        print(digest.render(counters, replay.engine.aggregate.retention_values))
    if args.summary_out:
        path = Path(args.summary_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = summary_data(counters, digest, replay.engine.aggregate.retention_values)
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    plans = PlanFindingsCollector(lambda: replay.engine.rules.plans)
    retention = RetentionCollector(counters, replay.engine.aggregate.retention_values)
    registry = build_registry(counters, replay.engine.live_values, extra=[plans, retention])
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


# Decides, atomically with the end of input, whether a reloaded pack is handed to the feed loop.
_handover = threading.Lock()


def _watch_rules(replay: Replay, directory: Path, interval: float,
                 feeding: threading.Event) -> None:
    """A serving replay follows its rules directory: a good change applies from the next event
    (or at once, after the input), a bad one is refused and flagged in the metrics."""

    def loaded(pack: RulePack) -> None:
        with _handover:
            if feeding.is_set():
                replay.pending_rules = pack  # taken by the feed loop between two events
            else:
                replay.set_rules(pack)
        print(f"rules reloaded: {pack.rule_count} rules", file=sys.stderr, flush=True)

    def refused(errors: RuleErrors) -> None:  # the reloader has logged each error
        replay.counters.rules_reloaded(None)

    reloader = RuleReloader(directory, loaded, refused)

    def loop() -> None:
        while True:
            time.sleep(interval)
            reloader.poll()

    threading.Thread(target=loop, name="rules-reload", daemon=True).start()


def _open(stack: ExitStack, path: str | None, line_buffered: bool) -> TextIO | None:
    if path is None:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(open(path, "w", encoding="utf-8",
                                    buffering=1 if line_buffered else -1))
