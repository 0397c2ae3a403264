"""Input is exactly the contract: RFC 3339 timestamps within the representable years, JSON
integers for int fields, no NaN or Infinity anywhere; anything else is a dead letter."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from unit_helpers import churn_dict, deal_dict, raw

from auditor.events.deadletter import DeadLetter
from auditor.events.decode import non_json_constant
from auditor.events.models import (
    END_TIME,
    FIRST_TIME,
    Churn,
    Deal,
    event_from_dict,
    event_to_dict,
    format_time,
)

TIME_FIELDS = [("closed_at", deal_dict), ("churned_at", churn_dict)]


def _decode(decoder, data: bytes):
    return decoder.decode(data, "events.jsonl:3")


def _letter(decoder, data: bytes) -> DeadLetter:
    result = _decode(decoder, data)
    assert isinstance(result, DeadLetter), result
    return result


def _event_with(field: str, build, value) -> bytes:
    return raw(build(**{field: value}))


# --- timestamps: RFC 3339 date-time, exactly ---------------------------------------------------


@pytest.mark.parametrize(("field", "build"), TIME_FIELDS)
@pytest.mark.parametrize(
    "stamp",
    [
        "1767225600",                      # epoch seconds as a string
        "1767225600.5",
        "2026-01-05T10:00Z",               # no seconds
        "2026-01-05T10:00:00+0530",        # offset without a colon
        "2026-01-05T10:00:00+05",          # offset without minutes
        "2026-01-05T10:00:00,5Z",          # comma fraction
        "2026-01-05T10:00:00.Z",           # dot without digits
        "2026-01-05T10:00:00",             # no zone
        "2026-01-05",                      # a date only
        "2026-01-05 10:00:00Z",            # space separator
        "2026-01-05_10:00:00Z",
        "20260105T100000Z",                # ISO 8601 basic format
        "2026-1-5T10:00:00Z",
        "+2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00 Z",
        "2026-01-05T10:00:00Z\n",
        " 2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00UTC",
        "2026-01-05T10:00:00\u0661Z",      # a non-ASCII digit
        "2026-01-05T10:00:60Z",            # a leap second: no datetime holds it
        "2026-02-30T10:00:00Z",
        "2026-01-05T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "",
    ],
)
def test_timestamp_not_rfc3339_is_a_schema_error_naming_the_field(decoder, field, build, stamp):
    letter = _letter(decoder, _event_with(field, build, stamp))
    assert letter.reason == "schema"
    assert letter.detail.startswith(f"{field}: "), letter.detail


@pytest.mark.parametrize(("field", "build"), TIME_FIELDS)
@pytest.mark.parametrize("value", [1767225600, 1767225600.0, True, None, ["2026-01-05T10:00:00Z"]])
def test_timestamp_not_a_string_is_a_schema_error(decoder, field, build, value):
    letter = _letter(decoder, _event_with(field, build, value))
    assert letter.reason == "schema"
    assert letter.detail.startswith(f"{field}: "), letter.detail


@pytest.mark.parametrize(("field", "build"), TIME_FIELDS)
@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
        ("2026-01-05t10:00:00z", "2026-01-05T10:00:00Z"),
        ("2026-01-05T10:00:00.5Z", "2026-01-05T10:00:00.500000Z"),
        ("2026-01-05T10:00:00.123456789Z", "2026-01-05T10:00:00.123456Z"),
        ("2026-01-05T15:30:00+05:30", "2026-01-05T10:00:00Z"),
        ("2026-01-05T08:00:00-02:00", "2026-01-05T10:00:00Z"),
        ("2026-01-05T10:00:00-00:00", "2026-01-05T10:00:00Z"),
        ("2026-01-06T09:59:00+23:59", "2026-01-05T10:00:00Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00-01:00", "0001-01-01T01:00:00Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59Z"),
    ],
)
def test_rfc3339_timestamps_are_accepted_in_utc(decoder, field, build, stamp, utc):
    event = _decode(decoder, _event_with(field, build, stamp))
    assert isinstance(event, Deal | Churn), event
    assert format_time(event.time) == utc


@pytest.mark.parametrize(("field", "build"), TIME_FIELDS)
@pytest.mark.parametrize(
    "stamp",
    [
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:00:00-23:59",
        "9999-12-31T23:59:59.999999Z",  # as float seconds it rounds to the first of 10000
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:59:59+01:00",
    ],
)
def test_timestamp_outside_the_representable_years_in_utc_is_a_schema_error(
        decoder, field, build, stamp):
    letter = _letter(decoder, _event_with(field, build, stamp))
    assert letter.reason == "schema"
    assert letter.detail.startswith(f"{field}: "), letter.detail
    assert "outside the years 1 to 9999" in letter.detail


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)


@given(when=st.datetimes(), offset=_OFFSETS, fraction=st.sampled_from(["", ".5", ".000001",
                                                                        ".999999", ".25000"]),
       churn=st.booleans())
@example(when=datetime(9999, 12, 31, 23, 59, 59), offset=-1, fraction="", churn=False)
@example(when=datetime(9999, 12, 31, 23, 59, 59), offset=0, fraction=".999999", churn=True)
@example(when=datetime(9999, 12, 31, 23, 59, 59), offset=1, fraction=".5", churn=False)
@example(when=datetime(1, 1, 1), offset=1, fraction="", churn=True)
@example(when=datetime(1, 1, 1), offset=0, fraction="", churn=False)
@example(when=datetime(1, 1, 1), offset=-(24 * 60 - 1), fraction="", churn=False)
def test_any_rfc3339_time_decodes_to_a_writable_time_or_a_schema_error(
        decoder, when, offset, fraction, churn):
    """Every valid event's time can be written by format_time; the rest are schema errors."""
    sign, minutes = ("-" if offset < 0 else "+"), abs(offset)
    zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    stamp = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}{fraction}{zone}"
    field, build = TIME_FIELDS[churn]
    local = datetime.fromisoformat(stamp)
    seconds = local.timestamp()  # computable for any aware datetime, even out of range in UTC
    result = _decode(decoder, _event_with(field, build, stamp))
    if not FIRST_TIME <= seconds < END_TIME:
        assert isinstance(result, DeadLetter), stamp
        assert result.reason == "schema"
        assert result.detail.startswith(f"{field}: ") and "outside the years" in result.detail
        return
    assert isinstance(result, Deal | Churn), (stamp, result)
    assert result.time == seconds
    text = format_time(result.time)
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs(parsed - local.astimezone(UTC)) <= timedelta(microseconds=1)


