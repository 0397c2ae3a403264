"""The default pack's alerts on the demo stream (`make demo`'s) and on a benchmark-sized stream
are byte for byte the committed golden ones (tests/golden/<stream>.json: digests, see
tests/golden/golden_alerts.py), so a refactor of the engine or the rules' model cannot change a
finding unnoticed. A failure names the rules whose alerts differ and by how many.

A change of alerts that is intended: `scripts/golden-alerts` rewrites the golden files (and
prints what changed); commit them with the change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.golden_alerts import STREAMS, differences, digest, golden_path, load, run_stream


@pytest.mark.parametrize("stream", list(STREAMS))
def test_the_default_packs_alerts_are_the_golden_ones(stream: str, tmp_path: Path) -> None:
    assert golden_path(stream).exists(), f"no {golden_path(stream).name}: scripts/golden-alerts"
    events, alerts = run_stream(stream, tmp_path)
    changes = differences(load(stream), digest(stream, events, alerts))
    if changes:
        pytest.fail(
            f"the alerts on the {stream} stream (auditor simulate {' '.join(STREAMS[stream])}) "
            f"are not the golden ones:\n  " + "\n  ".join(changes) +
            f"\nthis run's alerts: {alerts}\nif the change is intended, run "
            "scripts/golden-alerts and commit tests/golden/", pytrace=False)


def test_a_difference_names_the_rules_and_counts() -> None:
    golden = {"simulate": ["--seed", "7"], "events": {"count": 3, "sha256": "e"},
              "alerts": {"count": 5, "sha256": "a"},
              "rules": {"r1": {"count": 2, "sha256": "x"}, "r2": {"count": 3, "sha256": "y"},
                        "r3": {"count": 1, "sha256": "z"}}}
    actual = {"simulate": ["--seed", "7"], "events": {"count": 3, "sha256": "e"},
              "alerts": {"count": 5, "sha256": "b"},
              "rules": {"r1": {"count": 2, "sha256": "x"}, "r2": {"count": 3, "sha256": "w"},
                        "r4": {"count": 1, "sha256": "v"}}}
    assert differences(golden, golden) == []
    assert differences(golden, actual) == [
        "r2: 3 alerts as golden, but their bytes or order differ",
        "r3: 0 alerts, golden 1 (-1)",
        "r4: 1 alerts, golden 0 (+1)",
        "alerts file: 5 alerts, golden 5; sha256 b, golden a",
    ]
