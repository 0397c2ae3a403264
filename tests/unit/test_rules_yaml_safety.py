"""Rule files are plain data: YAML tags beyond the core ones and alias bombs are refused fast,
with file and line, before anything is built from them."""

import time
import tracemalloc
from pathlib import Path

import pytest

from auditor.errors import RuleError, RuleErrors
from auditor.rules.loader import load_rule_pack
from auditor.rules.yaml_guard import MAX_ALIAS_EXPANSION
from auditor.rules.yaml_source import load_yaml

RULE = """\
rules:
  - id: my-deal
    kind: deal
    description: a deal rule
    deal:
      term_months: {gt: 12}
    severity: warning
    at_risk: none
"""


def _only(directory: Path, name: str, text: str) -> RuleError:
    (directory / name).write_text(text)
    with pytest.raises(RuleErrors) as info:
        load_rule_pack(directory)
    assert len(info.value.errors) == 1, str(info.value)
    return info.value.errors[0]


@pytest.mark.parametrize(("value", "tag"), [
    ("!!python/object:os.system {}", "!!python/object:os.system"),
    ("!!python/object/apply:os.system [echo]", "!!python/object/apply:os.system"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!foo warning", "!foo"),
    ("!!set {warning: null}", "!!set"),
    ("!!binary d2FybmluZw==", "!!binary"),
])
def test_a_tag_other_than_the_core_ones_is_refused_at_its_line(rules_dir, value, tag):
    text = RULE.replace("severity: warning", f"severity: {value}")
    error = _only(rules_dir, "payout.yaml", text)
    assert error.source == str(rules_dir / "payout.yaml") and error.line == 7
    assert str(error) == (f"{rules_dir / 'payout.yaml'}:7: YAML tag {tag} is not allowed (rule "
                          "files hold plain values, lists and mappings only)")


def test_a_custom_tag_on_a_mapping_is_not_silently_ignored(rules_dir):
    text = RULE.replace("deal:\n", "deal: !filter\n")
    error = _only(rules_dir, "payout.yaml", text)
    assert error.line == 5 and "YAML tag !filter is not allowed" in str(error)


def test_explicit_core_tags_are_plain_data(rules_dir):
    (rules_dir / "payout.yaml").write_text(RULE.replace("severity: warning",
                                                        "severity: !!str warning"))
    assert load_rule_pack(rules_dir).rule_count == 1


def _billion_laughs(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_fast_in_bounded_memory(rules_dir):
    tracemalloc.start()
    started = time.perf_counter()
    error = _only(rules_dir, "payout.yaml", _billion_laughs(9))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5
    assert peak < 20 * 2**20
    # Level 3 (line 4) is the first whose aliases add up to more than 10,000 values.
    assert error.line == 4
    assert str(error) == (f"{rules_dir / 'payout.yaml'}:4: aliases expand to more than 10,000 "
                          "values; write the values out instead")


def test_aliases_within_the_bound_still_load(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("a: &a [x, y]\nb: *a\nc: *a\n")
    assert load_yaml(path).data == {"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "y"]}
    # Two levels: aliases add 10 x 11 + 10 x 111 = 1,220 values, under the bound.
    assert MAX_ALIAS_EXPANSION >= 10 * 11 + 10 * 111
    path.write_text(_billion_laughs(2))
    assert len(load_yaml(path).data["a2"][9]) == 10


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("rules:\n  - &r\n    id: x\n    again: *r\n")
    with pytest.raises(RuleError) as info:
        load_yaml(path)
    assert info.value.line == 4
    assert "an alias refers to the collection that contains it" in str(info.value)


def test_nesting_past_the_bound_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RuleError) as info:
        load_yaml(path)
    assert info.value.line == 1 and "nested more than" in str(info.value)
