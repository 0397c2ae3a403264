"""Fixtures of the broker tests (helpers in kafka_helpers.py beside this file).

Each test gets a fresh in-memory Tansu broker; AUDITOR_TEST_KAFKA=host:port points the same
tests at an Apache Kafka instead (see kafka_helpers.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # kafka_helpers, under any pytest import mode
    sys.path.insert(0, _HERE)

from kafka_helpers import Stack, dump_task_stacks  # noqa: E402

from tests.support import tansu  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(_HERE):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    with tansu.broker(tmp_path) as bootstrap:
        s = Stack(bootstrap, tmp_path)
        try:
            yield s
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                dump_task_stacks(s.workers)  # where a stuck worker is stuck, in its log
            for worker in s.workers:
                worker.kill()
            if failed is not None and failed.failed:
                for worker in s.workers:
                    print(f"--- {worker.name} log tail ---\n{worker.tail(80)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
