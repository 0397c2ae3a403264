"""Replay throughput on simulated events, next to the cost of only parsing the same lines.

    python benchmarks/replay_throughput.py [--events N | --quick] [--seed S] [--tracemalloc]

The event file is generated once with auditor.simulate (a fixed seed) and cached under out/,
named by its size and seed. Each stage then runs in a fresh Python process (a subprocess, not a
fork), so no stage inherits another's heap and each peak RSS is that stage's own:

  read lines     -- iterate over the file's lines: the floor under every stage below
  json.loads     -- json.loads of every line
  pydantic only  -- the event contract's validation from raw bytes (EVENT_ADAPTER.validate_json)
                    on every line, no engine
  decode         -- EventDecoder.decode: validation, currency conversion, dead letters
  replay         -- auditor.replay.runner.Replay built as `auditor replay FILE -q` builds it,
                    through the default rules, no output files

Every stage streams the file as the replay does, so reading it costs the same in each. Times
cover the stage's loop only: imports and loading the rules are left out. With --tracemalloc a
further process replays the file under tracemalloc and reports the peak of traced Python memory
(its run time is not a throughput figure: tracing slows it several times).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out"
SEED = 42
MONTHS = 24
QUICK_EVENTS = 100_000
# Events per simulated account over 24 months, a little under what the simulator yields (1.71),
# so one run of it gives enough lines; the file keeps exactly the first N.
EVENTS_PER_ACCOUNT = 1.68


class StageResult(TypedDict):
    stage: str
    events: int
    seconds: float
    start_rss_kib: int  # peak RSS before the stage's loop: the interpreter and its imports
    peak_rss_kib: int
    alerts: int
    traced_peak_bytes: int


# ---------------------------------------------------------------------------- event file


def events_file(events: int, seed: int) -> Path:
    """The cached file of exactly `events` simulated events, generated when missing."""
    path = CACHE / f"bench-{events}-seed{seed}.jsonl"
    if not path.exists():
        started = time.perf_counter()
        # In a child too: the simulator holds every line in memory to sort them.
        _run_child(["--generate", str(events), str(seed), str(path)])
        print(f"simulated {events:,} events into {_shown(path)} in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    return path


def generate(events: int, seed: int, path: Path) -> None:
    from auditor.simulate.generator import Simulator

    accounts = math.ceil(events / EVENTS_PER_ACCOUNT)
    while True:
        lines = 0
        tmp = path.with_name(path.name + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as out:
            for line in Simulator(accounts=accounts, months=MONTHS, seed=seed).lines():
                out.write(line)
                out.write("\n")
                lines += 1
                if lines == events:
                    break
        if lines == events:
            tmp.replace(path)
            return
        accounts = math.ceil(accounts * 1.1)  # short of lines: more accounts, same seed


# ---------------------------------------------------------------------------- stages
# Each sets up (imports, rules) and returns the timed part: a call giving (events, alerts).

Run = Callable[[], tuple[int, int]]


def stage_read(path: Path) -> Run:
    def run() -> tuple[int, int]:
        count = 0
        with open(path, "rb") as f:
            for _ in f:
                count += 1
        return count, 0

    return run


def stage_json(path: Path) -> Run:
    loads = json.loads

    def run() -> tuple[int, int]:
        count = 0
        with open(path, "rb") as f:
            for line in f:
                loads(line)
                count += 1
        return count, 0

    return run


def stage_pydantic(path: Path) -> Run:
    from auditor.events.models import EVENT_ADAPTER

    validate = EVENT_ADAPTER.validate_json

    def run() -> tuple[int, int]:
        count = 0
        with open(path, "rb") as f:
            for line in f:
                validate(line)
                count += 1
        return count, 0

    return run


def stage_decode(path: Path) -> Run:
    """The runner's per-line work before the engine: strip, source name, decode."""
    from auditor.events.decode import EventDecoder
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    decode = EventDecoder(load_rule_pack(default_rules_dir()).currency).decode
    name = str(path)

    def run() -> tuple[int, int]:
        count = 0
        with open(path, "rb") as f:
            for count, line in enumerate(f, 1):
                decode(line.rstrip(b"\r\n"), f"{name}:{count}")
        return count, 0

    return run


