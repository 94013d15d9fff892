"""The shape `get_queue_status()` returns, built from queue-view rows (live or time-travelled)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from batchlog.domain.controls import control_signature, ordered_controls
from batchlog.domain.jobs import BATCHABLE_JOB_TYPES
from batchlog.domain.queue import DEFAULT_BATCH_SIZE
from batchlog.projections.base import Row
from batchlog.projections.queue_view import RECENT_LIMIT, QueueProjection, recent_order


def queued_order(row: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """Queue order: higher priority first, then position; ties (the halves of a split) in the
    order they were made."""
    return (
        -int(row["priority"]),
        int(row["position_major"]),
        int(row["position_minor"]),
        int(row["added_position"]),
        int(row["added_index"]),
    )


def item_entry(row: Mapping[str, Any], position: int | None) -> dict[str, Any]:
    """One item as get_queue_status() lists it."""
    runs = row["runs"]
    batchable = row["job_type"] in BATCHABLE_JOB_TYPES
    controls: set[str] = set()
    for run in runs:
        controls |= control_signature(run["weights"])
    entry: dict[str, Any] = {
        "id": row["job_id"],
        "position": position,
        "type": row["job_type"],
        "status": row["status"],
        "prompt_ids": [run["prompt_id"] for run in runs],
        "runs": len(runs),
        "controls": ordered_controls(controls),
        "weights_list": [dict(run["weights"]) for run in runs] if batchable else [],
        "seeds": [run["seed"] for run in runs] if batchable else [],
        "parameters": dict(runs[0]["parameters"]) if runs and batchable else {},
        "options": dict(row["options"] or {}),
        "priority": int(row["priority"]),
        "submitter": row["submitter"],
        "source_job_ids": list(row["source_job_ids"] or []),
        "analysis_id": row["analysis_id"],
        "attempt": int(row["attempt"]),
    }
    if row["claimed_by"] is not None:
        entry["claimed_by"] = row["claimed_by"]
        entry["lease_expires_at"] = row["lease_expires_at"]
        entry["progress"] = {
            "done": int(row["progress_done"]),
            "failed": int(row["progress_failed"]),
            "total": int(row["progress_total"]),
        }
    if row["ended_position"] is not None:
        entry["outcome"] = row["outcome"]
        entry["merged_into"] = list(row["merged_into"] or [])
    return entry


def queue_status(
    queue_name: str,
    queue: Mapping[str, Any] | None,
    items: Iterable[Mapping[str, Any]],
    recent: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The status dict from the queue row, its active items and its recently ended items."""
    active = list(items)
    queued = sorted((i for i in active if i["status"] == "queued"), key=queued_order)
    running = sorted(
        (i for i in active if i["status"] == "claimed"),
        key=lambda i: (int(i["claimed_position"] or 0), i["job_id"]),
    )
    ended = sorted(recent, key=recent_order)[:RECENT_LIMIT]
    return {
        "queue": queue_name,
        "paused": bool(queue["paused"]) if queue else False,
        "batch_size": int(queue["batch_size"]) if queue else DEFAULT_BATCH_SIZE,
        "total_queued": len(queued),
        "queued_jobs": [item_entry(row, index) for index, row in enumerate(queued, start=1)],
        "running": [item_entry(row, None) for row in running],
        "recent": [item_entry(row, None) for row in ended],
        "sequence": int(queue["sequence"]) if queue else 0,
    }


def status_from_projection(projection: QueueProjection, queue_name: str) -> dict[str, Any]:
    """The status of one queue from a projection's in-memory state (used by time travel)."""
    items: list[Row] = [i for i in projection.items.values() if i["queue_name"] == queue_name]
    return queue_status(
        queue_name,
        projection.queue_named(queue_name),
        items,
        projection.recent.get(queue_name, []),
    )
