"""The alerts' fast timestamp text is `format_time`, character for character."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from auditor.engine.findings import time_text
from auditor.events.models import format_time

FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


@given(st.integers(min_value=int(FIRST), max_value=int(LAST)))
def test_whole_seconds(seconds: int) -> None:
    assert time_text(float(seconds)) == format_time(float(seconds))


@given(st.floats(min_value=FIRST, max_value=LAST))
def test_any_time(epoch: float) -> None:
    assert time_text(epoch) == format_time(epoch)


def test_edges() -> None:
    for epoch in (0.0, -0.0, -1.0, 86399.0, 86400.0, 1.5, -0.5, 1767225599.999999, FIRST, LAST,
                  951782400.0, 4107542399.0):  # 2000-02-29, 2100-02-28T23:59:59
        assert time_text(epoch) == format_time(epoch)
    assert time_text(1767225600.0) == "2026-01-01T00:00:00Z"
