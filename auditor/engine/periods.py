"""Calendar months, quarters and years in UTC: the aggregation periods."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime

DAY = 86400.0


def _by_day(compute: Callable[[datetime], tuple[str, float]]
            ) -> Callable[[float], tuple[str, float]]:
    """A period function cached by day: it is called per event and rule."""
    cache: dict[int, tuple[str, float]] = {}

    def period_of(epoch: float) -> tuple[str, float]:
        day = int(epoch // DAY)
        hit = cache.get(day)
        if hit is not None:
            return hit
        result = compute(datetime.fromtimestamp(day * DAY, UTC))
        if len(cache) > 100_000:  # bounded even on absurd input
            cache.clear()
        cache[day] = result
        return result

    return period_of


def _end_of_year(year: int) -> float:
    # The day after the year's last: also right for 9999, whose year 10000 has no datetime.
    return datetime(year, 12, 31, tzinfo=UTC).timestamp() + DAY


@_by_day
def quarter_of(when: datetime) -> tuple[str, float]:
    """(label like "2026-Q1", exclusive end as epoch seconds)."""
    q = (when.month - 1) // 3 + 1
    end = (_end_of_year(when.year) if q == 4
           else datetime(when.year, q * 3 + 1, 1, tzinfo=UTC).timestamp())
    return f"{when.year}-Q{q}", end


@_by_day
def month_of(when: datetime) -> tuple[str, float]:
    """(label like "2026-03", exclusive end as epoch seconds)."""
    end = (_end_of_year(when.year) if when.month == 12
           else datetime(when.year, when.month + 1, 1, tzinfo=UTC).timestamp())
    return f"{when.year}-{when.month:02d}", end


@_by_day
def year_of(when: datetime) -> tuple[str, float]:
    """(label like "2026", exclusive end as epoch seconds)."""
    return str(when.year), _end_of_year(when.year)


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


# The periods an aggregate rule can sum over, by the name a rule file gives them.
PERIODS = {"month": month_of, "quarter": quarter_of, "year": year_of}
