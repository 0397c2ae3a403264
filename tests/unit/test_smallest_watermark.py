"""SmallestWatermark keeps the smallest of its sources' marks without recomputing it for a
source that was not the smallest: the kept value must always be the true smallest."""

from __future__ import annotations

import random

from auditor.worker.state_log import Changelog
from auditor.worker.tables import SmallestWatermark, StoreContext, TableAccountStore


def _context(table: dict) -> StoreContext:
    return StoreContext(table, {}, {}, {"accounts": Changelog("accounts")}, lambda *_: None)


def test_the_kept_value_is_the_smallest_of_the_marks_whatever_the_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        store = TableAccountStore(_context({}), 0, aggregate_sources=3)
        smallest = store._aggregates
        names = list(range(3))
        newest = dict.fromkeys(names, 0.0)
        for _ in range(30):
            name = rng.choice([*names, 9])  # 9: a source this stage does not wait for
            value = float(rng.randint(0, 40))
            smallest.observe(name, value)
            if name in newest:
                newest[name] = max(newest[name], value)  # marks only move forward
            assert smallest.value == min(newest.values())


def test_zero_until_every_source_is_heard_from_and_restored_from_the_log() -> None:
    table: dict = {}
    store = TableAccountStore(_context(table), 1)
    store.observe("deal_closed", 100.0)
    store.observe("deal_closed", 200.0)
    assert store.watermark == 0.0  # no churn yet
    store.observe("account_churned", 150.0)
    assert store.watermark == 150.0
    store.observe("deal_closed", 300.0)  # not the smallest: unchanged
    assert store.watermark == 150.0
    store.observe("account_churned", 400.0)  # the smallest moves to the other source
    assert store.watermark == 300.0
    store.log.flush()
    again = SmallestWatermark(_context(table), TableAccountStore(_context(table), 1).log,
                              "accounts/1", ("deal_closed", "account_churned"))
    assert again.value == 300.0
