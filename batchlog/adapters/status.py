"""Plain-dict shapes that the API returns for queue items, analyses and reorganizations."""

from __future__ import annotations

from typing import Any

from batchlog.domain.batching import SmartBatchPlan, render_preview
from batchlog.domain.controls import ordered_controls
from batchlog.domain.errors import StaleAnalysisError
from batchlog.domain.jobs import QueueItem
from batchlog.domain.plan_record import expanded_batches, recorded_run_ids
from batchlog.domain.queue import Queue


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else ("es" if noun.endswith("ch") else "s"))


def reorganize_message(jobs: int, batches: int) -> str:
    """The guide's success message: 'Queue reorganized successfully. 5 jobs → 3 batches'."""
    return f"Queue reorganized successfully. {_plural(jobs, 'job')} → {_plural(batches, 'batch')}"


def item_view(item: QueueItem, position: int | None) -> dict[str, Any]:
    """A queue item as get_queue_status() lists it."""
    parameters = item.runs[0].parameters.to_payload() if item.runs and item.batchable else {}
    view: dict[str, Any] = {
        "id": item.job_id,
        "position": position,
        "type": item.job_type,
        "status": item.status,
        "prompt_ids": item.prompt_ids,
        "runs": len(item.runs),
        "controls": ordered_controls(item.controls),
        "weights_list": item.weights_list if item.batchable else [],
        "seeds": [run.seed for run in item.runs] if item.batchable else [],
        "parameters": parameters,
        "options": dict(item.options),
        "priority": item.priority,
        "submitter": item.submitter,
        "source_job_ids": list(item.source_job_ids),
        "analysis_id": item.analysis_id,
        "attempt": item.attempt,
    }
    if item.claim is not None:
        view["claimed_by"] = item.claim.runner_id
        view["lease_expires_at"] = item.claim.lease_expires_at.isoformat()
    return view


def analysis_view(
    recorded: dict[str, Any], queue: Queue, plan: SmartBatchPlan | None = None
) -> dict[str, Any]:
    """A fresh analysis as analyze_queue_for_smart_batching() returns it.

    The recorded batches name their runs by where they were queued; run ids come from the
    plan just recorded, or else from the queue, which is at the analysed sequence while the
    analysis is fresh.
    """
    if recorded["sequence"] != queue.version:
        raise StaleAnalysisError()
    columns = recorded["batch_columns"]
    if plan is not None:
        run_ids = [[run.run_id for run in batch.runs] for batch in plan.batches]
    else:
        run_ids = recorded_run_ids(columns, queue.items)
    return {
        "analysis_id": recorded["analysis_id"],
        "sequence": recorded["sequence"],
        "mode": recorded["mode"],
        "batch_size": recorded["batch_size"],
        "batches": expanded_batches(columns, recorded["parameter_sets"], run_ids),
        "efficiency": dict(recorded["efficiency"]),
        "preview": analysis_preview(recorded),
    }


def analysis_preview(recorded: dict[str, Any]) -> str:
    """The preview of a recorded analysis (rendered from its batches; it is not stored)."""
    return render_preview(
        recorded["mode"], recorded["batch_size"], recorded["batch_columns"], recorded["efficiency"]
    )
