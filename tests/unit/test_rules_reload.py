"""Hot reload: a changed rules directory is validated first; a bad change keeps the old rules."""

import shutil

import pytest
from unit_helpers import churn_dict, deal_dict, run

from auditor.events.decode import EventDecoder
from auditor.rules.loader import default_rules_dir, load_rule_pack
from auditor.rules.reload import RuleReloader


@pytest.fixture
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def _reloader(directory):
    loaded, refused = [], []
    return RuleReloader(directory, loaded.append, refused.append), loaded, refused


def test_nothing_changed_means_no_reload(rules_copy):
    reloader, loaded, refused = _reloader(rules_copy)
    assert reloader.poll() is None
    assert loaded == [] and refused == []


def test_a_good_change_hands_over_a_new_pack(rules_copy):
    reloader, loaded, refused = _reloader(rules_copy)
    assert refused == []
    payout = rules_copy / "payout.yaml"
    payout.write_text(payout.read_text().replace("min_upfront_share: 0.9",
                                                 "min_upfront_share: 0.5"))
    assert reloader.poll() is True
    [pack] = loaded
    [tcv] = [r for r in pack.rules if r.meta.id == "tcv-paid-upfront"]
    assert tcv.min_upfront_share == 0.5
    assert reloader.poll() is None  # the same content is not loaded twice
    assert refused == []


def test_a_bad_change_is_refused_until_the_files_change_again(rules_copy):
    reloader, loaded, refused = _reloader(rules_copy)
    retention = rules_copy / "retention.yaml"
    good = retention.read_text()
    retention.write_text(good.replace("within_days: 180", "within_days: soon"))
    assert reloader.poll() is False
    [errors] = refused
    assert any(e.source.endswith("retention.yaml") and e.line for e in errors.errors)
    assert reloader.poll() is None  # not retried while unchanged
    retention.write_text(good)
    assert reloader.poll() is True
    assert len(loaded) == 1


def test_a_new_file_is_a_change(rules_copy):
    reloader, loaded, _ = _reloader(rules_copy)
    (rules_copy / "extra.yaml").write_text("lists:\n  nothing: []\n")
    assert reloader.poll() is True and len(loaded) == 1


def test_engine_state_survives_a_reload(rules_copy):
    """A deal seen under the old rules still joins a churn that arrives under the new ones."""
    pack = load_rule_pack(rules_copy)
    result = run(pack, [deal_dict()], flush=False)
    retention = rules_copy / "retention.yaml"
    retention.write_text(retention.read_text().replace("- {max_days: 90, severity: critical}",
                                                       "- {max_days: 30, severity: critical}"))
    new_pack = load_rule_pack(rules_copy)
    result.engine.set_rules(new_pack)
    result.feed(EventDecoder(new_pack.currency), [churn_dict(days=45.0)])
    [alert] = result.of("early-churn-unrecovered")
    assert alert.severity == "warning"  # 45 days: critical only up to 30 under the new rules


def test_a_typo_in_one_rule_refuses_the_whole_change(rules_copy):
    """A file with one bad rule is not half-loaded: every rule stays as it was."""
    reloader, loaded, refused = _reloader(rules_copy)
    retention = rules_copy / "retention.yaml"
    good = "      churn_type: full\n    within_days: 365"
    bad = good.replace("full", "ful")
    text = retention.read_text().replace("within_days: 180", "within_days: 90").replace(good, bad)
    retention.write_text(text)
    assert reloader.poll() is False
    assert loaded == []
    [errors] = refused
    line = text.splitlines().index("      churn_type: ful") + 1
    assert [str(e) for e in errors.errors] == [
        f"{retention}:{line}: discount-then-churn: churn.churn_type: 'ful' is not one of full, "
        "partial; did you mean 'full'?"]


def test_an_unsafe_tag_or_an_alias_bomb_is_refused_at_reload(rules_copy):
    reloader, loaded, refused = _reloader(rules_copy)
    extra = rules_copy / "extra.yaml"
    extra.write_text("lists:\n  x: !!python/object/apply:os.system [echo]\n")
    assert reloader.poll() is False
    assert str(refused[-1].errors[0]).startswith(f"{extra}:2: YAML tag !!python/object/apply")
    bomb = ["lists:", "  l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    bomb += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 8)]
    extra.write_text("\n".join(bomb) + "\n")
    assert reloader.poll() is False
    assert str(refused[-1].errors[0]).startswith(f"{extra}:5: aliases expand to more than")
    assert loaded == []


def test_an_unexpected_loader_failure_keeps_the_rules_in_force(rules_copy, monkeypatch):
    import auditor.rules.reload as reload_module

    def broken(directory):
        raise RuntimeError("boom")

    reloader, loaded, refused = _reloader(rules_copy)
    monkeypatch.setattr(reload_module, "load_rule_pack", broken)
    (rules_copy / "extra.yaml").write_text("lists: {}\n")
    assert reloader.poll() is False
    assert loaded == [] and "boom" in str(refused[0].errors[0])
