"""Dead letters: every reason code, with reason, detail (naming the field), source, original."""

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from unit_helpers import churn_dict, deal_dict, raw, run

from auditor.events.deadletter import DEADLETTER_MAX_BYTES, DEADLETTER_MIN_BYTES, DeadLetter
from auditor.events.decode import MAX_EVENT_BYTES, TOO_LARGE_KEPT_BYTES
from auditor.events.models import Churn, Deal


def _letter(decoder, data: bytes, source="events.jsonl:7") -> DeadLetter:
    result = decoder.decode(data, source)
    assert isinstance(result, DeadLetter), result
    assert result.source == source
    return result


def _json_letter(decoder, event) -> DeadLetter:
    return _letter(decoder, raw(event))


def _deal_with(**fields):
    return deal_dict(**fields)


def _deal_commission(**fields):
    return deal_dict(commission=fields)


def test_valid_events_decode(decoder):
    assert isinstance(decoder.decode(raw(deal_dict()), "s"), Deal)
    assert isinstance(decoder.decode(raw(churn_dict()), "s"), Churn)


# --- bad_json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"not json", b"", b"{", b'{"event_type": "deal_closed",}', b"\xff\xfe\xfd",
     b'{"event_type": "deal_closed", "team": "\xff"}'],
    ids=["text", "empty", "truncated", "trailing-comma", "invalid-utf8", "invalid-utf8-in-string"],
)
def test_bad_json(decoder, data):
    letter = _letter(decoder, data)
    assert letter.reason == "bad_json"
    assert letter.detail
    assert letter.original == data.decode("utf-8", errors="replace")


def test_invalid_utf8_is_replaced_in_original(decoder):
    letter = _letter(decoder, b'\xff{"a": 1}')
    assert letter.original == '\ufffd{"a": 1}'
    json.loads(letter.to_json())  # still writable as a JSON line


# --- not_object -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"[1, 2]", b"[]", b'"a string"', b"12", b"null", b"true",
                                  b"[" + raw(deal_dict()) + b"]"])
def test_not_object(decoder, data):
    letter = _letter(decoder, data)
    assert letter.reason == "not_object"
    assert letter.original == data.decode()


# --- unknown_event_type -----------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["deal_opened", "", "DEAL_CLOSED"])
def test_unknown_event_type(decoder, event_type):
    letter = _json_letter(decoder, deal_dict(event_type=event_type))
    assert letter.reason == "unknown_event_type"
    assert "event_type" in letter.detail or event_type in letter.detail


# --- schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing",
    ["event_id", "schema_version", "deal_id", "account_id", "rep_id", "team", "plan_id",
     "deal_type", "closed_at", "term_months", "acv", "tcv", "discount_pct", "currency"],
)
def test_missing_deal_field_is_named(decoder, missing):
    event = deal_dict()
    del event[missing]
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert missing in letter.detail
    assert letter.original == json.dumps(event)


@pytest.mark.parametrize("missing", ["amount", "paid_upfront", "basis", "rate", "clawback_days"])
def test_missing_commission_field_is_named(decoder, missing):
    event = deal_dict()
    del event["commission"][missing]
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert f"commission.{missing}" in letter.detail


def test_missing_commission_object(decoder):
    event = deal_dict()
    del event["commission"]
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert "commission" in letter.detail


def test_commission_fields_at_the_top_level_do_not_stand_in_for_commission(decoder):
    """The contract nests them under `commission`; top-level copies are unknown extra fields,
    which are ignored, so the event is still missing `commission` -> schema dead letter."""
    event = deal_dict()
    event.update(event.pop("commission"))  # amount, paid_upfront, ... at the top level
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert "commission" in letter.detail


@pytest.mark.parametrize("missing", ["event_id", "account_id", "churned_at", "churn_type",
                                     "arr_lost", "currency", "schema_version"])
def test_missing_churn_field_is_named(decoder, missing):
    event = churn_dict()
    del event[missing]
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert missing in letter.detail


