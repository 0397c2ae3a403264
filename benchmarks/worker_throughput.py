"""End-to-end worker throughput through a broker, next to bare consumers of the same topics.

    python benchmarks/worker_throughput.py [--events N]

Starts an in-memory Tansu broker (or uses AUDITOR_TEST_KAFKA=host:port), publishes N simulated
events with `auditor produce`, then in the same run, on the same topics, measures:
  bare aiokafka    -- one AIOKafkaConsumer reading both input topics from the start to the end,
                      json.loads of every value
  bare faust agent -- a faust app configured as the worker configures its own (the same broker,
                      fetch, session and producer settings, the same fixes) in its own consumer
                      group, with one agent that takes the input topics in batches as the
                      worker's does, json.loads every value and counts: faust's floor
  faust agent + engine -- the same agent, auditing every event with the engine in memory as
                      replay does (the worker's decoding, rules and state, one engine for all
                      partitions, no outputs): the floor of a worker whose state, facts and
                      alerts cost nothing to send
  auditor worker   -- one worker, from its first processed events to the last (read from its
                      /metrics), everything included: validation, engine, tables and their
                      changelogs, the repartition topic, alerts, commits
Each runs in a process of its own. Each rate runs from the end of the first batch (or the
first scrape that saw events) to the last event; CPU is the process's own (every thread) over
the same span, peak RSS the process's. After the worker has read every event and its outputs
have stopped growing, the messages it produced are counted on the broker per topic (every topic
but the inputs and the bare faust agents'), from the end offsets of their partitions, and
divided by the input events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import tansu  # noqa: E402

AUDITOR = str(Path(sys.executable).with_name("auditor"))
TOPICS = ("deals.closed", "accounts.churned")
# The bare faust agents' app ids (their consumer groups, and their own topics' prefix), by what
# the agent does with each event.
FAUST_GROUPS = {"count": "bench-faust-count", "engine": "bench-faust-engine"}
SETTLE_SECONDS = 3.0  # the worker's outputs unchanged this long: it is done


class Measured(TypedDict):
    rate: float  # events per second, wall clock
    cpu_us: float  # CPU microseconds per event, the process's own (every thread)
    peak_rss_mib: float


# ---------------------------------------------------------------------------- bare aiokafka


async def bare_consumer(bootstrap: str, total: int) -> Measured:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*TOPICS, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, first, started, cpu = 0, 0, 0.0, 0.0
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)  # a consumer does at least this much
                    seen += 1
            if not first and seen:  # timed from the end of the first batch
                first, started, cpu = seen, time.perf_counter(), time.process_time()
        events = seen - first
        return Measured(rate=events / (time.perf_counter() - started),
                        cpu_us=1e6 * (time.process_time() - cpu) / max(events, 1),
                        peak_rss_mib=peak_rss_mib(os.getpid()))
    finally:
        await consumer.stop()


def run_bare_consumer(bootstrap: str, total: int) -> Measured:
    """bare_consumer in a process of its own, so its peak RSS is its own."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--bare-consumer",
                           bootstrap, str(total)], stdout=subprocess.PIPE, text=True, check=True)
    measured: Measured = json.loads(done.stdout)
    return measured


# ---------------------------------------------------------------------------- bare faust agent


