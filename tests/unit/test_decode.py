"""The decoder's orjson fast path gives exactly what eventsourcing's JSONTranscoder gives."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    Transcoding,
    UUIDAsHex,
)
from hypothesis import example, given
from hypothesis import strategies as st

from batchlog.adapters.views.decode import DecodeFailure, NotificationDecoder
from batchlog.projections.base import EventRecord, _jsonable, dumps

TRANSCODER = JSONTranscoder()
for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
    TRANSCODER.register(transcoding)
DECODER = NotificationDecoder(Mapper(transcoder=TRANSCODER))
JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)
TOPIC = "tests.unknown:Event"  # no class: no upcasting, the fields as stored

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text()  # stored state is UTF-8: no lone surrogates
    | st.sampled_from(["_type_", '"_type_"', "_data_"])
    | st.datetimes(timezones=st.just(UTC))
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "_type_", "_data_", "b"]), inner, max_size=3)
    ),
    max_leaves=10,
)
payloads = st.dictionaries(st.text(max_size=6).filter(lambda k: k != "timestamp"), values)


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return type(left) is type(right) and left == right


@given(payloads, st.datetimes(timezones=st.just(UTC)))
@example(
    {"": {"_data_": "", "_type_": datetime(2000, 1, 1, tzinfo=UTC)}},
    datetime(2000, 1, 1, tzinfo=UTC),
)
def test_fast_decode_equals_the_transcoder(payload: dict[str, object], timestamp: object) -> None:
    state = TRANSCODER.encode({"timestamp": timestamp, **payload})
    record = DECODER.decode(Notification("q", 1, TOPIC, state, 5))
    try:
        expected = TRANSCODER.decode(state)
    except Exception as error:  # a dict that looks transcoded but is not: both refuse it
        assert isinstance(record, DecodeFailure)
        assert type(record.error) is type(error)
        return
    assert not isinstance(record, DecodeFailure)
    assert record.timestamp == expected.pop("timestamp")
    assert record.recorded_at == record.timestamp.isoformat()
    assert _same(dict(record.payload), expected)
    # what the history writes: a payload marked finite skips dumps' NaN walk, and must not need it
    assert dumps(dict(record.payload), finite=record.finite) == JSON.encode(dict(record.payload))


def test_fast_decode_turns_top_level_values_back_into_their_types() -> None:
    at = __import__("datetime").datetime(2026, 1, 1, tzinfo=UTC)
    state = TRANSCODER.encode(
        {"timestamp": at, "id": UUID(int=3), "amount": Decimal("1.5"), "nested": {"at": at}}
    )
    fields = DECODER._fast_fields(state)
    assert fields is None  # a nested transcoded value: the transcoder decodes it
    record = DECODER.decode(Notification("q", 1, TOPIC, state, 5))
    assert not isinstance(record, DecodeFailure)
    assert record.payload == {"id": UUID(int=3), "amount": Decimal("1.5"), "nested": {"at": at}}
    flat = DECODER._fast_fields(TRANSCODER.encode({"timestamp": at, "id": UUID(int=3)}))
    assert flat == ({"timestamp": at, "id": UUID(int=3)}, at.isoformat(), True)


def test_only_payloads_parsed_as_they_are_are_marked_finite() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def decoded(payload: dict[str, object]) -> EventRecord:
        state = TRANSCODER.encode({"timestamp": at, **payload})
        record = DECODER.decode(Notification("q", 1, TOPIC, state, 5))
        assert not isinstance(record, DecodeFailure)
        return record

    assert decoded({"seconds": 1.5, "reason": None, "runs": [{"w": 0.5}]}).finite
    not_a_number = decoded({"seconds": float("nan"), "reason": None})  # the transcoder's way
    assert not not_a_number.finite
    assert dumps(dict(not_a_number.payload), finite=False) == '{"reason":null,"seconds":NaN}'
    assert decoded({"id": UUID(int=3), "at": at, "amount": Decimal("NaN")}).finite  # no float
    assert not decoded({"n": 2**64}).finite  # beyond 64 bits: the transcoder's way


class Reading:
    """A measurement that a transcoding of its own stores as text and reads back as a float."""

    def __init__(self, value: float) -> None:
        self.value = value


class ReadingAsStr(Transcoding):
    type = Reading
    name = "reading"

    def encode(self, obj: Reading) -> str:
        return repr(obj.value)

    def decode(self, data: str) -> float:
        return float(data)


def test_a_value_transcoded_back_into_a_float_is_not_marked_finite() -> None:
    transcoder = JSONTranscoder()
    for transcoding in (DatetimeAsISO(), ReadingAsStr()):
        transcoder.register(transcoding)
    decoder = NotificationDecoder(Mapper(transcoder=transcoder))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for degrees in (21.5, float("nan")):
        state = transcoder.encode({"timestamp": at, "t": Reading(degrees), "reason": None})
        record = decoder.decode(Notification("q", 1, TOPIC, state, 5))
        assert not isinstance(record, DecodeFailure) and not record.finite
        assert dumps(dict(record.payload)) == JSON.encode(dict(record.payload))


def test_integers_beyond_64_bits_stay_integers() -> None:
    at = __import__("datetime").datetime(2026, 1, 1, tzinfo=UTC)
    for number in (-(2**63) - 1, 2**64, 2**64 - 1, -(2**63), 10**30):
        state = TRANSCODER.encode({"timestamp": at, "n": number, "list": [1, number]})
        record = DECODER.decode(Notification("q", 1, TOPIC, state, 5))
        assert not isinstance(record, DecodeFailure)
        assert record.payload == {"n": number, "list": [1, number]}
        assert type(record.payload["n"]) is int


@pytest.mark.parametrize(
    "state",
    [
        b'{"timestamp":{"_type_":"datetime_iso","_data_":5}}',
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00","x":1}}',
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"not a time"}}',
        b'{"timestamp":{"_data_":"00000000000000000000000000000003","_type_":"uuid_hex"}}',
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"},'
        b'"a":{"b":{"_type_":"uuid_hex","_data_":"00000000000000000000000000000003"}}}',
    ],
)
def test_odd_timestamps_and_nested_values_decode_as_the_transcoder_does(state: bytes) -> None:
    record = DECODER.decode(Notification("q", 1, TOPIC, state, 5))
    try:
        expected = TRANSCODER.decode(state)
    except Exception as error:
        assert isinstance(record, DecodeFailure) and type(record.error) is type(error)
        return
    if not isinstance(expected["timestamp"], datetime):
        assert isinstance(record, DecodeFailure) and "no timestamp" in str(record.error)
        return
    assert not isinstance(record, DecodeFailure)
    assert record.timestamp == expected.pop("timestamp") and dict(record.payload) == expected