def test_missing_event_type_is_a_schema_error(decoder):
    event = deal_dict()
    del event["event_type"]
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert "event_type" in letter.detail


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (_deal_with(term_months="12"), "term_months"),
        (_deal_with(term_months=12.0), "term_months"),
        (_deal_with(term_months=0), "term_months"),
        (_deal_with(acv="1000"), "acv"),
        (_deal_with(acv=-1.0), "acv"),
        (_deal_with(tcv=-0.01), "tcv"),
        (_deal_with(acv=True), "acv"),
        (_deal_with(discount_pct=1.5), "discount_pct"),
        (_deal_with(discount_pct=-0.1), "discount_pct"),
        (_deal_with(schema_version=2), "schema_version"),
        (_deal_with(schema_version="1"), "schema_version"),
        (_deal_with(event_id=""), "event_id"),
        (_deal_with(deal_id=""), "deal_id"),
        (_deal_with(account_id=""), "account_id"),
        (_deal_with(team=""), "team"),
        (_deal_with(deal_id=12), "deal_id"),
        (_deal_with(deal_type="upsell"), "deal_type"),
        (_deal_with(closed_at="2026-01-05T00:00:00"), "closed_at"),
        (_deal_with(closed_at="yesterday"), "closed_at"),
        (_deal_with(closed_at=1767571200), "closed_at"),
        (_deal_with(currency="usd"), "currency"),
        (_deal_commission(amount=-5.0), "commission.amount"),
        (_deal_commission(amount="100"), "commission.amount"),
        (_deal_commission(paid_upfront=-1.0), "commission.paid_upfront"),
        (_deal_commission(basis="arr"), "commission.basis"),
        (_deal_commission(rate=1.5), "commission.rate"),
        (_deal_commission(clawback_days=30.0), "commission.clawback_days"),
        (_deal_commission(clawback_days=-1), "commission.clawback_days"),
        (churn_dict(arr_lost="10"), "arr_lost"),
        (churn_dict(arr_lost=-10.0), "arr_lost"),
        (churn_dict(churn_type="gone"), "churn_type"),
        (churn_dict(churned_at="2026-01-05T00:00:00"), "churned_at"),
        (churn_dict(account_id=""), "account_id"),
        (churn_dict(schema_version=2), "schema_version"),
    ],
)
def test_mistyped_or_out_of_range_field_is_named(decoder, event, field):
    letter = _json_letter(decoder, event)
    assert letter.reason == "schema"
    assert letter.detail.startswith(field) or f"; {field}" in letter.detail, letter.detail
    assert letter.event_type == event["event_type"]


def test_paid_upfront_over_amount(decoder):
    letter = _json_letter(decoder, _deal_commission(amount=100.0, paid_upfront=100.01))
    assert letter.reason == "schema"
    assert "paid_upfront" in letter.detail


def test_paid_upfront_equal_to_amount_is_fine(decoder):
    assert isinstance(decoder.decode(raw(_deal_commission(amount=100.0, paid_upfront=100.0)),
                                     "s"), Deal)


def test_unknown_extra_fields_are_ignored(decoder):
    event = {**deal_dict(), "note": "x", "nested": {"a": [1]}}
    event["commission"]["tier"] = "gold"
    assert isinstance(decoder.decode(raw(event), "s"), Deal)


def test_extra_field_named_like_an_internal_attribute_is_ignored(decoder):
    event = {**deal_dict(days=1.0), "time": 5}
    deal = decoder.decode(raw(event), "s")
    assert isinstance(deal, Deal)
    assert deal.time == deal.closed_at.timestamp()


def test_offsets_are_compared_in_utc(decoder):
    a = decoder.decode(raw(deal_dict(closed_at="2026-03-31T23:30:00-02:00")), "s")
    b = decoder.decode(raw(deal_dict(closed_at="2026-04-01T01:30:00Z")), "s")
    assert a.time == b.time


# --- too_large --------------------------------------------------------------------------------


def test_two_mib_line_is_too_large(decoder):
    event = {**deal_dict(), "padding": "x" * (2 * 1024 * 1024)}
    data = raw(event)
    letter = _letter(decoder, data)
    assert letter.reason == "too_large"
    assert str(len(data)) in letter.detail
    assert letter.original == data[:TOO_LARGE_KEPT_BYTES].decode()  # only the head is kept
    written = json.loads(letter.to_bytes())
    assert written["truncated"] is True
    assert written["original_bytes"] == len(data)
    assert written["original"] == letter.original


