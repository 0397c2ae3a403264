"""Rule exceptions as the engine runs them: which findings of a rule are not alerts, by which
exception. Both stages ask `excepted_by`; a kind never knows about exceptions.

An excepted finding keeps its effects on state (a pair marked fired, a period marked fired), so
it is not found again and does not come back as an alert when the exception expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from auditor.engine.alerts import Alert
from auditor.events.models import Deal
from auditor.rules.filters import Predicate

# The day of a finding whose event_time is past 9999 (an aggregate period's exclusive end).
_LAST_DAY = "9999-12-31"


@dataclass(frozen=True, slots=True)
class RuleException:
    name: str
    reason: str
    owner: str
    expires: date
    values: tuple[tuple[str, frozenset[str]], ...]  # alert field -> the values that match
    deal: Predicate | None
    matches: dict[str, Any]  # what it matches, as written (for listings)
    source: str  # file:line where the exception is defined
    # `expires` as YYYY-MM-DD, compared as text with a finding's day (years have 4 digits).
    last_day: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "last_day", self.expires.isoformat())

    def applies(self, alert: Alert, deal: Deal | None, day: str) -> bool:
        if day > self.last_day:
            return False
        if alert.group_by is not None:  # an aggregate: only its group is known
            if self.deal is not None:
                return False
            return all(key == alert.group_by and alert.group in values
                       for key, values in self.values)
        for key, values in self.values:
            if getattr(alert, key) not in values:
                return False
        return self.deal is None or (deal is not None and self.deal(deal))


def finding_day(alert: Alert) -> str:
    """The day (YYYY-MM-DD, UTC) an expiry is compared with: the finding's event_time's; for an
    aggregate, whose event_time is its period's exclusive end, the period's last day."""
    text = alert.event_time or ""
    if alert.period is None:
        return text[:10]
    if len(text) < 10 or text[4] != "-":  # past 9999
        return _LAST_DAY
    return (date.fromisoformat(text[:10]) - timedelta(days=1)).isoformat()


def excepted_by(exceptions: tuple[RuleException, ...], alert: Alert,
                deal: Deal | None) -> RuleException | None:
    """The first of a rule's exceptions (in file order) that applies to its finding `alert`;
    `deal` is the deal the finding is about, if any, for the exceptions' deal filters."""
    day = finding_day(alert)
    for exception in exceptions:
        if exception.applies(alert, deal, day):
            return exception
    return None


def expired(exception: RuleException, today: date) -> bool:
    """It matches no finding after a day already past."""
    return exception.expires < today


def expired_warning(rule_id: str, exception: RuleException) -> str:
    """What running with an expired exception says (`rules check` refuses it instead)."""
    return (f"{exception.source}: {rule_id}: exceptions[{exception.name}]: expired on "
            f"{exception.expires.isoformat()}; it matches no finding after that day "
            "(remove it, or extend it with a reason)")
