"""Stored notifications → EventRecords: decode once, upcast by class_version, never guess.

Decoding goes through the store's transcoder (and compressor/cipher when configured) but not
through the event classes, so an event whose class this process does not have (a newer
version's event type) still reaches the history view with its payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, Notification
from eventsourcing.utils import resolve_topic

from batchlog.projections.base import EventRecord

_ISO_DATETIME = DatetimeAsISO.name
_MARKER = b'"_type_"'
# orjson reads an integer beyond 64 bits as a float (the json module keeps it an int). Such a
# number has 19+ digits right after ':', ',' or '[' (the encoder writes no spaces), perhaps after
# a '-': map digits and '-' to '0' and those three to ':', then look for ':' and 19 '0's, in one
# search (a match inside a string, or of an 18-digit negative number, only costs speed).
_NUMBER_SHAPE = bytes(
    48 if 48 <= b <= 57 or b == 45 else 58 if b in b":,[" else 120 for b in range(256)
)
_LONG_NUMBER = b":" + b"0" * 19
_REFUSED = object()  # a transcoded value the fast path leaves to the transcoder
_MAY_HOLD_FLOATS = (float, dict, list, tuple, set, frozenset)
_from_iso = datetime.fromisoformat


# One stored event as the log reader gives it: (position, originator id, version, topic, state).
LogRow = tuple[int, Any, int, str, bytes]


@dataclass(frozen=True)
class DecodeFailure:
    """A notification that could not be decoded (it stops projections at its position)."""

    position: int
    topic: str
    error: Exception


Decoded = EventRecord | DecodeFailure  # what decoding one stored event gives


class NotificationDecoder:
    """Turns notifications into EventRecords with the store's mapper settings."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self._mapper = mapper
        self._classes: dict[str, tuple[Any, int]] = {}
        transcoder = mapper.transcoder
        self._names = transcoder.names if type(transcoder) is JSONTranscoder else None
        iso = self._names.get(_ISO_DATETIME) if self._names is not None else None
        self._keeps_iso_text = type(iso) is DatetimeAsISO
        self._unwraps = mapper.cipher is not None or mapper.compressor is not None

    def decode(self, notification: Notification) -> EventRecord | DecodeFailure:
        """Decode one notification, or describe why it cannot be decoded."""
        return self.decode_row(
            (
                notification.id,
                notification.originator_id,
                notification.originator_version,
                notification.topic,
                notification.state,
            )
        )

    def decode_row(self, row: LogRow) -> EventRecord | DecodeFailure:
        """Decode one (position, originator id, version, topic, state) row of the log."""
        try:
            return self._decode(*row)
        except Exception as error:
            return DecodeFailure(row[0], row[3], error)

    def decode_all(self, rows: Sequence[LogRow]) -> list[EventRecord | DecodeFailure]:
        """Decode log rows in order, stopping after the first failure."""
        decoded: list[EventRecord | DecodeFailure] = []
        for row in rows:
            record = self.decode_row(row)
            decoded.append(record)
            if isinstance(record, DecodeFailure):
                break
        return decoded

    def _decode(
        self, position: int, originator_id: Any, version: int, topic: str, state: bytes
    ) -> EventRecord:
        if self._unwraps:
            state = self._unwrap(state)
        fast = self._fast_fields(state) if self._names is not None else None
        if fast is None:
            fields, timestamp_text, finite = self._mapper.transcoder.decode(state), None, False
        else:
            fields, timestamp_text, finite = fast
        from_version = fields.pop("class_version", 1)
        known = self._classes.get(topic)
        cls, class_version = known if known is not None else self._event_class(topic)
        if from_version < class_version:
            finite = False  # an upcast may add values of its own
            while from_version < class_version:
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(fields)
                from_version += 1
        timestamp = fields.pop("timestamp", None)
        if not isinstance(timestamp, datetime):
            raise ValueError(f"event has no timestamp (got {timestamp!r})")
        fields.pop("originator_id", None)  # the envelope, were it in the state
        fields.pop("originator_version", None)
        return EventRecord.decoded(
            position, str(originator_id), version, topic, timestamp, fields, timestamp_text, finite
        )

    def _unwrap(self, state: bytes) -> bytes:
        """The state as the transcoder wrote it: decrypted, then decompressed."""
        if self._mapper.cipher is not None:
            state = self._mapper.cipher.decrypt(state)
        if self._mapper.compressor is not None:
            state = self._mapper.compressor.decompress(state)
        return state

    def _fast_fields(self, state: bytes) -> tuple[dict[str, Any], str | None, bool] | None:
        """The JSONTranscoder's result, parsed by orjson, when every transcoded value (a
        {"_type_", "_data_"} object) is a top-level field; None sends the state the slow way.
        With it, the timestamp's stored ISO text, when it was stored as ISO text (that text is
        `isoformat()` of the datetime it decodes to, so the history need not format it again),
        and whether the fields can hold no NaN or infinity (orjson refuses them, and no value
        transcoded back is a float or holds one)."""
        shape = state.translate(_NUMBER_SHAPE)
        # find, not `in`: on Python 3.11 `bytes in bytes` first raises and clears a TypeError
        if shape.find(_LONG_NUMBER) != -1:
            return None
        try:
            fields = orjson.loads(state)
        except orjson.JSONDecodeError:  # NaN, lone surrogates
            return None
        if type(fields) is not dict or "_type_" in fields:
            return None
        markers = state.count(_MARKER)
        if not markers:
            return fields, None, True
        timestamp_text, finite = None, True
        stamp = fields.get("timestamp")
        if (  # almost every event's only transcoded value (or its first): ISO text, read here
            type(stamp) is dict
            and self._keeps_iso_text
            and len(stamp) == 2
            and stamp.get("_type_") == _ISO_DATETIME
            and type(text := stamp.get("_data_")) is str
        ):
            fields["timestamp"] = _from_iso(text)
            if markers == 1:
                return fields, text, finite
            timestamp_text, markers = text, markers - 1
        for key, value in fields.items():  # replaces values only, so iterating stays valid
            if type(value) is not dict or "_type_" not in value:
                continue
            data = value.get("_data_")
            if (
                self._keeps_iso_text
                and value["_type_"] == _ISO_DATETIME
                and type(data) is str
                and len(value) == 2
            ):  # what DatetimeAsISO.decode does, without its two calls
                fields[key] = _from_iso(data)  # not the timestamp: read above if it was this
            else:
                decoded = self._untranscoded(value)
                if decoded is _REFUSED:
                    return None
                fields[key] = decoded
                finite = finite and not isinstance(decoded, _MAY_HOLD_FLOATS)
            markers -= 1
            if not markers:
                return fields, timestamp_text, finite
        return None  # a transcoded value inside another value: the transcoder decodes it

    def _untranscoded(self, value: dict[str, Any]) -> Any:
        """The value a transcoded {"_type_", "_data_"} object stands for, or _REFUSED when
        the transcoder would not decode it this way."""
        assert self._names is not None
        data, name = value.get("_data_"), value["_type_"]
        if len(value) != 2 or type(data) is not str or type(name) is not str:
            return _REFUSED  # e.g. a "_type_" that is itself an object: the transcoder refuses it
        transcoding = self._names.get(name)
        if transcoding is None:
            return _REFUSED  # the slow way raises the transcoder's own error
        return transcoding.decode(data)

    def _event_class(self, topic: str) -> tuple[Any, int]:
        """The event class of a topic and its class_version ((None, 0) if it is unknown)."""
        known = self._classes.get(topic)
        if known is None:
            try:
                cls = resolve_topic(topic)
                known = (cls, getattr(cls, "class_version", 1))
            except Exception:
                known = (None, 0)
            self._classes[topic] = known
        return known
