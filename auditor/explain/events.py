"""The deal to explain, its account's churns and its account's other deals, read from a JSON
Lines file as `replay` reads it: the same decoder (amounts in the reporting currency), invalid
lines skipped, and of two events of an account with the same event id, or two of its deals
with the same deal id, the first one only. The file is streamed, twice at most: it may be
large."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from auditor.events.currency import CurrencyTable
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Churn, Deal, Event
from auditor.rules.hints import did_you_mean

Decoded = Event | DeadLetter | None  # None: a blank line
# Deal ids compared for a "did you mean" when a deal is not found (difflib is quadratic-ish).
MAX_HINT_IDS = 50_000


class BadInput(ValueError):
    """What the user asked for is not in the file, or not a deal: exit 2."""


@dataclass(frozen=True, slots=True)
class Located:
    event: Event
    where: str  # file:line


@dataclass
class DealInFile:
    """The deal as the engine audits it, and its account's churns and other deals in file
    order."""

    deal: Deal
    where: str
    churns: list[Located]  # the account's churns, repeated events left out
    notes: list[str] = field(default_factory=list)  # what was read otherwise than asked
    # The account's other deals as the engine keeps them: each deal id once (its first event),
    # repeated events left out.
    deals: list[Located] = field(default_factory=list)


def parse_event_arg(value: str) -> tuple[str, int]:
    """FILE:LINE -> (FILE, LINE)."""
    path, sep, line = value.rpartition(":")
    if not sep or not path or not line.isdigit() or int(line) < 1:
        raise BadInput(f"--event {value!r}: expected FILE:LINE, e.g. events.jsonl:12")
    return path, int(line)


def _lines(path: str, currency: CurrencyTable) -> Iterator[tuple[int, Decoded]]:
    """Each line of the file decoded as replay decodes it."""
    decoder = EventDecoder(currency)
    try:
        with open(path, "rb") as stream:
            for number, raw in enumerate(stream, 1):
                line = raw.rstrip(b"\r\n")
                if not line or line.isspace():
                    yield number, None  # blank lines are not events
                else:
                    yield number, decoder.decode(line, f"{path}:{number}")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc


def find_by_line(path: str, line: int, currency: CurrencyTable,
                 account: str | None = None) -> DealInFile:
    where = f"{path}:{line}"
    found: Decoded = None
    count = 0
    for count, decoded in _lines(path, currency):
        if count == line:
            found = decoded
            break
    if count < line:
        raise BadInput(f"{where}: the file has {count} lines")
    if found is None:
        raise BadInput(f"{where}: the line is blank")
    if isinstance(found, DeadLetter):
        raise BadInput(f"{where}: not a valid event, a replay dead-letters it "
                       f"({found.reason}: {found.detail})")
    if not isinstance(found, Deal):
        raise BadInput(f"{where}: an {found.event_type} event; explain takes a deal_closed "
                       f"line (or --deal DEAL_ID FILE)")
    if account is not None and account != found.account_id:
        raise BadInput(f"{where}: deal {found.deal_id} is of account {found.account_id}, "
                       f"not {account}")
    return _in_account(path, currency, found, line)


def find_by_id(path: str, deal_id: str, currency: CurrencyTable,
               account: str | None = None) -> DealInFile:
    first: tuple[int, Deal] | None = None
    accounts: set[str] = set()
    ids: set[str] = set()
    for number, event in _lines(path, currency):
        if not isinstance(event, Deal) or (account is not None and event.account_id != account):
            continue
        if event.deal_id == deal_id:
            accounts.add(event.account_id)
            if first is None:
                first = (number, event)
        elif first is None and len(ids) < MAX_HINT_IDS:
            ids.add(event.deal_id)
    if first is None:
        of = f" of account {account}" if account is not None else ""
        raise BadInput(f"no valid deal_closed event of deal {deal_id}{of} in {path}"
                       f"{did_you_mean(deal_id, ids)}")
    if len(accounts) > 1:
        names = sorted(accounts)
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise BadInput(f"deal {deal_id} is in {len(names)} accounts in {path} ({shown}): "
                       f"deal ids are unique per account only; give --account ACCOUNT")
    return _in_account(path, currency, first[1], first[0])


def _in_account(path: str, currency: CurrencyTable, asked: Deal, asked_line: int
                ) -> DealInFile:
    """The first deal of the account with the asked deal's id (the one the engine keeps), the
    account's churns, each event id once, and its other deals, each deal id once."""
    account, where = asked.account_id, f"{path}:{asked_line}"
    seen_ids: set[str] = set()
    deal: tuple[Deal, str] | None = None
    churns: list[Located] = []
    others: list[Located] = []
    other_ids: set[str] = set()
    notes: list[str] = []
    for number, event in _lines(path, currency):
        if event is None or isinstance(event, DeadLetter) or event.account_id != account:
            continue
        at = f"{path}:{number}"
        repeated = event.event_id in seen_ids
        seen_ids.add(event.event_id)
        if isinstance(event, Churn):
            if not repeated:
                churns.append(Located(event, at))
        elif event.deal_id != asked.deal_id:
            if not repeated and event.deal_id not in other_ids:
                other_ids.add(event.deal_id)
                others.append(Located(event, at))
        elif deal is None and not repeated:
            deal = (event, at)
        elif number == asked_line and deal is not None:
            notes.append(f"{where} repeats deal {event.deal_id} of {deal[1]}: a replay "
                         f"ignores it and audits {deal[1]}")
        elif number == asked_line:
            notes.append(f"{where} repeats the event id {event.event_id} of another event "
                         f"of the account: a replay ignores it")
    if deal is None:  # the engine never audits it: explained as written
        deal = (asked, where)
    return DealInFile(deal[0], deal[1], churns, notes, others)
