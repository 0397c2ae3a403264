"""The live value of each team and plan aggregate in the current period (a metrics gauge)."""

from unit_helpers import deal_dict, run


def test_live_value_of_the_current_period(rules):
    deals = [deal_dict(team="T", plan_id="P", account_id=f"a{i}") for i in range(5)]
    result = run(rules, deals, flush=False)
    live = {(v.rule, v.group_by, v.group): v for v in result.engine.live_values()}
    share = live[("new-logo-payout-share", "team", "T")]
    assert share.value == 1.0
    assert share.breached is True
    # Rep-level detail lives in the alerts, never in a metric label.
    assert all(v.group_by in ("team", "plan_id") for v in live.values())
