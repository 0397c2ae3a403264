"""A deal's ledger entry in the worker waits for every aggregate stage: a join partition read far
ahead of the others (a consumer catching up can do that) must not drop an entry that a late
aggregate finding will still claim money on, or the deal would be counted twice."""

from auditor.engine.state import LEDGER_MARGIN, AccountState
from auditor.worker.tables import Changelog, StoreContext, TableAccountStore

DAY = 86400.0
SOURCES = 2


def _store(problems):
    changelogs = {name: Changelog(name) for name in ("accounts", "aggregates", "watermarks")}
    context = StoreContext({}, {}, {}, changelogs, lambda what, why: problems.append(what))
    return TableAccountStore(context, 0, SOURCES)


def test_ledger_entries_wait_for_every_aggregate_stage():
    problems: list[str] = []
    store = _store(problems)
    state = AccountState()
    state.flag("D1", "plan", "team", 0.0).flag("unrecovered", 100.0)
    store.put("acct", state, 0.0)
    far = 2000 * DAY  # this partition's inputs are years ahead
    store.observe("deal_closed", far)
    store.observe("account_churned", far)
    span = 400 * DAY
    store.expire(store.watermark - span, store.ledger_watermark - span)
    assert store.get("acct") is not None  # no aggregate stage has said how far it is
    store.observe_ledger(0, far)
    store.expire(store.watermark - span + DAY, store.ledger_watermark - span)
    assert store.get("acct") is not None  # one of two has
    store.observe_ledger(1, span + LEDGER_MARGIN + 2 * DAY)
    store.expire(store.watermark - span + 2 * DAY, store.ledger_watermark - span)
    assert store.get("acct") is None  # both are past the deal and its margin
    assert problems == []