def faust_agent(mode: str, bootstrap: str, total: int, result: Path, data_dir: Path) -> None:
    """Runs in a child process until terminated: a bare agent (FAUST_GROUPS' `mode`), which
    writes its figures to `result` once it has seen `total` events."""
    import gc

    from faust.worker import Worker

    from auditor.worker import compat
    from auditor.worker.app import BATCH_EVENTS, BATCH_SECONDS, AuditorWorker
    from auditor.worker.settings import WorkerSettings

    settings = WorkerSettings(brokers=(bootstrap,), group_id=FAUST_GROUPS[mode],
                              web_host="127.0.0.1", web_port=tansu.free_port(),
                              data_dir=data_dir, session_timeout=4)
    # The worker's own code builds the app, so both run with the same faust settings.
    app = AuditorWorker._make_app(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    compat.apply(list(settings.brokers), settings.security.aiokafka())
    inputs = app.topic(*settings.topics.inputs, partitions=settings.partitions)
    state = {"seen": 0, "first": 0, "started": 0.0, "cpu": 0.0}
    handle = _engine_handler() if mode == "engine" else _count_handler
    if mode == "engine":
        gc.set_threshold(10_000, 10, 100)  # as `auditor worker` does

    @app.agent(inputs, concurrency=1, name=mode)
    async def agent(stream: Any) -> None:
        async for events in stream.take_events(BATCH_EVENTS, within=BATCH_SECONDS):
            for event in events:
                handle(event.message)
            state["seen"] += len(events)
            if not state["first"]:  # timed from the end of the first batch
                state.update(first=state["seen"], started=time.perf_counter(),
                             cpu=time.process_time())
            if state["seen"] >= total and not result.exists():
                counted = state["seen"] - state["first"]
                tmp = result.with_name(result.name + ".tmp")
                tmp.write_text(json.dumps(Measured(
                    rate=counted / (time.perf_counter() - state["started"]),
                    cpu_us=1e6 * (time.process_time() - state["cpu"]) / max(counted, 1),
                    peak_rss_mib=peak_rss_mib(os.getpid()))))
                tmp.replace(result)

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def _count_handler(message: Any) -> None:
    json.loads(message.value)


def _engine_handler() -> Callable[[Any], None]:
    """Each message audited as the worker's input agent audits it, by one in-memory engine."""
    from auditor.engine.engine import AuditEngine
    from auditor.events.deadletter import DeadLetter
    from auditor.events.decode import EventDecoder
    from auditor.intake import Intake
    from auditor.metrics.counters import RunCounters
    from auditor.rules.loader import default_rules_dir, load_rule_pack

    rules = load_rule_pack(default_rules_dir())
    engine = AuditEngine(rules)
    take, process = Intake(EventDecoder(rules.currency), RunCounters()).take, engine.process

    def handle(message: Any) -> None:
        source = f"{message.topic}/{message.partition}/{message.offset}"
        if type(take(message.value, source, process)) is DeadLetter:
            # The stream holds only valid events: a failure would make this floor look faster.
            raise RuntimeError(f"the engine refused {source}: see the log")

    return handle


def run_faust_agent(mode: str, bootstrap: str, total: int, tmp: Path) -> Measured:
    result = tmp / f"faust-{mode}.json"
    with open(tmp / f"faust-{mode}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--faust-agent", mode, bootstrap,
             str(total), str(result), str(tmp / f"faust-{mode}")],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"faust agent ({mode}) exited; see "
                                   f"{tmp / f'faust-{mode}.log'}")
            time.sleep(0.5)
        measured: Measured = json.loads(result.read_text())
        return measured
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------------------- worker


