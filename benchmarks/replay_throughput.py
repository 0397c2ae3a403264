"""Replay throughput on simulated events, next to the cost of only parsing the same lines.

    python benchmarks/replay_throughput.py [--events N | --quick] [--seed S] [--tracemalloc]
                                           [--state-events N] [--jobs N]

The event file is generated once with auditor.simulate (a fixed seed) and cached under out/,
named by its size and seed. Each stage then runs in a fresh Python process (a subprocess, not a
fork), so no stage inherits another's heap and each peak RSS is that stage's own:

  read lines      -- iterate over the file's lines: the floor under every stage below
  json.loads      -- json.loads of every line
  pydantic only   -- the event contract's validation from raw bytes (EVENT_ADAPTER.validate_json)
                     on every line, no engine
  decode          -- EventDecoder.decode: validation, currency conversion, dead letters
  replay, no rules -- Replay with the default rules and plan check taken out: decoding, the
                     account state, the run's counters and the runner, no rule -- what every
                     rule set pays before its first rule, so the most any can reach
  replay          -- auditor.replay.runner.Replay built as `auditor replay FILE -q` builds it,
                     through the default rules, no output files
  replay + alerts -- the same, writing every alert and dead letter as JSON Lines to files, as
                     `auditor replay FILE -q --alerts-out A --deadletter-out D` does

Every stage streams the file as the replay does, so reading it costs the same in each. Times
cover the stage's loop only: imports and loading the rules are left out. Each stage is shown
next to its floor (the stage it adds work to) and its rate as a fraction of the floor's.

Then whole commands, timed from start to exit (start-up included): `auditor replay FILE -q`,
and `--jobs 1` against `--jobs N` when `auditor replay` has a --jobs option (n/a otherwise).

Then bytes per retained deal: a process runs the engine over the first part of a stream (by
default the same file; --state-events picks another size), as long as its state only grows
(until event time passes the rules' longest window and the allowed lateness, when the first
deals may expire), and samples its resident memory (/proc/self/statm) against the deals held
in the account store at a number of points; the least-squares slope is the memory one more
retained deal costs, whatever else grows with it (churns, ledgers, aggregates, indexes). Its
floor is the same slope for a process that only decodes the same events and keeps each decoded
deal in a dict.

With --tracemalloc a further process replays the file under tracemalloc and reports the peak
of traced Python memory (its run time is not a throughput figure: tracing slows it several
times).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from itertools import islice
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
STATE_SAMPLES = 24  # points along the whole stream; those past the growing part are not run
AUDITOR = str(Path(sys.executable).with_name("auditor"))


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


def stage_replay(path: Path, rules: bool = True) -> Run:
    """What `auditor replay FILE -q` runs: the same Replay, alert digest and (quiet) progress;
    without `rules`, with the pack's rules and plan check taken out (the engine's shell, the
    floor under every rule set)."""
    from dataclasses import replace

    from auditor.replay.progress import Progress
    from auditor.replay.runner import Replay
    from auditor.replay.summary import FindingsDigest
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    digest = FindingsDigest()
    pack = load_rule_pack(default_rules_dir())
    if not rules:
        pack = replace(pack, rules=(), plans=None)
    replay = Replay(pack, on_alert=digest.add, progress=Progress(quiet=True))

    def run() -> tuple[int, int]:
        counters = replay.run_files([str(path)])
        return sum(counters.events.values()), sum(digest.by_rule.values())

    return run


def stage_replay_outputs(path: Path) -> Run:
    """`auditor replay FILE -q --alerts-out A --deadletter-out D`: replay, writing its outputs
    (to a temporary directory, removed after; closing the files is timed, removing them not)."""
    from auditor.engine.alerts import Alert
    from auditor.events.deadletter import DeadLetter
    from auditor.replay.progress import Progress
    from auditor.replay.runner import Replay
    from auditor.replay.summary import FindingsDigest
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    out = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    alerts = open(out / "alerts.jsonl", "w", encoding="utf-8")  # noqa: SIM115
    dead = open(out / "deadletters.jsonl", "w", encoding="utf-8")  # noqa: SIM115
    digest = FindingsDigest()

    def on_alert(alert: Alert) -> None:
        digest.add(alert)
        alerts.write(alert.to_json() + "\n")

    def on_deadletter(letter: DeadLetter) -> None:
        dead.write(letter.to_json() + "\n")

    replay = Replay(load_rule_pack(default_rules_dir()), on_alert=on_alert,
                    on_deadletter=on_deadletter, progress=Progress(quiet=True))

    def run() -> tuple[int, int]:
        try:
            with alerts, dead:
                counters = replay.run_files([str(path)])
            return sum(counters.events.values()), sum(digest.by_rule.values())
        finally:
            for name in ("alerts.jsonl", "deadletters.jsonl"):
                (out / name).unlink(missing_ok=True)
            out.rmdir()

    return run


STAGES: dict[str, Callable[[Path], Run]] = {
    "read lines": stage_read,
    "json.loads": stage_json,
    "pydantic only": stage_pydantic,
    "decode": stage_decode,
    "replay, no rules": partial(stage_replay, rules=False),
    "replay": stage_replay,
    "replay + alerts": stage_replay_outputs,
}
# Each stage's floor: the stage it adds work to.
FLOORS = {
    "json.loads": "read lines",
    "pydantic only": "json.loads",
    "decode": "pydantic only",
    "replay, no rules": "decode",
    "replay": "pydantic only",
    "replay + alerts": "replay",
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


# ---------------------------------------------------------------------------- retained state


class StateSample(TypedDict):
    events: int
    deals: int  # deals held: in the account store, or (the floor) decoded deals in a dict
    accounts: int
    rss_bytes: int


def _rss_bytes() -> int:
    """Resident memory now (not the peak): the second field of /proc/self/statm, in pages."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_state(path: Path, every: int) -> list[StateSample]:
    """The engine over the start of the stream, sampled every `every` events while its state
    only grows: until event time passes the first event's by the horizon and the lateness
    (past that, the first deals can expire). A sample whose events went past it is left out."""
    from auditor.events.models import Churn, Deal
    from auditor.replay.runner import Replay
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    replay = Replay(load_rule_pack(default_rules_dir()))
    engine, store = replay.engine, replay.engine.accounts
    samples = [StateSample(events=0, deals=0, accounts=0, rss_bytes=_rss_bytes())]
    with open(path, "rb") as f:
        first = replay.decoder.decode(f.readline().rstrip(b"\r\n"), "first line")
        assert type(first) in (Deal, Churn), "the stream's first line is not an event"
        until = first.time + engine.join.horizon + engine.join.lateness  # type: ignore[union-attr]
        f.seek(0)
        gc.freeze()  # as Replay.run_files runs the engine
        gc.set_threshold(200_000, 50, 1000)
        while True:
            before = replay.lines
            replay.feed(islice(f, every), str(path))
            if replay.lines == before or store.watermark >= until:
                break
            samples.append(StateSample(
                events=replay.lines,
                deals=store.deals_held(),
                accounts=len(store), rss_bytes=_rss_bytes()))
    return samples