def test_too_large_head_does_not_split_a_character(decoder):
    data = b'{"pad": "' + "\u20ac".encode() * (MAX_EVENT_BYTES // 3 + 10) + b'"}'  # 3 bytes each
    letter = _letter(decoder, data)
    assert letter.reason == "too_large"
    assert "\ufffd" not in letter.original
    assert data.startswith(letter.original.encode())
    assert TOO_LARGE_KEPT_BYTES - 3 < len(letter.original.encode()) <= TOO_LARGE_KEPT_BYTES


def test_exactly_one_mib_is_not_too_large(decoder):
    event = deal_dict()
    base = raw({**event, "padding": ""})
    padded = {**event, "padding": "x" * (MAX_EVENT_BYTES - len(base))}
    data = raw(padded)
    assert len(data) == MAX_EVENT_BYTES == 1024 * 1024
    assert isinstance(decoder.decode(data, "s"), Deal)
    letter = _letter(decoder, raw({**padded, "padding": padded["padding"] + "x"}))
    assert letter.reason == "too_large"


# --- unsupported_currency ---------------------------------------------------------------------


@pytest.mark.parametrize("event", [deal_dict(currency="XYZ"), churn_dict(currency="XYZ")])
def test_currency_without_a_rate(decoder, event):
    letter = _json_letter(decoder, event)
    assert letter.reason == "unsupported_currency"
    assert "currency" in letter.detail and "XYZ" in letter.detail
    assert letter.event_type == event["event_type"]


# --- the dead letter object -------------------------------------------------------------------


def test_dead_letter_json_has_the_four_contract_fields(decoder):
    letter = _letter(decoder, b"[1]", source="file.jsonl:3")
    assert json.loads(letter.to_json()) == {
        "reason": "not_object", "detail": letter.detail, "source": "file.jsonl:3",
        "original": "[1]"}


def test_invalid_events_are_counted_and_never_stop_the_stream(rules):
    bad = [b"", b"{", b"[]", raw(deal_dict(event_type="x")), raw(deal_dict(acv=-1)),
           raw(deal_dict(currency="XYZ")), raw({**deal_dict(), "p": "x" * (2 << 20)})]
    deal = deal_dict()
    churn = churn_dict(days=5.0)
    result = run(rules, [deal, *bad, churn])
    assert [d.reason for d in result.deadletters] == [
        "bad_json", "bad_json", "not_object", "unknown_event_type", "schema",
        "unsupported_currency", "too_large"]
    assert result.counters.events_by_outcome() == {"processed": 2, "invalid": 7}
    assert len(result.of("early-churn-unrecovered")) == 1
    assert dict(result.counters.deadletters) == {
        "bad_json": 2, "not_object": 1, "unknown_event_type": 1, "schema": 1,
        "unsupported_currency": 1, "too_large": 1}


def test_ids_of_invalid_events_are_not_remembered(rules):
    deal = deal_dict()
    invalid = {**deal, "acv": -1}
    result = run(rules, [invalid, deal])
    assert result.counters.events[("deal_closed", "processed")] == 1
    assert result.counters.events[("deal_closed", "duplicate")] == 0


# --- bounded by its serialised size -----------------------------------------------------------


def _check_bounded(letter: DeadLetter, max_bytes: int) -> dict:
    """The letter's bytes fit, are UTF-8 JSON, keep the head of each field, and say when
    `original` is not the whole input."""
    data = letter.to_bytes(max_bytes)
    assert len(data) <= max_bytes
    text = data.decode("utf-8")  # strict: no split character
    assert letter.to_json(max_bytes) == text
    written = json.loads(text)
    assert written["reason"] and letter.reason.startswith(written["reason"])
    assert letter.original.startswith(written["original"])
    assert letter.source.startswith(written["source"])
    if written["original"] == letter.original and not letter.truncated and \
            written["detail"] == letter.detail and written["source"] == letter.source:
        assert set(written) == {"reason", "detail", "source", "original"}
        expected = json.dumps({"reason": letter.reason, "detail": letter.detail,
                               "source": letter.source, "original": letter.original},
                              ensure_ascii=False)
        # json.dumps' text; a lone surrogate (not UTF-8) as its escape.
        assert data == expected.encode("utf-8", "backslashreplace")
    else:
        assert written["truncated"] is True
        assert written["original_bytes"] == (
            letter.original_bytes if letter.original_bytes is not None
            else len(letter.original.encode("utf-8", "surrogatepass")))
    return written


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        (b"\xff" * (900 * 1024), DEADLETTER_MAX_BYTES),        # 3 bytes of U+FFFD each
        (b"\x00" * (200 * 1024), DEADLETTER_MAX_BYTES),        # \u0000: 6 bytes each
        (b'"' * (MAX_EVENT_BYTES - 1), DEADLETTER_MAX_BYTES),  # \": 2 bytes each
        (b"\\" * MAX_EVENT_BYTES, DEADLETTER_MAX_BYTES),
        ("\U0001F600".encode() * (MAX_EVENT_BYTES // 4), DEADLETTER_MAX_BYTES),
        (b"\x01\xff\"\\" * (MAX_EVENT_BYTES // 4), DEADLETTER_MAX_BYTES),
        (b"\x00" * 2048, 1000),
    ],
    ids=["900KiB-invalid-utf8", "200KiB-NUL", "quotes", "backslashes", "4-byte-chars", "mixed",
         "small-limit"],
)
def test_dead_letter_of_a_bad_input_fits_the_limit(decoder, data, limit):
    letter = _letter(decoder, data)
    assert letter.reason == "bad_json"
    assert len(json.dumps({"original": letter.original}, ensure_ascii=False).encode()) > limit
    written = _check_bounded(letter, limit)
    assert written["truncated"] is True
    assert written["original_bytes"] == len(data)
    assert written["detail"].startswith(letter.detail)
    assert f"original truncated to fit the dead-letter limit of {limit} bytes" in \
        written["detail"]
    assert len(letter.to_bytes(limit)) > limit * 0.99  # cut to the limit, not far below it


def test_the_default_limit_is_well_below_a_kafka_message():
    assert DEADLETTER_MAX_BYTES == 512 * 1024
    letter = DeadLetter("bad_json", "x", "t/0/1", "\x00" * (1 << 20))
    assert len(letter.to_bytes()) <= DEADLETTER_MAX_BYTES
    assert len(letter.to_json().encode()) <= DEADLETTER_MAX_BYTES


def test_a_letter_within_the_limit_is_unchanged(decoder):
    letter = _letter(decoder, b"\x00" * 100)
    assert letter.to_bytes() == json.dumps(
        {"reason": "bad_json", "detail": letter.detail, "source": letter.source,
         "original": "\x00" * 100}, ensure_ascii=False).encode()


def test_detail_and_source_are_cut_when_the_original_alone_is_not_enough():
    letter = DeadLetter("internal_error", "e" * 5000, "s" * 500, "o" * 5000)
    written = _check_bounded(letter, 1000)
    assert written["original"] == ""
    assert written["detail"].startswith("eee")
    assert written["source"] == "s" * 500  # detail goes before source
    written = _check_bounded(letter, DEADLETTER_MIN_BYTES)
    assert (written["original"], written["detail"]) == ("", "")
    assert written["source"].startswith("sss")


def test_lone_surrogates_are_written_as_escapes():
    letter = DeadLetter("schema", "bad \ud800", "f:1", "\udfff" * 10)
    written = _check_bounded(letter, 4096)
    assert written["original"] == letter.original
    assert written["detail"] == letter.detail
    written = _check_bounded(letter, DEADLETTER_MIN_BYTES)


def test_a_limit_below_the_minimum_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        DeadLetter("schema", "", "", "").to_bytes(DEADLETTER_MIN_BYTES - 1)


_WORST = st.sampled_from(["\x00", "\xff", '"', "\\", "\U0001F600", "\u20ac", "\ufffd", "é",
                          "\n", "\x1f", "a", "u", "\u2028", "\ud800"])


@settings(max_examples=300)
@given(original=st.one_of(st.text(), st.text(_WORST), st.lists(_WORST, max_size=3000).map("".join)),
       detail=st.one_of(st.text(max_size=20), st.text(_WORST, max_size=2000)),
       source=st.text(max_size=300),
       limit=st.integers(min_value=DEADLETTER_MIN_BYTES, max_value=3000),
       truncated=st.booleans())
@example(original="\\" * 2000, detail="d", source="s", limit=1000, truncated=False)
@example(original='"' * 2000, detail="d", source="s", limit=DEADLETTER_MIN_BYTES, truncated=True)
@example(original="\x00" * 2000, detail="\x00" * 2000, source="\x00" * 300,
         limit=DEADLETTER_MIN_BYTES, truncated=False)
def test_any_text_is_bounded(original, detail, source, limit, truncated):
    letter = DeadLetter("schema", detail, source, original, truncated=truncated,
                        original_bytes=len(original) * 7 if truncated else None)
    _check_bounded(letter, limit)


@settings(max_examples=300)
@given(data=st.one_of(st.binary(max_size=5000),
                      st.lists(st.sampled_from([b"\x00", b"\xff", b'"', b"\\", b"\xf0\x9f\x98",
                                                b"\xe2\x82\xac", b"NaN", b"\x80"]),
                               max_size=2000).map(b"".join)),
       limit=st.integers(min_value=DEADLETTER_MIN_BYTES, max_value=4000))
def test_any_input_bytes_make_a_bounded_dead_letter(decoder, data, limit):
    letter = decoder.decode(data, "topic/0/12")
    assert isinstance(letter, DeadLetter)
    written = _check_bounded(letter, limit)
    if written.get("truncated"):
        assert written["original_bytes"] == len(data)
