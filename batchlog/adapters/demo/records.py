"""What the demo reads back from the event log: measured executions and one job's lineage.

Both are folds of the stored events (the queue stream and each claim's Execution stream), so
every figure the demo prints comes from what the runner recorded, not from the demo's own clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batchlog.adapters.queue_service import QueueService
from batchlog.domain.errors import BatchlogError
from batchlog.domain.execution import Execution, execution_aggregate_id
from batchlog.domain.ids import queue_aggregate_id
from batchlog.domain.queue import Queue


class DemoRunError(BatchlogError):
    """The demo's queue did not run to completion."""


@dataclass
class ExecutionRecord:
    """The last claim of one queue item and what its Execution recorded."""

    job_id: str
    runner_id: str
    claim_token: str
    attempt: int
    state: str = "running"
    seconds: float | None = None
    device: str = ""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _queue_events(service: QueueService) -> list[Any]:
    return list(service.store.events.get(queue_aggregate_id(service.queue_name)))


def _execution_events(service: QueueService, job_id: str, token: str) -> list[Any]:
    return list(service.store.events.get(execution_aggregate_id(job_id, token)))


def executions(service: QueueService, job_ids: Iterable[str]) -> dict[str, ExecutionRecord]:
    """The last execution of each item (by its latest claim), folded from its events."""
    wanted = set(job_ids)
    claims: dict[str, Queue.ItemClaimed] = {}
    for stored in _queue_events(service):
        if isinstance(stored, Queue.ItemClaimed) and stored.job_id in wanted:
            claims[stored.job_id] = stored
    records = {}
    for job_id, claim in claims.items():
        record = ExecutionRecord(job_id, claim.runner_id, claim.claim_token, claim.attempt)
        for stored in _execution_events(service, job_id, claim.claim_token):
            _apply(record, stored)
        records[job_id] = record
    return records


def _apply(record: ExecutionRecord, stored: Any) -> None:
    if isinstance(stored, Execution.Started):
        record.device = stored.device
    elif isinstance(stored, Execution.RunSucceeded):
        record.outputs[stored.run_id] = {
            "prompt_id": stored.prompt_id,
            "output_path": stored.output_path,
            "sha256": stored.sha256,
            "seconds": stored.seconds,
        }
    elif isinstance(stored, Execution.RunFailed):
        record.errors[stored.run_id] = stored.error
    elif isinstance(stored, Execution.Finished):
        record.state, record.seconds, record.device = "finished", stored.seconds, stored.device
    elif isinstance(stored, Execution.Failed):
        record.state, record.seconds = "failed", stored.seconds
    elif isinstance(stored, Execution.Superseded):
        record.state = "superseded"


def lineage(service: QueueService, job_id: str) -> list[dict[str, Any]]:
    """One job's story from the log: added, analyzed, merged into a batch, claimed, its outputs."""
    steps: list[dict[str, Any]] = []
    batches: dict[str, list[str]] = {}
    for stored in _queue_events(service):
        step = _lineage_step(stored, job_id, batches)
        if step is not None:
            steps.append({"sequence": stored.originator_version, "at": stored.timestamp, **step})
    for batch_id, run_ids in batches.items():
        for record in executions(service, [batch_id]).values():
            for run_id in run_ids:
                if run_id in record.outputs:
                    output = record.outputs[run_id]
                    steps.append(
                        {
                            "sequence": None,
                            "at": None,
                            "what": "output",
                            "text": f"run {run_id} → {output['output_path']} "
                            f"(sha256 {output['sha256'][:12]}…)",
                        }
                    )
                elif run_id in record.errors:
                    steps.append(
                        {
                            "sequence": None,
                            "at": None,
                            "what": "failed",
                            "text": f"run {run_id} failed: {record.errors[run_id]}",
                        }
                    )
            steps.append(
                {
                    "sequence": None,
                    "at": None,
                    "what": "execution",
                    "text": f"{batch_id} {record.state} in {record.seconds or 0:.2f} s on "
                    f"{record.device or '?'} (runner {record.runner_id})",
                }
            )
    return steps


def _lineage_step(stored: Any, job_id: str, batches: dict[str, list[str]]) -> dict[str, Any] | None:
    if isinstance(stored, Queue.JobAdded) and stored.job_id == job_id:
        return {
            "what": "added",
            "text": f"{stored.job_type} job with {len(stored.runs)} run(s) "
            f"added by {stored.submitter}",
        }
    if isinstance(stored, Queue.Analyzed):
        for index, batch in enumerate(stored.batches, start=1):
            if job_id in batch["source_job_ids"]:
                return {
                    "what": "analyzed",
                    "text": f"{stored.mode} analysis {stored.analysis_id}: planned into batch "
                    f"{index} ({', '.join(batch['controls'])})",
                }
    if isinstance(stored, Queue.Reorganized) and job_id in stored.retired_job_ids:
        parts = []
        for new in stored.new_jobs:
            if job_id in new["source_job_ids"]:
                mine = [r for r in new["run_ids"] if r.startswith(f"{job_id}:")]
                batches[new["job_id"]] = mine
                others = [j for j in new["source_job_ids"] if j != job_id]
                parts.append(
                    f"{len(mine)} run(s) merged into {new['job_id']} with "
                    f"{len(new['run_ids']) - len(mine)} run(s) of {len(others)} other job(s)"
                )
        return {"what": "merged", "text": f"analysis {stored.analysis_id}: " + "; ".join(parts)}
    if isinstance(stored, Queue.ItemClaimed) and stored.job_id in batches:
        return {
            "what": "claimed",
            "text": f"{stored.job_id} claimed by {stored.runner_id} (attempt {stored.attempt})",
        }
    return None