# --- int fields take JSON integers only --------------------------------------------------------


@pytest.mark.parametrize("build", [deal_dict, churn_dict])
@pytest.mark.parametrize("value", [b"true", b"false", b"1.0", b"1e0", b"1.5", b'"1"', b"null",
                                   b"[1]", b"2", b"0", b"-1"])
def test_schema_version_is_the_json_integer_1(decoder, build, value):
    text = raw(build(schema_version=1))
    data = text.replace(b'"schema_version": 1', b'"schema_version": ' + value)
    assert data != text
    letter = _letter(decoder, data)
    assert letter.reason == "schema"
    assert letter.detail.startswith("schema_version: "), letter.detail


@pytest.mark.parametrize(("field", "value"), [("term_months", b"true"), ("term_months", b"12.0"),
                                              ("commission.clawback_days", b"false")])
def test_other_int_fields_refuse_booleans_and_floats(decoder, field, value):
    name = field.rsplit(".", 1)[-1]
    text = raw(deal_dict())
    start = text.index(f'"{name}": '.encode()) + len(name) + 4
    end = min(i for i in (text.find(b",", start), text.find(b"}", start)) if i >= 0)
    letter = _letter(decoder, text[:start] + value + text[end:])
    assert letter.reason == "schema"
    assert letter.detail.startswith(f"{field}: "), letter.detail


# --- NaN and Infinity are not JSON, wherever they are ------------------------------------------


def _with_extra(build, extra: bytes) -> bytes:
    text = raw(build())
    return text[:-1] + b', ' + extra + b'}'


@pytest.mark.parametrize("build", [deal_dict, churn_dict])
@pytest.mark.parametrize(
    ("extra", "token"),
    [
        (b'"note": NaN', "NaN"),
        (b'"note": Infinity', "Infinity"),
        (b'"note": -Infinity', "-Infinity"),
        (b'"note":NaN', "NaN"),
        (b'"nested": {"deeper": [1, 2, {"x": NaN}]}', "NaN"),
        (b'"list": [Infinity]', "Infinity"),
        (b'"s": "a \\" quote", "n": -Infinity', "-Infinity"),
        (b'"s": "backslash \\\\", "n": NaN', "NaN"),
        (b'"NaN": NaN', "NaN"),
    ],
)
def test_nan_and_infinity_in_an_unknown_field_are_bad_json(decoder, build, extra, token):
    data = _with_extra(build, extra)
    letter = _letter(decoder, data)
    assert letter.reason == "bad_json"
    assert f"{token} is not a JSON value" in letter.detail
    assert letter.original == data.decode()


