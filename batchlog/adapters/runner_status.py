"""Which runners are up, what they can run, and which queued items none of them can take.

Liveness is computed at read time: a session that never recorded `Stopped` is `lost` once its
last sign of life (its latest `LeaseRenewed`, or the lease of an item it still runs) is older
than the lease it promised; the reaper requeues such a runner's item on the same condition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from batchlog.adapters.store import EventStore, translate_store_errors
from batchlog.domain.execution import Execution, execution_aggregate_id
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.queue import Queue
from batchlog.domain.runner_session import RunnerSession, runner_liveness

SESSION_TOPICS = [RunnerSession.Started.TOPIC, RunnerSession.Stopped.TOPIC]


def runner_sessions(
    store: EventStore, queue_name: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The latest session of each runner of a queue, oldest first, with its status at `now`.

    `status` is active, lost or stopped; `status_text` gives the reason with the threshold
    (e.g. "lost (no heartbeat for 47 s; lease 30 s)"); `active` is true only for active ones.
    """
    with translate_store_errors():
        return _sessions(store, queue_name, _queue_or_none(store, queue_name), now)


def runner_overview(
    store: EventStore, queue_name: str, now: datetime | None = None
) -> dict[str, Any]:
    """Runners of a queue (with liveness) and the queued items no active runner supports."""
    with translate_store_errors():
        queue = _queue_or_none(store, queue_name)
        runners = _sessions(store, queue_name, queue, now)
    active = [r for r in runners if r["active"]]
    supported = {job_type for r in active for job_type in r["job_types"]}
    queued = queue.queued_in_order() if queue is not None else []
    unrunnable = [
        {
            "id": item.job_id,
            "type": item.job_type,
            "reason": (
                f"no active runner supports {item.job_type!r} jobs"
                if active
                else "no runner is active for this queue"
            ),
        }
        for item in queued
        if item.job_type not in supported
    ]
    lost = sum(1 for r in runners if r["status"] == "lost")
    return {"runners": runners, "active": len(active), "lost": lost, "unrunnable": unrunnable}


def _sessions(
    store: EventStore, queue_name: str, queue: Queue | None, now: datetime | None
) -> list[dict[str, Any]]:
    sessions = _latest_sessions(store, queue_name)
    moment = now or datetime.now(UTC)
    for session_id, session in sessions.items():
        stopped = "stopped_at" in session
        renewed_at, lease_seconds = (None, None) if stopped else _last_renewal(store, session_id)
        if renewed_at is not None and lease_seconds is not None and queue is not None:
            leases = _running_lease_starts(store, queue, session["runner_id"], lease_seconds)
            renewed_at = max([renewed_at, *leases])
        liveness = runner_liveness(stopped, renewed_at, lease_seconds, moment)
        session.update(
            status=liveness.status,
            status_text=liveness.describe(),
            active=liveness.status == "active",
            last_heartbeat_at=renewed_at.isoformat() if renewed_at else None,
            heartbeat_age_seconds=liveness.silent_seconds,
            lease_seconds=lease_seconds,
        )
    return list(sessions.values())


def _latest_sessions(store: EventStore, queue_name: str) -> dict[UUID, dict[str, Any]]:
    """Each runner's latest session (a runner restarted under the same id replaces older ones)."""
    sessions: dict[UUID, dict[str, Any]] = {}
    start = 1
    while True:
        page = store.recorder.select_notifications(start, 500, topics=SESSION_TOPICS)
        if not page:
            break
        for notification in page:
            event: Any = store.mapper.to_domain_event(notification)
            if isinstance(event, RunnerSession.Started):
                if event.queue_name == queue_name:
                    sessions[event.originator_id] = {
                        "runner_id": event.runner_id,
                        "backend": event.backend,
                        "device": event.device,
                        "job_types": list(event.job_types),
                        "started_at": event.started_at.isoformat(),
                    }
            elif event.originator_id in sessions:
                sessions[event.originator_id]["stopped_at"] = event.stopped_at.isoformat()
        start = page[-1].id + 1
    latest: dict[str, UUID] = {}
    for session_id, session in sessions.items():
        latest[session["runner_id"]] = session_id
    return {session_id: sessions[session_id] for session_id in latest.values()}


def _last_renewal(store: EventStore, session_id: UUID) -> tuple[datetime | None, float | None]:
    """The session's latest heartbeat and lease, read from its last event only (sessions grow
    by one event per heartbeat); (None, None) for a session of a version without heartbeats."""
    (last,) = store.recorder.select_events(session_id, desc=True, limit=1)
    event: Any = store.mapper.to_domain_event(last)
    if isinstance(event, RunnerSession.LeaseRenewed):
        return event.renewed_at, event.lease_seconds
    return None, None


def _running_lease_starts(
    store: EventStore, queue: Queue, runner_id: str, lease_seconds: float
) -> list[datetime]:
    """When the runner last claimed or extended each item it is still running."""
    starts = []
    for item in queue.claimed():
        if item.claim is None or item.claim.runner_id != runner_id:
            continue
        try:
            execution: Execution = store.repository.get(
                execution_aggregate_id(item.job_id, item.claim.token)
            )
        except AggregateNotFoundError:
            continue
        if execution.state == "running":
            starts.append(execution.lease_expires_at - timedelta(seconds=lease_seconds))
    return starts


def _queue_or_none(store: EventStore, queue_name: str) -> Queue | None:
    try:
        queue: Queue = store.repository.get(queue_aggregate_id(queue_name))
    except AggregateNotFoundError:
        return None
    return queue
