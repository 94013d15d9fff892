"""Which runners are up, what they can run, and which queued items none of them can take."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError

from batchlog.adapters.store import EventStore, translate_store_errors
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.queue import Queue
from batchlog.domain.runner_session import RunnerSession

SESSION_TOPICS = [RunnerSession.Started.TOPIC, RunnerSession.Stopped.TOPIC]


def runner_sessions(store: EventStore, queue_name: str) -> list[dict[str, Any]]:
    """Every runner session of a queue, oldest first, with `active` = no Stopped recorded."""
    sessions: dict[Any, dict[str, Any]] = {}
    start = 1
    with translate_store_errors():
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
                            "active": True,
                        }
                elif event.originator_id in sessions:
                    sessions[event.originator_id].update(
                        active=False, stopped_at=event.stopped_at.isoformat()
                    )
            start = page[-1].id + 1
    # A runner restarted under the same id replaces its older sessions.
    latest: dict[str, dict[str, Any]] = {}
    for session in sessions.values():
        latest[session["runner_id"]] = session
    return list(latest.values())


def runner_overview(store: EventStore, queue_name: str) -> dict[str, Any]:
    """Runners of a queue and the queued items that no active runner supports, with why."""
    runners = runner_sessions(store, queue_name)
    active = [r for r in runners if r["active"]]
    supported = {job_type for r in active for job_type in r["job_types"]}
    try:
        queue: Queue = store.repository.get(queue_aggregate_id(queue_name))
        queued = queue.queued_in_order()
    except AggregateNotFoundError:
        queued = []
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
    return {"runners": runners, "active": len(active), "unrunnable": unrunnable}
