"""The stats view: measured timings of executed batches (backend, execution parameters, batch
size, controls computed, seconds), the data the cost model is calibrated from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from batchlog.domain.execution import Execution
from batchlog.domain.queue import Queue
from batchlog.projections.base import EventRecord, Projection, Row, Table, iso
from batchlog.projections.queue_view import ITEM_SPLIT_TOPIC

BATCHES = Table(
    "stats_batches",
    key=("execution_id",),
    columns=(
        "execution_id",
        "queue_name",
        "item_id",
        "analysis_id",
        "runner_id",
        "backend",
        "device",
        "model",
        "num_steps",
        "width",
        "height",
        "frames",
        "batch_size",
        "controls",
        "controls_computed",
        "state",
        "seconds",
        "peak_memory_bytes",
        "succeeded",
        "failed",
        "started_position",
        "finished_at",
        "finished_position",
    ),
    json_columns=frozenset({"controls"}),
)
BATCH_JOBS = Table(
    "stats_batch_jobs",
    key=("item_id",),
    columns=("item_id", "analysis_id"),
)


class StatsProjection(Projection):
    """Folds execution events (and which analysis made each batch job) into batch timings."""

    name: ClassVar[str] = "stats"
    tables: ClassVar[tuple[Table, ...]] = (BATCHES, BATCH_JOBS)

    def __init__(self) -> None:
        super().__init__()
        self.running: dict[str, Row] = {}
        self.analysis_of: dict[str, str] = {}
        self._handlers: dict[str, Callable[[EventRecord], None]] = {
            Queue.Reorganized.TOPIC: self._reorganized,
            ITEM_SPLIT_TOPIC: self._split,
            Execution.Started.TOPIC: self._started,
            Execution.Finished.TOPIC: self._finished,
            Execution.Failed.TOPIC: self._ended,
            Execution.Superseded.TOPIC: self._ended,
        }

    def apply(self, event: EventRecord) -> None:
        """Fold one event; events that carry no timing are passed over."""
        handler = self._handlers.get(event.topic)
        if handler is not None:
            handler(event)

    def _batch_job(self, item_id: str, analysis_id: str) -> None:
        self.analysis_of[item_id] = analysis_id
        self.upsert(BATCH_JOBS.name, {"item_id": item_id, "analysis_id": analysis_id})

    def _reorganized(self, event: EventRecord) -> None:
        for new in event.payload["new_jobs"]:
            self._batch_job(new["job_id"], event.payload["analysis_id"])

    def _split(self, event: EventRecord) -> None:
        analysis_id = self.analysis_of.get(event.payload["job_id"])
        if analysis_id is not None:
            for half in event.payload["new_jobs"]:
                self._batch_job(half["job_id"], analysis_id)

    def _started(self, event: EventRecord) -> None:
        p = event.payload
        parameters = p.get("parameters") or {}
        row: Row = {
            "execution_id": event.originator_id,
            "queue_name": p["queue_name"],
            "item_id": p["item_id"],
            "analysis_id": self.analysis_of.get(p["item_id"]),
            "runner_id": p["runner_id"],
            "backend": p["backend"],
            "device": p["device"],
            "model": parameters.get("model"),
            "num_steps": parameters.get("num_steps"),
            "width": parameters.get("width"),
            "height": parameters.get("height"),
            "frames": parameters.get("frames"),
            "batch_size": len(p["run_ids"]),
            "controls": list(p["controls"]),
            "controls_computed": len(p["controls"]),
            "state": "running",
            "seconds": None,
            "peak_memory_bytes": None,
            "succeeded": None,
            "failed": None,
            "started_position": event.position,
            "finished_at": None,
            "finished_position": None,
        }
        self.running[event.originator_id] = row
        self.upsert(BATCHES.name, row)

    def _finished(self, event: EventRecord) -> None:
        row = self.running.pop(event.originator_id, None)
        if row is None:
            return
        p = event.payload
        row.update(
            state="finished",
            device=p["device"],
            batch_size=int(p["batch_size"]),
            controls_computed=int(p["controls_computed"]),
            seconds=float(p["seconds"]),
            peak_memory_bytes=p.get("peak_memory_bytes"),
            succeeded=int(p["succeeded"]),
            failed=int(p["failed"]),
            finished_at=iso(p["finished_at"]),
            finished_position=event.position,
        )
        self.upsert(BATCHES.name, row)

    def _ended(self, event: EventRecord) -> None:
        row = self.running.pop(event.originator_id, None)
        if row is None:
            return
        row["state"] = "failed" if event.topic == Execution.Failed.TOPIC else "superseded"
        if event.topic == Execution.Failed.TOPIC:
            row["seconds"] = float(event.payload["seconds"])
        self.upsert(BATCHES.name, row)

    def restore(self, rows: Mapping[str, list[Row]]) -> None:
        """Load running executions and the analysis of every batch job."""
        self.running = {row["execution_id"]: dict(row) for row in rows.get("running", [])}
        self.analysis_of = {
            row["item_id"]: row["analysis_id"] for row in rows.get("batch_jobs", [])
        }


def batch_stat(row: Mapping[str, object]) -> dict[str, object]:
    """A finished batch as QueueService.batch_stats() returns it."""
    keys = (
        "execution_id",
        "item_id",
        "analysis_id",
        "backend",
        "device",
        "num_steps",
        "width",
        "height",
        "frames",
        "batch_size",
        "controls_computed",
        "seconds",
        "finished_at",
    )
    return {key: row[key] for key in keys}
