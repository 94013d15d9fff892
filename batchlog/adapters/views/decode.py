"""Stored notifications → EventRecords: decode once, upcast by class_version, never guess.

Decoding goes through the store's transcoder (and compressor/cipher when configured) but not
through the event classes, so an event whose class this process does not have (a newer
version's event type) still reaches the history view with its payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

from batchlog.projections.base import EventRecord

_ENVELOPE = ("originator_id", "originator_version", "timestamp")


@dataclass(frozen=True)
class DecodeFailure:
    """A notification that could not be decoded (it stops projections at its position)."""

    position: int
    topic: str
    error: Exception


class NotificationDecoder:
    """Turns notifications into EventRecords with the store's mapper settings."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self._mapper = mapper
        self._classes: dict[str, Any] = {}

    def decode(self, notification: Notification) -> EventRecord | DecodeFailure:
        """Decode one notification, or describe why it cannot be decoded."""
        try:
            return self._decode(notification)
        except Exception as error:
            return DecodeFailure(notification.id, notification.topic, error)

    def decode_all(self, notifications: list[Notification]) -> list[EventRecord | DecodeFailure]:
        """Decode notifications in order, stopping after the first failure."""
        decoded: list[EventRecord | DecodeFailure] = []
        for notification in notifications:
            record = self.decode(notification)
            decoded.append(record)
            if isinstance(record, DecodeFailure):
                break
        return decoded

    def _decode(self, notification: Notification) -> EventRecord:
        state = notification.state
        if self._mapper.cipher is not None:
            state = self._mapper.cipher.decrypt(state)
        if self._mapper.compressor is not None:
            state = self._mapper.compressor.decompress(state)
        fields: dict[str, Any] = self._mapper.transcoder.decode(state)
        from_version = fields.pop("class_version", 1)
        cls = self._event_class(notification.topic)
        if cls is not None:
            while from_version < getattr(cls, "class_version", 1):
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(fields)
                from_version += 1
        timestamp = fields.pop("timestamp", None)
        if not isinstance(timestamp, datetime):
            raise ValueError(f"event has no timestamp (got {timestamp!r})")
        for name in _ENVELOPE:
            fields.pop(name, None)
        return EventRecord(
            position=notification.id,
            originator_id=str(notification.originator_id),
            sequence=notification.originator_version,
            topic=notification.topic,
            timestamp=timestamp,
            payload=fields,
        )

    def _event_class(self, topic: str) -> Any:
        if topic not in self._classes:
            try:
                self._classes[topic] = resolve_topic(topic)
            except Exception:
                self._classes[topic] = None
        return self._classes[topic]
