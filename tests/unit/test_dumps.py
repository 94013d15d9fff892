"""dumps writes exactly the json module's text (views written before stay equal to rebuilds)."""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from batchlog.projections import base
from batchlog.projections.base import _jsonable, as_read_back, dumps, dumps_texts, loads_texts

REFERENCE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)
zones = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from([1e-05, 1.234e-07, 1e16, 1e-4, float("nan"), float("-inf"), -0.0])
    | st.text(st.characters(codec=None))
    | st.text(st.characters(categories=["Cs", "Cc", "Zl", "Lo"]))
    | st.datetimes(timezones=zones)
    | st.uuids()
    | st.frozensets(st.integers(), max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=12,
)


@given(values)
def test_dumps_equals_the_json_module(value: object) -> None:
    assert dumps(value) == REFERENCE.encode(value)


@given(
    st.lists(
        st.text(st.characters(codec=None)) | st.text(st.characters(categories=["Cs", "Cc", "Zl"]))
    )
)
def test_dumps_texts_equals_the_json_module_for_any_strings(texts: list[str]) -> None:
    assert dumps_texts(texts) == REFERENCE.encode(texts)


@given(values)
def test_as_read_back_equals_the_json_module_reading_the_text(value: object) -> None:
    # compared as text: NaN is not equal to itself, and an int read as a float shows ("1.0")
    expected = json.loads(REFERENCE.encode(value))
    assert REFERENCE.encode(as_read_back(value)) == REFERENCE.encode(expected)
    assert type(as_read_back(value)) is type(expected)


@given(
    st.lists(
        st.text(st.characters(codec=None))
        | st.sampled_from([2**70, -(2**65), 1e-07, float("nan"), 2.5, None, True])
    )
)
def test_loads_texts_reads_back_what_the_json_module_reads(texts: list) -> None:
    text = dumps_texts(texts)
    assert REFERENCE.encode(loads_texts(text)) == REFERENCE.encode(json.loads(text))
    assert [type(item) for item in loads_texts(text)] == [type(item) for item in json.loads(text)]


def test_dumps_texts_of_other_values_is_dumps() -> None:
    mixed = ["job_1", 1e-07, float("nan"), 2**70]  # what a corrupt event might hold
    assert dumps_texts(mixed) == REFERENCE.encode(mixed)  # type: ignore[arg-type]


def test_empty_containers_are_written_as_json_writes_them() -> None:
    assert (dumps([]), dumps({}), dumps_texts([])) == ("[]", "{}", "[]")
    assert dumps(()) == REFERENCE.encode(())


def test_dumps_of_typical_payload_takes_the_fast_path_and_equals_json() -> None:
    payload = {
        "job_id": "job_1",
        "runs": [{"run_id": "job_1:0", "prompt_id": "p", "weights": {"vis": 0.5}}],
        "at": __import__("datetime").datetime(2026, 1, 1, 12, 0, 0, 1500, tzinfo=UTC),
        "ids": {3, 1, 2},
        "uuid": UUID(int=7),
        "seconds": 12.25,
    }
    assert dumps(payload) == REFERENCE.encode(payload)


def test_uuids_in_strings_do_not_send_a_value_to_the_json_module(monkeypatch) -> None:
    """A digit, 'e' and '-' in a UUID (559e-88bc) is no small float: orjson's text is kept."""

    class Refuses:
        def encode(self, value: object) -> str:
            raise AssertionError(f"sent the slow way: {value!r}")

    value = {"execution_id": "38521f42-64d2-559e-88bc-01e7e0a1b2c3", "items": ["9e-1", "x"]}
    expected = REFERENCE.encode(value)
    monkeypatch.setattr(base, "_ENCODER", Refuses())
    assert dumps(value) == expected


def test_only_numbers_with_a_negative_exponent_count_as_small_floats() -> None:
    for text in ("1e-7", "[-1.5e-7]", '{"a":2e-9}', '{"a":"x","b":[3,4e-5]}'):
        assert base._has_small_exponent(text), text
    for text in ('{"id":"64d2-559e-88bc"}', '{"a":"x.e-"}', '{"a":1e7}', '"e-"', "12"):
        assert not base._has_small_exponent(text), text
