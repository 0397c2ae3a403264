"""Calendar months, quarters and years in UTC: the aggregation periods."""

from __future__ import annotations

import calendar
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


def add_months(epoch: float, months: int) -> float:
    """The same day and time `months` calendar months later, in UTC; a day the later month
    lacks (the 31st, Feb 29) becomes its last. Past year 9999: the end of 9999."""
    end_of_time = datetime(9999, 12, 31, tzinfo=UTC).timestamp() + DAY
    if epoch >= end_of_time:
        return end_of_time
    when = datetime.fromtimestamp(epoch, UTC)
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    if year > 9999:
        return end_of_time
    last = calendar.monthrange(year, month + 1)[1]
    return when.replace(year=year, month=month + 1, day=min(when.day, last)).timestamp()


_month_cache: dict[int, tuple[str, float]] = {}
_year_cache: dict[int, tuple[str, float]] = {}


def month_of(epoch: float) -> tuple[str, float]:
    """(label like "2026-03", exclusive end as epoch seconds); cached by day."""
    day = int(epoch // DAY)
    hit = _month_cache.get(day)
    if hit is not None:
        return hit
    when = datetime.fromtimestamp(day * DAY, UTC)
    if when.month == 12:
        end = datetime(when.year, 12, 31, tzinfo=UTC).timestamp() + DAY
    else:
        end = datetime(when.year, when.month + 1, 1, tzinfo=UTC).timestamp()
    result = (f"{when.year}-{when.month:02d}", end)
    if len(_month_cache) > 100_000:
        _month_cache.clear()
    _month_cache[day] = result
    return result


def year_of(epoch: float) -> tuple[str, float]:
    """(label like "2026", exclusive end as epoch seconds); cached by day."""
    day = int(epoch // DAY)
    hit = _year_cache.get(day)
    if hit is not None:
        return hit
    year = datetime.fromtimestamp(day * DAY, UTC).year
    result = (str(year), datetime(year, 12, 31, tzinfo=UTC).timestamp() + DAY)
    if len(_year_cache) > 100_000:
        _year_cache.clear()
    _year_cache[day] = result
    return result


# The periods an aggregate rule can sum over, by the name a rule file gives them.
PERIODS = {"month": month_of, "quarter": quarter_of, "year": year_of}
