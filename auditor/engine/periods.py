"""Calendar quarters in UTC: the aggregation periods."""

from __future__ import annotations

from datetime import UTC, datetime

DAY = 86400.0
_cache: dict[int, tuple[str, float]] = {}


def quarter_of(epoch: float) -> tuple[str, float]:
    """(label like "2026-Q1", exclusive end as epoch seconds); cached by day, it is per event."""
    day = int(epoch // DAY)
    hit = _cache.get(day)
    if hit is not None:
        return hit
    when = datetime.fromtimestamp(day * DAY, UTC)
    q = (when.month - 1) // 3 + 1
    if q == 4:
        # The day after the year's last: also right for 9999, whose year 10000 has no datetime.
        end = datetime(when.year, 12, 31, tzinfo=UTC).timestamp() + DAY
    else:
        end = datetime(when.year, q * 3 + 1, 1, tzinfo=UTC).timestamp()
    result = (f"{when.year}-Q{q}", end)
    if len(_cache) > 100_000:  # bounded even on absurd input
        _cache.clear()
    _cache[day] = result
    return result