def child_state_floor(path: Path, points: list[int]) -> list[StateSample]:
    """The floor under child_state: the same events only decoded, each deal kept in a dict by
    its id, sampled after the same numbers of events."""
    from auditor.events.decode import EventDecoder
    from auditor.events.models import Deal
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    decode = EventDecoder(load_rule_pack(default_rules_dir()).currency).decode
    deals: dict[str, Deal] = {}
    samples = [StateSample(events=0, deals=0, accounts=0, rss_bytes=_rss_bytes())]
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)
    events = 0
    with open(path, "rb") as f:
        for point in points:
            for line in islice(f, point - events):
                event = decode(line.rstrip(b"\r\n"), "")
                if type(event) is Deal:
                    deals[event.deal_id] = event
            events = point
            gc.freeze()
            samples.append(StateSample(events=events, deals=len(deals), accounts=0,
                                       rss_bytes=_rss_bytes()))
    return samples


def slope(samples: list[StateSample]) -> float:
    """Least-squares bytes per deal over the samples after the first (before any event)."""
    points = [(s["deals"], s["rss_bytes"]) for s in samples[1:]]
    if len(points) < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    if not var:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in points) / var


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


def jobs_supported() -> bool:
    """Whether `auditor replay` has a --jobs option."""
    done = subprocess.run([AUDITOR, "replay", "--help"], capture_output=True, text=True,
                          check=False)
    return "--jobs" in done.stdout


