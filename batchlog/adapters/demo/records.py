"""What the demo reads back after a drain, through the public read APIs of the views.

Measured seconds come from the stats view (`QueueService.batch_stats`: each finished
execution's seconds as the runner recorded them), outputs and one job's story from the lineage
view (`lineage`), and the queue before/after from time travel (`queue_at`). Every figure the
demo prints is therefore what the runner recorded in the log, not the demo's own clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from batchlog.adapters.queue_service import QueueService
from batchlog.domain.errors import BatchlogError


class DemoRunError(BatchlogError):
    """The demo's queue did not run to completion."""


def finished_seconds(service: QueueService, job_ids: Sequence[str]) -> dict[str, float]:
    """Each item's measured seconds (its last finished execution); all must have finished."""
    wanted = set(job_ids)
    seconds = {
        str(row["item_id"]): float(row["seconds"])
        for row in service.batch_stats()
        if row["item_id"] in wanted
    }
    for job_id in job_ids:
        if job_id not in seconds:
            status = service.lineage(job_id)["status"]
            raise DemoRunError(f"Queue item {job_id} did not finish (status: {status}).")
    return {job_id: seconds[job_id] for job_id in job_ids}


def outputs(service: QueueService, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each succeeded run's recorded outcome (output path, sha256, seconds), by run id."""
    found: dict[str, dict[str, Any]] = {}
    for job_id in job_ids:
        for run in service.lineage(job_id)["runs"]:
            if run["status"] == "succeeded":
                found[run["run_id"]] = run
    return found


def lineage_steps(service: QueueService, job_id: str) -> list[dict[str, Any]]:
    """One job's history rows (added, analyzed, merged, claimed, outcomes) for the report."""
    return [
        {
            "sequence": row["sequence"] if row["stream"] == "queue" else None,
            "what": row["event_type"],
            "text": row["summary"] + _merge_detail(job_id, row),
        }
        for row in service.lineage(job_id)["events"]
    ]


def _merge_detail(job_id: str, row: dict[str, Any]) -> str:
    """For a Reorganized row: where this job's runs went and with whose runs."""
    if row["event_type"] != "Reorganized":
        return ""
    parts = []
    for new in row["payload"]["new_jobs"]:
        if job_id in new["source_job_ids"]:
            mine = [r for r in new["run_ids"] if r.startswith(f"{job_id}:")]
            others = [j for j in new["source_job_ids"] if j != job_id]
            parts.append(
                f"{len(mine)} run(s) of this job merged into {new['job_id']} with "
                f"{len(new['run_ids']) - len(mine)} run(s) of {len(others)} other job(s)"
            )
    return " — " + "; ".join(parts) if parts else ""
