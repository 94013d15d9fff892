"""The queue view's tables, and the constants its fold and its readers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchlog.projections.base import Table

ITEM_SPLIT_TOPIC = "batchlog.queue:Queue.ItemSplit"
ITEMS_SETTLED_TOPIC = "batchlog.queue:Queue.ItemsSettled"
RESULT_REFUSED_TOPIC = "batchlog.execution:Execution.ResultRefused"
RECENT_LIMIT = 50
CHECKPOINT_INTERVAL = 1000
ENDED_STATUSES = ("done", "failed", "dead_lettered", "cancelled", "retired", "split")

QUEUES = Table(
    "queue_view_queues",
    key=("queue_id",),
    columns=(
        "queue_id",
        "queue_name",
        "paused",
        "batch_size",
        "sequence",
        "latest_analysis_id",
        "analysis_sequence",
        "updated_position",
    ),
)
ITEMS = Table(
    "queue_view_items",
    key=("job_id",),
    columns=(
        "job_id",
        "queue_name",
        "job_type",
        "status",
        "active",
        "priority",
        "position_major",
        "position_minor",
        "runs",
        "submitter",
        "options",
        "source_job_ids",
        "analysis_id",
        "merged_into",
        "attempt",
        "claimed_by",
        "claim_token",
        "claimed_at",
        "lease_expires_at",
        "not_before",
        "execution_id",
        "progress_done",
        "progress_failed",
        "progress_total",
        "outcome",
        "added_position",
        "added_index",
        "claimed_position",
        "ended_position",
        "updated_position",
    ),
    json_columns=frozenset({"runs", "options", "source_job_ids", "merged_into"}),
)
EXECUTIONS = Table(
    "queue_view_executions",
    key=("execution_id",),
    columns=(
        "execution_id",
        "queue_name",
        "item_id",
        "claim_token",
        "runner_id",
        "attempt",
        "state",
        "lease_expires_at",
        "done",
        "failed",
        "total",
        "started_position",
        "updated_position",
    ),
)
CHECKPOINTS = Table(
    "queue_view_checkpoints",
    key=("queue_name", "sequence"),
    columns=("queue_name", "sequence", "position", "state"),
    append_only=True,
)


_NO_CLAIM: dict[str, Any] = {
    "claimed_by": None,
    "claim_token": None,
    "claimed_at": None,
    "lease_expires_at": None,
    "not_before": None,
    "execution_id": None,
    "claimed_position": None,
    "progress_done": 0,
    "progress_failed": 0,
    "progress_total": 0,
}


def recent_order(row: Mapping[str, Any]) -> tuple[int, str]:
    """Recently ended items: latest first, ties (one event ending several) by job id."""
    return (-int(row["ended_position"]), str(row["job_id"]))
