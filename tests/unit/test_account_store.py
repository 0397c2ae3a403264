"""The memory account store keeps an account of one deal and nothing else as the deal itself:
the engine sees the same state whatever the store holds, and nothing is lost when the account
gains a churn, a second deal or a ledger entry, or when its deal expires."""

from unit_helpers import churn_dict, deal_dict, run

from auditor.engine.state import AccountState
from auditor.events.models import Deal


def _held(result, account):
    return result.engine.accounts._accounts.get(account)


def test_an_account_of_one_deal_is_kept_as_the_deal(rules):
    result = run(rules, [deal_dict(account_id="one", deal_id="d1", days=0.0)], flush=False)
    assert type(_held(result, "one")) is Deal
    state = result.engine.accounts.get("one")
    assert isinstance(state, AccountState) and [d.deal_id for d in state.deals] == ["d1"]
    assert result.engine.accounts.deals_held() == 1


def test_it_becomes_a_state_again_with_anything_more(rules):
    events = [deal_dict(account_id="two", deal_id="d1", days=0.0),
              deal_dict(account_id="two", deal_id="d2", days=1.0),
              deal_dict(account_id="churned", deal_id="d3", days=0.0),
              churn_dict(account_id="churned", days=10.0)]
    result = run(rules, events, flush=False)
    assert type(_held(result, "two")) is AccountState
    assert [d.deal_id for d in result.engine.accounts.get("two").deals] == ["d1", "d2"]
    churned = result.engine.accounts.get("churned")
    assert type(_held(result, "churned")) is AccountState and len(churned.churns) == 1
    assert result.engine.accounts.deals_held() == 3
    # A duplicate of a deal held compactly is still recognised.
    again = run(rules, [*events, deal_dict(account_id="two", deal_id="d1", days=2.0)],
                flush=False)
    assert again.counters.events_by_outcome()["duplicate"] == 1


def test_a_compact_account_expires_like_any_other(rules):
    events = [deal_dict(account_id=f"a{n}", deal_id="d", days=float(n)) for n in range(3)]
    events.append(deal_dict(account_id="late", deal_id="d", days=3000.0))
    result = run(rules, events, flush=False)
    assert [a for a in ("a0", "a1", "a2") if result.engine.accounts.get(a)] == []
    assert type(_held(result, "late")) is Deal and len(result.engine.accounts) == 1
