"""The RunnerSession aggregate: a runner process announcing what it can run, and its end.

It lets the status say which queued items no running runner can take (capability routing),
and whether a runner is still alive: a runner killed with SIGKILL never records `Stopped`, so
liveness is read from its last sign of life (`LeaseRenewed` on the session while it holds no
item, the item's lease while it works), compared at read time with the lease it promised.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, assert_never
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
        self.renewed_at: datetime | None = None
        self.lease_seconds: float | None = None

    def renew(self, renewed_at: datetime, lease_seconds: float) -> None:
        """Record that the runner is alive and will show a sign of life within lease_seconds."""
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0 (got {lease_seconds})")
        if not self.stopped:
            self._renewed(renewed_at=renewed_at, lease_seconds=float(lease_seconds))

    class LeaseRenewed(Event):
        """The runner was alive at renewed_at (recorded while it holds no item's lease)."""

        TOPIC = "batchlog.runner:RunnerSession.LeaseRenewed"
        class_version = 1
        renewed_at: datetime
        lease_seconds: float

    @event(LeaseRenewed)
    def _renewed(self, renewed_at: datetime, lease_seconds: float) -> None:
        self.renewed_at = renewed_at
        self.lease_seconds = lease_seconds

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


RunnerStatus = Literal["active", "lost", "stopped"]


@dataclass(frozen=True)
class Liveness:
    """A runner's status at one moment, with the evidence it rests on."""

    status: RunnerStatus
    last_sign_of_life: datetime | None = None
    silent_seconds: float | None = None
    lease_seconds: float | None = None

    def describe(self) -> str:
        """The status with its reason, e.g. 'lost (no heartbeat for 47 s; lease 30 s)'."""
        if self.silent_seconds is None or self.lease_seconds is None:
            if self.status == "active":
                return "active (started by a version that records no heartbeat)"
            return self.status
        silent, lease = _seconds(self.silent_seconds), _seconds(self.lease_seconds)
        match self.status:
            case "active":
                return f"active (heartbeat {silent} s ago; lease {lease} s)"
            case "lost":
                return f"lost (no heartbeat for {silent} s; lease {lease} s)"
            case "stopped":
                return "stopped"
            case unreachable:
                assert_never(unreachable)


def runner_liveness(
    stopped: bool,
    last_sign_of_life: datetime | None,
    lease_seconds: float | None,
    now: datetime,
) -> Liveness:
    """Stopped if it said so; lost once its last sign of life is older than its lease."""
    if stopped:
        return Liveness("stopped")
    if last_sign_of_life is None or lease_seconds is None:
        return Liveness("active")
    silent = max(0.0, (now - last_sign_of_life).total_seconds())
    status: RunnerStatus = "lost" if silent > lease_seconds else "active"
    return Liveness(status, last_sign_of_life, silent, lease_seconds)


def _seconds(value: float) -> str:
    """Whole seconds from 10 s on, tenths below (a 1.5 s test lease stays readable)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
