"""End-to-end worker throughput through a broker, next to a bare consumer of the same topics.

    python benchmarks/worker_throughput.py [--events N]

Starts an in-memory Tansu broker (or uses AUDITOR_TEST_KAFKA=host:port), publishes N simulated
events with `auditor produce`, then in the same run measures:
  bare aiokafka   -- one AIOKafkaConsumer reading both input topics from the start to the end
  auditor worker  -- one worker, from its first processed event to the last (read from its
                     /metrics), everything included: validation, engine, tables and their
                     changelogs, the repartition topic, alerts, commits
and prints both rates, their ratio and the worker's peak RSS.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import tansu  # noqa: E402

AUDITOR = str(Path(sys.executable).with_name("auditor"))
TOPICS = ("deals.closed", "accounts.churned")


async def bare_consumer(bootstrap: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*TOPICS, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)  # a consumer does at least this much
                    seen += 1
            if started is None and seen:
                started = time.perf_counter()
        assert started is not None
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


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


def run_worker(bootstrap: str, total: int, tmp: Path) -> tuple[float, float]:
    port = tansu.free_port()
    env = {**os.environ, "AUDITOR_BROKER": bootstrap}
    with open(tmp / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [AUDITOR, "worker", "--web-port", str(port), "--web-host", "127.0.0.1",
             "--session-timeout", "4", "--data-dir", str(tmp / "data"), "--log-level",
             "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = None
        while True:
            done = events_total(port)
            if started is None and done:
                started, first = time.perf_counter(), done
            if done >= total:
                assert started is not None
                rate = (done - first) / (time.perf_counter() - started)
                return rate, peak_rss_mib(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {tmp / 'worker.log'}")
            time.sleep(1.0)  # a scrape walks the live aggregates: do not load the worker
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
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
        total = sum(1 for line in events.read_bytes().splitlines() if line.strip())
        print(f"produced {total:,} events in {time.perf_counter() - started:.1f} s", flush=True)
        bare = asyncio.run(bare_consumer(bootstrap, total))
        print(f"bare aiokafka consumer  {bare:>10,.0f} events/s", flush=True)
        worker, rss = run_worker(bootstrap, total, tmp)
        print(f"auditor worker          {worker:>10,.0f} events/s   peak RSS {rss:,.0f} MiB")
        where = "external" if os.environ.get(tansu.EXTERNAL_ENV) else "Tansu in memory"
        print(f"worker / bare consumer = {worker / bare:.2f}  ({os.cpu_count()} cores, "
              f"broker: {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