@pytest.mark.parametrize(("field", "token"), [("acv", b"NaN"), ("tcv", b"Infinity"),
                                              ("discount_pct", b"-Infinity")])
def test_nan_and_infinity_in_a_known_field_are_bad_json(decoder, field, token):
    text = raw(deal_dict())
    start = text.index(f'"{field}": '.encode()) + len(field) + 4
    end = text.index(b",", start)
    assert _letter(decoder, text[:start] + token + text[end:]).reason == "bad_json"


@pytest.mark.parametrize("data", [b"NaN", b"Infinity", b"-Infinity", b"[NaN]"])
def test_a_bare_nan_or_infinity_is_bad_json(decoder, data):
    assert _letter(decoder, data).reason == "bad_json"


@pytest.mark.parametrize(
    "extra",
    [b'"note": "NaN"', b'"note": "Infinity"', b'"note": "-Infinity and NaN"',
     b'"NaN": "Infinity"', b'"note": "a \\"NaN\\" in quotes"', b'"note": "\\\\NaN\\\\"',
     b'"Infinity": ["NaN", {"NaN": "x"}]'],
)
def test_nan_and_infinity_inside_strings_are_fine(decoder, extra):
    assert isinstance(_decode(decoder, _with_extra(deal_dict, extra)), Deal)


def test_nan_in_an_id_is_fine(decoder):
    event = _decode(decoder, raw(deal_dict(rep_id="NaNcy", team="Infinity-team")))
    assert isinstance(event, Deal)
    assert (event.rep_id, event.team) == ("NaNcy", "Infinity-team")


_JSON_TEXT = st.text(alphabet=st.sampled_from('NaIfinty"\\ -x{}[]:,é\U0001F600'), max_size=40)


@given(value=_JSON_TEXT, key=_JSON_TEXT)
def test_any_string_holding_nan_or_infinity_is_fine(decoder, value, key):
    """Whatever a string value or key holds (escaped by json.dumps), the event stays valid."""
    event = {**deal_dict(), f"x-{key}": value, "note": [value, {key: value}]}
    assert isinstance(_decode(decoder, json.dumps(event).encode()), Deal)
    assert isinstance(_decode(decoder, json.dumps(event, ensure_ascii=False).encode()), Deal)


@given(st.sampled_from(["NaN", "Infinity", "-Infinity"]), st.sampled_from(["", " ", "\n"]))
def test_whitespace_around_the_token_does_not_hide_it(decoder, token, space):
    data = _with_extra(deal_dict, f'"x":{space}{token}{space}'.encode())
    assert _letter(decoder, data).reason == "bad_json"


def test_an_unterminated_string_after_nan_text_does_not_take_quadratic_time(decoder):
    data = b'{"a": "' + b'\\"' * 200_000 + b"NaN"
    letter = _letter(decoder, data)  # an open string: not NaN, but still not JSON
    assert letter.reason == "bad_json"


@pytest.mark.parametrize("stamp", ["2026-01-05T10:00:00Z", "2026-01-05t15:30:00.25+05:30",
                                   "2026-01-05T08:00:00.000001-02:00", "9999-12-31T23:59:59z"])
def test_times_are_datetimes_and_survive_the_state_store_round_trip(decoder, stamp):
    """The worker keeps events as `event_to_dict` and reads them back through the contract."""
    for build, field in ((deal_dict, "closed_at"), (churn_dict, "churned_at")):
        event = _decode(decoder, _event_with(field, build, stamp))
        when = getattr(event, field)
        assert isinstance(when, datetime)
        assert when.utcoffset() is not None
        again = event_from_dict(event_to_dict(event))
        assert getattr(again, field) == when
        assert again.time == event.time


def test_the_nan_check_is_public_for_the_producer():
    assert non_json_constant(b'{"a": "NaN", "b": -Infinity}') == (
        "Invalid JSON: -Infinity is not a JSON value, at byte 19")
    assert non_json_constant(b'{"a": "NaN"}') is None
