"""Replay throughput on simulated events, next to the cost of only parsing the same lines.

    python benchmarks/replay_throughput.py [--events N] [--quick]

Each stage runs in a fresh child process, so each peak memory figure is that stage's own:
  json.loads        -- the floor for any JSON pipeline in Python
  pydantic only     -- event-contract validation from raw bytes, nothing else
  decode            -- validation + currency conversion + dead-letter handling (EventDecoder)
  replay            -- the whole `auditor replay FILE` path through the default rules (reading
                       the file included), no output files
The event file is generated once with `auditor simulate` and cached under out/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 42
EVENTS_PER_ACCOUNT = 1.71  # what the simulator yields over 24 months, measured


def events_file(events: int) -> Path:
    """A cached simulated file with at least `events` lines."""
    accounts = int(events / EVENTS_PER_ACCOUNT) + 1
    path = ROOT / "out" / f"bench-{accounts}-seed{SEED}.jsonl"
    if not path.exists():
        from auditor.simulate.generator import Simulator

        path.parent.mkdir(exist_ok=True)
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for line in Simulator(accounts=accounts, months=24, seed=SEED).lines():
                out.write(line + "\n")
        tmp.rename(path)
        print(f"simulated {path.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def _read(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().splitlines()


def stage_json(path: Path, lines: list[bytes]) -> int:
    loads = json.loads
    for line in lines:
        loads(line)
    return len(lines)


def stage_pydantic(path: Path, lines: list[bytes]) -> int:
    from auditor.events.models import EVENT_ADAPTER

    validate = EVENT_ADAPTER.validate_json
    for line in lines:
        validate(line)
    return len(lines)


def stage_decode(path: Path, lines: list[bytes]) -> int:
    from auditor.events.decode import EventDecoder
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    decode = EventDecoder(load_rule_pack(default_rules_dir()).currency).decode
    for n, line in enumerate(lines):
        decode(line, str(n))
    return len(lines)


def stage_replay(path: Path, lines: list[bytes]) -> int:
    """Exactly what `auditor replay FILE -q` runs, reading the file itself."""
    from auditor.replay.runner import Replay
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    del lines  # not held: replay streams the file, and its peak memory should show that
    replay = Replay(load_rule_pack(default_rules_dir()))
    counters = replay.run_files([str(path)])
    return sum(counters.events.values())


STAGES: dict[str, Callable[[Path, list[bytes]], int]] = {
    "json.loads": stage_json,
    "pydantic only": stage_pydantic,
    "decode": stage_decode,
    "replay": stage_replay,
}


def _child(name: str, path: Path, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    # Parsing stages get the lines in memory; replay reads the file as the command does.
    lines = [] if name == "replay" else _read(path)
    started = time.perf_counter()
    count = STAGES[name](path, lines)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put((name, count, seconds, peak_kib))


def run_stage(name: str, path: Path) -> tuple[str, int, float, int]:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    child = multiprocessing.get_context("fork").Process(target=_child, args=(name, path, results))
    child.start()
    result = results.get()
    child.join()
    return result  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    args = parser.parse_args()
    events = 100_000 if args.quick else args.events
    path = events_file(events)
    lines = len(_read(path))
    print(f"{lines:,} events in {path.relative_to(ROOT)}; python {platform.python_version()}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    print(f"{'stage':<15} {'events/s':>12} {'seconds':>9} {'peak RSS MiB':>13}")
    rates: dict[str, float] = {}
    for name in STAGES:
        _, count, seconds, peak_kib = run_stage(name, path)
        rates[name] = count / seconds
        print(f"{name:<15} {rates[name]:>12,.0f} {seconds:>9.2f} {peak_kib / 1024:>13,.0f}",
              flush=True)
    print(f"replay / pydantic only = {rates['replay'] / rates['pydantic only']:.2f}; "
          f"replay / json.loads = {rates['replay'] / rates['json.loads']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
