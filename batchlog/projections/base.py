"""What every projection shares: the event record it folds, its tables, and its pending changes.

A projection is a pure fold: `apply(event)` mutates in-memory state and records the row changes
that the view store later writes, together with the tracking position, in one transaction.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson

from batchlog.domain.errors import BatchlogError

Stream = Literal["queue", "execution", "prompt", "runner", "other"]
Row = dict[str, Any]

_STREAM_PREFIXES: tuple[tuple[str, Stream], ...] = (
    ("batchlog.queue:", "queue"),
    ("batchlog.execution:", "execution"),
    ("batchlog.prompt:", "prompt"),
    ("batchlog.runner:", "runner"),
)


@functools.lru_cache(maxsize=256)
def stream_of(topic: str) -> Stream:
    """Which aggregate stream a topic belongs to."""
    for prefix, stream in _STREAM_PREFIXES:
        if topic.startswith(prefix):
            return stream
    return "other"


_new_object = object.__new__


@dataclass(frozen=True)
class EventRecord:
    """One stored event as projections see it: its place in the log and its decoded fields."""

    position: int
    originator_id: str
    sequence: int
    topic: str
    timestamp: datetime
    payload: Mapping[str, Any]
    timestamp_text: str | None = field(default=None, compare=False, repr=False)
    # True when every value in the payload was parsed from JSON text as it is (JSON has no NaN
    # or infinity), so `dumps` need not look for them; False: nothing is known.
    finite: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def decoded(
        cls,
        position: int,
        originator_id: str,
        sequence: int,
        topic: str,
        timestamp: datetime,
        payload: Mapping[str, Any],
        timestamp_text: str | None,
        finite: bool = False,
    ) -> EventRecord:
        """The decoder's constructor: the same frozen record, made without the dataclass's
        per-field object.__setattr__ (a third of the cost of decoding a small event)."""
        record = _new_object(cls)
        fields = record.__dict__
        fields["position"] = position
        fields["originator_id"] = originator_id
        fields["sequence"] = sequence
        fields["topic"] = topic
        fields["timestamp"] = timestamp
        fields["payload"] = payload
        fields["timestamp_text"] = timestamp_text
        fields["finite"] = finite
        return record

    @property
    def recorded_at(self) -> str:
        """The timestamp as ISO 8601 text: as stored, when the decoder kept that text."""
        text = self.timestamp_text
        return text if text is not None else self.timestamp.isoformat()

    @property
    def stream(self) -> Stream:
        """The aggregate stream of this event."""
        return stream_of(self.topic)

    @property
    def event_type(self) -> str:
        """The event's short class name, e.g. 'JobAdded'."""
        return _event_type(self.topic)


@functools.lru_cache(maxsize=256)
def _event_type(topic: str) -> str:
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


class ProjectionError(BatchlogError):
    """A projection could not apply the log."""


class UnknownEventError(ProjectionError):
    """The projection does not know this event type; it stops rather than guess."""


class InconsistentEventError(ProjectionError):
    """The event refers to something the view does not hold (the view and the log disagree)."""


@dataclass(frozen=True)
class Table:
    """A view table: its key, its columns (key included) and which columns hold JSON.

    `expands` = (source table, JSON array column) marks an index the database writes itself:
    one row per element of that column in each row appended to the source table, the element
    in this table's first column and the other columns copied from the source row. A
    projection never records rows for such a table.
    """

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()
    append_only: bool = False
    expands: tuple[str, str] | None = None


@dataclass
class Changes:
    """Row changes a projection made since they were last taken."""

    upserts: dict[str, dict[Any, Row]] = field(default_factory=dict)  # by table, then key
    inserts: dict[str, list[Row]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.upserts.values()) or any(self.inserts.values())

    def row_count(self) -> int:
        """How many rows will be written."""
        return sum(map(len, self.upserts.values())) + sum(map(len, self.inserts.values()))


