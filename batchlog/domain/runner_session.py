"""The RunnerSession aggregate: a runner process announcing what it can run, and its end.

It lets the status say which queued items no running runner can take (capability routing).
A runner killed with SIGKILL never records `Stopped`; its session stays open until its host
starts a runner with the same id again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

_SESSION_NAMESPACE = uuid.UUID("5d2f7a9c-1e4b-4c8d-a6f3-0b9e8d7c6a51")


def runner_session_id(runner_id: str, started_at: datetime) -> UUID:
    """The id of one session of one runner."""
    return uuid.uuid5(_SESSION_NAMESPACE, f"{runner_id}@{started_at.isoformat()}")


class RunnerSession(Aggregate):
    """One run of a runner process: its backend, device and the job types it claims."""

    TOPIC = "batchlog.runner:RunnerSession"

    class Event(Aggregate.Event):
        """Base class of a runner session's events."""

        TOPIC = "batchlog.runner:RunnerSession.Event"

    class Started(Event, Aggregate.Created):
        """A runner started and announced its capabilities."""

        TOPIC = "batchlog.runner:RunnerSession.Started"
        class_version = 1
        runner_id: str
        queue_name: str
        backend: str
        device: str
        job_types: list[str]
        started_at: datetime

    @staticmethod
    def create_id(runner_id: str, started_at: datetime, **_: Any) -> UUID:
        """Session ids are derived from the runner id and its start time."""
        return runner_session_id(runner_id, started_at)

    @event(Started)
    def __init__(
        self,
        runner_id: str,
        queue_name: str,
        backend: str,
        device: str,
        job_types: list[str],
        started_at: datetime,
    ) -> None:
        self.runner_id = runner_id
        self.queue_name = queue_name
        self.backend = backend
        self.device = device
        self.job_types = list(job_types)
        self.started_at = started_at
        self.stopped = False

    def stop(self, stopped_at: datetime, summary: dict[str, Any]) -> None:
        """Record that the runner stopped, with its counters."""
        if not self.stopped:
            self._stopped(stopped_at=stopped_at, summary=summary)

    class Stopped(Event):
        """The runner stopped (drained, SIGTERM, or asked to)."""

        TOPIC = "batchlog.runner:RunnerSession.Stopped"
        class_version = 1
        stopped_at: datetime
        summary: dict[str, Any]

    @event(Stopped)
    def _stopped(self, stopped_at: datetime, summary: dict[str, Any]) -> None:
        self.stopped = True
