"""How execution events move the queue view: claim holder, lease, progress, outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlog.domain.execution import Execution
from batchlog.projections.base import EventRecord, Row, iso
from batchlog.projections.queue_tables import EXECUTIONS


class ExecutionFolding:
    """The queue projection's handlers for Execution events (a mixin of QueueProjection)."""

    items: dict[str, Row]
    executions: dict[str, Row]
    only_queue: str | None

    if TYPE_CHECKING:  # provided by Projection and QueueProjection

        def upsert(self, table: str, row: Row) -> None:
            """Record a row change."""

        def _save_item(self, item: Row, event: EventRecord) -> None: ...

        def _end(self, item: Row, event: EventRecord, status: str, outcome: str) -> None: ...

    def _started(self, event: EventRecord) -> None:
        p = event.payload
        if self.only_queue is not None and p["queue_name"] != self.only_queue:
            return
        execution: Row = {
            "execution_id": event.originator_id,
            "queue_name": p["queue_name"],
            "item_id": p["item_id"],
            "claim_token": p["claim_token"],
            "runner_id": p["runner_id"],
            "attempt": int(p["attempt"]),
            "state": "running",
            "lease_expires_at": iso(p["lease_expires_at"]),
            "done": 0,
            "failed": 0,
            "total": len(p["run_ids"]),
            "started_position": event.position,
            "updated_position": event.position,
        }
        self.executions[event.originator_id] = execution
        self.upsert(EXECUTIONS.name, execution)
        item = self._claimed_item(execution)
        if item is not None:
            item.update(execution_id=event.originator_id, progress_total=len(p["run_ids"]))
            item["lease_expires_at"] = execution["lease_expires_at"]
            self._save_item(item, event)

    def _claimed_item(self, execution: Row) -> Row | None:
        item = self.items.get(execution["item_id"])
        if item is None or item["claim_token"] != execution["claim_token"]:
            return None
        return item

    def _execution(self, event: EventRecord) -> tuple[Row | None, Row | None]:
        execution = self.executions.get(event.originator_id)
        if execution is None:
            return None, None
        execution["updated_position"] = event.position
        self.upsert(EXECUTIONS.name, execution)
        return execution, self._claimed_item(execution)

    def _lease_extended(self, event: EventRecord) -> None:
        execution, item = self._execution(event)
        if execution is None:
            return
        execution["lease_expires_at"] = iso(event.payload["lease_expires_at"])
        if item is not None:
            item["lease_expires_at"] = execution["lease_expires_at"]
            self._save_item(item, event)

    def _run_outcome(self, event: EventRecord) -> None:
        execution, item = self._execution(event)
        if execution is None:
            return
        column = "done" if event.topic == Execution.RunSucceeded.TOPIC else "failed"
        execution[column] += 1
        if item is not None:
            item[f"progress_{column}"] = execution[column]
            self._save_item(item, event)

    def _finished(self, event: EventRecord) -> None:
        execution, item = self._execution(event)
        if execution is None:
            return
        p = event.payload
        execution["state"] = "finished"
        self.executions.pop(event.originator_id, None)
        if item is not None:
            succeeded, total = int(p["succeeded"]), int(p["batch_size"])
            status = "done" if int(p["failed"]) == 0 else "failed"
            outcome = f"{succeeded}/{total} runs succeeded in {float(p['seconds']):.2f}s"
            item.update(progress_done=succeeded, progress_failed=int(p["failed"]))
            self._end(item, event, status, outcome)

    def _failed(self, event: EventRecord) -> None:
        execution, item = self._execution(event)
        if execution is None:
            return
        execution["state"] = "failed"
        self.executions.pop(event.originator_id, None)
        if item is not None:
            kind = "out of memory" if event.payload.get("out_of_memory") else "error"
            item["outcome"] = f"attempt {item['attempt']} failed ({kind}): {event.payload['error']}"
            self._save_item(item, event)

    def _superseded(self, event: EventRecord) -> None:
        execution, _ = self._execution(event)
        if execution is None:
            return
        execution["state"] = "superseded"
        self.executions.pop(event.originator_id, None)