class Projection(ABC):
    """A named read model: folds events into state and records the row changes to persist."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]

    def __init__(self) -> None:
        self._tables = {table.name: table for table in self.tables}
        # a row's key as upserts are deduplicated by it: the value itself for a one-column key
        self._keys = {table.name: operator.itemgetter(*table.key) for table in self.tables}
        self._changes = Changes()
        self.record_changes = True

    @abstractmethod
    def apply(self, event: EventRecord) -> None:
        """Fold one event into the state (raises on an event it cannot apply)."""

    @abstractmethod
    def restore(self, rows: Mapping[str, list[Row]]) -> None:
        """Rebuild the in-memory state from rows the view store loaded."""

    def upsert(self, table: str, row: Row) -> None:
        """Record that a row now has these values (the last upsert of a key wins)."""
        if self.record_changes:
            upserts = self._changes.upserts
            rows = upserts.get(table)
            if rows is None:
                rows = upserts[table] = {}
            rows[self._keys[table](row)] = row

    def insert(self, table: str, row: Row) -> None:
        """Record a new row of an append-only table."""
        if self.record_changes:
            self._changes.inserts.setdefault(table, []).append(row)

    def take_inserts(self) -> Changes:
        """The appended rows since the last call; upserts stay pending (the last one of a key
        wins), so a rebuild writes each upserted row once, at the end."""
        inserts, self._changes.inserts = self._changes.inserts, {}
        return Changes(inserts=inserts)

    def take_changes(self, *, last: bool = False) -> Changes:
        """The changes since the last call, as copies (later folds do not alter them); `last`:
        nothing will be folded any more, so the rows are handed over as they are."""
        changes = self._changes
        self._changes = Changes()
        if not last:
            for table, rows in changes.upserts.items():
                changes.upserts[table] = {key: dict(row) for key, row in rows.items()}
        return changes


def values_of(columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving a row's values of these columns, as a tuple (e.g. its key)."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
# Where orjson's text can differ from the json module's: NaN/Infinity (orjson writes null; a
# "null" sends the value the slow way only if a non-finite float is really inside) and
# small floats (orjson writes 1e-7 and 0.00001 where json writes 1e-07 and 1e-05). Matches inside
# strings are harmless: they only send that value the slow way.
_NUMBER_CHARS = frozenset("0123456789.")
_BEFORE_VALUE = frozenset(":,[")


def _has_small_exponent(text: str) -> bool:
    """Whether orjson's text holds a number with a negative exponent (e.g. 1.5e-7): digits
    (and a point, and a sign) before an 'e-', at the start or after ':', ',' or '['. A bare
    digit-e-hyphen is in many UUIDs (559e-88bc); a regex over a checkpoint's 170 kB took longer
    than orjson's encoding, this looks only where 'e-' is."""
    at = text.find("e-")
    while at != -1:
        start = at
        while start > 0 and text[start - 1] in _NUMBER_CHARS:
            start -= 1
        if start < at and text[at - 1] != ".":  # a digit right before the 'e'
            if start > 0 and text[start - 1] == "-":
                start -= 1
            if start == 0 or text[start - 1] in _BEFORE_VALUE:
                return True
        at = text.find("e-", at + 2)
    return False


def dumps(value: Any, *, finite: bool = False) -> str:
    """Deterministic JSON (sorted keys, ISO datetimes), so a rebuild writes identical text.

    The text is exactly the json module's (the format views were always written in); orjson
    writes it about five times faster, and anything it might write differently goes to json.
    `finite`: the caller knows that no float inside is NaN or infinite (an `EventRecord.finite`
    payload), so the walk that looks for them is skipped.
    """
    return _dumped(value, finite)[0]


def as_read_back(value: Any, *, finite: bool = False) -> Any:
    """The value as its `dumps` text reads back with the json module (datetimes as ISO text,
    sets as sorted lists, keys sorted): read by orjson when the text is orjson's own (no NaN,
    no integer beyond 64 bits), which reads that alike and about three times faster."""
    text, by_orjson = _dumped(value, finite)
    return orjson.loads(text) if by_orjson else json.loads(text)


def _dumped(value: Any, finite: bool) -> tuple[str, bool]:
    """`dumps`' text, and whether orjson wrote it."""
    kind = type(value)
    if (kind is list or kind is dict) and not value:  # most JSON columns of a row are empty
        return ("[]" if kind is list else "{}"), True
    try:
        text = orjson.dumps(value, default=_jsonable, option=_FAST_OPTIONS).decode()
    except TypeError:  # non-str keys, integers beyond 64 bits, lone surrogates
        return _ENCODER.encode(value), False
    if (  # tested on the text: `in` on bytes (3.11) raises and clears a TypeError inside
        "0.0000" in text
        or ("e-" in text and _has_small_exponent(text))
        or (not finite and "null" in text and _has_non_finite(value))
    ):
        return _ENCODER.encode(value), False
    return text, True


def dumps_texts(values: list[str]) -> str:
    """A list of strings (e.g. job ids) as `dumps` writes it, without the checks it makes for
    floats: orjson and the json module write strings alike (a lone surrogate goes to json)."""
    for value in values:
        if type(value) is not str:
            return dumps(values)
    try:
        return orjson.dumps(values).decode()
    except TypeError:
        return _ENCODER.encode(values)


def loads_texts(text: str) -> Any:
    """JSON text of a list of strings (as `dumps_texts` writes it) read back as the json module
    reads it: by orjson when it is such a list (strings read alike), else by json."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, say: not what dumps_texts writes for strings
        return json.loads(text)
    if type(value) is list and all(type(item) is str for item in value):
        return value
    return json.loads(text)  # a number in it may read differently (orjson: 2**70 as a float)


_LEAVES = frozenset({str, int, bool, type(None)})  # exact types that hold no float


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or infinity is inside (orjson writes them as null, json as NaN).

    A walk with a stack that passes over plain leaves without a call: a queue checkpoint has
    thousands of values, and a recursive call per value cost more than orjson's whole encoding.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is float:
            if not math.isfinite(item):
                return True
        elif kind is dict:
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
    return False


def iso(value: Any) -> str | None:
    """A datetime (or ISO string) as an ISO string; None stays None."""
    if value is None or type(value) is str:  # most are text already, as in the payload
        return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


def source_job_of(run_id: str) -> str:
    """The job a run was added with (run ids are '<job id>:<index>')."""
    return run_id.rpartition(":")[0] or run_id