class CommandResult(TypedDict):
    seconds: float
    cpu_seconds: float  # the command's and its children's
    peak_rss_kib: int  # of the largest of its processes


def run_command(args: list[str]) -> CommandResult:
    """One whole command, timed from start to exit, with its rusage."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} ... failed with exit code {proc.returncode}")
    return CommandResult(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime,
                         peak_rss_kib=usage.ru_maxrss)


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


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=1_000_000,
                      help="simulated events to replay (default 1,000,000)")
    size.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events")
    parser.add_argument("--seed", type=int, default=SEED, help=f"simulator seed ({SEED})")
    parser.add_argument("--state-events", type=int,
                        help="size of the stream whose first part measures bytes per retained "
                             "deal (default: the same as --events)")
    parser.add_argument("--jobs", type=int, default=usable_cores(), dest="jobs_n",
                        help="N of `auditor replay --jobs N` (default: the usable cores)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also replay under tracemalloc, in its own process, and report "
                             "the peak of traced Python memory")
    parser.add_argument("--stage", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--state", nargs=2, metavar=("FILE", "EVERY"), help=argparse.SUPPRESS)
    parser.add_argument("--state-floor", nargs=2, metavar=("FILE", "POINTS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, metavar=("EVENTS", "SEED", "FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # child: one stage, its result as JSON on stdout
        print(json.dumps(child_stage(args.stage[0], Path(args.stage[1]))))
        return 0
    if args.state:  # child: the engine's memory against the deals it holds
        print(json.dumps(child_state(Path(args.state[0]), int(args.state[1]))))
        return 0
    if args.state_floor:  # child: its floor
        points = [int(p) for p in args.state_floor[1].split(",")]
        print(json.dumps(child_state_floor(Path(args.state_floor[0]), points)))
        return 0
    if args.generate:  # child: the event file
        generate(int(args.generate[0]), int(args.generate[1]), Path(args.generate[2]))
        return 0

    events = QUICK_EVENTS if args.quick else args.events
    if events < 1:
        parser.error("--events must be at least 1")
    if args.jobs_n < 1:
        parser.error("--jobs must be at least 1")
    state_events = args.state_events or events
    path = events_file(events, args.seed)
    print(f"{events:,} simulated events (seed {args.seed}) in {_shown(path)}")
    print(f"machine: {machine()}")
    print("each stage in a fresh process; times exclude imports and rule loading; "
          "rate / floor = events/s over the floor's", flush=True)
    header = (f"{'stage':<16} {'events/s':>10} {'seconds':>8} {'us/event':>9} "
              f"{'start RSS MiB':>14} {'peak RSS MiB':>13}  {'floor':<14} {'rate / floor':>12}")
    print(header)
    print("-" * len(header))
    results: dict[str, StageResult] = {}

    def rate(name: str) -> float:
        return results[name]["events"] / results[name]["seconds"]

    for name in STAGES:
        result = results[name] = run_stage(name, path)
        floor = FLOORS.get(name)
        ratio = f"{rate(name) / rate(floor):.3f}" if floor else "-"
        print(f"{name:<16} {rate(name):>10,.0f} {result['seconds']:>8.2f} "
              f"{1e6 / rate(name):>9.2f} {result['start_rss_kib'] / 1024:>14,.0f} "
              f"{result['peak_rss_kib'] / 1024:>13,.0f}  {floor or '-':<14} {ratio:>12}",
              flush=True)
    replay = results["replay"]
    print(f"replay: {replay['events']:,} events in, {replay['alerts']:,} alerts out")
    print(f"replay / pydantic only = {rate('replay') / rate('pydantic only'):.3f}; "
          f"replay / json.loads = {rate('replay') / rate('json.loads'):.3f}")
    print(f"replay, no rules / json.loads = "
          f"{rate('replay, no rules') / rate('json.loads'):.3f}: the most a rule set can reach")
    shell = 1e6 / rate("replay, no rules") - 1e6 / rate("decode")
    rules = 1e6 / rate("replay") - 1e6 / rate("replay, no rules")
    print(f"replay beyond decode: {shell:.1f} us/event without rules (state, counters, runner), "
          f"{rules:.1f} more for the default rules")
    outputs = 1e6 / rate("replay + alerts") - 1e6 / rate("replay")
    print(f"writing alerts and dead letters: {outputs:.1f} us/event")

    commands_table(path, results["replay"]["events"], rate("replay"), args.jobs_n)
    state_table(events_file(state_events, args.seed), state_events)

    if args.tracemalloc:
        traced = run_stage(TRACED, path)
        print(f"replay under tracemalloc: peak traced Python memory "
              f"{traced['traced_peak_bytes'] / 2**20:,.0f} MiB, peak RSS "
              f"{traced['peak_rss_kib'] / 1024:,.0f} MiB ({traced['seconds']:.1f} s traced)")
    return 0


def commands_table(path: Path, events: int, replay_rate: float, jobs: int) -> None:
    """`auditor replay FILE -q`, and with --jobs 1 and --jobs N when it has the option."""
    print()
    print("whole commands, start-up included; CPU s counts the command's child processes")
    header = (f"{'command':<32} {'events/s':>10} {'seconds':>8} {'CPU s':>7} "
              f"{'peak RSS MiB':>13}  {'floor':<26} {'rate / floor':>12}")
    print(header)
    print("-" * len(header))
    base = [AUDITOR, "replay", str(path), "-q"]
    rates: dict[str, float] = {"replay (in process)": replay_rate}
    rows = [("auditor replay -q", base, "replay (in process)")]
    jobs_n = f"auditor replay -q --jobs {jobs}"
    rows += [("auditor replay -q --jobs 1", [*base, "--jobs", "1"], "auditor replay -q"),
             (jobs_n, [*base, "--jobs", str(jobs)], "auditor replay -q --jobs 1")]
    supported = jobs_supported()
    for name, command, floor in rows:
        if "--jobs" in command and not supported:
            print(f"{name:<32} {'n/a':>10} {'n/a':>8} {'n/a':>7} {'n/a':>13}  {floor:<26} "
                  f"{'n/a':>12}")
            continue
        done = run_command(command)
        rates[name] = events / done["seconds"]
        ratio = f"{rates[name] / rates[floor]:.3f}" if floor in rates else "n/a"
        print(f"{name:<32} {rates[name]:>10,.0f} {done['seconds']:>8.2f} "
              f"{done['cpu_seconds']:>7.1f} {done['peak_rss_kib'] / 1024:>13,.0f}  "
              f"{floor:<26} {ratio:>12}", flush=True)
    if not supported:
        print("(`auditor replay` has no --jobs option: n/a)")


def state_table(path: Path, stream_events: int) -> None:
    """Bytes per retained deal: the engine's resident memory against the deals it holds."""
    every = max(1000, stream_events // STATE_SAMPLES)
    engine: list[StateSample] = json.loads(_run_child(["--state", str(path), str(every)]))
    points = [s["events"] for s in engine[1:]]
    floor: list[StateSample] = (json.loads(_run_child(
        ["--state-floor", str(path), ",".join(map(str, points))])) if points else [])
    print()
    print(f"retained state: the first {engine[-1]['events']:,} events of {_shown(path)} "
          f"(while the state only grows), each process sampled every {every:,} events")
    header = (f"{'events':>9} {'deals held':>11} {'accounts':>9} {'RSS MiB':>8} "
              f"{'floor deals':>12} {'floor RSS MiB':>14}")
    print(header)
    print("-" * len(header))
    for ours, theirs in zip(engine, floor or engine, strict=False):
        print(f"{ours['events']:>9,} {ours['deals']:>11,} {ours['accounts']:>9,} "
              f"{ours['rss_bytes'] / 2**20:>8,.0f} {theirs['deals']:>12,} "
              f"{theirs['rss_bytes'] / 2**20:>14,.0f}")
    per_deal, floor_per_deal = slope(engine), slope(floor)
    print(f"bytes per retained deal (least-squares slope of RSS on deals held): "
          f"{per_deal:,.0f}; floor (decoded deals kept in a dict): {floor_per_deal:,.0f}; "
          f"bytes / floor = {per_deal / floor_per_deal:.2f}")


if __name__ == "__main__":
    sys.exit(main())
