"""Plan reports: what an analysis estimated next to what its batches measured when they ran.

An analysis lives in the queue stream (`Analyzed` at its sequence; `Reorganized` right after it
when it was executed, since execute appends at exactly the next version), and the measured batch
seconds live in the Execution streams. Nothing here is stored separately: every executed plan's
estimate error can be recomputed from the log at any time, so none is ever lost.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from batchlog.adapters.calibration import ExecutionHistory, ExecutionRecord
from batchlog.adapters.store import EventStore, translate_store_errors
from batchlog.domain.errors import UnknownAnalysisError
from batchlog.domain.plan_record import batch_run_counts
from batchlog.domain.queue import Queue


def plan_report(
    store: EventStore,
    queue: Queue,
    history: ExecutionHistory,
    analysis_id: str | None = None,
) -> dict[str, Any]:
    """Estimated against measured seconds for one analysis (the latest by default)."""
    if analysis_id is None:
        if not queue.analysis_sequences:
            raise UnknownAnalysisError(f"No analysis in queue {queue.name!r} yet.")
        analysis_id = max(queue.analysis_sequences, key=queue.analysis_sequences.__getitem__)
    sequence = queue.analysis_sequences.get(analysis_id)
    if sequence is None:
        raise UnknownAnalysisError(f"No analysis {analysis_id!r} in queue {queue.name!r}.")
    analyzed, reorganized = _analysis_events(store, queue.id, sequence, analysis_id)
    new_jobs = list(reorganized.new_jobs) if reorganized is not None else []
    executions = history.by_item(job["job_id"] for job in new_jobs)
    return build_report(
        analysis_id=analysis_id,
        sequence=sequence,
        mode=analyzed.mode,
        planned_batches=analyzed.batch_columns,
        efficiency=analyzed.efficiency,
        batch_job_ids=[job["job_id"] for job in new_jobs] if reorganized is not None else None,
        executions=executions,
    )


def executed_plan_reports(
    store: EventStore, queue: Queue, history: ExecutionHistory
) -> list[dict[str, Any]]:
    """The report of every executed analysis of the queue, oldest first."""
    reports = []
    for analysis_id, _ in sorted(queue.analysis_sequences.items(), key=lambda item: item[1]):
        report = plan_report(store, queue, history, analysis_id)
        if report["executed"]:
            reports.append(report)
    return reports


def build_report(
    *,
    analysis_id: str,
    sequence: int,
    mode: str,
    planned_batches: Mapping[str, Any],
    efficiency: Mapping[str, Any],
    batch_job_ids: Sequence[str] | None,
    executions: Mapping[str, Sequence[ExecutionRecord]],
) -> dict[str, Any]:
    """The report of one plan from its recorded estimate and the executions of its batches."""
    rows: list[dict[str, Any]] = []
    planned = zip(
        batch_run_counts(planned_batches),
        planned_batches["controls"],
        planned_batches["estimated_seconds"],
        strict=True,
    )
    for index, (runs, controls, seconds) in enumerate(planned, start=1):
        job_id = batch_job_ids[index - 1] if batch_job_ids is not None else None
        attempts = list(executions.get(job_id, ())) if job_id else []
        finished = [r for r in attempts if r.state == "finished"]
        measured = finished[-1].seconds if finished else None
        estimated = float(seconds)
        rows.append(
            {
                "index": index,
                "job_id": job_id,
                "runs": runs,
                "controls": list(controls),
                "estimated_seconds": estimated,
                "measured_seconds": measured,
                "error": _relative_error(estimated, measured),
                "attempts": len(attempts),
                "state": attempts[-1].state if attempts else "not started",
                "backend": f"{finished[-1].backend}/{finished[-1].device}" if finished else None,
            }
        )
    measured_rows = [row for row in rows if row["measured_seconds"] is not None]
    complete = bool(rows) and len(measured_rows) == len(rows)
    measured_total = sum(row["measured_seconds"] for row in measured_rows)
    estimated_for_measured = sum(row["estimated_seconds"] for row in measured_rows)
    unbatched = float(efficiency["estimated_seconds_unbatched"])
    batched = float(efficiency["estimated_seconds_batched"])
    errors = [abs(row["error"]) for row in measured_rows if row["error"] is not None]
    return {
        "analysis_id": analysis_id,
        "sequence": sequence,
        "mode": mode,
        "executed": batch_job_ids is not None,
        "basis": efficiency["basis"],
        "total_batches": len(rows),
        "measured_batches": len(measured_rows),
        "complete": complete,
        "estimated_seconds_unbatched": unbatched,
        "estimated_seconds_batched": batched,
        "estimated_speedup": float(efficiency["speedup"]),
        "measured_seconds_batched": measured_total if complete else None,
        "measured_speedup": unbatched / measured_total if complete and measured_total > 0 else None,
        "estimate_error": (
            _relative_error(estimated_for_measured, measured_total) if measured_rows else None
        ),
        "median_batch_error": statistics.median(errors) if errors else None,
        "batches": rows,
    }


def _relative_error(estimated: float, measured: float | None) -> float | None:
    """(estimate - measurement) / measurement: +0.2 means the estimate was 20% too high."""
    if measured is None or measured <= 0:
        return None
    return (estimated - measured) / measured


def _analysis_events(
    store: EventStore, queue_id: UUID, sequence: int, analysis_id: str
) -> tuple[Any, Any]:
    with translate_store_errors():
        events = list(store.events.get(queue_id, gt=sequence - 1, lte=sequence + 1))
    analyzed = next(
        (e for e in events if isinstance(e, Queue.Analyzed) and e.analysis_id == analysis_id), None
    )
    if analyzed is None:
        raise UnknownAnalysisError(f"No analysis {analysis_id!r} at sequence {sequence}.")
    reorganized = next(
        (e for e in events if isinstance(e, Queue.Reorganized) and e.analysis_id == analysis_id),
        None,
    )
    return analyzed, reorganized