def events_total(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith("auditor_events_total{"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, every thread, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(bootstrap: str, total: int, tmp: Path) -> Measured:
    port = tansu.free_port()
    env = {**os.environ, "AUDITOR_BROKER": bootstrap}
    with open(tmp / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [AUDITOR, "worker", "--web-port", str(port), "--web-host", "127.0.0.1",
             "--session-timeout", "4", "--data-dir", str(tmp / "data"), "--log-level",
             "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started, first, cpu = 0.0, 0.0, 0.0
        while True:
            done = events_total(port)
            if not first and done:
                started, first, cpu = time.perf_counter(), done, cpu_seconds(proc.pid)
            if done >= total:
                events = done - first
                measured = Measured(rate=events / (time.perf_counter() - started),
                                    cpu_us=1e6 * (cpu_seconds(proc.pid) - cpu) / max(events, 1),
                                    peak_rss_mib=peak_rss_mib(proc.pid))
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {tmp / 'worker.log'}")
            time.sleep(1.0)  # a scrape walks the live aggregates: do not load the worker
        # Its aggregate stage and changelogs may still be catching up: wait for the outputs.
        produced, deadline = asyncio.run(produced_messages(bootstrap)), time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(SETTLE_SECONDS)
            now = asyncio.run(produced_messages(bootstrap))
            if now == produced:
                break
            produced = now
        return measured
    finally:
        proc.terminate()
        proc.wait(30)


def worker_output(topic: str) -> bool:
    """A topic the worker wrote: not an input, not the bare faust agent's, not the broker's."""
    return (topic not in TOPICS
            and not any(topic.startswith(group + "-") for group in FAUST_GROUPS.values())
            and not topic.startswith("__"))


async def produced_messages(bootstrap: str) -> dict[str, int]:
    """Messages in each of the worker's output topics: end less beginning offsets, summed over
    the partitions. Some Kafka-protocol brokers (Tansu) list a partition's end as its last
    batch's base offset + 1; the high watermark of a fetch from just before it is the end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if worker_output(t))
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        begin = await consumer.beginning_offsets(tps)
        end = dict(await consumer.end_offsets(tps))
        check = [tp for tp in tps if end[tp] > begin[tp]]
        if check:
            consumer.assign(check)
            for tp in check:
                consumer.seek(tp, end[tp] - 1)
            pending, deadline = set(check), time.monotonic() + 15
            while pending and time.monotonic() < deadline:
                await consumer.getmany(*pending, timeout_ms=200, max_records=1)
                for tp in list(pending):
                    highwater = consumer.highwater(tp)
                    if highwater is not None:
                        end[tp] = max(end[tp], highwater)
                        pending.discard(tp)
        counts = dict.fromkeys(topics, 0)
        for tp in tps:
            counts[tp.topic] += end[tp] - begin[tp]
        return counts
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bare-consumer", nargs=2, help=argparse.SUPPRESS,
                        metavar=("BOOTSTRAP", "TOTAL"))
    parser.add_argument("--faust-agent", nargs=5, help=argparse.SUPPRESS,
                        metavar=("MODE", "BOOTSTRAP", "TOTAL", "RESULT", "DATA_DIR"))
    args = parser.parse_args()
    if args.bare_consumer:  # child: the bare aiokafka consumer, its figures on stdout
        bootstrap, total = args.bare_consumer
        print(json.dumps(asyncio.run(bare_consumer(bootstrap, int(total)))))
        return 0
    if args.faust_agent:  # child: a bare faust agent
        mode, bootstrap, total, result, data_dir = args.faust_agent
        faust_agent(mode, bootstrap, int(total), Path(result), Path(data_dir))
        return 0
    accounts = int(args.events / 1.71) + 1
    with tempfile.TemporaryDirectory() as name, tansu.broker(Path(name)) as bootstrap:
        tmp = Path(name)
        events = tmp / "events.jsonl"
        subprocess.run([AUDITOR, "simulate", "--accounts", str(accounts), "--seed", "42",
                        "--out", str(events)], check=True)
        # The worker creates the topics with 4 partitions; create them first for the producer.
        from auditor.worker.settings import WorkerSettings
        from auditor.worker.topics import ensure_topics

        ensure_topics(WorkerSettings(brokers=(bootstrap,)))
        started = time.perf_counter()
        subprocess.run([AUDITOR, "produce", str(events), "--broker", bootstrap, "-q"],
                       check=True)
        with open(events, "rb") as lines:
            total = sum(1 for line in lines if line.strip())
        print(f"produced {total:,} events in {time.perf_counter() - started:.1f} s", flush=True)
        bare = run_bare_consumer(bootstrap, total)
        print(f"bare aiokafka consumer  {bare['rate']:>10,.0f} events/s", flush=True)
        agent = run_faust_agent("count", bootstrap, total, tmp)
        print(f"bare faust agent        {agent['rate']:>10,.0f} events/s", flush=True)
        engine = run_faust_agent("engine", bootstrap, total, tmp)
        print(f"faust agent + engine    {engine['rate']:>10,.0f} events/s", flush=True)
        worker = run_worker(bootstrap, total, tmp)
        print(f"auditor worker          {worker['rate']:>10,.0f} events/s", flush=True)
        produced = asyncio.run(produced_messages(bootstrap))

        where = "external" if os.environ.get(tansu.EXTERNAL_ENV) else "Tansu in memory"
        print(f"\n{total:,} events on {', '.join(TOPICS)}; {os.cpu_count()} cores, "
              f"broker: {where}")
        header = (f"{'consumer':<20} {'events/s':>10} {'CPU us/event':>13} "
                  f"{'/ bare aiokafka':>16} {'/ bare faust':>13} {'messages/event':>15} "
                  f"{'peak RSS MiB':>13}")
        print(header)
        print("-" * len(header))
        out_total = sum(produced.values())
        for label, m, messages in (("bare aiokafka", bare, "-"),
                                   ("bare faust agent", agent, "-"),
                                   ("faust agent + engine", engine, "-"),
                                   ("auditor worker", worker, f"{out_total / total:.2f}")):
            print(f"{label:<20} {m['rate']:>10,.0f} {m['cpu_us']:>13,.0f} "
                  f"{m['rate'] / bare['rate']:>16.3f} {m['rate'] / agent['rate']:>13.3f} "
                  f"{messages:>15} {m['peak_rss_mib']:>13,.0f}")
        print(f"worker / bare consumer = {worker['rate'] / bare['rate']:.2f}")
        print("\nmessages the worker produced, per topic")
        header = f"{'topic':<46} {'messages':>10} {'per event':>10}"
        print(header)
        print("-" * len(header))
        for topic, count in produced.items():
            print(f"{topic:<46} {count:>10,} {count / total:>10.3f}")
        print(f"{'total':<46} {out_total:>10,} {out_total / total:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