def stage_replay(path: Path) -> Run:
    """What `auditor replay FILE -q` runs: the same Replay, alert digest and (quiet) progress."""
    from auditor.replay.progress import Progress
    from auditor.replay.runner import Replay
    from auditor.replay.summary import FindingsDigest
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    digest = FindingsDigest()
    replay = Replay(load_rule_pack(default_rules_dir()), on_alert=digest.add,
                    progress=Progress(quiet=True))

    def run() -> tuple[int, int]:
        counters = replay.run_files([str(path)])
        return sum(counters.events.values()), sum(digest.by_rule.values())

    return run


STAGES: dict[str, Callable[[Path], Run]] = {
    "read lines": stage_read,
    "json.loads": stage_json,
    "pydantic only": stage_pydantic,
    "decode": stage_decode,
    "replay": stage_replay,
}
TRACED = "replay, traced"


def child_stage(name: str, path: Path) -> StageResult:
    """Runs in the child process: one stage, timed, with its memory figures."""
    traced = name == TRACED
    # Every child imports the package first, so each starts from the same resident memory.
    import auditor.replay.runner
    import auditor.replay.summary  # noqa: F401

    run = STAGES["replay" if traced else name](path)
    start_rss = _max_rss_kib()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    events, alerts = run()
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
    tracemalloc.stop()
    return StageResult(stage=name, events=events, seconds=seconds, start_rss_kib=start_rss,
                       peak_rss_kib=_max_rss_kib(), alerts=alerts,
                       traced_peak_bytes=traced_peak)


def _max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# ---------------------------------------------------------------------------- parent


def _run_child(args: list[str]) -> str:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {args[:2]} failed with exit code {done.returncode}")
    return done.stdout


def run_stage(name: str, path: Path) -> StageResult:
    result: StageResult = json.loads(_run_child(["--stage", name, str(path)]))
    return result


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import pydantic

    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"pydantic {pydantic.VERSION}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} cores ({usable} usable), {cpu}")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=1_000_000,
                      help="simulated events to replay (default 1,000,000)")
    size.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events")
    parser.add_argument("--seed", type=int, default=SEED, help=f"simulator seed ({SEED})")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also replay under tracemalloc, in its own process, and report "
                             "the peak of traced Python memory")
    parser.add_argument("--stage", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, metavar=("EVENTS", "SEED", "FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # child: one stage, its result as JSON on stdout
        print(json.dumps(child_stage(args.stage[0], Path(args.stage[1]))))
        return 0
    if args.generate:  # child: the event file
        generate(int(args.generate[0]), int(args.generate[1]), Path(args.generate[2]))
        return 0

    events = QUICK_EVENTS if args.quick else args.events
    if events < 1:
        parser.error("--events must be at least 1")
    path = events_file(events, args.seed)
    print(f"{events:,} simulated events (seed {args.seed}) in {_shown(path)}")
    print(f"machine: {machine()}")
    print("each stage in a fresh process; times exclude imports and rule loading", flush=True)
    header = (f"{'stage':<14} {'events/s':>10} {'seconds':>8} {'us/event':>9} "
              f"{'start RSS MiB':>14} {'peak RSS MiB':>13}")
    print(header)
    print("-" * len(header))
    results: dict[str, StageResult] = {}

    def rate(name: str) -> float:
        return results[name]["events"] / results[name]["seconds"]

    for name in STAGES:
        result = results[name] = run_stage(name, path)
        print(f"{name:<14} {rate(name):>10,.0f} {result['seconds']:>8.2f} "
              f"{1e6 / rate(name):>9.2f} {result['start_rss_kib'] / 1024:>14,.0f} "
              f"{result['peak_rss_kib'] / 1024:>13,.0f}", flush=True)
    replay = results["replay"]
    print(f"replay: {replay['events']:,} events in, {replay['alerts']:,} alerts out")
    print(f"replay / pydantic only = {rate('replay') / rate('pydantic only'):.3f}; "
          f"replay / json.loads = {rate('replay') / rate('json.loads'):.3f}")
    beyond = 1e6 / rate("replay") - 1e6 / rate("decode")
    print(f"replay beyond decode (engine, metrics, runner): {beyond:.1f} us/event")
    if args.tracemalloc:
        traced = run_stage(TRACED, path)
        print(f"replay under tracemalloc: peak traced Python memory "
              f"{traced['traced_peak_bytes'] / 2**20:,.0f} MiB, peak RSS "
              f"{traced['peak_rss_kib'] / 1024:,.0f} MiB ({traced['seconds']:.1f} s traced)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
